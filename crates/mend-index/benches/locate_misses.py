#!/usr/bin/env python3
"""Reads a bench-locate report and prints the misses at file Acc@5 with a reason each.

    python3 crates/mend-index/benches/locate_misses.py target/bench/locate-heldout.json INSTANCES.jsonl [N]

The reason is read off the report (gold files the index lacks, multi-file fixes with one
file found, what ranked first) and the issue text (is a gold function's name in it?).
"""
import json
import re
import sys
from collections import Counter


def reason(d, issue):
    gold = d["gold_files"]
    ranks = d["gold_file_ranks"]
    if d["gold_not_indexed"]:
        return "gold file not indexed (not Python): " + ", ".join(d["gold_not_indexed"])
    if len(gold) > 1 and d.get("any_file_rank") and d["any_file_rank"] <= 5:
        found = sum(1 for r in ranks if r and r <= 5)
        return f"multi-file fix: {found} of {len(gold)} gold files in the top 5"
    top = d.get("top_file_reasons") or [{}]
    why = (top[0].get("reasons") or ["?"])[0] if top else "?"
    names = {g.split("::")[-1].split(".")[-1] for g in d["gold_functions"]}
    named = sorted(n for n in names if n and re.search(r"\b" + re.escape(n) + r"\b", issue))
    stems = {g.rsplit("/", 1)[-1][:-3] for g in gold if g.endswith(".py")}
    stem_named = sorted(s for s in stems if s != "__init__" and re.search(r"\b" + re.escape(s) + r"\b", issue))
    if "traceback frame" in why:
        return f"a traceback frame ranks where the error surfaced first ({why})"
    if named or stem_named:
        return f"fix site named ({', '.join(named + stem_named)}) but outranked: top-1 by {why}"
    if not d["gold_functions"]:
        return f"module-level change, nothing named; top-1 by {why}"
    return f"fix site not named (behaviour-only report); top-1 by {why}"


def main():
    report = json.load(open(sys.argv[1]))
    issues = {}
    for line in open(sys.argv[2]):
        if line.strip():
            r = json.loads(line)
            issues[r["instance_id"]] = r["problem_statement"]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    misses = [d for d in report["details"] if not (d["file_rank"] and d["file_rank"] <= 5)]
    kinds = Counter()
    rows = []
    for d in misses:
        why = reason(d, issues.get(d["instance_id"], ""))
        kinds[why.split(":")[0].split("(")[0].strip()] += 1
        rows.append((d, why))
    print(f"{len(misses)} of {len(report['details'])} miss at file Acc@5")
    for k, c in kinds.most_common():
        print(f"  {c:4}  {k}")
    print()
    print("| instance | gold files (rank) | our top 1 | reason |")
    print("|---|---|---|---|")
    # Every repository in turn, so the sample is not all django.
    by_repo = {}
    for d, why in rows:
        by_repo.setdefault(d["repo"], []).append((d, why))
    picked = []
    while len(picked) < n and any(by_repo.values()):
        for repo in sorted(by_repo):
            if by_repo[repo] and len(picked) < n:
                picked.append(by_repo[repo].pop(0))
    for d, why in picked:
        gold = ", ".join(f"{g} ({r or '-'})" for g, r in zip(d["gold_files"], d["gold_file_ranks"]))
        top = d["top_files"][0] if d["top_files"] else "-"
        print(f"| {d['instance_id']} | {gold} | {top} | {why} |")


if __name__ == "__main__":
    main()
