"""Tests of official_lists.py: `python3 -m unittest discover -s docker/swebench/bench`."""
import json
import tempfile
import unittest
from pathlib import Path

import official_lists as ol

OFFICIAL = {
    "django__django-11099": {
        "FAIL_TO_PASS": ["test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)"],
        "PASS_TO_PASS": ["test_help_text (auth_tests.test_validators.MinimumLengthValidatorTest)"],
    }
}


class OfficialLists(unittest.TestCase):
    def test_load_reads_lists_and_json_strings_and_names_a_bad_line(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "o.jsonl"
            p.write_text(json.dumps({"instance_id": "a", "FAIL_TO_PASS": ["t1"], "PASS_TO_PASS": "[\"t2\"]"}) + "\n\n")
            self.assertEqual(ol.load(p), {"a": {"FAIL_TO_PASS": ["t1"], "PASS_TO_PASS": ["t2"]}})
            p.write_text(json.dumps({"instance_id": "a", "FAIL_TO_PASS": ["t1"]}) + "\n")
            with self.assertRaises(SystemExit) as e:
                ol.load(p)
            self.assertIn("line 1", str(e.exception))

    def test_python_311_names_differ_from_36_by_naming_only(self):
        mined = {
            "FAIL_TO_PASS": ["test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests.test_ascii_validator)"],
            "PASS_TO_PASS": ["test_help_text (auth_tests.test_validators.MinimumLengthValidatorTest.test_help_text)", "test_extra (x.Y.test_extra)"],
        }
        c = ol.compare(mined, OFFICIAL["django__django-11099"])
        self.assertFalse(c["exact"])
        self.assertTrue(c["FAIL_TO_PASS"]["naming_only"])
        # An extra test is more than naming.
        self.assertFalse(c["PASS_TO_PASS"]["naming_only"])
        self.assertEqual(c["PASS_TO_PASS"]["only_mined"], 2)
        self.assertEqual(c["PASS_TO_PASS"]["only_official"], 1)
        self.assertTrue(ol.compare(OFFICIAL["django__django-11099"], OFFICIAL["django__django-11099"])["exact"])

    def test_another_python_is_comparable_only_when_official_lists_give_the_right_verdicts(self):
        self.assertTrue(ol.comparability("3.6.15", "3.6", "mined", "resolved", "unresolved")[0])
        ok, why = ol.comparability("3.11.2", "3.6", "official", "resolved", "unresolved")
        self.assertTrue(ok, why)
        ok, why = ol.comparability("3.11.2", "3.6", "official", "unresolved", "unresolved")
        self.assertFalse(ok)
        self.assertIn("not comparable", why)
        ok, why = ol.comparability("3.11.2", "3.6", "mined", "resolved", "unresolved")
        self.assertFalse(ok)
        self.assertIn("no official lists", why)

    def test_official_lists_replace_mined_ones_and_bring_back_non_discriminating_drops(self):
        mined = [
            {"instance_id": "django__django-11099", "FAIL_TO_PASS": "[\"m1\"]", "PASS_TO_PASS": "[]"},
            {"instance_id": "sympy__sympy-1", "FAIL_TO_PASS": "[\"s\"]", "PASS_TO_PASS": "[]"},
        ]
        official = dict(OFFICIAL, **{"django__django-2": {"FAIL_TO_PASS": ["o"], "PASS_TO_PASS": []}, "django__django-3": {"FAIL_TO_PASS": ["o"], "PASS_TO_PASS": []}})
        originals = [{"instance_id": "django__django-2", "patch": "p"}, {"instance_id": "django__django-3", "patch": "p"}]
        dropped = [
            {"instance_id": "django__django-2", "reason": "the tests do not discriminate: no test fails before the fix"},
            {"instance_id": "django__django-3", "reason": "the before run ended in an error: docker build failed"},
        ]
        records, lists, mined_lists = ol.graded_records(mined, originals, dropped, official)
        self.assertEqual(lists, {"django__django-11099": "official", "sympy__sympy-1": "mined", "django__django-2": "official"})
        self.assertEqual(json.loads(records[0]["FAIL_TO_PASS"]), OFFICIAL["django__django-11099"]["FAIL_TO_PASS"])
        self.assertEqual(mined_lists["django__django-11099"]["FAIL_TO_PASS"], ["m1"])
        self.assertEqual(json.loads(records[2]["FAIL_TO_PASS"]), ["o"])
        self.assertEqual(records[2]["patch"], "p")


if __name__ == "__main__":
    unittest.main()
