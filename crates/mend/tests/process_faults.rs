//! Faults around the process, through the real binary (issue 13, items 3, 6, 9 and 12):
//! SIGTERM and SIGHUP stop `mend fix` and `mend swebench run` as cleanly as Ctrl-C;
//! `DOCKER_HOST`/`DOCKER_CONTEXT` choose the engine (proxies of the real engine's socket on
//! 127.0.0.1 or in a temp dir prove it); `swebench eval`/`run --eval` refuse records without
//! test lists; and an evaluation where every instance errored exits non-zero.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::json;
use support::{base_image, containers_of, fixture_repo, mend, run_containers, testbed_image, text};

fn kill(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// `mend fix` in the Docker sandbox, the model slow to give its second answer; `signal`
/// arrives while that call is under way.
async fn fix_stopped_by(signal: &str) -> (Output, u32, Option<serde_json::Value>) {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let server = TestServer::start(vec![
        Reply::tool_calls(&[("view", json!({"path": "textkit/stats.py"}))]),
        Reply::text("slow").with_delay(Duration::from_secs(120)),
    ])
    .await;
    let out = tempfile::tempdir().unwrap();
    let traj = out.path().join("run.traj.json");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args([
            "fix",
            "--no-review",
            "--sandbox",
            "docker",
            "--model",
            "test-model",
        ])
        .args([
            "--base-url",
            &server.base_url(),
            "--issue",
            "fix word_count",
        ])
        .arg("--repo")
        .arg(repo.path())
        .arg("--trajectory")
        .arg(&traj)
        .env_remove("OPENAI_API_KEY")
        .env("XDG_CONFIG_HOME", out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.requests().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the run never reached its second call"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!containers_of(pid).is_empty(), "no container while running");
    kill(pid, signal);
    let sent = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("mend did not stop")
        .unwrap();
    eprintln!("mend fix stopped {:?} after SIG{signal}", sent.elapsed());
    let t = std::fs::read_to_string(&traj)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (output, pid, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_fix_cleanly_with_the_trajectory_written_and_no_container_left() {
    let (output, pid, traj) = fix_stopped_by("TERM").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM: stopping cleanly"), "{stderr}");
    let t = traj.unwrap_or_else(|| panic!("no trajectory written\n{stderr}"));
    assert_eq!(t["exit_status"]["status"], "interrupted");
    assert_eq!(t["steps"].as_array().unwrap().len(), 1);
    assert!(
        containers_of(pid).is_empty(),
        "left: {:?}",
        containers_of(pid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_stops_fix_cleanly_too() {
    let (output, pid, traj) = fix_stopped_by("HUP").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(129), "{stderr}");
    let t = traj.unwrap_or_else(|| panic!("no trajectory written\n{stderr}"));
    assert_eq!(t["exit_status"]["status"], "interrupted");
    assert!(
        containers_of(pid).is_empty(),
        "left: {:?}",
        containers_of(pid)
    );
}

const SPECS: &str = r#"{"repos": {"mendtest/calc": {"log_parser": "django", "versions": {"0.1": {"python": "3.11", "test_cmd": "python3 -m unittest -v", "activate": []}}}}}"#;
const GOLD: &str = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";
const TEST_PATCH: &str = "diff --git a/tests/test_more.py b/tests/test_more.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/test_more.py\n@@ -0,0 +1,7 @@\n+import unittest\n+from calc import add\n+\n+\n+class More(unittest.TestCase):\n+    def test_zero(self):\n+        self.assertEqual(add(0, 2), 2)\n";

/// The instance image (mend's base image with a small repository in /testbed) and its commit.
fn build_image(work: &Path) -> (String, String) {
    let ctx = work.join("ctx");
    let repo = ctx.join("repo");
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(repo.join("calc.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(repo.join("tests/__init__.py"), "").unwrap();
    let commit = mend_sandbox::testing::commit_all(&repo, "base").to_string();
    let tag = "mend-process-faults-calc:latest".to_string();
    testbed_image(&ctx, &tag);
    (tag, commit)
}

/// A dataset of `n` instances over the image (with test lists unless `lists` is false),
/// its image map and specs, in `work`.
fn write_dataset(work: &Path, image: &str, commit: &str, n: usize, lists: bool) {
    let mut lines = String::new();
    for i in 1..=n {
        let mut v = json!({
            "instance_id": format!("mendtest__calc-{i}"), "repo": "mendtest/calc", "base_commit": commit, "version": "0.1",
            "patch": GOLD, "test_patch": TEST_PATCH, "problem_statement": format!("add() subtracts (case {i})"),
        });
        if lists {
            v["FAIL_TO_PASS"] = json!(["test_zero (tests.test_more.More.test_zero)"]);
            v["PASS_TO_PASS"] = json!([]);
        }
        lines.push_str(&v.to_string());
        lines.push('\n');
    }
    std::fs::write(work.join("instances.jsonl"), lines).unwrap();
    std::fs::write(work.join("specs.json"), SPECS).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = (1..=n)
        .map(|i| (format!("mendtest__calc-{i}"), json!(image)))
        .collect();
    std::fs::write(
        work.join("images.json"),
        serde_json::Value::Object(map).to_string(),
    )
    .unwrap();
}

/// Case 1 is fixed at once; case 2's first answer takes two minutes.
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
    if turns == 0 && issue.contains("case 2") {
        return reply.with_delay(Duration::from_secs(120));
    }
    reply.with_usage(1000, 50)
}

fn run_args(run_id: &str, base_url: &str) -> Vec<String> {
    [
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
        base_url,
        "--no-index",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_batch_run_keeping_predictions_and_trajectories() {
    let work = tempfile::tempdir().unwrap();
    let (image, commit) = build_image(work.path());
    write_dataset(work.path(), &image, &commit, 2, true);
    let server = TestServer::with_handler(answer).await;
    let run_id = format!("sigterm-{}", std::process::id());
    let run_dir = work.path().join("runs").join(&run_id);
    let mut child = mend()
        .args(run_args(&run_id, &server.base_url()))
        .current_dir(work.path())
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let case2_waiting = server.requests().iter().any(|r| {
            r.json()["messages"][1]["content"]
                .as_str()
                .unwrap_or("")
                .contains("case 2")
        });
        let done = std::fs::read_to_string(run_dir.join("predictions.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if done >= 1 && case2_waiting {
            break;
        }
        assert!(Instant::now() < deadline, "the run did not get going");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(run_containers(&run_id) >= 1);
    kill(child.id(), "TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mend did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "mend swebench run stopped {:?} after SIGTERM",
        started.elapsed()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    let preds = std::fs::read_to_string(run_dir.join("predictions.jsonl")).unwrap();
    assert!(
        preds.contains("mendtest__calc-1") && !preds.contains("mendtest__calc-2"),
        "{preds}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert!(summary.is_object());
    let t: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("trajectories/mendtest__calc-2.traj.json"))
            .unwrap_or_else(|e| {
                panic!("no trajectory for the interrupted instance: {e}\n{stderr}")
            }),
    )
    .unwrap();
    assert_eq!(t["exit_status"]["status"], "interrupted");
    assert!(
        run_dir
            .join("trajectories/mendtest__calc-1.traj.json")
            .exists(),
        "{stderr}"
    );
    assert_eq!(run_containers(&run_id), 0, "containers left behind");
}

/// The real engine's socket (the test machine's own `DOCKER_HOST` when it names one).
fn engine_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

async fn pipe<S>(mut client: S, count: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    count.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut up) = tokio::net::UnixStream::connect(engine_socket()).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
    }
}

/// `mend sandbox run` with extra environment; the engine's base image is used.
async fn sandbox_echo(env: &[(&str, &str)], base: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args([
            "sandbox",
            "run",
            "--image",
            base,
            "--",
            "echo",
            "from-the-sandbox",
        ])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_host_and_docker_context_choose_the_engine() {
    let base = base_image();
    let dir = tempfile::tempdir().unwrap();

    // A unix socket elsewhere: a proxy of the engine; every request goes through it.
    let sock = dir.path().join("proxy.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let via_unix = Arc::new(AtomicUsize::new(0));
    let c = via_unix.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(pipe(s, c.clone()));
        }
    });
    let host = format!("unix://{}", sock.display());
    let out = sandbox_echo(&[("DOCKER_HOST", &host)], &base).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from-the-sandbox"));
    assert!(
        via_unix.load(Ordering::SeqCst) >= 2,
        "the proxy socket was not used"
    );

    // A missing socket: a clear error naming it, not the local engine.
    let missing = dir.path().join("gone.sock");
    let out = sandbox_echo(
        &[("DOCKER_HOST", &format!("unix://{}", missing.display()))],
        &base,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("DOCKER_HOST"),
        "{stderr}"
    );

    // tcp:// on 127.0.0.1 (never any other interface) to a proxy of the engine's socket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let via_tcp = Arc::new(AtomicUsize::new(0));
    let c = via_tcp.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(pipe(s, c.clone()));
        }
    });
    let out = sandbox_echo(
        &[("DOCKER_HOST", &format!("tcp://127.0.0.1:{port}"))],
        &base,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        via_tcp.load(Ordering::SeqCst) >= 2,
        "the tcp proxy was not used"
    );

    // ssh:// is refused with what to do instead.
    let out = sandbox_echo(&[("DOCKER_HOST", "ssh://me@build-host")], &base).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssh -nNT -L"),
        "{}",
        text(&out)
    );

    // DOCKER_CONTEXT names a context of the docker CLI's config whose endpoint is the proxy.
    let cfg = dir.path().join("docker-config");
    let meta = cfg.join("contexts/meta").join(sha256_hex("through-proxy"));
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        json!({"Name": "through-proxy", "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}}).to_string(),
    )
    .unwrap();
    let before = via_unix.load(Ordering::SeqCst);
    let cfg_s = cfg.display().to_string();
    let out = sandbox_echo(
        &[
            ("DOCKER_CONTEXT", "through-proxy"),
            ("DOCKER_CONFIG", &cfg_s),
        ],
        &base,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        via_unix.load(Ordering::SeqCst) > before,
        "the context was not used"
    );
}

fn sha256_hex(s: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `shared/data/NAME` beside the checkout (`../shared/data` of the main checkout; a
/// worktree sits deeper, so every ancestor is tried). Missing data fails the test.
fn shared_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/data").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("shared/data/{name} not found beside the checkout: this test needs the project's shared SWE-bench records"))
}

#[test]
fn eval_refuses_shared_records_without_test_lists() {
    let data = shared_data("swe-bench-verified.dev.jsonl");
    let first = std::fs::read_to_string(&data).unwrap();
    let first: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let id = first["instance_id"].as_str().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let out = mend()
        .current_dir(work.path())
        .args([
            "swebench",
            "eval",
            "--predictions",
            "gold",
            "--run-id",
            "nolists",
        ])
        .args([
            "--images",
            "local",
            "--image-map",
            "/dev/null",
            "--instance-ids",
            &id,
        ])
        .arg("--dataset")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains(&id)
            && stderr.contains("without test lists")
            && stderr.contains("mend swebench mine --instances"),
        "{stderr}"
    );
    // Nothing graded, nothing written.
    assert!(!work.path().join("logs").exists(), "{}", text(&out));
}

#[test]
fn eval_exits_non_zero_when_every_instance_errored_and_keeps_the_reports() {
    let work = tempfile::tempdir().unwrap();
    // No such image: every instance errors before its tests run.
    write_dataset(
        work.path(),
        "mend-no-such-image:never",
        "0123456789abcdef0123456789abcdef01234567",
        2,
        true,
    );
    let preds: String = (1..=2)
        .map(|i| {
            json!({"instance_id": format!("mendtest__calc-{i}"), "model_name_or_path": "m", "model_patch": GOLD})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(work.path().join("preds.jsonl"), preds).unwrap();
    let out = mend()
        .current_dir(work.path())
        .args([
            "swebench",
            "eval",
            "--predictions",
            "preds.jsonl",
            "--run-id",
            "allerr",
        ])
        .args(["--dataset", "instances.jsonl", "--specs", "specs.json"])
        .args(["--images", "local", "--image-map", "images.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("no instance could be graded: 2 of 2 submitted errored"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.path().join("m.allerr.json")).unwrap())
            .unwrap();
    assert_eq!(summary["error_instances"], 2);
    assert!(work.path().join("m.allerr.mend.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_eval_refuses_records_without_test_lists_before_any_agent_runs() {
    let work = tempfile::tempdir().unwrap();
    write_dataset(
        work.path(),
        "mend-no-such-image:never",
        "0123456789abcdef0123456789abcdef01234567",
        2,
        false,
    );
    let server = TestServer::with_handler(answer).await;
    let mut args = run_args("nolists-run", &server.base_url());
    args.push("--eval".into());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(&args)
        .current_dir(work.path())
        .env_remove("OPENAI_API_KEY")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("--eval cannot grade")
            && stderr.contains("mendtest__calc-1 (no FAIL_TO_PASS and no PASS_TO_PASS)")
            && stderr.contains("mend swebench mine --instances"),
        "{stderr}"
    );
    assert!(server.requests().is_empty(), "the agent ran");
    assert!(!work.path().join("runs/nolists-run").exists());
}

/// Runs a command on a pseudo-terminal, reading and dropping what it writes there; a line
/// `hangup` on stdin closes the terminal's master side (a real hang-up: SIGHUP, then every
/// write to the terminal fails); prints `PID <pid>` at the start and `EXIT <code>` at the end.
const PTY_RUNNER: &str = r#"
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
print("PID", pid, flush=True)
open_fd = fd
while True:
    r, _, _ = select.select([open_fd, sys.stdin] if open_fd is not None else [sys.stdin], [], [], 1.0)
    if open_fd is not None and open_fd in r:
        try:
            if not os.read(open_fd, 65536):
                raise OSError
        except OSError:
            os.close(open_fd)
            open_fd = None
    if sys.stdin in r:
        line = sys.stdin.readline()
        if line.strip() == "hangup" and open_fd is not None:
            os.close(open_fd)
            open_fd = None
        if not line or open_fd is None:
            break
_, status = os.waitpid(pid, 0)
print("EXIT", os.waitstatus_to_exitcode(status), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_terminal_stops_fix_cleanly() {
    use tokio::io::AsyncWriteExt;
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let server = TestServer::start(vec![
        Reply::tool_calls(&[("view", json!({"path": "textkit/stats.py"}))]),
        Reply::text("slow").with_delay(Duration::from_secs(120)),
    ])
    .await;
    let out = tempfile::tempdir().unwrap();
    let traj = out.path().join("run.traj.json");
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", PTY_RUNNER, env!("CARGO_BIN_EXE_mend")])
        .args([
            "fix",
            "--no-review",
            "--sandbox",
            "docker",
            "--model",
            "test-model",
        ])
        .args([
            "--base-url",
            &server.base_url(),
            "--issue",
            "fix word_count",
        ])
        .arg("--repo")
        .arg(repo.path())
        .arg("--trajectory")
        .arg(&traj)
        .env_remove("OPENAI_API_KEY")
        .env("XDG_CONFIG_HOME", out.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.requests().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the run never reached its second call"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hangup\n").await.unwrap();
    stdin.flush().await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("mend did not stop")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("EXIT 129"), "{}", text(&output));
    let t: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&traj).unwrap_or_else(|e| panic!("no trajectory: {e}")),
    )
    .unwrap();
    assert_eq!(t["exit_status"]["status"], "interrupted");
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PID "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid: {stdout}"));
    assert!(
        containers_of(pid).is_empty(),
        "left: {:?}",
        containers_of(pid)
    );
}
