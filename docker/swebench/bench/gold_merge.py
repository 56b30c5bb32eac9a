#!/usr/bin/env python3
"""Joins bench-gold batches (BENCH_GOLD_NAME=gold-a, gold-b, ...) into one gold.json.

    python3 docker/swebench/bench/gold_merge.py target/bench/gold-a.json target/bench/gold-b.json [--out target/bench/gold.json]

An instance in several batches keeps its last row; an instance dropped in one batch and kept in
another counts as kept. The summary is recomputed over the whole (seconds are summed).
Standard library only.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gold import print_table, summarize  # noqa: E402


def merge(parts):
    rows, dropped, seconds = {}, {}, {}
    for part in parts:
        for x in part["instances"]:
            rows[x["instance_id"]] = x
        for d in part["dropped"]:
            dropped[d["instance_id"]] = d
        for k, v in part.get("summary", {}).get("seconds", {}).items():
            seconds[k] = seconds.get(k, 0) + v
    kept = list(rows.values())
    gone = [d for iid, d in dropped.items() if iid not in rows]
    return {"instances": kept, "dropped": gone, "summary": summarize(kept, gone, seconds)}


def read_results(args, default_out, doc, key, kind):
    """Command line of the *_merge.py tools -> (out path, [(path, loaded result)]): `--out FILE`
    anywhere, the rest result files; exits naming a file that is unreadable or lacks `key`."""
    args = list(args)
    out = Path(default_out)
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            sys.exit("--out needs a file")
        out = Path(args[i + 1])
        del args[i : i + 2]
    if not args:
        sys.exit(doc)
    results = []
    for a in args:
        try:
            r = json.loads(Path(a).read_text())
        except (OSError, ValueError) as e:
            sys.exit(f"{a}: {e}")
        if not isinstance(r, dict) or key not in r:
            sys.exit(f"{a}: not a {kind} result (no `{key}`)")
        results.append((a, r))
    return out, results


def main():
    out, results = read_results(sys.argv[1:], "target/bench/gold.json", __doc__, "instances", "bench-gold")
    parts = [r for _, r in results]
    result = merge(parts)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
