#!/usr/bin/env python3
"""Candidate pools for `just bench-select`, made without a model.

For each instance of a mined SWE-bench file (test lists filled in), five candidates:

- gold: the instance's own patch;
- empty: no change;
- minus_hunk: gold with one of its change blocks left out (a hunk when it has several);
- mutated: gold with one condition, operator or constant of its added lines changed;
- plus_break: gold plus a change to a function the instance's tests use, outside gold's
  hunks, that makes it raise (a change that breaks existing tests).

The pool is shuffled with a fixed seed per instance. Whether a candidate is right is not
decided here: the benchmark grades every candidate with the harness and the official tests.

usage: select_pools.py MINED MIRRORS OUT [--seed N]
Standard library and git only; reads the repository from MIRRORS/<owner>__<name>.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = ["gold", "empty", "minus_hunk", "mutated", "plus_break"]


def git(args, cwd=None, input=None, check=True):
    p = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr.strip()}")
    return p


def mirror_of(mirrors, repo):
    for name in (repo.replace("/", "__"), repo.replace("/", "+") + "/repo"):
        p = Path(mirrors) / name
        if p.exists():
            return str(p.resolve())
    raise SystemExit(f"no mirror of {repo} in {mirrors} (expected {repo.replace('/', '__')})")


def split_patch(patch):
    """[(header_lines, [hunk_lines...])] per file; hunk_lines start with the @@ line."""
    files, cur, hunk = [], None, None
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            cur = [[line], []]
            files.append(cur)
            hunk = None
        elif cur is not None and line.startswith("@@"):
            hunk = [line]
            cur[1].append(hunk)
        elif hunk is not None:
            hunk.append(line)
        elif cur is not None:
            cur[0].append(line)
    return files


def join_patch(files):
    out = []
    for header, hunks in files:
        if not hunks:
            continue
        out.extend(header)
        for h in hunks:
            out.extend(h)
    return "\n".join(out) + "\n" if out else ""


def recount(hunk):
    """The @@ header of a hunk whose body changed (start lines kept; git apply finds offsets)."""
    m = re.match(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)", hunk[0])
    body = hunk[1:]
    old = sum(1 for l in body if l[:1] in (" ", "-") or l == "")
    new = sum(1 for l in body if l[:1] in (" ", "+") or l == "")
    return [f"@@ -{m.group(1)},{old} +{m.group(2)},{new} @@{m.group(3)}"] + body


def blocks(hunk):
    """Index ranges of the change blocks (runs of -/+ lines) in a hunk's body."""
    out, start = [], None
    body = hunk[1:]
    for i, l in enumerate(body + [" "]):
        changed = l[:1] in ("-", "+") and not l.startswith("\\")
        if changed and start is None:
            start = i
        elif not changed and start is not None:
            out.append((start, i))
            start = None
    return out


def drop_block(hunk, rng_block):
    s, e = rng_block
    body = hunk[1:]
    new = []
    for i, l in enumerate(body):
        if s <= i < e:
            if l.startswith("-"):
                new.append(" " + l[1:])
            # '+' lines of the block are left out
        else:
            new.append(l)
    return recount([hunk[0]] + new)


def minus_hunk(patch, rng):
    files = split_patch(patch)
    hunks = [(fi, hi) for fi, (_, hs) in enumerate(files) for hi in range(len(hs))]
    if len(hunks) >= 2:
        fi, hi = rng.choice(hunks)
        files[fi][1].pop(hi)
        return join_patch(files)
    fi, hi = hunks[0]
    bl = blocks(files[fi][1][hi])
    if len(bl) >= 2:
        files[fi][1][hi] = drop_block(files[fi][1][hi], rng.choice(bl))
        return join_patch(files)
    # One block: leave out its last added line.
    h = files[fi][1][hi]
    plus = [i for i, l in enumerate(h) if i > 0 and l.startswith("+")]
    if len(plus) < 2:
        return None
    del h[plus[-1]]
    files[fi][1][hi] = recount(h)
    return join_patch(files)


