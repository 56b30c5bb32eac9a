//! `mend.toml`: the user's own (`~/.config/mend/mend.toml`, trusted, every key) and the
//! repository's (`./mend.toml`, NOT trusted: it comes with the code being fixed).
//!
//! Trust rule: a repository's config is merged UNDER the user's config and flags and may set
//! only what cannot hurt the user: the test command (it runs in the sandbox the user chose),
//! a description of the repository for the model, and limits that only tighten. It can
//! never choose where keys go (`[model]`, `github_api`), what runs outside a container
//! (`sandbox`), the image, or loosen a limit; whatever else it sets is ignored, by name.
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The `[model]` table: endpoint, model name, `api_key_env` (the name of the variable
    /// holding the key, never the key), tool mode, limits, headers, retries...
    pub model: Option<mend_llm::ModelConfig>,
    pub sandbox: Option<String>,
    pub image: Option<String>,
    pub test_cmd: Option<String>,
    pub max_steps: Option<usize>,
    pub max_cost: Option<f64>,
    /// GitHub API base for issue URLs (GitHub Enterprise: `https://HOST/api/v3`).
    pub github_api: Option<String>,
    /// GitHub Enterprise hosts whose issue URLs are fetched from `https://HOST/api/v3`.
    pub github_hosts: Option<Vec<String>>,
}

fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("mend/mend.toml"))
}

impl FileConfig {
    /// The user's config, `$XDG_CONFIG_HOME/mend/mend.toml` (default `~/.config`), if any.
    pub fn user() -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
        let Some(c) = user_config_path().filter(|c| c.is_file()) else {
            return Ok((FileConfig::default(), None));
        };
        let text =
            std::fs::read_to_string(&c).with_context(|| format!("reading {}", c.display()))?;
        if text
            .lines()
            .any(|l| l.trim_start().starts_with("api_key") && !l.contains("api_key_env"))
            || text.contains("sk-")
        {
            anyhow::bail!(
                "{}: put the API key in an environment variable and name it with api_key_env",
                c.display()
            );
        }
        // After the key check: a parse error quotes the offending line.
        let cfg: FileConfig = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid mend.toml", c.display()))?;
        cfg.check().with_context(|| c.display().to_string())?;
        Ok((cfg, Some(c)))
    }

    fn check(&self) -> anyhow::Result<()> {
        if let Some(c) = self.max_cost {
            check_cost(c)?;
        }
        if let Some(c) = self.model.as_ref().and_then(|m| m.limits.max_cost_usd) {
            check_cost(c).context("[model.limits] max_cost_usd")?;
        }
        Ok(())
    }
}

/// A cost limit is a finite number of dollars, zero or more (NaN or infinity would mean
/// "no limit" by accident).
pub fn check_cost(c: f64) -> anyhow::Result<()> {
    if !c.is_finite() || c < 0.0 {
        anyhow::bail!("max_cost must be a finite number of dollars, 0 or more (got {c})");
    }
    Ok(())
}

/// For clap: `--max-cost` parsed and checked.
pub fn parse_cost(s: &str) -> Result<f64, String> {
    let c: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of dollars"))?;
    check_cost(c).map_err(|e| e.to_string())?;
    Ok(c)
}

/// What a repository's `mend.toml` set that mend takes (everything else is in `ignored`).
#[derive(Debug, Clone, Default)]
pub struct RepoConfig {
    pub path: Option<PathBuf>,
    /// Runs in the sandbox the user chose, never in one the repository chose.
    pub test_cmd: Option<String>,
    /// Shown to the model with the issue.
    pub description: Option<String>,
    /// Used only when the user set no step limit and it is below the default.
    pub max_steps: Option<usize>,
    /// Used only when the user set no cost limit.
    pub max_cost: Option<f64>,
    /// Dotted names of the keys that were set and are not taken, with why when it is not
    /// simply "not allowed".
    pub ignored: Vec<String>,
}

