//! Where a model's context window comes from, and asking the server for it.
//!
//! What servers expose (checked against their sources or a running server):
//! - vLLM: `GET /v1/models` → `data[].max_model_len`;
//! - llama.cpp `llama-server`: `GET /props` → `default_generation_settings.n_ctx` (newer
//!   builds also a top-level `n_ctx`);
//! - Ollama: `POST /api/show {"model"}` → `num_ctx` in `parameters` when the model sets it;
//!   else Ollama serves its default context (4,096 tokens in recent versions, unless
//!   `OLLAMA_CONTEXT_LENGTH` says otherwise) and silently drops the start of longer
//!   prompts, so the trained `model_info["<arch>.context_length"]` is capped at 4,096;
//! - OpenRouter, LM Studio and some gateways: `context_length` / `max_context_length` in
//!   `/v1/models`;
//! - llama-cpp-python's server (0.3.x) exposes nothing: its `/v1/models` lists ids only and
//!   there is no `/props`. Its window is learned from its first overflow error instead,
//!   which states it ("This model's maximum context length is N tokens"), or, on request
//!   (`mend doctor` only), from one deliberately oversized probe: see
//!   [`crate::OpenAiCompatible::probe_window_by_overflow`]. The server is recognised by its
//!   own `POST /extras/tokenize/count` route, which also measures the probe's filler.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where [`crate::Model::context_window`] came from, for the run header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ContextSource {
    /// `context_window` in the configuration.
    Config,
    /// The server said so; the endpoint (or "overflow error") it said it at.
    Server(String),
    /// The built-in table of known models (beside the prices).
    Table,
    /// Nothing knew: [`crate::DEFAULT_CONTEXT_WINDOW`].
    Default,
}

impl std::fmt::Display for ContextSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextSource::Config => write!(f, "from the config"),
            ContextSource::Server(at) => write!(f, "from the server ({at})"),
            ContextSource::Table => write!(f, "from mend's model table"),
            ContextSource::Default => write!(f, "a default: nothing stated it"),
        }
    }
}

/// What [`crate::OpenAiCompatible::probe_window_by_overflow`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowProbe {
    /// The server refused the oversized prompt and stated its window, which the client now
    /// uses ([`ContextSource::Server`] "its overflow error").
    Stated(usize),
    /// The server took a prompt of `tokens` tokens, so its window is at least that.
    /// `answered` is false when it was still working on it at the timeout (a prefill it
    /// finishes on its own: the server stays busy for a while).
    AtLeast { tokens: usize, answered: bool },
    /// No probe was sent: the window is already known, or the server is not one that
    /// states its window only in errors (no llama-cpp-python tokenizer route).
    NotProbed(String),
    /// The probe went wrong in another way.
    Failed(String),
}

/// How long each probe may take: discovery must never delay a run noticeably.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The unit the overflow probe's prompt repeats: one token in SmolLM2's vocabulary
/// (measured with llama-cpp-python's tokenizer) and in most BPE and SentencePiece ones;
/// the server counts it anyway.
pub(crate) const FILLER: &str = " a";

/// How many filler units the tokenizer route is asked to count.
pub(crate) const FILLER_SAMPLE: usize = 1000;

/// llama-cpp-python's `POST /extras/tokenize/count` (at the server's root) for `text`: the
/// tokens the server's own tokenizer makes of it. `None` from any other server (the route
/// is llama-cpp-python's; others answer 404), which is how the server is recognised.
pub(crate) async fn llama_cpp_python_count(
    http: &reqwest::Client,
    base_url: &str,
    model: &str,
    text: &str,
) -> Option<u64> {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    let url = format!("{root}/extras/tokenize/count");
    let body = json!({"model": model, "input": text});
    let count = get_json(http.post(&url).json(&body)).await?;
    count.get("count")?.as_u64()
}

/// Ask the server at `base_url` (up to `/v1`) for `model`'s window: the window and the
/// endpoint that stated it. Failures are traced and fall through.
pub(crate) async fn ask_server(
    http: &reqwest::Client,
    base_url: &str,
    model: &str,
) -> Option<(usize, String)> {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    let models_url = format!("{base}/models");
    if let Some(models) = get_json(http.get(&models_url)).await
        && let Some(n) = window_in_models(&models, model)
    {
        return Some((n, models_url));
    }
    let props_url = format!("{root}/props");
    if let Some(props) = get_json(http.get(&props_url)).await
        && let Some(n) = window_in_props(&props)
    {
        return Some((n, props_url));
    }
    let show_url = format!("{root}/api/show");
    if let Some(show) = get_json(http.post(&show_url).json(&json!({"model": model}))).await
        && let Some((n, stated)) = window_in_ollama_show(&show)
    {
        if stated {
            return Some((n, show_url));
        }
        tracing::warn!(
            model,
            window = n,
            "Ollama states no num_ctx for the model: assuming its default context; set context_window if the server runs with a larger OLLAMA_CONTEXT_LENGTH"
        );
        return Some((n, format!("{show_url}, no num_ctx: Ollama's default")));
    }
    tracing::debug!(
        model,
        base_url,
        "the server does not state its context window"
    );
    None
}

