//! `mend swebench ...`: the SWE-bench harness on the command line (evaluation, mining).
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mend_swebench::mine::{self, MineOptions};
use mend_swebench::{
    BuildImages, EvalOptions, Filter, ImageSource, Instance, LocalImages, MirrorDir,
    OfficialImages, OfflineImages, Outcome, PredictionsSource, Progress, ProgressFn, Specs,
};

mod cluster;

#[derive(Subcommand)]
pub enum SwebenchCmd {
    /// Evaluate predictions on SWE-bench instances in Docker, in the official harness's
    /// formats: per-instance report.json/test_output.txt/patch.diff/run_instance.log under
    /// logs/run_evaluation/<run_id>/<model>/<id>/, and <model>.<run_id>.json. Instances need
    /// FAIL_TO_PASS/PASS_TO_PASS (`mine --instances` fills them in); exits 1 when no instance
    /// could be graded.
    ///
    /// Example: mend swebench eval --predictions preds.jsonl --dataset verified --run-id r1
    Eval(Box<EvalArgs>),
    /// Make SWE-bench instances from real fix commits (or fill in the test lists of
    /// instance records that lack them) by running the touched tests before and after the
    /// fix in the instance's image.
    ///
    /// Example: mend swebench mine --repo ../mirrors/psf__requests --commits v2.3.0..v2.4.0
    Mine(Box<MineArgs>),
    /// Recover test patches from history for records (instance_id, repo, base_commit,
    /// patch) that lack `test_patch`: the upstream change whose tree holds the gold patch's
    /// post-image blobs is found in the repository's mirror, widened to its pull request,
    /// and its edits to test files become the test patch. Records that have a test_patch
    /// keep it and are compared with what is recovered (exact-match rate and causes of
    /// misses in --report). Writes the records that have a test patch afterwards.
    ///
    /// Example: mend swebench recover-tests --instances records.jsonl --repo-mirrors ../mirrors --out with-tests.jsonl --report recovery.json
    RecoverTests(RecoverTestsArgs),
    /// Run the agent over SWE-bench instances: each in its own container from its instance
    /// image, the repository at base_commit, the issue as the only input. Writes
    /// runs/<run_id>/predictions.jsonl (official format) as instances finish, a trajectory
    /// and a log per instance, and summary.json. Re-running a run id resumes it.
    ///
    /// Example: mend swebench run --dataset verified --model gpt-4o --workers 4 --run-id r1 --eval
    Run(Box<RunArgs>),
    /// Summarize a batch run: resolved per repository (when evaluated), cost per resolved
    /// instance, exit statuses. Prints a table and writes runs/<run_id>/report.json.
    Report(ReportArgs),
    /// Join shard directories (`run --shard I/N`) into one run: predictions.jsonl (official
    /// format), summary.json, merge.json; with --eval the official report. Missing,
    /// duplicate and still-running shards are reported and stop the merge (--partial merges
    /// anyway, recording them).
    ///
    /// Example: mend swebench merge runs/r1-shard-* --run-id r1 --eval --dataset verified
    Merge(Box<cluster::MergeArgs>),
    /// Write (and with --submit, submit) a Slurm array job: one task per shard, the run's
    /// budget split per shard, keys from --env-file.
    ///
    /// Example: mend swebench slurm --shards 8 --run-id r1 --env-file keys.env --submit -- --dataset verified --model gpt-4o
    Slurm(Box<cluster::SlurmArgs>),
    /// Write (and with --submit, create) a Docker Swarm replicated job: one task per shard,
    /// the node's engine socket mounted, keys as a swarm secret.
    Swarm(Box<cluster::SwarmArgs>),
    /// Render a Kubernetes Indexed Job: shards as completions, the node's Docker socket or a
    /// DinD sidecar, keys from a Secret, a volume for inputs and results.
    K8s(Box<cluster::K8sArgs>),
}

/// Where instance images come from.
#[derive(Args, Clone)]
pub struct ImageArgs {
    /// official (pull swebench/sweb.eval.*), build (from the specs, needs network), local
    /// (--image-map), build-offline (from --repo-mirrors and --wheelhouse, no registry).
    #[arg(long, value_parser = ["official", "build", "local", "build-offline"])]
    pub images: Option<String>,
    /// Instance id -> image file (JSON object or `id image` lines) for --images local.
    #[arg(long, value_name = "FILE")]
    pub image_map: Option<PathBuf>,
    /// Repository mirrors for build-offline: DIR/<owner>__<name> (a clone, a bare
    /// repository or a symlink to one; DIR/<owner>+<name>/repo also works).
    #[arg(long, value_name = "DIR")]
    pub repo_mirrors: Option<PathBuf>,
    /// Wheels downloaded on the host for build-offline (filled with `pip download`).
    #[arg(long, value_name = "DIR", default_value = "wheelhouse")]
    pub wheelhouse: PathBuf,
    /// Never reach PyPI: the wheelhouse must already hold every wheel.
    #[arg(long)]
    pub no_download: bool,
    /// Resolve wheels for build-offline as PyPI stood before this date (YYYY-MM-DD), as
    /// the official environments were; unpinned packages drift. Needs pip 26.0+ on the host.
    #[arg(long, value_name = "DATE", env = "MEND_PYPI_CUTOFF")]
    pub pypi_cutoff: Option<String>,
    /// Base image for build-offline (default: mend's own, built offline when missing).
    #[arg(long)]
    pub base_image: Option<String>,
    /// Where build contexts are kept.
    #[arg(long, value_name = "DIR", default_value = "logs/build_images")]
    pub build_dir: PathBuf,
    /// Extra specs (JSON, same shape as the built-in table) for repositories or versions
    /// the built-in table lacks.
    #[arg(long, value_name = "FILE")]
    pub specs: Option<PathBuf>,
}