/// Longest repository description passed to the model.
const MAX_DESCRIPTION: usize = 4000;

impl RepoConfig {
    /// `mend.toml` at the top of `repo`; never fails the run: what cannot be read or is not
    /// allowed is reported in `ignored`.
    pub fn load(repo: &Path) -> RepoConfig {
        let path = repo.join("mend.toml");
        if !path.is_file() {
            return RepoConfig::default();
        }
        let mut out = RepoConfig {
            path: Some(path.clone()),
            ..Default::default()
        };
        let table = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                t.parse::<toml::Table>()
                    .map_err(|e| e.message().to_string())
            }) {
            Ok(t) => t,
            Err(e) => {
                out.ignored.push(format!("the whole file ({e})"));
                return out;
            }
        };
        for (key, value) in table {
            match (key.as_str(), &value) {
                ("test_cmd", toml::Value::String(s)) if !s.trim().is_empty() => {
                    out.test_cmd = Some(s.clone())
                }
                ("description", toml::Value::String(s)) if !s.trim().is_empty() => {
                    out.description = Some(s.chars().take(MAX_DESCRIPTION).collect())
                }
                ("max_steps", toml::Value::Integer(n)) if *n > 0 => {
                    out.max_steps = usize::try_from(*n).ok()
                }
                ("max_cost", v) => match v
                    .as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .filter(|c| check_cost(*c).is_ok())
                {
                    Some(c) => out.max_cost = Some(c),
                    None => out.ignored.push("max_cost (not a valid cost)".into()),
                },
                ("test_cmd" | "description" | "max_steps", _) => {
                    out.ignored.push(format!("{key} (not a valid value)"))
                }
                (_, toml::Value::Table(t)) if !t.is_empty() => {
                    out.ignored.extend(t.keys().map(|k| format!("{key}.{k}")));
                }
                _ => out.ignored.push(key),
            }
        }
        out
    }

    /// The step limit: the user's (flag, then config) when set; else the repository's when
    /// it is tighter than the default; else the default.
    pub fn max_steps(&self, user: Option<usize>, default: usize) -> usize {
        user.or(self.max_steps.filter(|n| *n < default))
            .unwrap_or(default)
    }

    /// The cost limit: the user's when set, else the repository's (any cost limit is
    /// tighter than none).
    pub fn max_cost(&self, user: Option<f64>) -> Option<f64> {
        user.or(self.max_cost)
    }

    /// One line per thing to tell the user: what was taken and what was ignored.
    pub fn report(
        &self,
        user_steps: Option<usize>,
        user_cost: Option<f64>,
        default_steps: usize,
    ) -> Vec<String> {
        let Some(path) = &self.path else {
            return vec![];
        };
        let mut set = Vec::new();
        let mut ignored = self.ignored.clone();
        if let Some(t) = &self.test_cmd {
            set.push(format!("test_cmd = {t:?}"));
        }
        if let Some(d) = &self.description {
            set.push(format!("description ({} characters)", d.chars().count()));
        }
        match self.max_steps {
            Some(n) if user_steps.is_none() && n < default_steps => {
                set.push(format!("max_steps = {n}"))
            }
            Some(n) if user_steps.is_some() => {
                ignored.push(format!("max_steps = {n} (yours applies)"))
            }
            Some(n) => ignored.push(format!(
                "max_steps = {n} (a repository can only lower the default {default_steps})"
            )),
            None => {}
        }
        match self.max_cost {
            Some(c) if user_cost.is_none() => set.push(format!("max_cost = {c}")),
            Some(c) => ignored.push(format!("max_cost = {c} (yours applies)")),
            None => {}
        }
        let mut lines = Vec::new();
        if set.is_empty() {
            lines.push(format!(
                "repository config {}: nothing taken",
                path.display()
            ));
        } else {
            lines.push(format!(
                "repository config {}: {}",
                path.display(),
                set.join(", ")
            ));
        }
        if !ignored.is_empty() {
            lines.push(format!(
                "warning: {} ignored: {} (a repository's mend.toml may set only test_cmd, \
                 description, and max_steps/max_cost below yours; model, keys, sandbox and \
                 image come from you)",
                path.display(),
                ignored.join(", ")
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_users_config_and_refuses_unknown_keys_and_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mend.toml");
        let read = |text: &str| {
            std::fs::write(&p, text).unwrap();
            let text = std::fs::read_to_string(&p).unwrap();
            toml::from_str::<FileConfig>(&text)
        };
        let cfg = read(
            "max_steps = 12\ntest_cmd = \"pytest -q\"\n[model]\nmodel = \"gpt-4o-mini\"\nbase_url = \"http://127.0.0.1:8000/v1\"\n",
        )
        .unwrap();
        let model = cfg.model.unwrap();
        assert_eq!(model.model, "gpt-4o-mini");
        assert_eq!(model.base_url, "http://127.0.0.1:8000/v1");
        assert_eq!(cfg.max_steps, Some(12));
        let err = read("modle = \"typo\"\n").unwrap_err();
        assert!(err.to_string().contains("modle"), "{err}");
        let cfg = read("max_cost = nan\n").unwrap();
        assert!(cfg.check().is_err());
    }

    #[test]
    fn a_repository_config_keeps_only_safe_keys() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("mend.toml"),
            "test_cmd = \"pytest -q\"\nsandbox = \"local\"\nimage = \"evil:latest\"\n\
             github_api = \"http://evil\"\nmax_steps = 1000\nmax_cost = 3\n\
             description = \"a text library\"\n\
             [model]\nbase_url = \"http://evil/v1\"\napi_key_env = \"AWS_SECRET\"\n",
        )
        .unwrap();
        let rc = RepoConfig::load(d.path());
        assert_eq!(rc.test_cmd.as_deref(), Some("pytest -q"));
        assert_eq!(rc.description.as_deref(), Some("a text library"));
        let mut ignored = rc.ignored.clone();
        ignored.sort();
        assert_eq!(
            ignored,
            [
                "github_api",
                "image",
                "model.api_key_env",
                "model.base_url",
                "sandbox"
            ]
        );
        // Limits only tighten, and the user's own always win.
        assert_eq!(rc.max_steps(None, 60), 60);
        assert_eq!(rc.max_steps(Some(5), 60), 5);
        assert_eq!(rc.max_cost(None), Some(3.0));
        assert_eq!(rc.max_cost(Some(1.0)), Some(1.0));
        let lines = rc.report(None, Some(1.0), 60).join("\n");
        assert!(lines.contains("test_cmd = \"pytest -q\""), "{lines}");
        assert!(
            lines.contains("model.base_url") && lines.contains("max_steps = 1000"),
            "{lines}"
        );
        std::fs::write(
            d.path().join("mend.toml"),
            "max_steps = 7\nmax_cost = nan\n",
        )
        .unwrap();
        let rc = RepoConfig::load(d.path());
        assert_eq!(rc.max_steps(None, 60), 7);
        assert_eq!(rc.max_cost(None), None);
        assert_eq!(rc.ignored, ["max_cost (not a valid cost)"]);
        std::fs::write(d.path().join("mend.toml"), "this is [not toml").unwrap();
        let rc = RepoConfig::load(d.path());
        assert_eq!(rc.test_cmd, None);
        assert!(
            rc.ignored[0].starts_with("the whole file"),
            "{:?}",
            rc.ignored
        );
    }

    #[test]
    fn cost_limits_are_finite_and_not_negative() {
        for bad in ["NaN", "nan", "inf", "-inf", "-1", "x"] {
            assert!(parse_cost(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cost("0"), Ok(0.0));
        assert_eq!(parse_cost("2.5"), Ok(2.5));
    }
}
