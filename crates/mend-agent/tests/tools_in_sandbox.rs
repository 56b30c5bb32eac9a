//! The model's tools against real sandboxes holding a real repository with a real bug.
use std::path::Path;
use std::sync::Arc;

use mend_agent::workspace;
use mend_agent::{ToolResult, Toolbox};
use mend_sandbox::{DockerConfig, Sandbox};
use serde_json::json;

/// Two commits: the first has the bug (`add` subtracts); the second adds a README.
fn make_repo(dir: &Path) -> (String, String) {
    let write = |p: &str, s: &str| {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, s).unwrap();
    };
    write(
        "calc.py",
        "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    );
    write("tests/__init__.py", "");
    write(
        "tests/test_calc.py",
        "import unittest\nfrom calc import add, mul\n\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n",
    );
    let first = mend_sandbox::testing::commit_all(dir, "buggy");
    write("README.md", "later\n");
    let second = mend_sandbox::testing::commit_all(dir, "readme");
    (first.to_string(), second.to_string())
}

async fn exercise(sb: Arc<dyn Sandbox>) {
    // The workspace is at the first commit: no README.
    assert!(sb.read_file("README.md").await.is_err());
    let mut tools = Toolbox::new(sb.clone(), None, None);
    let obs = |r: ToolResult| match r {
        ToolResult::Observation(o) => o,
        other => panic!("expected an observation, got {other:?}"),
    };

    let v = obs(tools
        .run("view", &json!({"path": "calc.py", "start": 1, "end": 2}))
        .await
        .unwrap());
    assert!(v.contains("     2\t    return a - b"), "{v}");
    let d = obs(tools.run("view", &json!({"path": "."})).await.unwrap());
    assert!(
        d.contains("tests/test_calc.py") && !d.contains(".git/"),
        "{d}"
    );
    let s = obs(tools
        .run("search", &json!({"pattern": "def (add|mul)"}))
        .await
        .unwrap());
    assert!(
        s.contains("2 matching lines") && s.contains("calc.py:1:def add"),
        "{s}"
    );

    // Tests fail before the fix (unittest detected: the base image has no pytest).
    let before = tools.run_tests(None).await.unwrap();
    assert!(!before.passed, "{before:?}");
    assert!(before.command.contains("unittest"), "{before:?}");

    // A non-unique edit is refused with line numbers; a syntax-breaking one is refused.
    let e = obs(tools
        .run(
            "edit",
            &json!({"mode": "replace", "path": "calc.py", "old_text": "def ", "new_text": "def  "}),
        )
        .await
        .unwrap());
    assert!(e.contains("occurs 2 times (at lines 1, 5)"), "{e}");
    let e = obs(tools.run("edit", &json!({"mode": "replace", "path": "calc.py", "old_text": "return a - b", "new_text": "return (a + b"})).await.unwrap());
    assert!(
        e.contains("edit refused") && e.contains("fail to parse"),
        "{e}"
    );
    assert!(
        sb.read_text("calc.py")
            .await
            .unwrap()
            .contains("return a - b"),
        "refused edit changed the file"
    );
    // Writing outside the repository is refused.
    let e = obs(tools
        .run(
            "edit",
            &json!({"mode": "create", "path": "../evil.py", "new_text": "x"}),
        )
        .await
        .unwrap());
    assert!(e.contains("escapes the repository root"), "{e}");

    // The fix, with its diff; then tests pass; undo restores.
    let e = obs(tools.run("edit", &json!({"mode": "replace", "path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})).await.unwrap());
    assert!(
        e.contains("-    return a - b") && e.contains("+    return a + b"),
        "{e}"
    );
    let after = tools.run_tests(None).await.unwrap();
    assert!(after.passed, "{after:?}");
    let patch = sb.diff().await.unwrap();
    assert!(
        patch.contains("+    return a + b") && patch.contains("a/calc.py"),
        "{patch}"
    );
    assert!(
        !patch.contains("__pycache__"),
        "tests run by the agent leave no bytecode: {patch}"
    );
    obs(tools
        .run("edit", &json!({"mode": "undo", "path": "calc.py"}))
        .await
        .unwrap());
    assert_eq!(sb.diff().await.unwrap(), "");

    // Bash: exit status and output reach the model.
    let b = obs(tools
        .run("bash", &json!({"command": "echo hi; exit 4"}))
        .await
        .unwrap());
    assert!(b.starts_with("[exit code 4]") && b.contains("hi"), "{b}");
    assert!(matches!(
        tools
            .run("submit", &json!({"summary": "done"}))
            .await
            .unwrap(),
        ToolResult::Submit { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_work_in_a_docker_workspace_at_an_older_revision() {
    let host = tempfile::tempdir().unwrap();
    let (first, _) = make_repo(host.path());
    let engine = mend_sandbox::testing::engine().await;
    let image = mend_sandbox::testing::base_image(&engine).await;
    let sb = workspace::docker_workspace(&engine, DockerConfig::new(image), host.path(), &first)
        .await
        .unwrap();
    exercise(Arc::new(sb)).await;
    // The user's checkout is still at the second commit with its README.
    assert!(host.path().join("README.md").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_work_in_a_local_workspace_at_an_older_revision() {
    let host = tempfile::tempdir().unwrap();
    let (first, _) = make_repo(host.path());
    let sb = workspace::local_workspace(host.path(), &first).unwrap();
    exercise(Arc::new(sb)).await;
    assert_eq!(
        std::fs::read_to_string(host.path().join("calc.py")).unwrap(),
        "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
    );
}
