//! `just bench-select`: best-of-N's choice measured on real SWE-bench instances built offline.
//!
//! `cargo bench -p mend-swebench --bench select -- WORK [--workers N] [--timing INSTANCE_ID]`
//!
//! WORK holds (docker/swebench/bench/bench_select.py makes them): `mined.jsonl` (instances
//! with their test lists), `pools.jsonl` (candidates per instance, shuffled, made without a
//! model) and `images.json` (instance -> image, from the gold evaluation).
//!
//! 1. Truth: every candidate graded by the harness with the instance's tests (`evaluate`),
//!    except two known already: gold resolves (bench_select.py keeps only instances whose
//!    gold patch the harness resolved) and the empty patch does not (FAIL_TO_PASS are the
//!    tests that fail on the base commit: that is how they were found).
//! 2. Signals available at inference, each candidate in the instance's container: empty,
//!    does not apply, does not parse; the regression guard (the existing tests most related
//!    to the candidates' changes, picked from the index, run on the base commit and on
//!    the candidate). Nothing of the instance's tests is used.
//! 3. The choice (`mend_agent::select::choose`) in two modes: (a) inference only, (b) with
//!    the instance's FAIL_TO_PASS tests standing in for the agent's reproduction (an upper
//!    bound on the mechanism: one reproduction, known to fail on the base commit).
//!
//! 4. With `--timing ID`: the added cost and time of N = 1, 3, 5, `mend swebench run`'s own
//!    code (`run_agent`) on that instance with a scripted model (mend-llm's test server, priced as
//!    gpt-4o-mini) that applies the gold patch and writes a reproduction: the model's
//!    thinking time is not in it, only mend's (containers, index, checks, selection).
//!
//! Writes target/bench/select.json and prints a table.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mend_agent::candidates::parse_problem;
use mend_agent::select::{CandidateEvidence, Evidence, choose};
use mend_agent::verify::{RegressionSet, TestSuite, regressions, related_tests, run_regression};
use mend_index::{Index, IndexOptions};
use mend_sandbox::{DockerConfig, DockerEngine, DockerSandbox, Exec, Sandbox, UserChoice};
use mend_swebench::grading::ReportFile;
use mend_swebench::script::REPO_DIR;
use mend_swebench::suite::RepoSuite;
use mend_swebench::{EvalOptions, Outcome, PredictionsSource, instance_log_dir};
use mend_swebench::{Instance, LocalImages, Prediction, Specs, load_instances};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Pool {
    instance_id: String,
    candidates: Vec<PoolCandidate>,
}

#[derive(Deserialize, Clone)]
struct PoolCandidate {
    kind: String,
    patch: String,
}

/// What the harness said of one candidate.
#[derive(Clone, Default)]
struct Truth {
    resolved: bool,
    applied: bool,
    /// Every FAIL_TO_PASS test passed (the reproduction of mode b).
    fail_to_pass: bool,
}

/// One instance's checks: per candidate, the related tests, the seconds they took.
type Checked = (Vec<Signals>, RegressionSet, f64);

/// What the inference-side checks said of one candidate.
#[derive(Clone, Default, serde::Serialize, Deserialize)]
struct Signals {
    dropped: Option<String>,
    regressions: Option<Vec<String>>,
}