/// Which instances of the dataset.
#[derive(Args, Clone, Default)]
pub struct SelectArgs {
    /// Only these instance ids.
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub instance_ids: Vec<String>,
    /// Only these repositories (owner/name).
    #[arg(long, num_args = 1.., value_name = "REPO")]
    pub repos: Vec<String>,
    /// Python-style slice of what is left, e.g. 0:50.
    #[arg(long, value_name = "A:B")]
    pub slice: Option<String>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Predictions file (JSONL or JSON), or `gold` for the dataset's own patches.
    #[arg(long)]
    pub predictions: String,
    /// Dataset: a .jsonl/.json/.parquet file, or a Hugging Face name (verified, lite, full).
    #[arg(long)]
    pub dataset: String,
    /// Dataset split (Hugging Face datasets).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Run id; re-running one skips instances already graded in it.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Instances evaluated at once.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Seconds each instance's test run may take.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Per-instance logs go under DIR/<run_id>/<model>/<id>/.
    #[arg(long, value_name = "DIR", default_value = "logs/run_evaluation")]
    pub log_dir: PathBuf,
    /// Where <model>.<run_id>.json is written.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: PathBuf,
    /// Give evaluation containers network access (off by default).
    #[arg(long)]
    pub network: bool,
    /// Run the tests for empty patches too instead of counting them as empty unrun.
    #[arg(long)]
    pub run_empty: bool,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Args)]
pub struct RunArgs {
    /// Dataset: a .jsonl/.json/.parquet file, or a Hugging Face name (verified, lite, full).
    #[arg(long)]
    pub dataset: String,
    /// Dataset split (Hugging Face datasets).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Run id (default: run-<time>); the same id resumes a run.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Where run directories go.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Instances run at once.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    #[command(flatten)]
    pub model: crate::model::ModelArgs,
    /// model_name_or_path in the predictions (default: mend__<model>).
    #[arg(long)]
    pub model_name: Option<String>,
    /// Dollars one instance may spend.
    #[arg(long)]
    pub max_cost_per_instance: Option<f64>,
    /// Dollars the whole run may spend (earlier attempts of this run id included).
    #[arg(long)]
    pub max_total_cost: Option<f64>,
    /// Model calls one instance may make.
    #[arg(long, default_value_t = 60)]
    pub max_steps: usize,
    /// Minutes one instance may take.
    #[arg(long, default_value_t = 45)]
    pub max_minutes: u64,
    /// Add the dataset's hints_text to the issue (off: the issue is the only input).
    #[arg(long)]
    pub with_hints: bool,
    /// Run the repository's test command when the model submits (off: the model runs the
    /// tests it needs; full suites of large repositories take too long).
    #[arg(long)]
    pub test_on_submit: bool,
    /// Do not index the repository for the first prompt's hints (nor for the regression
    /// guard, which chooses its tests from the index).
    #[arg(long)]
    pub no_index: bool,
    /// Skip the review round: by default, once the checks pass, the model is shown its
    /// whole diff beside the issue and asked to confirm or revise it (one bounded round,
    /// one more model call at least).
    #[arg(long)]
    pub no_review: bool,
    /// Skip mend's own checks at submit: the reproduction runs and the regression guard.
    #[arg(long)]
    pub no_checks: bool,
    /// Seconds one run of the regression guard's tests may take (base and patch each).
    #[arg(long, default_value_t = 300)]
    pub guard_timeout: u64,
    /// Give the agent's containers network access (off by default).
    #[arg(long)]
    pub network: bool,
    /// Evaluate the predictions when the run ends (same images, same run id).
    #[arg(long)]
    pub eval: bool,
    /// Independent attempts per instance, each in its own container (other temperature and
    /// seed; the budgets shared; at most --workers attempts run at once). The prediction is
    /// the candidate that running them favours. With 1, an attempt that ends without a
    /// patch is retried once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub candidates: u16,
    /// With --candidates: ask the model to choose among candidates still tied.
    #[arg(long)]
    pub judge: bool,
    /// Seconds each instance's evaluation test run may take (with --eval).
    #[arg(long, default_value_t = 1800)]
    pub eval_timeout: u64,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Run shard I of N of the selection (1-based): a deterministic part, balanced by
    /// repository and expected cost, in <runs-dir>/<run-id>-shard-I-of-N (resumable like any
    /// run); `merge` joins the shards. --max-total-cost is this shard's budget.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The run id.
    pub run_id: String,
    /// Where run directories are.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
}

