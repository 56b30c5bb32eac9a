//! Batch agent runs (`mend swebench run`): the agent over a dataset selection, each instance
//! in its own container from its instance image with the repository at `base_commit` and the
//! issue as the only input. Everything lands in one run directory:
//!
//! - `predictions.jsonl`: the official `{instance_id, model_name_or_path, model_patch}`, one
//!   line appended (one `write`, then fsync) as each instance finishes;
//! - `status.jsonl`: one line per attempt (exit status, tokens, cost, wall time, patch size);
//! - `trajectories/<id>.traj.json` and `logs/<id>.log` per instance;
//! - `summary.json`: the run so far, rewritten atomically after every instance.
//!
//! Resumable: the same run id skips instances with a prediction and runs again those that
//! ended in an infrastructure error (image, container, model unreachable, Ctrl-C). A torn
//! last line (a crash or a full disk mid-append) is detected, dropped with a warning and
//! cut from the file.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use mend_agent::trajectory::TrajectoryWriter;
use mend_agent::{
    Agent, AgentConfig, ContextOptions, Event, ExitStatus, Prompts, RepoContext, TaskInput,
    Toolbox, repo_context, workspace,
};
use mend_index::{Index, IndexOptions};
use mend_llm::{Ledger, Limits, Model};
use mend_sandbox::{DockerConfig, DockerEngine, DockerSandbox, Exec, Sandbox, UserChoice};
use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;
use tokio::sync::watch;

use crate::SwebenchError;
use crate::dataset::{Filter, Instance};
use crate::images::ImageSource;
use crate::script::REPO_DIR;
use crate::specs::Specs;

pub const PREDICTIONS: &str = "predictions.jsonl";
pub const STATUS: &str = "status.jsonl";
pub const SUMMARY: &str = "summary.json";

/// Makes the model one attempt at an instance talks to, charging that instance's ledger (a
/// child of the batch's, so `--max-total-cost` stops every worker). The attempt number is
/// `Some(k)` when attempts must differ (best-of-N, a retry): sample with
/// [`mend_agent::candidates::attempt_sampling`]; `None`: as configured.
pub type ModelFactory = Arc<
    dyn Fn(&Instance, Arc<Ledger>, Option<usize>) -> Result<Arc<dyn Model>, String> + Send + Sync,
>;

/// Everything [`run_agent`] needs.
pub struct RunOptions {
    pub dataset: Vec<Instance>,
    pub filter: Filter,
    pub run_id: String,
    /// The run directory is `<out_root>/<run_id>`.
    pub out_root: PathBuf,
    /// `model_name_or_path` in the predictions.
    pub model_name: String,
    pub models: ModelFactory,
    pub instance_limits: Limits,
    pub total_limits: Limits,
    pub workers: usize,
    pub images: Arc<dyn ImageSource>,
    pub specs: Arc<Specs>,
    pub agent: AgentConfig,
    pub prompts: Prompts,
    /// Add the dataset's `hints_text` to the issue (off: the issue is the only input).
    pub with_hints: bool,
    /// Index the repository (mend-index) for the first prompt's hints and symbol search.
    pub localize: bool,
    pub memory_bytes: Option<i64>,
    pub progress: Option<RunProgressFn>,
    /// Turning true stops the run: running instances end as `interrupted` (run again on
    /// resume), their containers are removed, finished ones are kept.
    pub cancel: Option<watch::Receiver<bool>>,
    /// Independent attempts per instance (best-of-N); 1: one attempt, retried once in a
    /// fresh sandbox when it ends without a patch.
    pub candidates: usize,
    /// Ask the model to choose among candidates still tied after the checks.
    pub judge: bool,
}

impl RunOptions {
    pub fn run_dir(&self) -> PathBuf {
        self.out_root.join(&self.run_id)
    }
}

/// One attempt at one instance, as `status.jsonl` records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceRecord {
    pub instance_id: String,
    pub repo: String,
    /// `done` (a prediction was written) or `error` (run again on resume).
    pub state: String,
    /// The agent's exit status kind (`submitted`, `limit_reached`...) or `infrastructure`.
    pub exit: String,
    /// The one-line exit summary or the error.
    pub detail: String,
    pub steps: usize,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_secs: f64,
    pub patch_bytes: usize,
    pub patch_files: usize,
    pub image: Option<String>,
    /// Best-of-N (or the retry of an attempt without a patch): how the prediction was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Box<SelectionSummary>>,
}

/// How one instance's prediction was chosen among its attempts (the whole record, with
/// the matrix, is in the trajectory's `selection`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SelectionSummary {
    pub candidates: usize,
    /// 0-based; `None` when every candidate was dropped.
    pub winner: Option<usize>,
    pub differs_from_first: bool,
    pub retried: bool,
    /// Per candidate: its score in thousandths (0 when dropped) and patch size.
    pub scores: Vec<u32>,
    pub patch_bytes: Vec<usize>,
    pub reason: String,
}

