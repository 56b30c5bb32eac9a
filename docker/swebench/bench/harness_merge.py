#!/usr/bin/env python3
"""Join bench-harness runs over different batches (BENCH_HARNESS_NAME=harness-a, ...) into
one agreement figure, as gold_merge.py does for bench-gold batches:

    python3 docker/swebench/bench/harness_merge.py target/bench/harness-a.json ... [--out target/bench/harness-all.json]

Verdicts and per-repository agreement add up; wall-time ratios stay per run, since each was
measured on its own machine load.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gold_merge  # noqa: E402  (its read_results parses the same command line)


def merge(results):
    per_instance, per_repo, ratios = {}, {}, {}
    for name, r in results:
        for row in r["per_instance"]:
            per_instance[row["instance_id"]] = row  # a later run of the same instance stands
        ratios[name] = r["wall_ratio_official_over_mend"]
    rows = list(per_instance.values())
    for x in rows:
        # django__django-11099 -> django/django
        acc = per_repo.setdefault(x["instance_id"].rsplit("-", 1)[0].replace("__", "/"), {"instances": 0, "agree": 0})
        acc["instances"] += 1
        acc["agree"] += 1 if x["agree"] else 0
    return {
        "runs": [name for name, _ in results],
        "instances": len(rows),
        "agreeing": sum(1 for x in rows if x["agree"]),
        "verdicts_agree": all(x["agree"] for x in rows),
        "repositories": len(per_repo),
        "per_repository": dict(sorted(per_repo.items())),
        "wall_ratio_official_over_mend": ratios,
        "per_instance": rows,
    }


def main():
    out, found = gold_merge.read_results(sys.argv[1:], "target/bench/harness-all.json", __doc__, "per_instance", "bench-harness")
    results = [(Path(p).stem, r) for p, r in found]
    result = merge(results)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_instance"}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
