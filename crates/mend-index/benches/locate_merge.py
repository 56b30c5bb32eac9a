#!/usr/bin/env python3
"""Merges bench-locate reports of disjoint instance sets (runs split to use two processes)
into one report with the same figures, recomputed from the per-instance details.

    python3 crates/mend-index/benches/locate_merge.py OUT.json IN1.json IN2.json ...
"""
import json
import sys
from collections import defaultdict

KS = [1, 3, 5, 10]
FKS = [5, 10]
PACK = "gold_functions_in_27000_token_pack"


def frac(h, n):
    return round(h / n, 3) if n else None


def tally(details):
    n = len(details)
    fd = [d for d in details if d["gold_functions"]]
    t = {"instances": n, "func_instances": len(fd)}
    for k in KS:
        t[f"file_acc@{k}"] = frac(sum(1 for d in details if d["file_rank"] and d["file_rank"] <= k), n)
        t[f"any_file_acc@{k}"] = frac(sum(1 for d in details if d["any_file_rank"] and d["any_file_rank"] <= k), n)
    for k in FKS:
        t[f"func_acc@{k}"] = frac(sum(1 for d in fd if d["func_rank"] and d["func_rank"] <= k), len(fd))
    t[PACK] = frac(sum(1 for d in fd if d["pack_fits"]), len(fd))
    b = {}
    for k in KS:
        b[f"file_acc@{k}"] = frac(sum(1 for d in details if d["bm25_file_rank"] and d["bm25_file_rank"] <= k), n)
    for k in FKS:
        b[f"func_acc@{k}"] = frac(sum(1 for d in fd if d["bm25_func_rank"] and d["bm25_func_rank"] <= k), len(fd))
    t["bm25"] = b
    return t


def main():
    out, ins = sys.argv[1], sys.argv[2:]
    reports = [json.load(open(p)) for p in ins]
    details = [d for r in reports for d in r["details"]]
    merged = tally(details)
    by_repo = defaultdict(list)
    for d in details:
        by_repo[d["repo"]].append(d)
    merged["per_repo"] = {r: tally(ds) for r, ds in sorted(by_repo.items())}
    # Signal grid: weighted by each part's instance counts.
    signals = []
    for rows in zip(*[r.get("signals", []) for r in reports]):
        m = {"label": rows[0]["label"]}
        n = sum(x["instances"] for x in rows)
        fn = sum(x["func_instances"] for x in rows)
        m["instances"], m["func_instances"] = n, fn
        for key in rows[0]:
            if key.startswith(("file_acc@", "any_file_acc@")):
                m[key] = frac(sum((x[key] or 0) * x["instances"] for x in rows), n)
            elif key.startswith("func_acc@"):
                m[key] = frac(sum((x[key] or 0) * x["func_instances"] for x in rows), fn)
        signals.append(m)
    merged["signals"] = signals
    merged["gold"] = {
        k: sum(r["gold"][k] for r in reports) for k in reports[0]["gold"] if k != "note"
    }
    merged["gold"]["note"] = reports[0]["gold"]["note"]
    merged["records"] = sum(r.get("records", 0) for r in reports)
    merged["stopped_early"] = [r.get("stopped_early") for r in reports]
    merged["skipped"] = [r.get("skipped") for r in reports]
    merged["index_seconds"] = [r.get("index_seconds") for r in reports]
    merged["median_localize_seconds"] = [r.get("median_localize_seconds") for r in reports]
    merged["parts"] = ins
    merged["details"] = details
    json.dump(merged, open(out, "w"), indent=1)
    print(f"{len(details)} instances of {merged['records']} records -> {out}")
    head = ["f@1", "f@3", "f@5", "f@10", "a@5", "fn@5", "fn@10", "pack", "b@1", "b@5", "b@10", "bf@10"]
    print(f"{'repository':28} {'n':>4} " + " ".join(f"{h:>5}" for h in head))

    def row(name, t):
        v = [t["file_acc@1"], t["file_acc@3"], t["file_acc@5"], t["file_acc@10"], t["any_file_acc@5"],
             t["func_acc@5"], t["func_acc@10"], t[PACK], t["bm25"]["file_acc@1"], t["bm25"]["file_acc@5"],
             t["bm25"]["file_acc@10"], t["bm25"]["func_acc@10"]]
        print(f"{name:28} {t['instances']:>4} " + " ".join(f"{'-' if x is None else round(x * 100):>5}" for x in v))

    for r, t in merged["per_repo"].items():
        row(r, t)
    row("ALL", merged)
    print("\nsignals (f@1 f@3 f@5 f@10 any@5 fn@5 fn@10):")
    for m in signals:
        v = [m["file_acc@1"], m["file_acc@3"], m["file_acc@5"], m["file_acc@10"], m["any_file_acc@5"], m["func_acc@5"], m["func_acc@10"]]
        print(" ".join(f"{round((x or 0) * 100):>4}" for x in v) + "  " + m["label"])


if __name__ == "__main__":
    main()
