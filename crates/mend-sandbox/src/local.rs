//! `LocalSandbox`: a checkout of the repository in a temporary directory. It shares the
//! repository's object store through git's `alternates`, so creating it copies no history
//! and writes nothing into the user's repository or working tree.
//!
//! What it isolates: the file tools (read/write) stay inside the checkout, symlinks
//! resolved; commands get a scrubbed environment (no API keys) and a private `HOME`; and
//! the process that creates one is made non-dumpable, so a command (same user) cannot read
//! its environment or memory through `/proc/<pid>/`. What it does not: commands run as the
//! user, on the host, with the user's network and file system (anything the user can read
//! or write outside the checkout, they can too); root can read everything.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Instant;

use git2::{Repository, build::CheckoutBuilder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::capture::Captured;
use crate::paths::{confine, resolve_dir, resolve_within};
use crate::{Exec, ExecOutput, Sandbox, SandboxError, Termination};

/// Environment variables passed through from the host; everything else (API keys
/// included) stays out of the commands the model runs.
/// `HOME` is not among them: commands get a private one, so `~/.netrc`, `~/.git-credentials`
/// and credential helpers in `~/.gitconfig` are not used behind the model's back.
const PASS_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "TERM",
    "USER",
    "TMPDIR",
    "PYTHONUSERBASE",
    "CARGO_HOME",
    "RUSTUP_HOME",
];

/// Tool homes under the real `HOME` that commands keep (user-installed packages and
/// toolchains) when the variable is not set: (variable, directory under `HOME`).
const KEEP_HOMES: &[(&str, &str)] = &[
    ("PYTHONUSERBASE", ".local"),
    ("CARGO_HOME", ".cargo"),
    ("RUSTUP_HOME", ".rustup"),
];

pub struct LocalSandbox {
    dir: tempfile::TempDir,
    /// `dir`, symlinks resolved: what every path the tools touch must stay under.
    canon_root: PathBuf,
    /// The commands' `HOME`.
    home: tempfile::TempDir,
    root: String,
    base: Mutex<String>,
}

impl LocalSandbox {
    /// Check out `rev` of the repository at `repo` into a fresh temporary directory.
    pub fn create(repo: &Path, rev: &str) -> Result<LocalSandbox, SandboxError> {
        let src = Repository::discover(repo)
            .map_err(|e| SandboxError::Git(format!("{}: {}", repo.display(), e.message())))?;
        let commit = src
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| SandboxError::Git(format!("revision `{rev}`: {}", e.message())))?;
        let objects = src
            .commondir()
            .join("objects")
            .canonicalize()
            .map_err(SandboxError::io("locating the object store"))?;

