//! mend-swebench: the SWE-bench harness, evaluation half.
//!
//! Predictions in, the official report out: [`dataset`] loads and validates instances and
//! predictions, [`specs`] carries the per-repo/version facts of the official harness,
//! [`parsers`] and [`grading`] turn a test log into `report.json`, [`script`] renders the eval
//! script, [`images`] finds or makes each instance's image, and [`evaluate`] runs it all
//! over Docker sandboxes in the official output layout.

pub mod dataset;
mod error;
pub mod grading;
pub mod parsers;
pub mod script;
pub mod specs;

pub use dataset::{gold_predictions, load_instances, load_predictions, Filter, Instance, Prediction};
pub use error::SwebenchError;
pub use grading::{grade, InstanceReport, ResolvedStatus, TestsStatus};
pub use parsers::{LogParser, StatusMap, TestStatus};
pub use specs::{RepoSpec, Specs, VersionSpec};
