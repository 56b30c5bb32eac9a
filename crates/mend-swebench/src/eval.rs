//! The evaluation driver: per instance a fresh container from its image, the model patch
//! applied (official fallbacks in order), the eval script run with a timeout, the log graded;
//! outputs in the official layout `logs/run_evaluation/<run_id>/<model>/<id>/`, and the run
//! summary `<model>.<run_id>.json` with the official fields.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use mend_sandbox::patch::PatchError;
use mend_sandbox::{
    DockerConfig, DockerEngine, DockerSandbox, Exec, Sandbox, Termination, UserChoice,
};
use serde::{Deserialize, Serialize};

use crate::SwebenchError;
use crate::dataset::{Filter, Instance, Prediction, check_gradable, gold_predictions};
use crate::grading::{APPLY_PATCH_FAIL, APPLY_PATCH_PASS, ReportFile, grade, to_json_indent4};
use crate::images::{EnvironmentNotes, ImageSource};
use crate::script::{APPLY_COMMANDS, REPO_DIR, eval_script};
use crate::specs::Specs;

/// File names in an instance's log directory (official).
pub const LOG_REPORT: &str = "report.json";
pub const LOG_TEST_OUTPUT: &str = "test_output.txt";
pub const LOG_INSTANCE: &str = "run_instance.log";
pub const LOG_PATCH: &str = "patch.diff";
pub const LOG_EVAL_SCRIPT: &str = "eval.sh";

/// Where in the container the patch and eval script go, and where the test output is collected.
const WORK_DIR: &str = "/tmp/mend-eval";

/// Which predictions to evaluate.
#[derive(Debug, Clone)]
pub enum PredictionsSource {
    /// The dataset's own `patch` field (`--predictions gold`).
    Gold,
    /// A predictions file (JSONL, JSON list, or JSON object keyed by id).
    File(PathBuf),
    /// Already loaded.
    List(Vec<Prediction>),
}

/// What happened to one instance. Only `Resolved`/`Unresolved` write `report.json`,
/// as in the official harness; the others count as errors (or empty) in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    Resolved,
    Unresolved,
    /// `model_patch` is `""` or `null`: not run.
    EmptyPatch,
    /// `report.json` from an earlier run with this run id exists: not run again.
    AlreadyGraded {
        resolved: bool,
    },
    /// Refused before applying: touches a path outside the repository, `.git`, or holds binary garbage.
    PatchRejected(String),
    /// `git apply`, `git apply --reject` and `patch --fuzz=5` all failed.
    PatchApplyFailed(String),
    /// The eval script ran past the timeout.
    Timeout,
    /// Infrastructure failure (image, container, engine).
    Error(String),
    /// The run was cancelled before this instance finished.
    Cancelled,
}

impl Outcome {
    pub fn is_resolved(&self) -> bool {
        matches!(
            self,
            Outcome::Resolved | Outcome::AlreadyGraded { resolved: true }
        )
    }
}

/// Progress events, in the order they happen.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The run starts: how many instances will be run, how many were skipped as already graded.
    Started {
        to_run: usize,
        already_graded: usize,
        empty_patches: usize,
    },
    /// An image line (pull/build progress) for an instance.
    Image { instance_id: String, line: String },
    /// An instance started in its container.
    Running { instance_id: String },
    /// An instance finished.
    Finished {
        instance_id: String,
        outcome: Outcome,
        done: usize,
        total: usize,
        resolved_so_far: usize,
    },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Everything `evaluate` needs.
pub struct EvalOptions {
    /// The whole dataset (prediction ids are checked against it).
    pub dataset: Vec<Instance>,
    /// Which of the dataset to evaluate and report on.
    pub filter: Filter,
    pub predictions: PredictionsSource,
    pub run_id: String,
    /// Instances run at once.
    pub workers: usize,
    /// Limit for the eval script of one instance.
    pub timeout: Duration,
    pub images: Arc<dyn ImageSource>,
    pub specs: Arc<Specs>,
    /// `logs/run_evaluation` under the current directory, officially.
    pub log_root: PathBuf,
    /// Where `<model>.<run_id>.json` goes (officially the current directory).
    pub report_dir: PathBuf,
    /// Container network (off by default; the official harness leaves it on).
    pub network: bool,
    pub memory_bytes: Option<i64>,
    pub progress: Option<ProgressFn>,
    /// Set to `true` to stop: running instances are abandoned (their containers removed),
    /// finished ones keep their reports, and the summary is still written.
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
    /// Run the tests for empty patches too (graded like any other run) instead of the
    /// official "empty patch, not run"; validating a harness wants to see them fail.
    pub run_empty_patches: bool,
    /// Refuse, before any container starts, to evaluate instances that cannot be graded
    /// (no test lists, or an empty `FAIL_TO_PASS`). Off only for runs that collect test logs
    /// to make the lists from (`mine`).
    pub require_test_lists: bool,
}