        let dir = tempfile::Builder::new()
            .prefix("mend-local-")
            .tempdir()
            .map_err(SandboxError::io("creating a temporary directory"))?;
        Repository::init(dir.path())?;
        let alt = dir.path().join(".git/objects/info/alternates");
        std::fs::write(&alt, format!("{}\n", objects.display()))
            .map_err(SandboxError::io("writing alternates"))?;
        // Reopen so libgit2 reads the alternates file.
        let dst = Repository::open(dir.path())?;
        dst.set_head_detached(commit.id())?;
        dst.checkout_head(Some(CheckoutBuilder::new().force()))?;
        let root = dir.path().to_string_lossy().into_owned();
        let canon_root = dir
            .path()
            .canonicalize()
            .map_err(SandboxError::io("resolving the checkout"))?;
        let home = tempfile::Builder::new()
            .prefix("mend-home-")
            .tempdir()
            .map_err(SandboxError::io("creating a temporary HOME"))?;
        forbid_inspection();
        Ok(LocalSandbox {
            dir,
            canon_root,
            home,
            root,
            base: Mutex::new(commit.id().to_string()),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The host path `path` names, with every symlink resolved (dangling ones too), or
    /// [`SandboxError::PathEscapesRoot`] when that leaves the checkout.
    fn confine_host(&self, path: &str) -> Result<PathBuf, SandboxError> {
        let lexical = PathBuf::from(confine(&self.root, path)?);
        let rel = lexical
            .strip_prefix(&self.root)
            .map_err(|_| SandboxError::PathEscapesRoot(path.to_string()))?;
        resolve_within(&self.canon_root, rel)
            .ok_or_else(|| SandboxError::PathEscapesRoot(path.to_string()))
    }

    fn command_env(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = PASS_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        if let Some(real) = std::env::var_os("HOME").map(PathBuf::from) {
            for (var, sub) in KEEP_HOMES {
                let dir = real.join(sub);
                if !env.contains_key(*var) && dir.is_dir() {
                    env.insert(var.to_string(), dir.to_string_lossy().into_owned());
                }
            }
        }
        env.insert(
            "HOME".into(),
            self.home.path().to_string_lossy().into_owned(),
        );
        env
    }
}

/// Make this process non-dumpable: its `/proc/<pid>/environ`, `mem` and the like then
/// belong to root and other processes of the same user (the commands run here) can neither
/// read them nor ptrace it. Removing the key from the environment would not do: `environ`
/// shows the block the process started with. Children start dumpable again (execve).
fn forbid_inspection() {
    // SAFETY: prctl(PR_SET_DUMPABLE) changes a flag of this process; no memory is touched.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not make mend non-dumpable; commands in the local sandbox may read its environment"
        );
    }
}

#[async_trait::async_trait]
impl Sandbox for LocalSandbox {
    fn root(&self) -> &str {
        &self.root
    }

