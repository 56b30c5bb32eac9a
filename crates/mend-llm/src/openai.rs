//! Any `/v1/chat/completions` endpoint: OpenAI, Azure OpenAI, gateways, vLLM, Ollama,
//! llama.cpp's server, LM Studio.
//!
//! The request body is built with async-openai's chat types; the HTTP exchange is ours,
//! on the workspace's reqwest. async-openai's client retries 429/5xx three times inside a
//! tower layer we cannot bound per call, hides the status code and `Retry-After` from its
//! errors, and its typed response refuses replies local servers send (see `wire.rs`).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::budget::{Ledger, Totals};
use crate::config::{MaxTokensField, ModelConfig, ToolMode, secs};
use crate::discover::{self, ContextSource, WindowProbe};
use crate::error::ModelError;
use crate::model::Model;
use crate::overflow;
use crate::prices::PriceTable;
use crate::tokens::Tokenizer;
use crate::types::{Completion, Cost, Message, Problem, ToolCall, ToolDef, Usage};
use crate::wire::{self, RequestShape, clip};

/// Context window when neither the config, the server nor the model table knows the model.
pub const DEFAULT_CONTEXT_WINDOW: usize = 32_768;

/// The correction applied to token estimates stays within these bounds, whatever a server
/// reports.
const CORRECTION_RANGE: (f64, f64) = (0.8, 2.5);

/// A reply's output limit is never set below this, even when the estimate says the prompt
/// fills the window: the server then states the overflow (with its sizes) itself.
const MIN_OUTPUT_TOKENS: usize = 64;

/// A call still waiting for its reply, reported every `progress_every_secs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub model: String,
    /// Since the call started (all tries and waits).
    pub waited: Duration,
    pub attempt: u32,
    pub tries: u32,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "waiting {}s for a reply from {}, try {}/{}",
            self.waited.as_secs(),
            self.model,
            self.attempt,
            self.tries
        )
    }
}

type ProgressFn = dyn Fn(&Waiting) + Send + Sync;

/// A client for one model on one endpoint, with its run's [`Ledger`]. Cheap to clone;
/// [`OpenAiCompatible::with_ledger`] gives another run the same connection pool.
#[derive(Clone)]
pub struct OpenAiCompatible {
    inner: Arc<Inner>,
    ledger: Arc<Ledger>,
    progress: Option<Arc<ProgressFn>>,
    /// Temperature and seed of this handle when they differ from the config's (best-of-N).
    sampling: Option<(Option<f32>, Option<i64>)>,
}

struct Inner {
    config: ModelConfig,
    /// The key, to redact it from anything a server sends back.
    key: Option<String>,
    http: reqwest::Client,
    url: String,
    prices: PriceTable,
    tokenizer: Tokenizer,
    /// The window and where it came from; discovery and overflow errors may change it.
    context: Mutex<(usize, ContextSource)>,
    /// Server-reported prompt tokens / our estimate, once learned.
    correction: Mutex<Option<f64>>,
    max_completion_tokens: bool,
    calls: AtomicU64,
}

impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("model", &self.inner.config.model)
            .field("url", &self.inner.url)
            .field("api_key", &self.inner.key.as_ref().map(|_| "<set>"))
            .field("tool_mode", &self.inner.config.tool_mode)
            .field("ledger", &self.ledger.name())
            .finish_non_exhaustive()
    }
}

