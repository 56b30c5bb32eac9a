use std::path::PathBuf;

/// What can go wrong in a benchmark run. A sample that fails its tests is a result, not
/// an error; errors mean the run itself cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} (record {record}): {message}", path.display())]
    Problem {
        path: PathBuf,
        record: usize,
        message: String,
    },
    #[error("{} (line {line}): {message}", path.display())]
    Sample {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("sandbox: {0}")]
    Sandbox(#[from] mend_sandbox::SandboxError),
    #[error("model: {0}")]
    Model(#[from] mend_llm::ModelError),
    #[error("{0}")]
    Invalid(String),
}