    async fn exec(&self, exec: &Exec) -> Result<ExecOutput, SandboxError> {
        exec.validate()?;
        let cwd = resolve_dir(&self.root, exec.cwd.as_deref());
        let mut env = self.command_env();
        env.extend(exec.env.clone());
        let mut cmd = tokio::process::Command::new(&exec.argv[0]);
        cmd.args(&exec.argv[1..])
            .current_dir(&cwd)
            .env_clear()
            .envs(env)
            .stdin(if exec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Ok(crate::docker::spawn_failure(exec, &e.to_string())),
        };
        let group = GroupKiller(child.id().map(|p| p as i32));
        if let (Some(data), Some(mut stdin)) = (exec.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // A command that does not read its stdin closes the pipe; that is not an error.
                let _ = stdin.write_all(&data).await;
            });
        }
        let out = tokio::spawn(read_capped(child.stdout.take(), exec.output_cap));
        let err = tokio::spawn(read_capped(child.stderr.take(), exec.output_cap));
        let status = tokio::time::timeout(exec.timeout, child.wait()).await;
        let termination = match status {
            Ok(Ok(st)) => {
                use std::os::unix::process::ExitStatusExt;
                match (st.code(), st.signal()) {
                    (Some(c), _) => Termination::Exited(c),
                    (None, Some(s)) => Termination::Signal(s),
                    (None, None) => Termination::Signal(0),
                }
            }
            Ok(Err(e)) => {
                return Err(SandboxError::Io {
                    action: "waiting for a command".into(),
                    source: e,
                });
            }
            Err(_) => {
                group.kill();
                let _ = child.wait().await;
                Termination::TimedOut
            }
        };
        // The group leader is gone; kill stragglers that still hold the pipes.
        group.kill();
        let grace = std::time::Duration::from_secs(5);
        let stdout = tokio::time::timeout(grace, out)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let stderr = tokio::time::timeout(grace, err)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        Ok(ExecOutput {
            termination,
            stdout,
            stderr,
            elapsed: started.elapsed(),
        })
    }

    async fn read_file(&self, path: &str) -> Result<Vec<u8>, SandboxError> {
        let p = self.confine_host(path)?;
        if p.is_dir() {
            return Err(SandboxError::IsDirectory(path.to_string()));
        }
        tokio::fs::read(&p).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxError::NotFound(path.to_string()),
            _ => SandboxError::Io {
                action: format!("reading {path}"),
                source: e,
            },
        })
    }

    async fn write_file(&self, path: &str, data: &[u8]) -> Result<(), SandboxError> {
        let p = self.confine_host(path)?;
        if p.is_dir() {
            return Err(SandboxError::IsDirectory(path.to_string()));
        }
        if let Some(parent) = p.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(SandboxError::io(format!(
                    "creating the directory of {path}"
                )))?;
        }
        // O_NOFOLLOW: a link put in place since the check is not followed.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .await
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => SandboxError::PathEscapesRoot(path.to_string()),
                _ => SandboxError::Io {
                    action: format!("writing {path}"),
                    source: e,
                },
            })?;
        file.write_all(data)
            .await
            .map_err(SandboxError::io(format!("writing {path}")))?;
        file.flush()
            .await
            .map_err(SandboxError::io(format!("writing {path}")))
    }

    async fn copy_in(&self, host_dir: &Path, dest: &str) -> Result<(), SandboxError> {
        let dest = PathBuf::from(resolve_dir(&self.root, Some(dest)));
        let src = host_dir.to_path_buf();
        tokio::task::spawn_blocking(move || copy_tree(&src, &dest))
            .await
            .map_err(|e| SandboxError::Io {
                action: "copying in".into(),
                source: std::io::Error::other(e),
            })?
    }

    async fn copy_out(&self, src: &str, host_dir: &Path) -> Result<(), SandboxError> {
        let src = PathBuf::from(resolve_dir(&self.root, Some(src)));
        if !src.exists() {
            return Err(SandboxError::NotFound(src.display().to_string()));
        }
        let dest = match src.file_name() {
            Some(name) => host_dir.join(name),
            None => host_dir.to_path_buf(),
        };
        tokio::task::spawn_blocking(move || copy_tree(&src, &dest))
            .await
            .map_err(|e| SandboxError::Io {
                action: "copying out".into(),
                source: std::io::Error::other(e),
            })?
    }

    async fn diff(&self) -> Result<String, SandboxError> {
        let base = self
            .base
            .lock()
            .map(|b| b.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let root = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || crate::gitdiff::diff_workdir(&root, &base))
            .await
            .map_err(|e| SandboxError::Io {
                action: "diffing".into(),
                source: std::io::Error::other(e),
            })?
    }

    async fn pin_base(&self) -> Result<String, SandboxError> {
        let repo = Repository::open(self.dir.path())?;
        let head = repo.head()?.peel_to_commit()?.id().to_string();
        if let Ok(mut b) = self.base.lock() {
            *b = head.clone();
        }
        Ok(head)
    }
}

/// Kills a process group (the child was started as its own group leader).
struct GroupKiller(Option<i32>);

impl GroupKiller {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        // A cancelled exec must not leave its processes running.
        self.kill();
    }
}

async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> Captured {
    let mut c = Captured::new(cap);
    let Some(mut r) = reader else { return c };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => c.push(&buf[..n]),
        }
    }
    c
}

/// Copy a file or directory tree (symlinks copied as links).
fn copy_tree(src: &Path, dest: &Path) -> Result<(), SandboxError> {
    let meta = std::fs::symlink_metadata(src)
        .map_err(SandboxError::io(format!("reading {}", src.display())))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src).map_err(SandboxError::io("reading a link"))?;
        let _ = std::fs::remove_file(dest);
        std::os::unix::fs::symlink(target, dest)
            .map_err(SandboxError::io(format!("linking {}", dest.display())))?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(dest)
            .map_err(SandboxError::io(format!("creating {}", dest.display())))?;
        for entry in std::fs::read_dir(src)
            .map_err(SandboxError::io(format!("listing {}", src.display())))?
        {
            let entry = entry.map_err(SandboxError::io("listing"))?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(src, dest).map_err(SandboxError::io(format!("copying {}", src.display())))?;
    }
    Ok(())
}