impl InstanceRecord {
    /// An instance that ended in error before (or instead of) a normal finish; the run's
    /// own figures are filled in as it goes.
    fn error(inst: &Instance, exit: &str, detail: String) -> InstanceRecord {
        InstanceRecord {
            instance_id: inst.instance_id.clone(),
            repo: inst.repo.clone(),
            state: "error".into(),
            exit: exit.into(),
            detail,
            steps: 0,
            tokens_in: 0,
            tokens_out: 0,
            cost_usd: 0.0,
            wall_secs: 0.0,
            patch_bytes: 0,
            patch_files: 0,
            image: None,
            selection: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == "done"
    }
}

pub type RunProgressFn = Arc<dyn Fn(&RunProgress) + Send + Sync>;

/// Progress, in the order it happens.
#[derive(Debug, Clone)]
pub enum RunProgress {
    Started {
        total: usize,
        to_run: usize,
        already_done: usize,
        dropped_torn_lines: usize,
    },
    InstanceStarted {
        instance_id: String,
    },
    /// A step of a running instance; `cost_usd` is the whole batch's spend so far.
    InstanceStep {
        instance_id: String,
        step: usize,
        cost_usd: f64,
    },
    InstanceFinished {
        record: InstanceRecord,
        done: usize,
        total: usize,
        cost_usd: f64,
    },
}

/// The run directory's `summary.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunSummaryFile {
    pub run_id: String,
    pub model_name_or_path: String,
    pub selected: usize,
    pub done: usize,
    pub errors: usize,
    pub not_run: usize,
    pub exit_statuses: BTreeMap<String, usize>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_secs_total: f64,
    pub wall_secs_median: f64,
    pub patch_bytes_total: usize,
    pub empty_patches: usize,
    /// Instances whose prediction was chosen among several attempts.
    #[serde(default)]
    pub selected_among_candidates: usize,
    /// Of those, how many took another candidate than the first.
    #[serde(default)]
    pub choice_differs_from_first: usize,
    /// Attempts without a patch run once more (one candidate).
    #[serde(default)]
    pub retried: usize,
    /// The latest record per instance.
    pub instances: Vec<InstanceRecord>,
}

/// What [`run_agent`] returns.
pub struct AgentRunSummary {
    pub summary: RunSummaryFile,
    pub run_dir: PathBuf,
    pub predictions_path: PathBuf,
    pub elapsed: Duration,
    /// Why the run stopped early, if it did (Ctrl-C, total budget, a file that cannot be written).
    pub stopped: Option<String>,
}

