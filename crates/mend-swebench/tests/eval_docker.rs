//! End to end on the real Docker engine: a synthetic SWE-bench-format instance over a small
//! real repository (made here with git2), its image built with `docker build` FROM mend's
//! offline base image, evaluated through `evaluate` with several predictions; the output
//! files are read back and compared field by field with the official format.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mend_swebench::{
    EvalOptions, Filter, Instance, LocalImages, Outcome, Prediction, PredictionsSource, Progress,
    Specs, evaluate, instance_log_dir,
};
use serde_json::Value;

const CALC: &str = "def add(a, b):\n    return a - b\n";
const TESTS: &str = "import unittest\nfrom calc import add\n\n\nclass TestCalc(unittest.TestCase):\n    def test_mul(self):\n        \"\"\"Multiplying\n        spans lines.\"\"\"\n        self.assertEqual(2 * 3, 6)\n";

const TEST_PATCH: &str = "diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -7,3 +7,6 @@ class TestCalc(unittest.TestCase):
         \"\"\"Multiplying
         spans lines.\"\"\"
         self.assertEqual(2 * 3, 6)
+
+    def test_add(self):
+        self.assertEqual(add(1, 2), 3)
";

const HANG_TEST_PATCH: &str = "diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -7,3 +7,7 @@ class TestCalc(unittest.TestCase):
         \"\"\"Multiplying
         spans lines.\"\"\"
         self.assertEqual(2 * 3, 6)
+
+    def test_hang(self):
+        import time
+        time.sleep(600)
";

const GOLD: &str = "diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
";

const SPECS: &str = r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;

fn make_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("calc.py"), CALC).unwrap();
    std::fs::write(dir.join("tests/__init__.py"), "").unwrap();
    std::fs::write(dir.join("tests/test_calc.py"), TESTS).unwrap();
    mend_sandbox::testing::commit_all(dir, "base").to_string()
}

async fn build_image(base: &str, ctx: &Path) -> String {
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nUSER root\nCOPY repo /testbed\nWORKDIR /testbed\n"),
    )
    .unwrap();
    let tag = "mend-swebench-e2e-calc:latest".to_string();
    let lines = Mutex::new(Vec::new());
    let r = mend_swebench::images::docker_build(&tag, ctx, &[], &|l: &str| {
        lines.lock().unwrap().push(l.to_string())
    })
    .await;
    assert!(r.is_ok(), "docker build failed: {r:?}");
    tag
}

