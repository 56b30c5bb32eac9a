//! `mine`: real fix commits turned into SWE-bench-format instances, the way SWE-bench
//! itself was built.
//!
//! A commit's change is split into `patch` (non-test files) and `test_patch` (test files);
//! `base_commit` is its parent and the problem statement its message (or a given issue
//! text). The test lists come from running the tests that `test_patch` touches in the
//! instance's image twice, through the evaluation driver: without the fix ("before") and
//! with it ("after"), each log read by the repository's parser, and each run three times
//! (`MineOptions::repeats`): a test whose outcome changes between the runs of a phase is
//! flaky and left out of both lists (counted in [`Mined::flaky`]). `FAIL_TO_PASS` = passes
//! after and not before; `PASS_TO_PASS` = passes in both. An instance whose tests do not
//! discriminate (no `FAIL_TO_PASS`) is dropped with the reason. Existing records without
//! test lists (patch, test_patch, base_commit given) go through the same runs.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::SwebenchError;
use crate::dataset::{Filter, Instance, Prediction};
use crate::eval::{
    EvalOptions, LOG_TEST_OUTPUT, Outcome, PredictionsSource, ProgressFn, evaluate,
    instance_log_dir,
};
use crate::grading::{status_map_from_log, test_passed};
use crate::images::{EnvironmentNotes, ImageSource};
use crate::parsers::StatusMap;
use crate::specs::Specs;

/// Directory names that make a path a test file, as SWE-bench's collection has it.
const TEST_DIRS: &[&str] = &["test", "tests", "testing", "e2e"];

/// Is `path` a test file (goes into `test_patch`)?
pub fn is_test_path(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    let file = parts.pop().unwrap_or("");
    parts
        .iter()
        .any(|d| TEST_DIRS.contains(&d.to_ascii_lowercase().as_str()))
        || file.starts_with("test_")
        || file.ends_with("_test.py")
        || file == "tests.py"
        || file == "conftest.py"
}

/// An instance left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub instance_id: String,
    pub reason: String,
}

/// What mining returns.
#[derive(Debug, Clone, Default)]
pub struct Mined {
    /// Instances with `FAIL_TO_PASS` (non-empty) and `PASS_TO_PASS` filled in.
    pub instances: Vec<Instance>,
    pub dropped: Vec<Dropped>,
    /// Environment departures of the images the tests ran in.
    pub environments: BTreeMap<String, EnvironmentNotes>,
    /// Tests left out of an instance's lists because their outcome changed between runs.
    pub flaky: BTreeMap<String, Vec<String>>,
}

