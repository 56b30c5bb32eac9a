//! The client against a real chat-completions server on 127.0.0.1 (the crate's test server).
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mend_llm::test_server::{Reply, TestServer, completion_body};
use mend_llm::{
    Completion, ExchangeCompactor, Ledger, Limits, Message, Model, ModelConfig, ModelError,
    OpenAiCompatible, Problem, Recording, ReplayModel, ToolCall, ToolDef, ToolMode,
};
use serde_json::{Value, json};

mod support;
use support::{client, convo};

fn tools() -> Vec<ToolDef> {
    support::tool_defs(
        &["view", "bash", "submit"],
        json!({"type": "object", "properties": {}}),
    )
}

async fn one(
    server_replies: Vec<Reply>,
    edit: impl FnOnce(&mut ModelConfig),
) -> (Result<Completion, ModelError>, TestServer) {
    let server = TestServer::start(server_replies).await;
    let model = client(&server, "gpt-4o", edit);
    let r = model.complete(&convo(), &tools()).await;
    (r, server)
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let server = TestServer::start(vec![
        Reply::tool_calls(&[
            ("view", json!({"path": "a.py"})),
            ("bash", json!({"command": "ls"})),
        ]),
        Reply::text("done"),
    ])
    .await;
    let model: Arc<dyn Model> = Arc::new(client(&server, "gpt-4o", |c| c.temperature = Some(0.0)));
    let mut conv = convo();
    let c = model.complete(&conv, &tools()).await.unwrap();
    assert_eq!(c.tool_calls.len(), 2);
    assert_eq!(
        c.tool_calls[0],
        ToolCall {
            id: "call_1".into(),
            name: "view".into(),
            arguments: Ok(json!({"path": "a.py"}))
        }
    );
    assert_eq!(c.tool_calls[1].arguments, Ok(json!({"command": "ls"})));
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(
        (c.usage.tokens_in, c.usage.tokens_out, c.usage.estimated),
        (100, 20, false)
    );
    assert!(c.cost.priced && (c.cost.usd - (100.0 * 2.5 + 20.0 * 10.0) / 1e6).abs() < 1e-12);

    conv.push(c.message());
    conv.push(Message::tool("call_1", "view", "1: x = 1"));
    conv.push(Message::tool("call_2", "bash", "a.py"));
    let c2 = model.complete(&conv, &tools()).await.unwrap();
    assert_eq!(c2.content, "done");

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].method, "POST");
    assert!(
        reqs[0].header("authorization").is_none(),
        "no key configured, none sent"
    );
    let first = reqs[0].json();
    assert_eq!(first["model"], "gpt-4o");
    assert_eq!(first["temperature"], 0.0);
    let names: Vec<_> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["view", "bash", "submit"]);
    let second = reqs[1].json();
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[2]["tool_calls"][1]["id"], "call_2");
    assert_eq!(
        msgs[2]["tool_calls"][0]["function"]["arguments"],
        "{\"path\":\"a.py\"}"
    );
    assert_eq!(
        (
            msgs[4]["role"].as_str(),
            msgs[4]["tool_call_id"].as_str(),
            msgs[4]["content"].as_str()
        ),
        (Some("tool"), Some("call_2"), Some("a.py"))
    );
    assert_eq!(model.totals().calls, 2);
    assert_eq!(model.totals().tokens(), 240);
}

