"""Official test lists first (issue 19, item 3): instances that have official
FAIL_TO_PASS/PASS_TO_PASS are graded with them, mined lists are compared with them, and a run
on a Python other than the official one counts only when gold and empty come out right with
the official lists. Standard library only; used by bench_gold.py, tested by
test_official_lists.py (`python3 -m unittest discover -s docker/swebench/bench`).
"""
import json
import re
from pathlib import Path


def load(path):
    """instance_id -> {"FAIL_TO_PASS": [...], "PASS_TO_PASS": [...]} (lists or JSON strings)."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            iid = r["instance_id"]
            out[iid] = {k: as_list(r[k], f"{path}: line {n}: {k}") for k in ("FAIL_TO_PASS", "PASS_TO_PASS")}
        except (ValueError, KeyError) as e:
            raise SystemExit(f"{path}: line {n}: not an official-lists record ({e!r})")
    return out


def as_list(v, where="test list"):
    if isinstance(v, str):
        v = json.loads(v)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"{where}: expected a list of test names")
    return v


_UNITTEST = re.compile(r"^(?P<test>\S+) \((?P<cls>[\w.]+?)(?:\.(?P=test))?\)$")


def unittest_name(name):
    """Python 3.11's `test_x (mod.Class.test_x)` and 3.6's `test_x (mod.Class)` as one form."""
    m = _UNITTEST.match(name)
    return f"{m['test']} ({m['cls']})" if m else name


def compare(mined, official, examples=5):
    """How mined lists differ from official ones (both: {"FAIL_TO_PASS": [...], "PASS_TO_PASS": [...]})."""
    out = {}
    for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        a, b = set(mined[key]), set(official[key])
        only_mined, only_official = sorted(a - b), sorted(b - a)
        out[key] = {
            "exact": a == b,
            "mined": len(a),
            "official": len(b),
            "only_mined": len(only_mined),
            "only_official": len(only_official),
            "examples_only_mined": only_mined[:examples],
            "examples_only_official": only_official[:examples],
            # Equal once unittest's name forms are made one: the difference is naming only.
            "naming_only": a != b and {unittest_name(x) for x in a} == {unittest_name(x) for x in b},
        }
    out["exact"] = out["FAIL_TO_PASS"]["exact"] and out["PASS_TO_PASS"]["exact"]
    return out


def minor(version):
    """'3.11.2' -> '3.11'; None stays None."""
    if not version:
        return None
    return ".".join(str(version).split(".")[:2])


def comparability(python, official_python, lists, gold, empty):
    """(comparable, why) for one instance's verdicts (gold/empty: resolved/unresolved/...)."""
    right = gold == "resolved" and empty != "resolved"
    ran, official = minor(python), minor(official_python)
    if ran is None or official is None or ran == official:
        return True, "the official Python" if ran else "Python not reported"
    if lists == "official" and right:
        return True, f"Python {ran}, not the official {official}, but gold resolves and empty does not with the official lists"
    if lists == "official":
        return False, f"not comparable: Python {ran}, not the official {official}, and the official lists give gold {gold}, empty {empty}"
    return False, f"not comparable: Python {ran}, not the official {official}, and no official lists to check the verdicts with"


def graded_records(mined, instances, dropped, official):
    """The records to grade: mined ones, with official lists where there are some (the mined
    lists kept under `mined_lists`), plus instances mine dropped because their tests did not
    discriminate on this Python but that have official lists. Returns (records, which lists
    each id is graded with, the mined lists of ids graded with official ones)."""
    out, lists, mined_lists = [], {}, {}
    by_id = {r["instance_id"]: r for r in instances}
    for r in mined:
        iid = r["instance_id"]
        if iid in official:
            mined_lists[iid] = {k: as_list(r[k]) for k in ("FAIL_TO_PASS", "PASS_TO_PASS")}
            r = dict(r)
            r.update({k: json.dumps(official[iid][k]) for k in ("FAIL_TO_PASS", "PASS_TO_PASS")})
            lists[iid] = "official"
        else:
            lists[iid] = "mined"
        out.append(r)
    for d in dropped:
        iid = d["instance_id"]
        if iid in official and iid not in lists and iid in by_id and "do not discriminate" in d.get("reason", ""):
            r = dict(by_id[iid])
            r.update({k: json.dumps(official[iid][k]) for k in ("FAIL_TO_PASS", "PASS_TO_PASS")})
            out.append(r)
            lists[iid] = "official"
    return out, lists, mined_lists