/// Run the agent over the selected instances; see the module docs.
pub async fn run_agent(opts: RunOptions) -> Result<AgentRunSummary, SwebenchError> {
    let started = Instant::now();
    if opts.run_id.trim().is_empty() || opts.run_id.contains('/') || opts.run_id.contains("..") {
        return Err(SwebenchError::Invalid(format!(
            "run id `{}` must be non-empty, without `/` or `..`",
            opts.run_id
        )));
    }
    let selected = opts.filter.apply(opts.dataset.clone())?;
    if selected.is_empty() {
        return Err(SwebenchError::Invalid(
            "the selection is empty: no instance to run".into(),
        ));
    }
    let run_dir = opts.run_dir();
    for sub in ["trajectories", "logs"] {
        std::fs::create_dir_all(run_dir.join(sub)).map_err(SwebenchError::io(format!(
            "creating {}",
            run_dir.join(sub).display()
        )))?;
    }
    let predictions_path = run_dir.join(PREDICTIONS);
    let status_path = run_dir.join(STATUS);
    let (previous, torn_p) = read_jsonl::<PredictionLine>(&predictions_path)?;
    let (records, torn_s) = read_jsonl::<InstanceRecord>(&status_path)?;
    let done: BTreeSet<String> = previous.iter().map(|p| p.instance_id.clone()).collect();
    let queue: Vec<Instance> = selected
        .iter()
        .filter(|i| !done.contains(&i.instance_id))
        .cloned()
        .collect();
    let already_done = selected.len() - queue.len();
    let emit = |p: RunProgress| {
        if let Some(f) = &opts.progress {
            f(&p);
        }
    };
    emit(RunProgress::Started {
        total: selected.len(),
        to_run: queue.len(),
        already_done,
        dropped_torn_lines: torn_p + torn_s,
    });

    let files = Mutex::new(RunFiles {
        predictions: predictions_path.clone(),
        status: status_path.clone(),
        records,
    });
    let batch = Ledger::new("batch", opts.total_limits);
    // The spend of earlier attempts of this run id counts against the total too.
    let spent_before: f64 = lock(&files).records.iter().map(|r| r.cost_usd).sum();
    let stopped: Mutex<Option<String>> = Mutex::new(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_all = |why: String| {
        lock(&stopped).get_or_insert(why);
        let _ = stop_tx.send(true);
    };
    if let Some(limit) = opts.total_limits.max_cost_usd
        && spent_before >= limit
    {
        stop_all(format!(
            "the total budget of ${limit:.2} was spent by earlier attempts of this run (${spent_before:.2})"
        ));
    }

    if !queue.is_empty() && !*stop_rx.borrow() {
        let engine = DockerEngine::connect().await?;
        if let Ok(n) = engine.sweep_stale().await
            && n > 0
        {
            tracing::info!(removed = n, "removed stale sandbox containers");
        }
        let slots = tokio::sync::Semaphore::new(opts.workers.max(1));
        let ctx = Ctx {
            opts: &opts,
            slots: &slots,
            engine: &engine,
            batch: &batch,
            run_dir: &run_dir,
            spent_before,
        };
        let total = selected.len();
        let mut finished = already_done;
        let mut stream = futures_util::stream::iter(queue.into_iter().map(|inst| {
            let ctx = &ctx;
            let mut stop = stop_rx.clone();
            let mut cancel = opts.cancel.clone();
            async move {
                if *stop.borrow() || cancel.as_ref().is_some_and(|c| *c.borrow()) {
                    return None;
                }
                // Ctrl-C and a batch stop both reach the agent as its stop signal.
                let (agent_stop_tx, agent_stop_rx) = watch::channel(false);
                // A panic inside one instance ends that instance as an error; the others go on.
                let run = AssertUnwindSafe(run_instance(ctx, &inst, agent_stop_rx))
                    .catch_unwind()
                    .map(|r| r.unwrap_or_else(|panic| panicked(ctx, &inst, panic.as_ref())));
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        r = &mut run => return Some(r),
                        _ = stop.changed() => { let _ = agent_stop_tx.send(true); }
                        _ = wait_true(&mut cancel) => { let _ = agent_stop_tx.send(true); }
                    }
                }
            }
        }))
        .buffer_unordered(opts.workers.max(1));
        while let Some(result) = stream.next().await {
            let Some((record, prediction)) = result else {
                continue;
            };
            let mut f = lock(&files);
            if let Some(p) = &prediction
                && let Err(e) = append_line(&f.predictions, p)
            {
                stop_all(format!(
                    "cannot append to {}: {e}; finished instances are kept, re-run the same run id to go on",
                    f.predictions.display()
                ));
                continue;
            }
            if let Err(e) = append_line(&f.status, &record) {
                stop_all(format!("cannot append to {}: {e}", f.status.display()));
            }
            f.records.push(record.clone());
            let summary = summarize(&opts, &selected, &f.records);
            drop(f);
            if let Err(e) = write_atomic(&run_dir.join(SUMMARY), &summary) {
                tracing::warn!(error = %e, "could not write the run summary");
            }
            if record.is_done() {
                finished += 1;
            }
            let cost = spent_before + batch.totals().cost_usd;
            emit(RunProgress::InstanceFinished {
                record,
                done: finished,
                total,
                cost_usd: cost,
            });
            if let Err(e) = batch.check() {
                stop_all(e.to_string());
            }
        }
    }
    if opts.cancel.as_ref().is_some_and(|c| *c.borrow()) {
        lock(&stopped).get_or_insert_with(|| "interrupted".into());
    }
    let summary = summarize(&opts, &selected, &lock(&files).records);
    write_atomic(&run_dir.join(SUMMARY), &summary)?;
    let stopped = lock(&stopped).clone();
    Ok(AgentRunSummary {
        summary,
        run_dir,
        predictions_path,
        elapsed: started.elapsed(),
        stopped,
    })
}

struct RunFiles {
    predictions: PathBuf,
    status: PathBuf,
    records: Vec<InstanceRecord>,
}

