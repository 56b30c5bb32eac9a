//! The chat-completions wire format: requests built with async-openai's types, replies read
//! leniently (async-openai's response type refuses what several local servers send: no
//! `id`/`created`/`object`, `usage` without `total_tokens`, arguments as an object, tool
//! calls without ids, unknown `finish_reason`s).
use std::collections::HashSet;

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionTool, ChatCompletionToolChoiceOption,
    ChatCompletionTools, CreateChatCompletionRequest, FunctionCall, FunctionObject,
    ToolChoiceOptions,
};
use serde_json::{Value, json};

use crate::config::ToolMode;
use crate::text_action::{count_action_blocks, parse_action, render_action};
use crate::types::{Message, Problem, ToolCall, ToolDef};

/// What goes into a request besides the conversation.
pub(crate) struct RequestShape<'a> {
    pub model: &'a str,
    pub temperature: Option<f32>,
    pub seed: Option<i64>,
    pub max_output_tokens: Option<u32>,
    /// Send the limit as `max_completion_tokens` (else `max_tokens`).
    pub max_completion_tokens: bool,
    pub tool_mode: ToolMode,
}

/// The JSON body of a chat-completions request.
pub(crate) fn request_body(
    messages: &[Message],
    tools: &[ToolDef],
    shape: &RequestShape,
) -> Result<Value, String> {
    let messages = match shape.tool_mode {
        ToolMode::Native => native_messages(messages),
        ToolMode::Text => text_messages(messages),
    };
    let tools = (shape.tool_mode == ToolMode::Native && !tools.is_empty()).then(|| {
        tools
            .iter()
            .map(|t| {
                ChatCompletionTools::Function(ChatCompletionTool {
                    function: FunctionObject {
                        name: t.name.clone(),
                        description: Some(t.description.clone()),
                        parameters: Some(t.parameters.clone()),
                        strict: None,
                    },
                })
            })
            .collect()
    });
    #[allow(deprecated)] // `max_tokens` is what older local servers understand
    let request = CreateChatCompletionRequest {
        messages,
        model: shape.model.to_string(),
        temperature: shape.temperature,
        seed: shape.seed,
        max_tokens: shape
            .max_output_tokens
            .filter(|_| !shape.max_completion_tokens),
        max_completion_tokens: shape
            .max_output_tokens
            .filter(|_| shape.max_completion_tokens),
        // `auto` is the protocol's default when tools are present, but some servers
        // (llama-cpp-python's function-calling chat formats) treat a missing
        // `tool_choice` as `none` and never call a tool: say it.
        tool_choice: tools
            .is_some()
            .then_some(ChatCompletionToolChoiceOption::Mode(
                ToolChoiceOptions::Auto,
            )),
        tools,
        ..Default::default()
    };
    let mut body =
        serde_json::to_value(&request).map_err(|e| format!("could not encode the request: {e}"))?;
    // An assistant turn that only calls tools carries `"content": ""`. The protocol also
    // allows null or no key, but llama-cpp-python's server answers HTTP 500 to both: its
    // request schema wants a string, its strict chat templates read the key.
    if let Some(Value::Array(msgs)) = body.get_mut("messages") {
        for m in msgs.iter_mut() {
            if m["role"] == "assistant"
                && let Some(obj) = m.as_object_mut()
                && obj.get("content").is_none_or(Value::is_null)
            {
                obj.insert("content".into(), Value::String(String::new()));
            }
        }
    }
    Ok(body)
}

fn system(content: &str) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
        content: ChatCompletionRequestSystemMessageContent::Text(content.into()),
        name: None,
    })
}

fn user(content: &str) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
        content: ChatCompletionRequestUserMessageContent::Text(content.into()),
        name: None,
    })
}

fn assistant(
    content: Option<String>,
    calls: Option<Vec<ChatCompletionMessageToolCalls>>,
) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
        content: content.map(ChatCompletionRequestAssistantMessageContent::Text),
        tool_calls: calls,
        ..Default::default()
    })
}

