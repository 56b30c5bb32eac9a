//! The trajectory: every model message, tool call, observation, token count, cost and
//! timing of a run, written to disk after every step (atomically), so a crash or Ctrl-C
//! leaves the run so far readable.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::prompts::TemplateVersion;

/// How a run ended, in one word and a reason.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum ExitStatus {
    /// Submitted and the tests passed (or no tests were configured and none detected).
    Submitted { tests: TestsOutcome },
    /// A limit stopped the run: steps, cost, tokens, calls, wall time or context.
    LimitReached(String),
    /// The model repeated itself past the nudge.
    LoopDetected,
    /// The model failed for good: garbage replies past the allowance, a request the server
    /// refuses (context too long, bad key), a broken prompt.
    ModelError(String),
    /// The model could not be reached: every retry failed (network, 5xx, rate limits).
    /// Worth trying again later.
    ModelUnavailable(String),
    /// The sandbox failed (container died, engine error).
    SandboxError(String),
    /// The user pressed Ctrl-C.
    Interrupted,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TestsOutcome {
    Passed,
    Failed,
    /// Some tests fail, and each of them failed on the base commit too.
    OnlyPreexistingFailures,
    NotRun,
}

impl ExitStatus {
    /// Whether the run ended for a reason outside the agent's work (sandbox, model
    /// unreachable, Ctrl-C), so a batch should run it again rather than record it.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            ExitStatus::SandboxError(_) | ExitStatus::ModelUnavailable(_) | ExitStatus::Interrupted
        )
    }

    /// One word for tables: `submitted`, `limit_reached`, `model_error`...
    pub fn kind(&self) -> &'static str {
        match self {
            ExitStatus::Submitted { .. } => "submitted",
            ExitStatus::LimitReached(_) => "limit_reached",
            ExitStatus::LoopDetected => "loop_detected",
            ExitStatus::ModelError(_) => "model_error",
            ExitStatus::ModelUnavailable(_) => "model_unavailable",
            ExitStatus::SandboxError(_) => "sandbox_error",
            ExitStatus::Interrupted => "interrupted",
        }
    }

    /// The one-line summary shown at the end of a run.
    pub fn line(&self) -> String {
        match self {
            ExitStatus::Submitted {
                tests: TestsOutcome::Passed,
            } => "submitted, tests passing".into(),
            ExitStatus::Submitted {
                tests: TestsOutcome::Failed,
            } => "submitted, tests failing".into(),
            ExitStatus::Submitted {
                tests: TestsOutcome::OnlyPreexistingFailures,
            } => "submitted, tests passing except ones that failed before the change too".into(),
            ExitStatus::Submitted {
                tests: TestsOutcome::NotRun,
            } => "submitted, no tests run".into(),
            ExitStatus::LimitReached(why) => format!("stopped: {why}"),
            ExitStatus::LoopDetected => "stopped: the model kept repeating the same action".into(),
            ExitStatus::ModelError(e) => format!("error: model: {e}"),
            ExitStatus::ModelUnavailable(e) => format!("error: model unreachable: {e}"),
            ExitStatus::SandboxError(e) => format!("error: sandbox: {e}"),
            ExitStatus::Interrupted => "interrupted".into(),
        }
    }
}

/// One step: what the model said and what mend answered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub index: usize,
    /// The assistant message as the model sent it (text and tool calls).
    pub assistant: Value,
    /// Tool calls with their observations.
    pub actions: Vec<Action>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub model_ms: u64,
    pub tools_ms: u64,
    /// The raw request/response for this call, when the model layer gives one (no API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
    /// Set for a model call that was not the step's action: the request that overflowed
    /// the context window, or the call that summarised the history. Replays answer these
    /// calls in order like the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CallKind>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// The server refused the request as too long for its context window.
    Overflow,
    /// The model summarised the middle of the conversation.
    Summary,
}

/// One shortening of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Condensation {
    /// The step whose request was shortened.
    pub step: usize,
    /// Why: `budget` (the estimate passed the prompt budget) or `overflow: <server message>`.
    pub trigger: String,
    /// `masked` (old observations elided), `summarised` (the model summarised the middle),
    /// `mechanical` (the middle replaced by a summary mend wrote itself).
    pub stage: String,
    pub tokens_before: usize,
    pub tokens_after: usize,
    /// Observations elided.
    pub masked: usize,
    /// Messages replaced by the summary (indices in the conversation, end exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summarised: Option<(usize, usize)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub tool: String,
    pub arguments: Value,
    pub observation: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    pub steps: usize,
    pub model_calls: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trajectory {
    pub mend_version: String,
    pub model: String,
    pub issue: String,
    pub base_commit: Option<String>,
    pub templates: Vec<TemplateVersion>,
    pub tools: Vec<mend_llm::ToolDef>,
    /// The first messages (system prompt and the issue prompt), as sent.
    pub prompt: Vec<Value>,
    pub steps: Vec<Step>,
    pub test_runs: Vec<crate::TestRun>,
    /// Every shortening of the conversation, in order.
    #[serde(default)]
    pub condensations: Vec<Condensation>,
    /// The prompt budget the run condensed to (a replay uses it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_budget: Option<usize>,
    pub totals: Totals,
    pub exit_status: Option<ExitStatus>,
    pub patch: Option<String>,
    /// New files the patch leaves out as scratch, each with why.
    #[serde(default)]
    pub left_out: Vec<crate::scratch::LeftOut>,
    /// What mend's own checks found: the reproduction before and after, the regression
    /// guard, the review round. Absent in runs made without them (and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::verify::Verification>,
    pub started_at_unix: u64,
    /// Best-of-N: every candidate, the matrix, the scores and the choice (this trajectory
    /// is the winner's). Absent for a single attempt that was not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<crate::candidates::SelectionRecord>,
}

impl Trajectory {
    pub fn load(path: &Path) -> Result<Trajectory, std::io::Error> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }
}

/// Writes the trajectory after every step: to a temporary file, then renamed over the
/// old one, so a reader never sees half a file.
pub struct TrajectoryWriter {
    path: Option<PathBuf>,
}

impl TrajectoryWriter {
    pub fn new(path: Option<PathBuf>) -> Self {
        TrajectoryWriter { path }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn write(&self, t: &Trajectory) -> Result<(), std::io::Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.partial");
        let text = serde_json::to_string_pretty(t).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}
