//! mend-llm: the model layer. The agent talks to models only through the [`Model`] trait:
//! `complete(messages, tools)` returns a [`Completion`] (text, tool calls, the
//! [`Problem`]s to tell the model about, usage, cost, and the raw exchange for the
//! trajectory) or a [`ModelError`] (budget reached, request refused, retries exhausted,
//! replay diverged).
//!
//! - [`OpenAiCompatible`]: any `/v1/chat/completions` endpoint (OpenAI, Azure, gateways,
//!   vLLM, Ollama, llama.cpp, LM Studio), configured by a serde [`ModelConfig`]; the API key
//!   is read from the environment variable the config names, once, and never shown.
//!   Native tool calls or text actions ([`ToolMode`]); retries with backoff and jitter on
//!   429/5xx/timeouts/dropped connections, honouring `Retry-After`, within a patience of
//!   minutes; context overflow recognised ([`ModelError::ContextOverflow`]); the window
//!   asked of the server ([`ContextSource`]), or on request learned from one oversized
//!   probe ([`WindowProbe`]); every request carries an output limit.
//! - Accounting: a [`PriceTable`] (compiled-in `prices.toml` plus the user's) prices each
//!   call; a [`Ledger`] per run enforces [`Limits`] and may charge a shared batch ledger.
//! - [`ReplayModel`]: answers from a [`Recording`] (a trajectory's `steps[*].raw` or an
//!   `exchanges` list) and fails when the conversation diverges.
//! - [`Tokenizer`]: exact BPE for OpenAI models, a stated approximation otherwise.
//! - `test_server` (feature `test-server`): a scripted chat-completions server on
//!   127.0.0.1 for tests of this and other crates.
mod budget;
mod config;
mod discover;
mod error;
mod model;
mod openai;
mod overflow;
mod prices;
mod replay;
mod text_action;
mod tokens;
mod types;
mod wire;

#[cfg(feature = "test-server")]
pub mod test_server;

pub use budget::{BudgetExceeded, Ledger, Limits, Totals};
pub use config::{AzureFlavour, MaxTokensField, ModelConfig, ToolMode};
pub use discover::{ContextSource, WindowProbe};
pub use error::ModelError;
pub use model::Model;
pub use openai::{DEFAULT_CONTEXT_WINDOW, OpenAiCompatible, Waiting};
pub use prices::{ModelInfo, PriceTable};
pub use replay::{Exchange, ExchangeCompactor, RecordedRequest, Recording, ReplayModel};
pub use text_action::parse_action;
pub use tokens::Tokenizer;
pub use types::{Completion, Cost, Message, Problem, ToolCall, ToolDef, Usage};