impl EvalOptions {
    /// Defaults as the official CLI has them: 4 workers, 1800 s timeout, `logs/run_evaluation`, `.`.
    pub fn new(
        dataset: Vec<Instance>,
        predictions: PredictionsSource,
        run_id: impl Into<String>,
        images: Arc<dyn ImageSource>,
    ) -> EvalOptions {
        EvalOptions {
            dataset,
            filter: Filter::default(),
            predictions,
            run_id: run_id.into(),
            workers: 4,
            timeout: Duration::from_secs(1800),
            images,
            specs: Arc::new(Specs::builtin()),
            log_root: PathBuf::from("logs/run_evaluation"),
            report_dir: PathBuf::from("."),
            network: false,
            memory_bytes: Some(8 << 30),
            progress: None,
            cancel: None,
            run_empty_patches: false,
            require_test_lists: true,
        }
    }
}

/// The official run summary (`<model>.<run_id>.json`), field for field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryReport {
    pub total_instances: usize,
    pub submitted_instances: usize,
    pub completed_instances: usize,
    pub resolved_instances: usize,
    pub unresolved_instances: usize,
    pub empty_patch_instances: usize,
    pub error_instances: usize,
    pub completed_ids: Vec<String>,
    pub incomplete_ids: Vec<String>,
    pub empty_patch_ids: Vec<String>,
    pub submitted_ids: Vec<String>,
    pub resolved_ids: Vec<String>,
    pub unresolved_ids: Vec<String>,
    pub error_ids: Vec<String>,
    pub schema_version: u32,
}

impl SummaryReport {
    /// Resolved over total instances, as the leaderboards report it.
    pub fn resolve_rate(&self) -> f64 {
        if self.total_instances == 0 {
            0.0
        } else {
            self.resolved_instances as f64 / self.total_instances as f64
        }
    }
}

/// What `evaluate` returns.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub report: SummaryReport,
    /// Where the summary JSON was written.
    pub report_path: PathBuf,
    /// mend's finer outcome per instance run or skipped in this invocation.
    pub outcomes: BTreeMap<String, Outcome>,
    /// Where each instance's image departs from the official environment (sources that know).
    pub environments: BTreeMap<String, EnvironmentNotes>,
    /// mend's own record of the run beside the official summary: `<model>.<run_id>.mend.json`.
    pub details_path: PathBuf,
    pub elapsed: Duration,
}

/// What `<model>.<run_id>.mend.json` holds: per instance, mend's outcome and environment notes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunDetails {
    pub run_id: String,
    pub image_source: String,
    pub outcomes: BTreeMap<String, Outcome>,
    pub environments: BTreeMap<String, EnvironmentNotes>,
    /// The image each instance ran in.
    pub images: BTreeMap<String, String>,
    pub elapsed_secs: f64,
}

fn model_dir_name(model: &str) -> String {
    model.replace('/', "__")
}

/// The log directory of one instance (official layout).
pub fn instance_log_dir(log_root: &Path, run_id: &str, model: &str, instance_id: &str) -> PathBuf {
    log_root
        .join(run_id)
        .join(model_dir_name(model))
        .join(instance_id)
}

