//! Answering from a recorded run: demos and regression tests without a model server.
//!
//! A recording is a list of exchanges, each exactly the `raw` value a [`Completion`]
//! carries: `{"model", "tool_mode", "request": {"messages", "tools"}, "response": <Completion>}`
//! (any other key, like `"http"`, is ignored). A file is either `{"exchanges": [...]}` or an
//! agent trajectory, whose `steps[i].raw` are those exchanges.
//!
//! Stored exchanges may be compacted by [`ExchangeCompactor`]: a request whose first
//! messages repeat the previous request's holds `"prefix": n` and only the rest, and one
//! offering the same tools holds `"same_tools": true` instead of them, so a run of N steps
//! stores O(N) messages rather than O(N²). Loading restores them.
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::budget::{Ledger, Limits, Totals};
use crate::config::ToolMode;
use crate::error::ModelError;
use crate::model::Model;
use crate::openai::DEFAULT_CONTEXT_WINDOW;
use crate::tokens::Tokenizer;
use crate::types::{Completion, Message, ToolDef};

/// What was sent in one call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Vec<ToolDef>,
}

/// One call: what was sent and what came back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exchange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_mode: Option<ToolMode>,
    pub request: RecordedRequest,
    pub response: Completion,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    pub exchanges: Vec<Exchange>,
}

