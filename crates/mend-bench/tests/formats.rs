//! The loaders on small files in each benchmark's published format, and bad input refused
//! with a message naming what is wrong. No Docker here (see sandbox.rs for execution).
mod support;

use mend_bench::{Benchmark, Check, Code, load, read_samples};
use serde_json::json;

#[test]
fn mbpp_problems_are_read_with_their_asserts() {
    let dir = tempfile::tempdir().unwrap();
    let ps = load(Benchmark::Mbpp, &support::mbpp(dir.path())).unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].task_id, "2");
    assert_eq!(ps[0].entry_point.as_deref(), Some("similar_elements"));
    assert!(!ps[0].prompt_is_code);
    assert!(
        ps[0].prompt.contains("shared elements")
            && ps[0].prompt.contains("assert set(similar_elements")
    );
    match &ps[1].check {
        Check::Script { test } => assert!(test.contains("assert is_not_prime(35) == True")),
        other => panic!("expected a script check, got {other:?}"),
    }
    assert!(matches!(&ps[1].canonical, Some(Code::Solution(c)) if c.contains("def is_not_prime")));
}

#[test]
fn evalplus_problems_compare_with_the_reference_on_all_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let ps = load(
        Benchmark::EvalPlusHumanEval,
        &support::humaneval_plus(dir.path()),
    )
    .unwrap();
    assert_eq!(ps.len(), 2);
    match &ps[0].check {
        Check::Reference {
            reference,
            entry_point,
            inputs,
            atol,
        } => {
            assert!(
                reference.starts_with("\n\ndef truncate_number")
                    && reference.ends_with("return number % 1.0\n")
            );
            assert_eq!(entry_point, "truncate_number");
            assert_eq!(inputs.len(), 7, "base and plus inputs");
            assert_eq!(*atol, 1e-6);
        }
        other => panic!("expected a reference check, got {other:?}"),
    }
    assert!(matches!(ps[0].canonical, Some(Code::Completion(_))));
    let mp = load(Benchmark::EvalPlusMbpp, &support::mbpp_plus(dir.path())).unwrap();
    assert_eq!(mp[0].task_id, "Mbpp/6");
    assert!(
        matches!(&mp[0].canonical, Some(Code::Solution(s)) if s.contains("def differ_At_One_Bit_Pos"))
    );
}

#[test]
fn livecodebench_reads_compressed_private_tests_and_functional_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ps = load(
        Benchmark::LiveCodeBench,
        &support::livecodebench(dir.path()),
    )
    .unwrap();
    assert_eq!(ps[0].task_id, "1000_A");
    match &ps[0].check {
        Check::Stdio { cases } => {
            assert_eq!(
                cases.len(),
                3,
                "one public and two private (compressed) tests"
            );
            assert_eq!(cases[1], ("21\n".to_string(), "42\n".to_string()));
        }
        other => panic!("expected stdio tests, got {other:?}"),
    }
    match &ps[1].check {
        Check::Calls { func, class, cases } => {
            assert_eq!(func, "addTwo");
            assert_eq!(class.as_deref(), Some("Solution"));
            assert_eq!(cases[0], (json!([1, [1, 2]]), json!([2, 3])));
        }
        other => panic!("expected functional tests, got {other:?}"),
    }
    assert!(ps[1].prompt.contains("class Solution"));
}

#[test]
fn apps_reads_stdio_and_call_based_problems() {
    let dir = tempfile::tempdir().unwrap();
    let ps = load(Benchmark::Apps, &support::apps(dir.path())).unwrap();
    assert_eq!(ps[0].task_id, "4000");
    assert!(matches!(&ps[0].check, Check::Stdio { cases } if cases.len() == 2));
    match &ps[1].check {
        Check::Calls { func, class, cases } => {
            assert_eq!(func, "largest");
            assert_eq!(*class, None);
            assert_eq!(cases[0], (json!([[1, 5, 2]]), json!([5])));
        }
        other => panic!("expected call-based tests, got {other:?}"),
    }
}

#[test]
fn bad_files_are_refused_with_the_record_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = support::write_jsonl(
        &dir.path().join("he.jsonl"),
        &[
            json!({"task_id": "A/0", "prompt": "def f():\n", "test": "", "entry_point": "f"}),
            json!({"task_id": "A/1", "prompt": "def g():\n", "entry_point": "g"}),
        ],
    );
    let e = load(Benchmark::HumanEval, &p).unwrap_err().to_string();
    assert!(
        e.contains("record 2") && e.contains("`test` is missing"),
        "{e}"
    );

    std::fs::write(dir.path().join("broken.jsonl"), "{\"task_id\": \n").unwrap();
    let e = load(Benchmark::HumanEval, &dir.path().join("broken.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") || e.contains("record 1"), "{e}");
    assert!(e.contains("not JSON"), "{e}");

    let dup = support::write_jsonl(
        &dir.path().join("dup.jsonl"),
        &[
            json!({"task_id": "A/0", "prompt": "", "test": "", "entry_point": "f"}),
            json!({"task_id": "A/0", "prompt": "", "test": "", "entry_point": "f"}),
        ],
    );
    let e = load(Benchmark::HumanEval, &dup).unwrap_err().to_string();
    assert!(e.contains("appears twice"), "{e}");

    let e = load(Benchmark::HumanEval, &dir.path().join("missing.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.jsonl"), "{e}");

    // LiveCodeBench private tests that are neither JSON nor compressed JSON.
    let lcb = support::write_jsonl(
        &dir.path().join("lcb.jsonl"),
        &[
            json!({"question_id": "1", "question_content": "x", "starter_code": "",
                 "public_test_cases": "[]", "private_test_cases": "not base64 at all!", "metadata": "{}"}),
        ],
    );
    let e = load(Benchmark::LiveCodeBench, &lcb)
        .unwrap_err()
        .to_string();
    assert!(e.contains("private_test_cases"), "{e}");
}

#[test]
fn samples_name_their_line_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let ps = load(Benchmark::HumanEval, &support::humaneval_small(dir.path())).unwrap();
    let s = support::write_jsonl(
        &dir.path().join("s.jsonl"),
        &[
            json!({"task_id": "Test/0", "completion": "    return 1\n"}),
            json!({"task_id": "Test/1", "solution": "def double(x):\n    return x\n"}),
            json!({"task_id": "Test/0", "completion": "    return 2\n"}),
        ],
    );
    let samples = read_samples(&s, &ps).unwrap();
    assert_eq!(
        samples.iter().map(|s| s.completion_id).collect::<Vec<_>>(),
        [0, 0, 1]
    );
    assert!(matches!(samples[1].code, Code::Solution(_)));
    let bad = support::write_jsonl(
        &dir.path().join("bad.jsonl"),
        &[
            json!({"task_id": "Test/0", "completion": "x"}),
            json!({"task_id": "Nope/9", "completion": "x"}),
        ],
    );
    let e = read_samples(&bad, &ps).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("Nope/9"), "{e}");
    let bad = support::write_jsonl(
        &dir.path().join("bad2.jsonl"),
        &[json!({"task_id": "Test/0"})],
    );
    let e = read_samples(&bad, &ps).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("completion"), "{e}");
}