fn native_messages(messages: &[Message]) -> Vec<ChatCompletionRequestMessage> {
    messages
        .iter()
        .map(|m| match m {
            Message::System { content } => system(content),
            Message::User { content } => user(content),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let calls = (!tool_calls.is_empty()).then(|| {
                    tool_calls
                        .iter()
                        .map(|c| {
                            ChatCompletionMessageToolCalls::Function(
                                ChatCompletionMessageToolCall {
                                    id: c.id.clone(),
                                    function: FunctionCall {
                                        name: c.name.clone(),
                                        arguments: wire_arguments(&c.arguments),
                                    },
                                },
                            )
                        })
                        .collect()
                });
                // OpenAI wants `content: null` beside tool calls rather than "".
                let content = (!(content.is_empty() && calls.is_some())).then(|| content.clone());
                assistant(content, calls)
            }
            Message::Tool {
                call_id, content, ..
            } => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
                tool_call_id: call_id.clone(),
            }),
        })
        .collect()
}

/// Arguments as sent back in the history. Invalid JSON is wrapped into valid JSON: llama.cpp's
/// server parses earlier calls' arguments to apply its chat template and refuses the whole
/// request otherwise.
fn wire_arguments(arguments: &Result<Value, String>) -> String {
    match arguments {
        Ok(v) => v.to_string(),
        Err(raw) => json!({ "invalid_json_arguments": raw }).to_string(),
    }
}

/// Text mode: no tool roles, no tool_calls. Calls become action blocks in the assistant's
/// text, results become user messages, and consecutive user messages are merged, since
/// many chat templates (Mistral, Gemma, Llama 2) refuse roles that do not alternate.
fn text_messages(messages: &[Message]) -> Vec<ChatCompletionRequestMessage> {
    let mut out: Vec<(&'static str, String)> = vec![];
    for m in messages {
        let (role, text) = match m {
            Message::System { content } => ("system", content.clone()),
            Message::User { content } => ("user", content.clone()),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut text = content.clone();
                if count_action_blocks(content) == 0 {
                    for c in tool_calls {
                        if !text.is_empty() {
                            text.push_str("\n\n");
                        }
                        text.push_str(&render_action(&c.name, &c.arguments));
                    }
                }
                ("assistant", text)
            }
            Message::Tool { name, content, .. } => {
                ("user", format!("Observation from `{name}`:\n{content}"))
            }
        };
        match out.last_mut() {
            Some((last_role, last)) if *last_role == "user" && role == "user" => {
                last.push_str("\n\n");
                last.push_str(&text);
            }
            _ => out.push((role, text)),
        }
    }
    out.into_iter()
        .map(|(role, text)| match role {
            "system" => system(&text),
            "assistant" => assistant(Some(text), None),
            _ => user(&text),
        })
        .collect()
}

/// A reply's parts, as the server sent them.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub content: String,
    pub reasoning: Option<String>,
    pub calls: Vec<RawCall>,
    pub finish_reason: Option<String>,
    pub model: Option<String>,
    /// (prompt, completion) tokens, when the server counted them.
    pub usage: Option<(u64, u64)>,
    pub refusal: Option<String>,
}

#[derive(Debug)]
pub(crate) struct RawCall {
    pub id: Option<String>,
    pub name: String,
    pub arguments: Result<Value, String>,
}

/// Read a 2xx body. `Err` means it is not a chat completion at all (worth retrying).
pub(crate) fn parse_reply(body: &Value) -> Result<Reply, String> {
    let Value::Object(obj) = body else {
        return Err(format!(
            "the reply is JSON but not an object: {}",
            clip(&body.to_string(), 200)
        ));
    };
    let choices = match obj.get("choices") {
        Some(Value::Array(c)) => c.as_slice(),
        Some(Value::Null) | None => {
            // OpenRouter and some proxies send an error object with status 200.
            if let Some(err) = obj.get("error") {
                return Err(format!(
                    "the server sent an error with status 200: {}",
                    error_message_of(err)
                ));
            }
            if obj.contains_key("choices") {
                &[]
            } else {
                return Err(format!(
                    "the reply has no `choices`: {}",
                    clip(&body.to_string(), 200)
                ));
            }
        }
        Some(other) => {
            return Err(format!(
                "`choices` is not a list: {}",
                clip(&other.to_string(), 200)
            ));
        }
    };
    let mut reply = Reply {
        model: obj.get("model").and_then(Value::as_str).map(str::to_string),
        usage: usage_of(obj.get("usage")),
        ..Reply::default()
    };
    let Some(choice) = choices.first() else {
        return Ok(reply);
    };
    reply.finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = choice.get("message").unwrap_or(&Value::Null);
    reply.content = text_of(message.get("content"));
    reply.reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    reply.refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for c in calls {
            let function = c.get("function").unwrap_or(c);
            let name = tool_name(function.get("name"));
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            reply.calls.push(RawCall {
                id,
                name,
                arguments: arguments_of(function.get("arguments")),
            });
        }
    }
    // The deprecated single `function_call` some servers still send.
    if reply.calls.is_empty()
        && let Some(f) = message.get("function_call").filter(|f| f.is_object())
    {
        let name = tool_name(f.get("name"));
        reply.calls.push(RawCall {
            id: None,
            name,
            arguments: arguments_of(f.get("arguments")),
        });
    }
    Ok(reply)
}

