//! `mend swebench run` through the real binary: synthetic SWE-bench-format instances over a
//! small real repository (its image built FROM mend's base image), the agent answered by
//! mend-llm's scripted chat-completions server, 2 workers; the process killed with SIGKILL
//! in the middle, then the same run id resumed with `--eval`, and `mend swebench report`.
mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{mend, run_containers, testbed_image};

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::json;

const SPECS: &str = r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;
const GOLD: &str = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_more.py\n@@ -0,0 +1,7 @@\n+import unittest\n+from calc import add\n+\n+\n+class More(unittest.TestCase):\n+    def test_zero(self):\n+        self.assertEqual(add(0, 2), 2)\n";

fn make_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(dir.join("tests/__init__.py"), "").unwrap();
    mend_sandbox::testing::commit_all(dir, "base").to_string()
}

/// The instance image: mend's base image with the repository in /testbed.
fn build_image(work: &Path) -> (String, String) {
    let ctx = work.join("ctx");
    let commit = make_repo(&ctx.join("repo"));
    let tag = "mend-swebench-cli-run-calc:latest".to_string();
    testbed_image(&ctx, &tag);
    (tag, commit)
}

static SLOW_CASE_3: AtomicBool = AtomicBool::new(true);

/// Fix calc.py, then submit; case 3 thinks for a minute while `SLOW_CASE_3` is set.
fn answer(r: &Received) -> Reply {
    let body = r.json();
    let msgs = body["messages"].as_array().unwrap();
    let issue = msgs
        .get(1)
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let turns = msgs.iter().filter(|m| m["role"] == "assistant").count();
    let reply = match turns {
        0 => Reply::tool_calls(&[(
            "edit",
            json!({"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
        )]),
        _ => Reply::tool_calls(&[("submit", json!({"summary": "add adds"}))]),
    };
    if turns == 0 && issue.contains("case 3") && SLOW_CASE_3.load(Ordering::SeqCst) {
        return reply.with_delay(Duration::from_secs(60));
    }
    reply.with_usage(1000, 50)
}

fn preds(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_survives_sigkill_and_resumes_then_evaluates_and_reports() {
    let work = tempfile::tempdir().unwrap();
    let (image, commit) = build_image(work.path());
    let dataset = work.path().join("instances.jsonl");
    let mut lines = String::new();
    for i in 1..=4 {
        lines.push_str(&json!({
            "instance_id": format!("mendtest__calc-{i}"), "repo": "mendtest/calc", "base_commit": commit, "version": "0.1",
            "patch": GOLD, "test_patch": TEST_PATCH, "problem_statement": format!("add() subtracts (case {i})"),
            "FAIL_TO_PASS": ["test_zero (tests.test_more.More.test_zero)"], "PASS_TO_PASS": [],
        }).to_string());
        lines.push('\n');
    }
    std::fs::write(&dataset, lines).unwrap();
    std::fs::write(work.path().join("specs.json"), SPECS).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = (1..=4)
        .map(|i| (format!("mendtest__calc-{i}"), json!(image)))
        .collect();
    std::fs::write(
        work.path().join("images.json"),
        serde_json::Value::Object(map).to_string(),
    )
    .unwrap();
    let server = TestServer::with_handler(answer).await;
    let run_id = format!("cli-{}", std::process::id());
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "swebench",
            "run",
            "--no-review",
            "--dataset",
            "instances.jsonl",
            "--run-id",
            &run_id,
            "--workers",
            "2",
            "--images",
            "local",
            "--image-map",
            "images.json",
            "--specs",
            "specs.json",
            "--model",
            "gpt-4o-mini",
            "--base-url",
            &server.base_url(),
            "--test-on-submit",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let predictions = work
        .path()
        .join("runs")
        .join(&run_id)
        .join("predictions.jsonl");

    // Killed (SIGKILL: no cleanup at all) once two instances are written and case 3 is thinking.
    let mut child = mend()
        .args(args(&[]))
        .current_dir(work.path())
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let case3_waiting = server.requests().iter().any(|r| {
            r.json()["messages"][1]["content"]
                .as_str()
                .unwrap_or("")
                .contains("case 3")
        });
        if preds(&predictions).len() >= 2 && case3_waiting {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not get going"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = preds(&predictions);
    assert!(before.len() == 2 || before.len() == 3, "{before:?}");

    // Resumed: what was written stays, the rest runs; the killed run's containers are swept.
    SLOW_CASE_3.store(false, Ordering::SeqCst);
    let out = mend()
        .args(args(&["--eval"]))
        .current_dir(work.path())
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} already done of 4", before.len())),
        "{stderr}"
    );
    assert!(stderr.contains("resolved 4/4"), "{stderr}");
    let after = preds(&predictions);
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "finished predictions were rewritten"
    );
    assert_eq!(run_containers(&run_id), 0, "containers left behind");

    let out = mend()
        .args(["swebench", "report", &run_id])
        .current_dir(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("mendtest/calc") && stdout.contains("submitted 4"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("runs").join(&run_id).join("report.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["total"]["resolved"], 4);
    assert!(report["total"]["cost_usd"].as_f64().unwrap() > 0.0);
}