/// Evaluate predictions; see [`EvalOptions`].
pub async fn evaluate(opts: EvalOptions) -> Result<RunSummary, SwebenchError> {
    let started = Instant::now();
    if opts.run_id.trim().is_empty() || opts.run_id.contains('/') || opts.run_id.contains("..") {
        return Err(SwebenchError::Invalid(format!(
            "run id `{}` must be non-empty, without `/` or `..`",
            opts.run_id
        )));
    }
    let predictions = match &opts.predictions {
        PredictionsSource::Gold => gold_predictions(&opts.dataset),
        PredictionsSource::File(p) => crate::dataset::load_predictions(p)?,
        PredictionsSource::List(l) => l.clone(),
    };
    if predictions.is_empty() {
        return Err(SwebenchError::Invalid("no predictions to evaluate".into()));
    }
    let unknown: Vec<&str> = predictions
        .iter()
        .filter(|p| !opts.dataset.iter().any(|i| i.instance_id == p.instance_id))
        .map(|p| p.instance_id.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(SwebenchError::UnknownPredictions(unknown.join(" ")));
    }
    let selected = opts.filter.apply(opts.dataset.clone())?;
    let by_id: BTreeMap<&str, &Prediction> = predictions
        .iter()
        .map(|p| (p.instance_id.as_str(), p))
        .collect();
    if opts.require_test_lists {
        check_gradable(
            selected
                .iter()
                .filter(|i| by_id.contains_key(i.instance_id.as_str())),
        )?;
    }

    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let environments: std::sync::Mutex<BTreeMap<String, EnvironmentNotes>> = Default::default();
    let images: std::sync::Mutex<BTreeMap<String, String>> = Default::default();
    let mut queue: Vec<(Instance, Prediction)> = Vec::new();
    for inst in &selected {
        let Some(pred) = by_id.get(inst.instance_id.as_str()) else {
            continue;
        };
        if pred.is_empty() && !opts.run_empty_patches {
            outcomes.insert(inst.instance_id.clone(), Outcome::EmptyPatch);
            continue;
        }
        let report = instance_log_dir(
            &opts.log_root,
            &opts.run_id,
            &pred.model_name_or_path,
            &inst.instance_id,
        )
        .join(LOG_REPORT);
        if let Some(resolved) = read_resolved(&report, &inst.instance_id) {
            outcomes.insert(
                inst.instance_id.clone(),
                Outcome::AlreadyGraded { resolved },
            );
            continue;
        }
        queue.push((inst.clone(), (*pred).clone()));
    }
    let emit = |p: Progress| {
        if let Some(f) = &opts.progress {
            f(&p);
        }
    };
    let already = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::AlreadyGraded { .. }))
        .count();
    let empties = outcomes.len() - already;
    emit(Progress::Started {
        to_run: queue.len(),
        already_graded: already,
        empty_patches: empties,
    });
    if already > 0 {
        tracing::info!(
            already,
            "instances already graded in this run id; skipping them"
        );
    }

    if !queue.is_empty() {
        let engine = DockerEngine::connect().await?;
        if let Ok(n) = engine.sweep_stale().await
            && n > 0
        {
            tracing::info!(removed = n, "removed stale sandbox containers");
        }
        let total = queue.len();
        let done = AtomicUsize::new(0);
        let resolved = AtomicUsize::new(outcomes.values().filter(|o| o.is_resolved()).count());
        let ctx = RunCtx {
            opts: &opts,
            engine: &engine,
            environments: &environments,
            images: &images,
        };
        let cancel = opts.cancel.clone();
        let mut stream = futures_util::stream::iter(queue.into_iter().map(|(inst, pred)| {
            let ctx = &ctx;
            let mut cancel = cancel.clone();
            async move {
                let id = inst.instance_id.clone();
                if cancel.as_ref().is_some_and(|c| *c.borrow()) {
                    return (id, Outcome::Cancelled);
                }
                let run = run_instance(ctx, &inst, &pred);
                let outcome = match cancel.as_mut() {
                    Some(c) => tokio::select! {
                        o = run => o,
                        _ = wait_cancelled(c) => Outcome::Cancelled,
                    },
                    None => run.await,
                };
                (id, outcome)
            }
        }))
        .buffer_unordered(opts.workers.max(1));
        while let Some((id, outcome)) = stream.next().await {
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            let r = if outcome.is_resolved() {
                resolved.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                resolved.load(Ordering::Relaxed)
            };
            tracing::info!(instance = %id, ?outcome, "instance finished");
            emit(Progress::Finished {
                instance_id: id.clone(),
                outcome: outcome.clone(),
                done: d,
                total,
                resolved_so_far: r,
            });
            outcomes.insert(id, outcome);
        }
    }

    let report = make_run_report(&predictions, &selected, &opts.log_root, &opts.run_id);
    let model = predictions
        .first()
        .map(|p| model_dir_name(&p.model_name_or_path))
        .unwrap_or_else(|| "None".into());
    std::fs::create_dir_all(&opts.report_dir).map_err(SwebenchError::io(format!(
        "creating {}",
        opts.report_dir.display()
    )))?;
    let report_path = opts
        .report_dir
        .join(format!("{model}.{}.json", opts.run_id));
    write_atomic(&report_path, (to_json_indent4(&report) + "\n").as_bytes())?;
    let environments = environments.into_inner().unwrap_or_default();
    let elapsed = started.elapsed();
    let details_path = opts
        .report_dir
        .join(format!("{model}.{}.mend.json", opts.run_id));
    let details = RunDetails {
        run_id: opts.run_id.clone(),
        image_source: opts.images.kind().to_string(),
        outcomes: outcomes.clone(),
        environments: environments.clone(),
        images: images.into_inner().unwrap_or_default(),
        elapsed_secs: elapsed.as_secs_f64(),
    };
    write_atomic(&details_path, (to_json_indent4(&details) + "\n").as_bytes())?;
    Ok(RunSummary {
        report,
        report_path,
        outcomes,
        environments,
        details_path,
        elapsed,
    })
}

