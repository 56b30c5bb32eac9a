//! Self-verification by running things: the agent's reproduction of the issue (run on the
//! base commit and on the patch), and a regression guard (the existing tests most related
//! to the change, run before and after it). Shared by the agent loop and by best-of-N
//! selection, so every function here works on any sandbox in any state.
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mend_index::Index;
use mend_sandbox::{Exec, Sandbox, SandboxError, Termination};
use serde::{Deserialize, Serialize};

use crate::condense::condense_test_output;

/// Where the agent writes its reproduction (repository root). The prompts ask for it by this
/// name; `scratch` leaves it out of the patch.
pub const REPRO_FILE: &str = "reproduce_issue.py";

/// The agent's reproduction script: exits 0 once the issue is fixed, non-zero while it
/// still reproduces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reproduction {
    /// Relative to the repository root.
    pub path: String,
    pub content: String,
}

impl Reproduction {
    /// The reproduction the agent wrote in this sandbox, if any (`None` when the file is
    /// absent, empty or not text).
    pub async fn find(sb: &dyn Sandbox) -> Result<Option<Reproduction>, SandboxError> {
        match sb.read_file(REPRO_FILE).await {
            Ok(bytes) => Ok(String::from_utf8(bytes)
                .ok()
                .filter(|c| !c.trim().is_empty())
                .map(|content| Reproduction {
                    path: REPRO_FILE.into(),
                    content,
                })),
            Err(SandboxError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What running a reproduction said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReproOutcome {
    /// Exit 0: the issue no longer shows.
    Fixed,
    /// A non-zero exit: the issue shows.
    Reproduces,
    /// Killed at the timeout (or out of memory): no verdict.
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproRun {
    pub outcome: ReproOutcome,
    pub exit_code: Option<i32>,
    /// The end of its output (stdout then stderr), at most ~2,000 characters.
    pub output: String,
    pub ms: u64,
}

/// Run `repro` in `sb` as it is now: the script is written at its path (whatever was there
/// is put back after, a file that was not there is removed) and run with the sandbox's
/// Python from the repository root.
pub async fn run_reproduction(
    sb: &dyn Sandbox,
    repro: &Reproduction,
    timeout: Duration,
) -> Result<ReproRun, SandboxError> {
    let before = match sb.read_file(&repro.path).await {
        Ok(b) => Some(b),
        Err(SandboxError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    if before.as_deref() != Some(repro.content.as_bytes()) {
        sb.write_file(&repro.path, repro.content.as_bytes()).await?;
    }
    let t0 = Instant::now();
    let script = "PY=$(command -v python || command -v python3); exec \"$PY\" \"$1\"";
    let out = sb
        .exec(
            &Exec::new(["sh", "-c", script, "sh", &repro.path])
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .timeout(timeout)
                .output_cap(1 << 20),
        )
        .await;
    // Put the file back as it was before reading the result: a failed exec must not leave
    // a stray script in a candidate's tree.
    let restore = match &before {
        Some(b) if b.as_slice() != repro.content.as_bytes() => sb.write_file(&repro.path, b).await,
        Some(_) => Ok(()),
        None => remove(sb, &repro.path).await,
    };
    let out = out?;
    restore?;
    let outcome = match out.termination {
        Termination::Exited(0) => ReproOutcome::Fixed,
        // A crash (segfault, abort) is the issue showing too.
        Termination::Exited(_) | Termination::Signal(_) => ReproOutcome::Reproduces,
        Termination::TimedOut | Termination::OutOfMemory => ReproOutcome::TimedOut,
    };
    let all = format!("{}\n{}", out.stdout.text(), out.stderr.text());
    Ok(ReproRun {
        outcome,
        exit_code: out.exit_code(),
        output: tail(all.trim(), 2_000),
        ms: t0.elapsed().as_millis() as u64,
    })
}

async fn remove(sb: &dyn Sandbox, path: &str) -> Result<(), SandboxError> {
    let out = sb.exec(&Exec::new(["rm", "-f", "--", path])).await?;
    if out.success() {
        Ok(())
    } else {
        Err(SandboxError::Engine {
            action: format!("removing {path}"),
            message: out.stderr.text(),
        })
    }
}

/// A test's status as the guard compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestVerdict {
    /// Passed (or failed as expected: xfail).
    Passed,
    /// Failed or errored.
    Failed,
    Skipped,
}

/// How a repository's tests run by file and read back by test. Implementations live
/// where the log parsers are (mend-swebench): pytest, Django's runner, sympy's.
pub trait TestSuite: Send + Sync + std::fmt::Debug {
    /// The shell command that runs these test files (repository-relative paths).
    fn command(&self, files: &[String]) -> String;
    /// The shell command that runs the whole suite (the repository's own test command).
    fn full_command(&self) -> String;
    /// Each test's verdict from a command's output.
    fn parse(&self, log: &str) -> BTreeMap<String, TestVerdict>;
}

/// A test file chosen for the guard, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelatedTest {
    pub path: String,
    pub score: u32,
    pub why: String,
}

/// The existing tests chosen to guard a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegressionSet {
    pub files: Vec<RelatedTest>,
    /// The changed modules and symbols the choice was made from.
    pub changed: Vec<String>,
}

impl RegressionSet {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    pub fn paths(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
}

/// One run of a set of tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionRun {
    pub command: String,
    /// Test id (as the suite's parser names it) -> verdict.
    pub tests: BTreeMap<String, TestVerdict>,
    /// The run was cut at its timeout: tests missing from it say nothing.
    pub timed_out: bool,
    /// The failures of the run, condensed for the model.
    pub condensed: String,
    pub ms: u64,
}

impl RegressionRun {
    pub fn failing(&self) -> BTreeSet<String> {
        self.tests
            .iter()
            .filter(|(_, v)| **v == TestVerdict::Failed)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The test files most related to `patch` (a git diff against the commit `index` was built
/// at): test files that import a changed module or name a changed function or class, or
/// are named after a changed file. At most `max_files`, best first.
pub fn related_tests(index: &Index, patch: &str, max_files: usize) -> RegressionSet {
    let changes = changed_lines(patch);
    let mut modules: Vec<(String, String)> = Vec::new(); // (module, file stem)
    let mut symbols: BTreeSet<String> = BTreeSet::new();
    let mut changed_files: BTreeSet<&str> = BTreeSet::new();
    for (path, lines) in &changes {
        let Some(info) = index.file(path) else {
            continue;
        };
        if info.is_test {
            continue;
        }
        changed_files.insert(path.as_str());
        let stem = path
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".py")
            .to_string();
        if !info.module.is_empty() {
            modules.push((info.module.clone(), stem));
        }
        for &line in lines {
            let mut unit = index.enclosing_unit(path, line);
            while let Some(s) = unit {
                // Dunder methods are too common a name to say anything.
                if !s.name.starts_with("__") {
                    symbols.insert(s.name.clone());
                }
                unit = s.parent.map(|p| &index.symbols()[p]);
            }
        }
    }
    let mut scored: Vec<RelatedTest> = Vec::new();
    for f in index.files() {
        if !f.is_test || f.language != "python" || changed_files.contains(f.path.as_str()) {
            continue;
        }
        let mut score = 0u32;
        let mut why: Vec<String> = Vec::new();
        let imports = index.imports_in(&f.path);
        for (m, stem) in &modules {
            let direct = imports.iter().any(|i| {
                let im = absolute(&i.module, &f.module);
                im == *m
                    || i.names.iter().any(|n| format!("{im}.{n}") == *m)
                    || (m.starts_with(&format!("{im}."))
                        && i.names.iter().any(|n| n == "*" || symbols.contains(n)))
            });
            if direct {
                score += 4;
                why.push(format!("imports {m}"));
            }
            let name = f.path.rsplit('/').next().unwrap_or("");
            if name == format!("test_{stem}.py") || name == format!("{stem}_test.py") {
                score += 3;
                why.push(format!("named after {stem}.py"));
            }
        }
        let refs = index.references_in(&f.path);
        let named: BTreeSet<&str> = refs
            .iter()
            .filter(|r| symbols.contains(&r.name))
            .map(|r| r.name.as_str())
            .chain(
                imports
                    .iter()
                    .flat_map(|i| i.names.iter())
                    .filter(|n| symbols.contains(*n))
                    .map(String::as_str),
            )
            .collect();
        if !named.is_empty() {
            score += 2 * named.len().min(4) as u32;
            why.push(format!(
                "names {}",
                named.into_iter().take(4).collect::<Vec<_>>().join(", ")
            ));
        }
        if score > 0 {
            scored.push(RelatedTest {
                path: f.path.clone(),
                score,
                why: why.join("; "),
            });
        }
    }
    scored.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
    scored.truncate(max_files);
    RegressionSet {
        files: scored,
        changed: modules.into_iter().map(|(m, _)| m).chain(symbols).collect(),
    }
}

/// A relative import (`.stats`, `..core`) made absolute from the importing module.
fn absolute(module: &str, from: &str) -> String {
    let dots = module.chars().take_while(|c| *c == '.').count();
    if dots == 0 {
        return module.to_string();
    }
    let mut parts: Vec<&str> = from.split('.').collect();
    // `from` is the importing module itself: one dot means its package.
    for _ in 0..dots {
        parts.pop();
    }
    let rest = &module[dots..];
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.join(".")
}

/// Per file of a git diff, the old-side lines it touches (a pure insertion touches the line
/// it follows). New files touch nothing old and are left out.
fn changed_lines(patch: &str) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    let mut old_line = 0u32;
    let mut in_hunk = false;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            in_hunk = false;
            let path = rest
                .rsplit_once(" b/")
                .map(|(a, _)| a.trim_start_matches("a/").trim_matches('"').to_string())
                .unwrap_or_default();
            out.push((path, vec![]));
        } else if line.starts_with("--- /dev/null") && !in_hunk {
            // A new file: nothing old to point at (its hunks are skipped below).
            if let Some(last) = out.last_mut() {
                last.0.clear();
            }
        } else if let Some(h) = line.strip_prefix("@@ -") {
            in_hunk = out.last().is_some_and(|(p, _)| !p.is_empty());
            old_line = h
                .split([',', ' '])
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
        } else if in_hunk && let Some((_, lines)) = out.last_mut() {
            match line.as_bytes().first() {
                Some(b'-') => {
                    lines.push(old_line);
                    old_line += 1;
                }
                Some(b'+') => lines.push(old_line.saturating_sub(1).max(1)),
                Some(b' ') => old_line += 1,
                _ => {}
            }
        }
    }
    out.retain(|(p, l)| !p.is_empty() && !l.is_empty());
    out
}

/// Run the set's test files in `sb` as it is now, within `timeout`.
pub async fn run_regression(
    sb: &dyn Sandbox,
    suite: &dyn TestSuite,
    set: &RegressionSet,
    timeout: Duration,
) -> Result<RegressionRun, SandboxError> {
    run_command(sb, suite, &suite.command(&set.paths()), timeout).await
}

/// Run a suite command in `sb` and read each test's verdict.
pub async fn run_command(
    sb: &dyn Sandbox,
    suite: &dyn TestSuite,
    command: &str,
    timeout: Duration,
) -> Result<RegressionRun, SandboxError> {
    let t0 = Instant::now();
    let out = sb
        .exec(
            &Exec::new(["bash", "-c", command])
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .timeout(timeout)
                .output_cap(8 << 20),
        )
        .await?;
    let all = format!("{}\n{}", out.stdout.text(), out.stderr.text());
    Ok(RegressionRun {
        command: command.to_string(),
        tests: suite.parse(&all),
        timed_out: !matches!(out.termination, Termination::Exited(_)),
        condensed: condense_test_output(&all, 6_000),
        ms: t0.elapsed().as_millis() as u64,
    })
}

/// Tests that passed in `base` and fail in `after` (or are missing from it, when `after`
/// ran to the end: a module that no longer imports takes its tests with it).
pub fn regressions(base: &RegressionRun, after: &RegressionRun) -> Vec<String> {
    base.tests
        .iter()
        .filter(|(_, v)| **v == TestVerdict::Passed)
        .filter(|(k, _)| match after.tests.get(*k) {
            Some(v) => *v == TestVerdict::Failed,
            None => !after.timed_out,
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Run `f` with `patch` taken out of the sandbox's tree (reverse-applied), then put it
/// back, so the sandbox shows the base commit (plus whatever the patch leaves out, such as
/// the reproduction). An error putting it back is returned over `f`'s result.
pub async fn on_base<T, F, Fut>(sb: &dyn Sandbox, patch: &str, f: F) -> Result<T, SandboxError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    if patch.trim().is_empty() {
        return Ok(f().await);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let file = format!("/tmp/.mend-verify-{}-{nanos}.patch", std::process::id());
    // Outside the repository, so through a shell (the file API stays under the root).
    let put = sb
        .exec(
            &Exec::new(["sh", "-c", "cat > \"$1\"", "sh", &file]).stdin(patch.as_bytes().to_vec()),
        )
        .await?;
    if !put.success() {
        return Err(SandboxError::Engine {
            action: "writing the patch to take it out".into(),
            message: put.stderr.text(),
        });
    }
    git_apply(sb, &file, true).await?;
    let result = f().await;
    let back = git_apply(sb, &file, false).await;
    let _ = sb.exec(&Exec::new(["rm", "-f", "--", &file])).await;
    back?;
    Ok(result)
}

async fn git_apply(sb: &dyn Sandbox, file: &str, reverse: bool) -> Result<(), SandboxError> {
    let mut argv = vec![
        "git",
        "-c",
        "safe.directory=*",
        "apply",
        "--whitespace=nowarn",
    ];
    if reverse {
        argv.push("-R");
    }
    argv.push(file);
    let out = sb
        .exec(&Exec::new(argv).timeout(Duration::from_secs(120)))
        .await?;
    if out.success() {
        Ok(())
    } else {
        Err(SandboxError::Engine {
            action: if reverse {
                "taking the patch out to run on the base commit".into()
            } else {
                "putting the patch back after the base-commit run".into()
            },
            message: out.stderr.text(),
        })
    }
}

/// The last `max` characters of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut i = text.len() - max;
    while !text.is_char_boundary(i) {
        i += 1;
    }
    format!("[...]\n{}", &text[i..])
}

/// Which checks the agent makes at `submit`.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Ask for `reproduce_issue.py` and run it on the base commit and on the patch.
    pub reproduce: bool,
    /// The repository's tests read test by test: enables the regression guard and the
    /// discount of tests that fail on the base commit too. `None`: neither.
    pub suite: Option<Arc<dyn TestSuite>>,
    /// Most test files the guard runs.
    pub guard_files: usize,
    /// Time allowed for one run of the guard's tests (base and candidate each).
    pub guard_timeout: Duration,
    pub repro_timeout: Duration,
    /// Once the checks pass, show the whole diff beside the issue for one round.
    pub review: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            reproduce: true,
            suite: None,
            guard_files: 8,
            guard_timeout: Duration::from_secs(300),
            repro_timeout: Duration::from_secs(60),
            review: false,
        }
    }
}

/// What the agent's checks found, for the trajectory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The reproduction as last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduction: Option<Reproduction>,
    /// The reproduction on the base commit (without the patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_base: Option<ReproRun>,
    /// The reproduction on the final patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro_final: Option<ReproRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression_set: Option<RegressionSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression_base: Option<RegressionRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression_final: Option<RegressionRun>,
    /// Regressions of the final patch (passed on the base commit, fail with the patch).
    #[serde(default)]
    pub regressions: Vec<String>,
    /// Each check made at a `submit`, in order.
    #[serde(default)]
    pub checks: Vec<SubmitCheck>,
    /// Tests of the repository's test command that fail on the base commit too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preexisting_failures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// Time spent on the checks (not counting the repository's test command).
    pub ms: u64,
}

/// What one `submit` was checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitCheck {
    pub step: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro: Option<ReproOutcome>,
    pub regressions: Vec<String>,
    /// The failing tests of the test command all failed on the base commit too.
    #[serde(default)]
    pub only_preexisting_failures: bool,
    /// What mend did: `accepted`, `repair` (shown to the model), `review`.
    pub decision: String,
}

