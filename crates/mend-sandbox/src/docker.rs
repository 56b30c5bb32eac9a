//! `DockerSandbox`: one container per task, through bollard.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::capture::Captured;
use crate::engine_host;
use crate::exec_server::{ExecServer, Ran};
use crate::paths::{confine, resolve_dir};
use crate::{Exec, ExecOutput, Sandbox, SandboxError, Termination};

/// Label on every container mend creates; the stale sweep looks for it.
pub const SANDBOX_LABEL: &str = "dev.mend.sandbox";
const OWNER_LABEL: &str = "dev.mend.owner";

/// Runs a command with a timeout inside the container. `timeout` (coreutils) puts the
/// command in its own process group and signals the whole group: TERM at the limit,
/// KILL two seconds later. The pid file lets mend kill the group itself if even that fails.
const WRAPPER: &str = r#"p=$1; t=$2; shift 2; echo $$ > "$p"; if command -v timeout >/dev/null 2>&1; then exec timeout -k 2 "$t" "$@"; else exec "$@"; fi"#;

/// A connection to the Docker engine, with the API version negotiated.
#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: engine_host::Endpoint,
}

impl DockerEngine {
    /// The engine the environment names, as the docker CLI finds it: `DOCKER_HOST`, else
    /// `DOCKER_CONTEXT` or the CLI's current context, else `/var/run/docker.sock`.
    pub async fn connect() -> Result<DockerEngine, SandboxError> {
        let ep = engine_host::resolve(&|k| std::env::var(k).ok())?;
        Self::connect_endpoint(ep).await
    }

    /// The engine at `host`, written as for `DOCKER_HOST` (`unix:///path`, `tcp://HOST:PORT`).
    pub async fn connect_to(host: &str) -> Result<DockerEngine, SandboxError> {
        Self::connect_endpoint(engine_host::Endpoint::from_host(host, "the given address")).await
    }

    async fn connect_endpoint(ep: engine_host::Endpoint) -> Result<DockerEngine, SandboxError> {
        let docker = engine_host::client(&ep)?;
        let unavailable = |e: BollardError| {
            SandboxError::EngineUnavailable(format!(
                "{} (from {}): {}{}",
                ep.host,
                ep.source,
                engine_message(&e),
                if ep.source == "the default socket" {
                    " (is dockerd running and is the socket readable? DOCKER_HOST names another engine)"
                } else {
                    ""
                }
            ))
        };
        // Debian's engine speaks an older API than bollard's default; negotiate down.
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        docker.ping().await.map_err(unavailable)?;
        Ok(DockerEngine {
            docker,
            endpoint: ep,
        })
    }

