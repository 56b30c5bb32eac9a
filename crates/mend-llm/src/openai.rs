//! Any `/v1/chat/completions` endpoint: OpenAI, Azure OpenAI, gateways, vLLM, Ollama,
//! llama.cpp's server, LM Studio.
//!
//! The request body is built with async-openai's chat types; the HTTP exchange is ours,
//! on the workspace's reqwest. async-openai's client retries 429/5xx three times inside a
//! tower layer we cannot bound per call, hides the status code and `Retry-After` from its
//! errors, and its typed response refuses replies local servers send (see `wire.rs`).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::budget::{Ledger, Totals};
use crate::config::{MaxTokensField, ModelConfig, ToolMode, secs};
use crate::error::ModelError;
use crate::model::Model;
use crate::prices::PriceTable;
use crate::tokens::Tokenizer;
use crate::types::{Completion, Cost, Message, ToolDef, Usage};
use crate::wire::{self, RequestShape, clip};

/// Context window when neither the config nor the price table knows the model.
pub const DEFAULT_CONTEXT_WINDOW: usize = 32_768;

/// A client for one model on one endpoint, with its run's [`Ledger`]. Cheap to clone;
/// [`OpenAiCompatible::with_ledger`] gives another run the same connection pool.
#[derive(Clone)]
pub struct OpenAiCompatible {
    inner: Arc<Inner>,
    ledger: Arc<Ledger>,
}

struct Inner {
    config: ModelConfig,
    /// The key, to redact it from anything a server sends back.
    key: Option<String>,
    http: reqwest::Client,
    url: String,
    prices: PriceTable,
    tokenizer: Tokenizer,
    context_window: usize,
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
        let context_window = config
            .context_window
            .or(info.and_then(|i| i.context_window))
            .unwrap_or(DEFAULT_CONTEXT_WINDOW);
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
            context_window,
            max_completion_tokens,
            calls: AtomicU64::new(0),
            config,
        };
        Ok(OpenAiCompatible {
            inner: Arc::new(inner),
            ledger,
        })
    }

    /// The same client charging another ledger (e.g. `batch.child("run 7", limits)`).
    pub fn with_ledger(&self, ledger: Arc<Ledger>) -> OpenAiCompatible {
        OpenAiCompatible {
            inner: self.inner.clone(),
            ledger,
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
        let mut last = String::new();
        for attempt in 1..=tries {
            tracing::debug!(model = %model, url = %self.inner.url, attempt, "chat completion request");
            let failure = match self
                .inner
                .http
                .post(&self.inner.url)
                .json(body)
                .send()
                .await
            {
                Err(e) => Failure::retry(self.transport_error(&e)),
                Ok(resp) => {
                    let status = resp.status();
                    let wait = retry_after(resp.headers());
                    match resp.bytes().await {
                        Err(e) => Failure::retry(format!(
                            "HTTP {}: {}",
                            status.as_u16(),
                            self.transport_error(&e)
                        )),
                        Ok(bytes) => {
                            let text = self.redact(&String::from_utf8_lossy(&bytes));
                            match self.judge(status, &text) {
                                Ok(v) => return Ok((v, attempt)),
                                Err(Judged::Overflow(message)) => {
                                    return Err(ModelError::ContextOverflow {
                                        model,
                                        message,
                                        prompt_tokens: None,
                                        window: None,
                                    });
                                }
                                Err(Judged::Fatal(message)) => {
                                    return Err(ModelError::Rejected {
                                        model,
                                        status: status.as_u16(),
                                        message,
                                    });
                                }
                                Err(Judged::Retry(why)) => Failure { why, wait },
                            }
                        }
                    }
                }
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
            tracing::warn!(model = %model, attempt, tries, wait_ms = delay.as_millis() as u64, failure = %last, "model call failed; retrying");
            tokio::time::sleep(delay).await;
        }
        Err(ModelError::GaveUp { model, tries, last })
    }

    /// What a response means: a body to use, a failure worth retrying, or a refusal.
    fn judge(&self, status: StatusCode, text: &str) -> Result<Value, Judged> {
        if status.is_success() {
            let body = serde_json::from_str::<Value>(text).map_err(|e| {
                Judged::Retry(format!(
                    "HTTP {}: the body is not JSON ({e}): {}",
                    status.as_u16(),
                    clip(text, 200)
                ))
            })?;
            // A 200 that is not a chat completion (an error object, no `choices`) is a hiccup.
            wire::parse_reply(&body)
                .map_err(|e| Judged::Retry(format!("HTTP {}: {e}", status.as_u16())))?;
            return Ok(body);
        }
        let message = wire::error_message(text);
        let code = status.as_u16();
        // A 429 for an exhausted quota will not clear by waiting.
        let quota = code == 429 && wire::error_code(text).as_deref() == Some("insufficient_quota");
        if code == 400 && wire::error_code(text).as_deref() == Some("context_length_exceeded") {
            return Err(Judged::Overflow(message));
        }
        if !quota && (matches!(code, 408 | 409 | 425 | 429) || status.is_server_error()) {
            Err(Judged::Retry(format!("HTTP {code}: {message}")))
        } else {
            Err(Judged::Fatal(message))
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
    Retry(String),
    Overflow(String),
    Fatal(String),
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
        self.inner.context_window
    }

    fn count_tokens(&self, messages: &[Message]) -> usize {
        self.inner.tokenizer.count_messages(messages)
    }

    async fn complete(
        &self,
        messages: &[Message],
        tools: &[ToolDef],
    ) -> Result<Completion, ModelError> {
        self.ledger.check()?;
        let c = &self.inner.config;
        let shape = RequestShape {
            model: &c.model,
            temperature: c.temperature,
            max_output_tokens: c.max_output_tokens,
            max_completion_tokens: self.inner.max_completion_tokens,
            tool_mode: c.tool_mode,
        };
        let body = wire::request_body(messages, tools, &shape).map_err(ModelError::Config)?;
        let (reply_body, tries) = self.send(&body).await?;
        let reply = wire::parse_reply(&reply_body).map_err(|last| ModelError::GaveUp {
            model: c.model.clone(),
            tries,
            last,
        })?;
        let seq = self.inner.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let usage_from_server = reply.usage;
        let finish_reason = reply.finish_reason.clone();
        let server_model = reply.model.clone();
        let i = wire::interpret(
            reply,
            c.tool_mode,
            tools,
            c.max_output_tokens,
            &format!("call_{}_{seq}", unique_tag()),
        );
        let usage = match usage_from_server {
            Some((tokens_in, tokens_out)) => Usage {
                tokens_in,
                tokens_out,
                estimated: false,
            },
            None => {
                let t = self.inner.tokenizer;
                let out = t.count_text(&i.content)
                    + t.count_calls(&i.calls)
                    + i.reasoning.as_deref().map_or(0, |r| t.count_text(r));
                tracing::debug!(model = %c.model, "the server sent no usage; tokens estimated");
                Usage {
                    tokens_in: t.count_messages(messages) as u64,
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
