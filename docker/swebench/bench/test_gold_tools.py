"""Tests of gold_merge.py, harness_merge.py and add_versions.py: `python3 -m unittest discover -s docker/swebench/bench`."""
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import gold_merge
import harness_merge

HERE = Path(__file__).resolve().parent


def row(iid, gold="resolved", empty="unresolved", comparable=True):
    return {"instance_id": iid, "repo": iid.split("__")[0] + "/x", "python": "3.9.2", "suite": "bullseye", "official_python": "3.6", "gold": gold, "empty": empty, "lists": "mined", "comparable": comparable, "mined_vs_official": None, "fail_to_pass": 1, "pass_to_pass": 2}


class GoldMerge(unittest.TestCase):
    def test_batches_join_and_a_later_keep_beats_an_earlier_drop(self):
        a = {"instances": [row("a__1"), row("b__1", gold="unresolved")], "dropped": [{"instance_id": "c__1", "reason": "build failed"}, {"instance_id": "d__1", "reason": "no tests"}], "summary": {"seconds": {"mine": 10}}}
        b = {"instances": [row("c__1")], "dropped": [], "summary": {"seconds": {"mine": 5, "gold": 1}}}
        m = gold_merge.merge([a, b])
        self.assertEqual(sorted(x["instance_id"] for x in m["instances"]), ["a__1", "b__1", "c__1"])
        self.assertEqual([d["instance_id"] for d in m["dropped"]], ["d__1"])
        s = m["summary"]
        self.assertEqual((s["validated"], s["repositories"], s["gold_resolved"], s["as_expected"], s["dropped"]), (3, 3, 2, 2, 1))
        self.assertEqual(s["seconds"], {"mine": 15, "gold": 1})

    def test_a_file_that_is_not_a_result_is_named(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "x.json"
            p.write_text("[1]")
            r = subprocess.run([sys.executable, str(HERE / "gold_merge.py"), str(p), "--out", str(Path(d) / "o.json")], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("x.json", r.stderr)


class HarnessMerge(unittest.TestCase):
    def run_of(self, verdicts, ratio):
        rows = [{"instance_id": i, "mend-w2": m, "official-w2": o, "agree": m == o} for i, (m, o) in verdicts.items()]
        return {"per_instance": rows, "wall_ratio_official_over_mend": {"workers_2": ratio}}

    def test_runs_add_up_per_repository_and_a_rerun_counts_once(self):
        a = self.run_of({"django__django-1": ("resolved", "resolved"), "sympy__sympy-2": ("resolved", "unresolved")}, 2.0)
        b = self.run_of({"sympy__sympy-2": ("resolved", "resolved"), "psf__requests-3": ("unresolved", "unresolved")}, 1.5)
        m = harness_merge.merge([("harness-a", a), ("harness-b", b)])
        self.assertEqual((m["instances"], m["agreeing"], m["verdicts_agree"], m["repositories"]), (3, 3, True, 3))
        self.assertEqual(m["per_repository"]["sympy/sympy"], {"instances": 1, "agree": 1})
        self.assertEqual(m["wall_ratio_official_over_mend"], {"harness-a": {"workers_2": 2.0}, "harness-b": {"workers_2": 1.5}})

    def test_a_file_that_is_not_a_result_is_named(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "gold-a.json"
            p.write_text(json.dumps({"instances": []}))
            r = subprocess.run([sys.executable, str(HERE / "harness_merge.py"), str(p), "--out", str(Path(d) / "o.json")], capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("gold-a.json: not a bench-harness result", r.stderr)
            self.assertFalse((Path(d) / "o.json").exists())


class AddVersions(unittest.TestCase):
    def git(self, d, *a):
        return subprocess.run(["git", "-C", str(d), "-c", "user.name=t", "-c", "user.email=t@e", *a], check=True, capture_output=True, text=True).stdout.strip()

    def commit(self, d, path, text, when):
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_text(text)
        self.git(d, "add", "-A")
        subprocess.run(["git", "-C", str(d), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "c", "--date", when], check=True, env={"GIT_COMMITTER_DATE": when, "PATH": "/usr/bin:/bin"})
        return self.git(d, "rev-parse", "HEAD")

    def test_meta_then_django_version_then_the_nearest_known_commit(self):
        with tempfile.TemporaryDirectory() as t:
            t = Path(t)
            mirrors = t / "m"
            dj, ap = mirrors / "django__django", mirrors / "astropy__astropy"
            for d in (dj, ap):
                d.mkdir(parents=True)
                self.git(d, "init", "-q")
            dj1 = self.commit(dj, "django/__init__.py", "VERSION = (3, 0, 0, 'alpha', 0)\n", "2019-01-01T00:00:00")
            a1 = self.commit(ap, "a.txt", "1", "2018-01-01T00:00:00")
            a2 = self.commit(ap, "a.txt", "2", "2022-01-01T00:00:00")
            a3 = self.commit(ap, "a.txt", "3", "2022-02-01T00:00:00")
            meta = t / "meta.jsonl"
            meta.write_text("".join(json.dumps(r) + "\n" for r in [
                {"instance_id": "astropy__astropy-1", "repo": "astropy/astropy", "base_commit": a1, "version": "1.3"},
                {"instance_id": "astropy__astropy-2", "repo": "astropy/astropy", "base_commit": a2, "version": "5.0"},
            ]))
            recs = t / "r.jsonl"
            recs.write_text("".join(json.dumps(r) + "\n" for r in [
                {"instance_id": "astropy__astropy-1", "repo": "astropy/astropy", "base_commit": a1},
                {"instance_id": "django__django-9", "repo": "django/django", "base_commit": dj1},
                {"instance_id": "astropy__astropy-3", "repo": "astropy/astropy", "base_commit": a3},
                {"instance_id": "psf__requests-1", "repo": "psf/requests", "base_commit": "abc1234"},
            ]))
            r = subprocess.run([sys.executable, str(HERE / "add_versions.py"), str(recs), str(mirrors), str(meta)], capture_output=True, text=True, check=True)
            got = {x["instance_id"]: (x.get("version"), x.get("version_source")) for x in map(json.loads, r.stdout.splitlines())}
            self.assertEqual(got, {
                "astropy__astropy-1": ("1.3", "meta"),
                "django__django-9": ("3.0", "django"),
                "astropy__astropy-3": ("5.0", "nearest"),
                "psf__requests-1": (None, None),
            })
            self.assertIn("psf__requests-1", r.stderr)


if __name__ == "__main__":
    unittest.main()
