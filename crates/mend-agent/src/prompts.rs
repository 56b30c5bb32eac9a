//! Prompt templates from `prompts/` (compiled in; a directory can override them), rendered
//! with minijinja. A run records each template's name, declared version and content hash.
use std::path::Path;

use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

const BUILTIN: &[(&str, &str)] = &[
    (
        "system.md.j2",
        include_str!("../../../prompts/system.md.j2"),
    ),
    (
        "instance.md.j2",
        include_str!("../../../prompts/instance.md.j2"),
    ),
    (
        "test_feedback.md.j2",
        include_str!("../../../prompts/test_feedback.md.j2"),
    ),
    (
        "format_error.md.j2",
        include_str!("../../../prompts/format_error.md.j2"),
    ),
    (
        "loop_nudge.md.j2",
        include_str!("../../../prompts/loop_nudge.md.j2"),
    ),
    (
        "summarize.md.j2",
        include_str!("../../../prompts/summarize.md.j2"),
    ),
    (
        "summary.md.j2",
        include_str!("../../../prompts/summary.md.j2"),
    ),
    (
        "regression_feedback.md.j2",
        include_str!("../../../prompts/regression_feedback.md.j2"),
    ),
    (
        "review.md.j2",
        include_str!("../../../prompts/review.md.j2"),
    ),
    ("tools.toml", include_str!("../../../prompts/tools.toml")),
];

/// Which template a run used.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct TemplateVersion {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt template {name}: {message}")]
    Template { name: String, message: String },
    #[error("reading prompt override {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Prompts {
    env: Environment<'static>,
    sources: Vec<(String, String)>,
}

impl Prompts {
    /// The templates compiled into mend.
    pub fn builtin() -> Result<Prompts, PromptError> {
        Self::from_sources(
            BUILTIN
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        )
    }

    /// The built-in templates, with any file of the same name in `dir` taking precedence.
    pub fn with_overrides(dir: &Path) -> Result<Prompts, PromptError> {
        let mut sources: Vec<(String, String)> = Vec::new();
        for (name, text) in BUILTIN {
            let p = dir.join(name);
            let text = if p.exists() {
                std::fs::read_to_string(&p).map_err(|source| PromptError::Read {
                    path: p.display().to_string(),
                    source,
                })?
            } else {
                text.to_string()
            };
            sources.push((name.to_string(), text));
        }
        Self::from_sources(sources)
    }

    fn from_sources(sources: Vec<(String, String)>) -> Result<Prompts, PromptError> {
        let mut env = Environment::new();
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        for (name, text) in &sources {
            if name.ends_with(".j2") {
                env.add_template_owned(name.clone(), text.clone())
                    .map_err(|e| PromptError::Template {
                        name: name.clone(),
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(Prompts { env, sources })
    }

    pub fn render<S: Serialize>(&self, name: &str, ctx: S) -> Result<String, PromptError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| PromptError::Template {
                name: name.into(),
                message: e.to_string(),
            })?;
        t.render(minijinja::value::Serde(&ctx))
            .map(|s| s.trim().to_string())
            .map_err(|e| PromptError::Template {
                name: name.into(),
                message: format!("{e:#}"),
            })
    }

    /// The raw text of a non-template prompt file (e.g. `tools.toml`).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_str())
    }

    pub fn versions(&self) -> Vec<TemplateVersion> {
        self.sources
            .iter()
            .map(|(name, text)| {
                let version = text
                    .lines()
                    .find_map(|l| {
                        l.split_once("version:")
                            .map(|(_, v)| v.trim().trim_end_matches("-#}").trim().to_string())
                    })
                    .unwrap_or_else(|| "unversioned".into());
                let sha: String = Sha256::digest(text.as_bytes())
                    .iter()
                    .take(6)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                TemplateVersion {
                    name: name.clone(),
                    version,
                    sha256: sha,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_render_and_are_versioned() {
        let p = Prompts::builtin().unwrap();
        let s = p.render("system.md.j2", minijinja::context! { root => "/repo", network => false, text_actions => false, tools => Vec::<String>::new() }).unwrap();
        assert!(s.contains("/repo") && s.contains("no network"));
        let v = p.versions();
        assert!(v.iter().all(|t| t.version.parse::<u32>().is_ok()), "{v:?}");
        assert!(
            v.iter()
                .any(|t| t.name == "instance.md.j2" && t.version == "3"),
            "{v:?}"
        );
        assert!(p.raw("tools.toml").unwrap().contains("[bash]"));
    }

    #[test]
    fn overrides_replace_by_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("loop_nudge.md.j2"),
            "{#- version: 7 -#}\nstop repeating {{ times }}",
        )
        .unwrap();
        let p = Prompts::with_overrides(d.path()).unwrap();
        assert_eq!(
            p.render("loop_nudge.md.j2", minijinja::context! { times => 3 })
                .unwrap(),
            "stop repeating 3"
        );
        assert!(
            p.versions()
                .iter()
                .any(|t| t.name == "loop_nudge.md.j2" && t.version == "7")
        );
    }
}
