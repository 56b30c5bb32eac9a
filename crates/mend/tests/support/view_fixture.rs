//! The fixture of `mend view`'s browser test and benchmark: real `mend swebench run --eval`
//! batches of synthetic SWE-bench-format instances over a small repository (its image built
//! FROM mend's base image), the agent answered by mend-llm's scripted chat-completions server.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::{Value, json};

use crate::support::testbed_image;
pub use crate::support::{mend, text};

const SPECS: &str = r#"{"repos": {
  "mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}},
  "mendtest/numbers": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;
const GOLD: &str = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_more.py\n@@ -0,0 +1,10 @@\n+import unittest\n+from calc import add\n+\n+\n+class More(unittest.TestCase):\n+    def test_zero(self):\n+        self.assertEqual(add(0, 2), 2)\n+\n+    def test_one(self):\n+        self.assertEqual(add(1, 0), 1)\n";
pub const IMAGE: &str = "mend-view-test-calc:latest";

/// The instance image: mend's base image with the repository in /testbed.
pub fn build_image(work: &Path) -> String {
    let repo = work.join("ctx/repo");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(repo.join("tests/__init__.py"), "").unwrap();
    let commit = mend_sandbox::testing::commit_all(&repo, "base").to_string();
    testbed_image(&work.join("ctx"), IMAGE);
    commit
}

/// An assistant message with some reasoning before its one tool call.
pub fn say(thought: &str, tool: &str, args: Value, usage: (u64, u64)) -> Reply {
    Reply::message(
        json!({"role": "assistant", "content": thought,
               "reasoning_content": format!("(thinking about {tool})"),
               "tool_calls": [{"id": "call_1", "type": "function",
                               "function": {"name": tool, "arguments": args.to_string()}}]}),
        "tool_calls",
    )
    .with_usage(usage.0, usage.1)
}

/// The scripted agent. Case 1: look, fix, test, submit (run `b` fixes it wrongly); case 2
/// the same, wrong in run `a`; case 3 keeps reading until the step limit; numbers-1 fixes
/// it straight away; numbers-2 submits nothing.
pub fn answer(run: char, r: &Received) -> Reply {
    let body = r.json();
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let issue = msgs
        .get(1)
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let turn = msgs.iter().filter(|m| m["role"] == "assistant").count() as u64;
    let case = |s: &str| issue.contains(s);
    let usage = (800 + 400 * turn, 40 + 10 * turn);
    let wrong = (case("calc case 1") && run == 'b') || (case("calc case 2") && run == 'a');
    let fix = if wrong { "a * b" } else { "a + b" };
    if case("calc case 3") {
        let n = 150 + turn;
        return say(
            &format!("Still reading; printing {n} lines."),
            "bash",
            json!({"command": format!("seq 1 {n}")}),
            usage,
        );
    }
    if case("numbers case 2") {
        return say(
            "Nothing to change.",
            "submit",
            json!({"summary": "no change needed"}),
            usage,
        );
    }
    let plan: Vec<(&str, &str, Value)> = if case("numbers case 1") {
        vec![
            (
                "The bug is in add().",
                "edit",
                json!({"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
            ),
            ("Fixed.", "submit", json!({"summary": "add adds"})),
        ]
    } else {
        vec![
            (
                "Let me read calc.py first.",
                "view",
                json!({"path": "calc.py"}),
            ),
            (
                "Check what add(2, 3) gives now.",
                "bash",
                json!({"command": "python3 -c 'import calc; print(calc.add(2, 3))'"}),
            ),
            (
                "add() subtracts; make it add.",
                "edit",
                json!({"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": fix}),
            ),
            ("Run the tests.", "run_tests", json!({})),
            ("Done.", "submit", json!({"summary": "add() now adds"})),
        ]
    };
    let (thought, tool, args) = plan[(turn as usize).min(plan.len() - 1)].clone();
    say(thought, tool, args, usage)
}

/// The dataset (calc cases 1-3, numbers cases 1-2), specs and image map in `work`.
pub fn write_inputs(work: &Path, commit: &str) {
    let mut lines = String::new();
    let mut images = serde_json::Map::new();
    for (repo, name, n) in [
        ("mendtest/calc", "calc", 3),
        ("mendtest/numbers", "numbers", 2),
    ] {
        for i in 1..=n {
            let id = format!("mendtest__{name}-{i}");
            lines.push_str(&json!({
                "instance_id": id, "repo": repo, "base_commit": commit, "version": "0.1",
                "patch": GOLD, "test_patch": TEST_PATCH,
                "problem_statement": format!("add() subtracts instead of adding ({name} case {i}).\n\nadd(2, 3) returns -1, expected 5."),
                "FAIL_TO_PASS": ["test_zero (tests.test_more.More.test_zero)"],
                "PASS_TO_PASS": ["test_one (tests.test_more.More.test_one)"],
            }).to_string());
            lines.push('\n');
            images.insert(id, json!(IMAGE));
        }
    }
    std::fs::write(work.join("instances.jsonl"), lines).unwrap();
    std::fs::write(work.join("specs.json"), SPECS).unwrap();
    std::fs::write(work.join("images.json"), Value::Object(images).to_string()).unwrap();
}

/// One real batch run with evaluation, answered by the scripted model for `run`.
pub async fn batch(work: &Path, run_id: &str, run: char, extra: &[&str]) {
    let server = TestServer::with_handler(move |r| answer(run, r)).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
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
            "gpt-4o-mini",
            "--base-url",
            &server.base_url(),
            "--max-steps",
            "6",
            "--test-on-submit",
            "--eval",
        ])
        .args(extra)
        .current_dir(work)
        .env_remove("OPENAI_API_KEY")
        .env("XDG_CONFIG_HOME", work)
        .output()
        .await
        .unwrap();
    // Exit 3 would mean instance errors; every instance must finish and be graded.
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resolved "),
        "{}",
        text(&out)
    );
}

/// Debian's Chromium, or the one `MEND_CHROMIUM` names. Its absence fails the test.
pub fn chromium() -> PathBuf {
    if let Ok(p) = std::env::var("MEND_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "no Chromium: the browser tests need Debian's `chromium` package (docker/setup-host.sh installs it) or MEND_CHROMIUM=/path/to/chrome"
    );
}

pub struct Browser {
    bin: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            bin: chromium(),
            profile: tempfile::tempdir().unwrap(),
        }
    }

    pub fn run(&self, extra: &[&str], url: &str) -> String {
        let out = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        assert!(out.status.success(), "chromium on {url}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The DOM after the page loaded and its script ran.
    pub fn dom(&self, url: &str) -> String {
        let dom = self.run(&["--dump-dom"], url);
        assert!(
            dom.contains("mend view"),
            "{url} did not render a page: {dom}"
        );
        dom
    }

    pub fn screenshot(&self, url: &str, name: &str, size: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/view");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        self.run(
            &[
                &format!("--screenshot={}", path.display()),
                &format!("--window-size={size}"),
            ],
            url,
        );
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "screenshot {} is {len} bytes", path.display());
        path
    }
}
