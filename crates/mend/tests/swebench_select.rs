//! `mend swebench run --candidates 3` through the real binary: a synthetic instance over a
//! small real repository (image FROM mend's base image), three attempts answered by a
//! scripted model (told apart by their seeds) — one that fails the reproductions, one that
//! breaks an existing test, one that is right — chosen by running them, then evaluated
//! and reported; and `--candidates 1` retrying an attempt that made no change.
mod support;

use std::path::Path;

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::{Value, json};
use support::{mend, testbed_image, text};

const SPECS: &str = r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;
const GOLD: &str = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_more.py\n@@ -0,0 +1,7 @@\n+import unittest\n+from calc import add\n+\n+\n+class More(unittest.TestCase):\n+    def test_sum(self):\n+        self.assertEqual(add(2, 3), 5)\n";
const REPRO_WEAK: &str = "from calc import add\nassert add(0, 2) == 2, add(0, 2)\n";
const REPRO: &str =
    "from calc import add\nassert add(0, 2) == 2 and add(2, 3) == 5, (add(0, 2), add(2, 3))\n";

fn make_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(
        dir.join("calc.py"),
        "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    )
    .unwrap();
    std::fs::write(dir.join("tests/__init__.py"), "").unwrap();
    std::fs::write(
        dir.join("tests/test_calc.py"),
        "import unittest\n\nfrom calc import mul\n\n\nclass Mul(unittest.TestCase):\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n",
    )
    .unwrap();
    mend_sandbox::testing::commit_all(dir, "base").to_string()
}

fn build_image(work: &Path) -> (String, String) {
    let ctx = work.join("ctx");
    let commit = make_repo(&ctx.join("repo"));
    let tag = "mend-select-calc:latest".to_string();
    testbed_image(&ctx, &tag);
    (tag, commit)
}

fn bash(cmd: String) -> Reply {
    Reply::tool_calls(&[("bash", json!({ "command": cmd }))])
}
fn repro(t: &str) -> Reply {
    bash(format!("cat > reproduce_issue.py <<'EOF'\n{t}EOF\n"))
}
fn edit(old: &str, new: &str) -> Reply {
    Reply::tool_calls(&[(
        "edit",
        json!({"mode": "replace", "path": "calc.py", "old_text": old, "new_text": new}),
    )])
}
fn submit() -> Reply {
    Reply::tool_calls(&[("submit", json!({"summary": "done"}))])
}

fn answer(r: &Received) -> Reply {
    let body = r.json();
    let turns = body["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
        .unwrap_or(0);
    let steps = match (body["model"].as_str(), body["seed"].as_i64()) {
        // The retry run: the first attempt gives up, the retry (seed 2) is right.
        (Some("retry-model"), None) => vec![submit()],
        (Some("retry-model"), Some(_)) => vec![edit("a - b", "a + b"), submit()],
        // Fails the stronger reproduction.
        (_, Some(1)) => vec![repro(REPRO_WEAK), edit("a - b", "b"), submit()],
        // Right about add, but breaks mul (test_mul passed before).
        (_, Some(2)) => vec![
            repro(REPRO),
            edit("a - b", "a + b"),
            edit("a * b", "a ** b"),
            submit(),
        ],
        _ => vec![repro(REPRO), edit("a - b", "a + b"), submit()],
    };
    steps
        .into_iter()
        .nth(turns)
        .unwrap_or_else(submit)
        .with_usage(1000, 50)
}

fn run(work: &Path, server: &TestServer, run_id: &str, model: &str, extra: &[&str]) -> String {
    let out = mend()
        .args([
            "swebench",
            "run",
            "--no-review",
            "--dataset",
            "instances.jsonl",
            "--run-id",
            run_id,
            "--workers",
            "2",
            "--images",
            "local",
            "--image-map",
            "images.json",
            "--specs",
            "specs.json",
            "--model",
            model,
            "--base-url",
            &server.base_url(),
            "--eval",
        ])
        .args(extra)
        .current_dir(work)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_candidate_is_chosen_from_a_mixed_pool_and_an_empty_attempt_is_retried() {
    let work = tempfile::tempdir().unwrap();
    let (image, commit) = build_image(work.path());
    let mut lines = String::new();
    for i in 1..=2 {
        lines.push_str(&json!({
            "instance_id": format!("mendtest__calc-{i}"), "repo": "mendtest/calc", "base_commit": commit, "version": "0.1",
            "patch": GOLD, "test_patch": TEST_PATCH, "problem_statement": "add() subtracts: add(2, 3) gives -1",
            "FAIL_TO_PASS": ["test_sum (tests.test_more.More.test_sum)"], "PASS_TO_PASS": [],
        }).to_string());
        lines.push('\n');
    }
    std::fs::write(work.path().join("instances.jsonl"), lines).unwrap();
    std::fs::write(work.path().join("specs.json"), SPECS).unwrap();
    std::fs::write(
        work.path().join("images.json"),
        json!({"mendtest__calc-1": image, "mendtest__calc-2": image}).to_string(),
    )
    .unwrap();
    let server = TestServer::with_handler(answer).await;

    let id = format!("sel-{}", std::process::id());
    let stderr = run(
        work.path(),
        &server,
        &id,
        "gpt-4o-mini",
        &["--candidates", "3", "--instance-ids", "mendtest__calc-1"],
    );
    let dir = work.path().join("runs").join(&id);
    let log = std::fs::read_to_string(dir.join("logs/mendtest__calc-1.log")).unwrap_or_default();
    assert!(stderr.contains("resolved 1/1"), "{stderr}\n{log}");
    let pred: Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("predictions.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let patch = pred["model_patch"].as_str().unwrap();
    assert!(patch.contains("+    return a + b"), "{patch}");
    assert!(!patch.contains("**"), "{patch}");
    let summary = read(&dir.join("summary.json"));
    let sel = &summary["instances"][0]["selection"];
    assert_eq!(sel["winner"], 2, "{summary}");
    assert_eq!(sel["differs_from_first"], true);
    assert_eq!(summary["choice_differs_from_first"], 1);
    // Three attempts were paid for: the instance's cost counts them all.
    assert!(server.requests().len() >= 9, "{}", server.requests().len());
    let traj = read(&dir.join("trajectories/mendtest__calc-1.traj.json"));
    let rows = traj["selection"]["choice"]["rows"].as_array().unwrap();
    assert_eq!(rows[0]["reproductions_passed"], 1, "{}", traj["selection"]);
    assert_eq!(rows[1]["regressions"], 1, "{}", traj["selection"]);
    assert_eq!(rows[2]["score"], 3000, "{}", traj["selection"]);
    for k in 1..=3 {
        assert!(
            dir.join(format!("trajectories/mendtest__calc-1.cand{k}.traj.json"))
                .exists()
        );
    }
    let report = mend()
        .args(["swebench", "report", &id])
        .current_dir(work.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&report.stdout);
    assert!(
        out.contains("the choice differed from the first candidate on 1"),
        "{}",
        text(&report)
    );

    // One candidate: the attempt that made no change is run once more.
    let id2 = format!("retry-{}", std::process::id());
    let stderr = run(
        work.path(),
        &server,
        &id2,
        "retry-model",
        &["--instance-ids", "mendtest__calc-2"],
    );
    assert!(stderr.contains("resolved 1/1"), "{stderr}");
    let summary = read(&work.path().join("runs").join(&id2).join("summary.json"));
    assert_eq!(summary["retried"], 1, "{summary}");
    assert_eq!(summary["instances"][0]["selection"]["retried"], true);
    assert!(summary["instances"][0]["patch_bytes"].as_u64().unwrap() > 0);
}
