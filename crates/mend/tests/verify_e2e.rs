//! mend's own checks at `submit`, end to end on the real Docker engine with scripted models
//! (mend-llm's chat-completions test server): the reproduction run before and after the
//! change, the regression guard catching a broken existing test in a SWE-bench run and the
//! model repairing it, a pre-existing test failure that does not use up repair rounds, and
//! the review round confirming and revising.
mod support;

use std::path::Path;

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::{Value, json};
use support::{containers_of, fixture_repo, mend, run_containers, run_fix, testbed_image, text};

const BUGGY: &str = "    return len(text.split(\" \"))";
const FIXED: &str = "    return len(text.split())";
const REPRO: &str = "from textkit import word_count\n\nassert word_count(\"the  quick brown   fox\") == 4, word_count(\"the  quick brown   fox\")\nprint(\"ok\")\n";

fn edit(path: &str, old: &str, new: &str) -> Reply {
    Reply::tool_calls(&[(
        "edit",
        json!({"mode": "replace", "path": path, "old_text": old, "new_text": new}),
    )])
}
fn create(path: &str, text: &str) -> Reply {
    Reply::tool_calls(&[(
        "edit",
        json!({"mode": "create", "path": path, "new_text": text}),
    )])
}
fn submit() -> Reply {
    Reply::tool_calls(&[("submit", json!({"summary": "done"}))])
}

fn verification(traj: &Value) -> &Value {
    let v = &traj["verification"];
    assert!(v.is_object(), "no verification record: {traj}");
    v
}

/// `mend fix` (its review on by default): the agent writes its reproduction, fixes the bug and submits; the
/// review shows it the diff beside the issue and it revises (a docstring), then submits
/// again. The reproduction failed on the base commit and passes on the patch, both
/// recorded; it stays out of the patch; the trajectory replays to the same patch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reproduction_before_and_after_and_a_revising_review() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let doc_old = "    \"\"\"Return the number of words in ``text``.\"\"\"";
    let doc_new = "    \"\"\"Return the number of whitespace-separated words in ``text``.\"\"\"";
    let script = vec![
        create("reproduce_issue.py", REPRO),
        edit("textkit/stats.py", BUGGY, FIXED),
        submit(),
        edit("textkit/stats.py", doc_old, doc_new),
        submit(),
    ];
    let run = run_fix(repo.path(), "docker", script, &["--review"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let obs = run.observations();
    // The system prompt asked for the reproduction by name.
    let system = run.requests[0]["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("reproduce_issue.py"), "{system}");
    let review = obs
        .iter()
        .find(|o| o.contains("review it once against the issue"))
        .unwrap_or_else(|| panic!("no review round: {obs:?}"));
    assert!(
        review.contains("+    return len(text.split())") && review.contains("word_count"),
        "the review shows the diff and the issue: {review}"
    );
    assert!(
        review.contains("on the original code it exits non-zero")
            && review.contains("with your change it exits 0"),
        "{review}"
    );
    let patch = run.patch.as_deref().unwrap();
    assert!(
        patch.contains("+    return len(text.split())") && patch.contains("whitespace-separated"),
        "{patch}"
    );
    assert!(!patch.contains("reproduce_issue.py"), "{patch}");
    let traj = run.trajectory.clone().unwrap();
    let v = verification(&traj);
    eprintln!("checks took {} ms", v["ms"]);
    assert_eq!(v["reproduction"]["path"], "reproduce_issue.py");
    assert_eq!(v["repro_base"]["outcome"], "reproduces", "{v}");
    assert!(
        v["repro_base"]["output"]
            .as_str()
            .unwrap()
            .contains("AssertionError"),
        "{v}"
    );
    assert_eq!(v["repro_final"]["outcome"], "fixed", "{v}");
    assert_eq!(v["review"]["outcome"], "revised", "{v}");
    let decisions: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["review", "accepted"], "{v}");
    // The guard ran the related tests (before and after) and found nothing broken.
    assert_eq!(
        v["regression_set"]["files"][0]["path"], "tests/test_stats.py",
        "{v}"
    );
    assert!(v["regressions"].as_array().unwrap().is_empty(), "{v}");
    // The revision went through the tests again.
    assert_eq!(traj["test_runs"].as_array().unwrap().len(), 2);
    assert!(containers_of(run.pid).is_empty());

    // The recorded run (with its review round) replays to the same patch.
    let saved = tempfile::tempdir().unwrap();
    let recording = saved.path().join("run.traj.json");
    std::fs::write(&recording, traj.to_string()).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    fixture_repo("textkit", fresh.path());
    let replayed = saved.path().join("replayed.patch");
    let out = mend()
        .args(["fix", "--repo"])
        .arg(fresh.path())
        .arg("--issue")
        .arg(format!(
            "@{}",
            support::fixtures().join("textkit/issue.md").display()
        ))
        .args(["--sandbox", "docker", "--replay"])
        .arg(&recording)
        .arg("--out")
        .arg(&replayed)
        .env("XDG_CONFIG_HOME", saved.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&replayed).unwrap(), patch);
}