#[derive(Args)]
pub struct MineArgs {
    /// A repository (clone or bare mirror) whose fix commits to mine.
    #[arg(long, value_name = "MIRROR", conflicts_with = "instances")]
    pub repo: Option<PathBuf>,
    /// Commits: `A..B` ranges (first-parent line) or single revisions.
    #[arg(long, num_args = 1.., value_name = "RANGE|SHA", requires = "repo")]
    pub commits: Vec<String>,
    /// Instance records (JSONL/JSON) to fill in FAIL_TO_PASS/PASS_TO_PASS for.
    #[arg(long, value_name = "FILE")]
    pub instances: Option<PathBuf>,
    /// owner/name of --repo (default: from its directory name `owner__name`).
    #[arg(long)]
    pub repo_name: Option<String>,
    /// The specs version mined instances get (default: the repository's only one).
    #[arg(long)]
    pub version: Option<String>,
    /// Problem statement for the mined commits (default: each commit's message).
    #[arg(long, value_name = "FILE")]
    pub issue: Option<PathBuf>,
    /// Where the instances go (JSONL, published format).
    #[arg(long, default_value = "mined.jsonl")]
    pub out: PathBuf,
    /// Also write the dropped instances and why (JSONL).
    #[arg(long, value_name = "FILE")]
    pub dropped: Option<PathBuf>,
    /// Instances run at once.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Seconds each test run may take.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Run id of the before/after runs (their logs: DIR/<run_id>-before, -after).
    #[arg(long, default_value = "mine")]
    pub run_id: String,
    /// Where the before/after runs' logs go.
    #[arg(long, value_name = "DIR", default_value = "logs/mine")]
    pub log_dir: PathBuf,
    /// Runs of each of before and after; a test whose outcome changes between them is
    /// flaky and left out of both lists (1: no flakiness check).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub repeats: u16,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Args)]
pub struct RecoverTestsArgs {
    /// Records (JSONL or a JSON list) with instance_id, repo, base_commit and patch.
    #[arg(long, value_name = "FILE")]
    pub instances: PathBuf,
    /// Repository mirrors: DIR/<owner>__<name> (a clone, a bare repository or a symlink to
    /// one; DIR/<owner>+<name>/repo also works).
    #[arg(long, value_name = "DIR")]
    pub repo_mirrors: PathBuf,
    /// Where the records with a test patch go (JSONL; other fields kept as they were).
    #[arg(long, value_name = "FILE", default_value = "recovered.jsonl")]
    pub out: PathBuf,
    /// Also write the figures and each record's match (JSON).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Only these instance ids.
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub instance_ids: Vec<String>,
    /// Only these repositories (owner/name).
    #[arg(long, num_args = 1.., value_name = "REPO")]
    pub repos: Vec<String>,
}

/// `stop` turns true at the first Ctrl-C: runs stop cleanly (finished work kept, summaries
/// written, containers removed); main aborts at a second one.
pub async fn run(
    cmd: SwebenchCmd,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let result = match cmd {
        SwebenchCmd::Eval(a) => eval(*a, stop.clone()).await,
        SwebenchCmd::Mine(a) => mine_cmd(*a, stop.clone()).await,
        SwebenchCmd::RecoverTests(a) => recover_tests_cmd(a, stop.clone()),
        SwebenchCmd::Run(a) => run_cmd(*a, stop.clone()).await,
        SwebenchCmd::Report(a) => report_cmd(a),
        SwebenchCmd::Merge(a) => cluster::merge_cmd(*a, stop.clone()).await,
        SwebenchCmd::Slurm(a) => cluster::slurm_cmd(*a),
        SwebenchCmd::Swarm(a) => cluster::swarm_cmd(*a),
        SwebenchCmd::K8s(a) => cluster::k8s_cmd(*a),
    };
    let cancelled = *stop.borrow();
    match result {
        Ok(_) if cancelled => Ok(ExitCode::from(130)),
        other => other,
    }
}

fn load_specs(path: Option<&Path>) -> anyhow::Result<Arc<Specs>> {
    let mut specs = Specs::builtin();
    if let Some(p) = path {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading specs {}", p.display()))?;
        specs.merge(Specs::from_json(&text).with_context(|| format!("in {}", p.display()))?);
    }
    Ok(Arc::new(specs))
}

fn image_source(
    a: &ImageArgs,
    default: &str,
    specs: &Arc<Specs>,
    mirrors: MirrorDir,
) -> anyhow::Result<Arc<dyn ImageSource>> {
    let kind = a.images.as_deref().unwrap_or(default);
    Ok(match kind {
        "official" => Arc::new(OfficialImages::default()),
        "build" => Arc::new(BuildImages::new(specs.clone(), a.build_dir.clone())),
        "local" => {
            let map = a
                .image_map
                .as_ref()
                .context("--images local needs --image-map FILE")?;
            Arc::new(LocalImages::from_file(map)?)
        }
        "build-offline" => {
            if mirrors.dir.is_none() && mirrors.overrides.is_empty() {
                bail!(
                    "--images build-offline needs --repo-mirrors DIR (DIR/<owner>__<name> -> a clone or bare mirror of each repository)"
                );
            }
            std::fs::create_dir_all(&a.wheelhouse)
                .with_context(|| format!("creating the wheelhouse {}", a.wheelhouse.display()))?;
            let mut o = OfflineImages::new(
                specs.clone(),
                mirrors,
                absolute(&a.wheelhouse)?,
                absolute(&a.build_dir)?,
            );
            o.base_image = a.base_image.clone();
            o.download = !a.no_download;
            if let Some(c) = a.pypi_cutoff.as_deref().filter(|c| !c.is_empty()) {
                mend_swebench::offline::check_pypi_cutoff(c).map_err(anyhow::Error::msg)?;
                o.pypi_cutoff = Some(c.to_string());
            }
            Arc::new(o)
        }
        other => bail!("unknown --images {other}"),
    })
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn filter(s: &SelectArgs) -> Filter {
    Filter {
        instance_ids: s.instance_ids.clone(),
        repos: s.repos.clone(),
        slice: s.slice.clone(),
    }
}

async fn load_dataset(name: &str, split: &str) -> anyhow::Result<Vec<Instance>> {
    let cache = std::env::var_os("MEND_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/mend"))
                .unwrap_or_else(|| PathBuf::from(".mend-cache"))
        });
    let mut opts = mend_swebench::HubOptions::new(cache.join("datasets"));
    if let Ok(url) = std::env::var("MEND_HF_BASE_URL") {
        opts.base_url = url;
    }
    opts.token = std::env::var("HF_TOKEN").ok();
    Ok(mend_swebench::load_dataset(name, split, &opts).await?)
}

/// Where progress goes on stderr: a bar on a terminal, plain timestamped lines in a log.
struct Console {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Console {
    fn new(template: &str, tick: Duration) -> Console {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(tick);
            b
        });
        Console {
            bar,
            started: Instant::now(),
        }
    }

    fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            // A closed stderr must not stop the run.
            None => {
                let _ = writeln!(
                    std::io::stderr(),
                    "[{:>5.0}s] {s}",
                    self.started.elapsed().as_secs_f64()
                );
            }
        }
    }
}

/// Progress of an evaluation.
struct Display {
    console: Console,
    last_image_line: Mutex<BTreeMap<String, Instant>>,
}