/// A tool call's name as sent. llama-cpp-python's function-calling format sends `"view:"`
/// (the grammar's separator kept), and some models pad names with spaces.
fn tool_name(name: Option<&Value>) -> String {
    name.and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .trim_end_matches(':')
        .trim_end()
        .to_string()
}

fn usage_of(usage: Option<&Value>) -> Option<(u64, u64)> {
    let u = usage?;
    let prompt = u.get("prompt_tokens").and_then(Value::as_u64);
    let completion = u.get("completion_tokens").and_then(Value::as_u64);
    match (prompt, completion) {
        // All-zero usage (some proxies) is as good as none.
        (Some(0), Some(0)) | (None, None) => None,
        (p, c) => Some((p.unwrap_or(0), c.unwrap_or(0))),
    }
}

/// `content` as a string: null → "", a list of parts → their texts joined.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.as_str().or_else(|| p.get("text").and_then(Value::as_str)))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Arguments: a JSON string (the protocol), an object (Ollama), "" or null (no arguments),
/// or a string holding a JSON-encoded string of the object (some fine-tunes encode twice).
fn arguments_of(arguments: Option<&Value>) -> Result<Value, String> {
    match arguments {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::String(inner)) => match serde_json::from_str::<Value>(&inner) {
                Ok(v @ Value::Object(_)) => Ok(v),
                _ => Ok(Value::String(inner)),
            },
            Ok(v) => Ok(v),
            // Some fine-tunes wrap the JSON in a ```json fence.
            Err(_) => unfence(s)
                .and_then(|inner| serde_json::from_str::<Value>(inner).ok())
                .ok_or_else(|| s.clone()),
        },
        Some(other) => Ok(other.clone()),
    }
}

fn unfence(s: &str) -> Option<&str> {
    let rest = s.trim().strip_prefix("```")?.strip_suffix("```")?;
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    Some(rest.trim())
}

/// The human message inside an error body: `{"error": {"message"}}`, `{"error": "..."}`,
/// `{"message"}`, `{"detail"}`, or the text itself.
pub(crate) fn error_message(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            if let Some(e) = v.get("error") {
                error_message_of(e)
            } else if let Some(m) = v.get("message").and_then(Value::as_str) {
                m.to_string()
            } else if let Some(d) = v.get("detail") {
                d.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| d.to_string())
            } else {
                body.trim().to_string()
            }
        }
        Err(_) => body.trim().to_string(),
    };
    if text.is_empty() {
        "(empty body)".into()
    } else {
        clip(&text, 1000)
    }
}

fn error_message_of(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message").and_then(Value::as_str) {
            Some(m) => m.to_string(),
            None => e.to_string(),
        },
        other => other.to_string(),
    }
}