/// The review round: the whole diff shown beside the issue once the checks passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub step: usize,
    /// `confirmed` (submitted again unchanged) or `revised` (changed the patch first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_follow_the_old_side() {
        let patch = "diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ b/pkg/a.py\n@@ -10,3 +10,3 @@ def f():\n     x = 1\n-    y = 2\n+    y = 3\n     z = 4\ndiff --git a/new.py b/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+x\n";
        assert_eq!(
            changed_lines(patch),
            vec![("pkg/a.py".into(), vec![11, 11])]
        );
    }

    #[test]
    fn relative_imports_resolve_from_the_importing_module() {
        assert_eq!(absolute(".stats", "pkg.tests.test_x"), "pkg.tests.stats");
        assert_eq!(absolute("..core", "pkg.tests.test_x"), "pkg.core");
        assert_eq!(absolute("pkg.core", "whatever"), "pkg.core");
    }

    fn run(tests: &[(&str, TestVerdict)], timed_out: bool) -> RegressionRun {
        RegressionRun {
            command: "t".into(),
            tests: tests.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            timed_out,
            condensed: String::new(),
            ms: 0,
        }
    }

    #[test]
    fn a_regression_passed_before_and_fails_or_vanishes_after() {
        use TestVerdict::*;
        let base = run(
            &[("a", Passed), ("b", Failed), ("c", Passed), ("d", Passed)],
            false,
        );
        let after = run(&[("a", Failed), ("b", Failed), ("c", Passed)], false);
        assert_eq!(regressions(&base, &after), vec!["a", "d"]);
        // A run cut at its timeout says nothing of the tests it did not reach.
        let cut = run(&[("a", Passed)], true);
        assert!(regressions(&base, &cut).is_empty());
    }

    #[test]
    fn related_tests_import_the_changed_module_or_name_its_symbols() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w("pkg/__init__.py", "from .stats import word_count\n");
        w(
            "pkg/stats.py",
            "def word_count(text):\n    return len(text.split(' '))\n\n\ndef other():\n    return 1\n",
        );
        w("pkg/io.py", "def read():\n    return ''\n");
        w(
            "tests/test_stats.py",
            "from pkg.stats import word_count\n\ndef test_a():\n    assert word_count('a b') == 2\n",
        );
        w(
            "tests/test_api.py",
            "from pkg import word_count\n\ndef test_b():\n    assert word_count('') == 0\n",
        );
        w(
            "tests/test_io.py",
            "from pkg.io import read\n\ndef test_c():\n    assert read() == ''\n",
        );
        let opts = mend_index::IndexOptions {
            use_cache: false,
            ..Default::default()
        };
        let ix = Index::from_worktree(d.path(), &opts).unwrap();
        let patch = "diff --git a/pkg/stats.py b/pkg/stats.py\n--- a/pkg/stats.py\n+++ b/pkg/stats.py\n@@ -1,2 +1,2 @@\n def word_count(text):\n-    return len(text.split(' '))\n+    return len(text.split())\n";
        let set = related_tests(&ix, patch, 8);
        let paths = set.paths();
        assert_eq!(
            paths,
            vec!["tests/test_stats.py", "tests/test_api.py"],
            "{set:?}"
        );
        assert!(set.changed.contains(&"word_count".to_string()), "{set:?}");
        assert_eq!(
            related_tests(&ix, patch, 1).paths(),
            vec!["tests/test_stats.py"]
        );
        assert!(related_tests(&ix, "", 8).is_empty());
    }
}
