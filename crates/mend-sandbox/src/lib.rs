//! mend-sandbox: where mend runs commands and edits files.
//!
//! One trait, [`Sandbox`], with two backends:
//! - [`DockerSandbox`]: one container per task (bollard), closed by default: no network,
//!   memory/CPU/pids limits, removed on every exit path.
//! - [`LocalSandbox`]: a checkout of the repository in a temporary directory sharing the
//!   repository's object store; the user's working tree and `.git` are never written.
//!
//! [`base_image`] builds the offline Debian base image (debootstrap + `docker import`)
//! for machines without a registry.

pub mod base_image;
mod capture;
mod docker;
mod engine_host;
mod error;
mod exec;
mod exec_server;
mod gitdiff;
mod local;
pub mod patch;
mod paths;
#[cfg(feature = "testing")]
pub mod testing;

pub use capture::Captured;
pub use docker::{
    DockerConfig, DockerEngine, DockerSandbox, SANDBOX_LABEL, UserChoice, remove_live_containers,
};
pub use error::SandboxError;
pub use exec::{DEFAULT_OUTPUT_CAP, DEFAULT_TIMEOUT, Exec, ExecOutput, Termination};
pub use local::LocalSandbox;
pub use patch::{PatchError, PatchSummary};

use std::path::Path;

/// A place to run commands against a repository checkout.
///
/// Paths given to the file methods are relative to [`Sandbox::root`]; a path that
/// escapes it (`..`, or absolute outside the root) is refused with
/// [`SandboxError::PathEscapesRoot`].
#[async_trait::async_trait]
pub trait Sandbox: Send + Sync {
    /// The repository root inside the sandbox (a container path or a host path).
    fn root(&self) -> &str;

    /// Run a command. A timeout or an out-of-memory kill is a normal
    /// [`Termination`], not an error; errors mean the sandbox itself failed.
    async fn exec(&self, exec: &Exec) -> Result<ExecOutput, SandboxError>;

    /// Read a file's bytes.
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, SandboxError>;

    /// Write a file, creating parent directories.
    async fn write_file(&self, path: &str, data: &[u8]) -> Result<(), SandboxError>;

    /// Copy a host directory's contents into `dest` (relative to the root, or absolute).
    async fn copy_in(&self, host_dir: &Path, dest: &str) -> Result<(), SandboxError>;

    /// Copy `src` (a file or directory inside the sandbox) into the host directory `host_dir`.
    async fn copy_out(&self, src: &str, host_dir: &Path) -> Result<(), SandboxError>;

    /// The repository's changes against its base commit as a unified diff (git format,
    /// binary-safe), new files included, ignored files excluded.
    async fn diff(&self) -> Result<String, SandboxError>;

    /// Record the repository's current `HEAD` as the base that [`Sandbox::diff`] compares to.
    async fn pin_base(&self) -> Result<String, SandboxError>;

    /// Read a file that must be UTF-8 text.
    async fn read_text(&self, path: &str) -> Result<String, SandboxError> {
        let bytes = self.read_file(path).await?;
        String::from_utf8(bytes).map_err(|_| SandboxError::NotText(path.to_string()))
    }
}
