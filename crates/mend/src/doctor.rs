//! `mend doctor`: is everything a run needs in place? The Docker engine, the base image,
//! and the model endpoint (reachable, model listed, context window, tool calls, API key),
//! each reported as ok / warn / FAIL with how to fix it. [`preflight`] runs the same
//! checks for commands that want to fail early with the same messages.
//!
//! Only the doctor may learn an unknown window from one deliberately oversized request
//! (llama-cpp-python states it nowhere else): a run against a hosted API never sends one,
//! as a big prompt there costs money.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mend_llm::{
    ContextSource, DEFAULT_CONTEXT_WINDOW, Message, Model, ModelConfig, OpenAiCompatible, ToolDef,
    ToolMode, WindowProbe,
};
use mend_sandbox::DockerEngine;
use mend_sandbox::base_image;

use crate::config::FileConfig;
use crate::model::ModelArgs;

#[derive(Args, Debug, Clone, Default)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A repository whose mend.toml to check (it may set only safe keys; the model, image
    /// and sandbox always come from your own config and flags).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// The sandbox image to look for (default: mend's base image).
    #[arg(long)]
    pub image: Option<String>,
    /// Skip the Docker checks (for `--sandbox local` runs).
    #[arg(long)]
    pub no_docker: bool,
    /// Learn an unstated window (llama-cpp-python's server) from one oversized request:
    /// refused at once with the window when it is under ~36k tokens; a server whose window
    /// holds it spends minutes prefilling it, so this is opt-in.
    #[arg(long)]
    pub probe_window: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (warn and FAIL).
    pub fix: Option<String>,
}

impl Check {
    fn ok(detail: impl Into<String>) -> Check {
        Check {
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{label}  {}", self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub docker: bool,
    /// The image to look for; `None`: mend's base image.
    pub image: Option<String>,
    /// Ask the server for the context window and send one tiny request to see the model
    /// answer (and call a tool in native mode).
    pub probe_model: bool,
    /// With `probe_model`: when the server states no window and is llama-cpp-python, send
    /// one prompt just over mend's default window to read the window from the refusal.
    /// The doctor only: never on a run (a hosted API would bill the prompt).
    pub probe_window: bool,
}

/// How long the window probe waits: a refusal comes at once (measured: 0.1 s for a 36k
/// token prompt); an answer means a prefill of the whole prompt (minutes on a CPU).
const WINDOW_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    // The model, image and sandbox come from the user's config only: a repository's
    // mend.toml cannot choose them (see config::RepoConfig).
    let (cfg, cfg_path) = FileConfig::user()?;
    match &cfg_path {
        Some(p) => println!("config: {}", p.display()),
        None => println!("config: none (flags and defaults)"),
    }
    if let Some(repo) = &args.repo {
        let rc = crate::config::RepoConfig::load(repo);
        if let Some(p) = &rc.path {
            println!("repository config: {} (safe keys only)", p.display());
            if !rc.ignored.is_empty() {
                println!(
                    "warn   repository config: ignored {}",
                    rc.ignored.join(", ")
                );
            }
        }
    }
    let scope = Scope {
        docker: !args.no_docker,
        image: args.image.clone().or(cfg.image.clone()),
        probe_model: true,
        probe_window: args.probe_window,
    };
    let checks = checks(&args.model, cfg.model.as_ref(), &scope).await;
    for c in &checks {
        println!("{c}");
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        println!("{failed} check(s) failed");
        return Ok(ExitCode::FAILURE);
    }
    println!("ready");
    Ok(ExitCode::SUCCESS)
}

/// Fail with the FAIL lines of the checks in `scope`.
pub async fn preflight(
    model: &ModelArgs,
    file: Option<&ModelConfig>,
    scope: &Scope,
) -> anyhow::Result<()> {
    let failed: Vec<String> = checks(model, file, scope)
        .await
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.to_string())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!("not ready:\n{}", failed.join("\n"))
}

/// Run the checks in `scope`, in order.
pub async fn checks(model: &ModelArgs, file: Option<&ModelConfig>, scope: &Scope) -> Vec<Check> {
    let mut out = vec![];
    if scope.docker {
        docker_checks(scope.image.as_deref(), &mut out).await;
    }
    model_checks(model, file, scope, &mut out).await;
    out
}

