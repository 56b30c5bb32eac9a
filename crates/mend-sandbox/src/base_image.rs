//! The offline base image: debootstrap a minimal Debian from the machine's configured apt
//! mirror, run `docker/base/post-install.sh` in it, and `docker import` it. No registry needed.
//!
//! The recipe (`docker/base/`) is compiled in; the tag is a hash of it, so changing the
//! recipe makes a new image and an unchanged recipe is never rebuilt.
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bollard::query_parameters::{CreateImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::{DockerEngine, SandboxError};

const CONF: &str = include_str!("../../../docker/base/base.conf");
const POST_INSTALL: &str = include_str!("../../../docker/base/post-install.sh");
/// Repository name of the base image; the tag is the recipe hash.
pub const REPOSITORY: &str = "mend-base";

/// What the build is doing, for progress displays.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A new phase started.
    Step(String),
    /// A line of output from the current phase.
    Line(String),
}

/// The recipe, parsed from `docker/base/base.conf`.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub suite: String,
    pub variant: String,
    pub packages: Vec<String>,
}

impl Recipe {
    /// The built-in recipe on another Debian suite (e.g. `bullseye` for its Python 3.9).
    pub fn for_suite(suite: &str) -> Recipe {
        Recipe {
            suite: suite.to_string(),
            ..Recipe::builtin()
        }
    }

