#!/usr/bin/env python3
"""`just bench-gold INSTANCES MIRRORS`: validate the harness on real instances built offline.

1. `mend swebench mine --instances INSTANCES`: build each instance's image offline
   (repository from MIRRORS, wheels downloaded on the host) and recover FAIL_TO_PASS /
   PASS_TO_PASS by running the test_patch's tests before and after the gold patch;
   instances whose tests do not discriminate are dropped with the reason.
2. `mend swebench eval --predictions gold` on what was mined: every gold patch must resolve.
3. `mend swebench eval` with empty patches, run for real (`--run-empty`): none may resolve.
   (Officially an empty patch is not run at all and counts as `empty_patch`.)

Official lists first: instances with official FAIL_TO_PASS/PASS_TO_PASS (OFFICIAL=FILE, by
default ../shared/data/swe-bench-verified.official-tests.jsonl when it exists) are graded with
them, including ones mine dropped for not discriminating on this Python; their mined lists are
compared with the official ones. An instance run on a Python other than the official one is
"not comparable" unless gold resolves and empty does not with the official lists.

MINED=FILE (and DROPPED=FILE) reuse the output of an earlier `mend swebench mine` instead of
step 1; MEND picks the binary, MEND_WHEELHOUSE the wheelhouse, MEND_BUILD_DIR the build contexts.

Writes target/bench/gold.json = {"instances": [{"instance_id", "repo", "python", "gold",
"empty", "lists", "comparable", "mined_vs_official", ...}], "dropped": [...]} and prints a table. Extra arguments after the two are
passed to every mend command (e.g. --instance-ids ..., --repos ..., --workers 2).
Standard library only; run from the workspace root.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_lists  # noqa: E402


def verdict(outcome):
    """mend's outcome record -> resolved/unresolved/empty_patch/error."""
    if outcome is None:
        return "error"
    kind = outcome.get("outcome")
    if kind in ("resolved", "unresolved", "empty_patch"):
        return kind
    if kind == "already_graded":
        return "resolved" if outcome.get("detail", {}).get("resolved") else "unresolved"
    return "error"


def run(cmd, log):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    started = time.time()
    with open(log, "a") as f:
        p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=f, text=True)
    print(p.stdout.strip(), flush=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}); see {log}")
    return time.time() - started


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: bench_gold.py INSTANCES MIRRORS [mend options...]")
    instances, mirrors, extra = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), sys.argv[3:]
    mend = os.environ.get("MEND", "target/release/mend")
    out = Path("target/bench")
    # BENCH_GOLD_NAME=gold-a: a batch of its own (target/bench/gold-a-work, gold-a.json), so
    # long runs finish in parts; gold_merge.py joins the parts into gold.json.
    name = os.environ.get("BENCH_GOLD_NAME", "gold")
    work = out / f"{name}-work"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "bench-gold.log"
    wheelhouse = os.environ.get("MEND_WHEELHOUSE", str(out / "wheelhouse"))
    images = ["--images", "build-offline", "--repo-mirrors", mirrors, "--wheelhouse", wheelhouse, "--build-dir", os.environ.get("MEND_BUILD_DIR", str(work / "build"))]
    mined, dropped_file = work / "mined.jsonl", work / "dropped.jsonl"
    times = {}
    if os.environ.get("MINED"):
        # Test lists recovered by an earlier `mend swebench mine` (its --dropped file beside it).
        mined = Path(os.environ["MINED"]).resolve()
        dropped_file = Path(os.environ.get("DROPPED", mined.with_suffix(".dropped.jsonl"))).resolve()
        print(f"using the mined instances in {mined}")
        # bench-harness reads them from here.
        shutil.copyfile(mined, work / "mined.jsonl")
    else:
        times["mine"] = run(
            [mend, "swebench", "mine", "--instances", instances, "--out", mined, "--dropped", dropped_file, "--run-id", "bench-mine", "--log-dir", work / "logs/mine", *images, *extra],
            log,
        )
    official_path = os.environ.get("OFFICIAL") or "../shared/data/swe-bench-verified.official-tests.jsonl"
    official = official_lists.load(official_path) if Path(official_path).exists() else {}
    if os.environ.get("OFFICIAL") and not official:
        sys.exit(f"OFFICIAL={official_path}: no official lists there")
    print(f"official lists: {len(official)} instance(s) from {official_path}" if official else "official lists: none (OFFICIAL=FILE to give some)")
    mined_records = [json.loads(l) for l in mined.read_text().splitlines() if l.strip()]
    dropped = [json.loads(l) for l in dropped_file.read_text().splitlines() if l.strip()] if dropped_file.exists() else []
    originals = [json.loads(l) for l in instances.read_text().splitlines() if l.strip()] if instances.suffix == ".jsonl" else json.loads(instances.read_text())
    records, lists, mined_lists = official_lists.graded_records(mined_records, originals, dropped, official)
    graded = work / "graded.jsonl"
    graded.write_text("".join(json.dumps(r) + "\n" for r in records))
    # Graded with official lists now: not dropped any more.
    dropped = [d for d in dropped if d["instance_id"] not in lists]
    common = ["--dataset", graded, "--log-dir", work / "logs/run_evaluation", "--report-dir", work, *images]
    # Selection flags were applied by mine; eval takes the mined file whole.
    eval_extra = []
    for i, a in enumerate(extra):
        if a in ("--workers", "--timeout") and i + 1 < len(extra):
            eval_extra += [a, extra[i + 1]]
    times["gold"] = run([mend, "swebench", "eval", "--predictions", "gold", "--run-id", "bench-gold", *common, *eval_extra], log)
    empty = work / "empty.jsonl"
    empty.write_text("".join(json.dumps({"instance_id": r["instance_id"], "model_name_or_path": "empty", "model_patch": ""}) + "\n" for r in records))
    times["empty"] = run([mend, "swebench", "eval", "--predictions", empty, "--run-empty", "--run-id", "bench-empty", *common, *eval_extra], log)

    gold = json.loads((work / "gold.bench-gold.mend.json").read_text())
    emp = json.loads((work / "empty.bench-empty.mend.json").read_text())
    rows = []
    for r in records:
        iid = r["instance_id"]
        env = gold["environments"].get(iid) or emp["environments"].get(iid) or {}
        g, e = verdict(gold["outcomes"].get(iid)), verdict(emp["outcomes"].get(iid))
        comparable, why = official_lists.comparability(env.get("python"), env.get("official_python"), lists[iid], g, e)
        rows.append(
            {
                "instance_id": iid,
                "repo": r["repo"],
                "python": env.get("python"),
                "suite": env.get("suite"),
                "official_python": env.get("official_python"),
                "gold": g,
                "empty": e,
                "lists": lists[iid],
                "comparable": comparable,
                "comparable_why": why,
                "mined_vs_official": official_lists.compare(mined_lists[iid], official[iid]) if iid in mined_lists else None,
                "empty_official": "empty_patch",
                "fail_to_pass": len(json.loads(r["FAIL_TO_PASS"])),
                "pass_to_pass": len(json.loads(r["PASS_TO_PASS"])),
                "image": gold.get("images", {}).get(iid),
                "environment_notes": env.get("notes", []),
            }
        )
    result = {"instances": rows, "dropped": dropped, "summary": summarize(rows, dropped, times)}
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"written: {out / f'{name}.json'}")


