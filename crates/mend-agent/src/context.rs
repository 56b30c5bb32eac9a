//! What the agent knows before its first step: the files the index ranks highest for the
//! issue, with why, the repo map of their signatures, and the code of the best-ranked
//! functions (the context pack: whole files would take too much of the window).
use mend_index::{Index, LocalizeOptions};

use crate::Localized;

/// How much of the index goes into the first prompt.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// Files listed as likely relevant.
    pub top_files: usize,
    /// Token budget of the repo map (0: no map).
    pub map_tokens: usize,
    /// Token budget of the ranked functions' code (0: no code).
    pub pack_tokens: usize,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            top_files: 8,
            map_tokens: 2_000,
            pack_tokens: 6_000,
        }
    }
}

/// The first prompt's hints.
#[derive(Debug, Clone, Default)]
pub struct RepoContext {
    pub localized: Vec<Localized>,
    pub repo_map: Option<String>,
    /// The best-ranked functions' code, each headed by `path:first-last`.
    pub code_pack: Option<String>,
}

/// Localize the issue in the index; `read` gives a file's text at the indexed commit (for
/// the context pack). CPU work: call it off the async executor.
pub fn repo_context(
    index: &Index,
    issue: &str,
    opts: &ContextOptions,
    read: impl FnMut(&str) -> Option<String>,
) -> RepoContext {
    let loc = index.localize(issue, &LocalizeOptions::default());
    let localized = loc
        .files
        .iter()
        .take(opts.top_files)
        .map(|f| Localized {
            path: f.path.clone(),
            why: f
                .reasons
                .iter()
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    let repo_map = (opts.map_tokens > 0)
        .then(|| index.repo_map(&loc, opts.map_tokens).text)
        .filter(|t| !t.trim().is_empty());
    // The map is above already: the pack is all code.
    let code_pack = (opts.pack_tokens > 0)
        .then(|| index.context_pack(&loc, opts.pack_tokens, 0.0, read).text)
        .filter(|t| !t.trim().is_empty());
    RepoContext {
        localized,
        repo_map,
        code_pack,
    }
}
