use std::path::PathBuf;

/// Everything that can go wrong in the harness. Per-instance evaluation failures
/// (a patch that does not apply, a timeout) are outcomes, not errors; see [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum SwebenchError {
    /// A dataset or predictions record is malformed: where, which field, what.
    #[error("{source_name}: line {line}: {}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Record {
        source_name: String,
        line: usize,
        field: Option<String>,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("I/O error while {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no spec for repository `{repo}` version `{version}` (known versions: {known})")]
    NoSpec {
        repo: String,
        version: String,
        known: String,
    },
    #[error("bad filter: {0}")]
    Filter(String),
    #[error("predictions name instances that are not in the dataset: {0}")]
    UnknownPredictions(String),
    #[error("image for {instance_id}: {message}")]
    Image {
        instance_id: String,
        message: String,
    },
    #[error("download from {url}: {message}")]
    Download { url: String, message: String },
    #[error("sandbox: {0}")]
    Sandbox(#[from] mend_sandbox::SandboxError),
    /// Instances without test lists (or with an empty `FAIL_TO_PASS`): grading them would
    /// call any patch resolved.
    #[error(
        "cannot grade {count} instance(s) without test lists: {names}. Fill FAIL_TO_PASS/PASS_TO_PASS in with `mend swebench mine --instances DATASET` (it runs the touched tests before and after the gold patch), or use a dataset that has them"
    )]
    Ungradable { count: usize, names: String },
    #[error("{0}")]
    Invalid(String),
}

impl SwebenchError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SwebenchError {
        let action = action.into();
        move |source| SwebenchError::Io { action, source }
    }
}
