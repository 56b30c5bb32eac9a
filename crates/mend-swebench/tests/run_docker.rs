//! Batch agent runs end to end on the real engine: synthetic SWE-bench-format instances over
//! a small real repository whose image is built FROM mend's base image, the agent answered by
//! mend-llm's scripted chat-completions server, two workers; then a run stopped in the middle
//! and resumed with the same run id.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mend_agent::{AgentConfig, Prompts};
use mend_llm::test_server::{Received, Reply, TestServer};
use mend_llm::{Limits, Model, OpenAiCompatible};
use mend_swebench::{
    Filter, Instance, LocalImages, ModelFactory, RunOptions, RunProgress, Specs, run_agent,
};
use serde_json::json;

const CALC: &str = "def add(a, b):\n    return a - b\n";
const GOLD: &str = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_more.py\n@@ -0,0 +1,7 @@\n+import unittest\n+from calc import add\n+\n+\n+class More(unittest.TestCase):\n+    def test_zero(self):\n+        self.assertEqual(add(0, 2), 2)\n";
const SPECS: &str = r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;

fn make_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("calc.py"), CALC).unwrap();
    std::fs::write(dir.join("tests/__init__.py"), "").unwrap();
    std::fs::write(dir.join("tests/test_calc.py"), "import unittest\nfrom calc import add\n\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n").unwrap();
    mend_sandbox::testing::commit_all(dir, "base").to_string()
}

/// The image, built once per test process: tests running in parallel would otherwise
/// rebuild the same tag under each other's containers.
async fn calc_image() -> (String, String) {
    static BUILT: tokio::sync::OnceCell<(String, String)> = tokio::sync::OnceCell::const_new();
    BUILT.get_or_init(build_calc_image).await.clone()
}

async fn build_calc_image() -> (String, String) {
    let engine = mend_sandbox::testing::engine().await;
    let base = mend_sandbox::testing::base_image(&engine).await;
    let ctx = tempfile::tempdir().unwrap();
    let commit = make_repo(&ctx.path().join("repo"));
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nUSER root\nCOPY repo /testbed\nWORKDIR /testbed\n"),
    )
    .unwrap();
    let tag = "mend-swebench-run-calc:latest".to_string();
    mend_swebench::images::docker_build(&tag, ctx.path(), &[], &|_: &str| {})
        .await
        .expect("docker build");
    (tag, commit)
}

fn instances(commit: &str, n: usize) -> Vec<Instance> {
    (1..=n)
        .map(|i| {
            let v = json!({
                "instance_id": format!("mendtest__calc-{i}"), "repo": "mendtest/calc", "base_commit": commit, "version": "0.1",
                "patch": GOLD, "test_patch": TEST_PATCH, "problem_statement": format!("add() subtracts (case {i})"),
                "FAIL_TO_PASS": ["test_zero (tests.test_more.More.test_zero)"], "PASS_TO_PASS": [],
            });
            mend_swebench::dataset::instance_from_value(v, "run-e2e", i).unwrap()
        })
        .collect()
}

