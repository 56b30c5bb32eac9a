//! Getting the user's repository at a revision into a sandbox, without touching their
//! working tree: Docker gets a copy of the object stores (no config, hooks or credentials)
//! and checks the revision out inside; local gets a checkout in a temporary directory.
use std::path::{Path, PathBuf};
use std::time::Duration;

use mend_sandbox::{
    DockerConfig, DockerEngine, DockerSandbox, Exec, LocalSandbox, Sandbox, SandboxError,
};

/// The commit `rev` names in the repository at `repo`.
pub fn resolve_rev(repo: &Path, rev: &str) -> Result<String, SandboxError> {
    let r = git2::Repository::discover(repo)
        .map_err(|e| SandboxError::Git(format!("{}: {}", repo.display(), e.message())))?;
    let c = r
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| SandboxError::Git(format!("revision `{rev}`: {}", e.message())))?;
    Ok(c.id().to_string())
}

/// A Docker sandbox whose root holds the repository at `rev` (the base of its diffs).
///
/// Only what a checkout needs goes in: the objects (those of every alternate too, so shared
/// clones work), refs, `shallow` and `info/`, under a fresh config. The user's config
/// (remote URLs with tokens, credential helpers, extra headers), hooks, reflogs,
/// `FETCH_HEAD` and submodule git dirs stay on the host. Submodules are not copied: each
/// is named in a warning.
pub async fn docker_workspace(
    engine: &DockerEngine,
    cfg: DockerConfig,
    repo: &Path,
    rev: &str,
) -> Result<DockerSandbox, SandboxError> {
    let commit = resolve_rev(repo, rev)?;
    let src = git2::Repository::discover(repo).map_err(SandboxError::from)?;
    let common = src.commondir().to_path_buf();
    let stage = tempfile::Builder::new()
        .prefix("mend-gitdir-")
        .tempdir()
        .map_err(io_err("creating a staging directory"))?;
    stage_git_dir(&src, &common, &commit, stage.path())?;
    let stores = object_stores(&common.join("objects"))?;
    let sb = DockerSandbox::start(engine, cfg).await?;
    sb.copy_in(stage.path(), ".git").await?;
    // The alternates first and the repository's own store last, so its `info/` wins.
    for store in stores.iter().rev() {
        sb.copy_in(store, ".git/objects").await?;
    }
    let midx = if stores.len() > 1 {
        // One store's multi-pack index does not cover the others' packs.
        "rm -f .git/objects/pack/multi-pack-index*; "
    } else {
        ""
    };
    // Hooks and fsmonitor stay off inside the sandbox whatever the image's config says.
    let script = format!(
        "set -e; rm -f .git/objects/info/alternates .git/objects/info/http-alternates; {midx}\
         g='git -c safe.directory=* -c core.hooksPath=/dev/null -c core.fsmonitor=false'; \
         $g checkout -q -f --detach {commit}; $g clean -q -fdx; $g rev-parse HEAD"
    );
    let out = sb
        .exec(&Exec::shell(script).timeout(Duration::from_secs(600)))
        .await?;
    if !out.success() {
        return Err(SandboxError::Git(format!(
            "checking out {commit} in the sandbox failed: {}",
            out.stderr.text().trim()
        )));
    }
    for path in submodules(repo, &commit)? {
        tracing::warn!(
            submodule = %path,
            "submodule not copied into the sandbox: its directory is empty there"
        );
    }
    sb.pin_base().await?;
    Ok(sb)
}

