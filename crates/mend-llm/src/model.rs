//! The one interface the agent talks to.
use crate::budget::Totals;
use crate::config::ToolMode;
use crate::error::ModelError;
use crate::types::{Completion, Message, ToolDef};

/// A chat model. Object-safe: the agent holds an `Arc<dyn Model>`.
#[async_trait::async_trait]
pub trait Model: Send + Sync + std::fmt::Debug {
    /// A name for logs and trajectories (never the key).
    fn name(&self) -> String;
    /// Native tool calls, or tools described in the prompt and parsed from a fenced block.
    fn tool_mode(&self) -> ToolMode;
    /// The context window in tokens.
    fn context_window(&self) -> usize;
    /// Tokens the messages would take in a request.
    fn count_tokens(&self, messages: &[Message]) -> usize;
    /// The most output tokens a request asks for (`max_tokens`); the prompt budget is the
    /// window less this, less the tool schemas, less a margin.
    fn max_output_tokens(&self) -> usize {
        (self.context_window() / 4).clamp(256, 4096)
    }
    /// Tokens the tool schemas take in a request (0 in text mode, where the system prompt
    /// already carries them).
    fn count_tool_tokens(&self, tools: &[ToolDef]) -> usize {
        if self.tool_mode() == ToolMode::Text {
            return 0;
        }
        tools
            .iter()
            .map(|t| serde_json::to_string(t).map(|s| s.len()).unwrap_or(0) / 3 + 8)
            .sum()
    }
    /// One model call: the reply to `messages`, with `tools` offered (in text mode they are
    /// not sent, but their names are still used to flag unknown tools).
    async fn complete(
        &self,
        messages: &[Message],
        tools: &[ToolDef],
    ) -> Result<Completion, ModelError>;
    /// What this model's run ledger has counted so far.
    fn totals(&self) -> Totals;
}
