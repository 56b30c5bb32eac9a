#!/usr/bin/env python3
"""`just bench-harness`: mend's evaluation against the official SWE-bench harness, same run.

Takes what `just bench-gold` validated (target/bench/gold-work: the mined instances and the
image each ran in) and evaluates the gold patches with both harnesses on the same images,
serially and with 2 workers, interleaved so both see the same machine:
- mend: `mend swebench eval --images local --image-map ...`;
- official: PyPI `swebench` 4.1.0 in a venv (SWEBENCH_VENV, default ../venv-swebench41),
  given the images under a namespace (`mendlocal/sweb.eval.x86_64.<id>` tags) so it builds
  nothing (see official_harness.py).
HARNESS_INSTANCES=N limits the run to N of them; HARNESS_WORKERS=2 runs each harness once with
2 workers (the default "1,2" adds serial runs for the overhead). The records are bench-gold's
graded.jsonl (official lists where it had them), so both harnesses grade the same lists. Reports wall times, per-instance overhead outside the test run (wall time minus the test
runtime each harness logs as "Test runtime: X seconds", per instance) and the verdict of
each harness per instance. Writes target/bench/harness.json and prints it; with
BENCH_HARNESS_NAME=harness-a, target/bench/harness-a.json (work dir harness-a-work), so runs
over different batches can go on side by side and keep their results.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

NAMESPACE = "mendlocal"


def official_key(iid):
    return f"{NAMESPACE}/sweb.eval.x86_64.{iid.lower()}:latest".replace("__", "_1776_")


def test_runtimes(log_root):
    """instance id -> seconds, from run_instance.log lines both harnesses write."""
    out = {}
    for log in Path(log_root).glob("*/*/run_instance.log"):
        m = re.search(r"Test runtime: ([0-9_.]+) seconds", log.read_text(errors="replace"))
        if m:
            out[log.parent.name] = float(m.group(1).replace("_", ""))
    return out


def verdicts(log_root, ids):
    out = {}
    for iid in ids:
        hits = list(Path(log_root).glob(f"*/{iid}/report.json"))
        if not hits:
            out[iid] = "error"
            continue
        rep = json.loads(hits[0].read_text())
        out[iid] = "resolved" if rep.get(iid, {}).get("resolved") else "unresolved"
    return out


def timed(cmd, cwd, log):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    started = time.time()
    with open(log, "a") as f:
        p = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    wall = time.time() - started
    if p.returncode != 0:
        print(f"  exited {p.returncode}; see {log}", flush=True)
    return wall


def main():
    root = Path.cwd()
    mend = Path(os.environ.get("MEND", "target/release/mend")).resolve()
    venv = Path(os.environ.get("SWEBENCH_VENV", root.parent / "venv-swebench41"))
    py = venv / "bin/python"
    if not py.exists():
        sys.exit(f"no official harness at {venv}: python3 -m venv {venv} && {venv}/bin/pip install swebench==4.1.0")
    # bench-gold's work directories: target/bench/gold-work, or the batches it ran as
    # BENCH_GOLD_NAME=gold-a,... (BENCH_GOLD_NAMES=gold-a,gold-b).
    details, records, sources = {"images": {}, "outcomes": {}}, [], []
    for name in os.environ.get("BENCH_GOLD_NAMES", "gold").split(","):
        gw = root / f"target/bench/{name.strip()}-work"
        # What bench-gold graded (official lists where there are some), else what it mined.
        graded = gw / "graded.jsonl" if (gw / "graded.jsonl").exists() else gw / "mined.jsonl"
        if not (gw / "gold.bench-gold.mend.json").exists():
            sys.exit(f"{gw}: no gold.bench-gold.mend.json; run `just bench-gold` (BENCH_GOLD_NAME={name}) first")
        d = json.loads((gw / "gold.bench-gold.mend.json").read_text())
        details["images"].update(d.get("images", {}))
        details["outcomes"].update(d.get("outcomes", {}))
        records += [json.loads(l) for l in graded.read_text().splitlines() if l.strip()]
        sources.append(str(graded.relative_to(root)))
    # An instance in several batches: the last batch's record (and image) stands.
    records = list({r["instance_id"]: r for r in records}.values())
    # Every instance bench-gold ran in an image: agreement counts unresolved verdicts too.
    ids = [r["instance_id"] for r in records if details.get("images", {}).get(r["instance_id"]) and details["outcomes"].get(r["instance_id"], {}).get("outcome") in ("resolved", "unresolved", "already_graded")]
    if not ids:
        sys.exit("no validated instances: run `just bench-gold` first")
    # HARNESS_WORKERS=2 runs each harness once with 2 workers (agreement at scale); the
    # default also runs both serially for the per-instance overhead.
    worker_counts = [int(w) for w in os.environ.get("HARNESS_WORKERS", "1,2").split(",") if w.strip()]
    # HARNESS_INSTANCES=N takes every k-th instance so that N remain, across repositories.
    limit = int(os.environ.get("HARNESS_INSTANCES", "0") or 0)
    if 0 < limit < len(ids):
        step = len(ids) / limit
        ids = [ids[int(i * step)] for i in range(limit)]
    out_name = os.environ.get("BENCH_HARNESS_NAME", "harness")
    work = root / f"target/bench/{out_name}-work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log = work / "bench-harness.log"

    # The same images for both: mend by an image map, the official harness by its naming.
    image_map = {iid: details["images"][iid] for iid in ids}
    (work / "images.json").write_text(json.dumps(image_map, indent=1))
    for iid, img in image_map.items():
        subprocess.run(["docker", "tag", img, official_key(iid)], check=True)
    # The official loader wants the fields of the published data.
    ds = work / "dataset.jsonl"
    with ds.open("w") as f:
        for r in records:
            if r["instance_id"] in ids:
                r.setdefault("environment_setup_commit", r["base_commit"])
                r.setdefault("hints_text", "")
                r.setdefault("created_at", "")
                f.write(json.dumps(r) + "\n")

    runs = {}
    for workers in worker_counts:
        for harness in ("mend", "official"):
            name = f"{harness}-w{workers}"
            cwd = work / name
            cwd.mkdir()
            if harness == "mend":
                cmd = [mend, "swebench", "eval", "--predictions", "gold", "--dataset", ds, "--images", "local", "--image-map", work / "images.json", "--workers", workers, "--run-id", name, "--timeout", 1800]
            else:
                cmd = [py, root / "docker/swebench/bench/official_harness.py", "-d", ds, "-p", "gold", "--namespace", NAMESPACE, "--max_workers", workers, "--run_id", name, "--cache_level", "instance", "--timeout", 1800]
            wall = timed(cmd, cwd, log)
            logs = cwd / "logs/run_evaluation" / name
            rt = test_runtimes(logs)
            v = verdicts(logs, ids)
            runs[name] = {
                "harness": harness,
                "workers": workers,
                "wall_seconds": round(wall, 2),
                "test_seconds_total": round(sum(rt.values()), 2),
                # Outside the test runs: containers, patching, copying, grading, start-up.
                # Serial runs only: with workers the instances overlap.
                "overhead_per_instance_seconds": round((wall - sum(rt.values())) / len(ids), 2) if workers == 1 else None,
                "median_test_seconds": round(statistics.median(rt.values()), 2) if rt else None,
                "verdicts": v,
            }
    per_instance = []
    for iid in ids:
        row = {"instance_id": iid}
        for name, r in runs.items():
            row[name] = r["verdicts"].get(iid)
        row["agree"] = len({r["verdicts"].get(iid) for r in runs.values()}) == 1
        per_instance.append(row)
    by_repo = {}
    for r in records:
        if r["instance_id"] in ids:
            by_repo.setdefault(r["repo"], []).append(r["instance_id"])
    result = {
        "instances": len(ids),
        "graded_from": sources,
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "verdicts"} for k, v in runs.items()},
        "serial_overhead_per_instance_seconds": {h: runs[f"{h}-w1"]["overhead_per_instance_seconds"] for h in ("mend", "official") if f"{h}-w1" in runs},
        "wall_ratio_official_over_mend": {f"workers_{w}": round(runs[f"official-w{w}"]["wall_seconds"] / runs[f"mend-w{w}"]["wall_seconds"], 2) for w in worker_counts},
        "verdicts_agree": all(r["agree"] for r in per_instance),
        "agreeing": sum(1 for r in per_instance if r["agree"]),
        "per_repository": {repo: {"instances": len(v), "agree": sum(1 for r in per_instance if r["instance_id"] in v and r["agree"])} for repo, v in sorted(by_repo.items())},
        "per_instance": per_instance,
    }
    out = root / f"target/bench/{out_name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
