//! `mend view --export DIR`: every page written as a file, with its styles and script
//! inline and links relative, so the folder opens from disk with no server and no network.
use std::path::Path;

use crate::{Site, ViewError};

/// The marker that says a directory is an earlier export (and may be written over).
const MARKER: &str = ".mend-view-export";

/// Write every page of `site` under `dir`; returns how many pages. Refuses a directory
/// that holds anything but an earlier export, so nothing of the user's is overwritten.
pub fn export(site: &Site, dir: &Path) -> Result<usize, ViewError> {
    let io = |what: String| move |e: std::io::Error| ViewError::Export(format!("{what}: {e}"));
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))?;
        if entries.next().is_some() && !dir.join(MARKER).exists() {
            return Err(ViewError::Export(format!(
                "{} exists and is not empty (and not an earlier export): choose a new or empty directory",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    std::fs::write(dir.join(MARKER), "written by `mend view --export`\n")
        .map_err(io(format!("writing in {}", dir.display())))?;
    let routes = site.routes()?;
    for route in &routes {
        let Some(html) = site.page(route)? else {
            return Err(ViewError::Export(format!("no page for {route}")));
        };
        let path = dir.join(route);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, html).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(routes.len())
}