    /// The engine's address (`unix:///var/run/docker.sock`, `tcp://...`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint.host
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool, SandboxError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(SandboxError::engine(format!("looking up image {image}"))(e)),
        }
    }

    /// Remove labelled containers whose owning process (on this host) is gone: what a
    /// crashed or killed run left behind. Returns how many were removed.
    pub async fn sweep_stale(&self) -> Result<usize, SandboxError> {
        let mut filters = HashMap::new();
        filters.insert("label".to_string(), vec![SANDBOX_LABEL.to_string()]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(SandboxError::engine("listing containers"))?;
        let mut removed = 0;
        for c in list {
            let owner = c
                .labels
                .as_ref()
                .and_then(|l| l.get(OWNER_LABEL))
                .cloned()
                .unwrap_or_default();
            if owner_alive(&owner) {
                continue;
            }
            if let Some(id) = c.id
                && remove_container(&self.docker, &id).await.is_ok()
            {
                tracing::info!(container = %id, owner = %owner, "removed a stale sandbox container");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Which user commands run as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UserChoice {
    /// The non-root user `mend` when the image has it (mend's base image does), else root.
    #[default]
    Auto,
    Root,
    Named(String),
}

/// How to start a [`DockerSandbox`].
#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub image: String,
    /// The repository root inside the container.
    pub root: String,
    /// Network access: off unless asked for.
    pub network: bool,
    pub memory_bytes: Option<i64>,
    /// CPU limit in units of 1e-9 CPUs.
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub user: UserChoice,
    /// Environment for every command (never put secrets here).
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Run commands through the in-container runner (one fork per command) when the image
    /// has python3; off means one engine exec per command.
    pub command_runner: bool,
}

impl DockerConfig {
    pub fn new(image: impl Into<String>) -> DockerConfig {
        DockerConfig {
            image: image.into(),
            root: "/repo".into(),
            network: false,
            memory_bytes: Some(4 << 30),
            nano_cpus: None,
            pids_limit: Some(4096),
            user: UserChoice::Auto,
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            command_runner: true,
        }
    }
}

/// A container that lives as long as this value: dropped, errored or panicked, it is removed.
pub struct DockerSandbox {
    engine: DockerEngine,
    guard: ContainerGuard,
    name: String,
    root: String,
    user: String,
    uid_gid: (u32, u32),
    env: Vec<String>,
    base: Mutex<Option<String>>,
    oom_kills: AtomicU64,
    exec_counter: AtomicU64,
    /// The in-container command runner; `None` when the image has no python3.
    runner: Option<ExecServer>,
}

impl DockerSandbox {
    pub async fn start(
        engine: &DockerEngine,
        cfg: DockerConfig,
    ) -> Result<DockerSandbox, SandboxError> {
        if cfg.image.trim().is_empty() {
            return Err(SandboxError::ImageNotFound(String::new()));
        }
        if !engine.image_exists(&cfg.image).await? {
            return Err(SandboxError::ImageNotFound(cfg.image.clone()));
        }
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "mend-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            nonce()
        );
        let mut labels: HashMap<String, String> = cfg.labels.clone().into_iter().collect();
        labels.insert(SANDBOX_LABEL.into(), "1".into());
        labels.insert(OWNER_LABEL.into(), owner_id());
        let host = HostConfig {
            network_mode: Some(if cfg.network {
                "bridge".into()
            } else {
                "none".into()
            }),
            memory: cfg.memory_bytes,
            memory_swap: cfg.memory_bytes,
            nano_cpus: cfg.nano_cpus,
            pids_limit: cfg.pids_limit,
            init: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(cfg.image.clone()),
            entrypoint: Some(vec!["sleep".into()]),
            cmd: Some(vec!["infinity".into()]),
            labels: Some(labels),
            host_config: Some(host),
            network_disabled: Some(!cfg.network),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = engine
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(SandboxError::engine(format!(
                "creating a container from {}",
                cfg.image
            )))?;
        let guard = ContainerGuard::new(created.id.clone(), &engine.endpoint);
        engine
            .docker
            .start_container(&created.id, None)
            .await
            .map_err(SandboxError::engine(format!(
                "starting a container from {}",
                cfg.image
            )))?;

        let mut sb = DockerSandbox {
            engine: engine.clone(),
            guard,
            name,
            root: cfg.root.clone(),
            user: "root".into(),
            uid_gid: (0, 0),
            env: cfg.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            base: Mutex::new(None),
            oom_kills: AtomicU64::new(0),
            exec_counter: AtomicU64::new(0),
            runner: None,
        };
        let user = match &cfg.user {
            UserChoice::Root => "root".to_string(),
            UserChoice::Named(u) => u.clone(),
            UserChoice::Auto => {
                let probe = sb
                    .exec_as(
                        "root",
                        &Exec::new(["id", "-u", "mend"]).timeout(Duration::from_secs(30)),
                    )
                    .await?;
                if probe.success() {
                    "mend".into()
                } else {
                    "root".into()
                }
            }
        };
        let ids = sb
            .exec_as(
                "root",
                &Exec::new(["sh", "-c", "id -u \"$1\" && id -g \"$1\"", "sh", &user])
                    .timeout(Duration::from_secs(30)),
            )
            .await?;
        if !ids.success() {
            return Err(SandboxError::Engine {
                action: "looking up the sandbox user".into(),
                message: format!("user `{user}` does not exist in image {}", cfg.image),
            });
        }
        let text = ids.stdout.text();
        let mut nums = text
            .split_whitespace()
            .filter_map(|s| s.parse::<u32>().ok());
        sb.uid_gid = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
        sb.user = user.clone();
        let root_q = shell_quote(&sb.root);
        let mk = sb
            .exec_as(
                "root",
                &Exec::shell(format!(
                    "mkdir -p {root_q} && chown {}:{} {root_q}",
                    sb.uid_gid.0, sb.uid_gid.1
                ))
                .timeout(Duration::from_secs(30)),
            )
            .await?;
        if !mk.success() {
            return Err(SandboxError::Engine {
                action: format!("creating {}", sb.root),
                message: mk.stderr.text(),
            });
        }
        sb.oom_kills
            .store(sb.read_oom_kills().await.unwrap_or(0), Ordering::Relaxed);
        if cfg.command_runner {
            sb.runner =
                ExecServer::start(&sb.engine.docker, sb.guard.id(), &sb.user, sb.env.clone())
                    .await?;
        }
        // The root may already hold a repository (SWE-bench images do): diff against its HEAD.
        let _ = sb.pin_base().await;
        tracing::debug!(container = %sb.name, image = %cfg.image, user = %sb.user, "sandbox started");
        Ok(sb)
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user commands run as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Remove the container now (drop does the same, synchronously).
    pub async fn close(mut self) -> Result<(), SandboxError> {
        let id = self.guard.disarm();
        remove_container(&self.engine.docker, &id)
            .await
            .map_err(SandboxError::engine("removing the sandbox container"))
    }

    /// Run a command as a given user (the sandbox's own calls run some steps as root).
    pub async fn exec_as(&self, user: &str, exec: &Exec) -> Result<ExecOutput, SandboxError> {
        exec.validate()?;
        let n = self.exec_counter.fetch_add(1, Ordering::Relaxed);
        let pidfile = format!("/tmp/.mend-exec-{n}.pid");
        let secs = format!("{:.3}", exec.timeout.as_secs_f64().max(0.001));
        let mut argv: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            WRAPPER.into(),
            "mend-exec".into(),
            pidfile.clone(),
            secs,
        ];
        argv.extend(exec.argv.iter().cloned());
        let mut env = self.env.clone();
        env.extend(exec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let cfg = CreateExecOptions::<String> {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(exec.stdin.is_some()),
            cmd: Some(argv),
            env: Some(env),
            working_dir: Some(resolve_dir(&self.root, exec.cwd.as_deref())),
            user: Some(user.to_string()),
            ..Default::default()
        };
        let id = self.guard.id();
        let created = self
            .engine
            .docker
            .create_exec(id, cfg)
            .await
            .map_err(|e| self.gone_or(e, "creating an exec"))?;
        let started = Instant::now();
        let res = self
            .engine
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| self.gone_or(e, "starting an exec"))?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = res
        else {
            return Err(SandboxError::Engine {
                action: "starting an exec".into(),
                message: "the engine detached the exec".into(),
            });
        };
        if let Some(data) = exec.stdin.clone() {
            tokio::spawn(async move {
                let _ = input.write_all(&data).await;
                let _ = input.shutdown().await;
            });
        }
        let mut stdout = Captured::new(exec.output_cap);
        let mut stderr = Captured::new(exec.output_cap);
        // The in-container `timeout` should end the command; this is the backstop.
        let deadline = tokio::time::Instant::now() + exec.timeout + Duration::from_secs(5);
        let mut host_killed = false;
        loop {
            match tokio::time::timeout_at(deadline, output.next()).await {
                Ok(Some(Ok(LogOutput::StdOut { message })))
                | Ok(Some(Ok(LogOutput::Console { message }))) => stdout.push(&message),
                Ok(Some(Ok(LogOutput::StdErr { message }))) => stderr.push(&message),
                Ok(Some(Ok(LogOutput::StdIn { .. }))) => {}
                Ok(Some(Err(e))) => return Err(self.gone_or(e, "reading command output")),
                Ok(None) => break,
                Err(_) => {
                    host_killed = true;
                    self.kill_group(&pidfile).await;
                    // Drain what is left for a moment, then give up on the stream.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(chunk)) = output.next().await {
                            if let LogOutput::StdOut { message } = chunk {
                                stdout.push(&message)
                            }
                        }
                    })
                    .await;
                    break;
                }
            }
        }
        let elapsed = started.elapsed();
        let code = self.exit_code(&created.id).await?;
        let timed_out =
            host_killed || (elapsed >= exec.timeout && matches!(code, Some(124) | Some(137)));
        let termination = if timed_out {
            Termination::TimedOut
        } else {
            match code {
                Some(137) => {
                    if self.oom_happened().await {
                        Termination::OutOfMemory
                    } else {
                        Termination::Signal(9)
                    }
                }
                Some(c) => Termination::Exited(c as i32),
                None => Termination::Signal(0),
            }
        };
        Ok(ExecOutput {
            termination,
            stdout,
            stderr,
            elapsed,
        })
    }

    async fn exit_code(&self, exec_id: &str) -> Result<Option<i64>, SandboxError> {
        // The stream can end a moment before the engine records the exit.
        for _ in 0..50 {
            let info = self
                .engine
                .docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| self.gone_or(e, "inspecting an exec"))?;
            if info.running != Some(true) {
                return Ok(info.exit_code);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(None)
    }

    async fn kill_group(&self, pidfile: &str) {
        let script =
            format!("p=$(cat {pidfile} 2>/dev/null) && kill -KILL -- -$p $p 2>/dev/null; true");
        let _ = self.exec_plain("root", &script).await;
    }

    /// A short root command without the timeout wrapper (used for the backstop kill).
    async fn exec_plain(&self, user: &str, script: &str) -> Result<(), SandboxError> {
        let cfg = CreateExecOptions::<String> {
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            user: Some(user.into()),
            attach_stdout: Some(true),
            ..Default::default()
        };
        let created = self
            .engine
            .docker
            .create_exec(self.guard.id(), cfg)
            .await
            .map_err(SandboxError::engine("creating an exec"))?;
        if let StartExecResults::Attached { mut output, .. } = self
            .engine
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(SandboxError::engine("starting an exec"))?
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while output.next().await.is_some() {}
            })
            .await;
        }
        Ok(())
    }

    async fn read_oom_kills(&self) -> Option<u64> {
        let script = "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; cat /sys/fs/cgroup/memory.events 2>/dev/null; true";
        let out = Box::pin(self.exec_as(
            "root",
            &Exec::shell(script).timeout(Duration::from_secs(30)),
        ))
        .await
        .ok()?;
        out.stdout.text().lines().find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse().ok())
        })
    }

    /// Did the kernel OOM-kill something since we last looked?
    async fn oom_happened(&self) -> bool {
        let now = self.read_oom_kills().await;
        let before = self.oom_kills.load(Ordering::Relaxed);
        if let Some(n) = now {
            self.oom_kills.store(n, Ordering::Relaxed);
            if n > before {
                return true;
            }
        }
        // The engine's own flag covers kernels without the counter.
        matches!(self.engine.docker.inspect_container(self.guard.id(), None).await, Ok(info) if info.state.as_ref().and_then(|s| s.oom_killed) == Some(true))
    }

    async fn is_running(&self) -> bool {
        matches!(self.engine.docker.inspect_container(self.guard.id(), None).await, Ok(info) if info.state.as_ref().and_then(|s| s.running) == Some(true))
    }

    fn gone_or(&self, e: BollardError, action: &str) -> SandboxError {
        match &e {
            BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            } => SandboxError::ContainerGone(self.name.clone()),
            _ => SandboxError::engine(action)(e),
        }
    }

    async fn ensure_dir(&self, dir: &str) -> Result<(), SandboxError> {
        let out = self
            .exec(&Exec::new(["mkdir", "-p", dir]).timeout(Duration::from_secs(60)))
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(SandboxError::Engine {
                action: format!("creating {dir}"),
                message: out.stderr.text(),
            })
        }
    }
}

