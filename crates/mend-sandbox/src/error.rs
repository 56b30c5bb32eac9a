use std::time::Duration;

/// What went wrong in a sandbox. Command failures and timeouts are not errors
/// (see [`crate::Termination`]); these are.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Which engine (address and where it came from) and why.
    #[error("cannot reach the Docker engine: {0}")]
    EngineUnavailable(String),
    #[error(
        "image `{0}` does not exist locally (build it with `mend images base`, or pass an image you have)"
    )]
    ImageNotFound(String),
    #[error("Docker engine error while {action}: {message}")]
    Engine { action: String, message: String },
    #[error("the sandbox container {0} is gone (it died or was removed)")]
    ContainerGone(String),
    #[error("empty command: give at least a program name")]
    EmptyCommand,
    #[error("path `{0}` escapes the repository root")]
    PathEscapesRoot(String),
    #[error("no such file: `{0}`")]
    NotFound(String),
    #[error("`{0}` is a directory, not a file")]
    IsDirectory(String),
    #[error("`{0}` is not UTF-8 text")]
    NotText(String),
    #[error("not a git repository or bad revision: {0}")]
    Git(String),
    #[error("{what} took longer than {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("I/O error while {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("base image: {0}")]
    BaseImage(String),
}

impl SandboxError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let action = action.into();
        move |source| SandboxError::Io { action, source }
    }

    pub(crate) fn engine(
        action: impl Into<String>,
    ) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
        let action = action.into();
        move |e| SandboxError::Engine {
            action,
            message: crate::docker::engine_message(&e),
        }
    }
}

impl From<git2::Error> for SandboxError {
    fn from(e: git2::Error) -> Self {
        SandboxError::Git(e.message().to_string())
    }
}