/// A `.git` without the objects: HEAD at `commit`, a config that keeps only the format
/// (`core.repositoryformatversion`, `extensions.*` that change how the repository is read),
/// and the refs, `shallow` and `info/` of the repository.
fn stage_git_dir(
    src: &git2::Repository,
    common: &Path,
    commit: &str,
    stage: &Path,
) -> Result<(), SandboxError> {
    let io = |what: &str| io_err(format!("staging the git directory: {what}"));
    std::fs::create_dir_all(stage.join("objects")).map_err(io("objects"))?;
    std::fs::write(stage.join("HEAD"), format!("{commit}\n")).map_err(io("HEAD"))?;
    let mut config = String::from("[core]\n");
    let read = src.config().ok().and_then(|mut c| c.snapshot().ok());
    let get = |key: &str| read.as_ref().and_then(|c| c.get_string(key).ok());
    let version = get("core.repositoryformatversion").unwrap_or_else(|| "0".into());
    config.push_str(&format!(
        "\trepositoryformatversion = {}\n\tbare = false\n",
        version.trim()
    ));
    let extensions: Vec<(String, String)> = ["objectformat", "compatobjectformat", "refstorage"]
        .iter()
        .filter_map(|k| get(&format!("extensions.{k}")).map(|v| (k.to_string(), v)))
        .filter(|(_, v)| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .collect();
    if !extensions.is_empty() {
        config.push_str("[extensions]\n");
        for (k, v) in extensions {
            config.push_str(&format!("\t{k} = {v}\n"));
        }
    }
    std::fs::write(stage.join("config"), config).map_err(io("config"))?;
    for name in ["refs", "packed-refs", "shallow", "info", "reftable"] {
        let from = common.join(name);
        if from.exists() {
            copy_plain(&from, &stage.join(name)).map_err(io(name))?;
        }
    }
    std::fs::create_dir_all(stage.join("refs")).map_err(io("refs"))?;
    Ok(())
}

/// Copy files and directories; symlinks (unusual in a git dir) are skipped.
fn copy_plain(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_plain(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// The object directory and, through `info/alternates`, every store it borrows from
/// (git's own nesting limit of 5), each once.
fn object_stores(objects: &Path) -> Result<Vec<PathBuf>, SandboxError> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut todo = vec![(objects.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = todo.pop() {
        let dir = dir
            .canonicalize()
            .map_err(io_err(format!("reading {}", dir.display())))?;
        if out.contains(&dir) {
            continue;
        }
        let alternates = std::fs::read_to_string(dir.join("info/alternates")).unwrap_or_default();
        for line in alternates.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if depth >= 5 {
                return Err(SandboxError::Git(format!(
                    "{}: alternates nested more than 5 deep",
                    dir.display()
                )));
            }
            todo.push((dir.join(line), depth + 1));
        }
        out.push(dir);
    }
    Ok(out)
}

/// A local checkout of the repository at `rev`.
pub fn local_workspace(repo: &Path, rev: &str) -> Result<LocalSandbox, SandboxError> {
    let sb = LocalSandbox::create(repo, rev)?;
    for path in submodules(repo, rev)? {
        tracing::warn!(
            submodule = %path,
            "submodule not checked out in the sandbox: its directory is empty there"
        );
    }
    Ok(sb)
}

/// The top of the repository, two levels deep, for the first prompt.
pub async fn layout(sb: &dyn Sandbox) -> Option<String> {
    let out = sb
        .exec(&Exec::shell("find . -maxdepth 2 -not -path './.git*' -not -path '*/__pycache__*' -not -name '.*' | sed 's|^\\./||' | sort | head -n 120").timeout(Duration::from_secs(60)))
        .await
        .ok()?;
    out.success().then(|| out.stdout.text().trim().to_string())
}

/// The submodules (gitlinks) of the repository at `rev`, by path: the sandboxes do not
/// fetch them, so their directories are empty there.
pub fn submodules(repo: &Path, rev: &str) -> Result<Vec<String>, SandboxError> {
    let r = git2::Repository::discover(repo)
        .map_err(|e| SandboxError::Git(format!("{}: {}", repo.display(), e.message())))?;
    let tree = r
        .revparse_single(rev)
        .and_then(|o| o.peel_to_tree())
        .map_err(|e| SandboxError::Git(format!("revision `{rev}`: {}", e.message())))?;
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Commit) {
            out.push(format!("{dir}{}", entry.name().unwrap_or("?")));
        }
        git2::TreeWalkResult::Ok
    })?;
    Ok(out)
}

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let action = action.into();
    move |source| SandboxError::Io { action, source }
}
