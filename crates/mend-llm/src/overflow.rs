//! Recognising "the request does not fit the context window" in the error bodies of the
//! servers mend meets, and reading the sizes they state.
//!
//! Forms seen (messages shortened):
//! - OpenAI, Azure: code `context_length_exceeded`, "This model's maximum context length
//!   is 128000 tokens. However, your messages resulted in 130000 tokens…";
//! - vLLM: "This model's maximum context length is 8192 tokens. However, you requested
//!   9000 tokens (8000 in the messages, 1000 in the completion)…" or "…your request has
//!   9000 input tokens";
//! - llama-cpp-python: the same sentence as vLLM with code `context_length_exceeded`, or
//!   "Requested tokens (9000) exceed context window of 8192";
//! - llama.cpp `llama-server`: type `exceed_context_size_error` with `n_prompt_tokens` and
//!   `n_ctx`, "the request exceeds the available context size…";
//! - Ollama: "the input length exceeds the context length";
//! - gateways: LiteLLM `ContextWindowExceededError`, OpenRouter "This endpoint's maximum
//!   context length is N tokens. However, you requested about M tokens (P of text input…",
//!   Anthropic behind a gateway "prompt is too long: P tokens > N maximum", Gemini "The
//!   input token count (P) exceeds the maximum number of tokens allowed (N)".
use serde_json::Value;

/// What an overflow error said: the prompt's tokens and the window, when stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Overflow {
    pub prompt_tokens: Option<u64>,
    pub window: Option<u64>,
}

/// `Some` when an error response (`status` not 2xx, `body` as received) is a context
/// overflow.
pub(crate) fn recognise(status: u16, body: &str) -> Option<Overflow> {
    if status < 400 {
        return None;
    }
    let json: Option<Value> = serde_json::from_str(body).ok();
    let error = json.as_ref().map(|v| v.get("error").unwrap_or(v));
    let field = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(|v| v.as_str().map(str::to_string).or(Some(v.to_string())))
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let number = |k: &str| error.and_then(|e| e.get(k)).and_then(Value::as_u64);
    let (code, kind) = (field("code"), field("type"));
    let text = body.to_ascii_lowercase();
    let by_code = ["context_length_exceeded", "exceed_context_size_error"]
        .iter()
        .any(|c| code == *c || kind == *c);
    let phrases = [
        "maximum context length",
        "context_length_exceeded",
        "contextwindowexceeded",
        "exceed context window",
        "exceeds the context window",
        "exceeds the available context size",
        "exceeds the context length",
        "exceeds the maximum context",
        "context length exceeded",
        "context window exceeded",
        "prompt is too long",
        "input token count",
        "too many tokens",
        "reduce the length of the messages",
        "n_ctx",
    ];
    if !by_code && !phrases.iter().any(|p| text.contains(p)) {
        return None;
    }
    let window = number("n_ctx")
        .or_else(|| after(&text, "maximum context length is"))
        .or_else(|| after(&text, "context window of"))
        .or_else(|| after(&text, "maximum number of tokens allowed ("))
        .or_else(|| between(&text, "tokens >", "maximum"))
        .or_else(|| after(&text, "n_ctx ="))
        .or_else(|| after(&text, "n_ctx:"));
    let prompt_tokens = number("n_prompt_tokens")
        .or_else(|| before(&text, " in the messages"))
        .or_else(|| before(&text, " of text input"))
        .or_else(|| after(&text, "your messages resulted in"))
        .or_else(|| after(&text, "your request has"))
        .or_else(|| after(&text, "requested tokens ("))
        .or_else(|| after(&text, "prompt is too long:"))
        .or_else(|| after(&text, "input token count ("));
    Some(Overflow {
        prompt_tokens,
        window,
    })
}

/// The first number right after `needle` (spaces, "about" and thousands separators allowed).
fn after(text: &str, needle: &str) -> Option<u64> {
    let rest = &text[text.find(needle)? + needle.len()..];
    let rest = rest.trim_start().trim_start_matches("about").trim_start();
    leading_number(rest)
}

/// The number that ends right before `needle`, e.g. "(8000 in the messages".
fn before(text: &str, needle: &str) -> Option<u64> {
    let head = &text[..text.find(needle)?];
    let start = head
        .rfind(|c: char| !(c.is_ascii_digit() || c == ','))
        .map_or(0, |i| i + 1);
    leading_number(&head[start..])
}

/// "prompt is too long: 210000 tokens > 200000 maximum": the number after `a`, before `b`.
fn between(text: &str, a: &str, b: &str) -> Option<u64> {
    let rest = &text[text.find(a)? + a.len()..];
    let end = rest.find(b)?;
    leading_number(rest[..end].trim())
}

fn leading_number(s: &str) -> Option<u64> {
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(p: Option<u64>, w: Option<u64>) -> Option<Overflow> {
        Some(Overflow {
            prompt_tokens: p,
            window: w,
        })
    }

    #[test]
    fn each_flavour_is_recognised_with_its_sizes() {
        let cases = [
            // OpenAI / Azure
            (
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                o(Some(130_512), Some(128_000)),
            ),
            // vLLM
            (
                r#"{"object":"error","message":"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#,
                o(Some(8000), Some(8192)),
            ),
            (
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. Please reduce the length of the input messages.","type":"BadRequestError","code":400}"#,
                o(Some(5000), Some(4096)),
            ),
            // llama-cpp-python
            (
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, you requested 12818 tokens (8000 in the messages, 4818 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                o(Some(8000), Some(8192)),
            ),
            (
                "Requested tokens (9100) exceed context window of 8192",
                o(Some(9100), Some(8192)),
            ),
            // llama.cpp llama-server
            (
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}"#,
                o(Some(9000), Some(8192)),
            ),
            // Ollama
            (
                r#"{"error":{"message":"the input length exceeds the context length","type":"api_error"}}"#,
                o(None, None),
            ),
            // LiteLLM
            (
                r#"{"error":{"message":"litellm.ContextWindowExceededError: litellm.BadRequestError: This model's maximum context length is 16385 tokens.","type":null,"code":"400"}}"#,
                o(None, Some(16_385)),
            ),
            // OpenRouter
            (
                r#"{"error":{"message":"This endpoint's maximum context length is 131,072 tokens. However, you requested about 140,000 tokens (139,000 of text input, 1,000 in the output). Please reduce the length of either one.","code":400}}"#,
                o(Some(139_000), Some(131_072)),
            ),
            // Anthropic and Gemini behind a gateway
            (
                r#"{"error":{"message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
                o(Some(210_000), Some(200_000)),
            ),
            (
                r#"{"error":{"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}"#,
                o(Some(1_200_000), Some(1_048_576)),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(recognise(400, body), want, "{body}");
        }
    }

    #[test]
    fn other_errors_are_not_overflows() {
        for body in [
            r#"{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}"#,
            r#"{"error":{"message":"The model `gpt-9` does not exist"}}"#,
            "Service Unavailable",
        ] {
            assert_eq!(recognise(400, body), None, "{body}");
        }
        let overflow = r#"{"error":{"code":"context_length_exceeded","message":"x"}}"#;
        assert_eq!(
            recognise(200, overflow),
            None,
            "a success is never an overflow"
        );
    }
}