#[async_trait::async_trait]
impl Sandbox for DockerSandbox {
    fn root(&self) -> &str {
        &self.root
    }

    async fn exec(&self, exec: &Exec) -> Result<ExecOutput, SandboxError> {
        exec.validate()?;
        if let Some(runner) = self.runner.as_ref().filter(|r| r.is_alive()) {
            match runner
                .run(exec, resolve_dir(&self.root, exec.cwd.as_deref()))
                .await
            {
                Ok(Ran::Done {
                    termination_hint,
                    stdout,
                    stderr,
                    elapsed,
                }) => {
                    let termination = match termination_hint {
                        Termination::Signal(9) if self.oom_happened().await => {
                            Termination::OutOfMemory
                        }
                        t => t,
                    };
                    return Ok(ExecOutput {
                        termination,
                        stdout,
                        stderr,
                        elapsed,
                    });
                }
                Ok(Ran::SpawnError(message)) => return Ok(spawn_failure(exec, &message)),
                Err(e) => {
                    if !self.is_running().await {
                        return Err(SandboxError::ContainerGone(self.name.clone()));
                    }
                    tracing::warn!(error = %e, "the command runner failed; falling back to one engine exec per command");
                }
            }
        }
        self.exec_as(&self.user.clone(), exec).await
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, SandboxError> {
        let full = confine(&self.root, path)?;
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(&full)
            .build();
        let mut stream = self
            .engine
            .docker
            .download_from_container(self.guard.id(), Some(opts));
        let mut tar_bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => tar_bytes.extend_from_slice(&b),
                Err(BollardError::DockerResponseServerError {
                    status_code: 404,
                    message,
                }) if message.contains("ould not find") || message.contains("No such") => {
                    return Err(SandboxError::NotFound(path.to_string()));
                }
                Err(e) => return Err(self.gone_or(e, &format!("reading {path}"))),
            }
        }
        // `Some(bytes)` for a file, `None` for a symlink (the archive holds the link itself).
        let read = || -> Result<Option<Vec<u8>>, SandboxError> {
            let mut archive = tar::Archive::new(&tar_bytes[..]);
            let mut entries = archive
                .entries()
                .map_err(SandboxError::io("reading the file archive"))?;
            let mut entry = match entries.next() {
                Some(e) => e.map_err(SandboxError::io("reading the file archive"))?,
                None => return Err(SandboxError::NotFound(path.to_string())),
            };
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                return Err(SandboxError::IsDirectory(path.to_string()));
            }
            if kind.is_symlink() {
                return Ok(None);
            }
            let mut data = Vec::new();
            entry.read_to_end_sync(&mut data)?;
            Ok(Some(data))
        };
        if let Some(data) = read()? {
            return Ok(data);
        }
        // Read what the link points to, if that is inside the repository.
        let out = self
            .exec(&Exec::new(["realpath", "-e", "--", &full]).timeout(Duration::from_secs(60)))
            .await?;
        if !out.success() {
            return Err(SandboxError::NotFound(path.to_string()));
        }
        let target = out.stdout.text().trim().to_string();
        let inside = confine(&self.root, &target)
            .map_err(|_| SandboxError::PathEscapesRoot(path.to_string()))?;
        if inside == full {
            return Err(SandboxError::NotFound(path.to_string()));
        }
        Box::pin(self.read_file(&inside)).await
    }

    async fn write_file(&self, path: &str, data: &[u8]) -> Result<(), SandboxError> {
        let full = confine(&self.root, path)?;
        // Through the shell, so an existing file keeps its mode and owner and new
        // directories belong to the sandbox user.
        let exec = Exec::new(["sh", "-c", "if [ -d \"$1\" ]; then echo 'is a directory' >&2; exit 21; fi; mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\"", "sh", &full])
            .stdin(data.to_vec())
            .timeout(Duration::from_secs(120));
        let out = self.exec(&exec).await?;
        match out.termination {
            Termination::Exited(0) => Ok(()),
            Termination::Exited(21) => Err(SandboxError::IsDirectory(path.to_string())),
            _ => Err(SandboxError::Engine {
                action: format!("writing {path}"),
                message: out.stderr.text(),
            }),
        }
    }

    async fn copy_in(&self, host_dir: &Path, dest: &str) -> Result<(), SandboxError> {
        let dest = resolve_dir(&self.root, Some(dest));
        self.ensure_dir(&dest).await?;
        let (uid, gid) = self.uid_gid;
        // The host's tar streams the tree (links, modes, any size) owned by the sandbox user.
        let mut child = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(host_dir)
            .args([
                "-c",
                "--numeric-owner",
                &format!("--owner={uid}"),
                &format!("--group={gid}"),
                ".",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(SandboxError::io("starting tar"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SandboxError::BaseImage("tar gave no stdout".into()))?;
        let body = tokio_util_stream(stdout);
        let opts = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
            .path(&dest)
            .build();
        let up = self
            .engine
            .docker
            .upload_to_container(self.guard.id(), Some(opts), bollard::body_try_stream(body))
            .await;
        let out = child
            .wait_with_output()
            .await
            .map_err(SandboxError::io("running tar"))?;
        if !out.status.success() {
            return Err(SandboxError::Io {
                action: format!("archiving {}", host_dir.display()),
                source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
            });
        }
        up.map_err(|e| self.gone_or(e, "uploading files"))
    }

    async fn copy_out(&self, src: &str, host_dir: &Path) -> Result<(), SandboxError> {
        let src = resolve_dir(&self.root, Some(src));
        std::fs::create_dir_all(host_dir)
            .map_err(SandboxError::io(format!("creating {}", host_dir.display())))?;
        let mut child = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(host_dir)
            .args(["-x", "--no-same-owner", "--no-same-permissions", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(SandboxError::io("starting tar"))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| SandboxError::BaseImage("tar gave no stdin".into()))?;
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(&src)
            .build();
        let mut stream = self
            .engine
            .docker
            .download_from_container(self.guard.id(), Some(opts));
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => {
                    if let Err(e) = stdin.write_all(&b).await {
                        failure = Some(SandboxError::Io {
                            action: "extracting".into(),
                            source: e,
                        });
                        break;
                    }
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    failure = Some(SandboxError::NotFound(src.clone()));
                    break;
                }
                Err(e) => {
                    failure = Some(self.gone_or(e, "downloading files"));
                    break;
                }
            }
        }
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .map_err(SandboxError::io("running tar"))?;
        if let Some(f) = failure {
            return Err(f);
        }
        if !out.status.success() {
            return Err(SandboxError::Io {
                action: "extracting".into(),
                source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
            });
        }
        Ok(())
    }

    async fn diff(&self) -> Result<String, SandboxError> {
        let base = self
            .base
            .lock()
            .ok()
            .and_then(|b| b.clone())
            .unwrap_or_else(|| "HEAD".into());
        // A throw-away index, so the repository's own index is untouched; `add -A`
        // brings in new files and honours .gitignore. `cp -p` keeps the index's mtime:
        // git's racy-entry check needs it to see a same-size edit made in the same second.
        let script = format!(
            "set -e; g='git -c safe.directory=* -c core.quotepath=false'; i=$(mktemp -u /tmp/.mend-index.XXXXXX); \
             cp -p \"$($g rev-parse --git-path index)\" \"$i\" 2>/dev/null || true; export GIT_INDEX_FILE=\"$i\"; \
             $g add -A >/dev/null; $g diff --cached --binary --no-color --no-ext-diff --no-renames {base}; rm -f \"$i\""
        );
        let out = self
            .exec(
                &Exec::shell(script)
                    .timeout(Duration::from_secs(300))
                    .output_cap(512 << 20),
            )
            .await?;
        if !out.success() {
            return Err(SandboxError::Git(format!(
                "git diff in the sandbox failed ({}): {}",
                out.status_line(),
                out.stderr.text().trim()
            )));
        }
        if out.stdout.is_truncated() {
            return Err(SandboxError::Git("the diff is larger than 512 MiB".into()));
        }
        let text = String::from_utf8(out.stdout.bytes())
            .map_err(|_| SandboxError::Git("the diff is not UTF-8".into()))?;
        crate::gitdiff::check_parses(&text)?;
        Ok(text)
    }

    async fn pin_base(&self) -> Result<String, SandboxError> {
        let out = self
            .exec(
                &Exec::new(["git", "-c", "safe.directory=*", "rev-parse", "HEAD"])
                    .timeout(Duration::from_secs(60)),
            )
            .await?;
        if !out.success() {
            return Err(SandboxError::Git(format!(
                "{} is not a git repository with a commit: {}",
                self.root,
                out.stderr.text().trim()
            )));
        }
        let head = out.stdout.text().trim().to_string();
        if let Ok(mut b) = self.base.lock() {
            *b = Some(head.clone());
        }
        Ok(head)
    }
}

/// A program that could not be started reads like the shell's "not found": exit 127 with
/// the reason on stderr, so the model sees an observation rather than an error.
pub(crate) fn spawn_failure(exec: &Exec, message: &str) -> ExecOutput {
    let mut stderr = Captured::new(exec.output_cap);
    stderr.push(format!("mend: cannot run `{}`: {message}\n", exec.argv[0]).as_bytes());
    ExecOutput {
        termination: Termination::Exited(127),
        stdout: Captured::new(exec.output_cap),
        stderr,
        elapsed: Duration::ZERO,
    }
}

/// Removes the container when dropped, unless disarmed. Live containers are also
/// registered, with the engine they live on, so a Ctrl-C handler can remove them all
/// ([`remove_live_containers`]).
struct ContainerGuard {
    id: String,
    endpoint: engine_host::Endpoint,
}

fn live() -> &'static Mutex<HashMap<String, engine_host::Endpoint>> {
    static LIVE: OnceLock<Mutex<HashMap<String, engine_host::Endpoint>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl ContainerGuard {
    fn new(id: String, endpoint: &engine_host::Endpoint) -> ContainerGuard {
        if let Ok(mut l) = live().lock() {
            l.insert(id.clone(), endpoint.clone());
        }
        ContainerGuard {
            id,
            endpoint: endpoint.clone(),
        }
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn disarm(&mut self) -> String {
        if let Ok(mut l) = live().lock() {
            l.remove(&self.id);
        }
        std::mem::take(&mut self.id)
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let id = self.disarm();
        remove_blocking(vec![(id, self.endpoint.clone())]);
    }
}

/// Remove every container this process still has (for a Ctrl-C handler before exit).
pub fn remove_live_containers() -> usize {
    let ids: Vec<(String, engine_host::Endpoint)> = match live().lock() {
        Ok(mut l) => l.drain().collect(),
        Err(_) => return 0,
    };
    let n = ids.len();
    if n > 0 {
        remove_blocking(ids);
    }
    n
}

/// Remove containers from synchronous code (Drop, signal handlers). A fresh thread with
/// its own runtime and clients: the caller's runtime may be blocked or shutting down.
fn remove_blocking(ids: Vec<(String, engine_host::Endpoint)>) {
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            // Each container on the engine it was made on (DOCKER_HOST and contexts included).
            let mut clients: HashMap<String, Option<Docker>> = HashMap::new();
            for (id, ep) in ids {
                if !clients.contains_key(&ep.host) {
                    let docker = match engine_host::client(&ep) {
                        Ok(d) => d.negotiate_version().await.ok(),
                        Err(_) => None,
                    };
                    clients.insert(ep.host.clone(), docker);
                }
                let Some(Some(docker)) = clients.get(&ep.host) else {
                    tracing::warn!(container = %id, engine = %ep.host, "could not reach the engine to remove a sandbox container");
                    continue;
                };
                if let Err(e) = remove_container(docker, &id).await {
                    tracing::warn!(container = %id, error = %engine_message(&e), "could not remove a sandbox container");
                }
            }
        });
    });
    let _ = worker.join();
}