    pub fn builtin() -> Recipe {
        let get = |key: &str| {
            CONF.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        Recipe {
            suite: get("suite"),
            variant: get("variant"),
            packages: get("packages")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The image reference this build of mend uses, e.g. `mend-base:3f9a1c2b7d10`.
pub fn image_tag() -> String {
    tag_for(&Recipe::builtin())
}

/// The image reference of `recipe`: the built-in suite keeps [`image_tag`]'s hash, another
/// suite hashes its name too.
pub fn tag_for(recipe: &Recipe) -> String {
    let mut h = Sha256::new();
    h.update(CONF.as_bytes());
    h.update(b"\0");
    h.update(POST_INSTALL.as_bytes());
    if recipe.suite != Recipe::builtin().suite {
        h.update(b"\0suite=");
        h.update(recipe.suite.as_bytes());
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{REPOSITORY}:{hex}")
}

/// Make sure the base image exists, building it if needed. Safe to call from many
/// processes at once: one builds while the others wait on a lock file, then find it.
pub async fn ensure(
    engine: &DockerEngine,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<String, SandboxError> {
    ensure_from(engine, None, progress).await
}

/// [`ensure`], building from this Debian mirror when a build is needed (default: the
/// `MEND_APT_MIRROR` variable, else the machine's apt configuration).
pub async fn ensure_from(
    engine: &DockerEngine,
    mirror: Option<String>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<String, SandboxError> {
    ensure_recipe(engine, &Recipe::builtin(), mirror, progress).await
}

/// [`ensure_from`] for any recipe, e.g. [`Recipe::for_suite`].
pub async fn ensure_recipe(
    engine: &DockerEngine,
    recipe: &Recipe,
    mirror: Option<String>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<String, SandboxError> {
    let tag = tag_for(recipe);
    if engine.image_exists(&tag).await? {
        return Ok(tag);
    }
    // One lock per suite: a bullseye build does not wait for a bookworm one.
    let lock_path = std::env::temp_dir().join(if recipe.suite == Recipe::builtin().suite {
        "mend-base-image.lock".to_string()
    } else {
        format!("mend-base-image-{}.lock", recipe.suite)
    });
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(SandboxError::io(format!("opening {}", lock_path.display())))?;
    progress(Progress::Step(format!(
        "waiting for the build lock {}",
        lock_path.display()
    )));
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock))
        .await
        .map_err(|e| SandboxError::BaseImage(format!("lock task failed: {e}")))?
        .map_err(SandboxError::io("locking the base image build"))?;
    let result = async {
        if engine.image_exists(&tag).await? {
            return Ok(tag.clone());
        }
        build(engine, recipe, mirror, progress).await
    }
    .await;
    drop(lock);
    result
}

/// Build the base image now (even if it exists) and return its tag.
pub async fn build(
    engine: &DockerEngine,
    recipe: &Recipe,
    mirror: Option<String>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<String, SandboxError> {
    let tag = tag_for(recipe);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SandboxError::BaseImage("building the base image needs root (debootstrap and chroot): run `mend images base` as root, or pass --image with an image you have".into()));
    }
    let debootstrap = which("debootstrap").ok_or_else(|| {
        SandboxError::BaseImage("debootstrap is not installed: `apt-get install debootstrap` (or pass --image with an image you have)".into())
    })?;
    let mirror = match mirror.or_else(|| std::env::var("MEND_APT_MIRROR").ok()) {
        Some(m) => m,
        // A Debian mirror serves every suite: one configured for another suite (this
        // machine's) stands in when none names `recipe.suite`.
        None => apt_mirror(Path::new("/etc/apt"), &recipe.suite)
            .or_else(|_| apt_mirror(Path::new("/etc/apt"), &Recipe::builtin().suite))?,
    };
    let workdir = tempfile::Builder::new()
        .prefix("mend-rootfs-")
        .tempdir_in("/var/tmp")
        .map_err(SandboxError::io("creating the build directory in /var/tmp"))?;
    let rootfs = workdir.path().join("rootfs");
    let result = async {
        progress(Progress::Step(format!(
            "debootstrap {} ({}) from the configured apt mirror: {}",
            recipe.suite,
            recipe.variant,
            recipe.packages.join(", ")
        )));
        let mut cmd = tokio::process::Command::new(&debootstrap);
        cmd.arg(format!("--variant={}", recipe.variant))
            .arg(format!("--include={}", recipe.packages.join(",")))
            .arg(&recipe.suite)
            .arg(&rootfs)
            .arg(&mirror);
        run_logged(cmd, "debootstrap", progress).await?;

        progress(Progress::Step(
            "post-install (user `mend`, git and pip settings)".into(),
        ));
        let script = rootfs.join("tmp/mend-post-install.sh");
        std::fs::write(&script, POST_INSTALL)
            .map_err(SandboxError::io("writing post-install.sh"))?;
        let mut cmd = tokio::process::Command::new("chroot");
        cmd.arg(&rootfs)
            .args(["/bin/sh", "/tmp/mend-post-install.sh"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run_logged(cmd, "post-install", progress).await?;
        unmount_all(&rootfs).await;

        progress(Progress::Step(format!("docker import as {tag}")));
        import(engine, &rootfs, &tag, progress).await?;
        // `mend-base:latest` names the built-in suite's image only.
        if recipe.suite == Recipe::builtin().suite {
            tag_latest(engine, &tag).await?;
        }
        Ok(tag.clone())
    }
    .await;
    unmount_all(&rootfs).await;
    result
}

async fn import(
    engine: &DockerEngine,
    rootfs: &Path,
    tag: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SandboxError> {
    let mut tar = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(SandboxError::io("starting tar"))?;
    let out = tar
        .stdout
        .take()
        .ok_or_else(|| SandboxError::BaseImage("tar has no stdout".into()))?;
    let body =
        futures_util::stream::unfold((out, vec![0u8; 1 << 20]), |(mut r, mut buf)| async move {
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(&buf[..n])),
                    (r, buf),
                )),
                Err(e) => Some((Err(e), (r, buf))),
            }
        });
    let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(version)
        .changes(vec![
            "ENV LANG=C.UTF-8".to_string(),
            "WORKDIR /repo".to_string(),
            "CMD [\"/bin/bash\"]".to_string(),
        ])
        .build();
    let mut stream =
        engine
            .client()
            .create_image(Some(opts), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(SandboxError::engine("importing the base image"))?;
        if let Some(s) = info.status {
            progress(Progress::Line(s));
        }
    }
    let status = tar.wait().await.map_err(SandboxError::io("running tar"))?;
    if !status.success() {
        return Err(SandboxError::BaseImage(format!(
            "tar of the root file system failed ({status})"
        )));
    }
    Ok(())
}

async fn tag_latest(engine: &DockerEngine, tag: &str) -> Result<(), SandboxError> {
    let opts = TagImageOptionsBuilder::default()
        .repo(REPOSITORY)
        .tag("latest")
        .build();
    engine
        .client()
        .tag_image(tag, Some(opts))
        .await
        .map_err(SandboxError::engine("tagging the base image"))?;
    Ok(())
}

/// Run a command, sending each output line to `progress`; a failure quotes the last lines.
async fn run_logged(
    mut cmd: tokio::process::Command,
    what: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SandboxError> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(SandboxError::io(format!("starting {what}")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for reader in [
        stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        stderr.map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
    }
    drop(tx);
    let mut last: std::collections::VecDeque<String> = Default::default();
    while let Some(line) = rx.recv().await {
        if last.len() == 15 {
            last.pop_front();
        }
        last.push_back(line.clone());
        progress(Progress::Line(line));
    }
    let status = child
        .wait()
        .await
        .map_err(SandboxError::io(format!("waiting for {what}")))?;
    if !status.success() {
        let tail: Vec<String> = last.into_iter().collect();
        return Err(SandboxError::BaseImage(format!(
            "{what} failed ({status}); its last lines:\n{}",
            tail.join("\n")
        )));
    }
    Ok(())
}

async fn unmount_all(rootfs: &Path) {
    for sub in ["proc", "sys", "dev/pts"] {
        let p = rootfs.join(sub);
        let _ = tokio::process::Command::new("umount")
            .arg("-l")
            .arg(&p)
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The Debian mirror this machine's apt is configured with, for `suite` (main component).
/// Reads deb822 `*.sources` files and one-line `*.list` files under `apt_dir`.
pub fn apt_mirror(apt_dir: &Path, suite: &str) -> Result<String, SandboxError> {
    let mut files: Vec<PathBuf> = vec![apt_dir.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(apt_dir.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let name = f.to_string_lossy();
        let found = if name.ends_with(".sources") {
            mirror_from_deb822(&text, suite)
        } else if name.ends_with(".list") {
            mirror_from_list(&text, suite)
        } else {
            None
        };
        if let Some(m) = found {
            return Ok(m);
        }
    }
    Err(SandboxError::BaseImage(format!(
        "no apt source for `{suite} main` in {}/sources.list or sources.list.d/: set MEND_APT_MIRROR to a Debian mirror URL",
        apt_dir.display()
    )))
}

fn mirror_from_deb822(text: &str, suite: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_string())
            })
        };
        let enabled = field("Enabled").map(|v| v != "no").unwrap_or(true);
        let types = field("Types").unwrap_or_default();
        let suites = field("Suites").unwrap_or_default();
        let comps = field("Components").unwrap_or_default();
        if enabled
            && types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == suite)
            && comps.split_whitespace().any(|c| c == "main")
            && let Some(uri) =
                field("URIs").and_then(|u| u.split_whitespace().next().map(str::to_string))
        {
            return Some(uri);
        }
    }
    None
}

fn mirror_from_list(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let mut words = l.split_whitespace().filter(|w| !w.starts_with('['));
        if words.next()? != "deb" {
            return None;
        }
        let uri = words.next()?;
        let s = words.next()?;
        let rest: Vec<&str> = words.collect();
        (s == suite && rest.contains(&"main")).then(|| uri.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deb822_and_list_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(
            mirror_from_deb822(deb822, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_from_deb822(deb822, "trixie"), None);
        let list = "# comment\ndeb [arch=amd64] http://m.example/debian bookworm main contrib\n";
        assert_eq!(
            mirror_from_list(list, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            mirror_from_list("deb-src http://x bookworm main", "bookworm"),
            None
        );
    }

    #[test]
    fn apt_dir_without_sources_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let e = apt_mirror(d.path(), "bookworm").unwrap_err().to_string();
        assert!(e.contains("MEND_APT_MIRROR"), "{e}");
    }

    #[test]
    fn recipe_and_tag_are_stable() {
        let r = Recipe::builtin();
        assert_eq!(r.suite, "bookworm");
        assert!(r.packages.iter().any(|p| p == "python3-venv"));
        assert!(image_tag().starts_with("mend-base:"));
        assert_eq!(image_tag(), image_tag());
        // Another suite is another image; the built-in one keeps its tag.
        let bullseye = Recipe::for_suite("bullseye");
        assert_eq!(bullseye.packages, r.packages);
        assert_ne!(tag_for(&bullseye), image_tag());
        assert_eq!(tag_for(&Recipe::for_suite("bookworm")), image_tag());
    }
}
