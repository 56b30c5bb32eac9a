//! Why a model could not answer at all. Problems with an answer are [`crate::Problem`]s.
use crate::budget::BudgetExceeded;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// A budget (cost, calls, tokens) ran out: stop the run cleanly with this reason.
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    /// The server refused the request with a status that retrying cannot fix
    /// (400/401/403/404/422, 429 `insufficient_quota`...). One request was sent.
    #[error("{model}: the server refused the request (HTTP {status}): {message}")]
    Rejected {
        model: String,
        status: u16,
        message: String,
    },
    /// Every try failed with a transient error (429, 5xx, timeout, dropped connection,
    /// a body that is not a chat completion).
    #[error("{model}: gave up after {tries} tries; last failure: {last}")]
    GaveUp {
        model: String,
        tries: u32,
        last: String,
    },
    /// The configuration cannot work (missing key variable, bad URL, bad price file).
    #[error("model configuration: {0}")]
    Config(String),
    /// The request did not fit the model's context window (OpenAI `context_length_exceeded`,
    /// and the equivalents of Azure, vLLM, llama.cpp, Ollama and gateways). The caller can
    /// shorten the history and send the step again. `prompt_tokens`/`window` are what the
    /// server said, when it said them.
    #[error("{model}: the request does not fit the context window: {message}")]
    ContextOverflow {
        model: String,
        message: String,
        prompt_tokens: Option<u64>,
        window: Option<u64>,
    },
    /// The conversation left the recording a [`crate::ReplayModel`] answers from.
    #[error("replay diverged at step {step}: {reason}")]
    Replay { step: usize, reason: String },
}

impl ModelError {
    /// True for [`ModelError::Budget`]: the run should end as "limit reached", not as a failure.
    pub fn is_budget(&self) -> bool {
        matches!(self, ModelError::Budget(_))
    }
    /// True for [`ModelError::ContextOverflow`]: condense the history and retry the step.
    pub fn is_overflow(&self) -> bool {
        matches!(self, ModelError::ContextOverflow { .. })
    }
}
