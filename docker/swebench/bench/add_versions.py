#!/usr/bin/env python3
"""Adds the SWE-bench `version` to public records that lack it (the held-out Verified records
written by crates/mend-index/benches/verified_records.py carry none), so that `mend swebench
mine` can pick each instance's spec.

    python3 docker/swebench/bench/add_versions.py RECORDS MIRRORS META [META...] > OUT.jsonl

Per record, first that applies (the method is kept in `version_source`):
  - `meta`: the version a META file (jsonl with instance_id and version, e.g.
    ../shared/data/swe-bench-verified.dev.meta.jsonl) gives for that instance;
  - `django`: major.minor of `VERSION` in django/__init__.py at base_commit (this is how the
    dataset's django versions read: 116 of 116 known ones agree);
  - `nearest`: the version of the known instance of the same repository whose base commit is
    nearest in commit time (astropy's dataset versions do not follow the repository's own version
    strings; its 3.0-5.2 specs are the same environment, so a near miss changes nothing that runs).
Records with neither a known version nor a mirror are written unchanged and named on stderr.
Standard library only.
"""
import json
import re
import subprocess
import sys
from pathlib import Path


def git(mirror, *args):
    p = subprocess.run(["git", "--git-dir", str(mirror), *args], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def commit_time(mirror, commit, cache={}):
    key = (str(mirror), commit)
    if key not in cache:
        out = git(mirror, "log", "-1", "--format=%ct", commit)
        cache[key] = int(out) if out and out.strip().isdigit() else None
    return cache[key]


def django_version(mirror, commit):
    src = git(mirror, "show", f"{commit}:django/__init__.py") or ""
    m = re.search(r"VERSION\s*=\s*\((\d+),\s*(\d+)", src)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def mirror_of(mirrors, repo):
    p = Path(mirrors) / repo.replace("/", "__")
    if (p / ".git").is_dir():  # a clone with a work tree rather than a bare mirror
        return p / ".git"
    return p if p.exists() else None


def jsonl(path):
    """The records of a jsonl file; a bad line is named and ends the run."""
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON ({e})")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    records_path, mirrors, metas = sys.argv[1], sys.argv[2], sys.argv[3:]
    known = {}
    for path in metas:
        for r in jsonl(path):
            if r.get("version"):
                known[r["instance_id"]] = (r["repo"], r["base_commit"], str(r["version"]))
    unresolved = []
    for r in jsonl(records_path):
        iid, repo = r["instance_id"], r["repo"]
        mirror = mirror_of(mirrors, repo)
        if r.get("version"):
            pass
        elif iid in known:
            r["version"], r["version_source"] = known[iid][2], "meta"
        elif mirror and repo == "django/django" and django_version(mirror, r["base_commit"]):
            r["version"], r["version_source"] = django_version(mirror, r["base_commit"]), "django"
        elif mirror and commit_time(mirror, r["base_commit"]) is not None:
            t = commit_time(mirror, r["base_commit"])
            near = [
                (abs(ct - t), v)
                for (rp, c, v) in known.values()
                if rp == repo and (ct := commit_time(mirror, c)) is not None
            ]
            if near:
                r["version"], r["version_source"] = min(near)[1], "nearest"
        if not r.get("version"):
            unresolved.append(iid)
        print(json.dumps(r))
    if unresolved:
        print(f"add_versions: no version for {len(unresolved)}: {' '.join(unresolved)}", file=sys.stderr)


if __name__ == "__main__":
    main()