async fn get_json(request: reqwest::RequestBuilder) -> Option<Value> {
    let response = match request.timeout(PROBE_TIMEOUT).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "context window probe failed");
            return None;
        }
    };
    let url = response.url().to_string();
    if !response.status().is_success() {
        tracing::debug!(%url, status = response.status().as_u16(), "context window probe refused");
        return None;
    }
    match response.json::<Value>().await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(%url, error = %e, "context window probe: not JSON");
            None
        }
    }
}

fn positive(v: Option<&Value>) -> Option<usize> {
    let n = v?.as_u64()?;
    (n > 0).then_some(n as usize)
}

/// `/v1/models`: the entry for `model` (or the only entry), `max_model_len` or
/// `context_length`/`max_context_length`.
pub(crate) fn window_in_models(models: &Value, model: &str) -> Option<usize> {
    let data = models.get("data")?.as_array()?;
    let entry = data
        .iter()
        .find(|m| m.get("id").and_then(Value::as_str) == Some(model))
        .or_else(|| (data.len() == 1).then(|| &data[0]))?;
    ["max_model_len", "context_length", "max_context_length"]
        .iter()
        .find_map(|k| positive(entry.get(*k)))
}

/// llama-server's `/props`.
pub(crate) fn window_in_props(props: &Value) -> Option<usize> {
    positive(props.pointer("/default_generation_settings/n_ctx"))
        .or_else(|| positive(props.get("n_ctx")))
}

/// Ollama's default context when the model sets no `num_ctx`.
const OLLAMA_DEFAULT_NUM_CTX: usize = 4096;

/// Ollama's `/api/show`: the `num_ctx` the model is served with (true: stated), else its
/// trained length capped at Ollama's default context (false).
pub(crate) fn window_in_ollama_show(show: &Value) -> Option<(usize, bool)> {
    let from_parameters = show
        .get("parameters")
        .and_then(Value::as_str)
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("num_ctx"))
                    .then(|| words.next()?.parse::<usize>().ok())
                    .flatten()
            })
        })
        .filter(|n| *n > 0);
    if let Some(n) = from_parameters {
        return Some((n, true));
    }
    let trained = show
        .get("model_info")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.ends_with(".context_length"))
        .and_then(|(_, v)| positive(Some(v)))?;
    Some((trained.min(OLLAMA_DEFAULT_NUM_CTX), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_servers_shape() {
        let vllm = json!({"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B", "object": "model", "max_model_len": 32768}]});
        assert_eq!(window_in_models(&vllm, "Qwen/Qwen2.5-7B"), Some(32768));
        assert_eq!(
            window_in_models(&vllm, "other"),
            Some(32768),
            "the only model"
        );
        let two = json!({"data": [{"id": "a", "context_length": 4096}, {"id": "b", "context_length": 8192}]});
        assert_eq!(window_in_models(&two, "b"), Some(8192));
        assert_eq!(window_in_models(&two, "c"), None);
        // llama-cpp-python: ids only.
        let lcp = json!({"object": "list", "data": [{"id": "m.gguf", "object": "model", "owned_by": "me", "permissions": []}]});
        assert_eq!(window_in_models(&lcp, "m.gguf"), None);
        assert_eq!(
            window_in_props(&json!({"default_generation_settings": {"n_ctx": 4096}})),
            Some(4096)
        );
        assert_eq!(window_in_props(&json!({"n_ctx": 0})), None);
        let ollama = json!({"parameters": "stop \"<|im_end|>\"\nnum_ctx                        16384", "model_info": {"qwen2.context_length": 32768}});
        assert_eq!(window_in_ollama_show(&ollama), Some((16384, true)));
        // No num_ctx: Ollama's default context, not the trained 128k.
        let ollama = json!({"model_info": {"general.architecture": "llama", "llama.context_length": 131072}});
        assert_eq!(window_in_ollama_show(&ollama), Some((4096, false)));
        let small = json!({"model_info": {"llama.context_length": 2048}});
        assert_eq!(window_in_ollama_show(&small), Some((2048, false)));
    }
}
