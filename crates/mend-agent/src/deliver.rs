//! Handing the patch back to the user: as a file, applied to their working tree (only when
//! asked, and never over uncommitted work), or as a commit on a new branch that leaves
//! their checkout untouched.
use std::path::Path;

use git2::{ApplyLocation, Diff, Repository, Signature, StatusOptions};
use mend_sandbox::patch;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Patch(#[from] mend_sandbox::PatchError),
    #[error(
        "the working tree of {0} has uncommitted changes; commit or stash them, or pass --force"
    )]
    Dirty(String),
    #[error("branch `{0}` already exists; choose another name")]
    BranchExists(String),
    #[error("branch `{name}` cannot be made: branch `{existing}` exists; choose another name")]
    BranchConflict { name: String, existing: String },
    #[error("{path}: {reason}")]
    Target { path: String, reason: String },
    #[error("the patch does not apply to {what}: {message}")]
    DoesNotApply { what: String, message: String },
    #[error("git: {0}")]
    Git(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl From<git2::Error> for DeliverError {
    fn from(e: git2::Error) -> Self {
        DeliverError::Git(e.message().to_string())
    }
}

/// Write the patch to a file (atomically: a crash never leaves half a patch, and a failed
/// write leaves no `.partial` file behind).
pub fn write_patch_file(path: &Path, patch: &str) -> Result<(), DeliverError> {
    let write_err = |source| DeliverError::Write {
        path: path.display().to_string(),
        source,
    };
    check_file_target(path)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let tmp = path.with_file_name(name);
    let written = std::fs::write(&tmp, patch).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(write_err)
}

/// Can a file be written at `path`? Its directory must exist and take a new file, and
/// `path` must not be a directory. Checked by creating (and removing) a probe file, which
/// is what the write itself will need. The directory is never created.
pub fn check_file_target(path: &Path) -> Result<(), DeliverError> {
    let target = |reason: String| DeliverError::Target {
        path: path.display().to_string(),
        reason,
    };
    if path.is_dir() {
        return Err(target("is a directory; give a file name".into()));
    }
    if path.file_name().is_none() {
        return Err(target("names no file".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(target(format!(
            "the directory {} does not exist",
            dir.display()
        )));
    }
    let mut probe_name = std::ffi::OsString::from(".");
    probe_name.push(path.file_name().unwrap_or_default());
    probe_name.push(format!(".mend-probe-{}", std::process::id()));
    let probe = dir.join(probe_name);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(target(format!("cannot write in {}: {e}", dir.display()))),
    }
}

/// Apply the patch to the repository's working tree. Refused on a dirty tree unless `force`;
/// checked before anything is written, so a patch that does not apply changes nothing.
pub fn apply_to_worktree(
    repo_path: &Path,
    patch_text: &str,
    force: bool,
) -> Result<(), DeliverError> {
    patch::validate(patch_text, Some(repo_path))?;
    let repo = Repository::discover(repo_path)?;
    if !force && is_dirty(&repo)? {
        return Err(DeliverError::Dirty(repo_path.display().to_string()));
    }
    let diff = Diff::from_buffer(patch_text.as_bytes())?;
    let mut check = git2::ApplyOptions::new();
    check.check(true);
    repo.apply(&diff, ApplyLocation::WorkDir, Some(&mut check))
        .map_err(|e| DeliverError::DoesNotApply {
            what: "the working tree".into(),
            message: e.message().to_string(),
        })?;
    repo.apply(&diff, ApplyLocation::WorkDir, None)
        .map_err(|e| DeliverError::DoesNotApply {
            what: "the working tree".into(),
            message: e.message().to_string(),
        })?;
    Ok(())
}

/// What the user asked delivery to do, to check before any work is done.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan<'a> {
    pub out: Option<&'a Path>,
    pub branch: Option<&'a str>,
    pub apply: bool,
    pub force: bool,
}

/// Refuse up front, before any work is done, what delivery would refuse at the end: an
/// `--out` path that cannot be written, `--apply` over uncommitted changes (without
/// `force`), `--branch` with a name that is taken or clashes with a branch (`a/b` when `a`
/// exists, or `a` when `a/b` exists).
pub fn preflight(repo_path: &Path, plan: &Plan) -> Result<(), DeliverError> {
    if let Some(out) = plan.out {
        check_file_target(out)?;
    }
    let repo = Repository::discover(repo_path)?;
    if plan.apply && !plan.force && is_dirty(&repo)? {
        return Err(DeliverError::Dirty(repo_path.display().to_string()));
    }
    if let Some(b) = plan.branch {
        check_branch(&repo, b)?;
    }
    Ok(())
}

fn check_branch(repo: &Repository, b: &str) -> Result<(), DeliverError> {
    if !git2::Branch::name_is_valid(b)? {
        return Err(DeliverError::Git(format!(
            "`{b}` is not a valid branch name"
        )));
    }
    if repo.find_branch(b, git2::BranchType::Local).is_ok() {
        return Err(DeliverError::BranchExists(b.to_string()));
    }
    // git keeps refs as paths: `a/b` cannot live beside a branch `a`, nor `a` beside `a/b`.
    let mut prefix = String::new();
    for part in b.split('/') {
        if !prefix.is_empty() {
            if repo.find_branch(&prefix, git2::BranchType::Local).is_ok() {
                return Err(DeliverError::BranchConflict {
                    name: b.to_string(),
                    existing: prefix,
                });
            }
            prefix.push('/');
        }
        prefix.push_str(part);
    }
    if let Some(Ok(r)) = repo.references_glob(&format!("refs/heads/{b}/*"))?.next() {
        return Err(DeliverError::BranchConflict {
            name: b.to_string(),
            existing: r.shorthand().unwrap_or("?").to_string(),
        });
    }
    Ok(())
}

/// Tracked files changed and untracked files present in the working tree (ignored files
/// not counted): what a run from a commit leaves out.
pub fn uncommitted_changes(repo_path: &Path) -> Result<usize, DeliverError> {
    let repo = Repository::discover(repo_path)?;
    if repo.is_bare() {
        return Ok(0);
    }
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    Ok(repo.statuses(Some(&mut opts))?.len())
}

/// Commit the patch on top of `base` as a new branch. The checkout, index and HEAD are
/// not touched. Returns the new commit id.
pub fn commit_on_branch(
    repo_path: &Path,
    base: &str,
    patch_text: &str,
    branch: &str,
    message: &str,
) -> Result<String, DeliverError> {
    patch::validate(patch_text, None)?;
    let repo = Repository::discover(repo_path)?;
    // Before the commit is made, so a refusal leaves no dangling commit.
    check_branch(&repo, branch)?;
    let base_commit = repo.revparse_single(base)?.peel_to_commit()?;
    let diff = Diff::from_buffer(patch_text.as_bytes())?;
    let mut index = repo
        .apply_to_tree(&base_commit.tree()?, &diff, None)
        .map_err(|e| DeliverError::DoesNotApply {
            what: format!("commit {}", &base_commit.id().to_string()[..12]),
            message: e.message().to_string(),
        })?;
    let tree_id = index.write_tree_to(&repo)?;
    let tree = repo.find_tree(tree_id)?;
    let sig = repo
        .signature()
        .or_else(|_| Signature::now("mend", "mend@localhost"))?;
    let oid = repo.commit(None, &sig, &sig, message, &tree, &[&base_commit])?;
    repo.branch(branch, &repo.find_commit(oid)?, false)?;
    Ok(oid.to_string())
}

fn is_dirty(repo: &Repository) -> Result<bool, DeliverError> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    Ok(!repo.statuses(Some(&mut opts))?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, String) {
        let d = tempfile::tempdir().unwrap();
        let r = Repository::init(d.path()).unwrap();
        std::fs::write(
            d.path().join("app.py"),
            "def add(a, b):\n    return a - b\n",
        )
        .unwrap();
        let mut idx = r.index().unwrap();
        idx.add_path(Path::new("app.py")).unwrap();
        idx.write().unwrap();
        let tree = r.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = Signature::now("t", "t@e").unwrap();
        let id = r
            .commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
            .unwrap();
        (d, id.to_string())
    }

    const FIX: &str = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";

    #[test]
    fn branch_commit_leaves_the_checkout_alone() {
        let (d, base) = repo();
        let id = commit_on_branch(d.path(), &base, FIX, "mend/fix", "fix add").unwrap();
        let r = Repository::open(d.path()).unwrap();
        assert_eq!(
            r.head().unwrap().peel_to_commit().unwrap().id().to_string(),
            base
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("app.py")).unwrap(),
            "def add(a, b):\n    return a - b\n"
        );
        let c = r.find_commit(git2::Oid::from_str(&id).unwrap()).unwrap();
        let blob = c
            .tree()
            .unwrap()
            .get_path(Path::new("app.py"))
            .unwrap()
            .to_object(&r)
            .unwrap()
            .peel_to_blob()
            .unwrap();
        assert!(String::from_utf8_lossy(blob.content()).contains("a + b"));
        assert!(matches!(
            commit_on_branch(d.path(), &base, FIX, "mend/fix", "again"),
            Err(DeliverError::BranchExists(_))
        ));
    }

    #[test]
    fn apply_refuses_a_dirty_tree_and_a_patch_that_does_not_apply() {
        let (d, _) = repo();
        std::fs::write(d.path().join("app.py"), "local work\n").unwrap();
        assert!(matches!(
            apply_to_worktree(d.path(), FIX, false),
            Err(DeliverError::Dirty(_))
        ));
        assert_eq!(
            std::fs::read_to_string(d.path().join("app.py")).unwrap(),
            "local work\n"
        );
        let err = apply_to_worktree(d.path(), FIX, true).unwrap_err();
        assert!(matches!(err, DeliverError::DoesNotApply { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("app.py")).unwrap(),
            "local work\n"
        );
    }

    #[test]
    fn preflight_refuses_branch_names_that_clash_and_out_paths_that_cannot_be_written() {
        let (d, base) = repo();
        commit_on_branch(d.path(), &base, FIX, "fixes", "fix").unwrap();
        let r = Repository::open(d.path()).unwrap();
        let objects_before = count_objects(&r);
        let plan = |branch| Plan {
            branch: Some(branch),
            ..Default::default()
        };
        for (name, existing) in [("fixes/one", "fixes"), ("fixes/one/two", "fixes")] {
            match preflight(d.path(), &plan(name)) {
                Err(DeliverError::BranchConflict { existing: e, .. }) => assert_eq!(e, existing),
                other => panic!("{name}: {other:?}"),
            }
            assert!(matches!(
                commit_on_branch(d.path(), &base, FIX, name, "x"),
                Err(DeliverError::BranchConflict { .. })
            ));
        }
        assert_eq!(
            count_objects(&r),
            objects_before,
            "a commit was left behind"
        );
        commit_on_branch(d.path(), &base, FIX, "topic/a", "fix").unwrap();
        assert!(matches!(
            preflight(d.path(), &plan("topic")),
            Err(DeliverError::BranchConflict { .. })
        ));
        preflight(d.path(), &plan("topic-b")).unwrap();

        let out = tempfile::tempdir().unwrap();
        let missing = out.path().join("nope/fix.patch");
        let err = preflight(
            d.path(),
            &Plan {
                out: Some(&missing),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = write_patch_file(out.path(), FIX).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let file = out.path().join("fix.patch");
        write_patch_file(&file, FIX).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), FIX);
        let names: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["fix.patch"], "a probe or partial file was left");
    }

    fn count_objects(r: &Repository) -> usize {
        let mut n = 0;
        r.odb()
            .unwrap()
            .foreach(|_| {
                n += 1;
                true
            })
            .unwrap();
        n
    }

    #[test]
    fn counts_uncommitted_changes() {
        let (d, _) = repo();
        assert_eq!(uncommitted_changes(d.path()).unwrap(), 0);
        std::fs::write(d.path().join("app.py"), "changed\n").unwrap();
        std::fs::write(d.path().join("new.py"), "new\n").unwrap();
        assert_eq!(uncommitted_changes(d.path()).unwrap(), 2);
    }

    #[test]
    fn apply_on_a_clean_tree() {
        let (d, _) = repo();
        apply_to_worktree(d.path(), FIX, false).unwrap();
        assert!(
            std::fs::read_to_string(d.path().join("app.py"))
                .unwrap()
                .contains("a + b")
        );
    }
}
