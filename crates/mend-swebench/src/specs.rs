//! Per-repository, per-version facts: Python version, environment and install steps, test
//! command, log parser, and how test files are picked from `test_patch`.
//!
//! The built-in table (`specs.json`, compiled in) carries the facts of the official harness's
//! constants for the 12 SWE-bench Verified repositories and every version they use.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SwebenchError;
use crate::parsers::LogParser;

const BUILTIN: &str = include_str!("../specs.json");

/// File extensions the official harness drops from the test-file list (`"csv"` has no dot there too).
pub const NON_TEST_EXTS: &[&str] = &[
    ".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml",
];

/// A test command: one string, or several (the last one's output is graded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TestCmd {
    One(String),
    Many(Vec<String>),
}

impl TestCmd {
    pub fn commands(&self) -> Vec<String> {
        match self {
            TestCmd::One(s) => vec![s.clone()],
            TestCmd::Many(v) => v.clone(),
        }
    }
}

/// The spec of one repository version (field names as in the official constants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSpec {
    #[serde(default)]
    pub python: Option<String>,
    /// `"requirements.txt"`, `"environment.yml"`, or conda package names.
    #[serde(default)]
    pub packages: Option<String>,
    #[serde(default)]
    pub install: Option<String>,
    #[serde(default)]
    pub pre_install: Vec<String>,
    #[serde(default)]
    pub pip_packages: Vec<String>,
    pub test_cmd: TestCmd,
    #[serde(default)]
    pub eval_commands: Vec<String>,
    #[serde(default)]
    pub no_use_env: bool,
    #[serde(default)]
    pub execute_test_as_nonroot: bool,
    #[serde(default)]
    pub nano_cpus: Option<i64>,
    /// mend extension: commands that activate the environment in the eval script. `None`
    /// means the official images' conda lines (`source /opt/miniconda3/bin/activate`,
    /// `conda activate testbed`); images without conda give their own (or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate: Option<Vec<String>>,
}

/// A repository's entry: its log parser and its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoSpec {
    pub log_parser: LogParser,
    #[serde(default)]
    pub requirements_paths: Vec<String>,
    #[serde(default)]
    pub environment_yml_paths: Vec<String>,
    /// Django names test modules, not files: `tests/a/b.py` -> `a.b`.
    #[serde(default)]
    pub django_directives: bool,
    pub versions: BTreeMap<String, VersionSpec>,
}

/// The spec table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Specs {
    #[serde(default)]
    pub source: String,
    pub repos: BTreeMap<String, RepoSpec>,
}

impl Specs {
    /// The compiled-in table.
    pub fn builtin() -> Specs {
        // Checked by a unit test; a broken embedded file cannot ship.
        serde_json::from_str(BUILTIN)
            .unwrap_or_else(|e| panic!("the built-in specs.json is invalid: {e}"))
    }

    /// Read a table in the same JSON shape (e.g. for repositories outside Verified).
    pub fn from_json(text: &str) -> Result<Specs, SwebenchError> {
        serde_json::from_str(text).map_err(|e| SwebenchError::Invalid(format!("specs file: {e}")))
    }

    /// Add or replace repositories from another table.
    pub fn merge(&mut self, other: Specs) {
        self.repos.extend(other.repos);
    }

    pub fn repo(&self, repo: &str) -> Option<&RepoSpec> {
        self.repos.get(repo)
    }

    pub fn get(&self, repo: &str, version: &str) -> Result<&VersionSpec, SwebenchError> {
        let no_spec = |known: String| SwebenchError::NoSpec {
            repo: repo.into(),
            version: version.into(),
            known,
        };
        let r = self
            .repos
            .get(repo)
            .ok_or_else(|| no_spec("none: the repository is unknown".into()))?;
        r.versions
            .get(version)
            .ok_or_else(|| no_spec(r.versions.keys().cloned().collect::<Vec<_>>().join(", ")))
    }
}

/// Files a patch modifies that existed before it (the official `get_modified_files`):
/// the `--- a/...` side of each file, new files (`--- /dev/null`) left out.
pub fn modified_files(patch: &str) -> Vec<String> {
    let lines: Vec<&str> = patch.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(src) = line.strip_prefix("--- ") else {
            continue;
        };
        // A header is followed by its `+++` line; a removed line `-- x` is not.
        if !lines.get(i + 1).is_some_and(|n| n.starts_with("+++ ")) {
            continue;
        }
        let src = src.split('\t').next().unwrap_or("").trim_end();
        if let Some(p) = src.strip_prefix("a/")
            && !out.iter().any(|o| o == p)
        {
            out.push(p.to_string());
        }
    }
    out
}

