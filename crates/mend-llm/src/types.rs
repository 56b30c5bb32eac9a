//! The conversation and the answer, in mend's terms (no wire format here).
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of the conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The answer to one tool call.
    Tool {
        call_id: String,
        name: String,
        content: String,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Message {
        Message::System {
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message::User {
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Message {
        Message::Assistant {
            content: content.into(),
            tool_calls,
        }
    }
    pub fn tool(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Message {
        Message::Tool {
            call_id: call_id.into(),
            name: name.into(),
            content: content.into(),
        }
    }
    /// "system", "user", "assistant" or "tool".
    pub fn role(&self) -> &'static str {
        match self {
            Message::System { .. } => "system",
            Message::User { .. } => "user",
            Message::Assistant { .. } => "assistant",
            Message::Tool { .. } => "tool",
        }
    }
}

/// A tool call the model made. `arguments` is `Err` with the raw text when it was not JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Result<Value, String>,
}

/// A tool as the model sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

/// Something wrong with a reply that the agent should tell the model about. The reply is
/// still returned (and recorded); these never abort a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// `finish_reason: length`: the reply stopped at the output limit.
    #[error("your reply was cut off at the length limit{}; answer more briefly and put the action first", limit.map(|l| format!(" ({l} output tokens)")).unwrap_or_default())]
    CutOff { limit: Option<u32> },
    /// The server answered with no choice, or a choice with neither text nor tool calls.
    #[error("the reply was empty: no text and no tool call")]
    Empty,
    /// The provider's content filter stopped the reply.
    #[error("the reply was stopped by the provider's content filter")]
    ContentFilter,
    /// The model refused (OpenAI's `refusal` field).
    #[error("the model refused: {message}")]
    Refusal { message: String },
    /// A tool call names a tool that was not offered.
    #[error("there is no tool named `{name}`; the tools are: {}", known.join(", "))]
    UnknownTool { name: String, known: Vec<String> },
    /// A tool call's arguments are not valid JSON (the raw text is kept in the call).
    #[error("the arguments of `{tool}` are not valid JSON: {error}")]
    InvalidArguments { tool: String, error: String },
    /// Text-action mode: no ```action block in the reply.
    #[error(
        "your reply had no action: end it with exactly one fenced block whose info string is `action`, holding one JSON object with a \"tool\" key and the arguments"
    )]
    NoAction,
    /// Text-action mode: more than one ```action block.
    #[error("your reply had {count} action blocks; send exactly one action per reply")]
    SeveralActions { count: usize },
    /// Text-action mode: an ```action block that is never closed.
    #[error("your action block was not closed with ```")]
    UnclosedAction,
    /// Text-action mode: the block is not one JSON object.
    #[error("the action block is not a valid JSON object: {error}")]
    ActionNotJson { error: String },
    /// The reply (its text, or one call's arguments) was longer than the conversation can
    /// keep; it was cut to `limit` characters.
    #[error(
        "{what} was {chars} characters long and was cut to the first {limit}; send shorter replies and edit large files in parts"
    )]
    TooLong {
        what: String,
        chars: usize,
        limit: usize,
    },
    /// Text-action mode: the JSON object has no string "tool" key.
    #[error("the action object has no \"tool\" key naming the tool to run")]
    ActionWithoutTool,
}

/// Tokens of one call.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// True when the server sent no `usage` and these were counted locally.
    #[serde(default)]
    pub estimated: bool,
}

/// Dollars of one call.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Cost {
    pub usd: f64,
    /// False when the model is not in the price table (then `usd` is 0).
    pub priced: bool,
}

/// The model's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Completion {
    /// The reply's text ("" for none; reasoning blocks are moved to `reasoning`).
    pub content: String,
    /// Tool calls, native or parsed from a text action, with unique ids.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// What the agent should tell the model about this reply.
    #[serde(default)]
    pub problems: Vec<Problem>,
    /// The reasoning text some servers return beside the answer (`reasoning_content`,
    /// `reasoning`, or a leading `<think>` block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The model name the server reported (may differ from the one asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub cost: Cost,
    /// The exchange for the trajectory: `{"request": {messages, tools}, "response": <this
    /// completion without raw>, "http": {...}}`. Never holds the API key.
    /// [`crate::ReplayModel`] answers from exactly this object.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub raw: Value,
}

impl Completion {
    /// All problems as one text for the model, or `None` when there are none.
    pub fn problem_text(&self) -> Option<String> {
        if self.problems.is_empty() {
            return None;
        }
        Some(
            self.problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// This completion as the assistant message to append to the conversation.
    pub fn message(&self) -> Message {
        Message::Assistant {
            content: self.content.clone(),
            tool_calls: self.tool_calls.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_problem_round_trips_through_json() {
        let all = vec![
            Problem::CutOff { limit: Some(5) },
            Problem::Empty,
            Problem::ContentFilter,
            Problem::Refusal {
                message: "no".into(),
            },
            Problem::UnknownTool {
                name: "x".into(),
                known: vec!["view".into()],
            },
            Problem::InvalidArguments {
                tool: "bash".into(),
                error: "eof".into(),
            },
            Problem::NoAction,
            Problem::SeveralActions { count: 2 },
            Problem::UnclosedAction,
            Problem::ActionNotJson { error: "e".into() },
            Problem::ActionWithoutTool,
        ];
        let c = Completion {
            content: "c".into(),
            tool_calls: vec![ToolCall {
                id: "1".into(),
                name: "bash".into(),
                arguments: Err("{".into()),
            }],
            problems: all.clone(),
            reasoning: None,
            finish_reason: Some("stop".into()),
            model: None,
            usage: Usage::default(),
            cost: Cost::default(),
            raw: json!({"x": 1}),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["problems"][3],
            json!({"kind": "refusal", "message": "no"})
        );
        let back: Completion = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.problem_text().unwrap().lines().count(), all.len());
    }
}