/// A test that fails on the base commit for reasons of its own (no GPU) does not use up
/// repair rounds: shown once, free; a failure the change causes still gets its repair
/// round (the feedback says 2 are left: the first showing cost none); and once the change's
/// own failure is repaired the run ends without asking again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_was_there_before_does_not_use_up_repair_rounds() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    std::fs::write(
        repo.path().join("tests/test_gpu.py"),
        "import unittest\n\n\nclass Gpu(unittest.TestCase):\n    def test_needs_a_gpu(self):\n        self.fail(\"no GPU on this machine\")\n",
    )
    .unwrap();
    mend_sandbox::testing::commit_all(repo.path(), "a test that needs a GPU");
    let broken = "    return len(text.split()) + 1";
    let script = vec![
        edit("textkit/stats.py", BUGGY, FIXED),
        submit(),
        edit("textkit/stats.py", FIXED, broken),
        submit(),
        edit("textkit/stats.py", broken, FIXED),
        submit(),
    ];
    let run = run_fix(repo.path(), "docker", script, &[]).await;
    let obs = run.observations();
    let feedback: Vec<&String> = obs
        .iter()
        .filter(|o| o.contains("mend ran the tests"))
        .collect();
    assert_eq!(feedback.len(), 2, "{obs:?}");
    assert!(
        feedback[0].contains("Every failing test also fails without your change")
            && feedback[0].contains("test_needs_a_gpu")
            && feedback[0].contains("does not use up a repair round"),
        "{}",
        feedback[0]
    );
    assert!(
        feedback[1].contains("test_single_spaces") && feedback[1].contains("Repair rounds left: 2"),
        "the change's own failure gets a repair round, and both were left: {}",
        feedback[1]
    );
    assert!(
        feedback[1].contains("also fail without your change")
            && feedback[1].contains("test_needs_a_gpu"),
        "{}",
        feedback[1]
    );
    let traj = run.trajectory.clone().unwrap();
    assert_eq!(
        traj["exit_status"]["detail"]["tests"],
        "only_preexisting_failures",
        "{}",
        run.stderr()
    );
    // Tests fail, so the exit code says so (3), but the run did not ask a fourth time.
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    assert_eq!(run.requests.len(), 6);
    assert!(
        run.stderr()
            .contains("tests passing except ones that failed before"),
        "{}",
        run.stderr()
    );
    let v = verification(&traj);
    eprintln!("checks took {} ms", v["ms"]);
    let old: Vec<&str> = v["preexisting_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        old.iter().any(|t| t.contains("test_needs_a_gpu")),
        "{old:?}"
    );
    let decisions: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["shown", "repair", "accepted"], "{v}");
    assert!(containers_of(run.pid).is_empty());
}

const SPECS: &str = r#"{"repos": {"mendtest/shapes": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;
const SHAPES: &str = "def scale(size, factor):\n    \"\"\"Scale a size by a factor. The factor's sign is ignored: -2 doubles.\"\"\"\n    return size * factor\n\n\ndef area(w, h):\n    return w * h\n";
const SHAPES_TESTS: &str = "import unittest\n\nfrom shapes import area, scale\n\n\nclass Shapes(unittest.TestCase):\n    def test_scale(self):\n        self.assertEqual(scale(2, 3), 6)\n\n    def test_a_negative_size_stays_negative(self):\n        self.assertEqual(scale(-2, 3), -6)\n\n    def test_area(self):\n        self.assertEqual(area(2, 3), 6)\n";
const SHAPES_REPRO: &str =
    "from shapes import scale\n\nassert scale(2, -3) == 6, scale(2, -3)\nprint(\"fixed\")\n";
const SHAPES_GOLD: &str = "diff --git a/shapes.py b/shapes.py\n--- a/shapes.py\n+++ b/shapes.py\n@@ -1,6 +1,6 @@\n def scale(size, factor):\n     \"\"\"Scale a size by a factor. The factor's sign is ignored: -2 doubles.\"\"\"\n-    return size * factor\n+    return size * abs(factor)\n \n \n def area(w, h):\n";

/// The instance image: mend's base image with the repository in /testbed.
fn build_shapes_image(work: &Path) -> (String, String) {
    let repo = work.join("ctx/repo");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("shapes.py"), SHAPES).unwrap();
    std::fs::write(repo.join("tests/__init__.py"), "").unwrap();
    std::fs::write(repo.join("tests/test_shapes.py"), SHAPES_TESTS).unwrap();
    let commit = mend_sandbox::testing::commit_all(&repo, "base").to_string();
    let tag = "mend-verify-e2e-shapes:latest".to_string();
    testbed_image(&work.join("ctx"), &tag);
    (tag, commit)
}