async fn wait_cancelled(c: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *c.borrow() {
            return;
        }
        if c.changed().await.is_err() {
            // Sender gone without cancelling: never cancelled.
            std::future::pending::<()>().await;
        }
    }
}

/// `resolved` from an existing report.json, if it is a valid one for this instance.
fn read_resolved(path: &Path, instance_id: &str) -> Option<bool> {
    let text = std::fs::read_to_string(path).ok()?;
    let report: ReportFile = serde_json::from_str(text.trim()).ok()?;
    report.get(instance_id).map(|r| r.resolved)
}

/// The official `make_run_report`, reading the reports on disk.
pub fn make_run_report(
    predictions: &[Prediction],
    dataset: &[Instance],
    log_root: &Path,
    run_id: &str,
) -> SummaryReport {
    let by_id: BTreeMap<&str, &Prediction> = predictions
        .iter()
        .map(|p| (p.instance_id.as_str(), p))
        .collect();
    let mut r = SummaryReport {
        total_instances: dataset.len(),
        submitted_instances: predictions.len(),
        schema_version: 2,
        ..Default::default()
    };
    for inst in dataset {
        let id = inst.instance_id.clone();
        let Some(pred) = by_id.get(id.as_str()) else {
            r.incomplete_ids.push(id);
            continue;
        };
        if pred.is_empty() {
            r.empty_patch_ids.push(id);
            continue;
        }
        let path =
            instance_log_dir(log_root, run_id, &pred.model_name_or_path, &id).join(LOG_REPORT);
        if path.exists() {
            r.completed_ids.push(id.clone());
            match read_resolved(&path, &id) {
                Some(true) => r.resolved_ids.push(id),
                Some(false) => r.unresolved_ids.push(id),
                None => r.error_ids.push(id),
            }
        } else {
            r.error_ids.push(id);
        }
    }
    let mut submitted: Vec<String> = predictions.iter().map(|p| p.instance_id.clone()).collect();
    for v in [
        &mut r.completed_ids,
        &mut r.incomplete_ids,
        &mut r.empty_patch_ids,
        &mut r.resolved_ids,
        &mut r.unresolved_ids,
        &mut r.error_ids,
        &mut submitted,
    ] {
        v.sort();
    }
    r.submitted_ids = submitted;
    r.completed_instances = r.completed_ids.len();
    r.resolved_instances = r.resolved_ids.len();
    r.unresolved_instances = r.unresolved_ids.len();
    r.empty_patch_instances = r.empty_patch_ids.len();
    r.error_instances = r.error_ids.len();
    r
}

struct RunCtx<'a> {
    opts: &'a EvalOptions,
    engine: &'a DockerEngine,
    environments: &'a std::sync::Mutex<BTreeMap<String, EnvironmentNotes>>,
    images: &'a std::sync::Mutex<BTreeMap<String, String>>,
}

/// `run_instance.log`, in the official logger's line format.
struct InstanceLog {
    file: std::fs::File,
}