struct Ctx<'a> {
    opts: &'a RunOptions,
    /// Attempts running at once, across instances: the worker budget.
    slots: &'a tokio::sync::Semaphore,
    engine: &'a DockerEngine,
    batch: &'a Arc<Ledger>,
    run_dir: &'a Path,
    spent_before: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn wait_true(c: &mut Option<watch::Receiver<bool>>) {
    let Some(c) = c else {
        return std::future::pending().await;
    };
    loop {
        if *c.borrow() {
            return;
        }
        if c.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// A predictions line as written (the official three fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictionLine {
    pub instance_id: String,
    pub model_name_or_path: String,
    pub model_patch: Option<String>,
}

/// A line-per-record file, tolerant of a torn last line: it is dropped with a warning and
/// cut from the file so the next append starts clean. A bad line elsewhere is an error.
fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(Vec<T>, usize), SwebenchError> {
    let (out, good_len, torn) = read_complete_lines(path)?;
    if torn > 0 {
        tracing::warn!(file = %path.display(), "dropping a torn last line (the previous run stopped mid-write)");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(SwebenchError::io(format!("opening {}", path.display())))?;
        f.set_len(good_len as u64)
            .map_err(SwebenchError::io(format!(
                "cutting the torn line from {}",
                path.display()
            )))?;
    }
    Ok((out, torn))
}

/// The complete records of a line-per-record file, the byte length they end at, and
/// whether the last line is torn (1) or not (0). The file is left as it is, so this also
/// reads a file another process is still appending to. A bad line elsewhere is an error.
pub(crate) fn read_complete_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(Vec<T>, usize, usize), SwebenchError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], 0, 0)),
        Err(e) => {
            return Err(SwebenchError::Io {
                action: format!("reading {}", path.display()),
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    let mut good_len = 0usize;
    let mut torn = 0usize;
    let mut offset = 0usize;
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let complete = line.ends_with(b"\n");
        let text = String::from_utf8_lossy(line);
        offset += line.len();
        if text.trim().is_empty() {
            good_len = offset;
            continue;
        }
        match serde_json::from_str::<T>(text.trim()) {
            Ok(v) if complete => {
                out.push(v);
                good_len = offset;
            }
            _ if last => torn = 1,
            Err(e) => {
                return Err(SwebenchError::Record {
                    source_name: path.display().to_string(),
                    line: i + 1,
                    field: None,
                    message: e.to_string(),
                });
            }
            Ok(_) => unreachable!("a complete line is handled above"),
        }
    }
    Ok((out, good_len, torn))
}

/// Append one JSON line with a single `write` and fsync: a crash leaves either the whole
/// line or a torn one that [`read_jsonl`] drops.
fn append_line<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), SwebenchError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| SwebenchError::Invalid(e.to_string()))?
        + "\n";
    std::fs::write(&tmp, text).map_err(SwebenchError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(SwebenchError::io(format!("renaming to {}", path.display())))
}

fn summarize(
    opts: &RunOptions,
    selected: &[Instance],
    records: &[InstanceRecord],
) -> RunSummaryFile {
    let mut latest: BTreeMap<&str, &InstanceRecord> = BTreeMap::new();
    for r in records {
        // A done record is final; a later error of the same instance cannot hide it.
        match latest.get(r.instance_id.as_str()) {
            Some(prev) if prev.is_done() => {}
            _ => {
                latest.insert(&r.instance_id, r);
            }
        }
    }
    let chosen: Vec<InstanceRecord> = selected
        .iter()
        .filter_map(|i| latest.get(i.instance_id.as_str()).map(|r| (*r).clone()))
        .collect();
    let mut s = RunSummaryFile {
        run_id: opts.run_id.clone(),
        model_name_or_path: opts.model_name.clone(),
        selected: selected.len(),
        ..Default::default()
    };
    let mut walls: Vec<f64> = Vec::new();
    for r in &chosen {
        if r.is_done() {
            s.done += 1;
            s.patch_bytes_total += r.patch_bytes;
            if r.patch_bytes == 0 {
                s.empty_patches += 1;
            }
        } else {
            s.errors += 1;
        }
        *s.exit_statuses.entry(r.exit.clone()).or_default() += 1;
        walls.push(r.wall_secs);
        if let Some(sel) = &r.selection {
            if sel.retried {
                s.retried += 1;
            } else {
                s.selected_among_candidates += 1;
                s.choice_differs_from_first += usize::from(sel.differs_from_first);
            }
        }
    }
    // Spend and time count every attempt: they were paid for.
    for r in records {
        s.tokens_in += r.tokens_in;
        s.tokens_out += r.tokens_out;
        s.cost_usd += r.cost_usd;
        s.wall_secs_total += r.wall_secs;
    }
    walls.sort_by(f64::total_cmp);
    s.wall_secs_median = walls.get(walls.len() / 2).copied().unwrap_or(0.0);
    s.not_run = s.selected - chosen.len();
    s.instances = chosen;
    s
}

/// Read a run directory's summary (for `mend swebench report`).
pub fn read_summary(run_dir: &Path) -> Result<RunSummaryFile, SwebenchError> {
    let path = run_dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path)
        .map_err(SwebenchError::io(format!("reading {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| SwebenchError::File {
        path,
        message: e.to_string(),
    })
}

/// A per-instance log file: plain timestamped lines.
struct InstanceLog(Option<std::fs::File>);

impl InstanceLog {
    fn open(path: &Path) -> InstanceLog {
        InstanceLog(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok(),
        )
    }
    fn line(&mut self, msg: &str) {
        if let Some(f) = &mut self.0 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            // A log line that cannot be written must not fail the run.
            let _ = writeln!(f, "[{}.{:03}] {msg}", t.as_secs(), t.subsec_millis());
        }
    }
}

