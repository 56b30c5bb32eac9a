//! Co-change history: which files were committed together before the indexed commit. A fix
//! that touches several files mostly touches files that have changed together before (the
//! backends of one feature, a module and its sibling), so files that share commits with the
//! best-ranked file are lifted. Only history at or before the indexed commit is read.
//!
//! The `git` program reads it: one `git log --name-only` over django's last 1000 commits
//! takes ~0.2 s, where diffing the same trees through libgit2 took ~26 s (its object cache
//! keeps no large trees, so every big directory is re-inflated per commit). Without a `git`
//! program, libgit2 reads it, commit by commit through a per-commit cache, within a time cap.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git2::{DiffOptions, Oid, Repository};

use crate::IndexError;

/// Commits with more files than this are sweeping changes (renames, reformatting,
/// merges) and say nothing about which files belong together.
const MAX_FILES_PER_COMMIT: usize = 30;
const CACHE_VERSION: &str = "history-v1";
/// How long the libgit2 fallback may read history (its cache makes later reads quicker).
const LIBGIT2_TIME_CAP: Duration = Duration::from_secs(2);

/// The files each of the last commits changed, newest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub(crate) commits: Vec<Vec<String>>,
}

impl History {
    /// The last `max_commits` commits reachable from `rev` along first parents, each with
    /// the paths it changed against its first parent. Read by the `git` program; without
    /// one, by libgit2 (at most `LIBGIT2_TIME_CAP`), each commit's paths cached under
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
        let commits = match from_git_program(repo, start.id(), max_commits) {
            Some(commits) => commits,
            None => from_libgit2(&git, start, max_commits, cache_dir, LIBGIT2_TIME_CAP),
        };
        Ok(History { commits })
    }

    pub fn commits(&self) -> usize {
        self.commits.len()
    }
}

/// What [`from_git_program`] reads, through libgit2, for at most `cap`: each commit's paths
/// are cached under `cache_dir` by commit id (a commit's changes never change).
fn from_libgit2(
    git: &Repository,
    start: git2::Commit,
    max_commits: usize,
    cache_dir: Option<&Path>,
    cap: Duration,
) -> Vec<Vec<String>> {
    let cache = cache_dir.map(|d| d.join(CACHE_VERSION));
    if let Some(d) = &cache {
        // An unwritable cache only costs speed.
        let _ = std::fs::create_dir_all(d);
    }
    let mut commits = Vec::new();
    let mut cur = Some(start);
    let started = Instant::now();
    while let Some(commit) = cur.take() {
        // Capped in time too: history is extra evidence, never worth a slow index.
        if commits.len() >= max_commits || started.elapsed() > cap {
            break;
        }
        let paths = match cached(&cache, commit.id()) {
            Some(p) => p,
            None => {
                let p = changed_paths(git, &commit).unwrap_or_default();
                store(&cache, commit.id(), &p);
                p
            }
        };
        commits.push(paths);
        cur = commit.parent(0).ok();
    }
    commits
}

/// The last `max_commits` first-parent commits from `start` with the paths each changed
/// against its first parent, read by `git log`; `None` when the `git` program cannot (not
/// installed, or it refuses the repository), and libgit2 reads it instead.
fn from_git_program(repo: &Path, start: Oid, max_commits: usize) -> Option<Vec<Vec<String>>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        // Paths as they are (no octal quoting), no pager, no renames (libgit2's default).
        .args([
            "-c",
            "core.quotePath=false",
            "--no-pager",
            "log",
            "--first-parent",
        ])
        .args([
            "--no-renames",
            "--name-only",
            "--no-color",
            "--format=commit %H %P",
        ])
        .arg(format!("--max-count={max_commits}"))
        .arg(start.to_string())
        .arg("--")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_log(&String::from_utf8_lossy(&out.stdout))
}

/// `commit <id> <parents>` headers, each followed by the changed paths. A root commit
/// counts as no change (it imports the project), like a commit with too many files.
fn parse_log(text: &str) -> Option<Vec<Vec<String>>> {
    let mut commits: Vec<(bool, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("commit ") {
            let mut ids = rest.split(' ');
            let id = ids.next().unwrap_or("");
            if id.len() >= 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                let root = ids.next().is_none_or(str::is_empty);
                commits.push((root, Vec::new()));
                continue;
            }
        }
        if line.is_empty() {
            continue;
        }
        // A path before any header means the output is not what was asked for.
        commits.last_mut()?.1.push(line.to_string());
    }
    Some(
        commits
            .into_iter()
            .map(|(root, paths)| {
                if root || paths.len() > MAX_FILES_PER_COMMIT {
                    Vec::new()
                } else {
                    paths
                }
            })
            .collect(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_output_is_read_per_commit() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let text = format!(
            "commit {a} {b}\n\nx/one.py\nx/two.py\ncommit {b} {c} {a}\n\ny.py\ncommit {c}\n\nroot.py\n"
        );
        let commits = parse_log(&text).unwrap();
        assert_eq!(
            commits,
            vec![
                vec!["x/one.py".to_string(), "x/two.py".to_string()],
                vec!["y.py".to_string()],
                // The root commit imports the project: no change.
                Vec::new(),
            ]
        );
        assert_eq!(parse_log("stray/path.py\n"), None);
    }

    #[test]
    fn the_git_program_and_libgit2_read_the_same_history() {
        let dir = tempfile::tempdir().unwrap();
        let git = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let mut parent: Option<Oid> = None;
        let steps: &[&[&str]] = &[
            &["a.py", "b.py", "c.py"],
            &["a.py", "pkg/d.py"],
            &["pkg/d.py"],
            &["b.py", "pkg/e f.py", "c.py"],
        ];
        for (n, files) in steps.iter().enumerate() {
            for f in *files {
                let p = dir.path().join(f);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, format!("x = {n}\n")).unwrap();
            }
            let mut ix = git.index().unwrap();
            ix.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
                .unwrap();
            ix.write().unwrap();
            let tree = git.find_tree(ix.write_tree().unwrap()).unwrap();
            let parents: Vec<git2::Commit> = parent
                .iter()
                .map(|p| git.find_commit(*p).unwrap())
                .collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            parent = Some(
                git.commit(Some("HEAD"), &sig, &sig, "c", &tree, &refs)
                    .unwrap(),
            );
        }
        let head = parent.unwrap();
        let Some(by_program) = from_git_program(dir.path(), head, 10) else {
            panic!("the git program is needed for this test and could not read the history");
        };
        let start = git.find_commit(head).unwrap();
        let by_libgit2 = from_libgit2(&git, start, 10, None, Duration::from_secs(60));
        let sorted = |v: Vec<Vec<String>>| -> Vec<Vec<String>> {
            v.into_iter()
                .map(|mut c| {
                    c.sort();
                    c
                })
                .collect()
        };
        assert_eq!(sorted(by_program.clone()), sorted(by_libgit2));
        assert_eq!(by_program.len(), 4);
        assert_eq!(by_program[0].len(), 3, "{by_program:?}");
        assert!(by_program[0].contains(&"pkg/e f.py".to_string()));
        // The root commit counts as no change.
        assert!(by_program[3].is_empty());
        // At most `max_commits`, newest first, from the commit given (never later ones).
        let first_two = from_git_program(
            dir.path(),
            git.find_commit(head).unwrap().parent_id(0).unwrap(),
            2,
        )
        .unwrap();
        assert_eq!(first_two.len(), 2);
        assert_eq!(first_two[0], vec!["pkg/d.py".to_string()]);
    }
}
