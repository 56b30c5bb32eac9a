//! Co-change history: which files were committed together before the indexed commit. A fix
//! that touches several files mostly touches files that have changed together before (the
//! backends of one feature, a module and its sibling), so files that share commits with the
//! best-ranked file are lifted. Only history at or before the indexed commit is read.

use std::path::{Path, PathBuf};

use git2::{DiffOptions, Oid, Repository};

use crate::IndexError;

/// Commits with more files than this are sweeping changes (renames, reformatting,
/// merges) and say nothing about which files belong together.
const MAX_FILES_PER_COMMIT: usize = 30;
const CACHE_VERSION: &str = "history-v1";

/// The files each of the last commits changed, newest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub(crate) commits: Vec<Vec<String>>,
}

impl History {
    /// The last `max_commits` commits reachable from `rev` along first parents, each with
    /// the paths it changed against its first parent. Each commit's paths are cached under
    /// `cache_dir` by commit id (a commit's changes never change).
    pub fn from_git(
        repo: &Path,
        rev: &str,
        max_commits: usize,
        cache_dir: Option<&Path>,
    ) -> Result<History, IndexError> {
        let git = Repository::open(repo).map_err(|e| IndexError::NotARepository {
            path: repo.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let start = git
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| IndexError::BadRevision {
                rev: rev.to_string(),
                message: e.message().to_string(),
            })?;
        let cache = cache_dir.map(|d| d.join(CACHE_VERSION));
        if let Some(d) = &cache {
            // An unwritable cache only costs speed.
            let _ = std::fs::create_dir_all(d);
        }
        let mut commits = Vec::new();
        let mut cur = Some(start);
        while let Some(commit) = cur.take() {
            if commits.len() >= max_commits {
                break;
            }
            let paths = match cached(&cache, commit.id()) {
                Some(p) => p,
                None => {
                    let p = changed_paths(&git, &commit).unwrap_or_default();
                    store(&cache, commit.id(), &p);
                    p
                }
            };
            commits.push(paths);
            cur = commit.parent(0).ok();
        }
        Ok(History { commits })
    }

    pub fn commits(&self) -> usize {
        self.commits.len()
    }
}

fn changed_paths(git: &Repository, commit: &git2::Commit) -> Result<Vec<String>, git2::Error> {
    // A root commit imports the project; it is no change, and pairs everything.
    let Ok(parent) = commit.parent(0) else {
        return Ok(Vec::new());
    };
    let tree = commit.tree()?;
    let parent = Some(parent.tree()?);
    let mut opts = DiffOptions::new();
    opts.skip_binary_check(true);
    let diff = git.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut opts))?;
    if diff.deltas().len() > MAX_FILES_PER_COMMIT {
        return Ok(Vec::new());
    }
    Ok(diff
        .deltas()
        .filter_map(|d| {
            d.new_file()
                .path()
                .or_else(|| d.old_file().path())
                .and_then(|p| p.to_str())
                .map(String::from)
        })
        .collect())
}

fn cache_path(cache: &Option<PathBuf>, oid: Oid) -> Option<PathBuf> {
    cache.as_ref().map(|d| d.join(oid.to_string()))
}

fn cached(cache: &Option<PathBuf>, oid: Oid) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(cache_path(cache, oid)?).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    )
}

fn store(cache: &Option<PathBuf>, oid: Oid, paths: &[String]) {
    let Some(path) = cache_path(cache, oid) else {
        return;
    };
    // Through a temporary file and a rename: concurrent readers never see half a record.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut text = paths.join("\n");
    text.push('\n');
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// History mapped onto an index's files: the commits each file was in, and each commit's
/// files (only commits with at least two indexed files).
#[derive(Debug, Clone, Default)]
pub(crate) struct CoChange {
    pub commits: Vec<Vec<u32>>,
    pub by_file: Vec<Vec<u32>>,
}

impl CoChange {
    pub fn new(
        history: &History,
        file_id: impl Fn(&str) -> Option<usize>,
        n_files: usize,
    ) -> CoChange {
        let mut co = CoChange {
            commits: Vec::new(),
            by_file: vec![Vec::new(); n_files],
        };
        for paths in &history.commits {
            let mut ids: Vec<u32> = paths
                .iter()
                .filter_map(|p| file_id(p))
                .map(|f| f as u32)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() < 2 {
                continue;
            }
            let c = co.commits.len() as u32;
            for &f in &ids {
                co.by_file[f as usize].push(c);
            }
            co.commits.push(ids);
        }
        co
    }

    /// Files that changed together with `f`, each weighted by 1/(other files in the commit).
    pub fn partners(&self, f: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.by_file
            .get(f)
            .into_iter()
            .flatten()
            .flat_map(move |&c| {
                let files = &self.commits[c as usize];
                let share = 1.0 / (files.len() - 1) as f32;
                files
                    .iter()
                    .filter(move |&&g| g as usize != f)
                    .map(move |&g| (g as usize, share))
            })
    }
}
