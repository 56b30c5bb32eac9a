//! A real chat-completions server on 127.0.0.1 for tests (feature `test-server`).
//!
//! It serves a script of replies in order (or answers from a closure), and records every
//! request it received (method, path, headers, body) for assertions:
//!
//! ```no_run
//! # async fn demo() {
//! use mend_llm::test_server::{Reply, TestServer};
//! let server = TestServer::start(vec![
//!     Reply::error(429, "slow down").with_header("retry-after", "1"),
//!     Reply::tool_calls(&[("view", serde_json::json!({"path": "a.py"}))]),
//! ])
//! .await;
//! let config = server.config("gpt-4o"); // base_url, small backoff, short timeout
//! // ... run the client, then:
//! assert_eq!(server.requests().len(), 2);
//! # }
//! ```
//!
//! Like real servers, it can also state a context window (`/v1/models` with vLLM's
//! `max_model_len`, llama-server's `/props`, Ollama's `/api/show`: see
//! [`TestServer::route`]), refuse with each server's overflow body ([`Reply::overflow`]),
//! cut replies at the length limit ([`Reply::cut_off`]) and never answer ([`Reply::hang`]).
//! Requests to those discovery paths never consume the script and are kept apart
//! ([`TestServer::probes`]). [`TestServer::act_like_llama_cpp_python`] makes it behave as
//! that server does: no window stated anywhere, a tokenizer route, and an overflow error
//! for every prompt longer than its window.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::config::ModelConfig;

/// One scripted reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Never answer (the client's timeout must fire).
    pub hang: bool,
    /// Send the status and part of the body, then drop the connection.
    pub drop_connection: bool,
}

impl Reply {
    /// Any status with this JSON body.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::raw(status, &body.to_string())
    }

    /// Any status with this body, sent as is (it need not be JSON).
    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            delay: Duration::ZERO,
            hang: false,
            drop_connection: false,
        }
    }

    /// A 200 completion with this assistant message and finish reason, and usage 100/20.
    pub fn message(message: Value, finish_reason: &str) -> Reply {
        Reply::json(200, completion_body(message, finish_reason))
    }

    /// A plain text answer.
    pub fn text(content: &str) -> Reply {
        Reply::message(json!({"role": "assistant", "content": content}), "stop")
    }

    /// Native tool calls, with ids `call_1`, `call_2`...
    pub fn tool_calls(calls: &[(&str, Value)]) -> Reply {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| json!({"id": format!("call_{}", i + 1), "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
            .collect();
        Reply::message(
            json!({"role": "assistant", "content": null, "tool_calls": calls}),
            "tool_calls",
        )
    }

    /// A text-mode action: some reasoning, then one ```action block.
    pub fn action(thought: &str, tool: &str, args: Value) -> Reply {
        let mut obj = serde_json::Map::new();
        obj.insert("tool".into(), json!(tool));
        if let Value::Object(a) = args {
            obj.extend(a);
        }
        Reply::text(&format!(
            "{thought}\n\n```action\n{}\n```",
            Value::Object(obj)
        ))
    }

    /// An OpenAI-style error: `{"error": {"message", "type", "code"}}`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {"message": message, "type": "test_error", "code": null}}),
        )
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Set `usage` in the JSON body.
    pub fn with_usage(self, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        self.edit_json(|b| {
            b["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
        })
    }

    /// Remove `usage` from the JSON body.
    pub fn without_usage(self) -> Reply {
        self.edit_json(|b| {
            if let Value::Object(o) = b {
                o.remove("usage");
            }
        })
    }

    /// Change the JSON body (no-op for a body that is not JSON).
    pub fn edit_json(mut self, f: impl FnOnce(&mut Value)) -> Reply {
        if let Ok(mut v) = serde_json::from_str::<Value>(&self.body) {
            f(&mut v);
            self.body = v.to_string();
        }
        self
    }

    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::raw(200, "")
        }
    }

    /// A 200 whose body is cut off by a dropped connection.
    pub fn drop_connection() -> Reply {
        Reply {
            drop_connection: true,
            ..Reply::text("never seen")
        }
    }
}