/// One instance start to end. Returns the status record and, when the agent's work is done
/// (whatever its outcome), the prediction to append.
async fn run_instance(
    ctx: &Ctx<'_>,
    inst: &Instance,
    stop: watch::Receiver<bool>,
) -> (InstanceRecord, Option<PredictionLine>) {
    let opts = ctx.opts;
    let id = &inst.instance_id;
    let started = Instant::now();
    let mut log = InstanceLog::open(&ctx.run_dir.join("logs").join(format!("{id}.log")));
    log.line(&format!(
        "instance {id} ({} {}) at {}",
        inst.repo, inst.version, inst.base_commit
    ));
    if let Some(p) = &opts.progress {
        p(&RunProgress::InstanceStarted {
            instance_id: id.clone(),
        });
    }
    let mut record = InstanceRecord::error(inst, "infrastructure", String::new());
    let result = drive_instance(ctx, inst, stop, &mut log, &mut record).await;
    record.wall_secs = started.elapsed().as_secs_f64();
    match result {
        Ok(Some(patch)) => {
            record.state = "done".into();
            record.patch_bytes = patch.len();
            record.patch_files = patch
                .lines()
                .filter(|l| l.starts_with("diff --git "))
                .count();
            log.line(&format!(
                "done: {} ({} bytes of patch)",
                record.detail, record.patch_bytes
            ));
            let prediction = PredictionLine {
                instance_id: id.clone(),
                model_name_or_path: opts.model_name.clone(),
                model_patch: Some(patch),
            };
            (record, Some(prediction))
        }
        Ok(None) => {
            log.line(&format!(
                "not recorded, will run again on resume: {}",
                record.detail
            ));
            (record, None)
        }
        Err(e) => {
            record.detail = e.to_string();
            log.line(&format!("error: {e}"));
            (record, None)
        }
    }
}

/// The record of an instance whose run panicked (a bug in mend, or in a model factory):
/// an error like any other, logged, with no prediction, so a resume runs it again.
fn panicked(
    ctx: &Ctx<'_>,
    inst: &Instance,
    panic: &(dyn std::any::Any + Send),
) -> (InstanceRecord, Option<PredictionLine>) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    let id = &inst.instance_id;
    tracing::error!(instance = %id, panic = %what, "the instance's run panicked");
    let mut log = InstanceLog::open(&ctx.run_dir.join("logs").join(format!("{id}.log")));
    log.line(&format!("error: the run panicked: {what}"));
    let record = InstanceRecord::error(inst, "panic", format!("the run panicked: {what}"));
    (record, None)
}

