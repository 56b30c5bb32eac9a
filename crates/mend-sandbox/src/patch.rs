//! Patch validation: before a patch touches a repository, check that it parses as a git
//! diff, is text, and names only paths inside the repository.
use std::path::{Component, Path};

/// Why a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the patch is empty")]
    Empty,
    #[error("the patch is not a unified diff: {0}")]
    Malformed(String),
    #[error(
        "the patch contains binary garbage (NUL bytes or invalid UTF-8) outside a git binary hunk"
    )]
    Binary,
    #[error("the patch touches `{0}`, which is outside the repository")]
    PathEscapes(String),
    #[error("the patch touches `{0}` inside .git")]
    GitDir(String),
}

/// What a valid patch changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchSummary {
    pub files: Vec<String>,
    pub added_lines: usize,
    pub removed_lines: usize,
}

/// Check a patch; `repo` (when given) also catches paths that leave the repository
/// through a symlink inside it.
pub fn validate(patch: &str, repo: Option<&Path>) -> Result<PatchSummary, PatchError> {
    if patch.trim().is_empty() {
        return Err(PatchError::Empty);
    }
    if patch.contains('\0') {
        return Err(PatchError::Binary);
    }
    let mut files: Vec<String> = Vec::new();
    let (mut added, mut removed) = (0, 0);
    let mut saw_hunk_or_header = false;
    for line in patch.lines() {
        let path = if let Some(rest) = line.strip_prefix("diff --git ") {
            saw_hunk_or_header = true;
            // `a/x b/x`: check both sides.
            for side in split_git_paths(rest) {
                check_path(&side, repo)?;
            }
            None
        } else if let Some(p) = line
            .strip_prefix("+++ ")
            .or_else(|| line.strip_prefix("--- "))
        {
            saw_hunk_or_header = true;
            let p = p.split('\t').next().unwrap_or("").trim();
            (p != "/dev/null").then(|| strip_prefix_component(unquote(p)))
        } else if let Some(p) = line
            .strip_prefix("rename to ")
            .or_else(|| line.strip_prefix("copy to "))
            .or_else(|| line.strip_prefix("rename from "))
        {
            Some(unquote(p).to_string())
        } else {
            if line.starts_with("@@") {
                saw_hunk_or_header = true;
            } else if line.starts_with('+') {
                added += 1;
            } else if line.starts_with('-') {
                removed += 1;
            }
            None
        };
        if let Some(p) = path {
            check_path(&p, repo)?;
            if !files.contains(&p) {
                files.push(p);
            }
        }
    }
    if !saw_hunk_or_header || files.is_empty() && !patch.contains("GIT binary patch") {
        return Err(PatchError::Malformed(
            "no file headers (`--- a/...`, `+++ b/...`) or hunks found".into(),
        ));
    }
    // libgit2's parser catches broken hunks (wrong counts, missing headers).
    if patch.contains("diff --git ") {
        git2::Diff::from_buffer(patch.as_bytes())
            .map_err(|e| PatchError::Malformed(e.message().to_string()))?;
    }
    Ok(PatchSummary {
        files,
        added_lines: added,
        removed_lines: removed,
    })
}

fn unquote(p: &str) -> &str {
    p.trim().trim_matches('"')
}

/// `a/src/x.py` -> `src/x.py` (the usual -p1).
fn strip_prefix_component(p: &str) -> String {
    match p.split_once('/') {
        Some((first, rest)) if first == "a" || first == "b" => rest.to_string(),
        _ => p.to_string(),
    }
}

fn split_git_paths(rest: &str) -> Vec<String> {
    // Good enough for unquoted paths without " b/" inside; quoted ones are checked by ---/+++.
    match rest.find(" b/") {
        Some(i) => vec![
            strip_prefix_component(unquote(&rest[..i])),
            strip_prefix_component(unquote(&rest[i + 1..])),
        ],
        None => vec![],
    }
}

fn check_path(p: &str, repo: Option<&Path>) -> Result<(), PatchError> {
    let path = Path::new(p);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(PatchError::PathEscapes(p.to_string()));
    }
    if path
        .components()
        .next()
        .map(|c| c.as_os_str() == ".git")
        .unwrap_or(false)
    {
        return Err(PatchError::GitDir(p.to_string()));
    }
    if let Some(root) = repo {
        // Where the path lands once every symlink is followed, dangling ones too.
        let Ok(root) = root.canonicalize() else {
            return Ok(());
        };
        if crate::paths::resolve_within(&root, path).is_none() {
            return Err(PatchError::PathEscapes(p.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "diff --git a/src/app.py b/src/app.py\nindex 1111111..2222222 100644\n--- a/src/app.py\n+++ b/src/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n";

    #[test]
    fn accepts_a_good_patch() {
        let s = validate(GOOD, None).unwrap();
        assert_eq!(s.files, vec!["src/app.py"]);
        assert_eq!((s.added_lines, s.removed_lines), (1, 1));
    }

    #[test]
    fn refuses_escapes_git_dir_garbage_and_empty() {
        let esc = GOOD.replace("src/app.py", "../outside.py");
        assert!(matches!(
            validate(&esc, None),
            Err(PatchError::PathEscapes(_))
        ));
        let abs = "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n";
        assert!(matches!(
            validate(abs, None),
            Err(PatchError::PathEscapes(_))
        ));
        let git = GOOD.replace("src/app.py", ".git/hooks/pre-commit");
        assert!(matches!(validate(&git, None), Err(PatchError::GitDir(_))));
        assert!(matches!(
            validate("hello\0world", None),
            Err(PatchError::Binary)
        ));
        assert!(matches!(
            validate("just some words\n", None),
            Err(PatchError::Malformed(_))
        ));
        assert_eq!(validate("  \n", None), Err(PatchError::Empty));
    }

    #[test]
    fn refuses_a_path_through_a_symlink_out_of_the_repo() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", d.path().join("link")).unwrap();
        let p = GOOD.replace("src/app.py", "link/evil.py");
        assert!(matches!(
            validate(&p, Some(d.path())),
            Err(PatchError::PathEscapes(_))
        ));
        // A dangling link: applying would create its target outside the repository.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("new.py"), d.path().join("new.py")).unwrap();
        let p = GOOD.replace("src/app.py", "new.py");
        assert!(matches!(
            validate(&p, Some(d.path())),
            Err(PatchError::PathEscapes(_))
        ));
    }
}