def summarize(rows, dropped, times):
    agree = sum(1 for x in rows if x["comparable"] and x["gold"] == "resolved" and x["empty"] != "resolved")
    vs = [x["mined_vs_official"] for x in rows if x["mined_vs_official"]]
    return {
            "validated": len(rows),
            "repositories": len({x["repo"] for x in rows}),
            "gold_resolved": sum(1 for x in rows if x["gold"] == "resolved"),
            "empty_not_resolved": sum(1 for x in rows if x["empty"] != "resolved"),
            "as_expected": agree,
            "graded_with_official_lists": sum(1 for x in rows if x["lists"] == "official"),
            "not_comparable": sum(1 for x in rows if not x["comparable"]),
            "mined_vs_official": {
                "compared": len(vs),
                "exact": sum(1 for v in vs if v["exact"]),
                "fail_to_pass_exact": sum(1 for v in vs if v["FAIL_TO_PASS"]["exact"]),
                "pass_to_pass_exact": sum(1 for v in vs if v["PASS_TO_PASS"]["exact"]),
                "naming_only": sum(1 for v in vs if not v["exact"] and all(v[k]["exact"] or v[k]["naming_only"] for k in ("FAIL_TO_PASS", "PASS_TO_PASS"))),
            },
            "dropped": len(dropped),
            "seconds": {k: round(v, 1) for k, v in times.items()},
        }


def print_table(result):
    rows, dropped = result["instances"], result["dropped"]
    print(f"\n{'instance':<40} {'repo':<22} {'python':<8} {'official':<8} {'lists':<8} {'gold':<11} {'empty':<11} F2P  P2P")
    for x in rows:
        flag = "" if x["comparable"] else "  NOT COMPARABLE"
        print(f"{x['instance_id']:<40} {x['repo']:<22} {x['python'] or '?':<8} {x['official_python'] or '?':<8} {x['lists']:<8} {x['gold']:<11} {x['empty']:<11} {x['fail_to_pass']:>3} {x['pass_to_pass']:>4}{flag}")
    for d in dropped:
        print(f"{d['instance_id']:<40} dropped: {d['reason'][:160]}")
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