/// The agent on one instance. `Ok(Some(patch))` when its work is done, `Ok(None)` when it
/// ended for an infrastructure reason (recorded in `record`), `Err` when it could not start.
/// With several candidates, each attempt runs in its own container and the prediction is
/// the one [`mend_agent::select::choose`] picks; with one, an attempt that ends without a
/// patch is run once more (fresh container, other seed).
async fn drive_instance(
    ctx: &Ctx<'_>,
    inst: &Instance,
    stop: watch::Receiver<bool>,
    log: &mut InstanceLog,
    record: &mut InstanceRecord,
) -> Result<Option<String>, SwebenchError> {
    let opts = ctx.opts;
    let id = &inst.instance_id;
    let spec = opts.specs.get(&inst.repo, &inst.version)?;
    let mut issue = inst.problem_statement.clone();
    if opts.with_hints
        && let Some(h) = inst
            .extra
            .get("hints_text")
            .and_then(|v| v.as_str())
            .filter(|h| !h.trim().is_empty())
    {
        issue.push_str("\n\nHints from the discussion:\n");
        issue.push_str(h);
    }
    let n = opts.candidates.max(1);
    let ledger = ctx.batch.child(id.clone(), opts.instance_limits);
    let model_for = |k: Option<usize>| -> Result<Arc<dyn Model>, SwebenchError> {
        let child = ledger.child(
            format!("{id} attempt {}", k.unwrap_or(0) + 1),
            Limits::default(),
        );
        (opts.models)(inst, child, k).map_err(SwebenchError::Invalid)
    };
    let mut config = opts.agent.clone();
    // The regression guard reads this repository's tests with its own log parser.
    if let Some(v) = config.verify.as_mut()
        && v.suite.is_none()
    {
        v.suite = crate::suite::RepoSuite::for_instance(&opts.specs, &inst.repo, &inst.version)
            .ok()
            .map(|s| Arc::new(s) as Arc<dyn mend_agent::TestSuite>);
    }
    let probe = Agent {
        model: model_for(None)?,
        prompts: opts.prompts.clone(),
        config: config.clone(),
    };
    // An issue too big for the model's window is refused before any container starts.
    probe
        .check_fits(&TaskInput {
            issue: issue.clone(),
            base_commit: Some(inst.base_commit.clone()),
            ..Default::default()
        })
        .map_err(SwebenchError::Invalid)?;
    let image = opts
        .images
        .image_for(
            ctx.engine,
            inst,
            &|line: &str| tracing::debug!(instance = %id, "{line}"),
        )
        .await?;
    record.image = Some(image.clone());
    log.line(&format!("image {image} ({})", opts.images.kind()));
    let test_cmd = spec.test_cmd.commands().join(" && ");
    let image = image.as_str();
    let first_sb = {
        let _slot = ctx.slots.acquire().await;
        start_sandbox(ctx, inst, image, spec.nano_cpus).await?
    };
    log.line(&format!("container {}", first_sb.name()));
    let first_sb: Arc<dyn Sandbox> = Arc::new(first_sb);
    let mut task = TaskInput {
        issue,
        base_commit: Some(inst.base_commit.clone()),
        layout: workspace::layout(first_sb.as_ref()).await,
        ..Default::default()
    };
    let mut index = None;
    if opts.localize {
        let t = Instant::now();
        if let Some((ix, context)) = index_in(first_sb.as_ref(), &task.issue).await {
            log.line(&format!(
                "indexed {} files, {} symbols; localized in {:.1}s",
                ix.stats().files,
                ix.stats().symbols,
                t.elapsed().as_secs_f64()
            ));
            task.localized = context.localized;
            task.repo_map = context.repo_map;
            task.code_pack = context.code_pack;
            index = Some(ix);
        }
    }
    let traj_dir = ctx.run_dir.join("trajectories");
    let traj_of = |k: Option<usize>| match k {
        None => traj_dir.join(format!("{id}.traj.json")),
        Some(k) => traj_dir.join(format!("{id}.cand{}.traj.json", k + 1)),
    };
    let config = &config;
    let attempt =
        |k: usize, sandbox: Option<Arc<dyn Sandbox>>, sampling: Option<usize>, traj: PathBuf| {
            let (task, index, test_cmd, stop) =
                (task.clone(), index.clone(), test_cmd.clone(), stop.clone());
            let model = model_for(sampling);
            async move {
                let _slot = ctx.slots.acquire().await;
                let sandbox: Arc<dyn Sandbox> = match sandbox {
                    Some(s) => s,
                    None => Arc::new(start_sandbox(ctx, inst, image, spec.nano_cpus).await?),
                };
                let agent = Agent {
                    model: model?,
                    prompts: opts.prompts.clone(),
                    config: config.clone(),
                };
                let mut toolbox = Toolbox::new(sandbox.clone(), Some(test_cmd), index);
                toolbox.test_timeout = Duration::from_secs(1800);
                let writer = TrajectoryWriter::new(Some(traj.clone()));
                let on_event = |e: Event| {
                    if let (Event::Step { index, .. }, Some(p)) = (&e, &opts.progress) {
                        p(&RunProgress::InstanceStep {
                            instance_id: id.clone(),
                            step: *index,
                            cost_usd: ctx.spent_before + ctx.batch.totals().cost_usd,
                        });
                    }
                };
                let started = Instant::now();
                let out = agent.run(toolbox, task, &writer, stop, &on_event).await;
                Ok::<_, SwebenchError>(Done {
                    k,
                    out,
                    sandbox,
                    trajectory: traj,
                    wall_secs: started.elapsed().as_secs_f64(),
                    sampling,
                })
            }
        };
    let mut done: Vec<Result<Done, SwebenchError>> = if n == 1 {
        vec![attempt(0, Some(first_sb), None, traj_of(None)).await]
    } else {
        let mut sbs = vec![Some(first_sb)];
        sbs.resize(n, None);
        futures_util::future::join_all(
            sbs.into_iter()
                .enumerate()
                .map(|(k, sb)| attempt(k, sb, Some(k), traj_of(Some(k)))),
        )
        .await
    };
    let mut retried = false;
    if n == 1
        && let Some(Ok(d)) = done.first_mut()
        && d.out.patch.trim().is_empty()
        && !d.out.exit.is_infrastructure()
        && !matches!(d.out.exit, ExitStatus::Interrupted)
        && !*stop.borrow()
        && ledger.check().is_ok()
    {
        log.line(&format!(
            "no patch from the first attempt ({}); retrying once in a fresh container with another seed",
            d.out.exit.line()
        ));
        let aside = traj_of(Some(0));
        if std::fs::rename(&d.trajectory, &aside).is_ok() {
            d.trajectory = aside;
        }
        d.sampling = None;
        retried = true;
        done.push(attempt(1, None, Some(1), traj_of(Some(1))).await);
    }
    let out = if done.len() == 1 {
        let d = done.pop().expect("one attempt")?;
        d.out
    } else {
        let (out, summary) =
            choose_among(ctx, inst, done, &index, retried, log, &model_for).await?;
        let writer = TrajectoryWriter::new(Some(traj_of(None)));
        if let Err(e) = writer.write(&out.trajectory) {
            log.line(&format!("could not write the chosen trajectory: {e}"));
        }
        record.selection = Some(Box::new(summary));
        out
    };
    // The instance's spend: every attempt's, the judge's too.
    let t = ledger.totals();
    (
        record.steps,
        record.tokens_in,
        record.tokens_out,
        record.cost_usd,
    ) = (
        out.trajectory.totals.steps,
        t.tokens_in,
        t.tokens_out,
        t.cost_usd,
    );
    record.exit = if out.exit.is_infrastructure() {
        "infrastructure".into()
    } else {
        out.exit.kind().into()
    };
    record.detail = out.exit.line();
    if matches!(out.exit, ExitStatus::Interrupted) {
        record.exit = "interrupted".into();
    }
    Ok((!out.exit.is_infrastructure()).then_some(out.patch))
}

