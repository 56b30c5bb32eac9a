//! `mend doctor` against the real Docker engine and a chat-completions server on 127.0.0.1;
//! and `mend fix` failing early with the doctor's messages.
mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use mend_llm::test_server::{Reply, TestServer};
use serde_json::json;

async fn mend(args: &[&str], env: &[(&str, &str)]) -> Output {
    mend_with_config(args, env, "").await
}

/// `mend` with this user mend.toml.
async fn mend_with_config(args: &[&str], env: &[(&str, &str)], config: &str) -> Output {
    let config_home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(config_home.path().join("mend")).unwrap();
    std::fs::write(config_home.path().join("mend/mend.toml"), config).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MEND_MODEL")
        .env("XDG_CONFIG_HOME", config_home.path())
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn doctor_reports_a_ready_setup() {
    let engine = mend_sandbox::testing::engine().await;
    let image = mend_sandbox::testing::base_image(&engine).await;
    let server = TestServer::start(vec![Reply::tool_calls(&[("ping", json!({}))])]).await;
    server.route("GET", "/v1/models", Reply::vllm_models("qwen", 4096));
    let url = server.base_url();
    let out = mend(&["doctor", "--base-url", &url, "--model", "qwen"], &[]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("ok    Docker engine: reachable, version"), "{t}");
    assert!(t.contains(&format!("ok    image {image}: present")), "{t}");
    assert!(
        t.contains(&format!(
            "ok    model endpoint {url}: reachable, serves qwen"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "ok    context window: 4096 tokens, from the server ({url}/models)"
        )),
        "{t}"
    );
    assert!(
        t.contains("ok    model qwen: native tool calls work (it called `ping`)"),
        "{t}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("ready\n"),
        "{t}"
    );
    let probe = &server.requests()[0].json();
    assert_eq!(probe["tools"][0]["function"]["name"], "ping");
    assert_eq!(probe["max_tokens"], 64, "the probe is tiny");
}

#[tokio::test]
async fn doctor_says_what_is_wrong_and_how_to_fix_it() {
    // A llama-cpp-python-like server: lists another id, states no window, refuses tools.
    let server = TestServer::start(vec![Reply::error(
        400,
        "tools are not supported by this server",
    )])
    .await;
    server.route(
        "GET",
        "/v1/models",
        Reply::json(
            200,
            json!({"object": "list", "data": [{"id": "smol.gguf", "object": "model"}]}),
        ),
    );
    let url = server.base_url();
    let out = mend(
        &[
            "doctor",
            "--no-docker",
            "--base-url",
            &url,
            "--model",
            "qwen",
            "--api-key-env",
            "MEND_DOCTOR_KEY",
        ],
        &[("MEND_DOCTOR_KEY", "sk-test")],
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(!t.contains("Docker"), "{t}");
    assert!(t.contains("ok    API key: $MEND_DOCTOR_KEY is set"), "{t}");
    assert!(!t.contains("sk-test"), "the key is never shown: {t}");
    assert!(
        t.contains("warn  model endpoint")
            && t.contains("qwen is not among the models it lists (smol.gguf)"),
        "{t}"
    );
    assert!(
        t.contains(
            "warn  context window: unknown; assuming 32768 tokens\n      fix: set `context_window`"
        ),
        "{t}"
    );
    assert!(t.contains("FAIL  model qwen: the server refused a request with tools (HTTP 400): tools are not supported"), "{t}");
    assert!(t.contains("--tool-mode text"), "{t}");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-test")
    );
    assert_eq!(
        server.requests().len(),
        1,
        "no window probe to a server without llama-cpp-python's tokenizer route"
    );

    // No key, a dead endpoint, a missing image: each a FAIL with its fix.
    let out = mend(
        &[
            "doctor",
            "--no-docker",
            "--model",
            "m",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--api-key-env",
            "MEND_DOCTOR_NO_SUCH_KEY",
        ],
        &[],
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL  API key: $MEND_DOCTOR_NO_SUCH_KEY (api_key_env) is not set\n      fix: export MEND_DOCTOR_NO_SUCH_KEY="), "{t}");

    let dead = format!("http://127.0.0.1:{}/v1", dead_port());
    let out = mend(
        &[
            "doctor",
            "--base-url",
            &dead,
            "--model",
            "m",
            "--image",
            "mend-test-no-such-image:1",
        ],
        &[],
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "FAIL  model endpoint {dead}: could not connect\n      fix: start the server"
        )),
        "{t}"
    );
    assert!(
        t.contains("FAIL  image mend-test-no-such-image:1: missing"),
        "{t}"
    );
    assert!(t.contains("2 check(s) failed"), "{t}");
}