#[tokio::test]
async fn text_action_mode() {
    let server = TestServer::start(vec![
        Reply::action("Let me look.", "view", json!({"path": "src/x.py", "start": 1})),
        Reply::text("I think the bug is in x.py."),
        Reply::text("```action\n{\"tool\": \"bash\", \"command\": \"ls\"}\n```\nand\n```action\n{\"tool\": \"view\"}\n```"),
        Reply::text("```action\n{\"tool\": \"view\", path: 1}\n```"),
        Reply::text("```action\n{\"path\": \"a.py\"}\n```"),
        Reply::action("", "explode", json!({})),
    ])
    .await;
    let model = client(&server, "qwen2.5-coder", |c| c.tool_mode = ToolMode::Text);
    assert_eq!(model.tool_mode(), ToolMode::Text);
    let mut conv = convo();
    let c = model.complete(&conv, &tools()).await.unwrap();
    assert_eq!(c.tool_calls.len(), 1);
    assert_eq!(
        (c.tool_calls[0].name.as_str(), &c.tool_calls[0].arguments),
        ("view", &Ok(json!({"path": "src/x.py", "start": 1})))
    );
    assert!(c.problems.is_empty());
    assert!(
        c.content.starts_with("Let me look."),
        "the text is kept: {}",
        c.content
    );

    conv.push(c.message());
    conv.push(Message::tool(
        c.tool_calls[0].id.clone(),
        "view",
        "1: def f(): pass",
    ));
    conv.push(Message::user("(a note from the agent)"));
    let expect = [
        vec![Problem::NoAction],
        vec![Problem::SeveralActions { count: 2 }],
        vec![Problem::ActionNotJson {
            error: "key must be a string at line 1 column 18".into(),
        }],
        vec![Problem::ActionWithoutTool],
    ];
    for want in expect {
        let c = model.complete(&conv, &tools()).await.unwrap();
        assert!(c.tool_calls.is_empty());
        assert_eq!(c.problems, want);
        assert!(!c.content.is_empty(), "the text is kept");
        assert!(c.problem_text().is_some());
    }
    let c = model.complete(&conv, &tools()).await.unwrap();
    assert!(
        matches!(&c.problems[..], [Problem::UnknownTool { name, .. }] if name == "explode"),
        "{:?}",
        c.problems
    );

    for r in server.requests() {
        let body = r.json();
        assert!(body.get("tools").is_none(), "text mode sends no tools");
        let msgs = body["messages"].as_array().unwrap();
        assert!(
            msgs.iter()
                .all(|m| m["role"] != "tool" && m.get("tool_calls").is_none())
        );
    }
    let second = server.requests()[1].json();
    let msgs = second["messages"].as_array().unwrap();
    let roles: Vec<_> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(msgs[2]["content"].as_str().unwrap().contains("```action"));
    assert_eq!(
        msgs[3]["content"],
        "Observation from `view`:\n1: def f(): pass\n\n(a note from the agent)"
    );
}

#[tokio::test]
async fn honours_retry_after_then_succeeds() {
    let (r, server) = one(
        vec![
            Reply::error(429, "Rate limit reached").with_header("retry-after", "1"),
            Reply::text("ok"),
        ],
        |_| {},
    )
    .await;
    assert_eq!(r.unwrap().content, "ok");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].at - reqs[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
}