impl OpenAiCompatible {
    /// Build the client, reading the key from the environment variable the config names.
    pub fn new(config: ModelConfig) -> Result<OpenAiCompatible, ModelError> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    /// Like [`OpenAiCompatible::new`], with the environment given as a look-up function
    /// (tests and embedders; the key still never comes from argv or a file).
    pub fn with_env(
        config: ModelConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OpenAiCompatible, ModelError> {
        let prices = PriceTable::load(config.prices_file.as_deref())?;
        Self::with_env_and_prices(config, env, prices)
    }

    /// Like [`OpenAiCompatible::with_env`] with this price table instead of the files'.
    pub fn with_env_and_prices(
        config: ModelConfig,
        env: impl Fn(&str) -> Option<String>,
        prices: PriceTable,
    ) -> Result<OpenAiCompatible, ModelError> {
        let key = match &config.api_key_env {
            None => None,
            Some(var) => match env(var).filter(|k| !k.trim().is_empty()) {
                Some(k) => Some(k.trim().to_string()),
                None => {
                    return Err(ModelError::Config(format!(
                        "the environment variable {var} (api_key_env) is not set"
                    )));
                }
            },
        };
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ModelError::Config(format!(
                "base_url must start with http:// or https://, got {:?}",
                config.base_url
            )));
        }
        let url = match &config.azure {
            Some(az) => format!(
                "{base}/openai/deployments/{}/chat/completions?api-version={}",
                az.deployment, az.api_version
            ),
            None => format!("{base}/chat/completions"),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.extra_headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ModelError::Config(format!(
                    "extra_headers: {name:?} is not a valid header name"
                ))
            })?;
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                ModelError::Config(format!(
                    "extra_headers: the value of {name} is not a valid header value"
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        if let Some(k) = &key {
            let (name, value) = match config.azure {
                Some(_) => (HeaderName::from_static("api-key"), k.clone()),
                None => (reqwest::header::AUTHORIZATION, format!("Bearer {k}")),
            };
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                ModelError::Config("the API key holds characters a header cannot carry".into())
            })?;
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        // The workspace's reqwest has rustls without a built-in provider: install ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("mend/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout())
            .connect_timeout(config.timeout().min(Duration::from_secs(30)))
            .build()
            .map_err(|e| ModelError::Config(format!("could not build the HTTP client: {e}")))?;
        let info = prices.lookup(&config.model).copied();
        let tokenizer = config
            .tokenizer
            .or(info.and_then(|i| i.tokenizer))
            .unwrap_or_else(|| Tokenizer::for_model(&config.model));
        let context = match (config.context_window, info.and_then(|i| i.context_window)) {
            (Some(n), _) => (n, ContextSource::Config),
            (None, Some(n)) => (n, ContextSource::Table),
            (None, None) => (DEFAULT_CONTEXT_WINDOW, ContextSource::Default),
        };
        if info.is_none() {
            tracing::warn!(model = %config.model, "model not in the price table: its calls are counted at $0");
        }
        let max_completion_tokens = match config.max_tokens_field {
            MaxTokensField::MaxTokens => false,
            MaxTokensField::MaxCompletionTokens => true,
            MaxTokensField::Auto => config.azure.is_some() || base.contains("api.openai.com"),
        };
        let ledger = Ledger::new("run", config.limits);
        let inner = Inner {
            key,
            http,
            url,
            prices,
            tokenizer,
            context: Mutex::new(context),
            correction: Mutex::new(None),
            max_completion_tokens,
            calls: AtomicU64::new(0),
            config,
        };
        Ok(OpenAiCompatible {
            inner: Arc::new(inner),
            ledger,
            progress: None,
            sampling: None,
        })
    }

    /// Call `f` every `progress_every_secs` while a call waits for its reply (the library
    /// does not print; the CLI does).
    pub fn on_progress(mut self, f: impl Fn(&Waiting) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Unless the config states the window, ask the server (a few short requests, once):
    /// the window then comes from the server, else the model table, else the default.
    /// Returns where the window now comes from.
    pub async fn discover_context(&self) -> ContextSource {
        if self.context_source() == ContextSource::Config || self.inner.config.azure.is_some() {
            return self.context_source();
        }
        let c = &self.inner.config;
        if let Some((n, at)) = discover::ask_server(&self.inner.http, &c.base_url, &c.model).await {
            tracing::info!(model = %c.model, window = n, %at, "context window from the server");
            *lock(&self.inner.context) = (n, ContextSource::Server(at));
        }
        self.context_source()
    }

    /// Opt-in, for `mend doctor` only: learn the window of a server that states it nowhere
    /// but in its overflow errors (llama-cpp-python) by sending ONE prompt of about 1.1 ×
    /// `bound` tokens with an output limit of 1 token. Sent only while the window is
    /// unknown ([`ContextSource::Default`]) and the server answers llama-cpp-python's
    /// tokenizer route, so a hosted API never gets (and bills) the big prompt. A server
    /// refuses a prompt over its window at once (measured: 0.1 s for 36k tokens); one with
    /// a larger window prefills the whole prompt, so the call waits at most `timeout`.
    /// Not charged to the ledger: a refusal costs nothing.
    pub async fn probe_window_by_overflow(&self, bound: usize, timeout: Duration) -> WindowProbe {
        let source = self.context_source();
        if source != ContextSource::Default || self.inner.config.azure.is_some() {
            return WindowProbe::NotProbed(format!("the window is already known ({source})"));
        }
        let c = &self.inner.config;
        let sample = discover::FILLER.repeat(discover::FILLER_SAMPLE);
        let per_sample =
            discover::llama_cpp_python_count(&self.inner.http, &c.base_url, &c.model, &sample)
                .await
                .filter(|n| *n > 0);
        let Some(per_sample) = per_sample else {
            return WindowProbe::NotProbed(
                "not a llama-cpp-python server (no POST /extras/tokenize/count)".into(),
            );
        };
        let target = (bound + bound / 10) as u64;
        let units = target
            .saturating_mul(discover::FILLER_SAMPLE as u64)
            .div_ceil(per_sample);
        let tokens = (units.saturating_mul(per_sample) / discover::FILLER_SAMPLE as u64) as usize;
        let field = match self.inner.max_completion_tokens {
            true => "max_completion_tokens",
            false => "max_tokens",
        };
        let mut body = json!({
            "model": c.model,
            "messages": [{"role": "user", "content": discover::FILLER.repeat(units as usize)}],
        });
        body[field] = json!(1);
        tracing::info!(model = %c.model, tokens, "probing the context window with one oversized prompt");
        let sent = self
            .inner
            .http
            .post(&self.inner.url)
            .json(&body)
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return WindowProbe::AtLeast {
                    tokens,
                    answered: false,
                };
            }
            Err(e) => return WindowProbe::Failed(self.transport_error(&e)),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(t) => self.redact(&t),
            Err(e) if e.is_timeout() => {
                return WindowProbe::AtLeast {
                    tokens,
                    answered: false,
                };
            }
            Err(e) => return WindowProbe::Failed(self.transport_error(&e)),
        };
        if status.is_success() {
            return WindowProbe::AtLeast {
                tokens,
                answered: true,
            };
        }
        let message = wire::error_message(&text);
        match overflow::recognise(status.as_u16(), &text) {
            Some(o) => match o.window.filter(|w| *w > 0) {
                Some(w) => {
                    tracing::info!(model = %c.model, window = w, "context window from the server's overflow error");
                    *lock(&self.inner.context) = (
                        w as usize,
                        ContextSource::Server("its overflow error".into()),
                    );
                    WindowProbe::Stated(w as usize)
                }
                None => WindowProbe::Failed(format!(
                    "the server refused the probe as too long without stating its window: {message}"
                )),
            },
            None => WindowProbe::Failed(format!("HTTP {}: {message}", status.as_u16())),
        }
    }

    /// Where [`Model::context_window`] comes from.
    pub fn context_source(&self) -> ContextSource {
        lock(&self.inner.context).1.clone()
    }

    /// The factor token estimates are multiplied by, learned from the server's reported
    /// prompt tokens (1.0 until a reply taught it).
    pub fn token_correction(&self) -> f64 {
        lock(&self.inner.correction).unwrap_or(1.0)
    }

    fn corrected(&self, raw: usize) -> usize {
        (raw as f64 * self.token_correction()).ceil() as usize
    }

    fn raw_tool_tokens(&self, tools: &[ToolDef]) -> usize {
        if self.inner.config.tool_mode == ToolMode::Text {
            return 0;
        }
        let t = self.inner.tokenizer;
        tools
            .iter()
            .map(|d| {
                let schema = serde_json::to_string(&d.parameters).unwrap_or_default();
                t.count_text(&d.name) + t.count_text(&d.description) + t.count_text(&schema) + 8
            })
            .sum()
    }

    /// Learn from a reply: the server's prompt tokens against our estimate of the prompt.
    /// Estimates of small prompts (fixed template overheads dominate) and ratios no
    /// tokenizer could explain (a proxy reporting nonsense) teach nothing.
    fn learn(&self, estimated: usize, reported: u64) {
        if estimated < 256 || reported == 0 {
            return;
        }
        let ratio = reported as f64 / estimated as f64;
        if !(0.5..=4.0).contains(&ratio) {
            tracing::debug!(
                estimated,
                reported,
                "reported prompt tokens far from the estimate; not learned"
            );
            return;
        }
        let mut c = lock(&self.inner.correction);
        let next = match *c {
            None => ratio,
            Some(old) => (old + ratio) / 2.0,
        };
        *c = Some(next.clamp(CORRECTION_RANGE.0, CORRECTION_RANGE.1));
    }

    /// The output limit for a request whose prompt is estimated at `prompt` tokens.
    fn output_limit(&self, prompt: usize) -> usize {
        let left = self
            .context_window()
            .saturating_sub(prompt + prompt / 50 + 16);
        self.max_output_tokens().min(left.max(MIN_OUTPUT_TOKENS))
    }

    /// The same client charging another ledger (e.g. `batch.child("run 7", limits)`).
    pub fn with_ledger(&self, ledger: Arc<Ledger>) -> OpenAiCompatible {
        OpenAiCompatible {
            inner: self.inner.clone(),
            ledger,
            progress: self.progress.clone(),
            sampling: self.sampling,
        }
    }

    /// The same client sampling at another temperature and seed (independent attempts).
    pub fn with_sampling(&self, temperature: Option<f32>, seed: Option<i64>) -> OpenAiCompatible {
        OpenAiCompatible {
            sampling: Some((temperature, seed)),
            ..self.clone()
        }
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn config(&self) -> &ModelConfig {
        &self.inner.config
    }

    /// Whether the model is in the price table (if not, its calls cost $0).
    pub fn priced(&self) -> bool {
        self.inner.prices.lookup(&self.inner.config.model).is_some()
    }

    fn redact(&self, text: &str) -> String {
        match &self.inner.key {
            Some(k) if text.contains(k.as_str()) => text.replace(k.as_str(), "[REDACTED]"),
            _ => text.to_string(),
        }
    }

    /// POST the body with retries; the reply body as JSON and the number of tries.
    async fn send(&self, body: &Value) -> Result<(Value, u32), ModelError> {
        let c = &self.inner.config;
        let model = c.model.clone();
        let tries = c.max_tries.max(1);
        let patience = secs(c.retry_patience_secs);
        let started = Instant::now();
        let mut last = String::new();
        for attempt in 1..=tries {
            tracing::debug!(model = %model, url = %self.inner.url, attempt, "chat completion request");
            let outcome = self
                .reporting(self.try_once(body), started, attempt, tries)
                .await;
            let failure = match outcome {
                Ok(v) => return Ok((v, attempt)),
                Err(Judged::Fatal(status, message)) => {
                    return Err(ModelError::Rejected {
                        model,
                        status,
                        message,
                    });
                }
                Err(Judged::Overflow(message, o)) => {
                    if let Some(w) = o.window.filter(|w| *w > 0) {
                        let mut ctx = lock(&self.inner.context);
                        if ctx.0 != w as usize {
                            tracing::warn!(model = %model, was = ctx.0, now = w, "the server stated another context window");
                            *ctx = (
                                w as usize,
                                ContextSource::Server("its overflow error".into()),
                            );
                        }
                    }
                    return Err(ModelError::ContextOverflow {
                        model,
                        message,
                        prompt_tokens: o.prompt_tokens,
                        window: o.window,
                    });
                }
                Err(Judged::Retry(f)) => f,
            };
            last = failure.why;
            if attempt == tries {
                break;
            }
            let backoff = jittered(
                secs(c.backoff_initial_secs),
                secs(c.backoff_max_secs),
                attempt,
            );
            let delay = match failure.wait {
                Some(asked) if asked > secs(c.max_retry_after_secs) => {
                    let last = format!(
                        "{last}; the server asked to wait {}s, more than max_retry_after_secs ({})",
                        asked.as_secs(),
                        c.max_retry_after_secs
                    );
                    return Err(ModelError::GaveUp {
                        model,
                        tries: attempt,
                        last,
                    });
                }
                Some(asked) => asked.max(backoff),
                None => backoff,
            };
            if started.elapsed() + delay > patience {
                let last = format!(
                    "{last}; no time left to retry within retry_patience_secs ({})",
                    c.retry_patience_secs
                );
                return Err(ModelError::GaveUp {
                    model,
                    tries: attempt,
                    last,
                });
            }
            tracing::warn!(model = %model, attempt, tries, wait_ms = delay.as_millis() as u64, failure = %last, "model call failed; retrying");
            tokio::time::sleep(delay).await;
        }
        Err(ModelError::GaveUp { model, tries, last })
    }

    /// Run one try, telling the progress callback (if any) while it is slow.
    async fn reporting<T>(
        &self,
        work: impl std::future::Future<Output = T>,
        started: Instant,
        attempt: u32,
        tries: u32,
    ) -> T {
        let Some(report) = &self.progress else {
            return work.await;
        };
        let every = secs(self.inner.config.progress_every_secs).max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = ticker.tick() => report(&Waiting {
                    model: self.inner.config.model.clone(),
                    waited: started.elapsed(),
                    attempt,
                    tries,
                }),
            }
        }
    }

    /// One POST: the reply body, or what went wrong.
    async fn try_once(&self, body: &Value) -> Result<Value, Judged> {
        let resp = match self
            .inner
            .http
            .post(&self.inner.url)
            .json(body)
            .send()
            .await
        {
            Err(e) => return Err(Judged::Retry(Failure::retry(self.transport_error(&e)))),
            Ok(resp) => resp,
        };
        let status = resp.status();
        let wait = retry_after(resp.headers());
        match resp.bytes().await {
            Err(e) => Err(Judged::Retry(Failure::retry(format!(
                "HTTP {}: {}",
                status.as_u16(),
                self.transport_error(&e)
            )))),
            Ok(bytes) => {
                let text = self.redact(&String::from_utf8_lossy(&bytes));
                self.judge(status, &text).map_err(|j| match j {
                    Judged::Retry(f) => Judged::Retry(Failure { wait, ..f }),
                    other => other,
                })
            }
        }
    }

    /// What a response means: a body to use, a failure worth retrying, an overflow, or a
    /// refusal.
    fn judge(&self, status: StatusCode, text: &str) -> Result<Value, Judged> {
        if status.is_success() {
            let body = serde_json::from_str::<Value>(text).map_err(|e| {
                Judged::Retry(Failure::retry(format!(
                    "HTTP {}: the body is not JSON ({e}): {}",
                    status.as_u16(),
                    clip(text, 200)
                )))
            })?;
            // A 200 that is not a chat completion (an error object, no `choices`) is a hiccup.
            wire::parse_reply(&body).map_err(|e| {
                Judged::Retry(Failure::retry(format!("HTTP {}: {e}", status.as_u16())))
            })?;
            return Ok(body);
        }
        let message = wire::error_message(text);
        let code = status.as_u16();
        // Resending the same request cannot help; shortening the history can.
        if let Some(o) = overflow::recognise(code, text) {
            return Err(Judged::Overflow(message, o));
        }
        // A 429 for an exhausted quota will not clear by waiting.
        let quota = code == 429 && wire::error_code(text).as_deref() == Some("insufficient_quota");
        if !quota && (matches!(code, 408 | 409 | 425 | 429) || status.is_server_error()) {
            Err(Judged::Retry(Failure::retry(format!(
                "HTTP {code}: {message}"
            ))))
        } else {
            Err(Judged::Fatal(code, message))
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> String {
        let mut text = if e.is_timeout() {
            format!(
                "no answer within {}s (timed out)",
                self.inner.config.timeout_secs
            )
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            "the connection failed or dropped".to_string()
        };
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        self.redact(&text)
    }
}

enum Judged {
    Retry(Failure),
    Fatal(u16, String),
    Overflow(String, overflow::Overflow),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Failure {
    why: String,
    wait: Option<Duration>,
}

impl Failure {
    fn retry(why: String) -> Failure {
        Failure { why, wait: None }
    }
}

#[async_trait::async_trait]
impl Model for OpenAiCompatible {
    fn name(&self) -> String {
        self.inner.config.model.clone()
    }

    fn tool_mode(&self) -> ToolMode {
        self.inner.config.tool_mode
    }

    fn context_window(&self) -> usize {
        lock(&self.inner.context).0
    }

    fn count_tokens(&self, messages: &[Message]) -> usize {
        self.corrected(self.inner.tokenizer.count_messages(messages))
    }

    fn max_output_tokens(&self) -> usize {
        match self.inner.config.max_output_tokens {
            Some(n) => (n as usize).max(1),
            None => (self.context_window() / 4).clamp(MIN_OUTPUT_TOKENS, 4096),
        }
    }

    fn count_tool_tokens(&self, tools: &[ToolDef]) -> usize {
        self.corrected(self.raw_tool_tokens(tools))
    }

    async fn complete(
        &self,
        messages: &[Message],
        tools: &[ToolDef],
    ) -> Result<Completion, ModelError> {
        self.ledger.check()?;
        let c = &self.inner.config;
        let raw_prompt =
            self.inner.tokenizer.count_messages(messages) + self.raw_tool_tokens(tools);
        let limit = self.output_limit(self.corrected(raw_prompt));
        let shape = RequestShape {
            model: &c.model,
            temperature: self.sampling.map_or(c.temperature, |s| s.0),
            seed: self.sampling.map_or(c.seed, |s| s.1),
            max_output_tokens: Some(u32::try_from(limit).unwrap_or(u32::MAX)),
            max_completion_tokens: self.inner.max_completion_tokens,
            tool_mode: c.tool_mode,
        };
        let body = wire::request_body(messages, tools, &shape).map_err(ModelError::Config)?;
        let (mut reply_body, tries) = self.send(&body).await?;
        let reply = wire::parse_reply(&reply_body).map_err(|last| ModelError::GaveUp {
            model: c.model.clone(),
            tries,
            last,
        })?;
        let seq = self.inner.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let usage_from_server = reply.usage;
        let finish_reason = reply.finish_reason.clone();
        let server_model = reply.model.clone();
        let mut i = wire::interpret(
            reply,
            c.tool_mode,
            tools,
            shape.max_output_tokens,
            &format!("call_{}_{seq}", unique_tag()),
        );
        // Some servers stop at the limit but say "stop": the token count tells.
        let cut = usage_from_server.is_some_and(|(_, out)| out >= limit as u64);
        if cut
            && !i
                .problems
                .iter()
                .any(|p| matches!(p, Problem::CutOff { .. }))
        {
            i.problems.insert(
                0,
                Problem::CutOff {
                    limit: shape.max_output_tokens,
                },
            );
        }
        let capped = cap_reply(
            &mut i.content,
            &mut i.calls,
            &mut i.problems,
            c.max_reply_chars,
        );
        if capped {
            // Neither the trajectory nor later requests keep what was cut.
            let bytes = reply_body.to_string().len();
            reply_body = json!({"omitted": "the reply exceeded max_reply_chars", "bytes": bytes});
        }
        let usage = match usage_from_server {
            Some((tokens_in, tokens_out)) => {
                self.learn(raw_prompt, tokens_in);
                Usage {
                    tokens_in,
                    tokens_out,
                    estimated: false,
                }
            }
            None => {
                let t = self.inner.tokenizer;
                let out = t.count_text(&i.content)
                    + t.count_calls(&i.calls)
                    + i.reasoning.as_deref().map_or(0, |r| t.count_text(r));
                tracing::debug!(model = %c.model, "the server sent no usage; tokens estimated");
                Usage {
                    tokens_in: self.corrected(raw_prompt) as u64,
                    tokens_out: out as u64,
                    estimated: true,
                }
            }
        };
        let cost: Cost = self.inner.prices.cost(&c.model, &usage);
        let mut completion = Completion {
            content: i.content,
            tool_calls: i.calls,
            problems: i.problems,
            reasoning: i.reasoning,
            finish_reason,
            model: server_model,
            usage,
            cost,
            raw: Value::Null,
        };
        if !completion.problems.is_empty() {
            tracing::debug!(model = %c.model, problems = ?completion.problems, "reply with problems");
        }
        completion.raw = json!({
            "model": c.model,
            "tool_mode": c.tool_mode,
            "request": {"messages": messages, "tools": tools},
            "response": completion,
            "http": {"url": self.inner.url, "tries": tries, "body": reply_body},
        });
        self.ledger.record(&completion.usage, &completion.cost)?;
        Ok(completion)
    }

    fn totals(&self) -> Totals {
        self.ledger.totals()
    }
}

/// Cut what a reply may put into the conversation to `max` characters: its text, and each
/// call's arguments (cut arguments stay as raw text, so the call is not run). True when
/// something was cut; each cut is a [`Problem::TooLong`].
fn cap_reply(
    content: &mut String,
    calls: &mut [ToolCall],
    problems: &mut Vec<Problem>,
    max: usize,
) -> bool {
    let mut capped = false;
    let chars = content.chars().count();
    if chars > max {
        *content = clip(content, max);
        problems.push(Problem::TooLong {
            what: "your reply".into(),
            chars,
            limit: max,
        });
        capped = true;
    }
    for call in calls.iter_mut() {
        let text = match &call.arguments {
            Ok(v) => v.to_string(),
            Err(raw) => raw.clone(),
        };
        let chars = text.chars().count();
        if chars > max {
            call.arguments = Err(clip(&text, max));
            problems.push(Problem::TooLong {
                what: format!("the arguments of `{}`", call.name),
                chars,
                limit: max,
            });
            capped = true;
        }
    }
    capped
}

/// A per-process tag so synthesized call ids stay unique across clients and restarts.
fn unique_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| format!("{:x}", random_u64() & 0xffff_ffff))
}