MUTATIONS = [
    (r" == ", " != "),
    (r" != ", " == "),
    (r" is not ", " is "),
    (r" is None", " is not None"),
    (r" not in ", " in "),
    (r" <= ", " < "),
    (r" >= ", " > "),
    (r" < ", " <= "),
    (r" > ", " >= "),
    (r" and ", " or "),
    (r" or ", " and "),
    (r"\bif not ", "if "),
    (r"\bTrue\b", "False"),
    (r"\bFalse\b", "True"),
    (r" \+ 1\b", " - 1"),
    (r" - 1\b", " + 1"),
    (r" in ", " not in "),
    (r"(?<![\w.])([0-9]+)(?![\w.])", None),  # an integer constant, plus one
    (r"\b0o[0-7]+\b", "0o777"),
    (r"(?<==)(\w+)(?=[,)])", "None"),  # a keyword argument's value
    (r"'(\w+)'", "'\\1_'"),  # a string constant
    (r"\breturn (?!None\b)\S.*", "return None"),
]


def mutated(patch, rng, skip=None):
    lines = patch.splitlines()
    sites = []
    for i, l in enumerate(lines):
        if not l.startswith("+") or l.startswith("+++"):
            continue
        code = l[1:].strip()
        if not code or code.startswith("#") or code.startswith(('"', "'")):
            continue
        for k, (pat, _) in enumerate(MUTATIONS):
            for m in re.finditer(pat, l[1:]):
                sites.append((i, k, m.start() + 1, m.end() + 1))
    if skip is not None:
        sites = [x for x in sites if x[:2] != skip]
    if not sites:
        return None
    # Conditions and operators before constants: they are what the issue asks for.
    best = min(k for _, k, _, _ in sites)
    i, k, s, e = rng.choice([x for x in sites if x[1] == best])
    pat, rep = MUTATIONS[k]
    old = lines[i][s:e]
    new = str(int(old) + 1) if rep is None else re.sub(pat, rep, old)
    lines[i] = lines[i][:s] + new + lines[i][e:]
    mutated.last = (i, k)
    return "\n".join(lines) + "\n"


def changed_ranges(patch):
    """path -> [(first, last)] post-image line ranges of gold's hunks."""
    out = {}
    for header, hunks in split_patch(patch):
        path = header[0].rsplit(" b/", 1)[-1]
        for h in hunks:
            m = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", h[0])
            start, n = int(m.group(1)), int(m.group(2) or 1)
            out.setdefault(path, []).append((start, start + n))
    return out


def functions(text):
    """(name, def_line, body_line, indent) of each function (0-based lines)."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = re.match(r"(\s*)(?:async\s+)?def\s+(\w+)\s*\(", lines[i])
        if not m:
            i += 1
            continue
        depth, j = 0, i
        while j < len(lines):
            depth += lines[j].count("(") + lines[j].count("[") - lines[j].count(")") - lines[j].count("]")
            if depth <= 0 and lines[j].rstrip().endswith(":"):
                break
            j += 1
        k = j + 1
        while k < len(lines) and not lines[k].strip():
            k += 1
        if k < len(lines):
            ind = re.match(r"\s*", lines[k]).group(0)
            if len(ind) > len(m.group(1)):
                out.append((m.group(2), i, k, ind))
        i = j + 1
    return out


def plus_break(repo_dir, patch, test_text):
    """gold + `raise` at the top of the function of gold's files the tests name most."""
    ranges = changed_ranges(patch)
    best = None
    for path, rs in ranges.items():
        f = Path(repo_dir) / path
        if not f.exists() or not path.endswith(".py"):
            continue
        text = f.read_text()
        for name, d, body, ind in functions(text):
            if name.startswith("__") and name != "__init__":
                continue
            if any(a - 3 <= d + 1 <= b + 3 or a <= body + 1 <= b for a, b in rs):
                continue
            uses = len(re.findall(r"\b%s\b" % re.escape(name), test_text))
            # Named by the tests first; else any function of the file (uses 0).
            if best is None or uses > best[0]:
                best = (uses, path, body, ind)
    if best is None:
        return None
    _, path, body, ind = best
    f = Path(repo_dir) / path
    lines = f.read_text().splitlines(keepends=True)
    lines.insert(body, f'{ind}raise RuntimeError("not supported here")\n')
    f.write_text("".join(lines))
    diff = git(["diff", "--no-color", "--no-ext-diff"], cwd=repo_dir).stdout
    git(["checkout", "-q", "--", path], cwd=repo_dir)
    return diff


