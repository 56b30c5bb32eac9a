//! `mend swebench` end to end through the real binary: dataset errors, a gold evaluation of a
//! synthetic instance whose image is built offline (`--images build-offline`: the repository
//! from a mirror directory, FROM mend's base image, no network in the build), and `mine`
//! turning real commits of a small git2 repository into instances with their test lists.
mod support;

use std::path::Path;
use std::process::Command;
use support::{mend, text};

use serde_json::Value;

const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";
const TESTS: &str = "import unittest\nfrom calc import add, mul\n\n\nclass TestCalc(unittest.TestCase):\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n";
const TESTS_WITH_ADD: &str = "import unittest\nfrom calc import add, mul\n\n\nclass TestCalc(unittest.TestCase):\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n\n    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n";

/// The repository's spec: unittest's verbose output, read by the Django-style parser; the
/// official conda activation lines, which offline images answer with their stand-in.
const SPECS: &str = r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python -m unittest -v"}}}}}"#;

fn commit(repo: &git2::Repository, files: &[(&str, &str)], message: &str) -> String {
    let root = repo.workdir().unwrap().to_path_buf();
    for (p, body) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let refs: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &refs)
        .unwrap()
        .to_string()
}

/// A repository with a bug (`add` subtracts) in its first commit.
fn base_repo(dir: &Path) -> (git2::Repository, String) {
    let repo = git2::Repository::init(dir).unwrap();
    let base = commit(
        &repo,
        &[
            ("calc.py", CALC),
            ("tests/__init__.py", ""),
            ("tests/test_calc.py", TESTS),
        ],
        "calc with a bug",
    );
    (repo, base)
}

/// A mirror directory in the layout build-offline expects: DIR/<owner>__<name> -> the repository.
fn mirrors(work: &Path, repo_dir: &Path) -> std::path::PathBuf {
    let m = work.join("mirrors");
    std::fs::create_dir_all(&m).unwrap();
    std::os::unix::fs::symlink(repo_dir, m.join("mendtest__calc")).unwrap();
    m
}

fn diff(path: &str, old: &str, new: &str) -> String {
    // A minimal but real git diff, made by git itself.
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::write(&a, old).unwrap();
    std::fs::write(&b, new).unwrap();
    let out = Command::new("git")
        .args(["diff", "--no-index", "--no-color"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let raw = String::from_utf8(out.stdout).unwrap();
    let (a, b) = (a.display().to_string(), b.display().to_string());
    raw.replace(&format!("a{a}"), &format!("a/{path}"))
        .replace(&format!("b{b}"), &format!("b/{path}"))
}

#[test]
fn a_bad_dataset_line_names_the_line_and_the_field() {
    let work = tempfile::tempdir().unwrap();
    let good = serde_json::json!({"instance_id": "o__r-1", "repo": "o/r", "base_commit": "abcdef1", "version": "1", "patch": "", "test_patch": "diff --git a/t.py b/t.py\n--- a/t.py\n+++ b/t.py\n"});
    let mut bad = good.clone();
    bad["instance_id"] = "o__r-2".into();
    bad["base_commit"] = "not a commit".into();
    let ds = work.path().join("ds.jsonl");
    std::fs::write(&ds, format!("{good}\n{bad}\n")).unwrap();
    let out = mend()
        .args([
            "swebench",
            "eval",
            "--predictions",
            "gold",
            "--images",
            "local",
            "--image-map",
            "/dev/null",
            "--dataset",
        ])
        .arg(&ds)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("field `base_commit`") && err.contains("ds.jsonl"),
        "{err}"
    );

    // A truncated line too.
    let line = good.to_string();
    std::fs::write(&ds, format!("{line}\n{}\n", &line[..line.len() / 2])).unwrap();
    let out = mend()
        .args(["swebench", "eval", "--predictions", "gold", "--dataset"])
        .arg(&ds)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && err.contains("line 2: truncated JSON"),
        "{}",
        text(&out)
    );

    // And build-offline without mirrors says what is missing.
    std::fs::write(&ds, format!("{line}\n")).unwrap();
    let out = mend()
        .args([
            "swebench",
            "eval",
            "--predictions",
            "gold",
            "--images",
            "build-offline",
            "--dataset",
        ])
        .arg(&ds)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--repo-mirrors"),
        "{}",
        text(&out)
    );
}

