#!/usr/bin/env python3
"""`just bench-select INSTANCES MIRRORS`: best-of-N's choice on real instances built offline.

1. `mend swebench mine --instances`: the instances' images built offline (repository from
   MIRRORS, wheels on the host) and their FAIL_TO_PASS / PASS_TO_PASS recovered, as
   bench-gold does; official lists (OFFICIAL=FILE, default
   ../shared/data/swe-bench-verified.official-tests.jsonl) replace mined ones where present.
2. `mend swebench eval --predictions gold`: only instances whose gold patch resolves stay
   (the truth of a pool needs a harness that grades the instance right).
3. select_pools.py: a pool of candidates per instance (gold, empty, gold minus a hunk,
   gold mutated, gold plus a change that breaks a test), shuffled with a fixed seed.
4. `cargo bench -p mend-swebench --bench select`: every candidate graded (the truth), the
   inference-side checks run, the choice made in both modes -> target/bench/select.json.

Step 2 grades only the instances graded with official lists: with lists mined here gold
resolves and the empty patch does not by construction (FAIL_TO_PASS fail on the base commit
and pass with gold, PASS_TO_PASS pass with gold), so a second run would only cost time;
GOLD_ALL=1 grades them too.
SELECT_WORK=DIR moves the work directory (default target/bench/select-work).
MINED=FILE reuses an earlier mined file (step 1 skipped); MINED=F1,F2 joins several (mined in
batches); EXTRA_MINED=F1,F2 adds instances
mined from fix commits (`mend swebench mine --repo MIRROR --commits A..B`); MEND picks the binary (default
target/debug/mend); MEND_WHEELHOUSE, MEND_BUILD_DIR as for bench-gold. Extra arguments go
to `mend swebench mine` (e.g. --instance-ids ..., --workers 1). BENCH_PROFILE=dev builds the
bench in the dev profile (no optimised build of every dependency; the time measured is in
containers, not in mend's code).
Standard library only; run from the workspace root.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_lists  # noqa: E402

HERE = Path(__file__).resolve().parent
# Instances bench-gold built and validated before, from three repositories.
DEFAULT_IDS = [
    "django__django-10914", "django__django-11099", "django__django-11179",
    "django__django-13315", "django__django-13401", "django__django-13551",
    "django__django-13590", "django__django-13933", "django__django-13964",
    "sympy__sympy-16792", "sympy__sympy-17630", "sympy__sympy-18189",
    "sympy__sympy-20154", "sympy__sympy-24066", "sympy__sympy-24213",
]


def run(cmd, log, check=True):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    with open(log, "a") as f:
        p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=f, text=True)
    print(p.stdout.strip(), flush=True)
    if check and p.returncode != 0:
        sys.exit(f"failed ({p.returncode}); see {log}")
    return p


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: bench_select.py INSTANCES MIRRORS [mend mine options...]")
    instances, mirrors, extra = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), sys.argv[3:]
    mend = os.environ.get("MEND", "target/debug/mend")
    out = Path("target/bench")
    work = Path(os.environ.get("SELECT_WORK", out / "select-work")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "bench-select.log"
    wheelhouse = os.environ.get("MEND_WHEELHOUSE", str(out / "wheelhouse"))
    images = ["--images", "build-offline", "--repo-mirrors", mirrors, "--wheelhouse", wheelhouse,
              "--build-dir", os.environ.get("MEND_BUILD_DIR", str(work / "build"))]
    mined = work / "mined.jsonl"
    if os.environ.get("MINED"):
        sources = [Path(m).resolve() for m in os.environ["MINED"].split(",") if m]
        if sources != [mined]:
            mined.write_text("".join(m.read_text() for m in sources))
        print(f"using the mined instances in {', '.join(map(str, sources))}")
    else:
        if "--instance-ids" not in extra and "--repos" not in extra:
            extra = ["--instance-ids", *DEFAULT_IDS, *extra]
        run([mend, "swebench", "mine", "--instances", instances, "--out", mined, "--dropped",
             work / "dropped.jsonl", "--run-id", "select-mine", "--log-dir", work / "logs/mine", *images, *extra], log)
    records = [json.loads(l) for l in mined.read_text().splitlines() if l.strip()]
    # Instances mined from fix commits (`mend swebench mine --repo`), added as they are.
    for extra_file in filter(None, os.environ.get("EXTRA_MINED", "").split(",")):
        have = {r["instance_id"] for r in records}
        records += [r for r in (json.loads(l) for l in Path(extra_file).read_text().splitlines() if l.strip()) if r["instance_id"] not in have]
    official_path = Path(os.environ.get("OFFICIAL", instances.parent / "swe-bench-verified.official-tests.jsonl"))
    official = official_lists.load(official_path) if official_path.exists() else {}
    mined_lists = {r["instance_id"]: (r.get("FAIL_TO_PASS"), r.get("PASS_TO_PASS")) for r in records}
    for r in records:
        o = official.get(r["instance_id"])
        if o:
            for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
                r[key] = json.dumps(o[key])
            r["test_lists"] = "official"
    graded = work / "graded.jsonl"
    to_grade = [r for r in records if os.environ.get("GOLD_ALL") or r.get("test_lists") == "official"]
    graded.write_text("".join(json.dumps(r) + "\n" for r in to_grade))
    workers = ["--workers", os.environ.get("WORKERS", "2")]
    details = {"outcomes": {}, "images": {}}
    if to_grade:
        run([mend, "swebench", "eval", "--predictions", "gold", "--dataset", graded, "--run-id", "select-gold",
             "--log-dir", work / "logs/run_evaluation", "--report-dir", work, *images, *workers], log, check=False)
        details = json.loads((work / "gold.select-gold.mend.json").read_text())
    # Mined lists: gold resolves by construction (see above).
    for r in records:
        if r not in to_grade:
            details["outcomes"][r["instance_id"]] = {"outcome": "resolved", "detail": "mined lists"}

    def resolved(d, iid):
        o = d["outcomes"].get(iid) or {}
        return o.get("outcome") == "resolved" or (o.get("outcome") == "already_graded" and o.get("detail", {}).get("resolved"))

    # Official lists that gold fails here (this Python differs from the official one):
    # the lists mined here instead, which gold passes by construction, labelled as such.
    retry = [r for r in records if r.get("test_lists") == "official" and not resolved(details, r["instance_id"])]
    if retry:
        for r in retry:
            r["FAIL_TO_PASS"], r["PASS_TO_PASS"] = mined_lists[r["instance_id"]]
            r["test_lists"] = "mined (gold fails the official lists on this Python)"
        regraded = work / "graded-mined.jsonl"
        regraded.write_text("".join(json.dumps(r) + "\n" for r in retry))
        run([mend, "swebench", "eval", "--predictions", "gold", "--dataset", regraded, "--run-id", "select-gold-mined",
             "--log-dir", work / "logs/run_evaluation", "--report-dir", work, *images, *workers], log, check=False)
        again = json.loads((work / "gold.select-gold-mined.mend.json").read_text())
        for r in retry:
            if resolved(again, r["instance_id"]):
                details["outcomes"][r["instance_id"]] = {"outcome": "resolved"}
                if r["instance_id"] in again.get("images", {}):
                    details.setdefault("images", {})[r["instance_id"]] = again["images"][r["instance_id"]]
    # An instance graded by an earlier run of the same id has no image in this run's details.
    for r in records:
        iid = r["instance_id"]
        if iid not in details.get("images", {}):
            tags = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"mend-sweb.eval.x86_64.{iid}"],
                                  capture_output=True, text=True).stdout.split()
            if tags:
                details.setdefault("images", {})[iid] = tags[0]
    keep = []
    for r in records:
        if resolved(details, r["instance_id"]) and r["instance_id"] in details.get("images", {}):
            keep.append(r)
        else:
            print(f"{r['instance_id']}: gold does not resolve here; left out")
    (work / "mined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    (work / "images.json").write_text(json.dumps({r["instance_id"]: details["images"][r["instance_id"]] for r in keep}, indent=1))
    subprocess.run([sys.executable, HERE / "select_pools.py", work / "mined.jsonl", mirrors, work / "pools.jsonl"], check=True)
    profile = ["--profile", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    p = subprocess.run(["cargo", "bench", *profile, "-p", "mend-swebench", "--bench", "select", "--", work, *workers])
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