/// Test directives from `test_patch` (the official `get_test_directives`): the `b/` path of
/// every `diff --git` header, non-test extensions dropped, Django paths turned into modules.
pub fn test_directives(test_patch: &str, django: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in test_patch.lines() {
        let Some(rest) = line.strip_prefix("diff --git a/") else {
            continue;
        };
        // Greedy like the official regex `diff --git a/.* b/(.*)`: the last " b/".
        let Some(i) = rest.rfind(" b/") else { continue };
        let d = &rest[i + 3..];
        if NON_TEST_EXTS.iter().any(|ext| d.ends_with(ext)) {
            continue;
        }
        let d = if django {
            let d = d.strip_suffix(".py").unwrap_or(d);
            let d = d.strip_prefix("tests/").unwrap_or(d);
            d.replace('/', ".")
        } else {
            d.to_string()
        };
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_covers_the_verified_repos_and_versions() {
        let s = Specs::builtin();
        assert_eq!(s.repos.len(), 12);
        // Versions of the Verified instances on this machine's metadata, by repo.
        let want: &[(&str, &[&str])] = &[
            (
                "astropy/astropy",
                &["1.3", "3.1", "5.0", "5.1", "4.3", "5.2"],
            ),
            (
                "django/django",
                &[
                    "1.11", "2.2", "3.0", "3.1", "3.2", "4.0", "4.1", "4.2", "5.0",
                ],
            ),
            (
                "matplotlib/matplotlib",
                &["3.1", "3.4", "3.5", "3.6", "3.7"],
            ),
            ("mwaskom/seaborn", &["0.12"]),
            ("pallets/flask", &["2.3"]),
            (
                "psf/requests",
                &["2.0", "2.27", "2.3", "0.14", "1.2", "2.10"],
            ),
            ("pydata/xarray", &["0.12", "2022.03", "2022.09", "2022.06"]),
            ("pylint-dev/pylint", &["2.14", "2.15", "2.9", "2.13", "3.0"]),
            (
                "pytest-dev/pytest",
                &["4.5", "5.1", "5.2", "5.4", "6.0", "7.2", "5.0", "8.0"],
            ),
            (
                "scikit-learn/scikit-learn",
                &["0.20", "0.21", "0.22", "1.3"],
            ),
            (
                "sphinx-doc/sphinx",
                &[
                    "3.0", "3.1", "3.2", "3.4", "3.5", "4.1", "4.2", "4.3", "5.0", "5.1", "5.2",
                    "7.2",
                ],
            ),
            (
                "sympy/sympy",
                &[
                    "1.1", "1.10", "1.11", "1.12", "1.2", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9",
                    "1.0", "1.13",
                ],
            ),
        ];
        for (repo, versions) in want {
            for v in *versions {
                assert!(s.get(repo, v).is_ok(), "{repo} {v}");
            }
        }
        let dj = s.get("django/django", "3.0").unwrap();
        assert_eq!(
            dj.test_cmd,
            TestCmd::One(
                "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1".into()
            )
        );
        assert_eq!(dj.python.as_deref(), Some("3.6"));
        assert!(dj.eval_commands.iter().any(|c| c.contains("locale-gen")));
        assert_eq!(s.repo("sympy/sympy").unwrap().log_parser, LogParser::Sympy);
        assert_eq!(
            s.repo("django/django").unwrap().log_parser,
            LogParser::Django
        );
        let e = s.get("django/django", "0.1").unwrap_err().to_string();
        assert!(e.contains("known versions") && e.contains("3.0"), "{e}");
        assert!(s.get("nobody/nothing", "1").is_err());
    }

    #[test]
    fn every_verified_version_in_the_shared_metadata_has_a_spec() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/data/swe-bench-verified.dev.meta.jsonl"))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("shared/data not found beside the checkout: this test needs the project's shared SWE-bench records"));
        let text = std::fs::read_to_string(&path).unwrap();
        let s = Specs::builtin();
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (repo, version) = (v["repo"].as_str().unwrap(), v["version"].as_str().unwrap());
            assert!(s.get(repo, version).is_ok(), "{repo} {version}");
            n += 1;
        }
        assert_eq!(n, 252);
    }

    #[test]
    fn directives_and_modified_files_follow_the_official_rules() {
        let tp = "diff --git a/tests/forms_tests/tests/test_x.py b/tests/forms_tests/tests/test_x.py\n--- a/tests/forms_tests/tests/test_x.py\n+++ b/tests/forms_tests/tests/test_x.py\n@@ -1 +1 @@\n--- a comment line that is not a header\n+x\ndiff --git a/tests/data.json b/tests/data.json\nnew file mode 100644\n--- /dev/null\n+++ b/tests/data.json\n@@ -0,0 +1 @@\n+{}\ndiff --git a/tests/new_test.py b/tests/new_test.py\n--- /dev/null\n+++ b/tests/new_test.py\n@@ -0,0 +1 @@\n+x\n";
        assert_eq!(
            test_directives(tp, true),
            vec!["forms_tests.tests.test_x", "new_test"]
        );
        assert_eq!(
            test_directives(tp, false),
            vec!["tests/forms_tests/tests/test_x.py", "tests/new_test.py"]
        );
        assert_eq!(
            modified_files(tp),
            vec!["tests/forms_tests/tests/test_x.py"]
        );
    }
}