/// One finished attempt, its container kept for the selection's runs.
struct Done {
    k: usize,
    out: mend_agent::RunOutput,
    sandbox: Arc<dyn Sandbox>,
    trajectory: PathBuf,
    wall_secs: f64,
    sampling: Option<usize>,
}

/// A container from the instance image with the repository at the base commit.
async fn start_sandbox(
    ctx: &Ctx<'_>,
    inst: &Instance,
    image: &str,
    nano_cpus: Option<i64>,
) -> Result<DockerSandbox, SwebenchError> {
    let opts = ctx.opts;
    let id = &inst.instance_id;
    let mut cfg = DockerConfig::new(image.to_string());
    cfg.root = REPO_DIR.into();
    cfg.user = UserChoice::Root;
    cfg.network = opts.agent.network;
    cfg.memory_bytes = opts.memory_bytes;
    cfg.nano_cpus = nano_cpus;
    // The instance's environment first on PATH, as `conda activate testbed` would have it
    // (official images and mend's offline ones both keep it there).
    cfg.env.insert("PATH".into(), "/opt/miniconda3/envs/testbed/bin:/opt/miniconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    cfg.labels
        .insert("dev.mend.swebench.run_id".into(), opts.run_id.clone());
    cfg.labels
        .insert("dev.mend.swebench.instance_id".into(), id.clone());
    let sandbox = DockerSandbox::start(ctx.engine, cfg).await?;
    let head = sandbox
        .exec(
            &Exec::shell("git -c safe.directory='*' rev-parse HEAD")
                .timeout(Duration::from_secs(60)),
        )
        .await?;
    if head.stdout.text().trim() != inst.base_commit {
        // Images made for another commit of the repository: check the base out.
        let out = sandbox
            .exec(&Exec::shell(format!("git -c safe.directory='*' checkout -q -f {} && git -c safe.directory='*' clean -q -fd", inst.base_commit)).timeout(Duration::from_secs(300)))
            .await?;
        if !out.success() {
            return Err(SwebenchError::Image {
                instance_id: id.clone(),
                message: format!(
                    "the image's repository is not at {} and cannot be checked out there: {}",
                    inst.base_commit,
                    out.stderr.text().trim()
                ),
            });
        }
    }
    sandbox.pin_base().await?;
    Ok(sandbox)
}

/// Run every candidate against every reproduction and the related tests, choose, and
/// return the winner's output (its trajectory carrying the whole selection).
async fn choose_among(
    ctx: &Ctx<'_>,
    inst: &Instance,
    done: Vec<Result<Done, SwebenchError>>,
    index: &Option<Arc<Index>>,
    retried: bool,
    log: &mut InstanceLog,
    model_for: &dyn Fn(Option<usize>) -> Result<Arc<dyn Model>, SwebenchError>,
) -> Result<(mend_agent::RunOutput, SelectionSummary), SwebenchError> {
    use mend_agent::candidates::{self, AttemptRecord, Candidate, GatherOptions, SelectionRecord};
    let mut ok: Vec<Done> = Vec::new();
    let mut first_err = None;
    for d in done {
        match d {
            Ok(d) if !d.out.exit.is_infrastructure() => ok.push(d),
            Ok(d) => log.line(&format!("candidate {}: {}", d.k + 1, d.out.exit.line())),
            Err(e) => {
                log.line(&format!("candidate: could not run: {e}"));
                first_err.get_or_insert(e);
            }
        }
    }
    if ok.is_empty() {
        return Err(
            first_err.unwrap_or_else(|| SwebenchError::Invalid("no attempt finished".into()))
        );
    }
    let mut cands = Vec::new();
    for d in &ok {
        let repro = mend_agent::verify::Reproduction::find(d.sandbox.as_ref())
            .await
            .ok()
            .flatten();
        cands.push(Candidate {
            sandbox: d.sandbox.clone(),
            patch: d.out.patch.clone(),
            reproduction: repro,
        });
    }
    let suite = crate::suite::RepoSuite::for_instance(&ctx.opts.specs, &inst.repo, &inst.version)
        .ok()
        .map(|s| Arc::new(s) as Arc<dyn mend_agent::verify::TestSuite>);
    let gopts = GatherOptions {
        suite,
        index: index.clone(),
        ..Default::default()
    };
    let (ev, matrix) = candidates::gather(&cands, &gopts).await;
    let mut choice = mend_agent::select::choose(&ev, None);
    if ctx.opts.judge && choice.tied.len() > 1 {
        let tied: Vec<(usize, &str)> = choice
            .tied
            .iter()
            .map(|&i| (i, cands[i].patch.as_str()))
            .collect();
        let pick = match model_for(None) {
            Ok(m) => candidates::judge(m.as_ref(), &inst.problem_statement, &tied).await,
            Err(_) => None,
        };
        choice = mend_agent::select::choose(&ev, Some(&move |_: &[usize]| pick));
    }
    log.line(&format!(
        "selection:\n{}chose {}",
        choice.table(),
        choice.reason
    ));
    let summary = SelectionSummary {
        candidates: ok.len(),
        winner: choice.winner,
        differs_from_first: choice.winner.is_some_and(|w| w != 0),
        retried,
        scores: choice.rows.iter().map(|r| r.score).collect(),
        patch_bytes: ok.iter().map(|d| d.out.patch.len()).collect(),
        reason: choice.reason.clone(),
    };
    let record = SelectionRecord {
        candidates: ok
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (temperature, seed) = match d.sampling {
                    Some(k) => candidates::attempt_sampling(k, None),
                    None => (None, None),
                };
                AttemptRecord {
                    index: i,
                    exit: d.out.exit.kind().to_string(),
                    patch: d.out.patch.clone(),
                    temperature,
                    seed,
                    trajectory: Some(d.trajectory.display().to_string()),
                    steps: d.out.trajectory.totals.steps,
                    cost_usd: d.out.trajectory.totals.cost_usd,
                    wall_secs: d.wall_secs,
                    reproduction: cands[i].reproduction.is_some(),
                }
            })
            .collect(),
        matrix,
        differs_from_first: summary.differs_from_first,
        choice: choice.clone(),
        retried,
    };
    drop(cands);
    // Nothing kept (all empty or broken): the last attempt's output stands (a retry's).
    let w = choice.winner.unwrap_or(ok.len() - 1);
    let mut out = ok.swap_remove(w).out;
    out.trajectory.selection = Some(record);
    Ok((out, summary))
}

