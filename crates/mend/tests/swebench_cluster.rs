//! Sharded SWE-bench batches through the real binary, on the real Docker engine, the agent
//! answered by mend-llm's scripted chat-completions server: three shards merged equal the
//! same batch run on one machine; the same batch as a Slurm array job on a single-node Slurm
//! started here (slurm-wlm + munge); as a Docker Swarm replicated job on a single-node swarm;
//! and the Kubernetes Indexed Job validated against the Kubernetes API schema.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{base_image, mend, run_containers, testbed_image, text};

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::{Value, json};

const SPECS: &str = r#"{"repos": {
  "mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}},
  "mendtest/other": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;
const GOLD: &str = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_more.py\n@@ -0,0 +1,7 @@\n+import unittest\n+from calc import add\n+\n+\n+class More(unittest.TestCase):\n+    def test_zero(self):\n+        self.assertEqual(add(0, 2), 2)\n";
/// The key the cluster jobs must deliver through the scheduler's secret mechanism.
const KEY: &str = "sk-cluster-test-7f3a9c1e5b";
const N: usize = 6;

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// A work directory: the instance image (base + a tiny repository), six instances over two
/// repositories, the specs and the image map.
fn setup(work: &Path) {
    let ctx = work.join("ctx");
    let repo = ctx.join("repo");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(repo.join("tests/__init__.py"), "").unwrap();
    let commit = mend_sandbox::testing::commit_all(&repo, "base").to_string();
    // Tagged by commit: the tests of this file run at once, each with its own repository.
    let tag = format!("mend-cluster-calc:{}", &commit[..12]);
    let tag = tag.as_str();
    testbed_image(&ctx, tag);
    let mut lines = String::new();
    let mut map = serde_json::Map::new();
    for i in 1..=N {
        let repo = if i <= 4 {
            "mendtest/calc"
        } else {
            "mendtest/other"
        };
        let id = format!("{}-{i}", repo.replace('/', "__"));
        lines.push_str(&json!({
            "instance_id": id, "repo": repo, "base_commit": commit, "version": "0.1",
            "patch": GOLD, "test_patch": TEST_PATCH,
            "problem_statement": format!("add() subtracts (case {i}){}", " and more".repeat(i * 40)),
            "FAIL_TO_PASS": ["test_zero (tests.test_more.More.test_zero)"], "PASS_TO_PASS": [],
        }).to_string());
        lines.push('\n');
        map.insert(id, json!(tag));
    }
    std::fs::write(work.join("instances.jsonl"), lines).unwrap();
    std::fs::write(work.join("specs.json"), SPECS).unwrap();
    std::fs::write(work.join("images.json"), Value::Object(map).to_string()).unwrap();
}

/// Case 5 submits without editing (empty patch), case 6 makes a wrong fix (unresolved), the
/// others fix add(): a report with resolved, unresolved and empty instances.
fn answer(r: &Received) -> Reply {
    let body = r.json();
    let msgs = body["messages"].as_array().unwrap();
    let issue = msgs[1]["content"].as_str().unwrap_or("");
    let turns = msgs.iter().filter(|m| m["role"] == "assistant").count();
    let fix = if issue.contains("(case 6)") {
        "a * b"
    } else {
        "a + b"
    };
    let reply = if turns == 0 && !issue.contains("(case 5)") {
        Reply::tool_calls(&[(
            "edit",
            json!({"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": fix}),
        )])
    } else {
        Reply::tool_calls(&[("submit", json!({"summary": "done"}))])
    };
    reply.with_usage(1000, 50)
}

/// `mend swebench run` arguments for this work directory.
fn run_args(server: &TestServer) -> Vec<String> {
    [
        "--dataset",
        "instances.jsonl",
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
        "--no-index",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn eval_args() -> Vec<&'static str> {
    vec![
        "--dataset",
        "instances.jsonl",
        "--images",
        "local",
        "--image-map",
        "images.json",
        "--specs",
        "specs.json",
    ]
}

/// Predictions as a sorted list (the order of a file depends on which instance ends first).
fn preds(path: &Path) -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by(|a, b| a["instance_id"].as_str().cmp(&b["instance_id"].as_str()));
    v
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn shard_dirs(work: &Path, run: &str, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            work.join(format!("runs/{run}-shard-{i}-of-{n}"))
                .display()
                .to_string()
        })
        .collect()
}