/// The context-overflow error bodies real servers send (see `Reply::overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// OpenAI and Azure: code `context_length_exceeded`.
    OpenAi,
    /// vLLM: "…you requested N tokens (P in the messages, C in the completion)".
    Vllm,
    /// llama.cpp's llama-server: `exceed_context_size_error` with `n_prompt_tokens`, `n_ctx`.
    LlamaCpp,
    /// llama-cpp-python's server (0.3.36), the body measured against a real one. It refuses
    /// only a prompt longer than `n_ctx`; prompt + `max_tokens` beyond it is accepted and
    /// generation stops at the window.
    LlamaCppPython,
    /// Ollama: no sizes.
    Ollama,
    /// LiteLLM's proxy: `ContextWindowExceededError`.
    LiteLlm,
    /// OpenRouter: "This endpoint's maximum context length is…".
    OpenRouter,
}

impl Reply {
    /// The HTTP 400 a server of this `flavour` sends when the prompt (`prompt` tokens) does
    /// not fit its `window`.
    pub fn overflow(flavour: Overflow, prompt: u64, window: u64) -> Reply {
        let body = match flavour {
            Overflow::OpenAi => {
                json!({"error": {"message": format!("This model's maximum context length is {window} tokens. However, your messages resulted in {prompt} tokens. Please reduce the length of the messages."), "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
            }
            Overflow::Vllm => {
                json!({"object": "error", "message": format!("This model's maximum context length is {window} tokens. However, you requested {} tokens ({prompt} in the messages, 1000 in the completion). Please reduce the length of the messages or completion.", prompt + 1000), "type": "BadRequestError", "param": null, "code": 400})
            }
            Overflow::LlamaCpp => {
                json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": prompt, "n_ctx": window}})
            }
            Overflow::LlamaCppPython => llama_cpp_python_overflow(prompt, 512, window),
            Overflow::Ollama => {
                json!({"error": {"message": "the input length exceeds the context length", "type": "api_error", "param": null, "code": null}})
            }
            Overflow::LiteLlm => {
                json!({"error": {"message": format!("litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: This model's maximum context length is {window} tokens. However, your messages resulted in {prompt} tokens."), "type": null, "param": null, "code": "400"}})
            }
            Overflow::OpenRouter => {
                json!({"error": {"message": format!("This endpoint's maximum context length is {window} tokens. However, you requested about {} tokens ({prompt} of text input, 1000 in the output). Please reduce the length of either one.", prompt + 1000), "code": 400}})
            }
        };
        Reply::json(400, body)
    }

    /// A reply stopped at the output limit (`finish_reason: "length"`): the text so far.
    pub fn cut_off(content: &str) -> Reply {
        Reply::message(json!({"role": "assistant", "content": content}), "length")
    }

    /// A native tool call stopped at the output limit: its arguments end mid-JSON.
    pub fn cut_off_call(tool: &str, partial_arguments: &str) -> Reply {
        Reply::message(
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": tool, "arguments": partial_arguments}}]}),
            "length",
        )
    }

    /// A tool call as llama-cpp-python's server sends it with `--chat_format
    /// chatml-function-calling` (only when the request says `tool_choice: "auto"`):
    /// `content: null`, a legacy `function_call` beside `tool_calls`, the name with a
    /// trailing colon, an id built from the completion's.
    pub fn llama_cpp_python_call(tool: &str, args: Value) -> Reply {
        let call = json!({"name": format!("{tool}:"), "arguments": args.to_string()});
        Reply::message(
            json!({"role": "assistant", "content": null, "function_call": call,
                   "tool_calls": [{"id": format!("call__0_{tool}_cmpl-1"), "type": "function", "function": call}]}),
            "tool_calls",
        )
    }

    /// What llama-cpp-python's server answers when an assistant turn's `content` is missing
    /// (its strict chat template reads the key) or null (its request schema wants a
    /// string): HTTP 500.
    pub fn strict_template_error(key: &str) -> Reply {
        Reply::json(
            500,
            json!({"error": {"message": format!("'dict object' has no attribute '{key}'"), "type": "internal_server_error"}}),
        )
    }

    /// vLLM's `/v1/models`: one model with its `max_model_len`.
    pub fn vllm_models(model: &str, max_model_len: u64) -> Reply {
        Reply::json(
            200,
            json!({"object": "list", "data": [{"id": model, "object": "model", "created": 1_700_000_000u32, "owned_by": "vllm", "root": model, "parent": null, "max_model_len": max_model_len}]}),
        )
    }

    /// llama-server's `/props`.
    pub fn llama_props(n_ctx: u64) -> Reply {
        Reply::json(
            200,
            json!({"default_generation_settings": {"n_ctx": n_ctx, "params": {"n_predict": -1}}, "total_slots": 1, "chat_template": ""}),
        )
    }

    /// Ollama's `/api/show` for a model served with `num_ctx`.
    pub fn ollama_show(num_ctx: u64, trained: u64) -> Reply {
        Reply::json(
            200,
            json!({"parameters": format!("num_ctx                        {num_ctx}"), "model_info": {"general.architecture": "qwen2", "qwen2.context_length": trained}}),
        )
    }
}

/// llama-cpp-python's refusal of a prompt over its window, as a real 0.3.36 server words it.
fn llama_cpp_python_overflow(prompt: u64, completion: u64, window: u64) -> Value {
    json!({"error": {"message": format!("This model's maximum context length is {window} tokens. However, you requested {} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion.", prompt + completion), "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
}

/// The test server's stand-in for a tokenizer: one token per whitespace-separated word
/// (a real one gives one token per " a", the overflow probe's filler, too).
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// What llama-cpp-python's chat template adds to a prompt, about (measured: 9 tokens
/// around one user message with `chatml-function-calling`).
const LLAMA_CPP_PYTHON_TEMPLATE_TOKENS: u64 = 9;

/// The prompt tokens llama-cpp-python would count for a chat request (messages only).
fn llama_cpp_python_prompt(request: &Value) -> u64 {
    let messages = request["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    LLAMA_CPP_PYTHON_TEMPLATE_TOKENS
        + messages
            .iter()
            .map(|m| words(m["content"].as_str().unwrap_or("")) + 1)
            .sum::<u64>()
}

/// A chat-completion body around one assistant message.
pub fn completion_body(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000u32,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    handler: Option<Box<Handler>>,
    received: Mutex<Vec<Received>>,
    /// (method, path) → the reply, every time.
    routes: Mutex<HashMap<(String, String), Reply>>,
    probes: Mutex<Vec<Received>>,
    /// Acting as llama-cpp-python with this window (see `act_like_llama_cpp_python`).
    llama_cpp_python: Mutex<Option<u64>>,
}

/// The server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Serve `script` in order; past its end, answer 500 "script exhausted".
    pub async fn start(script: Vec<Reply>) -> TestServer {
        Self::launch(Shared {
            script: Mutex::new(script.into()),
            handler: None,
            received: Mutex::new(vec![]),
            routes: Mutex::new(HashMap::new()),
            probes: Mutex::new(vec![]),
            llama_cpp_python: Mutex::new(None),
        })
        .await
    }

    /// Answer every request from `f` (after any replies added with [`TestServer::push`]).
    pub async fn with_handler(
        f: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        Self::launch(Shared {
            script: Mutex::new(VecDeque::new()),
            handler: Some(Box::new(f)),
            received: Mutex::new(vec![]),
            routes: Mutex::new(HashMap::new()),
            probes: Mutex::new(vec![]),
            llama_cpp_python: Mutex::new(None),
        })
        .await
    }

    async fn launch(shared: Shared) -> TestServer {
        let shared = Arc::new(shared);
        // Binding 127.0.0.1:0 only fails when the machine has no loopback: a broken test host.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of a bound listener");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "test server stopped");
            }
        });
        TestServer { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A config pointing here, fit for tests: no key, 3 tries, 10 ms backoff, 5 s timeout,
    /// 30 s patience, progress every 100 ms.
    pub fn config(&self, model: &str) -> ModelConfig {
        ModelConfig {
            base_url: self.base_url(),
            model: model.to_string(),
            max_tries: 3,
            backoff_initial_secs: 0.01,
            backoff_max_secs: 0.05,
            timeout_secs: 5.0,
            retry_patience_secs: 30.0,
            progress_every_secs: 0.1,
            ..ModelConfig::default()
        }
    }

    /// Add a reply to the end of the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    /// Every request received so far, in order (discovery probes apart: see `probes`).
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Answer `method` `path` (e.g. "GET", "/v1/models"; no query) with `reply`, every
    /// time, outside the script. Such requests are recorded in [`TestServer::probes`].
    pub fn route(&self, method: &str, path: &str, reply: Reply) {
        lock(&self.shared.routes).insert((method.to_ascii_uppercase(), path.to_string()), reply);
    }

    /// Behave as llama-cpp-python's server (0.3.36, measured) serving `model` with a window
    /// of `n_ctx` tokens: `GET /v1/models` lists the id only (`owned_by: "me"`), `/props`
    /// is 404, `POST /extras/tokenize` and `/extras/tokenize/count` tokenize (one token per
    /// word here), and a chat request whose prompt is longer than `n_ctx` is refused at
    /// once with its overflow error (without consuming the script); shorter prompts get
    /// the script's replies, even when prompt + `max_tokens` exceeds the window.
    pub fn act_like_llama_cpp_python(&self, model: &str, n_ctx: u64) {
        *lock(&self.shared.llama_cpp_python) = Some(n_ctx);
        self.route(
            "GET",
            "/v1/models",
            Reply::json(
                200,
                json!({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "me", "permissions": []}]}),
            ),
        );
    }

    /// Requests to routed paths and to the context-window discovery paths (`GET …/models`,
    /// `GET /props`, `POST /api/show`, `/extras/…`), which get 404 unless routed.
    pub fn probes(&self) -> Vec<Received> {
        lock(&self.shared.probes).clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a llama-cpp-python server with a window of `n_ctx` answers by itself: its
/// tokenizer routes and its refusal of an overlong prompt. `None`: the script answers.
fn llama_cpp_python(n_ctx: u64, request: &Received) -> Option<Reply> {
    if request.method != "POST" {
        return None;
    }
    let body = request.json();
    let path = request.path.split('?').next().unwrap_or("");
    match path {
        "/extras/tokenize/count" => Some(Reply::json(
            200,
            json!({"count": words(body["input"].as_str().unwrap_or(""))}),
        )),
        "/extras/tokenize" => {
            let n = words(body["input"].as_str().unwrap_or(""));
            Some(Reply::json(200, json!({"tokens": vec![253; n as usize]})))
        }
        p if p.ends_with("/chat/completions") => {
            let prompt = llama_cpp_python_prompt(&body);
            let completion = body["max_tokens"].as_u64().unwrap_or(0);
            (prompt > n_ctx)
                .then(|| Reply::json(400, llama_cpp_python_overflow(prompt, completion, n_ctx)))
        }
        _ => None,
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let path = parts.uri.path().to_string();
    let routed = lock(&shared.routes)
        .get(&(received.method.clone(), path.clone()))
        .cloned();
    let discovery = (received.method == "GET" && (path.ends_with("/models") || path == "/props"))
        || path == "/api/show"
        || path.starts_with("/extras/");
    let acting = *lock(&shared.llama_cpp_python);
    let reply = if let Some(reply) = acting.and_then(|n_ctx| llama_cpp_python(n_ctx, &received)) {
        match path.starts_with("/extras/") {
            true => lock(&shared.probes).push(received),
            false => lock(&shared.received).push(received),
        }
        reply
    } else if routed.is_some() || discovery {
        lock(&shared.probes).push(received);
        routed.unwrap_or_else(|| Reply::error(404, "test server: no such route"))
    } else {
        lock(&shared.received).push(received.clone());
        let next = lock(&shared.script).pop_front();
        match (next, &shared.handler) {
            (Some(r), _) => r,
            (None, Some(f)) => f(&received),
            (None, None) => Reply::error(500, "test server: script exhausted"),
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if reply.hang {
        std::future::pending::<()>().await;
    }
    let body = if reply.drop_connection {
        let half = Bytes::from(reply.body[..reply.body.len() / 2].to_string());
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(half),
            Err(std::io::Error::other(
                "connection dropped by the test server",
            )),
        ];
        Body::from_stream(futures_util::stream::iter(chunks))
    } else {
        Body::from(reply.body)
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}
