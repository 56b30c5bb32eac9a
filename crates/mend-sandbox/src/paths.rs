//! Confining file paths to the sandbox root.
use std::path::{Component, Path, PathBuf};

use crate::SandboxError;

/// Resolve `path` against `root` lexically: relative paths join the root, absolute paths
/// must already lie under it, and `..` may not climb above it.
pub(crate) fn confine(root: &str, path: &str) -> Result<String, SandboxError> {
    let escape = || SandboxError::PathEscapesRoot(path.to_string());
    if path.is_empty() || path.contains('\0') {
        return Err(escape());
    }
    let root_p = Path::new(root);
    let rel: PathBuf = if Path::new(path).is_absolute() {
        let p = normalize(Path::new(path)).ok_or_else(escape)?;
        p.strip_prefix(root_p).map_err(|_| escape())?.to_path_buf()
    } else {
        PathBuf::from(path)
    };
    let rel = normalize(&rel).ok_or_else(escape)?;
    let joined = root_p.join(rel);
    Ok(joined.to_string_lossy().into_owned())
}

/// Resolve a working directory or copy destination: absolute paths are taken as they
/// are (they name places inside the sandbox, e.g. `/tmp`), relative ones join the root.
pub(crate) fn resolve_dir(root: &str, dir: Option<&str>) -> String {
    match dir {
        None => root.to_string(),
        Some(d) if Path::new(d).is_absolute() => d.to_string(),
        Some(d) => Path::new(root).join(d).to_string_lossy().into_owned(),
    }
}

/// Resolve `rel` under `root` (which must be canonical) the way the kernel will when the
/// path is opened: every symlink followed, dangling ones too (their target is where a
/// write would land), `..` after them. `None` when the result leaves `root` or the links
/// loop. Components that do not exist yet are taken as they are.
pub(crate) fn resolve_within(root: &Path, rel: &Path) -> Option<PathBuf> {
    use std::collections::VecDeque;
    let mut out = root.to_path_buf();
    let mut pending: VecDeque<std::ffi::OsString> = VecDeque::new();
    let push_front = |pending: &mut VecDeque<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => pending.push_front(n.to_os_string()),
                Component::ParentDir => pending.push_front("..".into()),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
    };
    if rel.is_absolute() {
        out = PathBuf::from("/");
    }
    push_front(&mut pending, rel);
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&next).ok()?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                push_front(&mut pending, &target);
            }
            _ => out = next,
        }
    }
    out.starts_with(root).then_some(out)
}

/// Remove `.` and `..` without touching the file system; `None` if `..` climbs out.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth == 0 {
                    return None;
                }
                out.pop();
                depth -= 1;
            }
            Component::Normal(n) => {
                out.push(n);
                depth += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines() {
        assert_eq!(confine("/repo", "a/b.py").unwrap(), "/repo/a/b.py");
        assert_eq!(confine("/repo", "a/../b.py").unwrap(), "/repo/b.py");
        assert_eq!(confine("/repo", "/repo/x").unwrap(), "/repo/x");
        assert!(confine("/repo", "../etc/passwd").is_err());
        assert!(confine("/repo", "a/../../x").is_err());
        assert!(confine("/repo", "/etc/passwd").is_err());
        assert!(confine("/repo", "/repo/../etc").is_err());
        assert!(confine("/repo", "").is_err());
    }

    #[test]
    fn resolves_links_inside_and_refuses_them_outside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("src")).unwrap();
        std::os::unix::fs::symlink("src", root.join("s")).unwrap();
        std::os::unix::fs::symlink("../s/../src/new.py", root.join("src/loop.py")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("a", root.join("b")).unwrap();
        std::os::unix::fs::symlink("b", root.join("a")).unwrap();
        assert_eq!(
            resolve_within(&root, Path::new("s/loop.py")),
            Some(root.join("src/new.py"))
        );
        assert_eq!(resolve_within(&root, Path::new("dangling")), None);
        assert_eq!(resolve_within(&root, Path::new("a")), None);
        assert_eq!(resolve_within(&root, Path::new("s/../..")), None);
        assert_eq!(
            resolve_within(&root, &root.join("src/x")),
            Some(root.join("src/x"))
        );
    }
}