async fn docker_checks(image: Option<&str>, out: &mut Vec<Check>) {
    let engine = match DockerEngine::connect().await {
        Ok(e) => e,
        Err(e) => {
            out.push(Check::fail(
                format!("Docker engine: not reachable ({e})"),
                "start the Docker engine (e.g. `sudo systemctl start docker`) and make sure you may use its socket (the `docker` group, or DOCKER_HOST); or run with `--sandbox local`",
            ));
            return;
        }
    };
    match engine.client().version().await {
        Ok(v) => out.push(Check::ok(format!(
            "Docker engine: reachable, version {}, API {}",
            v.version.as_deref().unwrap_or("?"),
            v.api_version.as_deref().unwrap_or("?")
        ))),
        Err(e) => out.push(Check::warn(
            format!("Docker engine: reachable, but it did not state its version ({e})"),
            "check `docker version`",
        )),
    }
    let (tag, ours) = match image {
        Some(i) => (i.to_string(), false),
        None => (base_image::image_tag(), true),
    };
    match engine.image_exists(&tag).await {
        Ok(true) => out.push(Check::ok(format!("image {tag}: present"))),
        Ok(false) if ours => out.push(Check::fail(
            format!("base image {tag}: missing"),
            "build it with `mend images base` (offline, from this machine's apt mirror; a few minutes), or pass --image",
        )),
        Ok(false) => out.push(Check::fail(
            format!("image {tag}: missing"),
            format!("build or load {tag} into the engine (`docker image ls` lists what it has)"),
        )),
        Err(e) => out.push(Check::fail(
            format!("image {tag}: could not look it up ({e})"),
            "check `docker image inspect` works",
        )),
    }
}

async fn model_checks(
    args: &ModelArgs,
    file: Option<&ModelConfig>,
    scope: &Scope,
    out: &mut Vec<Check>,
) {
    if let Some(path) = &args.replay {
        out.push(match path.is_file() {
            true => Check::ok(format!("model: replaying {}", path.display())),
            false => Check::fail(
                format!("model: the recording {} does not exist", path.display()),
                "pass the path of a trajectory file",
            ),
        });
        return;
    }
    let cfg = match crate::model::config(args, file) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                format!("model: {e}"),
                "see `mend fix --help` for --base-url, --model and --api-key-env",
            ));
            return;
        }
    };
    let key = match &cfg.api_key_env {
        None => {
            out.push(Check::ok(
                "API key: none configured (fine for local servers)".to_string(),
            ));
            None
        }
        Some(var) => match std::env::var(var).ok().filter(|k| !k.trim().is_empty()) {
            Some(k) => {
                out.push(Check::ok(format!("API key: ${var} is set")));
                Some(k.trim().to_string())
            }
            None => {
                out.push(Check::fail(
                    format!("API key: ${var} (api_key_env) is not set"),
                    format!("export {var}=<your key>, or name another variable with --api-key-env"),
                ));
                return;
            }
        },
    };
    let base = cfg.base_url.trim_end_matches('/').to_string();
    if cfg.azure.is_none() && !endpoint_check(&base, &cfg.model, key.as_deref(), out).await {
        return;
    }
    let model = match OpenAiCompatible::new(cfg.clone()) {
        Ok(m) => m,
        Err(e) => {
            out.push(Check::fail(
                format!("model: {e}"),
                "fix the [model] table of mend.toml or the flags",
            ));
            return;
        }
    };
    if !scope.probe_model {
        return;
    }
    let source = model.discover_context().await;
    if source != ContextSource::Default || !scope.probe_window {
        out.push(window_check(&model, None));
        out.push(probe_model(&cfg).await.0);
        return;
    }
    // The tiny request first: a server that accepts the window probe stays busy with it.
    // And only to a server that answered it: llama-cpp-python serves one request at a
    // time, so a slow answer to the probe then means a prefill of it, not a busy server.
    let (answers, answered) = probe_model(&cfg).await;
    let probe = match answered {
        true => Some(
            model
                .probe_window_by_overflow(DEFAULT_CONTEXT_WINDOW, WINDOW_PROBE_TIMEOUT)
                .await,
        ),
        false => None,
    };
    out.push(window_check(&model, probe));
    out.push(answers);
}

/// The context window line, after discovery (and the window probe when one was sent).
fn window_check(model: &OpenAiCompatible, probe: Option<WindowProbe>) -> Check {
    let window = model.context_window();
    let set_it = "set `context_window` in the [model] table of mend.toml to what the server serves";
    match (model.context_source(), probe) {
        (_, Some(WindowProbe::Stated(n))) => Check::ok(format!(
            "context window: {n} tokens (from the server's overflow error)"
        )),
        (ContextSource::Default, Some(WindowProbe::AtLeast { tokens, answered })) => {
            let how = match answered {
                true => "probe accepted".to_string(),
                false => format!(
                    "probe accepted: no refusal within {}s; the server is busy prefilling it for a while",
                    WINDOW_PROBE_TIMEOUT.as_secs()
                ),
            };
            Check::warn(
                format!(
                    "context window: at least ~{}k tokens ({how}); assuming {window} tokens",
                    tokens / 1000
                ),
                format!("{set_it} (llama-cpp-python: its --n_ctx) to use all of it"),
            )
        }
        (ContextSource::Default, Some(WindowProbe::Failed(why))) => Check::warn(
            format!(
                "context window: unknown (the window probe failed: {why}); assuming {window} tokens"
            ),
            set_it,
        ),
        (ContextSource::Default, _) => Check::warn(
            format!("context window: unknown; assuming {window} tokens"),
            format!(
                "{set_it} (or `mend doctor --probe-window` asks a llama-cpp-python server with one oversized request)"
            ),
        ),
        (s, _) => Check::ok(format!("context window: {window} tokens, {s}")),
    }
}