impl Display {
    fn new(what: &str) -> Arc<Display> {
        let console = Console::new(
            "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {prefix} {wide_msg}",
            Duration::from_millis(200),
        );
        if let Some(b) = &console.bar {
            b.set_prefix(what.to_string());
        }
        Arc::new(Display {
            console,
            last_image_line: Mutex::new(BTreeMap::new()),
        })
    }

    fn line(&self, s: &str) {
        self.console.line(s)
    }

    fn on(&self, p: &Progress, phase: &str) {
        match p {
            Progress::Started {
                to_run,
                already_graded,
                empty_patches,
            } => {
                if let Some(b) = &self.console.bar {
                    b.set_length(*to_run as u64);
                    b.set_position(0);
                }
                self.line(&format!("{phase}{to_run} to run, {already_graded} already graded, {empty_patches} empty patches"));
            }
            Progress::Image { instance_id, line } => {
                let line = line.trim();
                match &self.console.bar {
                    Some(b) => b.set_message(format!("{instance_id}: {}", truncate(line, 90))),
                    None => {
                        // In a log: the build's steps and mend's own lines, not every pip line.
                        let notable = line.starts_with("Step ")
                            || line.starts_with("building")
                            || line.starts_with("exporting")
                            || line.starts_with("pip ")
                            || line.starts_with("pulling");
                        let mut last = self
                            .last_image_line
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        let quiet = last
                            .get(instance_id)
                            .is_some_and(|t| t.elapsed() < Duration::from_secs(30));
                        if notable || !quiet {
                            last.insert(instance_id.clone(), Instant::now());
                            self.line(&format!("{phase}{instance_id}: {}", truncate(line, 160)));
                        }
                    }
                }
            }
            Progress::Running { instance_id } => match &self.console.bar {
                Some(b) => b.set_message(format!("running {instance_id}")),
                None => self.line(&format!("{phase}{instance_id}: running the tests")),
            },
            Progress::Finished {
                instance_id,
                outcome,
                done,
                total,
                resolved_so_far,
            } => {
                if let Some(b) = &self.console.bar {
                    b.set_position(*done as u64);
                    b.set_prefix(format!("{phase}{resolved_so_far} resolved"));
                }
                self.line(&format!(
                    "{phase}{done}/{total} {instance_id}: {} ({resolved_so_far} resolved so far)",
                    outcome_text(outcome)
                ));
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.console.bar {
            b.finish_and_clear();
        }
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Resolved => "resolved".into(),
        Outcome::Unresolved => "unresolved".into(),
        Outcome::EmptyPatch => "empty patch".into(),
        Outcome::AlreadyGraded { resolved } => format!(
            "already graded ({})",
            if *resolved { "resolved" } else { "unresolved" }
        ),
        Outcome::PatchRejected(m) => format!("patch rejected: {}", truncate(m, 200)),
        Outcome::PatchApplyFailed(m) => format!(
            "patch does not apply: {}",
            truncate(m.lines().next().unwrap_or(""), 200)
        ),
        Outcome::Timeout => "timeout".into(),
        Outcome::Error(m) => format!("error: {}", truncate(m, 300)),
        Outcome::Cancelled => "cancelled".into(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn progress_fn(display: &Arc<Display>, phase: &'static str) -> ProgressFn {
    let d = display.clone();
    Arc::new(move |p: &Progress| d.on(p, phase))
}

async fn eval(a: EvalArgs, cancel: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<ExitCode> {
    let specs = load_specs(a.images.specs.as_deref())?;
    let dataset = load_dataset(&a.dataset, &a.split).await?;
    let predictions = if a.predictions == "gold" {
        PredictionsSource::Gold
    } else {
        PredictionsSource::File(PathBuf::from(&a.predictions))
    };
    let mirrors = a
        .images
        .repo_mirrors
        .clone()
        .map(MirrorDir::new)
        .unwrap_or_default();
    let images = image_source(&a.images, "official", &specs, mirrors)?;
    let run_id = a.run_id.clone().unwrap_or_else(default_run_id);
    let display = Display::new("evaluating");
    let mut opts = EvalOptions::new(dataset, predictions, run_id.clone(), images);
    opts.specs = specs;
    opts.filter = filter(&a.select);
    opts.workers = a.workers.max(1);
    opts.timeout = Duration::from_secs(a.timeout);
    opts.log_root = a.log_dir.clone();
    opts.report_dir = a.report_dir.clone();
    opts.network = a.network;
    opts.run_empty_patches = a.run_empty;
    opts.progress = Some(progress_fn(&display, ""));
    opts.cancel = Some(cancel);
    let summary = mend_swebench::evaluate(opts).await;
    display.finish();
    let summary = summary?;
    let r = &summary.report;
    let other_python: Vec<String> = summary
        .environments
        .iter()
        .filter(|(_, e)| e.python_differs())
        .map(|(id, e)| format!("{id} ({})", e.python.as_deref().unwrap_or("?")))
        .collect();
    if !other_python.is_empty() {
        eprintln!(
            "ran on a Python other than the official one: {}",
            other_python.join(", ")
        );
    }
    let errors: Vec<String> = summary
        .outcomes
        .iter()
        .filter(|(_, o)| {
            !matches!(
                o,
                Outcome::Resolved
                    | Outcome::Unresolved
                    | Outcome::EmptyPatch
                    | Outcome::AlreadyGraded { .. }
            )
        })
        .map(|(id, o)| format!("{id}: {}", outcome_text(o)))
        .collect();
    for e in &errors {
        eprintln!("  {e}");
    }
    println!(
        "resolved {}/{} ({:.1}%), unresolved {}, empty patches {}, errors {}; {:.0}s; report: {} (mend's details: {})",
        r.resolved_instances,
        r.total_instances,
        100.0 * r.resolve_rate(),
        r.unresolved_instances,
        r.empty_patch_instances,
        r.error_instances,
        summary.elapsed.as_secs_f64(),
        summary.report_path.display(),
        summary.details_path.display()
    );
    if let Some(why) = nothing_graded(r) {
        eprintln!("error: {why}; the report files are kept");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Grades a run directory's predictions (`opts`: the dataset, predictions, run id, images,
/// specs and filter) into that directory: per-instance logs under `logs/run_evaluation`, the
/// report beside them. Prints the resolve rate; returns whether nothing could be graded.
async fn evaluate_run(
    mut opts: EvalOptions,
    run_dir: &Path,
    workers: usize,
    eval_timeout: u64,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<bool> {
    let display = Display::new("evaluating");
    opts.workers = workers.max(1);
    opts.timeout = Duration::from_secs(eval_timeout);
    opts.log_root = run_dir.join("logs/run_evaluation");
    opts.report_dir = run_dir.to_path_buf();
    opts.progress = Some(progress_fn(&display, "eval: "));
    opts.cancel = Some(cancel);
    let summary = mend_swebench::evaluate(opts).await;
    display.finish();
    let summary = summary?;
    let r = &summary.report;
    eprintln!(
        "resolved {}/{} ({:.1}%); report: {}",
        r.resolved_instances,
        r.total_instances,
        100.0 * r.resolve_rate(),
        summary.report_path.display()
    );
    match nothing_graded(r) {
        Some(why) => {
            eprintln!("evaluation failed: {why}");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// An evaluation where instances errored and none was graded is a failure, not a score
/// of zero: say so (the caller exits non-zero).
fn nothing_graded(r: &mend_swebench::SummaryReport) -> Option<String> {
    (r.completed_instances == 0 && r.error_instances > 0).then(|| {
        format!(
            "no instance could be graded: {} of {} submitted errored",
            r.error_instances, r.submitted_instances
        )
    })
}

fn default_run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("eval-{secs}")
}

/// `owner__name` (or `owner+name`) directory names give the repository name.
fn repo_name_from_path(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?.trim_end_matches(".git");
    let (owner, repo) = name.split_once("__").or_else(|| name.split_once('+'))?;
    Some(format!("{owner}/{repo}"))
}

async fn mine_cmd(
    a: MineArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let specs = load_specs(a.images.specs.as_deref())?;
    let mut mirrors = a
        .images
        .repo_mirrors
        .clone()
        .map(MirrorDir::new)
        .unwrap_or_default();
    let mut dropped: Vec<mine::Dropped> = Vec::new();
    let candidates: Vec<Instance> = match (&a.repo, &a.instances) {
        (Some(repo_path), None) => {
            if a.commits.is_empty() {
                bail!("--repo needs --commits RANGE|SHA...");
            }
            let repo = match &a.repo_name {
                Some(r) => r.clone(),
                None => repo_name_from_path(repo_path).with_context(|| {
                    format!(
                        "cannot tell owner/name from {}: pass --repo-name owner/name",
                        repo_path.display()
                    )
                })?,
            };
            let rs = specs.repo(&repo).with_context(|| {
                format!(
                    "no spec for {repo}: pass --specs FILE with its test command and log parser"
                )
            })?;
            let version = match &a.version {
                Some(v) => v.clone(),
                None if rs.versions.len() == 1 => {
                    rs.versions.keys().next().cloned().unwrap_or_default()
                }
                None => bail!(
                    "{repo} has several spec versions ({}): pass --version",
                    rs.versions.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            let issue = match &a.issue {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                ),
                None => None,
            };
            let git_dir = mine::git_dir_of(repo_path)?;
            mirrors.overrides.insert(repo.clone(), git_dir.clone());
            let commits = mine::resolve_commits(&git_dir, &a.commits)?;
            eprintln!(
                "{} commit(s) to look at in {}",
                commits.len(),
                repo_path.display()
            );
            let mut out = Vec::new();
            for c in commits {
                match mine::instance_from_commit(&git_dir, &repo, &version, &c, issue.as_deref())? {
                    Ok(i) => out.push(i),
                    Err(d) => {
                        eprintln!("dropped {}: {}", d.instance_id, d.reason);
                        dropped.push(d);
                    }
                }
            }
            out
        }
        (None, Some(path)) => mend_swebench::load_instances(path)?,
        _ => bail!("give either --repo MIRROR --commits ... or --instances FILE"),
    };
    let candidates = filter(&a.select).apply(candidates)?;
    let images = image_source(&a.images, "build-offline", &specs, mirrors)?;
    let display = Display::new("mining");
    let mut opts = MineOptions::new(images, a.log_dir.clone());
    opts.specs = specs;
    opts.workers = a.workers.max(1);
    opts.timeout = Duration::from_secs(a.timeout);
    opts.run_id = a.run_id.clone();
    opts.repeats = usize::from(a.repeats);
    opts.progress = Some(progress_fn(&display, ""));
    opts.cancel = Some(cancel.clone());
    eprintln!(
        "running the tests of {} candidate(s) before and after their fix, {} time(s) each",
        candidates.len(),
        a.repeats
    );
    let mined = mine::fill_test_lists(candidates, &opts).await;
    display.finish();
    let mined = mined?;
    if *cancel.borrow() {
        bail!(
            "interrupted: nothing written; run again with --run-id {} to resume (finished runs are kept)",
            a.run_id
        );
    }
    for d in &mined.dropped {
        eprintln!("dropped {}: {}", d.instance_id, d.reason);
    }
    for (id, tests) in &mined.flaky {
        eprintln!(
            "flaky in {id} (outcome changed between runs, left out): {}",
            tests.join(", ")
        );
    }
    let flaky: usize = mined.flaky.values().map(Vec::len).sum();
    dropped.extend(mined.dropped.iter().cloned());
    mine::write_jsonl(&a.out, &mined.instances)?;
    if let Some(p) = &a.dropped {
        let text: String = dropped
            .iter()
            .filter_map(|d| serde_json::to_string(d).ok())
            .map(|l| l + "\n")
            .collect();
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    let other_python: Vec<&String> = mined
        .environments
        .iter()
        .filter(|(_, e)| e.python_differs())
        .map(|(id, _)| id)
        .collect();
    if !other_python.is_empty() {
        eprintln!(
            "{} instance(s) ran on a Python other than the official one",
            other_python.len()
        );
    }
    println!(
        "mined {} instance(s), dropped {}; {flaky} flaky test(s) left out in {} instance(s) ({} runs each of before and after); written to {}",
        mined.instances.len(),
        dropped.len(),
        mined.flaky.len(),
        a.repeats,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn recover_tests_cmd(
    a: RecoverTestsArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    use mend_swebench::recover;
    let text = std::fs::read_to_string(&a.instances)
        .with_context(|| format!("reading {}", a.instances.display()))?;
    let mut records = recover::parse_records(&text, &a.instances.display().to_string())?;
    let str_of = |r: &serde_json::Map<String, serde_json::Value>, k: &str| {
        r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
    };
    for (what, wanted, key) in [
        ("--instance-ids", &a.instance_ids, "instance_id"),
        ("--repos", &a.repos, "repo"),
    ] {
        if wanted.is_empty() {
            continue;
        }
        let unknown: Vec<&String> = wanted
            .iter()
            .filter(|w| !records.iter().any(|r| &str_of(r, key) == *w))
            .collect();
        if !unknown.is_empty() {
            bail!(
                "{what}: not in {}: {}",
                a.instances.display(),
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        records.retain(|r| wanted.contains(&str_of(r, key)));
    }
    if !a.repo_mirrors.is_dir() {
        bail!(
            "--repo-mirrors {} is not a directory (DIR/<owner>__<name> -> a clone or bare mirror of each repository)",
            a.repo_mirrors.display()
        );
    }
    let mirrors = MirrorDir::new(a.repo_mirrors.clone());
    let total = records.len();
    let mut done = 0;
    let (out, report) = recover::recover_records(records, &mirrors, &|| *stop.borrow(), |r| {
        done += 1;
        let what = match (&r.not_recovered, &r.cause) {
            (Some(n), _) => format!("not recovered: {}", n.detail),
            (None, Some(c)) => format!(
                "{c} vs the known test_patch ({})",
                r.extent.as_deref().unwrap_or("")
            ),
            (None, None) => format!(
                "recovered, {} test file(s) ({})",
                r.test_files.len(),
                r.extent.as_deref().unwrap_or("")
            ),
        };
        eprintln!("{done}/{total} {}: {what} [{:.1}s]", r.instance_id, r.secs);
    })?;
    let mut lines = String::new();
    for r in &out {
        lines.push_str(&serde_json::to_string(r)?);
        lines.push('\n');
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&a.out, lines).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(p) = &a.report {
        std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if report.interrupted {
        eprintln!("interrupted: the figures and the file cover the records done so far");
    }
    if report.with_known_test_patch > 0 {
        println!(
            "known test patches: {} exact of {} ({:.1}%); misses: {}",
            report.exact,
            report.with_known_test_patch,
            100.0 * report.exact_rate,
            if report.miss_causes.is_empty() {
                "none".to_string()
            } else {
                report
                    .miss_causes
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    println!(
        "{} of {} record(s) got a test patch ({} filled in); not recovered: {}; written to {}",
        report.recovered,
        report.records,
        report.filled_in,
        if report.not_recovered.is_empty() {
            "none".to_string()
        } else {
            report
                .not_recovered
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        a.out.display()
    );
    Ok(if report.recovered == 0 && report.records > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Live display of a batch run: done/total, spend, resolved so far (with --eval), and the
/// instances that have been running longest.
struct RunDisplay {
    console: Console,
    running: Mutex<BTreeMap<String, (Instant, usize)>>,
    spend: Mutex<f64>,
}

impl RunDisplay {
    fn new() -> Arc<RunDisplay> {
        let console = Console::new(
            "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {prefix}\n  {wide_msg}",
            Duration::from_millis(250),
        );
        Arc::new(RunDisplay {
            console,
            running: Mutex::new(BTreeMap::new()),
            spend: Mutex::new(0.0),
        })
    }

    fn line(&self, s: &str) {
        self.console.line(s)
    }

    /// The three longest-running instances, for the status line.
    fn slowest(&self) -> String {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(&String, &(Instant, usize))> = running.iter().collect();
        v.sort_by_key(|(_, (t, _))| *t);
        let shown: Vec<String> = v
            .iter()
            .take(3)
            .map(|(id, (t, step))| format!("{id} {}s step {step}", t.elapsed().as_secs()))
            .collect();
        if shown.is_empty() {
            String::new()
        } else {
            format!("slowest: {}", shown.join(", "))
        }
    }

    fn on(&self, p: &mend_swebench::RunProgress) {
        use mend_swebench::RunProgress as P;
        match p {
            P::Started {
                total,
                to_run,
                already_done,
                dropped_torn_lines,
            } => {
                if let Some(b) = &self.console.bar {
                    b.set_length(*total as u64);
                    b.set_position(*already_done as u64);
                }
                self.line(&format!(
                    "{to_run} to run, {already_done} already done of {total}"
                ));
                if *dropped_torn_lines > 0 {
                    self.line(&format!("warning: dropped {dropped_torn_lines} torn line(s) left by an interrupted write; those instances run again"));
                }
            }
            P::InstanceStarted { instance_id } => {
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(instance_id.clone(), (Instant::now(), 0));
                if self.console.bar.is_none() {
                    self.line(&format!("{instance_id}: started"));
                }
            }
            P::InstanceStep {
                instance_id,
                step,
                cost_usd,
            } => {
                if let Some(e) = self
                    .running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(instance_id)
                {
                    e.1 = *step;
                }
                *self.spend.lock().unwrap_or_else(|e| e.into_inner()) = *cost_usd;
                if let Some(b) = &self.console.bar {
                    b.set_prefix(format!("${cost_usd:.2} spent"));
                    b.set_message(self.slowest());
                }
            }
            P::InstanceFinished {
                record,
                done,
                total,
                cost_usd,
            } => {
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&record.instance_id);
                if let Some(b) = &self.console.bar {
                    b.set_position(*done as u64);
                    b.set_prefix(format!("${cost_usd:.2} spent"));
                    b.set_message(self.slowest());
                }
                self.line(&format!(
                    "{done}/{total} {}: {} ({}, {} steps, ${:.3}, {:.0}s, patch {} bytes)",
                    record.instance_id,
                    record.state,
                    record.detail,
                    record.steps,
                    record.cost_usd,
                    record.wall_secs,
                    record.patch_bytes
                ));
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.console.bar {
            b.finish_and_clear();
        }
    }
}

async fn run_cmd(
    a: RunArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let specs = load_specs(a.images.specs.as_deref())?;
    let dataset = load_dataset(&a.dataset, &a.split).await?;
    // Grading needs test lists: refuse before any agent runs, not after the whole batch.
    if a.eval {
        let selected = filter(&a.select).apply(dataset.clone())?;
        mend_swebench::check_gradable(&selected).context(
            "--eval cannot grade this selection (run without --eval to only make predictions)",
        )?;
    }
    let mirrors = a
        .images
        .repo_mirrors
        .clone()
        .map(MirrorDir::new)
        .unwrap_or_default();
    let images = image_source(&a.images, "official", &specs, mirrors)?;
    let run_id = a
        .run_id
        .clone()
        .unwrap_or_else(|| default_run_id().replacen("eval-", "run-", 1));
    let mut select = filter(&a.select);
    let shard = match &a.shard {
        Some(spec) => {
            let selected = select.clone().apply(dataset.clone())?;
            let s = cluster::start_shard(spec, &run_id, &a.runs_dir, &selected, a.max_total_cost)?;
            if s.is_empty() {
                // More shards than instances: this one has nothing to do.
                s.end(true)?;
                return Ok(ExitCode::SUCCESS);
            }
            select = s.filter.clone();
            Some(s)
        }
        None => None,
    };
    let run_id = shard.as_ref().map_or(run_id, |s| s.run_id.clone());
    // One model config for every instance; each instance charges its own child ledger.
    let (file_cfg, _) = crate::config::FileConfig::user()?;
    let models: mend_swebench::ModelFactory = match &a.model.replay {
        Some(path) => {
            let rec = mend_llm::Recording::load(path)?;
            Arc::new(move |_inst, ledger, _attempt| {
                Ok(
                    Arc::new(mend_llm::ReplayModel::new(rec.clone()).with_ledger(ledger))
                        as Arc<dyn mend_llm::Model>,
                )
            })
        }
        None => {
            let scope = crate::doctor::Scope::default();
            crate::doctor::preflight(&a.model, file_cfg.model.as_ref(), &scope).await?;
            let cfg = crate::model::config(&a.model, file_cfg.model.as_ref())?;
            let base = mend_llm::OpenAiCompatible::new(cfg)?;
            let source = base.discover_context().await;
            let window = mend_llm::Model::context_window(&base);
            eprintln!("context window: {window} tokens, {source}");
            let temperature = base.config().temperature;
            Arc::new(move |_inst, ledger, attempt| {
                let m = base.with_ledger(ledger);
                let m = match attempt {
                    Some(k) => {
                        let (t, seed) = mend_agent::candidates::attempt_sampling(k, temperature);
                        m.with_sampling(t, seed)
                    }
                    None => m,
                };
                Ok(Arc::new(m) as Arc<dyn mend_llm::Model>)
            })
        }
    };
    let model_label = match &a.model.replay {
        Some(_) => "replay".to_string(),
        None => crate::model::config(&a.model, file_cfg.model.as_ref())?.model,
    };
    let model_name = a
        .model_name
        .clone()
        .unwrap_or_else(|| format!("mend__{}", model_label.replace('/', "__")));
    let mut agent = mend_agent::AgentConfig {
        max_steps: a.max_steps,
        max_wall: Duration::from_secs(a.max_minutes * 60),
        test_on_submit: a.test_on_submit,
        network: a.network,
        // The suite is each instance's own (set per instance from the specs).
        verify: (!a.no_checks).then(|| mend_agent::VerifyConfig {
            review: !a.no_review,
            guard_timeout: Duration::from_secs(a.guard_timeout),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A recorded run replays with the checks it made (none for runs made before them).
    if let Some(path) = &a.model.replay {
        match mend_agent::Trajectory::load(path) {
            Ok(t) => match (&mut agent.verify, &t.verification) {
                (Some(v), Some(rec)) => v.review = rec.review.is_some(),
                (v, _) => *v = None,
            },
            Err(_) => agent.verify = None,
        }
    }
    let display = RunDisplay::new();
    let d = display.clone();
    let opts = mend_swebench::RunOptions {
        dataset: dataset.clone(),
        filter: select.clone(),
        run_id: run_id.clone(),
        out_root: a.runs_dir.clone(),
        model_name: model_name.clone(),
        models,
        instance_limits: mend_llm::Limits {
            max_cost_usd: a.max_cost_per_instance,
            ..Default::default()
        },
        total_limits: mend_llm::Limits {
            max_cost_usd: a.max_total_cost,
            ..Default::default()
        },
        workers: a.workers.max(1),
        images: images.clone(),
        specs: specs.clone(),
        agent,
        prompts: mend_agent::Prompts::builtin()?,
        with_hints: a.with_hints,
        localize: !a.no_index,
        memory_bytes: Some(8 << 30),
        progress: Some(Arc::new(move |p| d.on(p))),
        cancel: Some(cancel.clone()),
        candidates: usize::from(a.candidates),
        judge: a.judge,
    };
    eprintln!(
        "run {run_id}: model {model_label}, {} workers, images {}",
        a.workers.max(1),
        images.kind()
    );
    let result = mend_swebench::run_agent(opts).await;
    display.finish();
    if let Some(sh) = shard {
        let complete =
            matches!(&result, Ok(r) if r.stopped.is_none() && r.summary.done == r.summary.selected);
        sh.end(complete)?;
    }
    let result = result?;
    let s = &result.summary;
    eprintln!(
        "run {run_id}: {} done, {} errors, {} not run of {}; ${:.2}, {} tokens in / {} out; {:.0}s",
        s.done,
        s.errors,
        s.not_run,
        s.selected,
        s.cost_usd,
        s.tokens_in,
        s.tokens_out,
        result.elapsed.as_secs_f64()
    );
    if let Some(why) = &result.stopped {
        eprintln!("stopped early: {why}");
    }
    eprintln!("predictions: {}", result.predictions_path.display());
    let mut eval_failed = false;
    if a.eval && !*cancel.borrow() {
        let mut opts = EvalOptions::new(
            dataset,
            PredictionsSource::File(result.predictions_path.clone()),
            run_id.clone(),
            images,
        );
        opts.specs = specs;
        opts.filter = select;
        eval_failed =
            evaluate_run(opts, &result.run_dir, a.workers, a.eval_timeout, cancel).await?;
    }
    println!("{}", result.run_dir.display());
    Ok(if result.stopped.is_some() || s.errors > 0 || eval_failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// One row of `mend swebench report`.
#[derive(serde::Serialize, Default)]
struct RepoRow {
    repo: String,
    instances: usize,
    done: usize,
    non_empty_patches: usize,
    resolved: Option<usize>,
    cost_usd: f64,
    cost_per_resolved_usd: Option<f64>,
}

fn report_cmd(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let dir = a.runs_dir.join(&a.run_id);
    // A sharded run that is not merged yet is read from its shards, running or not.
    let summary = cluster::summary_for_report(&a.runs_dir, &a.run_id)?;
    // The evaluation summary `--eval` leaves in the run directory, if any.
    let eval_path = dir.join(format!(
        "{}.{}.json",
        summary.model_name_or_path.replace('/', "__"),
        a.run_id
    ));
    let resolved_ids: Option<std::collections::BTreeSet<String>> =
        std::fs::read_to_string(&eval_path)
            .ok()
            .and_then(|t| serde_json::from_str::<mend_swebench::SummaryReport>(&t).ok())
            .map(|r| r.resolved_ids.into_iter().collect());
    let mut rows: BTreeMap<String, RepoRow> = BTreeMap::new();
    for r in &summary.instances {
        let row = rows.entry(r.repo.clone()).or_insert_with(|| RepoRow {
            repo: r.repo.clone(),
            ..Default::default()
        });
        row.instances += 1;
        row.done += usize::from(r.is_done());
        row.non_empty_patches += usize::from(r.is_done() && r.patch_bytes > 0);
        row.cost_usd += r.cost_usd;
        if let Some(ids) = &resolved_ids {
            *row.resolved.get_or_insert(0) += usize::from(ids.contains(&r.instance_id));
        }
    }
    let mut total = RepoRow {
        repo: "total".into(),
        ..Default::default()
    };
    for row in rows.values_mut() {
        row.cost_per_resolved_usd = row
            .resolved
            .filter(|n| *n > 0)
            .map(|n| row.cost_usd / n as f64);
        total.instances += row.instances;
        total.done += row.done;
        total.non_empty_patches += row.non_empty_patches;
        total.cost_usd += row.cost_usd;
        if let Some(n) = row.resolved {
            *total.resolved.get_or_insert(0) += n;
        }
    }
    total.cost_per_resolved_usd = total
        .resolved
        .filter(|n| *n > 0)
        .map(|n| total.cost_usd / n as f64);
    let fmt_opt = |v: Option<usize>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "run {} ({}), {} selected, {} not run",
        summary.run_id, summary.model_name_or_path, summary.selected, summary.not_run
    );
    println!(
        "{:<28} {:>9} {:>6} {:>8} {:>9} {:>10} {:>12}",
        "repository", "instances", "done", "patches", "resolved", "cost $", "$/resolved"
    );
    for row in rows.values().chain(std::iter::once(&total)) {
        println!(
            "{:<28} {:>9} {:>6} {:>8} {:>9} {:>10.2} {:>12}",
            row.repo,
            row.instances,
            row.done,
            row.non_empty_patches,
            fmt_opt(row.resolved),
            row.cost_usd,
            row.cost_per_resolved_usd
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "exit statuses: {}",
        summary
            .exit_statuses
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if summary.selected_among_candidates > 0 || summary.retried > 0 {
        println!(
            "best-of-N: chosen among several candidates on {} instances; the choice differed from the first candidate on {}; {} retried after an attempt without a patch",
            summary.selected_among_candidates, summary.choice_differs_from_first, summary.retried
        );
    }
    if resolved_ids.is_none() {
        println!(
            "(not evaluated: run `mend swebench eval --predictions {} ...` or `run --eval` for resolve-rate; grading needs a dataset with FAIL_TO_PASS/PASS_TO_PASS)",
            dir.join("predictions.jsonl").display()
        );
    }
    let report = serde_json::json!({
        "run_id": summary.run_id, "model_name_or_path": summary.model_name_or_path,
        "repos": rows.values().collect::<Vec<_>>(), "total": total, "exit_statuses": summary.exit_statuses,
        "tokens_in": summary.tokens_in, "tokens_out": summary.tokens_out, "wall_secs_median": summary.wall_secs_median,
        "selected_among_candidates": summary.selected_among_candidates,
        "choice_differs_from_first": summary.choice_differs_from_first, "retried": summary.retried,
    });
    let path = dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report: {}", path.display());
    Ok(ExitCode::SUCCESS)
}
