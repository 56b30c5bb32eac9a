//! Shared by the end-to-end tests of `mend fix`: the fixture repositories of `tests/fixtures`
//! made into real git repositories, and running the `mend` binary against a scripted model.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mend_llm::test_server::{Reply, TestServer};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `tests/fixtures/<name>/files` as a git repository with one commit, in `dir`.
pub fn fixture_repo(name: &str, dir: &Path) -> git2::Oid {
    copy_dir(&fixtures().join(name).join("files"), dir);
    mend_sandbox::testing::commit_all(dir, "Initial commit")
}

/// Every file of the working tree and `.git` (path -> bytes), to prove nothing changed.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// Names of the containers a process made (sandbox names start with `mend-<pid>-`).
pub fn containers_of(pid: u32) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.starts_with(&format!("mend-{pid}-")))
        .map(str::to_string)
        .collect()
}

/// One `mend fix` run against a scripted model.
pub struct FixRun {
    pub output: Output,
    pub pid: u32,
    pub patch: Option<String>,
    pub trajectory: Option<serde_json::Value>,
    pub requests: Vec<serde_json::Value>,
}

impl FixRun {
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    /// The text of every tool observation and user message the model was sent, in order.
    pub fn observations(&self) -> Vec<String> {
        let Some(last) = self.requests.last() else {
            return vec![];
        };
        last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool" || m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// Run `mend fix` on `repo` with the model answering from `script`; extra args appended.
pub async fn run_fix(repo: &Path, sandbox: &str, script: Vec<Reply>, extra: &[&str]) -> FixRun {
    run_fix_env(repo, sandbox, script, extra, &[]).await
}

/// [`run_fix`] with extra environment variables for the `mend` process only.
pub async fn run_fix_env(
    repo: &Path,
    sandbox: &str,
    script: Vec<Reply>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> FixRun {
    let server = TestServer::start(script).await;
    let out_dir = tempfile::tempdir().unwrap();
    let patch = out_dir.path().join("fix.patch");
    let traj = out_dir.path().join("run.traj.json");
    let issue = format!("@{}", fixtures().join("textkit/issue.md").display());
    let issue = if extra.contains(&"--issue") {
        None
    } else {
        Some(issue)
    };
    // Scripts answer no review round unless the test asks for one with "--review" (the
    // review is on by default in `mend fix`; the flag only keeps this helper from turning it off).
    let review = extra.contains(&"--review");
    let extra: Vec<&str> = extra.iter().copied().filter(|a| *a != "--review").collect();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"));
    cmd.arg("fix")
        .args((!review).then_some("--no-review"))
        .arg("--repo")
        .arg(repo)
        .args(issue.iter().flat_map(|i| ["--issue", i.as_str()]))
        .args(["--base-url", &server.base_url(), "--sandbox", sandbox])
        .args(if extra.contains(&"--model") {
            &[][..]
        } else {
            &["--model", "test-model"][..]
        })
        .arg("--out")
        .arg(&patch)
        .arg("--trajectory")
        .arg(&traj)
        .args(extra)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MEND_MODEL")
        .env_remove("GITHUB_TOKEN")
        .env("XDG_CONFIG_HOME", out_dir.path())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let output = child.wait_with_output().await.unwrap();
    FixRun {
        output,
        pid,
        patch: std::fs::read_to_string(&patch).ok(),
        trajectory: std::fs::read_to_string(&traj)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap()),
        requests: server.requests().iter().map(|r| r.json()).collect(),
    }
}

/// The `mend` binary under test.
pub fn mend() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mend"))
}

/// A finished command's status and output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// mend's base image (built when missing), as `mend images base` names it.
pub fn base_image() -> String {
    let out = mend().args(["images", "base"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An instance image tagged `tag`: mend's base image with the repository `ctx/repo` (made
/// by the caller) at /testbed, the way SWE-bench images hold theirs.
pub fn testbed_image(ctx: &Path, tag: &str) {
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nUSER root\nCOPY repo /testbed\nWORKDIR /testbed\n",
            base_image()
        ),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(ctx)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Containers (running or not) labelled with this batch run id.
pub fn run_containers(run_id: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.mend.swebench.run_id={run_id}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("docker ps: {e}"));
    String::from_utf8_lossy(&out.stdout).lines().count()
}
