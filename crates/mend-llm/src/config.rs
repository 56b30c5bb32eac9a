//! How to reach a model: everything mend.toml can say about it. The API key itself is never
//! here: only the name of the environment variable that holds it.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::budget::Limits;
use crate::tokens::Tokenizer;

/// How tools reach the model.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// The request carries `tools`; the reply's `tool_calls` are the actions.
    #[default]
    Native,
    /// Tools are described in the prompt; the action is one ```action block in the reply.
    /// The request carries no `tools`, and earlier tool calls/results are sent as text.
    Text,
}

/// Azure OpenAI: `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=..`
/// with the key in an `api-key` header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AzureFlavour {
    pub deployment: String,
    pub api_version: String,
}

/// Which request field carries the output limit. OpenAI's newer models reject `max_tokens`;
/// older local servers only know `max_tokens`. `Auto` picks `max_completion_tokens` for
/// api.openai.com and Azure, `max_tokens` elsewhere.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    #[default]
    Auto,
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Up to and including `/v1` (e.g. `http://127.0.0.1:8000/v1`); `/chat/completions` is added.
    pub base_url: String,
    /// Name of the environment variable holding the API key; `None` sends no key (local
    /// servers). The key is read once, when the client is built.
    pub api_key_env: Option<String>,
    /// The model name sent to the server; also the key into the price table.
    pub model: String,
    pub temperature: Option<f32>,
    /// Sent as `seed` (servers that honour it sample reproducibly; best-of-N varies it).
    pub seed: Option<i64>,
    /// The output limit every request carries; unset: min(4096, window / 4). Each request
    /// asks for no more than what the window leaves after the (estimated) prompt.
    pub max_output_tokens: Option<u32>,
    pub max_tokens_field: MaxTokensField,
    /// Extra request headers (not secret: they may appear in Debug output as names only).
    pub extra_headers: BTreeMap<String, String>,
    /// Whole-request timeout, seconds (per try).
    pub timeout_secs: f64,
    /// Tries per call, the first included.
    pub max_tries: u32,
    /// No new try starts once a call has lasted this long (seconds, tries and waits
    /// included): retries wait minutes for a busy server, never forever.
    pub retry_patience_secs: f64,
    /// While a call is slow, report progress this often (seconds) to the
    /// [`crate::OpenAiCompatible::on_progress`] callback.
    pub progress_every_secs: f64,
    /// The most characters a reply may put into the conversation (its text, and each tool
    /// call's arguments); the rest is cut and the model told.
    pub max_reply_chars: usize,
    /// First backoff delay, seconds; doubled each retry, with jitter, up to `backoff_max_secs`.
    pub backoff_initial_secs: f64,
    pub backoff_max_secs: f64,
    /// A `Retry-After` longer than this fails the call instead of waiting.
    pub max_retry_after_secs: f64,
    pub tool_mode: ToolMode,
    /// Tokens. Unset: asked of the server ([`crate::OpenAiCompatible::discover_context`]),
    /// else the model table's value, else [`crate::DEFAULT_CONTEXT_WINDOW`].
    pub context_window: Option<usize>,
    /// Defaults to the price table's value for the model, else by name (gpt-4o/4.1/5/o-series:
    /// o200k; gpt-4/3.5: cl100k), else the approximation.
    pub tokenizer: Option<Tokenizer>,
    pub azure: Option<AzureFlavour>,
    /// A price file that extends/overrides the built-in table (after the user's
    /// `$XDG_CONFIG_HOME/mend/prices.toml`).
    pub prices_file: Option<PathBuf>,
    /// Per-run limits.
    pub limits: Limits,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: None,
            model: "gpt-4o".into(),
            temperature: None,
            seed: None,
            max_output_tokens: None,
            max_tokens_field: MaxTokensField::Auto,
            extra_headers: BTreeMap::new(),
            timeout_secs: 300.0,
            max_tries: 12,
            retry_patience_secs: 600.0,
            progress_every_secs: 15.0,
            max_reply_chars: 64_000,
            backoff_initial_secs: 2.0,
            backoff_max_secs: 60.0,
            max_retry_after_secs: 300.0,
            tool_mode: ToolMode::Native,
            context_window: None,
            tokenizer: None,
            azure: None,
            prices_file: None,
            limits: Limits::default(),
        }
    }
}

impl ModelConfig {
    pub fn timeout(&self) -> Duration {
        secs(self.timeout_secs)
    }
}

pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

// Header values may be secrets someone put there anyway: show names only.
impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConfig")
            .field("base_url", &self.base_url)
            .field("api_key_env", &self.api_key_env)
            .field("model", &self.model)
            .field("temperature", &self.temperature)
            .field("seed", &self.seed)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("max_tokens_field", &self.max_tokens_field)
            .field(
                "extra_headers",
                &self.extra_headers.keys().collect::<Vec<_>>(),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("max_tries", &self.max_tries)
            .field("retry_patience_secs", &self.retry_patience_secs)
            .field("progress_every_secs", &self.progress_every_secs)
            .field("max_reply_chars", &self.max_reply_chars)
            .field("backoff_initial_secs", &self.backoff_initial_secs)
            .field("backoff_max_secs", &self.backoff_max_secs)
            .field("max_retry_after_secs", &self.max_retry_after_secs)
            .field("tool_mode", &self.tool_mode)
            .field("context_window", &self.context_window)
            .field("tokenizer", &self.tokenizer)
            .field("azure", &self.azure)
            .field("prices_file", &self.prices_file)
            .field("limits", &self.limits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_from_toml_with_defaults() {
        let c: ModelConfig = toml::from_str(
            r#"
            base_url = "http://127.0.0.1:11434/v1"
            model = "qwen2.5-coder:7b"
            tool_mode = "text"
            timeout_secs = 30
            extra_headers = { "X-Trace" = "on" }
            [limits]
            max_cost_usd = 2.5
            [azure]
            deployment = "d"
            api_version = "2024-10-21"
            "#,
        )
        .unwrap();
        assert_eq!(c.tool_mode, ToolMode::Text);
        assert_eq!(c.limits.max_cost_usd, Some(2.5));
        assert_eq!(c.max_tries, 12);
        assert_eq!(c.timeout(), Duration::from_secs(30));
        assert!(
            toml::from_str::<ModelConfig>("modle = 'x'").is_err(),
            "unknown keys are refused"
        );
    }
}