fn git(git_dir: &Path, args: &[&str]) -> Result<String, SwebenchError> {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(SwebenchError::io("running git"))?;
    if !out.status.success() {
        return Err(SwebenchError::Invalid(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The git directory of a mirror path (a bare repository or a work tree).
pub fn git_dir_of(mirror: &Path) -> Result<PathBuf, SwebenchError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(mirror)
        .args(["rev-parse", "--absolute-git-dir"])
        .stdin(Stdio::null())
        .output()
        .map_err(SwebenchError::io("running git"))?;
    if !out.status.success() {
        return Err(SwebenchError::Invalid(format!(
            "{} is not a git repository: {}",
            mirror.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Commits named by `specs` (`A..B` ranges, oldest first along the first-parent line, or
/// single revisions), as full ids.
pub fn resolve_commits(git_dir: &Path, specs: &[String]) -> Result<Vec<String>, SwebenchError> {
    let mut out = Vec::new();
    for s in specs {
        if s.contains("..") {
            let list = git(git_dir, &["rev-list", "--reverse", "--first-parent", s])?;
            out.extend(list.lines().map(str::to_string));
        } else {
            out.push(
                git(
                    git_dir,
                    &["rev-parse", "--verify", &format!("{s}^{{commit}}")],
                )?
                .trim()
                .to_string(),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    Ok(out)
}

/// A candidate instance from one commit, or why there is none (before any test is run).
pub fn instance_from_commit(
    git_dir: &Path,
    repo: &str,
    version: &str,
    commit: &str,
    problem_statement: Option<&str>,
) -> Result<Result<Instance, Dropped>, SwebenchError> {
    let short = &commit[..commit.len().min(12)];
    let id = format!("{}-{short}", repo.replace('/', "__"));
    let drop = |reason: String| {
        Ok(Err(Dropped {
            instance_id: id.clone(),
            reason,
        }))
    };
    let parents = git(git_dir, &["rev-list", "--parents", "-n", "1", commit])?;
    let Some(parent) = parents.split_whitespace().nth(1).map(str::to_string) else {
        return drop("a root commit has no parent to be the base commit".into());
    };
    let names = git(
        git_dir,
        &["diff", "--name-only", "--no-renames", &parent, commit],
    )?;
    let (tests, code): (Vec<&str>, Vec<&str>) = names
        .lines()
        .filter(|l| !l.is_empty())
        .partition(|p| is_test_path(p));
    if code.is_empty() {
        return drop("the commit changes only test files (no fix to evaluate)".into());
    }
    if tests.is_empty() {
        return drop("the commit changes no test file (nothing to tell a fix from no fix)".into());
    }
    let diff = |paths: &[&str]| -> Result<String, SwebenchError> {
        let mut args = vec![
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            "--full-index",
            &parent,
            commit,
            "--",
        ];
        args.extend(paths.iter().copied());
        git(git_dir, &args)
    };
    let patch = diff(&code)?;
    let test_patch = diff(&tests)?;
    if patch.contains("\nGIT binary patch") || patch.contains("\nBinary files ") {
        return drop("the fix changes a binary file".into());
    }
    let message = git(git_dir, &["log", "-1", "--format=%B", commit])?;
    let created_at = git(git_dir, &["log", "-1", "--format=%cI", commit])?;
    let v = serde_json::json!({
        "instance_id": id,
        "repo": repo,
        "base_commit": parent,
        "version": version,
        "patch": patch,
        "test_patch": test_patch,
        "problem_statement": problem_statement.map(str::to_string).unwrap_or_else(|| message.trim().to_string()),
        "environment_setup_commit": parent,
        "created_at": created_at.trim(),
        "hints_text": "",
    });
    Ok(Ok(crate::dataset::instance_from_value(
        v,
        "mined commit",
        1,
    )?))
}

/// How to run the before/after tests.
pub struct MineOptions {
    pub specs: Arc<Specs>,
    pub images: Arc<dyn ImageSource>,
    pub workers: usize,
    pub timeout: Duration,
    /// The runs' logs go under `<log_root>/<run_id>-before` and `-after` (official layout).
    pub log_root: PathBuf,
    pub run_id: String,
    pub progress: Option<ProgressFn>,
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
    pub memory_bytes: Option<i64>,
    /// Runs of each phase (at least 1); a test whose outcome differs between them is flaky.
    pub repeats: usize,
}

impl MineOptions {
    pub fn new(images: Arc<dyn ImageSource>, log_root: PathBuf) -> MineOptions {
        MineOptions {
            specs: Arc::new(Specs::builtin()),
            images,
            workers: 2,
            timeout: Duration::from_secs(1800),
            log_root,
            run_id: "mine".into(),
            progress: None,
            cancel: None,
            memory_bytes: Some(8 << 30),
            repeats: 3,
        }
    }
}

/// Run each candidate's tests before and after its fix and fill in the test lists.
pub async fn fill_test_lists(
    candidates: Vec<Instance>,
    opts: &MineOptions,
) -> Result<Mined, SwebenchError> {
    let mut mined = Mined::default();
    if candidates.is_empty() {
        return Ok(mined);
    }
    // Run k of a phase: `<run_id>-before`, then `-before-2`, ... (the first keeps its old name).
    let mut runs: Vec<(&str, String, &str, bool)> = Vec::new();
    for k in 1..=opts.repeats.max(1) {
        let suffix = if k == 1 {
            String::new()
        } else {
            format!("-{k}")
        };
        runs.push(("before", suffix.clone(), "mend-mine-before", true));
        runs.push(("after", suffix, "mend-mine-after", false));
    }
    // phase -> instance -> one status map per run (or why a run gave none).
    let mut maps: BTreeMap<&str, BTreeMap<String, Result<Vec<StatusMap>, String>>> =
        BTreeMap::new();
    for (phase, suffix, model, empty) in runs {
        if opts.cancel.as_ref().is_some_and(|c| *c.borrow()) {
            break;
        }
        let preds: Vec<Prediction> = candidates
            .iter()
            .map(|i| Prediction {
                instance_id: i.instance_id.clone(),
                model_name_or_path: model.into(),
                model_patch: Some(if empty {
                    String::new()
                } else {
                    i.patch.clone()
                }),
            })
            .collect();
        let run_id = format!("{}-{phase}{suffix}", opts.run_id);
        let mut eo = EvalOptions::new(
            candidates.clone(),
            PredictionsSource::List(preds),
            run_id.clone(),
            opts.images.clone(),
        );
        eo.filter = Filter::default();
        eo.specs = opts.specs.clone();
        eo.workers = opts.workers;
        eo.timeout = opts.timeout;
        eo.log_root = opts.log_root.clone();
        eo.report_dir = opts.log_root.join(&run_id);
        eo.progress = opts.progress.clone();
        eo.cancel = opts.cancel.clone();
        eo.memory_bytes = opts.memory_bytes;
        eo.run_empty_patches = true;
        // These runs collect test logs to make the lists from; nothing is graded.
        eo.require_test_lists = false;
        let summary = evaluate(eo).await?;
        mined.environments.extend(summary.environments.clone());
        let phase_maps = maps.entry(phase).or_default();
        for inst in &candidates {
            let id = &inst.instance_id;
            let parser = opts.specs.repo(&inst.repo).map(|r| r.log_parser);
            let log = instance_log_dir(&opts.log_root, &run_id, model, id).join(LOG_TEST_OUTPUT);
            let outcome = summary.outcomes.get(id);
            let result = match (outcome, parser) {
                (_, None) => Err(format!("no spec for {}", inst.repo)),
                (
                    Some(Outcome::Resolved | Outcome::Unresolved | Outcome::AlreadyGraded { .. }),
                    Some(parser),
                ) => match std::fs::read_to_string(&log) {
                    Ok(text) => status_map_from_log(&text, parser).ok_or_else(|| {
                        format!(
                            "the {phase} run's log has no test output (see {})",
                            log.display()
                        )
                    }),
                    Err(e) => Err(format!("reading {}: {e}", log.display())),
                },
                (Some(o), _) => Err(format!("the {phase} run ended in {}", describe(o))),
                (None, _) => Err(format!("the {phase} run did not happen")),
            };
            // The first failed run decides: later runs of a broken instance add nothing.
            let entry = phase_maps
                .entry(id.clone())
                .or_insert_with(|| Ok(Vec::new()));
            if let Ok(list) = entry {
                match result {
                    Ok(m) => list.push(m),
                    Err(e) => *entry = Err(e),
                }
            }
        }
    }
    for mut inst in candidates {
        let id = inst.instance_id.clone();
        let get = |phase: &str| {
            maps.get(phase)
                .and_then(|m| m.get(&id))
                .cloned()
                .unwrap_or_else(|| Err("not run".into()))
        };
        let (before, after) = match (get("before"), get("after")) {
            (Ok(b), Ok(a)) if !b.is_empty() && !a.is_empty() => (b, a),
            (Err(e), _) | (_, Err(e)) => {
                mined.dropped.push(Dropped {
                    instance_id: id,
                    reason: e,
                });
                continue;
            }
            _ => {
                mined.dropped.push(Dropped {
                    instance_id: id,
                    reason: "not run".into(),
                });
                continue;
            }
        };
        let flaky = flaky_tests(&before, &after);
        let (mut f2p, mut p2p) = test_lists(&before[0], &after[0]);
        f2p.retain(|t| !flaky.contains(t));
        p2p.retain(|t| !flaky.contains(t));
        if !flaky.is_empty() {
            mined.flaky.insert(id.clone(), flaky.clone());
        }
        if f2p.is_empty() {
            let after = &after[0];
            let failing_after = after.keys().filter(|t| !test_passed(t, after)).count();
            mined.dropped.push(Dropped {
                instance_id: id,
                reason: format!(
                    "the tests do not discriminate: no test fails before the fix and passes after it ({} tests before, {} after, {} not passing after{})",
                    before[0].len(),
                    after.len(),
                    failing_after,
                    if flaky.is_empty() {
                        String::new()
                    } else {
                        format!(", {} flaky left out", flaky.len())
                    }
                ),
            });
            continue;
        }
        inst.fail_to_pass = Some(f2p);
        inst.pass_to_pass = Some(p2p);
        mined.instances.push(inst);
    }
    Ok(mined)
}

/// Tests whose outcome (passed or not; absent counts as not) differs between the runs of
/// the same phase, in name order.
pub fn flaky_tests(before: &[StatusMap], after: &[StatusMap]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for runs in [before, after] {
        let names: std::collections::BTreeSet<&String> =
            runs.iter().flat_map(|m| m.keys()).collect();
        for name in names {
            let mut outcomes = runs.iter().map(|m| test_passed(name, m));
            if let Some(first) = outcomes.next()
                && outcomes.any(|o| o != first)
            {
                out.insert(name.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// `FAIL_TO_PASS` (passes after, not before: failed, errored or absent) and `PASS_TO_PASS`
/// (passes in both), in the order of the after-log's names.
pub fn test_lists(before: &StatusMap, after: &StatusMap) -> (Vec<String>, Vec<String>) {
    let mut f2p = Vec::new();
    let mut p2p = Vec::new();
    for name in after.keys() {
        if !test_passed(name, after) {
            continue;
        }
        if test_passed(name, before) {
            p2p.push(name.clone());
        } else {
            f2p.push(name.clone());
        }
    }
    (f2p, p2p)
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Error(e) => format!("an error: {e}"),
        Outcome::PatchApplyFailed(e) => format!("a patch that does not apply: {e}"),
        Outcome::PatchRejected(e) => format!("a rejected patch: {e}"),
        Outcome::Timeout => "a timeout".into(),
        Outcome::Cancelled => "cancellation".into(),
        other => format!("{other:?}"),
    }
}

/// One instance as a line of the published format (test lists as JSON strings).
pub fn to_published_json(inst: &Instance) -> Result<String, SwebenchError> {
    let mut v = serde_json::to_value(inst).map_err(|e| SwebenchError::Invalid(e.to_string()))?;
    if let Value::Object(m) = &mut v {
        for key in ["FAIL_TO_PASS", "PASS_TO_PASS"] {
            if let Some(list) = m.get(key) {
                let s = serde_json::to_string(list)
                    .map_err(|e| SwebenchError::Invalid(e.to_string()))?;
                m.insert(key.into(), Value::String(s));
            }
        }
    }
    serde_json::to_string(&v).map_err(|e| SwebenchError::Invalid(e.to_string()))
}

/// Write instances as JSONL (published format), atomically.
pub fn write_jsonl(path: &Path, instances: &[Instance]) -> Result<(), SwebenchError> {
    let mut text = String::new();
    for i in instances {
        text.push_str(&to_published_json(i)?);
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(SwebenchError::io(format!("creating {}", dir.display())))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(SwebenchError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(SwebenchError::io(format!("renaming to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::TestStatus;

    #[test]
    fn test_paths_are_recognised() {
        for p in [
            "tests/test_x.py",
            "pkg/tests/data/a.json",
            "test_calc.py",
            "src/testing/x.py",
            "a/b/conftest.py",
            "django/tests.py",
            "x/foo_test.py",
        ] {
            assert!(is_test_path(p), "{p}");
        }
        for p in [
            "calc.py",
            "src/attest.py",
            "docs/testing.rst",
            "contest/x.py",
            "latest/a.py",
        ] {
            assert!(!is_test_path(p), "{p}");
        }
    }

    #[test]
    fn a_test_whose_outcome_changes_between_runs_is_flaky() {
        let m = |v: &[(&str, TestStatus)]| {
            v.iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect::<StatusMap>()
        };
        use TestStatus::{Failed, Passed};
        let before = [
            m(&[("stable", Passed), ("flip", Passed), ("fix", Failed)]),
            m(&[("stable", Passed), ("flip", Failed), ("fix", Failed)]),
        ];
        let after = [
            m(&[("stable", Passed), ("fix", Passed), ("gone", Passed)]),
            m(&[("stable", Passed), ("fix", Passed)]),
        ];
        assert_eq!(flaky_tests(&before, &after), vec!["flip", "gone"]);
        assert!(flaky_tests(&before[..1], &after[..1]).is_empty());
    }

    #[test]
    fn lists_come_from_before_and_after() {
        let m = |v: &[(&str, TestStatus)]| {
            v.iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect::<StatusMap>()
        };
        let before = m(&[
            ("a", TestStatus::Passed),
            ("b", TestStatus::Failed),
            ("c", TestStatus::Passed),
            ("e", TestStatus::Error),
        ]);
        let after = m(&[
            ("a", TestStatus::Passed),
            ("b", TestStatus::Passed),
            ("c", TestStatus::Failed),
            ("d", TestStatus::Passed),
            ("e", TestStatus::Xfail),
        ]);
        let (f2p, p2p) = test_lists(&before, &after);
        assert_eq!(f2p, vec!["b", "d", "e"]);
        assert_eq!(p2p, vec!["a"]);
    }
}
