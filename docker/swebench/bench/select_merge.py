#!/usr/bin/env python3
"""Joins select.json files of bench-select runs on disjoint instance sets (counts add up).

Usage: select_merge.py OUT.json PART1.json PART2.json ...
"""
import json, sys
parts = [json.load(open(p)) for p in sys.argv[2:]]
out = dict(parts[0])
n = sum(p["instances"] for p in parts)
rows = [r for p in parts for r in p["rows"]]
repos = {r["instance_id"].rsplit("-", 1)[0] for r in rows}
out.update({
    "instances": n,
    "repositories": len(repos),
    "pool_size": max(p["pool_size"] for p in parts),
    "inference_only": {"selected_resolving": sum(p["inference_only"]["selected_resolving"] for p in parts)},
    "with_reproduction": {"selected_resolving": sum(p["with_reproduction"]["selected_resolving"] for p in parts)},
    "first_candidate_resolving": sum(p["first_candidate_resolving"] for p in parts),
    "random_expected": round(sum(p["random_expected"] for p in parts), 3),
    "seconds_per_instance": round(sum(p["seconds_per_instance"] * p["instances"] for p in parts) / n, 1),
    "truth_grading_seconds": round(sum(p["truth_grading_seconds"] for p in parts), 1),
    "rows": rows,
    "merged_from": [f"{p['instances']} instances" for p in parts],
})
json.dump(out, open(sys.argv[1], "w"), indent=2)
print({k: out[k] for k in ["instances", "repositories", "pool_size", "inference_only", "with_reproduction", "first_candidate_resolving", "random_expected", "seconds_per_instance"]})
