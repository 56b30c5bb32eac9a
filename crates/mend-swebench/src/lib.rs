//! mend-swebench: the SWE-bench harness, evaluation half.
//!
//! Predictions in, the official report out: [`dataset`] loads and validates instances and
//! predictions, [`specs`] carries the per-repo/version facts of the official harness,
//! [`parsers`] and [`grading`] turn a test log into `report.json`, [`script`] renders the eval
//! script, [`images`] finds or makes each instance's image, and [`evaluate`] runs it all
//! over Docker sandboxes in the official output layout.

pub mod dataset;
mod error;
mod eval;
pub mod grading;
#[cfg(feature = "hub")]
pub mod hub;
pub mod images;
mod keyed_lock;
pub mod mine;
pub mod offline;
pub mod parsers;
pub mod recover;
pub mod run;
pub mod script;
pub mod shard;
pub mod specs;
pub mod suite;

pub use dataset::{
    Filter, Instance, Prediction, check_gradable, gold_predictions, load_instances,
    load_predictions,
};
pub use error::SwebenchError;
pub use eval::{
    EvalOptions, LOG_INSTANCE, LOG_PATCH, LOG_REPORT, LOG_TEST_OUTPUT, Outcome, PredictionsSource,
    Progress, ProgressFn, RunDetails, RunSummary, SummaryReport, evaluate, instance_log_dir,
    make_run_report,
};
pub use grading::{InstanceReport, ResolvedStatus, TestsStatus, grade};
#[cfg(feature = "hub")]
pub use hub::{HubOptions, load_dataset, load_hub_dataset};
pub use images::{BuildImages, EnvironmentNotes, ImageSource, LocalImages, OfficialImages};
pub use offline::{MirrorDir, OfflineImages};
pub use parsers::{LogParser, StatusMap, TestStatus};
pub use run::{
    AgentRunSummary, InstanceRecord, ModelFactory, RunOptions, RunProgress, RunProgressFn,
    RunSummaryFile, read_summary, run_agent,
};
pub use specs::{RepoSpec, Specs, VersionSpec};

/// An HTTP client on the workspace's rustls+ring stack (installs the ring provider when the
/// process has none yet, so a library call never panics for want of one).
pub(crate) fn http_client() -> Result<reqwest::Client, SwebenchError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; either way a provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .build()
        .map_err(|e| SwebenchError::Invalid(format!("HTTP client: {e}")))
}
