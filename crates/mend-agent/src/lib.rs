//! mend-agent: the loop that reads an issue, explores, edits, runs the tests, reads the
//! failures and iterates, and hands back a patch with its trajectory.
pub mod agent;
pub mod candidates;
pub mod condense;
pub mod context;
pub mod deliver;
pub mod edit;
pub mod prompts;
pub mod scratch;
pub mod select;
mod submit;
pub mod syntax;
pub mod tools;
pub mod trajectory;
pub mod verify;
pub mod workspace;

pub use agent::{Agent, AgentConfig, Event, Localized, RunOutput, TaskInput};
pub use context::{ContextOptions, RepoContext, repo_context};
pub use edit::{Applied, EditEngine, EditOp, Refused};
pub use prompts::{Prompts, TemplateVersion};
pub use scratch::LeftOut;
pub use tools::{TestRun, ToolResult, Toolbox};
pub use trajectory::{ExitStatus, TestsOutcome, Trajectory};
pub use verify::{TestSuite, VerifyConfig};