/// Doubling backoff from `initial`, capped at `max`, with "equal jitter" (half fixed, half
/// random) so concurrent runs hitting the same limit spread out.
fn jittered(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let base = initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let fraction = (random_u64() % 1_000_001) as f64 / 1_000_000.0;
    base / 2 + base.mul_f64(fraction / 2.0)
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per instance from the OS: enough randomness for jitter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `retry-after-ms` (Azure, OpenAI) or `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = get("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = http_date(v)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs((at - now).max(0) as u64))
}

/// Unix seconds of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT".
fn http_date(v: &str) -> Option<i64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == month)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, s] = hms.as_slice() else {
        return None;
    };
    // Days from civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("soon"), None);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_cap() {
        for attempt in 1..=6 {
            let d = jittered(
                Duration::from_millis(100),
                Duration::from_millis(1000),
                attempt,
            );
            let base = (100u64 << (attempt - 1)).min(1000);
            assert!(
                d >= Duration::from_millis(base / 2) && d <= Duration::from_millis(base),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn missing_key_variable_is_a_clear_error() {
        let config = ModelConfig {
            api_key_env: Some("MEND_TEST_NO_SUCH_KEY".into()),
            ..ModelConfig::default()
        };
        let e = OpenAiCompatible::with_env(config, |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("MEND_TEST_NO_SUCH_KEY") && e.contains("not set"),
            "{e}"
        );
    }
}
