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
}