fn instance(id: &str, base: &str, test_patch: &str, f2p: &[&str]) -> Instance {
    let v = serde_json::json!({
        "instance_id": id, "repo": "mendtest/calc", "base_commit": base, "version": "0.1",
        "patch": GOLD, "test_patch": test_patch, "problem_statement": "add() subtracts",
        "FAIL_TO_PASS": serde_json::to_string(f2p).unwrap(),
        "PASS_TO_PASS": ["Multiplying"],
    });
    mend_swebench::dataset::instance_from_value(v, "e2e", 1).unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evaluates_synthetic_instances_on_the_real_engine() {
    let engine = mend_sandbox::testing::engine().await;
    let base = mend_sandbox::testing::base_image(&engine).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    let commit = make_repo(&ctx.join("repo"));
    let image = build_image(&base, &ctx).await;

    let f2p = ["test_add (tests.test_calc.TestCalc.test_add)"];
    let ids = [
        "mendtest__calc-1",
        "mendtest__calc-2",
        "mendtest__calc-3",
        "mendtest__calc-4",
        "mendtest__calc-5",
        "mendtest__calc-6",
    ];
    let mut dataset: Vec<Instance> = ids[..5]
        .iter()
        .map(|id| instance(id, &commit, TEST_PATCH, &f2p))
        .collect();
    dataset.push(instance(
        ids[5],
        &commit,
        HANG_TEST_PATCH,
        &["test_hang (tests.test_calc.TestCalc.test_hang)"],
    ));

    let wrong = GOLD.replace("a + b", "a * b");
    let malformed = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def subtract(x, y):\n-    return x + y\n+    return x - y\n";
    let outside = "diff --git a/../evil.py b/../evil.py\nnew file mode 100644\n--- /dev/null\n+++ b/../evil.py\n@@ -0,0 +1 @@\n+owned = True\n";
    let model = "org/test-model";
    let pred = |id: &str, patch: Option<&str>| Prediction {
        instance_id: id.into(),
        model_name_or_path: model.into(),
        model_patch: patch.map(str::to_string),
    };
    let predictions = vec![
        pred(ids[0], Some(GOLD)),
        pred(ids[1], Some(&wrong)),
        pred(ids[2], Some("")),
        pred(ids[3], Some(malformed)),
        pred(ids[4], Some(outside)),
        pred(ids[5], Some(GOLD)),
    ];
    let map: BTreeMap<String, String> = ids
        .iter()
        .map(|id| (id.to_string(), image.clone()))
        .collect();
    let images = Arc::new(LocalImages::parse(&serde_json::to_string(&map).unwrap()).unwrap());
    let mut specs = Specs::builtin();
    specs.merge(Specs::from_json(SPECS).unwrap());
    let specs = Arc::new(specs);

    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let ev = events.clone();
    let mut opts = EvalOptions::new(
        dataset.clone(),
        PredictionsSource::List(predictions.clone()),
        "e2e-run",
        images.clone(),
    );
    opts.specs = specs.clone();
    opts.workers = 3;
    opts.timeout = Duration::from_secs(8);
    opts.log_root = work.path().join("logs/run_evaluation");
    opts.report_dir = work.path().to_path_buf();
    opts.progress = Some(Arc::new(move |p: &Progress| {
        ev.lock().unwrap().push(p.clone())
    }));
    let summary = evaluate(opts).await.expect("evaluate");

    let o = &summary.outcomes;
    assert_eq!(o[ids[0]], Outcome::Resolved, "{o:#?}");
    assert_eq!(o[ids[1]], Outcome::Unresolved, "{o:#?}");
    assert_eq!(o[ids[2]], Outcome::EmptyPatch);
    assert!(
        matches!(&o[ids[3]], Outcome::PatchApplyFailed(m) if m.contains("calc.py")),
        "{o:#?}"
    );
    assert!(
        matches!(&o[ids[4]], Outcome::PatchRejected(m) if m.contains("outside the repository")),
        "{o:#?}"
    );
    assert_eq!(o[ids[5]], Outcome::Timeout, "{o:#?}");

    // The summary file, field by field.
    assert_eq!(
        summary.report_path,
        work.path().join("org__test-model.e2e-run.json")
    );
    let s = read_json(&summary.report_path);
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        (
            n("total_instances"),
            n("submitted_instances"),
            n("completed_instances")
        ),
        (6, 6, 2)
    );
    assert_eq!(
        (
            n("resolved_instances"),
            n("unresolved_instances"),
            n("empty_patch_instances"),
            n("error_instances")
        ),
        (1, 1, 1, 3)
    );
    assert_eq!(s["resolved_ids"], serde_json::json!([ids[0]]));
    assert_eq!(s["unresolved_ids"], serde_json::json!([ids[1]]));
    assert_eq!(s["empty_patch_ids"], serde_json::json!([ids[2]]));
    assert_eq!(s["error_ids"], serde_json::json!([ids[3], ids[4], ids[5]]));
    assert_eq!(s["completed_ids"], serde_json::json!([ids[0], ids[1]]));
    assert_eq!(s["incomplete_ids"], serde_json::json!([]));
    assert_eq!(s["submitted_ids"].as_array().unwrap().len(), 6);
    assert_eq!(s["schema_version"], 2);
    assert_eq!(s.as_object().unwrap().len(), 15);

    // Per-instance files in the official layout.
    let dir = |id: &str| {
        instance_log_dir(
            &work.path().join("logs/run_evaluation"),
            "e2e-run",
            model,
            id,
        )
    };
    let gold_dir = dir(ids[0]);
    assert_eq!(
        gold_dir,
        work.path()
            .join("logs/run_evaluation/e2e-run/org__test-model/mendtest__calc-1")
    );
    let r = read_json(&gold_dir.join("report.json"));
    let g = &r[ids[0]];
    assert_eq!(r.as_object().unwrap().len(), 1);
    assert_eq!(g["patch_is_None"], false);
    assert_eq!(g["patch_exists"], true);
    assert_eq!(g["patch_successfully_applied"], true);
    assert_eq!(g["resolved"], true);
    assert_eq!(
        g["tests_status"]["FAIL_TO_PASS"],
        serde_json::json!({"success": f2p, "failure": []})
    );
    assert_eq!(
        g["tests_status"]["PASS_TO_PASS"],
        serde_json::json!({"success": ["Multiplying"], "failure": []})
    );
    assert_eq!(
        g["tests_status"]["FAIL_TO_FAIL"],
        serde_json::json!({"success": [], "failure": []})
    );
    assert_eq!(
        g["tests_status"]["PASS_TO_FAIL"],
        serde_json::json!({"success": [], "failure": []})
    );
    assert_eq!(
        std::fs::read_to_string(gold_dir.join("patch.diff")).unwrap(),
        GOLD
    );
    let out = std::fs::read_to_string(gold_dir.join("test_output.txt")).unwrap();
    assert!(
        out.contains("+ : '>>>>> Start Test Output'")
            && out.contains("+ : '>>>>> End Test Output'"),
        "{out}"
    );
    assert!(
        out.contains("test_add (tests.test_calc.TestCalc.test_add) ... ok"),
        "{out}"
    );
    let log = std::fs::read_to_string(gold_dir.join("run_instance.log")).unwrap();
    assert!(
        log.contains(">>>>> Applied Patch")
            && log.contains("Result for mendtest__calc-1: resolved: True"),
        "{log}"
    );

    let w = read_json(&dir(ids[1]).join("report.json"));
    assert_eq!(w[ids[1]]["resolved"], false);
    assert_eq!(
        w[ids[1]]["tests_status"]["FAIL_TO_PASS"]["failure"],
        serde_json::json!(f2p)
    );
    // Empty: nothing run, nothing written (official).
    assert!(!dir(ids[2]).exists());
    // Malformed and rejected: logs but no report.
    assert!(!dir(ids[3]).join("report.json").exists());
    assert!(
        std::fs::read_to_string(dir(ids[3]).join("run_instance.log"))
            .unwrap()
            .contains(">>>>> Patch Apply Failed")
    );
    assert!(!dir(ids[4]).join("report.json").exists());
    let t = std::fs::read_to_string(dir(ids[5]).join("test_output.txt")).unwrap();
    assert!(t.ends_with("\n\nTimeout error: 8 seconds exceeded."), "{t}");
    assert!(!dir(ids[5]).join("report.json").exists());

    // Progress: a start, and one finish per instance run, with the resolved count.
    {
        let ev = events.lock().unwrap();
        assert!(
            matches!(
                ev.first(),
                Some(Progress::Started {
                    to_run: 5,
                    already_graded: 0,
                    empty_patches: 1
                })
            ),
            "{:?}",
            ev.first()
        );
        let finished: Vec<_> = ev
            .iter()
            .filter_map(|e| {
                if let Progress::Finished {
                    done,
                    resolved_so_far,
                    ..
                } = e
                {
                    Some((*done, *resolved_so_far))
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(finished.len(), 5);
        assert_eq!(finished.last().map(|f| f.0), Some(5));
        assert_eq!(finished.iter().map(|f| f.1).max(), Some(1));
    }

    // Re-running the same run id skips what is graded (no container needed for these two).
    let mut again = EvalOptions::new(
        dataset.clone(),
        PredictionsSource::List(predictions.clone()),
        "e2e-run",
        images.clone(),
    );
    again.specs = specs.clone();
    again.filter = Filter {
        instance_ids: vec![ids[0].into(), ids[1].into()],
        ..Default::default()
    };
    again.log_root = work.path().join("logs/run_evaluation");
    again.report_dir = work.path().to_path_buf();
    let s2 = evaluate(again).await.expect("re-run");
    assert_eq!(
        s2.outcomes[ids[0]],
        Outcome::AlreadyGraded { resolved: true }
    );
    assert_eq!(
        s2.outcomes[ids[1]],
        Outcome::AlreadyGraded { resolved: false }
    );
    assert_eq!(
        (
            s2.report.total_instances,
            s2.report.resolved_instances,
            s2.report.unresolved_instances
        ),
        (2, 1, 1)
    );

    // `--predictions gold` validates the instance and its image.
    let mut gold = EvalOptions::new(dataset.clone(), PredictionsSource::Gold, "gold-run", images);
    gold.specs = specs;
    gold.filter = Filter {
        instance_ids: vec![ids[0].into(), ids[1].into()],
        ..Default::default()
    };
    gold.log_root = work.path().join("logs/run_evaluation");
    gold.report_dir = work.path().to_path_buf();
    let s3 = evaluate(gold).await.expect("gold run");
    assert_eq!(
        s3.report.resolved_ids,
        vec![ids[0].to_string(), ids[1].to_string()]
    );
    assert_eq!(s3.report_path, work.path().join("gold.gold-run.json"));

    // Every container of these runs is gone.
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=dev.mend.swebench.run_id"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout).to_string();
    assert!(
        left.trim().is_empty() || !left_is_ours(&left),
        "containers left: {left}"
    );
}

/// Containers of other, concurrent test processes may exist; ours are labelled with our run ids.
fn left_is_ours(ids: &str) -> bool {
    ids.split_whitespace().any(|id| {
        let out = std::process::Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{index .Config.Labels \"dev.mend.swebench.run_id\"}}",
                id,
            ])
            .output();
        out.map(|o| {
            let run = String::from_utf8_lossy(&o.stdout).trim().to_string();
            run == "e2e-run" || run == "gold-run"
        })
        .unwrap_or(false)
    })
}

#[tokio::test]
async fn predictions_for_unknown_instances_are_refused_before_any_container() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let ds = vec![instance("mendtest__calc-1", commit, TEST_PATCH, &[])];
    let preds = vec![Prediction {
        instance_id: "nope__nope-1".into(),
        model_name_or_path: "m".into(),
        model_patch: Some(GOLD.into()),
    }];
    let opts = EvalOptions::new(
        ds,
        PredictionsSource::List(preds),
        "r",
        Arc::new(LocalImages::default()),
    );
    let e = evaluate(opts).await.unwrap_err().to_string();
    assert!(e.contains("nope__nope-1"), "{e}");
}

/// Ctrl-C semantics: cancelling mid-run abandons the running instance (its container is
/// removed), keeps every finished instance's report, and still writes the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_keeps_finished_reports_and_removes_containers() {
    let engine = mend_sandbox::testing::engine().await;
    let base = mend_sandbox::testing::base_image(&engine).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    let commit = make_repo(&ctx.join("repo"));
    let image = build_image(&base, &ctx).await;
    let (fast, slow) = ("mendtest__calc-10", "mendtest__calc-11");
    let dataset = vec![
        instance(
            fast,
            &commit,
            TEST_PATCH,
            &["test_add (tests.test_calc.TestCalc.test_add)"],
        ),
        instance(
            slow,
            &commit,
            HANG_TEST_PATCH,
            &["test_hang (tests.test_calc.TestCalc.test_hang)"],
        ),
    ];
    let images =
        Arc::new(LocalImages::parse(&format!("{fast} {image}\n{slow} {image}\n")).unwrap());
    let mut specs = Specs::builtin();
    specs.merge(Specs::from_json(SPECS).unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = Arc::new(tx);
    let mut opts = EvalOptions::new(dataset, PredictionsSource::Gold, "cancel-run", images);
    opts.specs = Arc::new(specs);
    opts.workers = 2;
    opts.timeout = Duration::from_secs(300);
    opts.log_root = work.path().join("logs/run_evaluation");
    opts.report_dir = work.path().to_path_buf();
    opts.cancel = Some(rx);
    let t = tx.clone();
    opts.progress = Some(Arc::new(move |p: &Progress| {
        if let Progress::Finished { instance_id, .. } = p
            && instance_id == "mendtest__calc-10"
        {
            let _ = t.send(true);
        }
    }));
    let started = std::time::Instant::now();
    let summary = evaluate(opts).await.expect("evaluate");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "cancel did not stop the hanging instance"
    );
    assert_eq!(summary.outcomes[fast], Outcome::Resolved);
    assert_eq!(summary.outcomes[slow], Outcome::Cancelled);
    assert_eq!(summary.report.resolved_ids, vec![fast.to_string()]);
    assert_eq!(summary.report.error_ids, vec![slow.to_string()]);
    assert!(summary.report_path.exists());
    let dir = instance_log_dir(
        &work.path().join("logs/run_evaluation"),
        "cancel-run",
        "gold",
        fast,
    );
    assert_eq!(read_json(&dir.join("report.json"))[fast]["resolved"], true);
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=dev.mend.swebench.run_id=cancel-run",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "containers left behind"
    );
}