#[tokio::test]
async fn a_retry_after_too_long_fails_at_once() {
    let (r, server) = one(
        vec![Reply::error(429, "come back tomorrow").with_header("retry-after", "86400")],
        |_| {},
    )
    .await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("86400") && e.contains("come back tomorrow"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_exhaust_the_tries() {
    let started = Instant::now();
    let (r, server) = one(
        vec![
            Reply::error(500, "boom 1"),
            Reply::error(502, "boom 2"),
            Reply::raw(503, "Service Unavailable"),
            Reply::text("never"),
        ],
        |c| c.max_tries = 3,
    )
    .await;
    let e = r.unwrap_err();
    assert!(matches!(e, ModelError::GaveUp { tries: 3, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "gpt-4o: gave up after 3 tries; last failure: HTTP 503: Service Unavailable"
    );
    assert_eq!(server.requests().len(), 3);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_server_message() {
    for (status, message) in [
        (400, "Invalid value for 'temperature'"),
        (401, "Incorrect API key provided"),
        (403, "forbidden"),
        (404, "The model `gpt-9` does not exist"),
    ] {
        let (r, server) = one(
            vec![Reply::error(status, message), Reply::text("never")],
            |_| {},
        )
        .await;
        match r.unwrap_err() {
            ModelError::Rejected {
                status: s,
                message: m,
                ..
            } => assert_eq!((s, m.as_str()), (status, message)),
            other => panic!("{status}: {other:?}"),
        }
        assert_eq!(server.requests().len(), 1, "{status}: exactly one request");
    }
    let quota = Reply::json(
        429,
        json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
    );
    let (r, server) = one(vec![quota, Reply::text("never")], |_| {}).await;
    assert!(matches!(
        r.unwrap_err(),
        ModelError::Rejected { status: 429, .. }
    ));
    assert_eq!(
        server.requests().len(),
        1,
        "an exhausted quota is not retried"
    );
}

#[tokio::test]
async fn a_hung_server_hits_the_timeout() {
    let started = Instant::now();
    let (r, server) = one(vec![Reply::hang(), Reply::hang()], |c| {
        c.timeout_secs = 0.3;
        c.max_tries = 2;
    })
    .await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("gave up after 2 tries") && e.contains("timed out"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropped_connections_and_garbage_bodies_are_retried() {
    let garbage = vec![
        Reply::drop_connection(),
        Reply::raw(200, "<html>proxy error</html>"),
        Reply::json(200, json!({"error": {"message": "upstream overloaded"}})),
        Reply::text("finally"),
    ];
    let (r, server) = one(garbage, |c| c.max_tries = 4).await;
    assert_eq!(r.unwrap().content, "finally");
    assert_eq!(server.requests().len(), 4);

    let (r, _server) = one(
        vec![Reply::drop_connection(), Reply::raw(200, "{\"choi")],
        |c| c.max_tries = 2,
    )
    .await;
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("gave up after 2 tries") && e.contains("not JSON"),
        "{e}"
    );
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ModelConfig {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        max_tries: 2,
        backoff_initial_secs: 0.01,
        ..ModelConfig::default()
    };
    let e = OpenAiCompatible::with_env(config, |_| None)
        .unwrap()
        .complete(&convo(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gave up after 2 tries") && e.contains("could not connect"),
        "{e}"
    );
}

/// What local servers send, each a typed outcome.
#[tokio::test]
async fn malformed_and_quirky_replies() {
    // No usage: estimated, and said so.
    let (r, _s) = one(vec![Reply::text("hello there").without_usage()], |_| {}).await;
    let c = r.unwrap();
    assert!(
        c.usage.estimated && c.usage.tokens_in > 10 && c.usage.tokens_out > 0,
        "{:?}",
        c.usage
    );

    // Empty choices.
    let (r, _s) = one(vec![Reply::json(200, json!({"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}}))], |_| {}).await;
    assert_eq!(r.unwrap().problems, [Problem::Empty]);

    // Cut off at the length limit.
    let (r, _s) = one(
        vec![Reply::message(
            json!({"role": "assistant", "content": "I will now"}),
            "length",
        )],
        |c| c.max_output_tokens = Some(64),
    )
    .await;
    let c = r.unwrap();
    assert_eq!(c.problems, [Problem::CutOff { limit: Some(64) }]);
    assert!(
        c.problem_text()
            .unwrap()
            .contains("cut off at the length limit (64 output tokens)")
    );

    // Arguments that are not JSON are kept raw.
    let bad = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\": \"ls"}}]});
    let (r, _s) = one(vec![Reply::message(bad, "tool_calls")], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(
        c.tool_calls[0].arguments,
        Err("{\"command\": \"ls".to_string())
    );
    assert!(
        matches!(&c.problems[..], [Problem::InvalidArguments { tool, .. }] if tool == "bash"),
        "{:?}",
        c.problems
    );

    // Unknown tool names.
    let (r, _s) = one(vec![Reply::tool_calls(&[("rm_rf", json!({}))])], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(
        c.tool_calls.len(),
        1,
        "the call is kept so its id can be answered"
    );
    assert_eq!(
        c.problems,
        [Problem::UnknownTool {
            name: "rm_rf".into(),
            known: vec!["view".into(), "bash".into(), "submit".into()]
        }]
    );

    // Content and tool calls together; a refusal field.
    let both = json!({"role": "assistant", "content": "Looking first.", "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "view", "arguments": "{}"}}]});
    let (r, _s) = one(vec![Reply::message(both, "tool_calls")], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(
        (c.content.as_str(), c.tool_calls.len()),
        ("Looking first.", 1)
    );

    // A very long reply: read whole, kept only up to max_reply_chars (see servers.rs).
    let long = "x".repeat(2_000_000);
    let (r, _s) = one(vec![Reply::text(&long)], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(
        c.content.chars().count(),
        64_001,
        "64,000 characters and an ellipsis"
    );
    assert!(matches!(
        c.problems[..],
        [Problem::TooLong {
            chars: 2_000_000,
            limit: 64_000,
            ..
        }]
    ));

    // null content and nothing else.
    let (r, _s) = one(
        vec![Reply::message(
            json!({"role": "assistant", "content": null}),
            "stop",
        )],
        |_| {},
    )
    .await;
    let c = r.unwrap();
    assert_eq!(
        (c.content.as_str(), &c.problems[..]),
        ("", &[Problem::Empty][..])
    );

    // llama.cpp/Ollama/vLLM-style: no id/created/object/system_fingerprint, extra fields,
    // tool calls without ids (or with duplicate ids), arguments as an object, usage without
    // total_tokens, reasoning beside the answer.
    let quirky = r#"{"model": "qwen", "timings": {"predicted_ms": 12.5},
        "choices": [{"message": {"role": "assistant", "content": "", "reasoning_content": "think",
            "tool_calls": [{"function": {"name": "view", "arguments": {"path": "a.py"}}},
                           {"id": "dup", "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}},
                           {"id": "dup", "function": {"name": "submit", "arguments": ""}}]},
            "finish_reason": "tool_calls", "stop_reason": null}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 7}}"#;
    assert!(
        serde_json::from_str::<async_openai::types::chat::CreateChatCompletionResponse>(quirky)
            .is_err(),
        "async-openai's typed response refuses this body; we must not"
    );
    let (r, _s) = one(vec![Reply::raw(200, quirky)], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(c.reasoning.as_deref(), Some("think"));
    assert_eq!(c.model.as_deref(), Some("qwen"));
    assert_eq!((c.usage.tokens_in, c.usage.tokens_out), (50, 7));
    let ids: Vec<&str> = c.tool_calls.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids[0].starts_with("call_") && ids[1] == "dup" && ids[2] != "dup" && ids[2] != ids[0],
        "{ids:?}"
    );
    assert_eq!(c.tool_calls[0].arguments, Ok(json!({"path": "a.py"})));
    assert_eq!(c.tool_calls[2].arguments, Ok(json!({})));
    assert!(c.problems.is_empty(), "{:?}", c.problems);

    // Hermes-style calls in the content (vLLM without a tool parser) and a <think> block.
    let hermes = "<think>need to look</think>\n<tool_call>\n{\"name\": \"view\", \"arguments\": {\"path\": \"b.py\"}}\n</tool_call>";
    let (r, _s) = one(vec![Reply::text(hermes)], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(c.reasoning.as_deref(), Some("need to look"));
    assert_eq!(c.tool_calls[0].arguments, Ok(json!({"path": "b.py"})));

    // Content as a list of parts; content_filter.
    let parts = json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
    let (r, _s) = one(vec![Reply::message(parts, "content_filter")], |_| {}).await;
    let c = r.unwrap();
    assert_eq!(
        (c.content.as_str(), &c.problems[..]),
        ("ab", &[Problem::ContentFilter][..])
    );
}

#[tokio::test]
async fn budgets_stop_the_run_cleanly() {
    // Cost: one call of 1M input tokens on gpt-4o is $2.50, over a $1 limit.
    let server = TestServer::start(vec![
        Reply::text("pricey").with_usage(1_000_000, 0),
        Reply::text("never"),
    ])
    .await;
    let model = client(&server, "gpt-4o", |c| c.limits.max_cost_usd = Some(1.0));
    let e = model.complete(&convo(), &[]).await.unwrap_err();
    let ModelError::Budget(b) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(b.reason, "cost $2.5000 went over the limit of $1.0000");
    assert_eq!(b.totals.calls, 1);
    let e = model.complete(&convo(), &[]).await.unwrap_err();
    assert!(
        e.is_budget() && e.to_string().contains("reached the limit of $1.0000"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1, "the second call was never sent");

    // Calls.
    let server =
        TestServer::start(vec![Reply::text("1"), Reply::text("2"), Reply::text("3")]).await;
    let model = client(&server, "gpt-4o", |c| c.limits.max_calls = Some(2));
    model.complete(&convo(), &[]).await.unwrap();
    model.complete(&convo(), &[]).await.unwrap();
    let e = model.complete(&convo(), &[]).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "run budget: 2 model calls reached the limit of 2"
    );
    assert_eq!(server.requests().len(), 2);

    // Tokens (120 a call by default).
    let server = TestServer::start(vec![Reply::text("1"), Reply::text("2")]).await;
    let model = client(&server, "gpt-4o", |c| c.limits.max_tokens = Some(200));
    model.complete(&convo(), &[]).await.unwrap();
    let e = model.complete(&convo(), &[]).await.unwrap_err();
    assert!(
        e.is_budget()
            && e.to_string()
                .contains("240 tokens went over the limit of 200"),
        "{e}"
    );

    // A shared batch budget over two concurrent runs on one client.
    let server = TestServer::with_handler(|_| Reply::text("ok").with_usage(100_000, 0)).await;
    let base = client(&server, "gpt-4o", |_| {});
    let batch = Ledger::new(
        "batch",
        Limits {
            max_cost_usd: Some(1.0),
            ..Limits::default()
        },
    );
    let runs: Vec<OpenAiCompatible> = (0..2)
        .map(|i| base.with_ledger(batch.child(format!("run {i}"), Limits::default())))
        .collect();
    let results = futures_run(&runs).await;
    let stopped: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(stopped.len(), 2, "both runs stop");
    assert!(
        stopped
            .iter()
            .all(|e| e.to_string().starts_with("batch budget:")),
        "{stopped:?}"
    );
    let t = batch.totals();
    assert!(
        t.cost_usd > 1.0 && t.cost_usd <= 1.0 + 2.0 * 0.25 + 1e-9,
        "{t:?}"
    );
    assert_eq!(t.calls, runs.iter().map(|r| r.totals().calls).sum::<u64>());

    // An unknown model costs $0 and says so.
    let server = TestServer::start(vec![Reply::text("free?")]).await;
    let model = client(&server, "my-local-llama", |_| {});
    assert!(!model.priced());
    let c = model.complete(&convo(), &[]).await.unwrap();
    assert_eq!((c.cost.usd, c.cost.priced), (0.0, false));
    assert_eq!(model.totals().unpriced_calls, 1);
}

/// Each run calls until its ledger stops it.
async fn futures_run(runs: &[OpenAiCompatible]) -> Vec<Result<(), ModelError>> {
    let tasks: Vec<_> = runs
        .iter()
        .cloned()
        .map(|m| {
            tokio::spawn(async move {
                for _ in 0..100 {
                    m.complete(&convo(), &[]).await?;
                }
                Ok(())
            })
        })
        .collect();
    let mut out = vec![];
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_api_key_never_shows() {
    const KEY: &str = "sk-test-9f8e7d6c5b4a-DO-NOT-LEAK";
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A server that echoes the key back in errors and in a reply.
    let server = TestServer::start(vec![
        Reply::error(429, &format!("rate limited for key {KEY}")).with_header("retry-after", "0"),
        Reply::text(&format!("your key is {KEY}")),
        Reply::error(401, &format!("Incorrect API key provided: {KEY}")),
    ])
    .await;
    let mut config = server.config("gpt-4o");
    config.api_key_env = Some("MEND_TEST_KEY".into());
    let model = OpenAiCompatible::with_env(config.clone(), |name| {
        (name == "MEND_TEST_KEY").then(|| KEY.to_string())
    })
    .unwrap();

    let c = model.complete(&convo(), &tools()).await.unwrap();
    let e = model.complete(&convo(), &tools()).await.unwrap_err();

    let reqs = server.requests();
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str()),
        "the key is sent where it belongs"
    );
    let raw = serde_json::to_string(&c.raw).unwrap();
    let everything = [
        format!("{model:?}"),
        format!("{config:?}"),
        format!("{c:?}"),
        raw.clone(),
        e.to_string(),
        format!("{e:?}"),
        String::from_utf8(logs.0.lock().unwrap().clone()).unwrap(),
    ];
    for (i, text) in everything.iter().enumerate() {
        assert!(!text.contains(KEY), "the key leaked in item {i}: {text}");
        assert!(
            !text.contains("9f8e7d6c5b4a"),
            "part of the key leaked in item {i}"
        );
    }
    assert!(
        raw.contains("[REDACTED]"),
        "an echoed key is redacted: {raw}"
    );
    assert!(
        e.to_string()
            .contains("Incorrect API key provided: [REDACTED]"),
        "{e}"
    );
    let logs = &everything[6];
    assert!(logs.contains("retrying"), "the logs were captured: {logs}");
}

#[tokio::test]
async fn azure_flavour_and_extra_headers() {
    let server = TestServer::start(vec![Reply::text("hi")]).await;
    let mut config = server.config("gpt-4o");
    config.base_url = format!("http://{}", server.addr());
    config.azure = Some(mend_llm::AzureFlavour {
        deployment: "prod-4o".into(),
        api_version: "2024-10-21".into(),
    });
    config.api_key_env = Some("AZ".into());
    config.max_output_tokens = Some(256);
    config.extra_headers.insert("X-Team".into(), "mend".into());
    let model = OpenAiCompatible::with_env(config, |_| Some("az-key".into())).unwrap();
    model.complete(&convo(), &[]).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(
        r.path,
        "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("api-key"), Some("az-key"));
    assert!(r.header("authorization").is_none());
    assert_eq!(r.header("x-team"), Some("mend"));
    assert_eq!(
        r.json()["max_completion_tokens"],
        256,
        "Azure gets max_completion_tokens"
    );
    assert!(
        r.json().get("tools").is_none(),
        "no tools offered, no tools field"
    );
}

/// Record a run against the server, then replay it with different tool output.
#[tokio::test]
async fn replay_gives_the_recorded_messages_and_catches_divergence() {
    let server = TestServer::start(vec![
        Reply::tool_calls(&[("bash", json!({"command": "pytest -q"}))]),
        Reply::tool_calls(&[("submit", json!({"summary": "fixed"}))]),
    ])
    .await;
    let model = client(&server, "gpt-4o", |_| {});
    let run = |model: Arc<dyn Model>, observation: &'static str| async move {
        let mut conv = convo();
        let mut replies = vec![];
        for _ in 0..2 {
            let c = model.complete(&conv, &tools()).await?;
            conv.push(c.message());
            for call in &c.tool_calls {
                conv.push(Message::tool(
                    call.id.clone(),
                    call.name.clone(),
                    observation,
                ));
            }
            replies.push(c);
        }
        Ok::<_, ModelError>(replies)
    };
    let live = run(Arc::new(model), "1 passed in 0.52s").await.unwrap();

    // Stored as an agent trajectory stores it: steps[i].raw.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trajectory.json");
    let mut compactor = ExchangeCompactor::new();
    let steps: Vec<Value> = live
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"index": i + 1, "raw": compactor.compact(&c.raw)}))
        .collect();
    assert_eq!(
        steps[1]["raw"]["request"]["prefix"], 2,
        "the second request repeats the first"
    );
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({"model": "gpt-4o", "steps": steps})).unwrap(),
    )
    .unwrap();

    let replay = Arc::new(ReplayModel::load(&path).unwrap());
    assert_eq!(replay.name(), "replay:gpt-4o");
    assert_eq!(replay.tool_mode(), ToolMode::Native);
    let replayed = run(replay.clone(), "1 passed in 0.61s /tmp/pytest-of-x/3")
        .await
        .unwrap();
    for (a, b) in live.iter().zip(&replayed) {
        assert_eq!(a.message(), b.message());
        assert_eq!(a.usage, b.usage);
        assert_eq!(a.cost, b.cost);
    }
    assert_eq!(replay.remaining(), 0);
    assert_eq!(replay.totals().calls, 2);
    assert_eq!(server.requests().len(), 2, "the replay sent nothing");

    // Past the end.
    let e = replay.complete(&convo(), &tools()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "replay diverged at step 3: the recording has only 2 exchanges; the run asked for another"
    );

    // A replay of the replay: the raw it returns is a recording too.
    let again = Recording::from_completions(&replayed).unwrap();
    assert_eq!(again.exchanges.len(), 2);

    // Diverging: the second request answers another call id.
    let replay = ReplayModel::new(Recording::load(&path).unwrap());
    let first = replay.complete(&convo(), &tools()).await.unwrap();
    let mut conv = convo();
    conv.push(first.message());
    conv.push(Message::tool("call_other", "bash", "1 passed"));
    let e = replay.complete(&conv, &tools()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "replay diverged at step 2: message 4 answers call call_other (bash), the recording answers call call_1 (bash)"
    );

    // Diverging: an extra message, then a different tool list.
    conv.pop();
    conv.push(Message::tool("call_1", "bash", "x"));
    conv.push(Message::user("hurry up"));
    let e = replay
        .complete(&conv, &tools())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("step 2") && e.contains("the conversation has 5 messages, the recording 4"),
        "{e}"
    );
    let e = replay
        .complete(&conv[..4], &tools()[..2])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the tools offered are [\"view\", \"bash\"]"),
        "{e}"
    );

    // Diverging: the assistant message is not the one the replay produced.
    let mut edited = conv[..4].to_vec();
    edited[2] = Message::assistant("something else", vec![]);
    let e = replay
        .complete(&edited, &tools())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("message 3 (assistant) is not the reply the recording gave"),
        "{e}"
    );

    // A file that is neither form.
    std::fs::write(&path, "{\"steps\": [{\"index\": 1}]}").unwrap();
    let e = ReplayModel::load(&path).unwrap_err().to_string();
    assert!(e.contains("step 1 has no `raw` exchange"), "{e}");
}

#[tokio::test]
async fn replay_from_an_exchanges_file_honours_a_budget() {
    let body = completion_body(json!({"role": "assistant", "content": "hi"}), "stop");
    let server =
        TestServer::start(vec![Reply::json(200, body.clone()), Reply::json(200, body)]).await;
    let model = client(&server, "gpt-4o", |c| c.tool_mode = ToolMode::Text);
    let a = model.complete(&convo(), &[]).await.unwrap();
    let mut conv = convo();
    conv.push(a.message());
    conv.push(Message::user("go on"));
    let b = model.complete(&conv, &[]).await.unwrap();
    let rec = Recording::from_completions([&a, &b]).unwrap();
    let replay =
        ReplayModel::new(Recording::from_value(&rec.to_value()).unwrap()).with_ledger(Ledger::new(
            "run",
            Limits {
                max_calls: Some(1),
                ..Limits::default()
            },
        ));
    assert_eq!(replay.tool_mode(), ToolMode::Text);
    assert_eq!(replay.complete(&convo(), &[]).await.unwrap().content, "hi");
    let e = replay.complete(&conv, &[]).await.unwrap_err();
    assert!(e.is_budget(), "{e}");
}

#[tokio::test]
async fn counts_tokens_and_knows_the_window() {
    let server = TestServer::start(vec![]).await;
    let gpt = client(&server, "gpt-4o-2024-08-06", |_| {});
    assert_eq!(gpt.context_window(), 128_000);
    let local = client(&server, "llama3.1:8b", |c| c.context_window = Some(8192));
    assert_eq!(local.context_window(), 8192);
    assert_eq!(
        client(&server, "llama3.1:8b", |_| {}).context_window(),
        mend_llm::DEFAULT_CONTEXT_WINDOW
    );
    let msgs = vec![Message::user("hello world")];
    // o200k: "hello world" is 2 tokens, "user" 1, plus 3 per message and 3 to prime.
    assert_eq!(gpt.count_tokens(&msgs), 9);
    // Approximation: "hello" 1, "world" 1 (the space merges), "user" 1, plus 4 per
    // message and 3.
    assert_eq!(local.count_tokens(&msgs), 10);
}
