//! The client against what real servers do (modelled by the test server on 127.0.0.1):
//! context windows stated at their endpoints, overflow errors of each flavour, output
//! limits, usage that corrects the token estimate, slow and silent servers, cut-off and
//! oversized replies.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mend_llm::test_server::{Overflow, Reply, TestServer};
use mend_llm::{
    ContextSource, Message, Model, ModelConfig, ModelError, OpenAiCompatible, Problem, ToolDef,
    ToolMode, Waiting, WindowProbe,
};
use serde_json::json;

mod support;
use support::{client, convo};

fn tools() -> Vec<ToolDef> {
    support::tool_defs(
        &["view", "bash"],
        json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    )
}

/// A conversation of about `tokens` estimated tokens (code-like text).
fn long_convo(model: &OpenAiCompatible, tokens: usize) -> Vec<Message> {
    let line = "    result = compute(values[i], key=\"name\")  # 42\n";
    let mut text = String::new();
    let mut msgs = convo();
    while model.count_tokens(&msgs) < tokens {
        text.push_str(line);
        msgs = convo();
        msgs.push(Message::user(text.clone()));
    }
    msgs
}

fn sent_limit(server: &TestServer, i: usize) -> u64 {
    server.requests()[i].json()["max_tokens"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_context_window_comes_from_config_server_table_or_default() {
    // vLLM: /v1/models states max_model_len.
    let server = TestServer::start(vec![]).await;
    server.route("GET", "/v1/models", Reply::vllm_models("qwen", 4096));
    let m = client(&server, "qwen", |_| {});
    assert_eq!(m.context_source(), ContextSource::Default);
    let source = m.discover_context().await;
    assert_eq!(
        source,
        ContextSource::Server(format!("{}/models", server.base_url()))
    );
    assert_eq!(m.context_window(), 4096);
    assert!(source.to_string().contains("/v1/models"), "{source}");

    // llama-server: /props.
    let server = TestServer::start(vec![]).await;
    server.route("GET", "/props", Reply::llama_props(2048));
    let m = client(&server, "local", |_| {});
    m.discover_context().await;
    assert_eq!(m.context_window(), 2048);
    let paths: Vec<String> = server.probes().iter().map(|p| p.path.clone()).collect();
    assert_eq!(
        paths,
        ["/v1/models", "/props"],
        "asked in order, stopped at the answer"
    );

    // Ollama: /api/show, the num_ctx it serves with.
    let server = TestServer::start(vec![]).await;
    server.route("POST", "/api/show", Reply::ollama_show(16384, 32768));
    let m = client(&server, "qwen2.5-coder:7b", |_| {});
    m.discover_context().await;
    assert_eq!(m.context_window(), 16384);
    assert_eq!(server.probes()[2].json()["model"], "qwen2.5-coder:7b");

    // llama-cpp-python: ids only, nothing else. Known model: the table; unknown: default.
    let server = TestServer::start(vec![]).await;
    server.route(
        "GET",
        "/v1/models",
        Reply::json(200, json!({"object": "list", "data": [{"id": "smol.gguf", "object": "model", "owned_by": "me", "permissions": []}]})),
    );
    let gpt = client(&server, "gpt-4o", |_| {});
    assert_eq!(gpt.discover_context().await, ContextSource::Table);
    assert_eq!(gpt.context_window(), 128_000);
    let smol = client(&server, "smol.gguf", |_| {});
    assert_eq!(smol.discover_context().await, ContextSource::Default);
    assert_eq!(smol.context_window(), mend_llm::DEFAULT_CONTEXT_WINDOW);
    assert!(
        server.requests().is_empty(),
        "probes never reach the chat script"
    );

    // The config wins, and nothing is asked.
    let server = TestServer::start(vec![]).await;
    server.route("GET", "/v1/models", Reply::vllm_models("qwen", 4096));
    let m = client(&server, "qwen", |c| c.context_window = Some(1000));
    assert_eq!(m.discover_context().await, ContextSource::Config);
    assert_eq!(m.context_window(), 1000);
    assert!(server.probes().is_empty());

    // Nothing listening: falls through quickly and quietly.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ModelConfig {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        model: "nothing".into(),
        ..ModelConfig::default()
    };
    let m = OpenAiCompatible::with_env(config, |_| None).unwrap();
    let started = Instant::now();
    assert_eq!(m.discover_context().await, ContextSource::Default);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_server_that_hangs_on_discovery_costs_seconds_not_minutes() {
    let server = TestServer::start(vec![]).await;
    server.route("GET", "/v1/models", Reply::hang());
    server.route("GET", "/props", Reply::llama_props(8192));
    let m = client(&server, "local", |_| {});
    let started = Instant::now();
    m.discover_context().await;
    assert_eq!(m.context_window(), 8192);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn every_request_carries_an_output_limit_that_fits_the_window() {
    let server =
        TestServer::start(vec![Reply::text("a"), Reply::text("b"), Reply::text("c")]).await;
    // Default: min(4096, window / 4).
    let m = client(&server, "local", |c| c.context_window = Some(8192));
    assert_eq!(m.max_output_tokens(), 2048);
    m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(sent_limit(&server, 0), 2048);
    let big = client(&server, "local", |c| c.context_window = Some(128_000));
    assert_eq!(big.max_output_tokens(), 4096);
    // Configured.
    let m = client(&server, "local", |c| {
        c.context_window = Some(8192);
        c.max_output_tokens = Some(300);
    });
    assert_eq!(m.max_output_tokens(), 300);
    m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(sent_limit(&server, 1), 300);
    // A prompt that fills most of the window leaves less than the default.
    let m = client(&server, "local", |c| c.context_window = Some(8192));
    let msgs = long_convo(&m, 7000);
    let prompt = m.count_tokens(&msgs) + m.count_tool_tokens(&tools());
    m.complete(&msgs, &tools()).await.unwrap();
    let limit = sent_limit(&server, 2) as usize;
    assert!(limit < 2048 && limit > 0, "{limit}");
    assert!(prompt + limit <= 8192, "{prompt} + {limit}");
}

#[tokio::test]
async fn overflow_errors_of_each_server_are_recognised_in_one_request() {
    let flavours = [
        (Overflow::OpenAi, Some(9000), Some(8192)),
        (Overflow::Vllm, Some(9000), Some(8192)),
        (Overflow::LlamaCpp, Some(9000), Some(8192)),
        (Overflow::LlamaCppPython, Some(9000), Some(8192)),
        (Overflow::Ollama, None, None),
        (Overflow::LiteLlm, Some(9000), Some(8192)),
        (Overflow::OpenRouter, Some(9000), Some(8192)),
    ];
    for (flavour, prompt, window) in flavours {
        let server = TestServer::start(vec![
            Reply::overflow(flavour, 9000, 8192),
            Reply::text("never"),
        ])
        .await;
        let m = client(&server, "local", |_| {});
        let e = m.complete(&convo(), &tools()).await.unwrap_err();
        assert!(e.is_overflow(), "{flavour:?}: {e:?}");
        match e {
            ModelError::ContextOverflow {
                prompt_tokens: p,
                window: w,
                ..
            } => assert_eq!((p, w), (prompt, window), "{flavour:?}"),
            other => panic!("{flavour:?}: {other:?}"),
        }
        assert_eq!(server.requests().len(), 1, "{flavour:?}: no retry");
        if let Some(w) = window {
            // The server stated its window: later budgets use it.
            assert_eq!(m.context_window(), w as usize, "{flavour:?}");
            assert_eq!(
                m.context_source(),
                ContextSource::Server("its overflow error".into())
            );
        }
    }
}

/// llama-cpp-python states its window only in an overflow error: the opt-in probe sends
/// one prompt just over the bound to a server that answers its tokenizer route, and to no
/// other.
#[tokio::test]
async fn the_window_probe_learns_a_llama_cpp_python_window_from_one_refusal() {
    let server = TestServer::start(vec![]).await;
    server.act_like_llama_cpp_python("smol", 4096);
    let m = client(&server, "smol", |_| {});
    assert_eq!(m.discover_context().await, ContextSource::Default);
    let started = Instant::now();
    let probe = m
        .probe_window_by_overflow(32_768, Duration::from_secs(10))
        .await;
    assert_eq!(probe, WindowProbe::Stated(4096));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(m.context_window(), 4096);
    assert_eq!(
        m.context_source(),
        ContextSource::Server("its overflow error".into())
    );
    let sent = server.requests();
    assert_eq!(sent.len(), 1, "one probe");
    let body = sent[0].json();
    assert_eq!(body["max_tokens"], 1);
    let words = body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .count();
    assert!((36_044..37_000).contains(&words), "1.1 x 32768: {words}");
    let tokenized: Vec<String> = server.probes().iter().map(|p| p.path.clone()).collect();
    assert!(
        tokenized.contains(&"/extras/tokenize/count".to_string()),
        "{tokenized:?}"
    );

    // Known now: a second probe sends nothing.
    let again = m
        .probe_window_by_overflow(32_768, Duration::from_secs(10))
        .await;
    assert!(matches!(again, WindowProbe::NotProbed(_)), "{again:?}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_window_probe_reports_a_larger_window_and_never_waits_for_a_prefill() {
    // The window holds the probe: the server answers (a lower bound).
    let server = TestServer::start(vec![Reply::text("a")]).await;
    server.act_like_llama_cpp_python("smol", 65_536);
    let m = client(&server, "smol", |_| {});
    let probe = m
        .probe_window_by_overflow(32_768, Duration::from_secs(10))
        .await;
    match probe {
        WindowProbe::AtLeast {
            tokens,
            answered: true,
        } => assert!((36_044..37_000).contains(&tokens), "{tokens}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.context_source(), ContextSource::Default, "still unknown");

    // A long prefill: the probe gives up at its timeout, not the config's.
    let server = TestServer::start(vec![Reply::hang()]).await;
    server.act_like_llama_cpp_python("smol", 65_536);
    let m = client(&server, "smol", |c| c.timeout_secs = 600.0);
    let started = Instant::now();
    let probe = m
        .probe_window_by_overflow(32_768, Duration::from_millis(500))
        .await;
    assert!(
        matches!(
            probe,
            WindowProbe::AtLeast {
                answered: false,
                ..
            }
        ),
        "{probe:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_window_probe_never_sends_a_big_prompt_to_other_servers() {
    // A hosted-like API: the tokenizer route is 404, the window unknown.
    let server = TestServer::start(vec![Reply::text("never")]).await;
    let m = client(&server, "some-model", |_| {});
    let probe = m
        .probe_window_by_overflow(32_768, Duration::from_secs(10))
        .await;
    assert!(matches!(probe, WindowProbe::NotProbed(_)), "{probe:?}");
    assert!(server.requests().is_empty(), "no chat request at all");
    assert_eq!(server.probes()[0].path, "/extras/tokenize/count");

    // A window from the config or the model table: not even the route is asked.
    let server = TestServer::start(vec![]).await;
    server.act_like_llama_cpp_python("smol", 4096);
    for m in [
        client(&server, "smol", |c| c.context_window = Some(8192)),
        client(&server, "gpt-4o", |_| {}),
    ] {
        let probe = m
            .probe_window_by_overflow(32_768, Duration::from_secs(10))
            .await;
        assert!(matches!(probe, WindowProbe::NotProbed(_)), "{probe:?}");
    }
    assert!(server.requests().is_empty());
    assert!(server.probes().is_empty());
}

#[tokio::test]
async fn the_token_estimate_learns_from_reported_usage() {
    let server = TestServer::start(vec![]).await;
    let m = client(&server, "local", |c| c.context_window = Some(32_000));
    let msgs = long_convo(&m, 2000);
    let estimate = m.count_tokens(&msgs) + m.count_tool_tokens(&tools());
    assert_eq!(m.token_correction(), 1.0);
    // The server counts 30% more than estimated.
    let reported = (estimate as f64 * 1.3) as u64;
    server.push(Reply::text("ok").with_usage(reported, 5));
    m.complete(&msgs, &tools()).await.unwrap();
    let corrected = m.count_tokens(&msgs) + m.count_tool_tokens(&tools());
    let error = (corrected as f64 - reported as f64).abs() / reported as f64;
    assert!(error < 0.02, "{corrected} vs {reported}");
    // Clamped, however far off the server says the estimate is.
    server.push(Reply::text("ok").with_usage((estimate * 3) as u64, 5));
    server.push(Reply::text("ok").with_usage((estimate * 3) as u64, 5));
    server.push(Reply::text("ok").with_usage((estimate * 3) as u64, 5));
    for _ in 0..3 {
        m.complete(&msgs, &tools()).await.unwrap();
    }
    assert!(
        (m.token_correction() - 2.5).abs() < 1e-9,
        "{}",
        m.token_correction()
    );
    // A usage no tokenizer explains (a proxy's fixed number) teaches nothing.
    let fresh = client(&server, "local", |_| {});
    server.push(Reply::text("ok").with_usage(100, 5));
    fresh.complete(&msgs, &tools()).await.unwrap();
    assert_eq!(fresh.token_correction(), 1.0);
}

#[tokio::test]
async fn retries_back_off_exponentially_within_the_patience() {
    let server = TestServer::start(vec![
        Reply::error(503, "busy"),
        Reply::error(503, "busy"),
        Reply::error(503, "busy"),
        Reply::text("at last"),
    ])
    .await;
    let m = client(&server, "local", |c| {
        c.max_tries = 10;
        c.backoff_initial_secs = 0.05;
        c.backoff_max_secs = 1.0;
    });
    let c = m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(c.content, "at last");
    let at: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // Equal jitter: the n-th wait lies in [base/2, base] with base = 50 ms × 2^(n-1).
    for (n, gap) in gaps.iter().enumerate() {
        let base = Duration::from_millis(50 << n);
        assert!(*gap >= base / 2, "wait {n}: {gap:?}");
    }
    assert!(gaps[2] > gaps[0], "{gaps:?}");

    // Patience: a server that stays down is given up on when the next wait would not fit.
    let server = TestServer::with_handler(|_| Reply::error(502, "down")).await;
    let m = client(&server, "local", |c| {
        c.max_tries = 100;
        c.backoff_initial_secs = 0.05;
        c.backoff_max_secs = 0.2;
        c.retry_patience_secs = 0.5;
    });
    let started = Instant::now();
    let e = m.complete(&convo(), &tools()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, ModelError::GaveUp { tries, last, .. } if *tries < 100 && last.contains("retry_patience_secs")),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_and_progress_is_reported() {
    let server = TestServer::with_handler(|_| Reply::hang()).await;
    let reports: Arc<Mutex<Vec<Waiting>>> = Arc::default();
    let seen = reports.clone();
    let m = client(&server, "silent", |c| {
        c.timeout_secs = 0.4;
        c.max_tries = 2;
        c.progress_every_secs = 0.1;
    })
    .on_progress(move |w| seen.lock().unwrap().push(w.clone()));
    let started = Instant::now();
    let e = m.complete(&convo(), &tools()).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        matches!(&e, ModelError::GaveUp { tries: 2, last, .. } if last.contains("timed out")),
        "{e}"
    );
    let reports = reports.lock().unwrap().clone();
    assert!(reports.len() >= 4, "{reports:?}");
    assert!(reports.iter().any(|w| w.attempt == 1) && reports.iter().any(|w| w.attempt == 2));
    assert!(reports.windows(2).all(|w| w[0].waited <= w[1].waited));
    let line = reports[0].to_string();
    assert!(
        line.starts_with("waiting 0s for a reply from silent, try 1/2"),
        "{line}"
    );
}

#[tokio::test]
async fn a_reply_cut_at_the_length_limit_is_reported_with_the_limit() {
    // Native: the arguments end mid-JSON.
    let server = TestServer::start(vec![Reply::cut_off_call("view", r#"{"path": "src/a."#)]).await;
    let m = client(&server, "local", |c| {
        c.context_window = Some(8192);
        c.max_output_tokens = Some(500);
    });
    let c = m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(c.problems[0], Problem::CutOff { limit: Some(500) });
    assert!(
        matches!(c.problems[1], Problem::InvalidArguments { .. }),
        "{:?}",
        c.problems
    );
    assert!(
        c.problem_text()
            .unwrap()
            .contains("cut off at the length limit (500 output tokens)")
    );

    // Text mode: the action block never closes.
    let server = TestServer::start(vec![Reply::cut_off(
        "I will look.\n\n```action\n{\"tool\": \"view\", \"path\": \"src/",
    )])
    .await;
    let m = client(&server, "local", |c| {
        c.context_window = Some(8192);
        c.tool_mode = ToolMode::Text;
    });
    let c = m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(c.problems[0], Problem::CutOff { limit: Some(2048) });
    assert!(
        c.problems.contains(&Problem::UnclosedAction),
        "{:?}",
        c.problems
    );

    // A server that says "stop" at exactly the limit was cut too.
    let server = TestServer::start(vec![
        Reply::tool_calls(&[("view", json!({"path": "a.py"}))]).with_usage(100, 300),
    ])
    .await;
    let m = client(&server, "local", |c| c.max_output_tokens = Some(300));
    let c = m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(c.problems, [Problem::CutOff { limit: Some(300) }]);
}

#[tokio::test]
async fn a_20_mb_reply_is_cut_before_it_enters_the_conversation() {
    let huge = "y".repeat(20 * 1024 * 1024);
    let server = TestServer::start(vec![
        Reply::text(&huge),
        Reply::tool_calls(&[("bash", json!({"command": huge}))]),
    ])
    .await;
    let m = client(&server, "local", |c| c.max_reply_chars = 10_000);
    let text = m.complete(&convo(), &tools()).await.unwrap();
    assert_eq!(text.content.chars().count(), 10_001);
    assert_eq!(
        text.problems,
        [Problem::TooLong {
            what: "your reply".into(),
            chars: 20 * 1024 * 1024,
            limit: 10_000
        }]
    );
    let resent = serde_json::to_string(&text.message()).unwrap();
    assert!(resent.len() < 11_000, "{}", resent.len());
    assert!(
        text.raw.to_string().len() < 100_000,
        "the trajectory keeps no 20 MB"
    );

    let call = m.complete(&convo(), &tools()).await.unwrap();
    assert!(
        call.tool_calls[0].arguments.is_err(),
        "a cut call is not run"
    );
    assert!(
        matches!(&call.problems[..], [Problem::TooLong { what, .. }] if what.contains("`bash`"))
    );
    let resent = serde_json::to_string(&call.message()).unwrap();
    assert!(resent.len() < 11_000, "{}", resent.len());
    assert!(
        call.problem_text()
            .unwrap()
            .contains("cut to the first 10000")
    );
}

/// llama-cpp-python's function-calling format answers with tools only when asked with
/// `tool_choice: "auto"`, and names the tool `view:`; mend asks, and reads the name.
#[tokio::test]
async fn llama_cpp_python_tool_calls_are_asked_for_and_read() {
    let server = TestServer::start(vec![Reply::llama_cpp_python_call(
        "view",
        json!({"path": "a.py"}),
    )])
    .await;
    let model = client(&server, "smollm2", |_| {});
    let turn = model.complete(&convo(), &tools()).await.unwrap();
    let sent = server.requests()[0].json();
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(turn.tool_calls.len(), 1);
    assert_eq!(turn.tool_calls[0].name, "view");
    assert_eq!(
        turn.tool_calls[0].arguments.as_ref().unwrap(),
        &json!({"path": "a.py"})
    );
    assert!(turn.problems.is_empty(), "{:?}", turn.problems);
}

/// A second turn, after a tool call, is accepted by llama-cpp-python only when the assistant
/// turn's content is a string (a missing key or null is an HTTP 500 there).
#[tokio::test]
async fn a_tool_calling_turn_is_sent_with_string_content() {
    let server = TestServer::with_handler(|req| {
        let body = req.json();
        let msgs = body["messages"].as_array().cloned().unwrap_or_default();
        if msgs
            .iter()
            .any(|m| m["role"] == "assistant" && m.get("content").is_none())
        {
            return Reply::strict_template_error("content");
        }
        Reply::llama_cpp_python_call("view", json!({"path": "a.py"}))
    })
    .await;
    let model = client(&server, "smollm2", |c| c.max_tries = 1);
    let mut conv = convo();
    let first = model.complete(&conv, &tools()).await.unwrap();
    conv.push(first.message());
    conv.push(Message::Tool {
        call_id: first.tool_calls[0].id.clone(),
        name: "view".into(),
        content: "1: x = 1".into(),
    });
    let second = model.complete(&conv, &tools()).await;
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(server.requests().len(), 2);
}