fn main() {
    let as_bench = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if !as_bench && args.is_empty() {
        // `cargo test --all-targets` runs every bench once: this one needs instances built
        // offline (hours here), so under test it only says so; the choice itself is tested
        // end to end by crates/mend/tests/swebench_select.rs and select_e2e.rs.
        eprintln!(
            "bench-select: not run under `cargo test` (it needs WORK from docker/swebench/bench/bench_select.py; `just bench-select`)"
        );
        return;
    }
    let Some(work) = args.first().map(PathBuf::from) else {
        eprintln!(
            "usage: select WORK [--workers N]  (WORK: mined.jsonl, pools.jsonl, images.json)"
        );
        std::process::exit(2);
    };
    let workers: usize = flag(&args, "--workers")
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(bench(&work, workers, flag(&args, "--timing"))) {
        eprintln!("bench-select: {e}");
        std::process::exit(1);
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn bench(work: &Path, workers: usize, timing_id: Option<String>) -> Result<(), String> {
    let dataset = load_instances(&work.join("mined.jsonl")).map_err(|e| e.to_string())?;
    let images = LocalImages::from_file(&work.join("images.json")).map_err(|e| e.to_string())?;
    let pools: Vec<Pool> = std::fs::read_to_string(work.join("pools.jsonl"))
        .map_err(|e| format!("reading pools.jsonl: {e}"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("pools.jsonl: {e}")))
        .collect::<Result<_, _>>()?;
    let by_id: BTreeMap<&str, &Instance> = dataset
        .iter()
        .map(|i| (i.instance_id.as_str(), i))
        .collect();
    let pools: Vec<&Pool> = pools
        .iter()
        .filter(|p| {
            by_id.contains_key(p.instance_id.as_str()) && images.map.contains_key(&p.instance_id)
        })
        .collect();
    if pools.is_empty() {
        return Err("no instance has a pool, a mined record and an image".into());
    }
    let k_max = pools.iter().map(|p| p.candidates.len()).max().unwrap_or(0);
    let specs = Arc::new(Specs::builtin());
    let images: Arc<dyn mend_swebench::ImageSource> = Arc::new(images);

    // 1. The truth: slot k of every pool graded in one evaluation run.
    let t_truth = Instant::now();
    let mut truth: BTreeMap<String, Vec<Truth>> = BTreeMap::new();
    for k in 0..k_max {
        let model = format!("pool-{k}");
        let preds: Vec<Prediction> = pools
            .iter()
            .filter_map(|p| {
                p.candidates
                    .get(k)
                    .filter(|c| !known(c))
                    .map(|c| Prediction {
                        instance_id: p.instance_id.clone(),
                        model_name_or_path: model.clone(),
                        model_patch: Some(c.patch.clone()),
                    })
            })
            .collect();
        let run_id = format!("select-{k}");
        let mut opts = EvalOptions::new(
            dataset.clone(),
            PredictionsSource::List(preds),
            run_id.clone(),
            images.clone(),
        );
        opts.workers = workers;
        opts.log_root = work.join("logs");
        opts.report_dir = work.to_path_buf();
        opts.run_empty_patches = true;
        opts.specs = specs.clone();
        eprintln!("grading slot {} of {k_max} ...", k + 1);
        let summary = if opts_empty(&opts) {
            None
        } else {
            Some(
                mend_swebench::evaluate(opts)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        };
        for p in &pools {
            if p.candidates.len() <= k {
                continue;
            }
            let inst = by_id[p.instance_id.as_str()];
            let c = &p.candidates[k];
            if known(c) {
                let gold = c.kind == "gold";
                truth.entry(p.instance_id.clone()).or_default().push(Truth {
                    resolved: gold,
                    applied: true,
                    fail_to_pass: gold,
                });
                continue;
            }
            let outcome = summary
                .as_ref()
                .and_then(|s| s.outcomes.get(&p.instance_id));
            let report = instance_log_dir(&work.join("logs"), &run_id, &model, &p.instance_id)
                .join("report.json");
            let f2p = std::fs::read_to_string(&report)
                .ok()
                .and_then(|t| serde_json::from_str::<ReportFile>(t.trim()).ok())
                .and_then(|r| r.get(&p.instance_id).cloned())
                .and_then(|r| r.tests_status)
                .map(|ts| {
                    let want = inst.fail_to_pass.as_ref().map(|v| v.len()).unwrap_or(0);
                    ts.fail_to_pass.failure.is_empty() && ts.fail_to_pass.success.len() == want
                })
                .unwrap_or(false);
            truth.entry(p.instance_id.clone()).or_default().push(Truth {
                resolved: outcome.is_some_and(|o| o.is_resolved()),
                applied: !matches!(
                    outcome,
                    Some(Outcome::PatchApplyFailed(_) | Outcome::PatchRejected(_))
                ),
                fail_to_pass: f2p,
            });
        }
    }
    let truth_secs = t_truth.elapsed().as_secs_f64();

    // 2. The inference-side checks, one container per instance.
    let engine = DockerEngine::connect().await.map_err(|e| e.to_string())?;
    let engine = &engine;
    let results: Vec<(String, Result<Checked, String>)> =
        futures_util::stream::iter(pools.iter().map(|p| {
            let inst = by_id[p.instance_id.as_str()];
            let specs = specs.clone();
            let images = images.clone();
            async move {
                // An instance's checks are kept as they finish (they take minutes each):
                // a run stopped half-way starts again where it stopped.
                let saved = work.join("checks").join(format!("{}.json", p.instance_id));
                if let Some(c) = load_checked(&saved, p) {
                    eprintln!("{}: checks from {}", p.instance_id, saved.display());
                    return (p.instance_id.clone(), Ok(c));
                }
                let r = signals(engine, inst, p, &specs, images.as_ref()).await;
                if let Ok(c) = &r {
                    save_checked(&saved, p, c);
                }
                (p.instance_id.clone(), r)
            }
        }))
        .buffer_unordered(workers.max(1))
        .collect()
        .await;

    // 3. The choice in both modes.
    let mut rows = Vec::new();
    let (mut inf_ok, mut rep_ok, mut first_ok, mut random) = (0usize, 0usize, 0usize, 0.0f64);
    let mut secs = Vec::new();
    let mut repos = std::collections::BTreeSet::new();
    for (id, r) in &results {
        let pool = pools.iter().find(|p| &p.instance_id == id).expect("pool");
        let t = &truth[id];
        let (sig, set, s) = match r {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{id}: the checks could not run: {e}; left out");
                continue;
            }
        };
        repos.insert(by_id[id.as_str()].repo.clone());
        secs.push(*s);
        let evidence = |with_repro: bool| Evidence {
            candidates: pool
                .candidates
                .iter()
                .enumerate()
                .map(|(k, c)| CandidateEvidence {
                    patch: c.patch.clone(),
                    dropped: sig[k]
                        .dropped
                        .clone()
                        .or_else(|| (!t[k].applied).then(|| "does not apply".to_string())),
                    passes: if with_repro {
                        vec![Some(t[k].fail_to_pass)]
                    } else {
                        vec![]
                    },
                    regressions: sig[k].regressions.clone(),
                })
                .collect(),
            valid: if with_repro { vec![true] } else { vec![] },
        };
        let inf = choose(&evidence(false), None);
        let rep = choose(&evidence(true), None);
        let right = |w: Option<usize>| w.is_some_and(|w| t[w].resolved);
        let resolving = t.iter().filter(|x| x.resolved).count();
        inf_ok += usize::from(right(inf.winner));
        rep_ok += usize::from(right(rep.winner));
        first_ok += usize::from(t[0].resolved);
        random += resolving as f64 / t.len() as f64;
        println!(
            "{id:<34} {:<62} inference #{:<2} {:<5} repro #{:<2} {:<5} first {:<5}",
            pool.candidates
                .iter()
                .zip(t)
                .map(|(c, x)| format!("{}{}", c.kind, if x.resolved { "+" } else { "" }))
                .collect::<Vec<_>>()
                .join(" "),
            inf.winner.map(|w| w + 1).unwrap_or(0),
            right(inf.winner),
            rep.winner.map(|w| w + 1).unwrap_or(0),
            right(rep.winner),
            t[0].resolved
        );
        rows.push(json!({
            "instance_id": id,
            "candidates": pool.candidates.iter().zip(t).zip(sig).map(|((c, x), s)| json!({
                "kind": c.kind, "resolved": x.resolved, "applied": x.applied,
                "fail_to_pass_passed": x.fail_to_pass, "dropped": s.dropped,
                "regressions": s.regressions,
            })).collect::<Vec<_>>(),
            "regression_files": set.paths(),
            "inference_only": {"winner": inf.winner, "resolved": right(inf.winner), "reason": inf.reason},
            "with_reproduction": {"winner": rep.winner, "resolved": right(rep.winner), "reason": rep.reason},
            "seconds": s,
        }));
    }
    let n = rows.len();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let out = json!({
        "instances": n,
        "repositories": repos.len(),
        "pool_size": k_max,
        "inference_only": {"selected_resolving": inf_ok},
        "with_reproduction": {"selected_resolving": rep_ok},
        "first_candidate_resolving": first_ok,
        "random_expected": (random * 1000.0).round() / 1000.0,
        "seconds_per_instance": (mean(&secs) * 10.0).round() / 10.0,
        "modes": {
            "inference_only": "signals available at inference: empty / does not apply / does not parse, the regression guard (related existing tests from the index, base vs candidate), majority over normalised patches, smallest diff",
            "with_reproduction": "the same plus the instance's FAIL_TO_PASS tests standing in for the agent's reproduction (one reproduction, failing on the base commit): an upper bound on the mechanism",
        },
        "seconds_per_instance_means": "the selection's own checks (container start, index, regression runs on base and every candidate); grading for the truth is not counted",
        "truth_grading_seconds": (truth_secs * 10.0).round() / 10.0,
        "rows": rows,
    });
    // The workspace's target/bench (cargo runs benches from the crate's directory).
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    std::fs::write(
        out_dir.join("select.json"),
        serde_json::to_string_pretty(&out).unwrap_or_default() + "\n",
    )
    .map_err(|e| e.to_string())?;
    println!(
        "\n{n} instances from {} repositories, pools of up to {k_max} (+ = resolves)\n\
         (a) inference only:     {inf_ok}/{n} chosen candidates resolve\n\
         (b) with reproduction:  {rep_ok}/{n}\n\
         first candidate:        {first_ok}/{n}\n\
         random (expected):      {:.2}/{n}\n\
         selection checks:       {:.1} s per instance",
        repos.len(),
        random,
        mean(&secs)
    );
    println!("written: target/bench/select.json");
    // The added cost and time of N = 1, 3, 5 (slow: every attempt runs the checks).
    if let Some(id) = timing_id {
        let t = timing(work, &dataset, &pools, &id, images.clone(), specs.clone()).await?;
        let mut out = out;
        out["candidates_cost_time"] = t;
        std::fs::write(
            out_dir.join("select.json"),
            serde_json::to_string_pretty(&out).unwrap_or_default() + "\n",
        )
        .map_err(|e| e.to_string())?;
        println!("added cost and time per instance (scripted model, {id}):");
        for k in ["1", "3", "5"] {
            let t = &out["candidates_cost_time"][k];
            println!(
                "  N = {k}: {:.1} s wall, ${:.4}, {} model calls",
                t["wall_secs"].as_f64().unwrap_or(0.0),
                t["cost_usd"].as_f64().unwrap_or(0.0),
                t["calls"]
            );
        }
    }
    Ok(())
}

/// Candidates whose verdict is known without grading: gold (validated) and empty (the base).
fn known(c: &PoolCandidate) -> bool {
    c.kind == "gold" || c.kind == "empty"
}

fn opts_empty(o: &EvalOptions) -> bool {
    matches!(&o.predictions, PredictionsSource::List(l) if l.is_empty())
}

/// Each candidate of the pool in the instance's container: dropped or kept, and the
/// related tests it breaks.
async fn signals(
    engine: &DockerEngine,
    inst: &Instance,
    pool: &Pool,
    specs: &Specs,
    images: &dyn mend_swebench::ImageSource,
) -> Result<Checked, String> {
    let t0 = Instant::now();
    let image = images
        .image_for(engine, inst, &|_: &str| {})
        .await
        .map_err(|e| e.to_string())?;
    let mut cfg = DockerConfig::new(image);
    cfg.root = REPO_DIR.into();
    cfg.user = UserChoice::Root;
    cfg.memory_bytes = Some(4 << 30);
    cfg.env.insert("PATH".into(), "/opt/miniconda3/envs/testbed/bin:/opt/miniconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    cfg.labels.insert("dev.mend.bench".into(), "select".into());
    let sb = DockerSandbox::start(engine, cfg)
        .await
        .map_err(|e| e.to_string())?;
    let suite =
        RepoSuite::for_instance(specs, &inst.repo, &inst.version).map_err(|e| e.to_string())?;
    // The index of the base commit, to pick the related tests.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    sb.copy_out(sb.root(), dir.path())
        .await
        .map_err(|e| e.to_string())?;
    let repo = dir.path().join("testbed");
    let union: String = pool.candidates.iter().map(|c| c.patch.as_str()).collect();
    let set = tokio::task::spawn_blocking(move || {
        Index::from_worktree(&repo, &IndexOptions::default())
            .map(|ix| related_tests(&ix, &union, 8))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    drop(dir);
    let timeout = Duration::from_secs(300);
    let base = if set.is_empty() {
        None
    } else {
        Some(
            run_regression(&sb, &suite as &dyn TestSuite, &set, timeout)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
    let mut out = Vec::new();
    for c in &pool.candidates {
        if c.patch.trim().is_empty() {
            out.push(Signals {
                dropped: Some("empty".into()),
                regressions: None,
            });
            continue;
        }
        sb.write_file(".mend-candidate.patch", c.patch.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let apply = sb
            .exec(&Exec::shell(
                "git -c safe.directory='*' apply --whitespace=nowarn .mend-candidate.patch",
            ))
            .await
            .map_err(|e| e.to_string())?;
        if !apply.success() {
            out.push(Signals {
                dropped: Some("does not apply".into()),
                regressions: None,
            });
            continue;
        }
        let mut s = Signals::default();
        if let Some(p) = parse_problem(&sb, &c.patch).await {
            s.dropped = Some(format!("does not parse: {p}"));
        } else if let Some(base) = &base {
            let after = run_regression(&sb, &suite as &dyn TestSuite, &set, timeout)
                .await
                .map_err(|e| e.to_string())?;
            s.regressions = Some(regressions(base, &after));
        }
        let back = sb
            .exec(&Exec::shell(
                "git -c safe.directory='*' apply -R --whitespace=nowarn .mend-candidate.patch",
            ))
            .await
            .map_err(|e| e.to_string())?;
        if !back.success() {
            return Err(format!("could not take the {} candidate back out", c.kind));
        }
        out.push(s);
    }
    Ok((out, set, t0.elapsed().as_secs_f64()))
}

/// What identifies a pool's checks: its candidates' patches, in order.
fn pool_key(pool: &Pool) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for c in &pool.candidates {
        h.update(c.patch.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks saved by an earlier run of the same pool, if any.
fn load_checked(path: &Path, pool: &Pool) -> Option<Checked> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    if v["pool"].as_str()? != pool_key(pool) {
        return None;
    }
    Some((
        serde_json::from_value(v["signals"].clone()).ok()?,
        serde_json::from_value(v["set"].clone()).ok()?,
        v["seconds"].as_f64()?,
    ))
}

fn save_checked(path: &Path, pool: &Pool, (signals, set, secs): &Checked) {
    let v = json!({"pool": pool_key(pool), "signals": signals, "set": set, "seconds": secs});
    let tmp = path.with_extension("json.tmp");
    let ok = path
        .parent()
        .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
        && std::fs::write(&tmp, v.to_string()).is_ok()
        && std::fs::rename(&tmp, path).is_ok();
    if !ok {
        eprintln!("could not save the checks to {}", path.display());
    }
}

/// `run_agent` with N = 1, 3, 5 candidates on the first instance, the model scripted.
async fn timing(
    work: &Path,
    dataset: &[Instance],
    pools: &[&Pool],
    id: &str,
    images: Arc<dyn mend_swebench::ImageSource>,
    specs: Arc<Specs>,
) -> Result<serde_json::Value, String> {
    use mend_llm::test_server::{Received, Reply, TestServer};
    if !pools.iter().any(|p| p.instance_id == id) {
        return Err(format!(
            "--timing {id}: not one of the benchmark's instances"
        ));
    }
    let id = id.to_string();
    let inst = dataset
        .iter()
        .find(|i| i.instance_id == id)
        .cloned()
        .ok_or("no instance")?;
    let gold = inst.patch.trim_end().to_string();
    let answer = move |r: &Received| {
        let turns = r.json()["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
            .unwrap_or(0);
        let reply = match turns {
            0 => Reply::tool_calls(&[(
                "bash",
                json!({"command": format!("git apply <<'EOF_MEND'\n{gold}\nEOF_MEND\nprintf 'import sys\\nsys.exit(0)\\n' > reproduce_issue.py")}),
            )]),
            _ => Reply::tool_calls(&[("submit", json!({"summary": "applied"}))]),
        };
        reply.with_usage(6000, 300)
    };
    let server = TestServer::with_handler(answer).await;
    let base =
        mend_llm::OpenAiCompatible::new(server.config("gpt-4o-mini")).map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    out.insert("instance".into(), json!(id));
    for n in [1usize, 3, 5] {
        let calls_before = server.requests().len();
        let base = base.clone();
        let models: mend_swebench::ModelFactory = Arc::new(move |_i, ledger, attempt| {
            let m = base.with_ledger(ledger);
            let m = match attempt {
                Some(k) => {
                    let (t, s) = mend_agent::candidates::attempt_sampling(k, None);
                    m.with_sampling(t, s)
                }
                None => m,
            };
            Ok(Arc::new(m) as Arc<dyn mend_llm::Model>)
        });
        let opts = mend_swebench::RunOptions {
            dataset: vec![inst.clone()],
            filter: Default::default(),
            run_id: format!("timing-{n}-{}", std::process::id()),
            out_root: work.join("runs"),
            model_name: "scripted".into(),
            models,
            instance_limits: Default::default(),
            total_limits: Default::default(),
            workers: 2,
            images: images.clone(),
            specs: specs.clone(),
            // As `mend swebench run` has it by default: no whole suite on submit, checks on.
            agent: mend_agent::AgentConfig {
                test_on_submit: false,
                verify: Some(mend_agent::VerifyConfig::default()),
                ..Default::default()
            },
            prompts: mend_agent::Prompts::builtin().map_err(|e| e.to_string())?,
            with_hints: false,
            localize: true,
            memory_bytes: Some(4 << 30),
            progress: None,
            cancel: None,
            candidates: n,
            judge: false,
        };
        let t0 = Instant::now();
        let s = mend_swebench::run_agent(opts)
            .await
            .map_err(|e| e.to_string())?;
        let wall = t0.elapsed().as_secs_f64();
        eprintln!("N = {n}: {wall:.1} s, ${:.4}", s.summary.cost_usd);
        out.insert(
            n.to_string(),
            json!({"wall_secs": (wall * 10.0).round() / 10.0, "cost_usd": s.summary.cost_usd,
                   "calls": server.requests().len() - calls_before,
                   "done": s.summary.done, "patch_bytes": s.summary.patch_bytes_total}),
        );
    }
    Ok(serde_json::Value::Object(out))
}