/// Merge with --eval; returns the official report and the merge's own record.
fn merge_eval(work: &Path, run: &str, n: usize) -> (Value, Value, Duration) {
    let started = Instant::now();
    let out = mend()
        .args(["swebench", "merge"])
        .args(shard_dirs(work, run, n))
        .args(["--run-id", run, "--eval"])
        .args(eval_args())
        .current_dir(work)
        .output()
        .unwrap();
    let wall = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let dir = work.join("runs").join(run);
    (
        json_file(&dir.join(format!("mend__gpt-4o-mini.{run}.json"))),
        json_file(&dir.join("merge.json")),
        wall,
    )
}

fn assert_report(report: &Value) {
    assert_eq!(report["total_instances"], N);
    assert_eq!(report["resolved_instances"], 4, "{report}");
    assert_eq!(report["empty_patch_ids"], json!(["mendtest__other-5"]));
    assert_eq!(report["unresolved_ids"], json!(["mendtest__other-6"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_three_shard_batch_equals_the_same_batch_on_one_machine() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let server = TestServer::with_handler(answer).await;
    let args = run_args(&server);

    // One machine.
    let out = mend()
        .args([
            "swebench",
            "run",
            "--no-review",
            "--run-id",
            "single",
            "--workers",
            "2",
            "--eval",
        ])
        .args(&args)
        .current_dir(w)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let single_dir = w.join("runs/single");

    // Three shards at once on the same engine (each sweeps only what it owns).
    let children: Vec<_> = (1..=3)
        .map(|i| {
            mend()
                .args([
                    "swebench",
                    "run",
                    "--no-review",
                    "--run-id",
                    "sharded",
                    "--workers",
                    "1",
                ])
                .args(["--shard", &format!("{i}/3")])
                .args(&args)
                .current_dir(w)
                .env_remove("OPENAI_API_KEY")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut assigned = vec![];
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "shard {}: {}", i + 1, text(&out));
        let shard: Value =
            json_file(&w.join(format!("runs/sharded-shard-{}-of-3/shard.json", i + 1)));
        assert_eq!(shard["state"], "finished");
        // Both repositories spread: two instances per shard.
        assert_eq!(
            shard["instance_ids"].as_array().unwrap().len(),
            2,
            "{shard}"
        );
        assigned.extend(shard["instance_ids"].as_array().unwrap().clone());
    }
    assert_eq!(run_containers("sharded-shard-1-of-3"), 0);

    // Re-running a shard resumes it: nothing runs again.
    let out = mend()
        .args([
            "swebench",
            "run",
            "--no-review",
            "--run-id",
            "sharded",
            "--shard",
            "2/3",
        ])
        .args(&args)
        .current_dir(w)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 to run, 2 already done of 2"),
        "{}",
        text(&out)
    );

    // A merge with a shard missing is refused and writes nothing.
    let out = mend()
        .args(["swebench", "merge"])
        .args(&shard_dirs(w, "sharded", 3)[..2])
        .args(["--run-id", "sharded"])
        .current_dir(w)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing shard(s): 3") && err.contains("not merged"),
        "{err}"
    );
    assert!(!w.join("runs/sharded/predictions.jsonl").exists());

    // Before the merge, `report` reads the shards.
    let out = mend()
        .args(["swebench", "report", "sharded"])
        .current_dir(w)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not merged yet") && stdout.contains("shard 3/3 finished"),
        "{stdout}"
    );

    let (sharded_report, merge, _) = merge_eval(w, "sharded", 3);
    assert_eq!(
        preds(&w.join("runs/sharded/predictions.jsonl")),
        preds(&single_dir.join("predictions.jsonl")),
        "the merged predictions differ from the single-machine run's"
    );
    let single_report = json_file(&single_dir.join("mend__gpt-4o-mini.single.json"));
    assert_report(&single_report);
    assert_eq!(sharded_report, single_report);
    assert_eq!(merge["predictions"], N);
    let merged_summary = json_file(&w.join("runs/sharded/summary.json"));
    let single_summary = json_file(&single_dir.join("summary.json"));
    for k in [
        "selected",
        "done",
        "errors",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "exit_statuses",
        "empty_patches",
        "patch_bytes_total",
    ] {
        assert_eq!(merged_summary[k], single_summary[k], "summary field {k}");
    }
}