impl Recording {
    /// From `{"exchanges": [...]}` or a trajectory's `{"steps": [{"raw": ...}]}`.
    pub fn from_value(v: &Value) -> Result<Recording, String> {
        let exchanges: Vec<&Value> = if let Some(list) =
            v.get("exchanges").and_then(Value::as_array)
        {
            list.iter().collect()
        } else if let Some(steps) = v.get("steps").and_then(Value::as_array) {
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.get("raw")
                        .filter(|r| !r.is_null())
                        .ok_or_else(|| format!("step {} has no `raw` exchange to replay", i + 1))
                })
                .collect::<Result<_, _>>()?
        } else {
            return Err("neither an `exchanges` list nor a trajectory with `steps[*].raw`".into());
        };
        let mut out: Vec<Exchange> = Vec::with_capacity(exchanges.len());
        for (i, e) in exchanges.into_iter().enumerate() {
            let n = i + 1;
            let previous = out.last().map(|e| &e.request);
            let prefix = e.pointer("/request/prefix").map(|p| {
                p.as_u64()
                    .map(|p| p as usize)
                    .ok_or_else(|| format!("exchange {n}: `request.prefix` is not a count: {p}"))
            });
            let mut exchange =
                Exchange::deserialize(e).map_err(|err| format!("exchange {n}: {err}"))?;
            let sent_before = previous.map_or(&[][..], |r| &r.messages[..]);
            if let Some(prefix) = prefix.transpose()? {
                if prefix > sent_before.len() {
                    return Err(format!(
                        "exchange {n}: `request.prefix` is {prefix} but the exchange before it \
                         sent only {} messages",
                        sent_before.len()
                    ));
                }
                let rest = std::mem::take(&mut exchange.request.messages);
                exchange.request.messages = sent_before[..prefix].to_vec();
                exchange.request.messages.extend(rest);
            }
            if e.pointer("/request/same_tools") == Some(&Value::Bool(true)) {
                let Some(previous) = previous else {
                    return Err(format!(
                        "exchange {n}: `request.same_tools` but no exchange before it"
                    ));
                };
                exchange.request.tools = previous.tools.clone();
            }
            out.push(exchange);
        }
        Ok(Recording { exchanges: out })
    }

    pub fn load(path: &Path) -> Result<Recording, ModelError> {
        let fail = |e: String| ModelError::Config(format!("recording {}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        Recording::from_value(&value).map_err(fail)
    }

    /// The recording of these completions (from their `raw`).
    pub fn from_completions<'a>(
        completions: impl IntoIterator<Item = &'a Completion>,
    ) -> Result<Recording, String> {
        let exchanges: Vec<Value> = completions.into_iter().map(|c| c.raw.clone()).collect();
        Recording::from_value(&json!({ "exchanges": exchanges }))
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Shortens exchanges (a [`Completion`]'s `raw`) for storage, one run's in order: the
/// leading messages a request shares with the request before it become `"prefix": n`,
/// and the same tools as before become `"same_tools": true`.
/// An agent resends the whole conversation each step, so without this a trajectory grows
/// with the square of its steps. [`Recording::from_value`] restores the messages.
#[derive(Debug, Default)]
pub struct ExchangeCompactor {
    previous: Vec<Value>,
    previous_tools: Option<Value>,
}

impl ExchangeCompactor {
    pub fn new() -> ExchangeCompactor {
        ExchangeCompactor::default()
    }

    /// The stored form of the next exchange; anything without `request.messages` as is.
    pub fn compact(&mut self, raw: &Value) -> Value {
        let mut stored = raw.clone();
        let Some(request) = stored.get_mut("request").and_then(Value::as_object_mut) else {
            return stored;
        };
        // Taken out of the copy, not cloned again: they become the next step's "previous".
        let Some(Value::Array(messages)) = request.remove("messages") else {
            return raw.clone();
        };
        let prefix = self
            .previous
            .iter()
            .zip(&messages)
            .take_while(|(a, b)| a == b)
            .count();
        request.insert("messages".into(), Value::Array(messages[prefix..].to_vec()));
        if prefix > 0 {
            request.insert("prefix".into(), json!(prefix));
        }
        self.previous = messages;
        let tools = request.remove("tools");
        if tools.is_some() && tools == self.previous_tools {
            request.insert("same_tools".into(), Value::Bool(true));
        } else if let Some(t) = &tools {
            request.insert("tools".into(), t.clone());
        }
        self.previous_tools = tools;
        stored
    }
}

/// A [`Model`] that answers from a [`Recording`], in order, and fails with
/// [`ModelError::Replay`] when the conversation leaves it.
///
/// The check compares structure, not observation text (tool output holds timings and temp
/// paths): the tools offered (names), the number and roles of messages, which call id and
/// tool each tool result answers, and every assistant message exactly (those are the
/// replay's own answers coming back). System and user texts are not compared.
#[derive(Debug)]
pub struct ReplayModel {
    name: String,
    tool_mode: ToolMode,
    exchanges: Vec<Exchange>,
    next: Mutex<usize>,
    ledger: Arc<Ledger>,
    context_window: usize,
    tokenizer: Tokenizer,
}

impl ReplayModel {
    pub fn new(recording: Recording) -> ReplayModel {
        let first = recording.exchanges.first();
        let model = first
            .and_then(|e| e.model.clone())
            .unwrap_or_else(|| "unknown".into());
        ReplayModel {
            tool_mode: first.and_then(|e| e.tool_mode).unwrap_or_default(),
            tokenizer: Tokenizer::for_model(&model),
            name: format!("replay:{model}"),
            exchanges: recording.exchanges,
            next: Mutex::new(0),
            ledger: Ledger::new("run", Limits::default()),
            context_window: DEFAULT_CONTEXT_WINDOW,
        }
    }

    pub fn load(path: &Path) -> Result<ReplayModel, ModelError> {
        Ok(ReplayModel::new(Recording::load(path)?))
    }

    /// Charge the recorded usage and cost to this ledger (its limits apply as for a live model).
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> ReplayModel {
        self.ledger = ledger;
        self
    }

    pub fn with_context_window(mut self, tokens: usize) -> ReplayModel {
        self.context_window = tokens;
        self
    }

    /// Exchanges not yet replayed.
    pub fn remaining(&self) -> usize {
        self.exchanges.len() - (*self.lock()).min(self.exchanges.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.next.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Model for ReplayModel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn tool_mode(&self) -> ToolMode {
        self.tool_mode
    }

    fn context_window(&self) -> usize {
        self.context_window
    }

    fn count_tokens(&self, messages: &[Message]) -> usize {
        self.tokenizer.count_messages(messages)
    }

    async fn complete(
        &self,
        messages: &[Message],
        tools: &[ToolDef],
    ) -> Result<Completion, ModelError> {
        let exchange = {
            let mut next = self.lock();
            let step = *next + 1;
            let Some(exchange) = self.exchanges.get(*next) else {
                return Err(ModelError::Replay {
                    step,
                    reason: format!(
                        "the recording has only {} exchanges; the run asked for another",
                        self.exchanges.len()
                    ),
                });
            };
            if let Some(reason) = divergence(&exchange.request, messages, tools) {
                return Err(ModelError::Replay { step, reason });
            }
            let r = &exchange.response;
            self.ledger.check_next(r.usage.tokens_in, 0.0)?;
            *next += 1;
            exchange.clone()
        };
        let mut completion = exchange.response.clone();
        completion.raw = serde_json::to_value(&exchange).unwrap_or(Value::Null);
        self.ledger.record(&completion.usage, &completion.cost)?;
        Ok(completion)
    }

    fn totals(&self) -> Totals {
        self.ledger.totals()
    }
}

fn divergence(
    recorded: &RecordedRequest,
    messages: &[Message],
    tools: &[ToolDef],
) -> Option<String> {
    let names = |t: &[ToolDef]| t.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(&recorded.tools) != names(tools) {
        return Some(format!(
            "the tools offered are {:?}, the recording offered {:?}",
            names(tools),
            names(&recorded.tools)
        ));
    }
    for (i, (want, got)) in recorded.messages.iter().zip(messages).enumerate() {
        let n = i + 1;
        match (want, got) {
            (
                Message::Tool {
                    call_id: a,
                    name: an,
                    ..
                },
                Message::Tool {
                    call_id: b,
                    name: bn,
                    ..
                },
            ) if (a, an) != (b, bn) => {
                return Some(format!(
                    "message {n} answers call {b} ({bn}), the recording answers call {a} ({an})"
                ));
            }
            (Message::Assistant { .. }, Message::Assistant { .. }) if want != got => {
                return Some(format!(
                    "message {n} (assistant) is not the reply the recording gave: {}",
                    short(got)
                ));
            }
            _ if want.role() != got.role() => {
                return Some(format!(
                    "message {n} is a {} message, the recording has a {} message",
                    got.role(),
                    want.role()
                ));
            }
            _ => {}
        }
    }
    if recorded.messages.len() != messages.len() {
        return Some(format!(
            "the conversation has {} messages, the recording {}",
            messages.len(),
            recorded.messages.len()
        ));
    }
    None
}

fn short(m: &Message) -> String {
    crate::wire::clip(&serde_json::to_string(m).unwrap_or_default(), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(messages: &[Message]) -> Value {
        let tools = [ToolDef {
            name: "bash".into(),
            description: "run a command".into(),
            parameters: json!({"type": "object"}),
        }];
        json!({
            "model": "gpt-4o",
            "request": {"messages": messages, "tools": tools},
            "response": {"content": "ok"},
            "http": {"tries": 1},
        })
    }

    fn conversation(steps: usize) -> Vec<Vec<Message>> {
        let mut conv = vec![Message::system("sys"), Message::user("issue")];
        let mut requests = vec![];
        for i in 0..steps {
            requests.push(conv.clone());
            conv.push(Message::assistant(format!("step {i}"), vec![]));
            conv.push(Message::user(format!(
                "observation {i}: {}",
                "x".repeat(200)
            )));
        }
        requests
    }

    #[test]
    fn compacted_exchanges_load_as_the_originals() {
        let mut requests = conversation(6);
        // Elision rewrote an old observation before the last request: the shared prefix
        // stops there, and the rest is stored whole.
        requests[5][3] = Message::user("[elided]");
        let originals: Vec<Value> = requests.iter().map(|m| exchange(m)).collect();
        let mut compactor = ExchangeCompactor::new();
        let stored: Vec<Value> = originals.iter().map(|e| compactor.compact(e)).collect();

        assert!(stored[0]["request"].get("prefix").is_none());
        assert_eq!(stored[0]["request"]["tools"][0]["name"], "bash");
        assert_eq!(stored[1]["request"]["same_tools"], true);
        assert!(stored[1]["request"].get("tools").is_none());
        assert_eq!(stored[1]["request"]["prefix"], 2);
        assert_eq!(
            stored[1]["request"]["messages"].as_array().unwrap().len(),
            2
        );
        assert_eq!(stored[5]["request"]["prefix"], 3);
        assert_eq!(stored[5]["http"], originals[5]["http"]);
        let count = |v: &[Value]| -> usize {
            v.iter()
                .map(|e| e["request"]["messages"].as_array().unwrap().len())
                .sum()
        };
        // 2+4+...+12 messages sent; 2 at first, 2 new per step, and 9 after the elision.
        assert_eq!((count(&originals), count(&stored)), (42, 19));

        let loaded = Recording::from_value(&json!({ "exchanges": stored })).unwrap();
        let expected = Recording::from_value(&json!({ "exchanges": originals })).unwrap();
        assert_eq!(loaded, expected);
        assert_eq!(loaded.exchanges[5].request.messages, requests[5]);
    }

    #[test]
    fn a_prefix_longer_than_the_exchange_before_is_a_clear_error() {
        let mut second = exchange(&[Message::user("x")]);
        second["request"]["prefix"] = json!(5);
        let e = Recording::from_value(&json!({
            "exchanges": [exchange(&[Message::system("s"), Message::user("u")]), second]
        }))
        .unwrap_err();
        assert_eq!(
            e,
            "exchange 2: `request.prefix` is 5 but the exchange before it sent only 2 messages"
        );
        let mut first = exchange(&[]);
        first["request"]["same_tools"] = json!(true);
        let e = Recording::from_value(&json!({ "exchanges": [first] })).unwrap_err();
        assert_eq!(
            e,
            "exchange 1: `request.same_tools` but no exchange before it"
        );
        let mut bad = exchange(&[]);
        bad["request"]["prefix"] = json!("two");
        let e = Recording::from_value(&json!({ "exchanges": [bad] })).unwrap_err();
        assert_eq!(e, "exchange 1: `request.prefix` is not a count: \"two\"");
    }
}