#[test]
fn gold_and_empty_patches_of_a_synthetic_instance_evaluate_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("calc");
    let (_repo, base) = base_repo(&repo_dir);
    let mirror_dir = mirrors(work.path(), &repo_dir);
    let specs = work.path().join("specs.json");
    std::fs::write(&specs, SPECS).unwrap();
    let gold = diff("calc.py", CALC, &CALC.replace("a - b", "a + b"));
    let test_patch = diff("tests/test_calc.py", TESTS, TESTS_WITH_ADD);
    let id = "mendtest__calc-1";
    let inst = serde_json::json!({
        "instance_id": id, "repo": "mendtest/calc", "base_commit": base, "version": "0.1",
        "patch": gold, "test_patch": test_patch, "problem_statement": "add() subtracts",
        "FAIL_TO_PASS": "[\"test_add (tests.test_calc.TestCalc.test_add)\"]",
        "PASS_TO_PASS": "[\"test_mul (tests.test_calc.TestCalc.test_mul)\"]",
    });
    let ds = work.path().join("ds.jsonl");
    std::fs::write(&ds, format!("{inst}\n")).unwrap();
    let run = |predictions: &str, run_id: &str, extra: &[&str]| {
        let out = mend()
            .current_dir(work.path())
            .args([
                "swebench",
                "eval",
                "--images",
                "build-offline",
                "--workers",
                "1",
                "--timeout",
                "120",
                "--predictions",
                predictions,
                "--run-id",
                run_id,
            ])
            .arg("--dataset")
            .arg(&ds)
            .arg("--repo-mirrors")
            .arg(&mirror_dir)
            .arg("--specs")
            .arg(&specs)
            .arg("--wheelhouse")
            .arg(work.path().join("wheels"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let out = run("gold", "g1", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("resolved 1/1 (100.0%)") && stdout.contains("gold.g1.json"),
        "{}",
        text(&out)
    );
    // Not a terminal: plain progress lines, the image build among them.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("building mend-sweb.eval.x86_64.mendtest__calc-1:")
            && stderr.contains("1/1 mendtest__calc-1: resolved (1 resolved so far)"),
        "{stderr}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("gold.g1.json")).unwrap())
            .unwrap();
    assert_eq!(summary["resolved_ids"], serde_json::json!([id]));
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(
            work.path()
                .join("logs/run_evaluation/g1/gold")
                .join(id)
                .join("report.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        report[id]["tests_status"]["FAIL_TO_PASS"]["success"],
        serde_json::json!(["test_add (tests.test_calc.TestCalc.test_add)"])
    );
    let details: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("gold.g1.mend.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(details["image_source"], "build-offline");
    assert!(
        details["environments"][id]["python"]
            .as_str()
            .unwrap()
            .starts_with("3."),
        "{details}"
    );

    // The image is reused, not rebuilt; an empty patch, run with --run-empty, is unresolved.
    let preds = work.path().join("empty.jsonl");
    std::fs::write(&preds, format!("{}\n", serde_json::json!({"instance_id": id, "model_name_or_path": "nobody", "model_patch": ""}))).unwrap();
    let out = run(preds.to_str().unwrap(), "e1", &["--run-empty"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Step 1/"),
        "the image was rebuilt: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resolved 0/1"),
        "{}",
        text(&out)
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(
            work.path()
                .join("logs/run_evaluation/e1/nobody")
                .join(id)
                .join("report.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        report[id]["tests_status"]["FAIL_TO_PASS"]["failure"],
        serde_json::json!(["test_add (tests.test_calc.TestCalc.test_add)"])
    );
    assert_eq!(
        report[id]["tests_status"]["PASS_TO_PASS"]["success"],
        serde_json::json!(["test_mul (tests.test_calc.TestCalc.test_mul)"])
    );
}

/// A spec asking for Python 3.6 gets Debian bullseye's 3.9, the nearest (mend's base image on
/// that suite, debootstrapped from the same apt mirror), with unittest naming tests as 3.6 did;
/// the report says so.
#[test]
fn a_python_3_6_spec_is_built_on_bullseye_names_tests_as_3_6_and_the_report_names_the_suite() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("calc");
    let (repo, _) = base_repo(&repo_dir);
    // Installed editable from a pyproject.toml with no setup.py: bullseye's venv pip (20.3)
    // cannot (it predates PEP 660), so this passes only once the wheelhouse's pip is installed.
    // setup.cfg's setup_requires (six) is fetched while building, offline: only from the
    // wheelhouse, so only if it was collected as a build requirement.
    let base = commit(
        &repo,
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"setuptools>=64\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = \"calc\"\nversion = \"0.1\"\n\n[tool.setuptools]\npy-modules = [\"calc\"]\n",
            ),
            ("setup.cfg", "[options]\nsetup_requires =\n    six\n"),
        ],
        "packaging",
    );
    let mirror_dir = mirrors(work.path(), &repo_dir);
    let specs = work.path().join("specs.json");
    std::fs::write(
        &specs,
        SPECS
            .replace(
                r#""python": "3.11""#,
                r#""python": "3.6", "install": "python -m pip install -e .""#,
            )
            // The env's Python reached through a symlink, as tox-current-env runs it, still
            // sees the env's packages, as a conda one does: calc, installed editable, from
            // outside the checkout. And the env has `wheel`, as a conda one does.
            .replace(
                r#""test_cmd": "python -m unittest -v""#,
                r#""test_cmd": "ln -sf \"$(command -v python)\" /tmp/linked-python && (cd /tmp && /tmp/linked-python -c 'import calc') && python -c 'import wheel' && python -m unittest -v""#,
            ),
    )
    .unwrap();
    let id = "mendtest__calc-39";
    let inst = serde_json::json!({
        "instance_id": id, "repo": "mendtest/calc", "base_commit": base, "version": "0.1",
        "patch": diff("calc.py", CALC, &CALC.replace("a - b", "a + b")),
        // A docstring opening with a newline: Python 3.7+ prints its first words as the
        // test's description, 3.6 printed none; the lists are named as 3.6 named them.
        "test_patch": diff("tests/test_calc.py", TESTS, &TESTS_WITH_ADD.replace(
            "def test_add(self):\n",
            "def test_add(self):\n        \"\"\"\n        Adds two numbers.\n        \"\"\"\n",
        )),
        "problem_statement": "add() subtracts",
        // Python 3.9's unittest names tests without the method after the class.
        "FAIL_TO_PASS": "[\"test_add (tests.test_calc.TestCalc)\"]",
        "PASS_TO_PASS": "[\"test_mul (tests.test_calc.TestCalc)\"]",
    });
    let ds = work.path().join("ds.jsonl");
    std::fs::write(&ds, format!("{inst}\n")).unwrap();
    let out = mend()
        .current_dir(work.path())
        .env_remove("MEND_OFFLINE_SUITE")
        .args([
            "swebench",
            "eval",
            "--images",
            "build-offline",
            "--workers",
            "1",
            "--timeout",
            "120",
            "--predictions",
            "gold",
            "--run-id",
            "b1",
        ])
        .arg("--dataset")
        .arg(&ds)
        .arg("--repo-mirrors")
        .arg(&mirror_dir)
        .arg("--specs")
        .arg(&specs)
        .arg("--wheelhouse")
        .arg(work.path().join("wheels"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("resolved 1/1"),
        "{}",
        text(&out)
    );
    let details: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("gold.b1.mend.json")).unwrap(),
    )
    .unwrap();
    let env = &details["environments"][id];
    assert_eq!(env["suite"], "bullseye", "{details}");
    assert!(
        env["python"].as_str().unwrap().starts_with("3.9."),
        "{details}"
    );
    assert_eq!(env["official_python"], "3.6");
}

#[test]
fn mine_turns_fix_commits_into_instances_and_drops_what_does_not_discriminate() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("mendtest__calc");
    let (repo, base) = base_repo(&repo_dir);
    // A real fix with its test: add() fixed, test_add added, and a docs line.
    let fix = commit(
        &repo,
        &[
            ("calc.py", &CALC.replace("a - b", "a + b")),
            ("tests/test_calc.py", TESTS_WITH_ADD),
            ("README", "calc\n"),
        ],
        "Fix add() subtracting\n\nadd(1, 2) returned -1.",
    );
    // A refactor whose test change passes before and after: nothing to tell apart.
    let refactor_tests = TESTS_WITH_ADD.replace("mul(2, 3), 6)", "mul(3, 2), 6)");
    let refactor = commit(
        &repo,
        &[
            (
                "calc.py",
                &CALC.replace("a - b", "a + b").replace("a * b", "b * a"),
            ),
            ("tests/test_calc.py", &refactor_tests),
        ],
        "Refactor mul",
    );
    // Only documentation: no test, dropped before any run.
    let docs = commit(&repo, &[("README", "calc, a calculator\n")], "Docs");
    let specs = work.path().join("specs.json");
    std::fs::write(&specs, SPECS).unwrap();
    let out_file = work.path().join("mined.jsonl");
    let dropped_file = work.path().join("dropped.jsonl");
    let out = mend()
        .current_dir(work.path())
        .args([
            "swebench",
            "mine",
            "--commits",
            &format!("{base}..HEAD"),
            "--version",
            "0.1",
            "--workers",
            "2",
            "--timeout",
            "120",
        ])
        .arg("--repo")
        .arg(&repo_dir)
        .arg("--specs")
        .arg(&specs)
        .arg("--wheelhouse")
        .arg(work.path().join("wheels"))
        .arg("--out")
        .arg(&out_file)
        .arg("--dropped")
        .arg(&dropped_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mined 1 instance(s), dropped 2"),
        "{}",
        text(&out)
    );

    let mined: Vec<Value> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(mined.len(), 1);
    let m = &mined[0];
    assert_eq!(m["instance_id"], format!("mendtest__calc-{}", &fix[..12]));
    assert_eq!(m["repo"], "mendtest/calc");
    assert_eq!(m["base_commit"], base);
    assert_eq!(m["version"], "0.1");
    assert!(
        m["problem_statement"]
            .as_str()
            .unwrap()
            .starts_with("Fix add() subtracting")
    );
    // The split: code (and docs) in `patch`, tests in `test_patch`.
    let patch = m["patch"].as_str().unwrap();
    let test_patch = m["test_patch"].as_str().unwrap();
    assert!(
        patch.contains("diff --git a/calc.py b/calc.py")
            && patch.contains("+    return a + b")
            && patch.contains("diff --git a/README b/README"),
        "{patch}"
    );
    assert!(!patch.contains("tests/test_calc.py"));
    assert!(
        test_patch.starts_with("diff --git a/tests/test_calc.py b/tests/test_calc.py")
            && test_patch.contains("+    def test_add(self):"),
        "{test_patch}"
    );
    assert!(!test_patch.contains("calc.py b/calc.py"));
    // The lists, in the published form (JSON strings).
    let list = |k: &str| -> Vec<String> { serde_json::from_str(m[k].as_str().unwrap()).unwrap() };
    assert_eq!(
        list("FAIL_TO_PASS"),
        vec!["test_add (tests.test_calc.TestCalc.test_add)"]
    );
    assert_eq!(
        list("PASS_TO_PASS"),
        vec!["test_mul (tests.test_calc.TestCalc.test_mul)"]
    );

    let dropped: Vec<Value> = std::fs::read_to_string(&dropped_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reason = |sha: &str| {
        dropped
            .iter()
            .find(|d| d["instance_id"] == format!("mendtest__calc-{}", &sha[..12]))
            .map(|d| d["reason"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(
        reason(&docs).contains("changes no test file"),
        "{dropped:?}"
    );
    assert!(
        reason(&refactor).contains("do not discriminate"),
        "{dropped:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "dropped mendtest__calc-{}: the tests do not discriminate",
            &refactor[..12]
        )),
        "{stderr}"
    );

    // The mined file is a dataset: its gold patch resolves under `eval`.
    let mirror_dir = work.path().join("m");
    std::fs::create_dir_all(&mirror_dir).unwrap();
    std::os::unix::fs::symlink(&repo_dir, mirror_dir.join("mendtest__calc")).unwrap();
    let out = mend()
        .current_dir(work.path())
        .args([
            "swebench",
            "eval",
            "--images",
            "build-offline",
            "--predictions",
            "gold",
            "--run-id",
            "v",
        ])
        .arg("--dataset")
        .arg(&out_file)
        .arg("--repo-mirrors")
        .arg(&mirror_dir)
        .arg("--specs")
        .arg(&specs)
        .arg("--wheelhouse")
        .arg(work.path().join("wheels"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resolved 1/1"),
        "{}",
        text(&out)
    );
}

/// `mine` runs before and after three times: tests whose outcome changes between runs (here
/// eight that pass at random before the fix) are left out of both lists and counted; the real
/// fix test and the stable one are classified as ever.
#[test]
fn mine_leaves_out_tests_whose_outcome_changes_between_runs() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("mendtest__calc");
    let (repo, base) = base_repo(&repo_dir);
    // Coin tests pass once add() is fixed and pass at random before it: after is stable,
    // so a coin test is out of both lists exactly when its before runs disagreed.
    let flaky: String = (0..8)
        .map(|i| format!("\n    def test_coin_{i}(self):\n        import random\n        self.assertTrue(add(1, 1) == 2 or random.random() < 0.5)\n"))
        .collect();
    let fix = commit(
        &repo,
        &[
            ("calc.py", &CALC.replace("a - b", "a + b")),
            ("tests/test_calc.py", &format!("{TESTS_WITH_ADD}{flaky}")),
        ],
        "Fix add() subtracting",
    );
    let specs = work.path().join("specs.json");
    std::fs::write(&specs, SPECS).unwrap();
    let out_file = work.path().join("mined.jsonl");
    let out = mend()
        .current_dir(work.path())
        .args(["swebench", "mine", "--commits", &fix, "--version", "0.1"])
        .args(["--workers", "1", "--timeout", "120"])
        .arg("--repo")
        .arg(&repo_dir)
        .arg("--specs")
        .arg(&specs)
        .arg("--wheelhouse")
        .arg(work.path().join("wheels"))
        .arg("--out")
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let _ = base;
    let m: Value = serde_json::from_str(
        std::fs::read_to_string(&out_file)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let list = |k: &str| -> Vec<String> { serde_json::from_str(m[k].as_str().unwrap()).unwrap() };
    let (f2p, p2p) = (list("FAIL_TO_PASS"), list("PASS_TO_PASS"));
    let add = "test_add (tests.test_calc.TestCalc.test_add)".to_string();
    let mul = "test_mul (tests.test_calc.TestCalc.test_mul)".to_string();
    assert!(f2p.contains(&add) && p2p.contains(&mul), "{f2p:?} {p2p:?}");
    // A coin test stays only if its three before runs agreed (chance 1/4 each); left out,
    // it is named on stderr and counted on stdout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let left_out: Vec<String> = (0..8)
        .map(|i| format!("test_coin_{i} (tests.test_calc.TestCalc.test_coin_{i})"))
        .filter(|t| !f2p.contains(t) && !p2p.contains(t))
        .collect();
    assert!(
        !left_out.is_empty(),
        "no flaky test was caught: {f2p:?} {p2p:?}"
    );
    for t in &left_out {
        assert!(stderr.contains(t.as_str()), "{t} not reported: {stderr}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "{} flaky test(s) left out in 1 instance(s) (3 runs each of before and after)",
            left_out.len()
        )),
        "{}",
        text(&out)
    );
    // Three runs of each phase, each in its own run directory.
    for run in [
        "mine-before",
        "mine-before-2",
        "mine-before-3",
        "mine-after-3",
    ] {
        assert!(work.path().join("logs/mine").join(run).is_dir(), "{run}");
    }
}

/// `recover-tests` on a record without test_patch whose fix commit is in the mirror: the
/// record comes back with the commit's test edits; a record with a known test_patch is
/// compared; a bad record names its line and field.
#[test]
fn recover_tests_fills_in_and_compares_test_patches() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("mendtest__calc");
    let (repo, base) = base_repo(&repo_dir);
    let fixed = CALC.replace("a - b", "a + b");
    let fix = commit(
        &repo,
        &[("calc.py", &fixed), ("tests/test_calc.py", TESTS_WITH_ADD)],
        "Fixed #5 -- add() adds",
    );
    let _ = fix;
    let gold = diff("calc.py", CALC, &fixed);
    let known = diff("tests/test_calc.py", TESTS, TESTS_WITH_ADD);
    let records = work.path().join("records.jsonl");
    let rec = |id: &str, tp: Option<&str>| {
        let mut v = serde_json::json!({"instance_id": id, "repo": "mendtest/calc", "base_commit": base, "patch": gold, "extra": 1});
        if let Some(tp) = tp {
            v["test_patch"] = tp.into();
        }
        v.to_string() + "\n"
    };
    std::fs::write(
        &records,
        rec("mendtest__calc-5", None) + &rec("mendtest__calc-6", Some(&known)),
    )
    .unwrap();
    let mirror_dir = mirrors(work.path(), &repo_dir);
    let out_file = work.path().join("out.jsonl");
    let report = work.path().join("report.json");
    let run = |records: &Path| {
        mend()
            .args(["swebench", "recover-tests", "--instances"])
            .arg(records)
            .arg("--repo-mirrors")
            .arg(&mirror_dir)
            .arg("--out")
            .arg(&out_file)
            .arg("--report")
            .arg(&report)
            .output()
            .unwrap()
    };
    let out = run(&records);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("known test patches: 1 exact of 1 (100.0%)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 of 2 record(s) got a test patch (1 filled in)"),
        "{stdout}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["extra"], 1, "other fields are kept");
    let tp = lines[0]["test_patch"].as_str().unwrap();
    assert!(
        tp.contains("+    def test_add(self):") && !tp.contains("calc.py b/calc.py"),
        "{tp}"
    );
    assert_eq!(
        lines[1]["test_patch"].as_str().unwrap(),
        known,
        "a known test_patch is kept"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["exact"], 1);
    assert_eq!(r["filled_in"], 1);
    assert_eq!(r["instances"][0]["extent"], "commits 1");

    // A record without base_commit: the line and the field are named, nothing written.
    std::fs::remove_file(&out_file).unwrap();
    let bad = work.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        rec("mendtest__calc-5", None)
            + "{\"instance_id\": \"x\", \"repo\": \"mendtest/calc\", \"patch\": \"p\"}\n",
    )
    .unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("base_commit"),
        "{stderr}"
    );
    assert!(!out_file.exists());
}