/// The cargo target directory this test was built into (`CARGO_TARGET_DIR` honoured).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Starts the single-node Slurm (tests/cluster/slurm-up.sh) and returns SLURM_CONF.
fn slurm_up() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cluster/slurm-up.sh");
    let dir = target_dir().join("slurm");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Slurm could not start (docker/setup-host.sh installs slurm-wlm and munge): {}",
        text(&out)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The key file a user keeps: owner-only.
fn key_file(work: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = work.join("keys.env");
    std::fs::write(&p, format!("OPENAI_API_KEY={KEY}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Every request the model server saw carried the key from the secret.
fn assert_key_delivered(server: &TestServer) {
    let reqs = server.requests();
    let chat: Vec<&Received> = reqs
        .iter()
        .filter(|r| r.json()["messages"].is_array())
        .collect();
    assert!(!chat.is_empty());
    for r in chat {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
}

fn wait_finished(work: &Path, run: &str, n: usize, limit: Duration, why: &dyn Fn() -> String) {
    let deadline = Instant::now() + limit;
    loop {
        let states: Vec<String> = (1..=n)
            .map(|i| {
                std::fs::read_to_string(
                    work.join(format!("runs/{run}-shard-{i}-of-{n}/shard.json")),
                )
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .map(|v| v["state"].as_str().unwrap_or("").to_string())
                .unwrap_or_default()
            })
            .collect();
        if states.iter().all(|s| s == "finished") {
            return;
        }
        assert!(
            !states.iter().any(|s| s == "stopped"),
            "a shard stopped: {states:?}\n{}",
            why()
        );
        assert!(
            Instant::now() < deadline,
            "shards not finished: {states:?}\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_array_job_runs_the_shards_then_they_merge_and_evaluate() {
    let conf = slurm_up();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    let keys = key_file(w);
    let server = TestServer::with_handler(answer).await;
    let mut cmd = mend();
    cmd.args([
        "swebench",
        "slurm",
        "--shards",
        "3",
        "--run-id",
        "sl",
        "--max-total-cost",
        "3",
    ])
    .arg("--env-file")
    .arg(&keys)
    .args(["--submit", "--"])
    .args(run_args(&server))
    .current_dir(w)
    .env("SLURM_CONF", &conf)
    .env_remove("OPENAI_API_KEY");
    let submitted = Instant::now();
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let script = std::fs::read_to_string(w.join("runs/sl.sbatch")).unwrap();
    assert!(!script.contains(KEY), "the key is in the script:\n{script}");
    assert!(
        script.contains("#SBATCH --array=1-3") && script.contains("--max-total-cost 1.000000"),
        "{script}"
    );
    let logs = || {
        let mut s = String::new();
        for i in 1..=3 {
            s += &std::fs::read_to_string(w.join(format!("runs/sl-slurm/{i}.out")))
                .unwrap_or_default();
        }
        s
    };

    // While it runs, `report` reads the shards (at least once it has a shard to show).
    let deadline = Instant::now() + Duration::from_secs(180);
    while shard_dirs_present(w, "sl") == 0 {
        assert!(
            Instant::now() < deadline,
            "no shard started: job {job}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = mend()
        .args(["swebench", "report", "sl"])
        .current_dir(w)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sharded run sl"),
        "{}",
        text(&out)
    );

    wait_finished(w, "sl", 3, Duration::from_secs(600), &logs);
    let finished = Instant::now();
    assert_key_delivered(&server);
    let (report, merge, merge_wall) = merge_eval(w, "sl", 3);
    assert_report(&report);

    // The overhead figures: per-task start-up (submission to the shard's first write) and
    // the merge.
    let mut starts = vec![];
    let mut walls = vec![];
    for s in merge["shards"].as_array().unwrap() {
        starts.push(s["started_at"].as_f64().unwrap());
        walls.push(s["finished_at"].as_f64().unwrap() - s["started_at"].as_f64().unwrap());
    }
    let submitted_unix = mend_swebench::shard::now_secs() - submitted.elapsed().as_secs_f64();
    let startup: Vec<f64> = starts.iter().map(|s| s - submitted_unix).collect();
    let figures = json!({
        "shards": 3, "instances": N,
        "task_startup_secs": startup,
        "task_wall_secs": walls,
        "submit_to_all_finished_secs": (finished - submitted).as_secs_f64(),
        "merge_secs": merge["merge_secs"],
        "merge_process_with_eval_secs": merge_wall.as_secs_f64(),
    });
    // The merge alone, without evaluation, as a user runs it first.
    let t = Instant::now();
    let out = mend()
        .args(["swebench", "merge"])
        .args(shard_dirs(w, "sl", 3))
        .args(["--run-id", "sl-again"])
        .current_dir(w)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut figures = figures;
    figures["merge_process_secs"] = json!(t.elapsed().as_secs_f64());
    let bench = target_dir().join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(
        bench.join("cluster.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
    eprintln!("slurm sharding overhead: {figures}");
}

fn shard_dirs_present(work: &Path, run: &str) -> usize {
    (1..=3)
        .filter(|i| {
            work.join(format!("runs/{run}-shard-{i}-of-3/shard.json"))
                .exists()
        })
        .count()
}

/// Leaves the swarm as it was: inactive before the test means `swarm leave` after it.
struct SwarmGuard {
    joined_here: bool,
    service: String,
    secret: String,
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        docker(&["service", "rm", &self.service]);
        docker(&["secret", "rm", &self.secret]);
        if self.joined_here {
            let out = docker(&["swarm", "leave", "--force"]);
            if !out.status.success() {
                eprintln!("could not leave the swarm this test made: {}", text(&out));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_replicated_job_runs_the_shards_with_the_key_as_a_swarm_secret() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    setup(w);
    // The mend image: mend's base image plus this mend binary (docker/mend/Dockerfile).
    let ctx = w.join("mend-image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::hard_link(env!("CARGO_BIN_EXE_mend"), ctx.join("mend"))
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_mend"), ctx.join("mend")).map(|_| ()))
        .unwrap();
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker/mend/Dockerfile");
    let image = "mend-cluster-mend:test";
    let out = docker(&[
        "build",
        "-q",
        "-t",
        image,
        "--build-arg",
        &format!("BASE={}", base_image()),
        "-f",
        &dockerfile.display().to_string(),
        &ctx.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
    let guard = SwarmGuard {
        joined_here: state == "inactive",
        service: "mend-sw".into(),
        secret: "mend-sw-env".into(),
    };
    if guard.joined_here {
        let out = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(out.status.success(), "docker swarm init: {}", text(&out));
    } else {
        assert_eq!(state, "active", "the swarm is {state}");
    }
    let keys = key_file(w);
    let server = TestServer::with_handler(answer).await;
    let out = mend()
        .args([
            "swebench",
            "swarm",
            "--shards",
            "3",
            "--run-id",
            "sw",
            "--image",
            image,
            "--host-network",
        ])
        .arg("--env-file")
        .arg(&keys)
        .args(["--submit", "--"])
        .args(run_args(&server))
        .current_dir(w)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let script = std::fs::read_to_string(w.join("runs/sw.swarm.sh")).unwrap();
    assert!(!script.contains(KEY), "the key is in the script:\n{script}");
    let logs = || {
        let o = docker(&["service", "logs", "--raw", "mend-sw"]);
        let ps = docker(&["service", "ps", "--no-trunc", "mend-sw"]);
        let status: Vec<String> = (1..=3)
            .map(|i| {
                std::fs::read_to_string(w.join(format!("runs/sw-shard-{i}-of-3/status.jsonl")))
                    .unwrap_or_default()
            })
            .collect();
        format!("{}\n{}\nstatus:\n{}", text(&ps), text(&o), status.join(""))
    };
    wait_finished(w, "sw", 3, Duration::from_secs(600), &logs);
    assert_key_delivered(&server);
    let (report, _, _) = merge_eval(w, "sw", 3);
    assert_report(&report);
    drop(guard);
    if state == "inactive" {
        let now = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(String::from_utf8_lossy(&now.stdout).trim(), "inactive");
    }
}

fn validate_k8s(files: &[&Path]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cluster/k8s-validate.sh");
    Command::new("bash")
        .arg(script)
        .arg(target_dir())
        .args(files)
        .output()
        .unwrap()
}

/// No cluster runs here: the rendered Indexed Job (both Docker modes) is validated against
/// the Kubernetes API schema (kubernetes-validate's copy of the published schemas, strict:
/// unknown fields fail), and a broken copy must fail, so the validator is really checking.
#[test]
fn the_kubernetes_indexed_job_validates_against_the_api_schema() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let keys = key_file(w);
    let mut files = vec![];
    for mode in ["socket", "dind"] {
        let out = mend()
            .args([
                "swebench",
                "k8s",
                "--shards",
                "4",
                "--run-id",
                "r_1",
                "--image",
                "mend:local",
            ])
            .args([
                "--docker",
                mode,
                "--max-total-cost",
                "20",
                "--out",
                &format!("{mode}.yaml"),
            ])
            .arg("--env-file")
            .arg(&keys)
            .args(["--", "--dataset", "verified", "--model", "gpt-4o"])
            .current_dir(w)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let yaml = std::fs::read_to_string(w.join(format!("{mode}.yaml"))).unwrap();
        assert!(!yaml.contains(KEY), "{yaml}");
        for want in [
            "completionMode: \"Indexed\"",
            "completions: 4",
            "JOB_COMPLETION_INDEX + 1))/4",
            "name: \"mend-r-1-keys\"",
            "claimName: \"mend-work\"",
            "\"--max-total-cost\"\n            - \"5.000000\"",
        ] {
            assert!(yaml.contains(want), "{want} not in\n{yaml}");
        }
        assert_eq!(yaml.contains("docker.sock"), mode == "socket");
        assert_eq!(yaml.contains("privileged: true"), mode == "dind");
        files.push(w.join(format!("{mode}.yaml")));
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = validate_k8s(&refs);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("passed")
            .count(),
        2,
        "{}",
        text(&out)
    );
    let broken = w.join("broken.yaml");
    let yaml = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&broken, yaml.replace("completionMode:", "completionMod:")).unwrap();
    let out = validate_k8s(&[&broken]);
    assert!(
        !out.status.success(),
        "a broken manifest passed: {}",
        text(&out)
    );
}

/// Keys travel only through the schedulers' secret mechanisms: a key file others can read,
/// a key flag or a key value among the run arguments are refused, and nothing is written.
#[test]
fn keys_never_reach_a_command_line_or_a_rendered_job() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let keys = key_file(w);
    let render = |kind: &str, keys: &Path, run: &[&str]| {
        let mut c = mend();
        c.args(["swebench", kind, "--shards", "2", "--run-id", "k"]);
        if kind != "slurm" {
            c.args(["--image", "mend:local"]);
        }
        c.arg("--env-file")
            .arg(keys)
            .arg("--")
            .args(run)
            .current_dir(w);
        c.output().unwrap()
    };
    for kind in ["slurm", "swarm", "k8s"] {
        let ok = render(kind, &keys, &["--dataset", "d.jsonl"]);
        assert!(ok.status.success(), "{kind}: {}", text(&ok));
        let leaked = render(kind, &keys, &["--dataset", "d.jsonl", "--model", KEY]);
        assert!(!leaked.status.success(), "{kind}: {}", text(&leaked));
        assert!(
            text(&leaked).contains("would contain the value of OPENAI_API_KEY"),
            "{}",
            text(&leaked)
        );
        let flag = render(
            kind,
            &keys,
            &["--dataset", "d.jsonl", &format!("--api-key={KEY}")],
        );
        assert!(
            text(&flag).contains("keys go in --env-file"),
            "{}",
            text(&flag)
        );
    }
    let open = w.join("open.env");
    std::fs::write(&open, format!("OPENAI_API_KEY={KEY}\n")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = render("slurm", &open, &["--dataset", "d.jsonl"]);
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    // Whatever was rendered, no file under the work directory holds the key.
    for f in support::snapshot(w)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".env"))
    {
        assert!(
            !String::from_utf8_lossy(&f.1).contains(KEY),
            "{} holds the key",
            f.0
        );
    }
}