static SLOW_CASE_3: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The scripted agent: fix calc.py, then submit. Case 3 thinks for a long time first while
/// `SLOW_CASE_3` is set.
fn answer(r: &Received) -> Reply {
    let slow = SLOW_CASE_3.load(std::sync::atomic::Ordering::SeqCst);
    let body = r.json();
    let msgs = body["messages"].as_array().unwrap();
    let issue = msgs
        .get(1)
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let turns = msgs.iter().filter(|m| m["role"] == "assistant").count();
    match turns {
        0 if slow && issue.contains("case 3") => {
            Reply::tool_calls(&[("view", json!({"path": "calc.py"}))])
                .with_delay(Duration::from_secs(4))
        }
        0 => Reply::tool_calls(&[(
            "edit",
            json!({"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
        )]),
        1 if slow && issue.contains("case 3") => Reply::tool_calls(&[(
            "edit",
            json!({"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": "a + b"}),
        )]),
        _ => Reply::tool_calls(&[("submit", json!({"summary": "add adds"}))]),
    }
    .with_usage(1000, 50)
}

fn options(
    server: &TestServer,
    image: &str,
    ds: Vec<Instance>,
    out: &Path,
    run_id: &str,
) -> RunOptions {
    let cfg = server.config("gpt-4o-mini");
    let base = OpenAiCompatible::new(cfg).unwrap();
    let models: ModelFactory = Arc::new(move |_inst, ledger, _attempt| {
        Ok(Arc::new(base.with_ledger(ledger)) as Arc<dyn Model>)
    });
    let map: std::collections::HashMap<String, String> = ds
        .iter()
        .map(|i| (i.instance_id.clone(), image.to_string()))
        .collect();
    let mut specs = Specs::builtin();
    specs.merge(Specs::from_json(SPECS).unwrap());
    RunOptions {
        dataset: ds,
        filter: Filter::default(),
        run_id: run_id.into(),
        out_root: out.to_path_buf(),
        model_name: "mend__gpt-4o-mini".into(),
        models,
        instance_limits: Limits::default(),
        total_limits: Limits::default(),
        workers: 2,
        images: Arc::new(LocalImages { map }),
        specs: Arc::new(specs),
        agent: AgentConfig {
            test_on_submit: true,
            ..AgentConfig::default()
        },
        prompts: Prompts::builtin().unwrap(),
        with_hints: false,
        localize: true,
        memory_bytes: Some(1 << 30),
        progress: None,
        cancel: None,
        candidates: 1,
        judge: false,
    }
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn containers_with_label(run_id: &str) -> usize {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.mend.swebench.run_id={run_id}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_then_a_stop_in_the_middle_and_a_resume() {
    let (image, commit) = calc_image().await;
    let server = TestServer::with_handler(answer).await;
    let out = tempfile::tempdir().unwrap();
    let run_id = format!("e2e-{}", std::process::id());

    // First pass: stop once two instances are done, while case 3 is still thinking.
    SLOW_CASE_3.store(true, std::sync::atomic::Ordering::SeqCst);
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let mut opts = options(&server, &image, instances(&commit, 4), out.path(), &run_id);
    opts.cancel = Some(cancel_rx);
    // Stop when two instances are done and case 3 is under way (in either order).
    let state = Arc::new(std::sync::Mutex::new((0usize, false)));
    opts.progress = Some(Arc::new(move |p: &RunProgress| {
        let mut st = state.lock().unwrap();
        match p {
            RunProgress::InstanceFinished { record, .. } if record.is_done() => st.0 += 1,
            RunProgress::InstanceStarted { instance_id } if instance_id == "mendtest__calc-3" => {
                st.1 = true
            }
            _ => {}
        }
        if st.0 >= 2 && st.1 {
            let _ = cancel_tx.send(true);
        }
    }));
    let first = run_agent(opts).await.unwrap();
    assert_eq!(first.stopped.as_deref(), Some("interrupted"));
    let preds = lines(&first.predictions_path);
    assert_eq!(preds.len(), 2, "{preds:?}");
    for p in &preds {
        assert_eq!(p["model_name_or_path"], "mend__gpt-4o-mini");
        assert!(
            p["model_patch"]
                .as_str()
                .unwrap()
                .contains("+    return a + b"),
            "{p}"
        );
        assert_eq!(
            p.as_object().unwrap().len(),
            3,
            "only the official fields: {p}"
        );
    }
    assert_eq!(
        containers_with_label(&run_id),
        0,
        "containers left after the stop"
    );
    // A torn line, as a crash mid-append would leave it.
    let mut text = std::fs::read_to_string(&first.predictions_path).unwrap();
    text.push_str("{\"instance_id\": \"mendtest__calc-9\", \"model_pa");
    std::fs::write(&first.predictions_path, text).unwrap();

    // Resume: the two finished instances are skipped, the rest run; nothing is lost.
    SLOW_CASE_3.store(false, std::sync::atomic::Ordering::SeqCst);
    let second = run_agent(options(
        &server,
        &image,
        instances(&commit, 4),
        out.path(),
        &run_id,
    ))
    .await
    .unwrap();
    assert_eq!(second.stopped, None);
    let preds = lines(&second.predictions_path);
    let mut ids: Vec<&str> = preds
        .iter()
        .map(|p| p["instance_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "mendtest__calc-1",
            "mendtest__calc-2",
            "mendtest__calc-3",
            "mendtest__calc-4"
        ]
    );
    let s = &second.summary;
    assert_eq!((s.selected, s.done, s.errors, s.not_run), (4, 4, 0, 0));
    assert_eq!(s.exit_statuses.get("submitted"), Some(&4));
    assert!(s.tokens_in >= 8000 && s.cost_usd > 0.0, "{s:?}");
    // The interrupted attempt of case 3 (or whichever was running) is in the status file.
    let status = lines(&second.run_dir.join("status.jsonl"));
    assert!(
        status.iter().any(|r| r["exit"] == "interrupted"),
        "{status:?}"
    );
    for id in ids {
        let t: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                second
                    .run_dir
                    .join("trajectories")
                    .join(format!("{id}.traj.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(t["exit_status"]["status"], "submitted");
        assert!(
            second
                .run_dir
                .join("logs")
                .join(format!("{id}.log"))
                .exists()
        );
    }
    assert_eq!(containers_with_label(&run_id), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_total_budget_stops_every_worker() {
    let (image, commit) = calc_image().await;
    let server = TestServer::with_handler(|r| answer(r).with_usage(200_000, 10)).await;
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(&server, &image, instances(&commit, 4), out.path(), "budget");
    // gpt-4o-mini input is $0.15 per million: 200k tokens cost $0.03 a call; $0.05 pays one instance's two calls at most.
    opts.total_limits = Limits {
        max_cost_usd: Some(0.05),
        ..Default::default()
    };
    let run = run_agent(opts).await.unwrap();
    let s = &run.summary;
    assert!(
        run.stopped.as_deref().unwrap_or("").contains("budget")
            || s.exit_statuses.contains_key("limit_reached"),
        "{:?} {s:?}",
        run.stopped
    );
    assert!(
        s.cost_usd <= 0.05 + 0.031 * 2.0,
        "spent {} past the limit",
        s.cost_usd
    );
    assert_eq!(containers_with_label("budget"), 0);
}

/// The real client, except that its calls panic: a bug anywhere in one instance's run.
#[derive(Debug)]
struct PanicsMidRun(OpenAiCompatible);

#[async_trait::async_trait]
impl Model for PanicsMidRun {
    fn name(&self) -> String {
        self.0.name()
    }
    fn tool_mode(&self) -> mend_llm::ToolMode {
        self.0.tool_mode()
    }
    fn context_window(&self) -> usize {
        self.0.context_window()
    }
    fn count_tokens(&self, messages: &[mend_llm::Message]) -> usize {
        self.0.count_tokens(messages)
    }
    async fn complete(
        &self,
        _: &[mend_llm::Message],
        _: &[mend_llm::ToolDef],
    ) -> Result<mend_llm::Completion, mend_llm::ModelError> {
        panic!("injected: a bug in the middle of an instance's run")
    }
    fn totals(&self) -> mend_llm::Totals {
        self.0.totals()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_that_panics_is_an_error_and_the_others_go_on() {
    let (image, commit) = calc_image().await;
    let server = TestServer::with_handler(answer).await;
    let out = tempfile::tempdir().unwrap();
    let run_id = format!("panic-{}", std::process::id());
    let mut opts = options(&server, &image, instances(&commit, 3), out.path(), &run_id);
    let base = OpenAiCompatible::new(server.config("gpt-4o-mini")).unwrap();
    opts.models = Arc::new(move |inst, ledger, _attempt| {
        let m = base.with_ledger(ledger);
        Ok(if inst.instance_id == "mendtest__calc-2" {
            Arc::new(PanicsMidRun(m)) as Arc<dyn Model>
        } else {
            Arc::new(m) as Arc<dyn Model>
        })
    });
    let run = run_agent(opts).await.unwrap();
    let preds = lines(&run.predictions_path);
    let ids: Vec<&str> = preds
        .iter()
        .map(|p| p["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{preds:?}");
    assert!(!ids.contains(&"mendtest__calc-2"), "{ids:?}");
    let s = &run.summary;
    assert_eq!((s.done, s.errors), (2, 1), "{s:?}");
    let bad = s
        .instances
        .iter()
        .find(|r| r.instance_id == "mendtest__calc-2")
        .unwrap();
    assert_eq!((bad.state.as_str(), bad.exit.as_str()), ("error", "panic"));
    assert!(bad.detail.contains("injected: a bug"), "{}", bad.detail);
    let log =
        std::fs::read_to_string(run.run_dir.join("logs").join("mendtest__calc-2.log")).unwrap();
    assert!(log.contains("error: the run panicked: injected"), "{log}");
    assert_eq!(
        containers_with_label(&run_id),
        0,
        "the panicking instance's container is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_issue_too_big_for_the_window_is_refused_before_its_container() {
    let (image, commit) = calc_image().await;
    let server = TestServer::with_handler(answer).await;
    let out = tempfile::tempdir().unwrap();
    let run_id = format!("huge-{}", std::process::id());
    let mut ds = instances(&commit, 2);
    ds[1].problem_statement = "add() subtracts; the log follows.\n".repeat(150_000);
    let opts = options(&server, &image, ds, out.path(), &run_id);
    let run = run_agent(opts).await.unwrap();
    let s = &run.summary;
    assert_eq!((s.done, s.errors), (1, 1), "{s:?}");
    let huge = &s
        .instances
        .iter()
        .find(|r| r.instance_id == "mendtest__calc-2")
        .unwrap();
    assert!(
        huge.detail
            .contains("does not fit the model's context window"),
        "{}",
        huge.detail
    );
    assert!(huge.detail.contains("bytes"), "{}", huge.detail);
    assert_eq!(huge.image, None, "refused before its image and container");
    let issues_sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.json()["messages"][1]["content"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        issues_sent.iter().all(|i| !i.contains("the log follows")),
        "the model was called for it"
    );
}