/// The `error.code`/`error.type` of an error body, e.g. "insufficient_quota".
pub(crate) fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    ["code", "type"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

pub(crate) fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// What a reply means for the agent.
pub(crate) struct Interpreted {
    pub content: String,
    pub reasoning: Option<String>,
    pub calls: Vec<ToolCall>,
    pub problems: Vec<Problem>,
}

/// Turn a reply into calls and problems: think blocks split off, text actions parsed, ids
/// made unique, unknown tools and bad arguments flagged.
pub(crate) fn interpret(
    reply: Reply,
    mode: ToolMode,
    tools: &[ToolDef],
    max_output_tokens: Option<u32>,
    id_prefix: &str,
) -> Interpreted {
    let (content, think) = split_think(&reply.content);
    let reasoning = match (reply.reasoning, think) {
        (Some(r), Some(t)) => Some(format!("{r}\n{t}")),
        (r, t) => r.or(t),
    };
    let mut problems = vec![];
    let mut raw_calls = reply.calls;
    if raw_calls.is_empty() {
        match mode {
            ToolMode::Text if !content.trim().is_empty() => match parse_action(&content) {
                Ok((name, args)) => raw_calls.push(RawCall {
                    id: None,
                    name,
                    arguments: Ok(args),
                }),
                Err(p) => problems.push(p),
            },
            // vLLM or llama.cpp started without a tool-call parser hand back the model's
            // Hermes-style `<tool_call>{"name", "arguments"}</tool_call>` text as content.
            ToolMode::Native => raw_calls = hermes_calls(&content),
            ToolMode::Text => {}
        }
    }
    let mut seen = HashSet::new();
    let mut calls = Vec::with_capacity(raw_calls.len());
    for (i, c) in raw_calls.into_iter().enumerate() {
        let id = match c.id {
            Some(id) if seen.insert(id.clone()) => id,
            _ => {
                let id = format!("{id_prefix}_{i}");
                seen.insert(id.clone());
                id
            }
        };
        if let Err(raw) = &c.arguments {
            let error = serde_json::from_str::<Value>(raw)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            problems.push(Problem::InvalidArguments {
                tool: c.name.clone(),
                error,
            });
        }
        if !tools.is_empty() && !tools.iter().any(|t| t.name == c.name) {
            problems.push(Problem::UnknownTool {
                name: c.name.clone(),
                known: tools.iter().map(|t| t.name.clone()).collect(),
            });
        }
        calls.push(ToolCall {
            id,
            name: c.name,
            arguments: c.arguments,
        });
    }
    match reply.finish_reason.as_deref() {
        Some("length" | "max_tokens") => problems.insert(
            0,
            Problem::CutOff {
                limit: max_output_tokens,
            },
        ),
        Some("content_filter") => problems.push(Problem::ContentFilter),
        _ => {}
    }
    if let Some(r) = reply.refusal {
        problems.push(Problem::Refusal { message: r });
    }
    if calls.is_empty() && content.trim().is_empty() && problems.is_empty() {
        problems.push(Problem::Empty);
    }
    Interpreted {
        content,
        reasoning,
        calls,
        problems,
    }
}

/// A leading `<think>…</think>` block (reasoning models on servers without a reasoning
/// parser) split from the answer. An unclosed one is all reasoning.
fn split_think(content: &str) -> (String, Option<String>) {
    let trimmed = content.trim_start();
    let Some(rest) = trimmed.strip_prefix("<think>") else {
        return (content.to_string(), None);
    };
    match rest.find("</think>") {
        Some(end) => (
            rest[end + "</think>".len()..].trim_start().to_string(),
            Some(rest[..end].trim().to_string()),
        ),
        None => (String::new(), Some(rest.trim().to_string())),
    }
}

fn hermes_calls(content: &str) -> Vec<RawCall> {
    let mut calls = vec![];
    let mut rest = content;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let end = after.find("</tool_call>").unwrap_or(after.len());
        if let Ok(v) = serde_json::from_str::<Value>(after[..end].trim())
            && let Some(name) = v.get("name").and_then(Value::as_str)
        {
            calls.push(RawCall {
                id: None,
                name: name.to_string(),
                arguments: arguments_of(v.get("arguments").or(v.get("parameters"))),
            });
        }
        rest = &after[end..];
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(mode: ToolMode) -> RequestShape<'static> {
        RequestShape {
            model: "m",
            temperature: Some(0.0),
            seed: Some(7),
            max_output_tokens: Some(100),
            max_completion_tokens: false,
            tool_mode: mode,
        }
    }

    fn convo() -> Vec<Message> {
        vec![
            Message::system("sys"),
            Message::user("fix it"),
            Message::assistant(
                "",
                vec![ToolCall {
                    id: "c1".into(),
                    name: "view".into(),
                    arguments: Ok(json!({"path": "a.py"})),
                }],
            ),
            Message::tool("c1", "view", "1: x = 1"),
            Message::user("note: format"),
        ]
    }

    #[test]
    fn native_request_has_tools_and_tool_roles() {
        let tools = [ToolDef {
            name: "view".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        }];
        let body = request_body(&convo(), &tools, &shape(ToolMode::Native)).unwrap();
        assert_eq!(body["seed"], 7, "best-of-N varies the seed");
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "view");
        assert_eq!(
            body["tool_choice"], "auto",
            "some servers read a missing one as none"
        );
        assert_eq!(
            body["messages"][2]["content"], "",
            "a tool-calling turn states its (empty) content as a string"
        );
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"path\":\"a.py\"}"
        );
        assert_eq!(body["messages"][3]["role"], "tool");
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("max_completion_tokens").is_none());
    }

    #[test]
    fn text_request_has_no_tools_and_alternates() {
        let tools = [ToolDef {
            name: "view".into(),
            description: "d".into(),
            parameters: json!({}),
        }];
        let body = request_body(&convo(), &tools, &shape(ToolMode::Text)).unwrap();
        assert!(body.get("tools").is_none());
        assert!(body.get("tool_choice").is_none());
        let msgs = body["messages"].as_array().unwrap();
        let roles: Vec<_> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(msgs.iter().all(|m| m.get("tool_calls").is_none()));
        let action = msgs[2]["content"].as_str().unwrap();
        assert_eq!(
            parse_action(action).unwrap(),
            ("view".into(), json!({"path": "a.py"}))
        );
        assert_eq!(
            msgs[3]["content"],
            "Observation from `view`:\n1: x = 1\n\nnote: format"
        );
    }

    #[test]
    fn lenient_reply_parsing() {
        let body = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "reasoning_content": "hmm", "tool_calls": [
                {"function": {"name": "view", "arguments": {"path": "x"}}},
                {"id": "", "function": {"name": "bash", "arguments": ""}},
                {"id": "k", "type": "function", "function": {"name": "edit", "arguments": "\"{\\\"a\\\": 1}\""}}]},
            "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 5}});
        let r = parse_reply(&body).unwrap();
        assert_eq!(r.content, "ab");
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
        assert_eq!(r.usage, Some((5, 0)));
        assert_eq!(r.calls[0].arguments, Ok(json!({"path": "x"})));
        assert_eq!(r.calls[1].arguments, Ok(json!({})));
        assert_eq!(r.calls[2].arguments, Ok(json!({"a": 1})));
        assert_eq!(
            arguments_of(Some(&json!("```json\n{\"b\": 2}\n```"))),
            Ok(json!({"b": 2}))
        );
        assert_eq!(
            arguments_of(Some(&json!("{\"b\": "))),
            Err("{\"b\": ".to_string())
        );
        let i = interpret(r, ToolMode::Native, &[], None, "p");
        let ids: Vec<_> = i.calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["p_0", "p_1", "k"]);
    }

    /// The shape llama-cpp-python 0.3.36 answers with (`--chat_format
    /// chatml-function-calling`): `content: null`, a legacy `function_call` beside
    /// `tool_calls`, the name with the grammar's trailing colon.
    #[test]
    fn llama_cpp_python_function_calls() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "function_call": {"name": "view:", "arguments": "{\"path\": \"a.py\"}"},
            "tool_calls": [{"id": "call__0_view_cmpl-1", "type": "function",
                "function": {"name": "view:", "arguments": "{\"path\": \"a.py\"}"}}]},
            "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 9, "completion_tokens": 3}});
        let r = parse_reply(&body).unwrap();
        assert_eq!(r.calls.len(), 1, "the legacy field is not a second call");
        assert_eq!(r.calls[0].name, "view");
        assert_eq!(r.calls[0].arguments, Ok(json!({"path": "a.py"})));
    }

    #[test]
    fn hermes_and_think_fallbacks() {
        let reply = Reply {
            content: "<think>plan</think>\n<tool_call>\n{\"name\": \"view\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>".into(),
            ..Reply::default()
        };
        let i = interpret(reply, ToolMode::Native, &[], None, "p");
        assert_eq!(i.reasoning.as_deref(), Some("plan"));
        assert_eq!(i.calls.len(), 1);
        assert_eq!(i.calls[0].arguments, Ok(json!({"path": "a"})));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(r#"{"error": {"message": "bad key", "code": "invalid_api_key"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(r#"{"error": "model not found"}"#),
            "model not found"
        );
        assert_eq!(
            error_message(r#"{"object": "error", "message": "too long"}"#),
            "too long"
        );
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
        assert_eq!(
            error_code(r#"{"error": {"message": "m", "code": "insufficient_quota"}}"#).as_deref(),
            Some("insufficient_quota")
        );
    }
}
