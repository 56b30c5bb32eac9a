//! `mend bench BENCHMARK`: function-level benchmarks scored as pass@k (crate mend-bench).
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mend_bench::{Benchmark, EvalOptions, Limits, PromptStyle};
use mend_llm::Model;
use mend_sandbox::DockerEngine;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// humaneval, mbpp, evalplus-humaneval, evalplus-mbpp, livecodebench or apps.
    #[arg(value_parser = Benchmark::ALL.map(|b| b.name()))]
    pub benchmark: String,
    /// The benchmark's problem file as published (.jsonl, .jsonl.gz or a .json array).
    /// Where to get each: see crates/mend-bench/README.md.
    #[arg(long, value_name = "FILE")]
    pub problems: PathBuf,
    /// Samples JSONL (`{"task_id", "completion"|"solution"}`). With a model, samples are
    /// appended here (default OUT/samples.jsonl); without one, this file is evaluated.
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// Where samples, results and the report go.
    #[arg(long, default_value = "mend-bench-out")]
    pub out: PathBuf,
    /// Samples per problem (generation).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub samples_per_problem: usize,
    /// The k of pass@k, comma-separated.
    #[arg(short = 'k', long, value_delimiter = ',', default_value = "1,10,100")]
    pub k: Vec<usize>,
    /// Sampling temperature (default: the server's; 0.2 or 0.8 are the Codex paper's).
    #[arg(long)]
    pub temperature: Option<f32>,
    /// `completion`: the model continues the signature and docstring (base models);
    /// `chat`: the code block of its reply is the program (instruction-tuned models).
    /// Problems whose prompt is not code are always asked chat-style.
    #[arg(long, value_parser = ["completion", "chat"], default_value = "chat")]
    pub prompt_style: String,
    /// Containers checking samples at once (one sample at a time each), and model calls
    /// in flight.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Seconds for one sample's tests (per test case for livecodebench and apps; `--timeout`
    /// is the model's).
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub sample_timeout: f64,
    /// Memory per sample, MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: i64,
    /// Only the first N problems of the file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The image samples run in (needs python3; default: mend's base image).
    #[arg(long)]
    pub image: Option<String>,
    /// Most model calls in all (a budget; the run stops when it is reached).
    #[arg(long)]
    pub max_calls: Option<u64>,
    /// Most dollars in all.
    #[arg(long, value_parser = crate::config::parse_cost)]
    pub max_cost: Option<f64>,
    #[command(flatten)]
    pub model: crate::model::ModelArgs,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let bench = Benchmark::parse(&args.benchmark).context("unknown benchmark")?;
    if !args.problems.is_file() {
        bail!(
            "{}: no such problem file; {} is {}",
            args.problems.display(),
            bench.name(),
            bench.source()
        );
    }
    if args.k.contains(&0) {
        bail!("-k takes positive numbers (pass@1, pass@10, ...)");
    }
    if !(args.sample_timeout.is_finite() && args.sample_timeout > 0.0) {
        bail!("--sample-timeout must be a positive number of seconds");
    }
    if args.samples_per_problem == 0 {
        bail!("-n must be at least 1");
    }
    let mut problems = mend_bench::load(bench, &args.problems)?;
    if let Some(n) = args.limit {
        problems.truncate(n);
    }
    eprintln!(
        "{}: {} problems from {}",
        bench.name(),
        problems.len(),
        args.problems.display()
    );

    // A model named on the command line samples; so does mend.toml's `[model]` when no
    // samples file is given (with one, that file is evaluated as it is).
    let (file, _) = crate::config::FileConfig::user()?;
    let wants_model = args.model.model.is_some()
        || args.model.base_url.is_some()
        || args.model.replay.is_some()
        || (args.samples.is_none() && file.model.is_some());
    let samples = match (&args.samples, wants_model) {
        (Some(s), _) => s.clone(),
        (None, true) => args.out.join("samples.jsonl"),
        (None, false) => bail!(
            "nothing to evaluate: give --samples FILE, or a model (--model/--base-url, or \
             [model] in mend.toml) to sample from"
        ),
    };
    if wants_model {
        let model = build_model(&args, file.model.as_ref()).await?;
        let style = if args.prompt_style == "completion" {
            PromptStyle::Completion
        } else {
            PromptStyle::Chat
        };
        eprintln!(
            "sampling {} per problem from {} ({} prompts) into {}",
            args.samples_per_problem,
            model.name(),
            args.prompt_style,
            samples.display()
        );
        let stats = mend_bench::generate(
            model.as_ref(),
            &problems,
            args.samples_per_problem,
            style,
            args.workers,
            &samples,
            &|d, t| eprint!("\rsampled {d}/{t}"),
        )
        .await;
        eprintln!();
        let stats = stats?;
        let totals = model.totals();
        eprintln!(
            "sampled {} ({} were already there); {} calls, {} tokens, ${:.4}",
            stats.requested,
            stats.existing,
            totals.calls,
            totals.tokens(),
            totals.cost_usd
        );
    } else if !samples.is_file() {
        bail!("{}: no such samples file", samples.display());
    }
    let all = mend_bench::read_samples(&samples, &problems)?;
    if all.is_empty() {
        bail!("{}: no samples", samples.display());
    }
    let engine = DockerEngine::connect().await?;
    let swept = engine.sweep_stale().await?;
    if swept > 0 {
        eprintln!("removed {swept} stale sandbox container(s) from an earlier run");
    }
    let image = match &args.image {
        Some(i) => i.clone(),
        None => crate::images::ensure_base(&engine, false, None).await?,
    };
    let results = mend_bench::results_path(&samples);
    let opts = EvalOptions {
        workers: args.workers,
        limits: Limits {
            timeout: Duration::from_secs_f64(args.sample_timeout),
            memory_bytes: args.memory_mb << 20,
            ..Limits::default()
        },
        ks: args.k.clone(),
    };
    let report = mend_bench::evaluate(
        &engine,
        &image,
        &problems,
        &all,
        &results,
        &opts,
        &|d, t, _| eprint!("\rchecked {d}/{t}"),
    )
    .await;
    eprintln!();
    let report = report?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let report_path = args.out.join("report.json");
    let mut json = serde_json::to_value(&report)?;
    json["benchmark"] = bench.name().into();
    json["samples_file"] = samples.display().to_string().into();
    json["results_file"] = results.display().to_string().into();
    std::fs::write(&report_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!(
        "{}: {} samples of {} problems, {} passed ({} checked now, {:.1}s)",
        bench.name(),
        report.samples,
        report.problems.len(),
        report.passed,
        report.checked,
        report.seconds
    );
    for (k, v) in &report.pass_at_k {
        println!("  {k}: {:.2}%", v * 100.0);
    }
    for (kind, n) in &report.failures {
        println!("  failed, {kind}: {n}");
    }
    println!(
        "results: {}\nreport: {}",
        results.display(),
        report_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The model layer as `mend fix` uses it, with the sampling temperature and the run's budget.
async fn build_model(
    args: &BenchArgs,
    file: Option<&mend_llm::ModelConfig>,
) -> anyhow::Result<Arc<dyn Model>> {
    let limits = mend_llm::Limits {
        max_cost_usd: args.max_cost,
        max_calls: args.max_calls,
        max_tokens: None,
    };
    if args.model.replay.is_some() {
        let replay = crate::model::AttemptModels::build(&args.model, file, limits, &[]).await?;
        return Ok(replay.get(0, false).0);
    }
    let mut cfg = crate::model::config(&args.model, file)?;
    cfg.limits = crate::model::merge_limits(cfg.limits, limits);
    if let Some(t) = args.temperature {
        if !(0.0..=2.0).contains(&t) {
            bail!("--temperature must be between 0 and 2");
        }
        cfg.temperature = Some(t);
    }
    Ok(Arc::new(crate::model::connect(cfg).await?))
}