impl InstanceLog {
    fn open(path: &Path) -> Result<InstanceLog, SwebenchError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(SwebenchError::io(format!("opening {}", path.display())))?;
        Ok(InstanceLog { file })
    }

    fn info(&mut self, msg: &str) {
        self.line("INFO", msg);
    }

    fn line(&mut self, level: &str, msg: &str) {
        // A log line that cannot be written must not fail the evaluation.
        let _ = writeln!(self.file, "{} - {level} - {msg}", timestamp());
    }
}

/// `YYYY-MM-DD HH:MM:SS,mmm` (UTC), the Python logging default shape.
fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02},{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), SwebenchError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(SwebenchError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(SwebenchError::io(format!("renaming to {}", path.display())))
}

async fn run_instance(ctx: &RunCtx<'_>, inst: &Instance, pred: &Prediction) -> Outcome {
    let opts = ctx.opts;
    let log_dir = instance_log_dir(
        &opts.log_root,
        &opts.run_id,
        &pred.model_name_or_path,
        &inst.instance_id,
    );
    if let Err(e) = std::fs::create_dir_all(&log_dir) {
        return Outcome::Error(format!("creating {}: {e}", log_dir.display()));
    }
    let mut log = match InstanceLog::open(&log_dir.join(LOG_INSTANCE)) {
        Ok(l) => l,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let outcome = match run_instance_inner(ctx, inst, pred, &log_dir, &mut log).await {
        Ok(o) => o,
        Err(e) => {
            log.line(
                "ERROR",
                &format!("Error in evaluating model for {}: {e}", inst.instance_id),
            );
            Outcome::Error(e.to_string())
        }
    };
    log.info(&format!(
        "mend outcome: {}",
        serde_json::to_string(&outcome).unwrap_or_default()
    ));
    outcome
}

async fn run_instance_inner(
    ctx: &RunCtx<'_>,
    inst: &Instance,
    pred: &Prediction,
    log_dir: &Path,
    log: &mut InstanceLog,
) -> Result<Outcome, SwebenchError> {
    let opts = ctx.opts;
    let id = &inst.instance_id;
    let patch = pred.model_patch.clone().unwrap_or_default();
    std::fs::write(log_dir.join(LOG_PATCH), &patch)
        .map_err(SwebenchError::io("writing patch.diff"))?;

    // Refuse what must never reach `git apply`/`patch`: paths outside the repo, .git, NUL bytes.
    // Malformed patches go down the official ladder (`patch --fuzz` accepts some git rejects).
    let validation = mend_sandbox::patch::validate(&patch, None);
    if let Err(e @ (PatchError::PathEscapes(_) | PatchError::GitDir(_) | PatchError::Binary)) =
        &validation
    {
        log.info(&format!(
            "{APPLY_PATCH_FAIL}:\npatch rejected before applying: {e}"
        ));
        return Ok(Outcome::PatchRejected(e.to_string()));
    }

    let spec = opts.specs.get(&inst.repo, &inst.version)?;
    let repo_spec = opts
        .specs
        .repo(&inst.repo)
        .ok_or_else(|| SwebenchError::Invalid(format!("no spec for {}", inst.repo)))?;
    let script = eval_script(inst, repo_spec, spec);

    let image = {
        let progress = opts.progress.clone();
        let iid = id.clone();
        let cb = move |line: &str| {
            tracing::debug!(instance = %iid, "{line}");
            if let Some(p) = &progress {
                p(&Progress::Image {
                    instance_id: iid.clone(),
                    line: line.to_string(),
                });
            }
        };
        opts.images.image_for(ctx.engine, inst, &cb).await?
    };
    log.info(&format!("Image for {id}: {image} ({})", opts.images.kind()));
    if let Ok(mut m) = ctx.images.lock() {
        m.insert(id.clone(), image.clone());
    }
    if let Some(env) = opts.images.environment(inst) {
        for n in &env.notes {
            log.info(&format!("Environment differs from the official one: {n}"));
        }
        if let Ok(mut m) = ctx.environments.lock() {
            m.insert(id.clone(), env);
        }
    }
    let mut cfg = DockerConfig::new(image.clone());
    cfg.root = REPO_DIR.into();
    cfg.user = UserChoice::Root;
    cfg.network = opts.network;
    cfg.memory_bytes = opts.memory_bytes;
    cfg.nano_cpus = spec.nano_cpus;
    cfg.labels
        .insert("dev.mend.swebench.run_id".into(), opts.run_id.clone());
    cfg.labels
        .insert("dev.mend.swebench.instance_id".into(), id.clone());
    let sandbox = DockerSandbox::start(ctx.engine, cfg).await?;
    log.info(&format!("Container for {id} started: {}", sandbox.name()));
    if let Some(p) = &opts.progress {
        p(&Progress::Running {
            instance_id: id.clone(),
        });
    }

    // Patch and eval script into the container.
    let stage = tempfile::tempdir().map_err(SwebenchError::io("creating a staging directory"))?;
    std::fs::write(stage.path().join("patch.diff"), &patch)
        .map_err(SwebenchError::io("staging patch.diff"))?;
    std::fs::write(stage.path().join("eval.sh"), &script)
        .map_err(SwebenchError::io("staging eval.sh"))?;
    std::fs::write(log_dir.join(LOG_EVAL_SCRIPT), &script)
        .map_err(SwebenchError::io("writing eval.sh"))?;
    sandbox.copy_in(stage.path(), WORK_DIR).await?;
    log.info(&format!(
        "Intermediate patch for {id} written to {}, now applying to container...",
        log_dir.join(LOG_PATCH).display()
    ));

    let short = Duration::from_secs(300);
    // An empty patch reaches here only with `run_empty_patches`: nothing to apply.
    let mut applied = patch.is_empty();
    let mut last_output = String::new();
    for cmd in APPLY_COMMANDS {
        if applied {
            break;
        }
        let out = sandbox
            .exec(
                &Exec::shell(format!("{cmd} {WORK_DIR}/patch.diff 2>&1"))
                    .cwd(REPO_DIR)
                    .timeout(short),
            )
            .await?;
        last_output = out.stdout.text();
        if out.success() {
            log.info(&format!("{APPLY_PATCH_PASS}:\n{last_output}"));
            applied = true;
            break;
        }
        log.info(&format!("Failed to apply patch to container: {cmd}"));
    }
    if !applied {
        let why = match validation {
            Err(e) => format!("{e}; {}", last_output.trim()),
            Ok(_) => last_output.trim().to_string(),
        };
        log.info(&format!("{APPLY_PATCH_FAIL}:\n{last_output}"));
        return Ok(Outcome::PatchApplyFailed(why));
    }

    let git_diff = Exec::shell("git -c core.fileMode=false diff")
        .cwd(REPO_DIR)
        .timeout(short);
    let before = sandbox.exec(&git_diff).await?.stdout.text();
    log.info(&format!("Git diff before:\n{}", before.trim()));
    log.info(&format!(
        "Eval script for {id} written to {}; copying to container...",
        log_dir.join(LOG_EVAL_SCRIPT).display()
    ));

    let run = Exec::shell(format!(
        "/bin/bash {WORK_DIR}/eval.sh > {WORK_DIR}/test_output.txt 2>&1"
    ))
    .cwd(REPO_DIR)
    .timeout(opts.timeout);
    let out = sandbox.exec(&run).await?;
    log.info(&format!(
        "Test runtime: {:.2} seconds",
        out.elapsed.as_secs_f64()
    ));
    let fetched = tempfile::tempdir().map_err(SwebenchError::io(
        "creating a directory for the test output",
    ))?;
    sandbox
        .copy_out(&format!("{WORK_DIR}/test_output.txt"), fetched.path())
        .await?;
    let bytes = std::fs::read(fetched.path().join("test_output.txt"))
        .map_err(SwebenchError::io("reading the test output"))?;
    let mut test_output = String::from_utf8_lossy(&bytes).into_owned();
    let test_output_path = log_dir.join(LOG_TEST_OUTPUT);
    match out.termination {
        Termination::TimedOut => {
            test_output.push_str(&format!(
                "\n\nTimeout error: {} seconds exceeded.",
                opts.timeout.as_secs()
            ));
            std::fs::write(&test_output_path, &test_output)
                .map_err(SwebenchError::io("writing test_output.txt"))?;
            log.info(&format!(
                "Test output for {id} written to {}",
                test_output_path.display()
            ));
            log.info(&format!(
                "Test timed out after {} seconds.",
                opts.timeout.as_secs()
            ));
            return Ok(Outcome::Timeout);
        }
        Termination::OutOfMemory => {
            std::fs::write(&test_output_path, &test_output)
                .map_err(SwebenchError::io("writing test_output.txt"))?;
            return Ok(Outcome::Error(
                "the eval script was killed: out of memory (raise the memory limit)".into(),
            ));
        }
        _ => {}
    }
    std::fs::write(&test_output_path, &test_output)
        .map_err(SwebenchError::io("writing test_output.txt"))?;
    log.info(&format!(
        "Test output for {id} written to {}",
        test_output_path.display()
    ));

    let after = sandbox.exec(&git_diff).await?.stdout.text();
    log.info(&format!("Git diff after:\n{}", after.trim()));
    if after.trim() != before.trim() {
        log.info("Git diff changed after running eval script");
    }
    drop(sandbox);

    log.info(&format!("Grading answer for {id}..."));
    let report = grade(
        pred.model_patch.as_deref(),
        &test_output,
        repo_spec.log_parser,
        inst.fail_to_pass.as_deref().unwrap_or_default(),
        inst.pass_to_pass.as_deref().unwrap_or_default(),
    );
    let resolved = report.resolved;
    let file: ReportFile = [(id.clone(), report)].into_iter().collect();
    let json = to_json_indent4(&file);
    log.info(&format!(
        "report: {json}\nResult for {id}: resolved: {}",
        if resolved { "True" } else { "False" }
    ));
    write_atomic(&log_dir.join(LOG_REPORT), json.as_bytes())?;
    Ok(if resolved {
        Outcome::Resolved
    } else {
        Outcome::Unresolved
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_python_logging() {
        let t = timestamp();
        assert_eq!(t.len(), 23, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[19..20], ",");
        assert!(t.starts_with("20"));
    }

    fn inst(id: &str) -> Instance {
        crate::dataset::parse_instances(
            &format!(r#"{{"instance_id":"{id}","repo":"o/r","base_commit":"abcdef0","version":"1","patch":"p","test_patch":"diff --git a/x b/x\n"}}"#),
            "t",
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn run_report_counts_like_the_official_one() {
        let dir = tempfile::tempdir().unwrap();
        let ds: Vec<Instance> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|i| inst(&format!("o__r-{i}")))
            .collect();
        let p = |id: &str, patch: Option<&str>| Prediction {
            instance_id: format!("o__r-{id}"),
            model_name_or_path: "org/model".into(),
            model_patch: patch.map(str::to_string),
        };
        let preds = vec![
            p("a", Some("x")),
            p("b", Some("x")),
            p("c", Some("")),
            p("d", None),
            p("e", Some("x")),
        ];
        let write = |id: &str, body: &str| {
            let d = instance_log_dir(dir.path(), "r1", "org/model", &format!("o__r-{id}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(LOG_REPORT), body).unwrap();
        };
        write(
            "a",
            r#"{"o__r-a": {"patch_is_None": false, "patch_exists": true, "patch_successfully_applied": true, "resolved": true}}"#,
        );
        write(
            "b",
            r#"{"o__r-b": {"patch_is_None": false, "patch_exists": true, "patch_successfully_applied": false, "resolved": false}}"#,
        );
        // e has no report: an error. f has no prediction: incomplete.
        assert!(dir.path().join("r1/org__model/o__r-a/report.json").exists());
        let r = make_run_report(&preds, &ds, dir.path(), "r1");
        assert_eq!(
            (
                r.total_instances,
                r.submitted_instances,
                r.completed_instances
            ),
            (6, 5, 2)
        );
        assert_eq!(r.resolved_ids, vec!["o__r-a"]);
        assert_eq!(r.unresolved_ids, vec!["o__r-b"]);
        assert_eq!(r.empty_patch_ids, vec!["o__r-c", "o__r-d"]);
        assert_eq!(r.error_ids, vec!["o__r-e"]);
        assert_eq!(r.incomplete_ids, vec!["o__r-f"]);
        assert_eq!(r.schema_version, 2);
        let v: serde_json::Value = serde_json::from_str(&to_json_indent4(&r)).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = vec![
            "total_instances",
            "submitted_instances",
            "completed_instances",
            "resolved_instances",
            "unresolved_instances",
            "empty_patch_instances",
            "error_instances",
            "completed_ids",
            "incomplete_ids",
            "empty_patch_ids",
            "submitted_ids",
            "resolved_ids",
            "unresolved_ids",
            "error_ids",
            "schema_version",
        ];
        want.sort();
        assert_eq!(keys, want);
    }
}