/// Ctrl-C during `mend swebench eval`: the finished instance keeps its report, the summary
/// is still written, the hanging instance's container is removed, and the exit code is 130.
#[test]
fn ctrl_c_stops_the_evaluation_cleanly() {
    use std::io::{BufRead, BufReader};
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("ctx/repo");
    let (_repo, base) = base_repo(&repo_dir);
    // An image with the repository at /testbed, FROM mend's base image (built by an earlier
    // `mend sandbox run` in this test when missing).
    let tag = mend().args(["images", "base"]).output().unwrap();
    assert!(tag.status.success(), "{}", text(&tag));
    let base_image = String::from_utf8_lossy(&tag.stdout).trim().to_string();
    std::fs::write(
        work.path().join("ctx/Dockerfile"),
        format!("FROM {base_image}\nCOPY repo /testbed\nWORKDIR /testbed\n"),
    )
    .unwrap();
    let image = "mend-swebench-cli-ctrlc:latest";
    let b = Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(work.path().join("ctx"))
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", text(&b));
    let gold = diff("calc.py", CALC, &CALC.replace("a - b", "a + b"));
    let hang = TESTS_WITH_ADD.replace(
        "self.assertEqual(add(1, 2), 3)",
        "import time\n        time.sleep(600)",
    );
    let specs = work.path().join("specs.json");
    // Plain python3 from the base image: no conda lines.
    std::fs::write(&specs, r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#).unwrap();
    let rec = |id: &str, test_patch: &str| {
        serde_json::json!({"instance_id": id, "repo": "mendtest/calc", "base_commit": base, "version": "0.1", "patch": gold, "test_patch": test_patch,
            "FAIL_TO_PASS": ["test_add (tests.test_calc.TestCalc.test_add)"], "PASS_TO_PASS": []})
    };
    let ds = work.path().join("ds.jsonl");
    std::fs::write(
        &ds,
        format!(
            "{}\n{}\n",
            rec(
                "mendtest__calc-1",
                &diff("tests/test_calc.py", TESTS, TESTS_WITH_ADD)
            ),
            rec(
                "mendtest__calc-2",
                &diff("tests/test_calc.py", TESTS, &hang)
            )
        ),
    )
    .unwrap();
    let map = work.path().join("images.txt");
    std::fs::write(
        &map,
        format!("mendtest__calc-1 {image}\nmendtest__calc-2 {image}\n"),
    )
    .unwrap();
    let mut child = mend()
        .current_dir(work.path())
        .args([
            "swebench",
            "eval",
            "--predictions",
            "gold",
            "--images",
            "local",
            "--workers",
            "2",
            "--run-id",
            "cc",
            "--timeout",
            "900",
        ])
        .arg("--dataset")
        .arg(&ds)
        .arg("--image-map")
        .arg(&map)
        .arg("--specs")
        .arg(&specs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr on a thread for the whole run (a closed pipe would be an error for mend).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(300)) {
        let done = line.contains("mendtest__calc-1: resolved");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("mendtest__calc-1: resolved")),
        "{seen:?}"
    );
    let k = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    seen.extend(rx.try_iter());
    assert_eq!(out.status.code(), Some(130), "{}\n{seen:#?}", text(&out));
    assert!(
        seen.iter().any(|l| l.contains("stopping cleanly")),
        "{seen:#?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resolved 1/2"),
        "{}",
        text(&out)
    );
    let report = work
        .path()
        .join("logs/run_evaluation/cc/gold/mendtest__calc-1/report.json");
    assert!(report.exists());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("gold.cc.json")).unwrap())
            .unwrap();
    assert_eq!(
        summary["resolved_ids"],
        serde_json::json!(["mendtest__calc-1"])
    );
    assert_eq!(
        summary["error_ids"],
        serde_json::json!(["mendtest__calc-2"])
    );
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=dev.mend.swebench.run_id=cc"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "containers left behind"
    );
}