def check_applies(repo_dir, patch):
    if not patch.strip():
        return True
    return git(["apply", "--check", "-"], cwd=repo_dir, input=patch, check=False).returncode == 0


def canonical(repo_dir, patch):
    """The patch as `git diff` writes it after applying (None when it does not apply)."""
    if not patch.strip():
        return ""
    if git(["apply", "-"], cwd=repo_dir, input=patch, check=False).returncode != 0:
        return None
    diff = git(["diff", "--no-color", "--no-ext-diff"], cwd=repo_dir).stdout
    git(["checkout", "-q", "--", "."], cwd=repo_dir)
    return diff


def pool_for(inst, mirrors, seed):
    mirror = mirror_of(mirrors, inst["repo"])
    rng = random.Random(f"{seed}:{inst['instance_id']}")
    gold = inst["patch"]
    touched = sorted(set(re.findall(r"^diff --git a/\S+ b/(\S+)", gold, re.M)))
    tests = sorted(set(re.findall(r"^diff --git a/\S+ b/(\S+)", inst["test_patch"], re.M)))
    with tempfile.TemporaryDirectory(prefix="mend-select-pool-") as d:
        # Only the files the patches touch, at the base commit.
        git(["init", "-q", d])
        for path in touched:
            blob = git(["--git-dir", mirror, "show", f"{inst['base_commit']}:{path}"], check=False)
            if blob.returncode == 0:
                p = Path(d) / path
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(blob.stdout)
        git(["add", "-A"], cwd=d)
        git(["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-m", "base"], cwd=d)
        # What the tests use: the touched test files at base and the test patch itself.
        test_text = "\n".join(
            git(["--git-dir", mirror, "show", f"{inst['base_commit']}:{t}"], check=False).stdout for t in tests
        ) + inst["test_patch"]
        gold_c = canonical(d, gold)
        if gold_c is None:
            raise RuntimeError(f"{inst['instance_id']}: the gold patch does not apply to the copied files")
        made = {"gold": gold_c, "empty": ""}
        for kind, fn in (("minus_hunk", minus_hunk), ("mutated", mutated)):
            p = fn(gold_c, rng)
            made[kind] = canonical(d, p) if p else None
        if made["minus_hunk"] in (None, "", gold_c) and made["mutated"]:
            # One change block only (leaving it out is the empty patch): a second mutant
            # at another site stands in, so every pool has five candidates.
            p = mutated(gold_c, rng, skip=mutated.last)
            made["minus_hunk"] = canonical(d, p) if p else None
            if made["minus_hunk"] is not None:
                made["mutated_2"] = made.pop("minus_hunk")
        # plus_break is made over gold applied.
        git(["apply", "-"], cwd=d, input=gold_c)
        git(["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "gold"], cwd=d)
        extra = plus_break(d, gold_c, test_text)
        git(["reset", "-q", "--hard", "HEAD~1"], cwd=d)
        if extra:
            # gold and the break as one patch against the base.
            git(["apply", "-"], cwd=d, input=gold_c)
            git(["apply", "-"], cwd=d, input=extra)
            made["plus_break"] = git(["diff", "--no-color", "--no-ext-diff"], cwd=d).stdout
            git(["checkout", "-q", "--", "."], cwd=d)
        else:
            made["plus_break"] = None
    missing = [k for k, v in made.items() if v is None or (k != "empty" and v == gold_c and k != "gold")]
    cands = [{"kind": k, "patch": v} for k, v in made.items() if k not in missing]
    missing = [k for k in KINDS if k not in made or k in missing]
    rng.shuffle(cands)
    return cands, missing


def main():
    args = sys.argv[1:]
    seed = 14
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 3:
        sys.exit("usage: select_pools.py MINED MIRRORS OUT [--seed N]")
    mined, mirrors, out = args
    rows = []
    for line in Path(mined).read_text().splitlines():
        if not line.strip():
            continue
        inst = json.loads(line)
        cands, missing = pool_for(inst, mirrors, seed)
        rows.append({"instance_id": inst["instance_id"], "repo": inst["repo"], "candidates": cands, "missing": missing})
        print(f"{inst['instance_id']:<36} " + " ".join(c["kind"] for c in cands) + (f"  (could not make: {', '.join(missing)})" if missing else ""))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"written: {out} ({len(rows)} pools)")


if __name__ == "__main__":
    main()
