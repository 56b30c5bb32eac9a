//! `condense_test_output` on real logs of each runner mend meets: pytest (default, `-q -rA`,
//! `--tb=short`, SWE-bench's `--tb=no -rA`, a collection error), unittest, Django's
//! `runtests.py` and sympy's `bin/test`. Each failure must keep its test id, its exception
//! type and message, and the innermost repository frame with its source line, within
//! `max_chars`. The logs and how they were made: `tests/fixtures/test_logs/README.md`.
use std::path::PathBuf;

use mend_agent::condense::condense_test_output;

fn log(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = if name.starts_with("swebench/") {
        dir.join("../mend-swebench/tests/fixtures/logs")
            .join(name.trim_start_matches("swebench/"))
    } else {
        dir.join("tests/fixtures/test_logs").join(name)
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Condense `name` to `max` characters; every string in `must` has to survive.
fn check(name: &str, max: usize, must: &[&str]) -> String {
    let c = condense_test_output(&log(name), max);
    let n = c.chars().count();
    assert!(n <= max, "{name}: {n} characters > {max}:\n{c}");
    let missing: Vec<&&str> = must.iter().filter(|m| !c.contains(**m)).collect();
    assert!(missing.is_empty(), "{name}: lost {missing:?} in:\n{c}");
    c
}

/// What every rendering of `tests/test_calc.py` with a traceback must keep.
const CALC: &[&str] = &[
    // TypeError three frames deep: id, innermost repo frame, its source line, the exception.
    "tests/test_calc.py::CalcTests::test_scale",
    "calc/core.py:6",
    "return v * factor + \"0\"",
    "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    // The chained KeyError and the ValueError it came from.
    "KeyError: \"no number in 'x1'\"",
    "raise KeyError(f\"no number in {text!r}\") from e",
    "ValueError: invalid literal for int() with base 10: 'x1'",
    // An assertion with a multi-line diff.
    "AssertionError: {'a': 1, 'b': [1, 2, 3]} != {'a': 1, 'b': [1, 2, 4]}",
    "self.assertEqual({\"a\": 1, \"b\": [1, 2, 3]}, {\"a\": 1, \"b\": [1, 2, 4]})",
    // A 41-line message: its start survives, its end is cut and counted.
    "ValueError: cannot describe",
    "raise ValueError(\"cannot describe\\n\" + \"\\n\".join(lines))",
    "more lines",
    "4 failed, 1 passed",
];

fn assert_bounded_message(c: &str) {
    assert!(
        !c.contains("line 39: value 78"),
        "long message not bounded:\n{c}"
    );
}

#[test]
fn pytest_default_keeps_exceptions_and_repo_source() {
    let c = check("pytest_default.log", 8_000, CALC);
    assert_bounded_message(&c);
    // Fixture values and the test's own context lines are noise.
    assert!(!c.contains("self = <tests.test_calc"));
    assert!(!c.contains("collected 5 items"));
}

#[test]
fn pytest_quiet_ra_drops_passes() {
    let c = check("pytest_q_ra.log", 8_000, CALC);
    assert_bounded_message(&c);
    assert!(!c.contains("PASSED"), "{c}");
}

#[test]
fn pytest_tb_short_keeps_frames() {
    let c = check("pytest_tb_short.log", 8_000, CALC);
    assert_bounded_message(&c);
    // Short frames say which function: the innermost is kept.
    assert!(c.contains("calc/core.py:6: in _mul"), "{c}");
}

#[test]
fn pytest_tb_no_keeps_summary_messages() {
    // SWE-bench's own pytest command: no tracebacks, only the summary's messages.
    check(
        "pytest_tb_no_ra.log",
        8_000,
        &[
            "tests/test_calc.py::CalcTests::test_scale",
            "TypeError: unsupported ope",
            "KeyError: \"no number in 'x1'\"",
            "tests/test_calc.py::CalcTests::test_describe",
            "4 failed, 1 passed",
        ],
    );
}

#[test]
fn pytest_collection_error_keeps_import_error() {
    check(
        "pytest_collect_error.log",
        8_000,
        &[
            "tests/test_broken.py",
            "tests/test_broken.py:1",
            "from calc.core import missing_name",
            "ImportError: cannot import name 'missing_name' from 'calc.core'",
            "1 error during collection",
        ],
    );
}

#[test]
fn unittest_keeps_exception_and_file_lines() {
    let c = check(
        "unittest_discover_v.log",
        8_000,
        &[
            "ERROR: test_scale (tests.test_calc.CalcTests.test_scale)",
            "File \"/tmp/proj/calc/core.py\", line 6, in _mul",
            "return v * factor + \"0\"",
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
            "KeyError: \"no number in 'x1'\"",
            "ValueError: invalid literal for int() with base 10: 'x1'",
            "FAIL: test_equal (tests.test_calc.CalcTests.test_equal)",
            "AssertionError: {'a': 1, 'b': [1, 2, 3]} != {'a': 1, 'b': [1, 2, 4]}",
            "ValueError: cannot describe",
            "more lines",
            "Ran 5 tests",
            "FAILED (failures=1, errors=3)",
        ],
    );
    assert_bounded_message(&c);
    assert!(!c.contains("... ok"), "{c}");
}

#[test]
fn django_runner_keeps_exception_and_django_frame() {
    let c = check(
        "django_runtests.log",
        8_000,
        &[
            "ERROR: test_get_text_list (utils_tests.test_text.TestUtilsText.test_get_text_list)",
            "django/utils/text.py\", line 343, in get_text_list",
            "list_[-1] + 1,",
            "TypeError: can only concatenate str (not \"int\") to str",
            "FAIL: test_normalize_newlines",
            "utils_tests/test_text.py\", line 252, in test_normalize_newlines",
            "AssertionError: 'abc\\ndef\\r\\nghi\\r\\n' != 'abc\\ndef\\nghi\\n'",
            "Ran 16 tests",
            "FAILED (failures=1, errors=1)",
        ],
    );
    assert!(!c.contains("System check identified"), "{c}");
    assert!(!c.contains("Importing application"), "{c}");
}

#[test]
fn sympy_bin_test_keeps_exceptions() {
    let c = check(
        "swebench/sympy_mixed.log",
        8_000,
        &[
            "sympy/core/tests/test_mendfixture.py:test_errors",
            "test_mendfixture.py\", line 14, in test_errors",
            "raise ZeroDivisionError(\"bad\")",
            "ZeroDivisionError: bad",
            "sympy/core/tests/test_mendfixture.py::test_fails",
            "assert Symbol('x') == Symbol('y')",
            "AssertionError",
            "tests finished: 2 passed, 1 failed, 1 expected to fail, 1 exceptions",
        ],
    );
    assert!(!c.contains("random seed"), "{c}");
}

#[test]
fn harness_fixture_logs_keep_their_errors() {
    check(
        "swebench/pytest_verbose_long.log",
        8_000,
        &[
            "test_uses_broken",
            "raise RuntimeError(\"fixture exploded\")",
            "RuntimeError: fixture exploded",
            "tests/test_mix.py::test_fail",
            "AssertionError: one is not two - really",
            "tests/test_mix.py::TestGroup::test_even[1]",
            "assert n % 2 == 0",
            "2 failed, 6 passed, 1 skipped, 1 xfailed, 1 error",
        ],
    );
    // Colour codes are stripped; the summary's two-line message stays whole.
    let c = check(
        "swebench/pytest_astropy_color.log",
        8_000,
        &[
            "tests/test_mix.py::test_uses_broken",
            "RuntimeError: fixture exploded",
            "AssertionError: one is not two - really",
            "assert 1 == 2",
            "2 failed, 6 passed",
        ],
    );
    assert!(!c.contains('\u{1b}'), "{c}");
    check(
        "swebench/unittest_verbose.log",
        8_000,
        &[
            "ERROR: test_error (app_tests.tests.Basic.test_error)",
            "raise ValueError(\"boom\")",
            "ValueError: boom",
            "self.assertEqual(1, 2)",
            "AssertionError: 1 != 2",
            "FAILED (failures=1, errors=1, skipped=1, expected failures=1)",
        ],
    );
}

#[test]
fn a_long_failure_does_not_crowd_out_the_others() {
    // Four different errors in 1,000 characters: the 41-line message gets its share only.
    let c = check(
        "unittest_discover_v.log",
        1_000,
        &[
            "ERROR: test_describe",
            "ValueError: cannot describe",
            "ERROR: test_parse",
            "KeyError: \"no number in 'x1'\"",
            "ERROR: test_scale",
            "return v * factor + \"0\"",
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
            "FAIL: test_equal",
            "AssertionError: {'a': 1, 'b': [1, 2, 3]} != {'a': 1, 'b': [1, 2, 4]}",
            "FAILED (failures=1, errors=3)",
        ],
    );
    assert!(!c.contains("not shown"), "{c}");
    // Too little room for all: the first ones are shown and the rest counted.
    let c = check("unittest_discover_v.log", 500, &["ERROR: test_describe"]);
    assert!(c.contains("more failing tests not shown"), "{c}");
}

/// Failure ids `test_many[N]` shown in a condensed view.
fn shown(c: &str) -> Vec<usize> {
    c.lines()
        .filter_map(|l| l.strip_prefix("FAILED tests/test_many.py::test_many["))
        .filter_map(|l| l.split(']').next()?.parse().ok())
        .collect()
}

#[test]
fn many_failures_share_the_budget_and_count_the_rest() {
    let log = log("pytest_many_q.log");
    for max in [8_000, 2_000, 700] {
        let c = condense_test_output(&log, max);
        assert!(c.chars().count() <= max, "{max}: {c}");
        let ids = shown(&c);
        assert!(!ids.is_empty(), "{max}: {c}");
        assert_eq!(ids[0], 0, "{c}");
        // The first failure keeps its exception; the others, all the same, point to it.
        let blocks: Vec<&str> = c.split("\nFAILED tests/test_many.py::").collect();
        assert!(
            blocks[0].contains("TypeError: unsupported operand type(s)"),
            "{max}: {c}"
        );
        for b in blocks.iter().take(ids.len()).skip(1) {
            assert!(
                b.contains("(same error as FAILED tests/test_many.py::test_many[0])"),
                "{max}: {b}"
            );
        }
        if ids.len() < 30 {
            let note = format!("{} more failing tests not shown", 30 - ids.len());
            assert!(c.contains(&note), "{max}: no `{note}` in:\n{c}");
        }
        assert!(c.contains("30 failed"), "{max}: {c}");
    }
    // With room enough, all are named and the innermost frame's source line is kept.
    let c = condense_test_output(&log, 8_000);
    assert!(c.contains("return v * factor + \"0\""), "{c}");
    assert_eq!(shown(&c).len(), 30, "{c}");
}

#[test]
fn unknown_output_falls_back_to_its_tail() {
    let out = (0..200)
        .map(|i| format!("make: step {i}\n"))
        .collect::<String>();
    let c = condense_test_output(&out, 500);
    assert!(c.chars().count() <= 500);
    assert!(c.contains("make: step 199"), "{c}");
}

#[test]
fn a_bare_traceback_is_kept() {
    // A crash before any test ran (an import error in a test runner script).
    let out = "Traceback (most recent call last):\n  File \"/usr/lib/python3.11/runpy.py\", line 198, in _run_module_as_main\n    return _run_code(code, main_globals, None,\n  File \"/testbed/pkg/mod.py\", line 4, in <module>\n    import missing_dep\nModuleNotFoundError: No module named 'missing_dep'\n";
    let c = condense_test_output(out, 8_000);
    assert!(c.contains("File \"/testbed/pkg/mod.py\", line 4"), "{c}");
    assert!(c.contains("import missing_dep"), "{c}");
    assert!(
        c.contains("ModuleNotFoundError: No module named 'missing_dep'"),
        "{c}"
    );
}