/// Copy the repository out of the container, index it and localize the issue, off the
/// executor. The index only gives hints: on failure the run goes on without it.
async fn index_in(sandbox: &dyn Sandbox, issue: &str) -> Option<(Arc<Index>, RepoContext)> {
    let dir = tempfile::tempdir().ok()?;
    if let Err(e) = sandbox.copy_out(sandbox.root(), dir.path()).await {
        tracing::warn!(error = %e, "could not copy the repository out to index it");
        return None;
    }
    let name = Path::new(sandbox.root())
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_default();
    let repo = dir.path().join(name);
    let issue = issue.to_string();
    let built = tokio::task::spawn_blocking(move || {
        let ix = Index::from_worktree(&repo, &IndexOptions::default());
        let ix = ix
            .map_err(|e| tracing::warn!(error = %e, "could not index the repository"))
            .ok()?;
        let read = |p: &str| std::fs::read_to_string(repo.join(p)).ok();
        let context = repo_context(&ix, &issue, &ContextOptions::default(), read);
        drop(dir);
        Some((Arc::new(ix), context))
    })
    .await;
    built.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_and_a_bad_middle_line_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("predictions.jsonl");
        let good = r#"{"instance_id":"a","model_name_or_path":"m","model_patch":"x"}"#;
        std::fs::write(&p, format!("{good}\n{{\"instance_id\":\"b\",\"model_na")).unwrap();
        let (rows, torn) = read_jsonl::<PredictionLine>(&p).unwrap();
        assert_eq!((rows.len(), torn), (1, 1));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{good}\n"));
        // A complete but unterminated last line is torn too: the write did not finish.
        std::fs::write(&p, format!("{good}\n{good}")).unwrap();
        assert_eq!(read_jsonl::<PredictionLine>(&p).unwrap().0.len(), 1);
        std::fs::write(&p, format!("{good}\nnot json\n{good}\n")).unwrap();
        let e = read_jsonl::<PredictionLine>(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        append_line(
            &p,
            &PredictionLine {
                instance_id: "c".into(),
                model_name_or_path: "m".into(),
                model_patch: None,
            },
        )
        .unwrap();
    }
}