/// Issue 13 item 3: a record with no test lists (as in ../shared/data), or with both lists
/// given as `[]`, made a patch that only adds a comment "resolved". It is refused before
/// any container starts, naming the instance and `mine --instances`, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_without_test_lists_are_refused_not_graded() {
    let engine = mend_sandbox::testing::engine().await;
    let base = mend_sandbox::testing::base_image(&engine).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    let commit = make_repo(&ctx.join("repo"));
    let image = build_image(&base, &ctx).await;
    let comment_only = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,3 @@\n+# looked at this\n def add(a, b):\n     return a - b\n";
    let record = |id: &str, lists: Option<(Value, Value)>| {
        let mut v = serde_json::json!({
            "instance_id": id, "repo": "mendtest/calc", "base_commit": commit, "version": "0.1",
            "patch": GOLD, "test_patch": TEST_PATCH, "problem_statement": "add() subtracts",
        });
        if let Some((f2p, p2p)) = lists {
            v["FAIL_TO_PASS"] = f2p;
            v["PASS_TO_PASS"] = p2p;
        }
        mend_swebench::dataset::instance_from_value(v, "e2e", 1).unwrap()
    };
    let cases = [
        ("mendtest__calc-30", None),
        (
            "mendtest__calc-31",
            Some((Value::String("[]".into()), serde_json::json!([]))),
        ),
    ];
    let mut specs = Specs::builtin();
    specs.merge(Specs::from_json(SPECS).unwrap());
    let specs = Arc::new(specs);
    for (id, lists) in cases {
        let images = Arc::new(LocalImages::parse(&format!("{id} {image}\n")).unwrap());
        let run_id = format!("nolists-{}", std::process::id());
        let mut opts = EvalOptions::new(
            vec![record(id, lists)],
            PredictionsSource::List(vec![Prediction {
                instance_id: id.into(),
                model_name_or_path: "m".into(),
                model_patch: Some(comment_only.into()),
            }]),
            run_id.clone(),
            images,
        );
        opts.specs = specs.clone();
        opts.timeout = Duration::from_secs(120);
        opts.log_root = work.path().join("logs/run_evaluation");
        opts.report_dir = work.path().to_path_buf();
        match evaluate(opts).await {
            Ok(s) => panic!("{id}: graded without test lists: {:?}", s.outcomes),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains(id) && e.contains("mend swebench mine --instances"),
                    "{e}"
                );
            }
        }
        let report = instance_log_dir(&work.path().join("logs/run_evaluation"), &run_id, "m", id)
            .join("report.json");
        assert!(!report.exists(), "{id}: a report was written");
        assert!(!work.path().join(format!("m.{run_id}.json")).exists());
    }
}

/// A build that fails in a RUN step: its intermediate container is removed (`--force-rm`),
/// and the error names the compiler's error line though a long tail follows it, and where
/// the whole log is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_leaves_no_container_and_keeps_the_compiler_error() {
    let engine = mend_sandbox::testing::engine().await;
    let base = mend_sandbox::testing::base_image(&engine).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let marker = format!("mend-force-rm-{}", std::process::id());
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\nRUN echo {marker} && echo 'x.c:1:10: fatal error: longintrepr.h: No such file or directory' && seq 1 200 && false\n"
        ),
    )
    .unwrap();
    let tag = format!("{marker}:latest");
    let r = mend_swebench::images::docker_build(&tag, &ctx, &[], &|_: &str| {}).await;
    let e = r.expect_err("the build must fail");
    assert!(e.contains("fatal error: longintrepr.h"), "{e}");
    assert!(e.contains("\n200"), "the tail is kept: {e}");
    let log = work.path().join("ctx.build.log");
    assert!(
        e.contains(&log.display().to_string()),
        "names the whole log: {e}"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("fatal error: longintrepr.h")
    );
    let ps = std::process::Command::new("docker")
        .args(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        .output()
        .unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&marker))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "intermediate containers left: {left:?}");
}