async fn remove_container(docker: &Docker, id: &str) -> Result<(), BollardError> {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(())
        | Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `pid:start_time:host` of this process, so a sweep can tell a dead owner from a live one
/// even after pid reuse.
fn owner_id() -> String {
    let pid = std::process::id();
    format!(
        "{pid}:{}:{}",
        proc_start_time(pid).unwrap_or_default(),
        hostname()
    )
}

fn owner_alive(owner: &str) -> bool {
    let mut parts = owner.splitn(3, ':');
    let (Some(pid), Some(start), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        // Another machine's container (a shared engine): not ours to judge.
        return true;
    }
    let Ok(p) = pid.parse::<u32>() else {
        return false;
    };
    // A zombie (killed, not yet reaped by its parent) is dead: it will never remove anything.
    match proc_stat(p) {
        Some((state, start_time)) => start_time == start && !matches!(state, 'Z' | 'X'),
        None => false,
    }
}

fn proc_start_time(pid: u32) -> Option<String> {
    proc_stat(pid).map(|(_, start)| start)
}

/// State (field 3) and start time (field 22) of a process, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in field 2 may hold spaces and parentheses, so count after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.to_string();
    Some((state, start))
}

/// The host part of an owner id: the hostname and the PID namespace. Processes that share
/// a hostname but not a PID namespace (containers on the host network, e.g. swarm tasks
/// running mend with the engine socket) cannot judge each other's pids, so each counts the
/// other's containers as another machine's.
fn hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    match std::fs::read_link("/proc/self/ns/pid") {
        Ok(ns) => format!("{host}/{}", ns.display()),
        Err(_) => host,
    }
}

fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{t:08x}")
}

pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The engine's own words, without bollard's wrapping.
pub(crate) fn engine_message(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// An `AsyncRead` as a stream of byte chunks for a request body.
fn tokio_util_stream<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: R,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(
        (reader, vec![0u8; 256 * 1024]),
        |(mut r, mut buf)| async move {
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                    Some((Ok(chunk), (r, buf)))
                }
                Err(e) => Some((Err(e), (r, buf))),
            }
        },
    )
}

trait ReadToEndSync {
    fn read_to_end_sync(&mut self, out: &mut Vec<u8>) -> Result<(), SandboxError>;
}

impl<R: std::io::Read> ReadToEndSync for R {
    fn read_to_end_sync(&mut self, out: &mut Vec<u8>) -> Result<(), SandboxError> {
        std::io::Read::read_to_end(self, out)
            .map(|_| ())
            .map_err(SandboxError::io("reading the file archive"))
    }
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    #[test]
    fn a_dead_pid_is_judged_only_in_the_pid_namespace_that_owns_it() {
        // This process is alive; a pid that cannot exist is dead here.
        assert!(owner_alive(&owner_id()));
        let host = hostname();
        assert!(!owner_alive(&format!("999999999:1:{host}")));
        // The same hostname in another PID namespace (a container on the host network):
        // its pids mean nothing here, so its containers are left alone.
        let bare = host.split('/').next().unwrap_or("").to_string();
        assert!(owner_alive(&format!("999999999:1:{bare}/pid:[1]")));
        assert!(owner_alive(&format!("999999999:1:{bare}")));
    }
}
