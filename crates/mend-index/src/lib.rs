//! mend-index: the repository index the agent stands on.
//!
//! - [`Index::from_git`] / [`Index::from_worktree`]: parse a repository's files with
//!   tree-sitter (Python and Go; one [`lang::Grammar`] table entry per language) in parallel
//!   on plain threads, through a cache keyed by git blob id, so re-indexing another commit
//!   parses only what changed. Synchronous: call it from `spawn_blocking`.
//! - [`Index::localize`]: an issue's text in, ranked files and functions/classes out, each
//!   with a score and the reasons for it.
//! - [`Index::repo_map`]: the top-ranked files as skeletons within a token budget.
//! - [`Index::find_symbol`]: definitions by name for the agent's `search` tool.
mod bm25;
mod cache;
mod extract;
mod history;
mod index;
mod issue;
pub mod lang;
mod rank;
mod repomap;
mod source;
pub mod tokenize;

use std::path::PathBuf;

pub use bm25::TextBm25;
pub use extract::{Import, Ref, RefKind};
pub use history::History;
pub use index::{FileInfo, Index, IndexOptions, IndexStats, Symbol, SymbolHit};
pub use issue::{Frame, IssueSignals, read_issue};
pub use lang::SymbolKind;
pub use rank::{Localization, LocalizeOptions, RankWeights, RankedFile, RankedSymbol};
pub use repomap::{ContextPack, RepoMap, estimate_tokens};
pub use source::SkipReason;

/// What can go wrong building an index. Problems with single files are not errors: those
/// files are skipped and counted in [`IndexStats::skipped`].
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no such directory: {0}")]
    NoSuchPath(PathBuf),
    #[error("{path} is not a git repository: {message}")]
    NotARepository { path: PathBuf, message: String },
    #[error("revision `{rev}` not found: {message}")]
    BadRevision { rev: String, message: String },
    #[error("git: {0}")]
    Git(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_index_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Index>();
    }
}