/// GET `{base}/models`: is the server there, does it take the key, does it serve the model?
/// False when nothing further can work.
async fn endpoint_check(base: &str, model: &str, key: Option<&str>, out: &mut Vec<Check>) -> bool {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            out.push(Check::fail(
                format!("HTTP client: {e}"),
                "report this as a bug",
            ));
            return false;
        }
    };
    let mut request = http.get(format!("{base}/models"));
    if let Some(k) = key {
        request = request.bearer_auth(k);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_timeout() {
                "no answer within 10 s"
            } else {
                "could not connect"
            };
            out.push(Check::fail(
                format!("model endpoint {base}: {why}"),
                "start the server, or point --base-url (or base_url in mend.toml) at it, up to /v1",
            ));
            return false;
        }
    };
    let status = response.status().as_u16();
    if status == 401 || status == 403 {
        out.push(Check::fail(
            format!("model endpoint {base}: reachable, but it refused the key (HTTP {status})"),
            "check the key in the variable api_key_env names",
        ));
        return false;
    }
    let body: Option<serde_json::Value> = if response.status().is_success() {
        response.json().await.ok()
    } else {
        None
    };
    let ids: Option<Vec<String>> = body.as_ref().and_then(|b| {
        Some(
            b.get("data")?
                .as_array()?
                .iter()
                .filter_map(|m| m.get("id")?.as_str().map(str::to_string))
                .collect(),
        )
    });
    match ids {
        None => out.push(Check::warn(
            format!("model endpoint {base}: reachable; it does not list its models (GET /models: HTTP {status})"),
            "nothing to do if the chat request below works",
        )),
        Some(ids) if ids.iter().any(|i| i == model) => {
            out.push(Check::ok(format!("model endpoint {base}: reachable, serves {model}")))
        }
        Some(ids) => out.push(Check::warn(
            format!(
                "model endpoint {base}: reachable, but {model} is not among the models it lists ({})",
                clip_list(&ids)
            ),
            "pass one of those names with --model (servers of a single model often accept any name)",
        )),
    }
    true
}

fn clip_list(ids: &[String]) -> String {
    let mut s = ids.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > 8 {
        s.push_str(&format!(", … ({} in all)", ids.len()));
    }
    if s.is_empty() { "none".into() } else { s }
}

/// One tiny request: in native mode, does the model call an offered tool? And did the
/// server answer at all (a refusal is an answer)?
async fn probe_model(cfg: &ModelConfig) -> (Check, bool) {
    let probe_cfg = ModelConfig {
        max_output_tokens: Some(64),
        max_tries: 2,
        timeout_secs: cfg.timeout_secs.min(120.0),
        retry_patience_secs: 150.0,
        ..cfg.clone()
    };
    let model = match OpenAiCompatible::new(probe_cfg) {
        Ok(m) => m,
        Err(e) => {
            return (
                Check::fail(format!("model: {e}"), "fix the model configuration"),
                false,
            );
        }
    };
    let native = cfg.tool_mode == ToolMode::Native;
    let tools = [ToolDef {
        name: "ping".into(),
        description: "Answer the health check. Call it now.".into(),
        parameters: serde_json::json!({"type": "object", "properties": {}}),
    }];
    let messages = [
        Message::system("You are a health check. Call the `ping` tool now, with no arguments."),
        Message::user("Call ping."),
    ];
    let reply = match native {
        true => model.complete(&messages, &tools).await,
        false => model.complete(&messages[..1], &[]).await,
    };
    let answered = matches!(reply, Ok(_) | Err(mend_llm::ModelError::Rejected { .. }));
    let check = match reply {
        Ok(c) if !native => Check::ok(format!(
            "model {}: answers in text mode ({} tokens out)",
            cfg.model, c.usage.tokens_out
        )),
        Ok(c) if !c.tool_calls.is_empty() => Check::ok(format!(
            "model {}: native tool calls work (it called `{}`)",
            cfg.model, c.tool_calls[0].name
        )),
        Ok(_) => Check::warn(
            format!(
                "model {}: answered, but without a tool call when asked for one",
                cfg.model
            ),
            "small models and servers without a tool-call parser do this; if runs show it, use --tool-mode text",
        ),
        Err(mend_llm::ModelError::Rejected {
            status, message, ..
        }) if native => Check::fail(
            format!(
                "model {}: the server refused a request with tools (HTTP {status}): {message}",
                cfg.model
            ),
            "enable tool calls on the server (vLLM: --enable-auto-tool-choice --tool-call-parser <parser>; llama.cpp: --jinja), or use --tool-mode text",
        ),
        Err(e) => Check::fail(
            format!("model {}: no usable answer: {e}", cfg.model),
            "check the server's log; --timeout raises the time allowed per reply",
        ),
    };
    (check, answered)
}
