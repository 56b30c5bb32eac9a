//! Choosing the model from flags, `mend.toml` and the environment: an OpenAI-compatible
//! endpoint, or a recorded run replayed.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use mend_llm::{Ledger, Limits, Model, ModelConfig, OpenAiCompatible, ReplayModel, ToolMode};

/// Where the model is. Flags win over `mend.toml`'s `[model]` table.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Model name, as the endpoint knows it (default gpt-4o).
    #[arg(long, env = "MEND_MODEL")]
    pub model: Option<String>,
    /// OpenAI-compatible endpoint up to /v1: OpenAI, Azure, a gateway, vLLM
    /// (http://127.0.0.1:8000/v1), Ollama (http://127.0.0.1:11434/v1), llama.cpp, LM Studio.
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub base_url: Option<String>,
    /// Name of the environment variable that holds the API key (default OPENAI_API_KEY when
    /// it is set; local servers need none). The key itself never goes on the command line.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// `native` tool calls, or `text` actions for models and servers without them.
    #[arg(long, value_parser = ["native", "text"])]
    pub tool_mode: Option<String>,
    /// Seconds to wait for each model reply before retrying (default 300; `timeout_secs`
    /// in mend.toml). A progress line is printed every 15 s while a reply is slow.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Replay a recorded trajectory instead of calling a model (demos, regression tests).
    #[arg(long, value_name = "TRAJECTORY", conflicts_with_all = ["model", "base_url", "api_key_env", "tool_mode", "timeout"])]
    pub replay: Option<PathBuf>,
}

/// The model config after flags and file are merged (for the batch runner to clone per run).
pub fn config(args: &ModelArgs, file: Option<&ModelConfig>) -> anyhow::Result<ModelConfig> {
    let mut cfg = file.cloned().unwrap_or_default();
    if let Some(m) = &args.model {
        cfg.model = m.clone();
    }
    if let Some(u) = &args.base_url {
        cfg.base_url = u.clone();
    }
    if let Some(k) = &args.api_key_env {
        cfg.api_key_env = Some(k.clone());
    }
    if let Some(t) = args.timeout {
        if !(t.is_finite() && t > 0.0) {
            bail!("--timeout must be a positive number of seconds, got {t}");
        }
        cfg.timeout_secs = t;
    }
    if let Some(t) = &args.tool_mode {
        cfg.tool_mode = if t == "text" {
            ToolMode::Text
        } else {
            ToolMode::Native
        };
    }
    if cfg.api_key_env.is_none() {
        let have_openai_key = std::env::var("OPENAI_API_KEY").is_ok_and(|k| !k.trim().is_empty());
        if have_openai_key {
            cfg.api_key_env = Some("OPENAI_API_KEY".into());
        } else if cfg.base_url.contains("api.openai.com") {
            bail!(
                "no API key: set OPENAI_API_KEY (or name another variable with --api-key-env), \
                 or point --base-url at a local server; --replay runs a recorded trajectory"
            );
        }
    }
    Ok(cfg)
}

/// The models of several independent attempts at one task: the same endpoint (or
/// recording), one shared budget, each attempt its own temperature and seed.
pub struct AttemptModels {
    source: Source,
    ledger: Arc<Ledger>,
    temperature: Option<f32>,
}

enum Source {
    /// Attempt k replays recording k (the last one again when there are fewer).
    Replay(Vec<mend_llm::Recording>),
    Live(OpenAiCompatible),
}

impl AttemptModels {
    /// `replays`: one recording per attempt (demos); else `--replay` or the endpoint.
    pub async fn build(
        args: &ModelArgs,
        file: Option<&ModelConfig>,
        limits: Limits,
        replays: &[PathBuf],
    ) -> anyhow::Result<AttemptModels> {
        let ledger = Ledger::new("run", limits);
        let paths: Vec<PathBuf> = if replays.is_empty() {
            args.replay.iter().cloned().collect()
        } else {
            replays.to_vec()
        };
        if !paths.is_empty() {
            let recs = paths
                .iter()
                .map(|p| {
                    mend_llm::Recording::load(p)
                        .with_context(|| format!("loading the recording {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            return Ok(AttemptModels {
                source: Source::Replay(recs),
                ledger,
                temperature: None,
            });
        }
        let cfg = config(args, file)?;
        let ledger = Ledger::new("run", merge_limits(cfg.limits, limits));
        let temperature = cfg.temperature;
        let model = connect(cfg).await?;
        Ok(AttemptModels {
            source: Source::Live(model),
            ledger,
            temperature,
        })
    }

    /// The model of attempt `k`; `vary`: its own temperature and seed (else as configured).
    /// Returns the model with the temperature and seed it samples at.
    pub fn get(&self, k: usize, vary: bool) -> (Arc<dyn Model>, Option<f32>, Option<i64>) {
        let ledger = self
            .ledger
            .child(format!("attempt {}", k + 1), Limits::default());
        let (t, seed) = if vary {
            mend_agent::candidates::attempt_sampling(k, self.temperature)
        } else {
            (self.temperature, None)
        };
        match &self.source {
            Source::Replay(recs) => {
                let rec = recs[k.min(recs.len() - 1)].clone();
                (
                    Arc::new(ReplayModel::new(rec).with_ledger(ledger)),
                    None,
                    None,
                )
            }
            Source::Live(m) => {
                let m = if vary {
                    m.with_ledger(ledger).with_sampling(t, seed)
                } else {
                    m.with_ledger(ledger)
                };
                (Arc::new(m), t, seed)
            }
        }
    }

    /// Whether the shared budget allows another call.
    pub fn budget_left(&self) -> bool {
        self.ledger.check().is_ok()
    }
}

/// The endpoint's client, its waits printed, its context window learned and printed.
pub async fn connect(cfg: ModelConfig) -> anyhow::Result<OpenAiCompatible> {
    let model = OpenAiCompatible::new(cfg)?.on_progress(|w| eprintln!("{w}"));
    let source = model.discover_context().await;
    eprintln!(
        "context window: {} tokens, {source}",
        model.context_window()
    );
    Ok(model)
}

/// Flags' limits over the file's.
pub fn merge_limits(file: Limits, flags: Limits) -> Limits {
    Limits {
        max_cost_usd: flags.max_cost_usd.or(file.max_cost_usd),
        max_calls: flags.max_calls.or(file.max_calls),
        max_tokens: flags.max_tokens.or(file.max_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file() {
        let file = ModelConfig {
            model: "from-file".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            ..Default::default()
        };
        let args = ModelArgs {
            model: Some("from-flag".into()),
            tool_mode: Some("text".into()),
            ..Default::default()
        };
        let cfg = config(&args, Some(&file)).unwrap();
        assert_eq!(cfg.model, "from-flag");
        assert_eq!(cfg.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(cfg.tool_mode, ToolMode::Text);
        let l = merge_limits(
            Limits {
                max_cost_usd: Some(1.0),
                max_calls: Some(5),
                max_tokens: None,
            },
            Limits {
                max_cost_usd: Some(0.5),
                ..Default::default()
            },
        );
        assert_eq!((l.max_cost_usd, l.max_calls), (Some(0.5), Some(5)));
    }
}