/// llama-cpp-python states its window only when a prompt is longer than it: the doctor
/// sends one prompt just over mend's default window and reads the window from the refusal.
#[tokio::test]
async fn doctor_learns_a_llama_cpp_python_window_from_its_overflow_error() {
    let server = TestServer::start(vec![Reply::tool_calls(&[("ping", json!({}))])]).await;
    server.act_like_llama_cpp_python("smol", 4096);
    let url = server.base_url();
    let started = Instant::now();
    let out = mend(
        &[
            "doctor",
            "--no-docker",
            "--probe-window",
            "--base-url",
            &url,
            "--model",
            "smol",
        ],
        &[],
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("ok    context window: 4096 tokens (from the server's overflow error)\n"),
        "{t}"
    );
    assert!(
        t.contains("ok    model smol: native tool calls work (it called `ping`)"),
        "{t}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let sent = server.requests();
    assert_eq!(sent.len(), 2, "the tool-call probe, then ONE window probe");
    assert_eq!(sent[0].json()["tools"][0]["function"]["name"], "ping");
    let probe = sent[1].json();
    assert_eq!(probe["max_tokens"], 1);
    let words = probe["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .count();
    assert!(words > 32_768 && words < 37_000, "{words}");

    // Without --probe-window: nothing sent, the window stays unknown.
    let server = TestServer::start(vec![Reply::tool_calls(&[("ping", json!({}))])]).await;
    server.act_like_llama_cpp_python("smol", 4096);
    let url = server.base_url();
    let out = mend(
        &[
            "doctor",
            "--no-docker",
            "--base-url",
            &url,
            "--model",
            "smol",
        ],
        &[],
    )
    .await;
    let t = text(&out);
    assert!(
        t.contains("warn  context window: unknown; assuming 32768 tokens"),
        "{t}"
    );
    assert_eq!(server.requests().len(), 1, "{t}");
}

#[tokio::test]
async fn doctor_reports_a_lower_bound_when_the_window_holds_the_probe() {
    let server = TestServer::start(vec![
        Reply::tool_calls(&[("ping", json!({}))]),
        Reply::text("a"),
    ])
    .await;
    server.act_like_llama_cpp_python("smol", 65_536);
    let url = server.base_url();
    let out = mend(
        &[
            "doctor",
            "--no-docker",
            "--probe-window",
            "--base-url",
            &url,
            "--model",
            "smol",
        ],
        &[],
    )
    .await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(
            "warn  context window: at least ~36k tokens (probe accepted); assuming 32768 tokens\n      fix: set `context_window`"
        ),
        "{t}"
    );
    assert_eq!(server.requests().len(), 2, "{t}");
}

/// A server that does not answer a tiny request gets no 36k-token probe either (a slow
/// answer could not tell a prefill of it from a busy server).
#[tokio::test]
async fn doctor_sends_no_window_probe_to_a_server_that_does_not_answer() {
    let server = TestServer::with_handler(|_| Reply::hang()).await;
    server.act_like_llama_cpp_python("smol", 65_536);
    let url = server.base_url();
    let out = mend_with_config(
        &[
            "doctor",
            "--no-docker",
            "--probe-window",
            "--base-url",
            &url,
            "--model",
            "smol",
            "--timeout",
            "1",
        ],
        &[],
        "[model]\nbackoff_initial_secs = 0.1\n",
    )
    .await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL  model smol: no usable answer"), "{t}");
    assert!(
        t.contains("warn  context window: unknown; assuming 32768 tokens"),
        "{t}"
    );
    assert!(!t.contains("at least"), "{t}");
    for r in server.requests() {
        assert_ne!(r.json()["max_tokens"], 1, "no window probe: {t}");
    }
}

/// A run never sends the window probe, whatever the server (a hosted API would bill it).
#[tokio::test]
async fn fix_never_sends_the_window_probe() {
    let repo = tempfile::tempdir().unwrap();
    support::fixture_repo("textkit", repo.path());
    let server = TestServer::start(vec![]).await;
    server.act_like_llama_cpp_python("smol", 4096);
    let out = mend_with_config(
        &[
            "fix",
            "--no-review",
            "--repo",
            &repo.path().display().to_string(),
            "--issue",
            "words are miscounted",
            "--sandbox",
            "local",
            "--base-url",
            &server.base_url(),
            "--model",
            "smol",
            "--max-steps",
            "1",
        ],
        &[],
        "[model]\nmax_tries = 1\n",
    )
    .await;
    let t = text(&out);
    assert!(!out.status.success(), "the script is empty: {t}");
    let sent = server.requests();
    assert!(!sent.is_empty(), "the run asked the model: {t}");
    for r in &sent {
        let body = r.json();
        assert_ne!(body["max_tokens"], 1, "{}", r.path);
        assert!(r.body.len() < 60_000, "a {} byte request", r.body.len());
    }
    assert!(
        server
            .probes()
            .iter()
            .all(|p| !p.path.starts_with("/extras/")),
        "not even the fingerprint is asked"
    );
    assert!(t.contains("context window: 32768 tokens, a default"), "{t}");
}

#[tokio::test]
async fn fix_fails_early_with_the_doctors_message() {
    let repo = tempfile::tempdir().unwrap();
    support::fixture_repo("textkit", repo.path());
    let dead = format!("http://127.0.0.1:{}/v1", dead_port());
    let started = Instant::now();
    let out = mend(
        &[
            "fix",
            "--no-review",
            "--repo",
            &repo.path().display().to_string(),
            "--issue",
            "words are miscounted",
            "--sandbox",
            "local",
            "--base-url",
            &dead,
            "--model",
            "m",
        ],
        &[],
    )
    .await;
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains(&format!("FAIL  model endpoint {dead}: could not connect")),
        "{t}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn fix_against_a_silent_server_reports_progress_and_gives_up() {
    let repo = tempfile::tempdir().unwrap();
    support::fixture_repo("textkit", repo.path());
    let server = TestServer::with_handler(|_| Reply::hang()).await;
    let traj = tempfile::tempdir().unwrap();
    let traj = traj.path().join("run.traj.json");
    let started = Instant::now();
    let out = mend_with_config(
        &[
            "fix",
            "--no-review",
            "--repo",
            &repo.path().display().to_string(),
            "--issue",
            "words are miscounted",
            "--sandbox",
            "local",
            "--base-url",
            &server.base_url(),
            "--model",
            "test-model",
            "--timeout",
            "1",
            "--trajectory",
            &traj.display().to_string(),
        ],
        &[],
        "[model]\nmax_tries = 2\nbackoff_initial_secs = 0.1\nprogress_every_secs = 0.4\n",
    )
    .await;
    let t = text(&out);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("context window: 32768 tokens, a default: nothing stated it"),
        "{t}"
    );
    assert!(
        t.contains("waiting 0s for a reply from test-model, try 1/2"),
        "{t}"
    );
    assert!(t.contains("try 2/2"), "{t}");
    assert!(t.contains("timed out"), "{t}");
    assert_eq!(
        server.requests().len(),
        2,
        "two tries, each cut at --timeout"
    );
}