/// The scripted model of the SWE-bench run: reproduction, a fix that breaks an existing
/// test, submit; on the regression report, the right fix and submit; on the review, submit
/// unchanged.
fn shapes_model(r: &Received) -> Reply {
    let body = r.json();
    let msgs = body["messages"].as_array().unwrap();
    let last = msgs
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let turns = msgs.iter().filter(|m| m["role"] == "assistant").count();
    if last.contains("review it once against the issue") {
        return submit();
    }
    if last.contains("passed before your change and fail with it") {
        return edit(
            "shapes.py",
            "return abs(size * factor)",
            "return size * abs(factor)",
        );
    }
    match turns {
        0 => create("reproduce_issue.py", SHAPES_REPRO),
        1 => edit(
            "shapes.py",
            "return size * factor",
            "return abs(size * factor)",
        ),
        _ => submit(),
    }
}

/// `mend swebench run` (tests on submit off, as for SWE-bench): the guard picks the test
/// file that imports the changed module, runs it on the base commit and on the patch, and
/// the test the first fix broke goes back to the model, which repairs it; the reproduction
/// fails before and passes after; the review confirms; the prediction is the right fix and
/// resolves the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swebench_regression_caught_repaired_and_the_review_confirms() {
    let work = tempfile::tempdir().unwrap();
    let (image, commit) = build_shapes_image(work.path());
    let id = "mendtest__shapes-1";
    // The official test patch adds a test to the file the guard runs, so the PASS_TO_PASS
    // test the first fix broke is graded too.
    let test_patch = "diff --git a/tests/test_shapes.py b/tests/test_shapes.py\n--- a/tests/test_shapes.py\n+++ b/tests/test_shapes.py\n@@ -12,3 +12,6 @@ class Shapes(unittest.TestCase):\n \n     def test_area(self):\n         self.assertEqual(area(2, 3), 6)\n+\n+    def test_negative_factor(self):\n+        self.assertEqual(scale(2, -3), 6)\n";
    std::fs::write(
        work.path().join("instances.jsonl"),
        json!({
            "instance_id": id, "repo": "mendtest/shapes", "base_commit": commit, "version": "0.1",
            "patch": SHAPES_GOLD, "test_patch": test_patch,
            "problem_statement": "scale(2, -3) returns -6, but the docstring says the factor's sign is ignored; it should return 6.",
            "FAIL_TO_PASS": ["test_negative_factor (tests.test_shapes.Shapes.test_negative_factor)"],
            "PASS_TO_PASS": ["test_scale (tests.test_shapes.Shapes.test_scale)",
                             "test_a_negative_size_stays_negative (tests.test_shapes.Shapes.test_a_negative_size_stays_negative)",
                             "test_area (tests.test_shapes.Shapes.test_area)"],
        })
        .to_string()
            + "\n",
    )
    .unwrap();
    std::fs::write(work.path().join("specs.json"), SPECS).unwrap();
    std::fs::write(
        work.path().join("images.json"),
        json!({ id: image }).to_string(),
    )
    .unwrap();
    let server = TestServer::with_handler(shapes_model).await;
    let run_id = format!("verify-{}", std::process::id());
    let out = mend()
        .args([
            "swebench",
            "run",
            "--dataset",
            "instances.jsonl",
            "--run-id",
            &run_id,
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
            "--eval",
        ])
        .current_dir(work.path())
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dir = work.path().join("runs").join(&run_id);
    let traj: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("trajectories/{id}.traj.json"))).unwrap(),
    )
    .unwrap();
    let v = verification(&traj);
    eprintln!("checks took {} ms", v["ms"]);
    assert_eq!(
        v["regression_set"]["files"][0]["path"], "tests/test_shapes.py",
        "{v}"
    );
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks[0]["decision"], "repair", "{v}");
    assert_eq!(
        checks[0]["regressions"],
        json!([
            "test_a_negative_size_stays_negative (tests.test_shapes.Shapes.test_a_negative_size_stays_negative)"
        ]),
        "{v}"
    );
    assert_eq!(checks[1]["decision"], "review", "{v}");
    assert!(v["regressions"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["review"]["outcome"], "confirmed", "{v}");
    assert_eq!(v["repro_base"]["outcome"], "reproduces", "{v}");
    assert_eq!(v["repro_final"]["outcome"], "fixed", "{v}");
    // The model was told which test broke, with its failure.
    let requests = server.requests();
    let told = requests
        .iter()
        .filter_map(|r| r.json()["messages"].as_array().unwrap().last().cloned())
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .find(|c| c.contains("passed before your change and fail with it"))
        .expect("no regression report reached the model");
    assert!(
        told.contains("test_a_negative_size_stays_negative") && told.contains("6 != -6"),
        "{told}"
    );
    let preds = std::fs::read_to_string(dir.join("predictions.jsonl")).unwrap();
    let pred: Value = serde_json::from_str(preds.lines().next().unwrap()).unwrap();
    let patch = pred["model_patch"].as_str().unwrap();
    assert!(
        patch.contains("+    return size * abs(factor)") && !patch.contains("reproduce_issue"),
        "{patch}"
    );
    // The official tests (FAIL_TO_PASS and the PASS_TO_PASS test the first fix broke) pass.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resolved 1/1"),
        "{}",
        text(&out)
    );
    assert_eq!(run_containers(&run_id), 0, "containers left behind");
}
