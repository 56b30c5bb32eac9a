//! `--images build-offline`: real SWE-bench instance images built with no registry and no
//! GitHub, the way an air-gapped user would:
//! - the repository with its history up to `base_commit`, fetched from a local mirror
//!   directory ([`MirrorDir`]);
//! - Python from mend's offline base image: the spec's version when the base has it, the
//!   nearest one otherwise (recorded, see [`EnvironmentNotes`]);
//! - dependencies downloaded on the host into a wheelhouse (`pip download`, sdists turned
//!   into wheels with `pip wheel`) and installed in the image from it with no network
//!   (`docker build --network none`, `pip` configured `no-index` + `find-links`);
//! - the spec's pre-install and install commands run offline.
//!
//! The image keeps the official layout (repo in `/testbed`, `source /opt/miniconda3/bin/activate;
//! conda activate testbed` works through a small stand-in for conda), so the official eval
//! script runs unchanged. Images are tagged by a hash of everything that goes into them and
//! reused when present. The recipe lives in `docker/swebench/offline/`.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use mend_sandbox::{DockerConfig, DockerEngine, DockerSandbox, Exec, Sandbox, UserChoice};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell};

use crate::SwebenchError;
use crate::dataset::Instance;
use crate::images::{
    EnvironmentNotes, ImageProgress, ImageSource, clean_requirements, docker_build,
};
use crate::specs::{RepoSpec, Specs, VersionSpec};

const DOCKERFILE: &str = include_str!("../../../docker/swebench/offline/Dockerfile");
const ACTIVATE: &str = include_str!("../../../docker/swebench/offline/activate.sh");
const SETUP_ENV: &str = include_str!("../../../docker/swebench/offline/setup_env.sh");
const SETUP_REPO: &str = include_str!("../../../docker/swebench/offline/setup_repo.sh");

/// Bumped when the way images are made changes in a way the templates do not show.
const RECIPE_VERSION: &str = "3";
/// Bumped when the host-side dependency resolution changes (invalidates recorded resolutions).
const RESOLVER_VERSION: &str = "8";

/// Where repository mirrors are found. For `owner/name`, the first that exists of
/// `DIR/owner__name`, `DIR/owner__name.git` and `DIR/owner+name/repo` (the layout the
/// tool library's `fetch` leaves); each may be a bare repository, a clone, or a symlink to one.
#[derive(Debug, Clone, Default)]
pub struct MirrorDir {
    pub dir: Option<PathBuf>,
    /// Explicit mirrors by repository (`mend swebench mine --repo PATH`).
    pub overrides: HashMap<String, PathBuf>,
}

impl MirrorDir {
    pub fn new(dir: impl Into<PathBuf>) -> MirrorDir {
        MirrorDir {
            dir: Some(dir.into()),
            overrides: HashMap::new(),
        }
    }

    /// The git directory (or work tree) of `repo`'s mirror.
    pub fn find(&self, repo: &str) -> Result<PathBuf, SwebenchError> {
        if let Some(p) = self.overrides.get(repo) {
            return Ok(p.clone());
        }
        let Some(dir) = &self.dir else {
            return Err(SwebenchError::Invalid(format!(
                "no mirror for {repo}: pass --repo-mirrors DIR (DIR/{} -> a clone or bare repository)",
                repo.replace('/', "__")
            )));
        };
        let candidates = [
            dir.join(repo.replace('/', "__")),
            dir.join(format!("{}.git", repo.replace('/', "__"))),
            dir.join(repo.replace('/', "+")).join("repo"),
        ];
        candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
            SwebenchError::Invalid(format!(
                "no mirror for {repo} in {}: expected one of {} (a clone, a bare repository or a symlink to one)",
                dir.display(),
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// Run git on a mirror and return stdout; `None` when git fails (e.g. a path absent at a commit).
fn git_out(git_dir: &Path, args: &[&str]) -> Result<Option<String>, SwebenchError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(git_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(SwebenchError::io("running git (is it installed?)"))?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// A file's text at a commit of a mirror, or `None` when it does not exist there.
pub fn file_at(git_dir: &Path, commit: &str, path: &str) -> Result<Option<String>, SwebenchError> {
    git_out(git_dir, &["show", &format!("{commit}:{path}")])
}

/// What one wheel resolution is asked for.
struct Wanted<'a> {
    requirements: &'a [String],
    /// The last `pip_group` requirements are the spec's `pip_packages`, installed after the rest.
    pip_group: usize,
    /// The project checked out at a path, with its extras (`.[test]`).
    project: Option<(&'a Path, &'a str)>,
    build_reqs: &'a [String],
}

/// Python versions the base image offers, e.g. `[(3, 11, "3.11.2")]`.
#[derive(Debug, Clone)]
struct BaseInfo {
    tag: String,
    /// The Debian suite mend built it from; `None` for a `--base-image` of the user's.
    suite: Option<String>,
    pythons: Vec<(u32, u32, String)>,
}

/// The Debian suite whose Python best matches a spec's: bullseye (Python 3.9) for specs up
/// to 3.10, bookworm (3.11) above and when the spec names none. Both come from the same
/// apt mirror as mend's base image. 3.10 is as near to one as to the other; the older wins
/// because a spec's pins are as old as it is (xarray's numpy 1.23.0 has no 3.11 wheel).
pub fn debian_suite_for(python: Option<&str>) -> &'static str {
    match python.and_then(major_minor) {
        Some((3, minor)) if minor <= 10 => "bullseye",
        Some((major, _)) if major < 3 => "bullseye",
        _ => "bookworm",
    }
}

/// Shell lines that make a newer Python's unittest name tests as the spec's Python 3.6 did.
/// Since 3.7 a docstring's first non-blank line describes a test (`test_x (m.C)` is followed
/// by `First line. ... ok`); 3.6 took the first line as it is, so a docstring opening with a
/// newline gave none, and the official lists of such specs hold the bare `test_x (m.C)`.
/// Django 3.0 on 3.9 lost 572 tests of 18 instances to this alone. Installed as a `.pth`
/// hook in the venv (Debian's own sitecustomize would shadow a sitecustomize there).
fn unittest_compat(official: Option<&str>, image: (u32, u32)) -> String {
    let Some((3, o)) = official.and_then(major_minor) else {
        return String::new();
    };
    if o > 6 || image < (3, 7) {
        return String::new();
    }
    r#"site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$site/mend_unittest_py36.py" <<'PY'
import unittest


def _short_description(self):
    doc = self._testMethodDoc
    return doc and doc.split("\n")[0].strip() or None


unittest.TestCase.shortDescription = _short_description
PY
echo 'import mend_unittest_py36' > "$site/mend_unittest_py36.pth""#
        .to_string()
}

/// Parse `"3.9"` into `(3, 9)`.
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The available Python closest to `wanted` (same major; the smaller distance in minor
/// versions, the newer on a tie). `None` only when nothing is available.
pub fn nearest_python<'a>(
    wanted: Option<&str>,
    available: &'a [(u32, u32, String)],
) -> Option<&'a (u32, u32, String)> {
    let want = wanted.and_then(major_minor);
    available.iter().min_by_key(|(ma, mi, _)| match want {
        Some((wma, wmi)) => ((*ma != wma) as u32, mi.abs_diff(wmi), u32::MAX - mi),
        None => (0, 0, u32::MAX - mi),
    })
}

/// A conda package spec as a pip requirement (`numpy=1.21` -> `numpy==1.21.*`); `None` for
/// what pip cannot install (the interpreter, pip itself, channel-qualified names).
pub fn conda_to_pip(spec: &str) -> Option<String> {
    let s = spec.trim().trim_matches(|c| c == '"' || c == '\'');
    if s.is_empty() || s.contains("::") {
        return None;
    }
    let name_end = s.find(|c: char| "=<>!~ ".contains(c)).unwrap_or(s.len());
    let (name, rest) = (&s[..name_end], s[name_end..].trim());
    if matches!(name, "python" | "pip" | "conda") {
        return None;
    }
    // Conda names whose PyPI project is named otherwise (PyPI's `iris` is a placeholder that
    // raises on import, which broke every xarray test module that imports it).
    let name = match name {
        "iris" => "scitools-iris",
        other => other,
    };
    if let Some(v) = rest.strip_prefix('=').filter(|r| !r.starts_with('=')) {
        // conda `=1.2` means 1.2.*; `=1.2.*` and `=1.2=build` variants too.
        let v = v.split('=').next().unwrap_or("").trim_end_matches(".*");
        return Some(if v.is_empty() {
            name.to_string()
        } else {
            format!("{name}=={v}.*")
        });
    }
    Some(format!("{name}{rest}"))
}

/// The requirement lines of an `environment.yml` (conda dependencies mapped to pip, then the
/// `pip:` section); a minimal reader for the shape these files have.
pub fn environment_yml_requirements(yml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    let mut pip_indent: Option<usize> = None;
    for line in yml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_deps = trimmed.starts_with("dependencies:");
            pip_indent = None;
            continue;
        }
        if !in_deps {
            continue;
        }
        let Some(item) = trimmed.strip_prefix("- ") else {
            continue;
        };
        let item = item.split(" #").next().unwrap_or("").trim();
        if let Some(pi) = pip_indent {
            if indent > pi {
                out.push(item.to_string());
                continue;
            }
            pip_indent = None;
        }
        if item == "pip:" {
            pip_indent = Some(indent);
            continue;
        }
        push_conda(&mut out, item);
    }
    out
}

/// Append what pip needs in place of one conda package: its requirement (if pip can install
/// it), then, once, a PyPI package carrying what the conda one brings along: conda's
/// cfgrib/eccodes bring the ecCodes C library, which PyPI's eccodes bindings find only in
/// ecmwflibs' wheel (without it xarray's conftest raises).
fn push_conda(out: &mut Vec<String>, spec: &str) {
    let Some(r) = conda_to_pip(spec) else {
        return;
    };
    let needs_eccodes = matches!(
        requirement_name(&r).as_str(),
        "cfgrib" | "eccodes" | "python-eccodes"
    );
    out.push(r);
    if needs_eccodes && !out.iter().any(|l| l == "ecmwflibs") {
        out.push("ecmwflibs".into());
    }
}

/// Expand `-r` includes of a requirements file and drop what the official harness drops
/// (`-e .`, comments, `.[test...]`).
fn expand_requirements(text: &str, dir: &str, read: &dyn Fn(&str) -> Option<String>) -> String {
    let excluded = |l: &str| {
        ["-e .", "#", ".[test"]
            .iter()
            .any(|x| l.trim().starts_with(x))
    };
    let mut original = Vec::new();
    let mut additional = Vec::new();
    for line in text.split('\n') {
        if let Some(inc) = line.trim().strip_prefix("-r") {
            let path = if dir.is_empty() {
                inc.trim().to_string()
            } else {
                format!("{dir}/{}", inc.trim())
            };
            if let Some(t) = read(&path) {
                additional.extend(t.split('\n').filter(|l| !excluded(l)).map(str::to_string));
            }
        } else if !excluded(line) {
            original.push(line.to_string());
        }
    }
    additional.push(original.join("\n"));
    clean_requirements(&additional.join("\n"))
}

/// The pip requirement lines for an instance's environment, from its spec (`packages` as a
/// requirements file, an environment.yml or conda names; then `pip_packages`).
pub fn environment_requirements(
    git_dir: &Path,
    instance: &Instance,
    repo: &RepoSpec,
    spec: &VersionSpec,
) -> Result<Vec<String>, SwebenchError> {
    let commit = instance
        .environment_setup_commit
        .as_deref()
        .unwrap_or(&instance.base_commit);
    // The official harness reads these files at `environment_setup_commit` (a later commit
    // of the same version); records without one may name a base commit that predates the
    // file. Then the first later commit that has it stands in.
    let first = |paths: &[String]| -> Result<Option<(String, String)>, SwebenchError> {
        for p in paths {
            if let Some(t) = file_at(git_dir, commit, p)? {
                return Ok(Some((p.clone(), t)));
            }
        }
        for p in paths {
            let later = git_out(
                git_dir,
                &[
                    "log",
                    "--format=%H",
                    "--reverse",
                    &format!("{commit}..HEAD"),
                    "--",
                    p,
                ],
            )?
            .unwrap_or_default();
            for c in later.lines().take(20) {
                if let Some(t) = file_at(git_dir, c, p)? {
                    tracing::info!(instance = %instance.instance_id, path = %p, commit = %c, "environment file taken from a later commit");
                    return Ok(Some((p.clone(), t)));
                }
            }
        }
        Ok(None)
    };
    let mut lines: Vec<String> = Vec::new();
    match spec.packages.as_deref().unwrap_or("") {
        "" => {}
        "requirements.txt" => {
            let (path, text) = first(&repo.requirements_paths)?.ok_or_else(|| {
                SwebenchError::Invalid(format!(
                    "{}: none of {:?} exists at {commit}",
                    instance.instance_id, repo.requirements_paths
                ))
            })?;
            let dir = path
                .rsplit_once('/')
                .map(|(d, _)| d.to_string())
                .unwrap_or_default();
            let read = |p: &str| file_at(git_dir, commit, p).ok().flatten();
            lines.extend(
                expand_requirements(&text, &dir, &read)
                    .lines()
                    .map(str::to_string),
            );
        }
        "environment.yml" => {
            let (_, text) = first(&repo.environment_yml_paths)?.ok_or_else(|| {
                SwebenchError::Invalid(format!(
                    "{}: none of {:?} exists at {commit}",
                    instance.instance_id, repo.environment_yml_paths
                ))
            })?;
            lines.extend(environment_yml_requirements(&text));
        }
        conda => {
            for spec in conda.split_whitespace() {
                push_conda(&mut lines, spec);
            }
        }
    }
    lines.extend(spec.pip_packages.iter().cloned());
    Ok(lines
        .iter()
        .map(|l| strip_comment(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// A requirement line without its comment: as pip reads requirements files, `#` at the start
/// or after whitespace begins one (`astroid==2.6.0  # pinned` -> `astroid==2.6.0`). Lines are
/// also passed to pip one by one, where a comment is an invalid requirement.
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let cut = (0..b.len()).find(|&i| b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()));
    &line[..cut.unwrap_or(line.len())]
}

/// `pip install` arguments that name the repository itself in an install command
/// (`-e .`, `.[test]`, `setup.py install`), as a path suffix: `""` or `"[test]"`.
pub fn project_extras(install: &str) -> Option<String> {
    if install.contains("setup.py") {
        return Some(String::new());
    }
    if !install.contains("pip install") {
        return None;
    }
    install.split_whitespace().find_map(|t| {
        let t = t.trim_matches(|c| c == '"' || c == '\'');
        let rest = t.strip_prefix('.')?;
        (rest.is_empty() || rest.starts_with('[')).then(|| rest.to_string())
    })
}

/// A project's build files at one commit, as far as they name build requirements.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuildFiles<'a> {
    pub pyproject: Option<&'a str>,
    pub setup_cfg: Option<&'a str>,
    pub setup_py: Option<&'a str>,
    /// Whether the tree holds Cython sources (`.pyx`).
    pub cython_sources: bool,
}

/// The build requirements of a project: `pyproject.toml`'s `[build-system] requires` (or
/// setuptools' defaults when there is none), then setuptools' `setup_requires` from
/// `setup.cfg` or a literal list in `setup.py`. setuptools fetches the latter through pip
/// while building, so an offline wheelhouse must hold them (xarray's `setuptools_scm`).
pub fn build_requirements(files: BuildFiles<'_>) -> Vec<String> {
    let declared = files
        .pyproject
        .and_then(|text| toml::from_str::<toml::Table>(text).ok())
        .and_then(|v| {
            let reqs = v.get("build-system")?.get("requires")?.as_array()?.clone();
            Some(
                reqs.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        });
    let mut out = declared.unwrap_or_else(|| vec!["setuptools>=40.8.0".to_string()]);
    // pip asks setuptools' backend for `wheel` on older versions; harmless elsewhere.
    let extra = std::iter::once("wheel".to_string())
        .chain(
            files
                .setup_cfg
                .map(setup_cfg_setup_requires)
                .unwrap_or_default(),
        )
        .chain(
            files
                .setup_py
                .map(setup_py_setup_requires)
                .unwrap_or_default(),
        );
    for r in extra {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    // A setup.py building Cython sources often computes its setup_requires (astropy_helpers
    // adds `cython>=0.21` at run time), which no file spells out; setuptools fetches it all
    // the same, so the wheelhouse needs Cython.
    if files.cython_sources
        && files.setup_py.is_some()
        && !out.iter().any(|r| requirement_name(r) == "cython")
    {
        out.push("cython".into());
    }
    out
}

/// `setup_requires` under `[options]` in a `setup.cfg`: one per continuation line, or
/// separated by `;` on one line.
fn setup_cfg_setup_requires(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut in_options, mut in_key) = (false, false);
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_options = trimmed == "[options]";
            in_key = false;
            continue;
        }
        let continuation = line.starts_with([' ', '\t']);
        if in_key && continuation {
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                out.push(trimmed.to_string());
            }
            continue;
        }
        in_key = false;
        if !in_options {
            continue;
        }
        if let Some((key, value)) = trimmed.split_once('=')
            && key.trim() == "setup_requires"
        {
            in_key = true;
            out.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        }
    }
    out
}

/// The string literals of `setup_requires=[...]` in a `setup.py`. Computed lists (a name, a
/// call) are not followed: only what the file spells out.
fn setup_py_setup_requires(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("setup_requires") {
        rest = &rest[at + "setup_requires".len()..];
        let Some(after_eq) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let Some(list) = after_eq.trim_start().strip_prefix('[') else {
            continue;
        };
        let Some(end) = list.find(']') else {
            break;
        };
        let mut items = &list[..end];
        while let Some(q) = items.find(['"', '\'']) {
            let quote = items.as_bytes()[q] as char;
            let body = &items[q + 1..];
            let Some(close) = body.find(quote) else {
                break;
            };
            out.push(body[..close].to_string());
            items = &body[close + 1..];
        }
    }
    out
}

/// The project name of a requirement line, normalised (`Foo_Bar[x]>=1` -> `foo-bar`).
fn requirement_name(line: &str) -> String {
    let end = line
        .find(|c: char| "=<>!~[; @".contains(c))
        .unwrap_or(line.len());
    line[..end]
        .trim()
        .to_ascii_lowercase()
        .replace(['_', '.'], "-")
}

/// `base` with every requirement that `later` names again replaced by `later`'s line: what
/// installing `base` and then `later` leaves, as one set.
pub fn override_pins(base: &[String], later: &[String]) -> Vec<String> {
    let names: Vec<String> = later.iter().map(|l| requirement_name(l)).collect();
    base.iter()
        .filter(|l| !names.contains(&requirement_name(l)))
        .chain(later.iter())
        .cloned()
        .collect()
}

/// The spec's pre-install commands made to work offline: apt-get lines cannot reach a
/// package mirror during the build, so they are kept as comments and reported.
fn offline_pre_install(pre: &[String], notes: &mut Vec<String>) -> Vec<String> {
    pre.iter()
        .map(|c| {
            if c.contains("apt-get") || c.contains("locale-gen") {
                notes.push(format!("pre-install step skipped offline: {c}"));
                format!("# skipped offline: {c}")
            } else {
                c.clone()
            }
        })
        .collect()
}

/// What the host-side resolution put in the wheelhouse for one environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Resolution {
    /// File names in the wheelhouse (wheels only).
    files: Vec<String>,
    /// Requirement lines kept (those that could be resolved).
    requirements: Vec<String>,
    notes: Vec<String>,
}

/// Builds SWE-bench instance images offline; see the module docs.
pub struct OfflineImages {
    pub specs: Arc<Specs>,
    pub mirrors: MirrorDir,
    /// Wheels downloaded on the host, shared by every image (`--wheelhouse DIR`).
    pub wheelhouse: PathBuf,
    /// Build contexts, kept for inspection like the official `logs/build_images`.
    pub build_dir: PathBuf,
    /// The base image; `None` means mend's own, built offline when missing.
    pub base_image: Option<String>,
    /// The Debian suite of mend's base image for every instance (`MEND_OFFLINE_SUITE`);
    /// `None` picks per spec with [`debian_suite_for`].
    pub suite: Option<String>,
    /// The host interpreter whose pip downloads wheels (`MEND_HOST_PYTHON`, default `python3`).
    pub host_python: String,
    /// Reach PyPI from the host for wheels not yet in the wheelhouse (off: the wheelhouse
    /// must already hold everything, e.g. on a machine with no network at all).
    pub download: bool,
    /// Resolve as PyPI stood on this date (set from the CLI's `--pypi-cutoff`, which also reads
    /// `MEND_PYPI_CUTOFF`): unpinned packages drift (docutils dropped `utils.roman`, setuptools
    /// `pkg_resources`), and the official environments were resolved when the specs were
    /// written. `None`: today's PyPI.
    pub pypi_cutoff: Option<String>,
    /// Image name prefix; the tag is the content hash.
    pub repository: String,
    /// Base images by Debian suite (one entry when `base_image` is given).
    bases: StdMutex<HashMap<String, Arc<OnceCell<BaseInfo>>>>,
    /// Held while an image is built, so each is built once.
    building: crate::keyed_lock::KeyedLock,
    /// One host pip at a time: they share the wheelhouse.
    pip_lock: Mutex<()>,
    notes: StdMutex<HashMap<String, EnvironmentNotes>>,
}

impl OfflineImages {
    pub fn new(
        specs: Arc<Specs>,
        mirrors: MirrorDir,
        wheelhouse: PathBuf,
        build_dir: PathBuf,
    ) -> OfflineImages {
        OfflineImages {
            specs,
            mirrors,
            wheelhouse,
            build_dir,
            base_image: None,
            suite: std::env::var("MEND_OFFLINE_SUITE")
                .ok()
                .filter(|s| !s.is_empty() && s != "auto"),
            host_python: std::env::var("MEND_HOST_PYTHON").unwrap_or_else(|_| "python3".into()),
            download: true,
            pypi_cutoff: None,
            repository: "mend-sweb.eval.x86_64".into(),
            bases: Default::default(),
            building: Default::default(),
            pip_lock: Mutex::new(()),
            notes: Default::default(),
        }
    }

    /// The base image for a spec's Python: the user's `--base-image`, else mend's own on
    /// the Debian suite [`debian_suite_for`] picks (built from the apt mirror when missing).
    async fn base(
        &self,
        engine: &DockerEngine,
        spec_python: Option<&str>,
        progress: ImageProgress<'_>,
    ) -> Result<BaseInfo, SwebenchError> {
        let suite = match (&self.base_image, &self.suite) {
            (Some(_), _) => None,
            (None, Some(forced)) => Some(forced.as_str()),
            (None, None) => Some(debian_suite_for(spec_python)),
        };
        let cell = {
            let mut m = self
                .bases
                .lock()
                .map_err(|_| SwebenchError::Invalid("base image table poisoned".into()))?;
            m.entry(suite.unwrap_or("").to_string())
                .or_default()
                .clone()
        };
        let info = cell
            .get_or_try_init(|| async {
                let tag = match (&self.base_image, suite) {
                    (Some(t), _) => t.clone(),
                    (None, suite) => {
                        let recipe = mend_sandbox::base_image::Recipe::for_suite(
                            suite.unwrap_or("bookworm"),
                        );
                        progress(&format!(
                            "ensuring mend's offline base image (Debian {})",
                            recipe.suite
                        ));
                        mend_sandbox::base_image::ensure_recipe(engine, &recipe, None, &mut |p| {
                            if let mend_sandbox::base_image::Progress::Step(s) = p {
                                progress(&s)
                            }
                        })
                        .await?
                    }
                };
                let pythons = probe_pythons(engine, &tag).await?;
                if pythons.is_empty() {
                    return Err(SwebenchError::Invalid(format!(
                        "base image {tag} has no python3.X interpreter"
                    )));
                }
                Ok(BaseInfo {
                    tag,
                    suite: suite.map(str::to_string),
                    pythons,
                })
            })
            .await?;
        Ok(info.clone())
    }

    /// A host interpreter of Python `major.minor` for pip: wheels downloaded or built must
    /// fit the image's Python. `MEND_HOST_PYTHON` when it is that version, else `pythonX.Y`
    /// on PATH, else one of pyenv's (`$PYENV_ROOT`, default ~/.pyenv).
    fn host_python_for(&self, major: u32, minor: u32) -> Result<String, SwebenchError> {
        let version_of = |exe: &str| -> Option<(u32, u32)> {
            let out = std::process::Command::new(exe)
                .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            major_minor(&String::from_utf8_lossy(&out.stdout))
        };
        let mut candidates = vec![self.host_python.clone(), format!("python{major}.{minor}")];
        let pyenv_root = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
        if let Some(root) = pyenv_root
            && let Ok(rd) = std::fs::read_dir(root.join("versions"))
        {
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{major}.{minor}.")))
                })
                .map(|p| p.join("bin").join(format!("python{major}.{minor}")))
                .collect();
            found.sort();
            candidates.extend(found.into_iter().rev().map(|p| p.display().to_string()));
        }
        candidates
            .into_iter()
            .find(|c| version_of(c) == Some((major, minor)))
            .ok_or_else(|| {
                SwebenchError::Invalid(format!(
                    "no Python {major}.{minor} on the host to download wheels for the image's Python {major}.{minor}: install python{major}.{minor} (or with pyenv), or set MEND_HOST_PYTHON to one"
                ))
            })
    }

    /// Resolve what `wanted` names into wheels in the wheelhouse, reusing an earlier
    /// resolution of the same inputs.
    async fn resolve(
        &self,
        key: &str,
        wanted: Wanted<'_>,
        python: &str,
        progress: ImageProgress<'_>,
    ) -> Result<Resolution, SwebenchError> {
        let Wanted {
            requirements,
            pip_group,
            project,
            build_reqs,
        } = wanted;
        let _pip = self.pip_lock.lock().await;
        let meta = self.wheelhouse.join(".mend");
        std::fs::create_dir_all(&meta)
            .map_err(SwebenchError::io(format!("creating {}", meta.display())))?;
        let record = meta.join(format!("resolved-{key}.json"));
        if let Ok(text) = std::fs::read_to_string(&record)
            && let Ok(r) = serde_json::from_str::<Resolution>(&text)
            && r.files.iter().all(|f| self.wheelhouse.join(f).exists())
        {
            return Ok(r);
        }
        if requirements.is_empty() && project.is_none() {
            return Ok(Resolution::default());
        }
        if !self.download {
            return Err(SwebenchError::Invalid(format!(
                "the wheelhouse {} has no resolution {key} and downloading is off",
                self.wheelhouse.display()
            )));
        }
        if let Some(cutoff) = &self.pypi_cutoff {
            let help = self
                .pip(python, &["download", "--help"])
                .await
                .unwrap_or_default();
            if !help.contains(UPLOADED_PRIOR_TO) {
                return Err(SwebenchError::Invalid(format!(
                    "--pypi-cutoff {cutoff} needs pip 26.0 or newer in the host's {python} (its pip has no {UPLOADED_PRIOR_TO}): run `{python} -m pip install 'pip>=26'`, or leave the cutoff out"
                )));
            }
        }
        let mut res = Resolution::default();
        if let Some(cutoff) = &self.pypi_cutoff {
            res.notes
                .push(format!("packages resolved as PyPI stood before {cutoff}"));
        }
        let stage =
            tempfile::tempdir().map_err(SwebenchError::io("creating a download directory"))?;
        let dl = stage.path().join("dl");
        // The environment's requirements as one set first. The spec installs its requirements
        // file and then `pip_packages` as two steps, the second overriding pins of the first;
        // when the set as a whole conflicts, the file's pins that `pip_packages` names again
        // give way to those, which is what the two installs leave.
        let mut kept: Vec<String> = requirements.to_vec();
        let split = requirements.len().saturating_sub(pip_group);
        let write_reqs = |lines: &[String], name: &str| -> Result<Vec<String>, SwebenchError> {
            let f = stage.path().join(name);
            std::fs::write(&f, lines.join("\n") + "\n")
                .map_err(SwebenchError::io("writing requirements"))?;
            Ok(vec!["-r".into(), f.display().to_string()])
        };
        progress(&format!(
            "pip download ({} requirements{})",
            kept.len(),
            if project.is_some() {
                " + the project"
            } else {
                ""
            }
        ));
        if !kept.is_empty()
            && self
                .pip_download(python, &dl, &write_reqs(&kept, "requirements.txt")?)
                .await
                .is_err()
        {
            let merged = override_pins(&requirements[..split], &requirements[split..]);
            let mut all_ok = false;
            let mut errors = Vec::new();
            if split < requirements.len() {
                match self
                    .pip_download(python, &dl, &write_reqs(&merged, "merged.txt")?)
                    .await
                {
                    Ok(()) => all_ok = true,
                    Err(e) => errors.push(last_line(&e)),
                }
            }
            if all_ok {
                // One consistent set the image installs in one go.
                res.notes.push("pip_packages override the requirements file's pins of the same packages (the spec installs them second)".into());
                kept = merged;
            } else {
                progress("pip download of the requirement set failed; resolving line by line");
                res.notes.push(format!(
                    "the requirement set did not resolve for this Python: {}",
                    errors.join("; ")
                ));
                // Keep the lines that resolve on their own; report the others.
                let mut ok = Vec::new();
                for line in &kept {
                    let scratch = stage.path().join("one");
                    match self
                        .pip_download(python, &scratch, std::slice::from_ref(line))
                        .await
                    {
                        Ok(()) => ok.push(line.clone()),
                        Err(e) => res.notes.push(format!(
                            "requirement dropped (does not resolve for this Python): {line}: {}",
                            last_line(&e)
                        )),
                    }
                    let _ = std::fs::remove_dir_all(&scratch);
                }
                kept = ok;
                let _ = std::fs::remove_dir_all(&dl);
                let kept_split = kept
                    .iter()
                    .filter(|l| requirements[..split].contains(l))
                    .count();
                for (i, g) in [&kept[..kept_split], &kept[kept_split..]]
                    .into_iter()
                    .enumerate()
                    .filter(|(_, g)| !g.is_empty())
                {
                    self.pip_download(python, &dl, &write_reqs(g, &format!("kept{i}.txt"))?)
                        .await
                        .map_err(|e| {
                            SwebenchError::Invalid(format!("pip download: {}", last_line(&e)))
                        })?;
                }
            }
        }
        // The project on its own: the spec installs it after the environment, and pip may
        // then move a pinned package (e.g. Jinja2) to what the project asks for.
        if let Some((src, extras)) = project
            && let Err(e) = self
                .pip_download(python, &dl, &[format!("{}{extras}", src.display())])
                .await
        {
            res.notes.push(format!(
                "the project's own dependencies did not resolve: {}",
                last_line(&e)
            ));
        }
        if !build_reqs.is_empty()
            && let Err(e) = self.pip_download(python, &dl, build_reqs).await
        {
            res.notes.push(format!(
                "build requirements {build_reqs:?} did not resolve: {}",
                last_line(&e)
            ));
        }
        // A current pip for the image's Python, installed before anything else: a venv's own
        // pip can predate PEP 660 (bullseye's 20.3 falls back to `setup.py develop`, which
        // current setuptools refuses); the official conda environments come with a current pip.
        // And `wheel`, which a conda environment has and a venv lacks (`pip install
        // --no-use-pep517`, as scikit-learn's specs ask, refuses to run without it).
        for tool in ["pip", "wheel"] {
            if let Err(e) = self.pip_download(python, &dl, &[tool.into()]).await {
                res.notes.push(format!(
                    "no current {tool} for this Python (the venv's own is used, if any): {}",
                    last_line(&e)
                ));
            }
        }
        // Wheels go to the wheelhouse as they are; sdists become wheels on the host with the
        // image's Python minor (an older Debian suite in the image than on the host may lack
        // a newer glibc a compiled one asks for: such a package fails at install or import).
        let mut files: Vec<String> = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dl)
            .map_err(SwebenchError::io("listing downloads"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if name.ends_with(".whl") {
                let dest = self.wheelhouse.join(&name);
                if !dest.exists() {
                    std::fs::copy(&path, &dest).map_err(SwebenchError::io(format!(
                        "copying {name} to the wheelhouse"
                    )))?;
                }
                files.push(name);
                continue;
            }
            progress(&format!("building a wheel from {name}"));
            let wheel_dir = stage.path().join(format!("wheel-{name}"));
            let (wheel_dir_s, path_s) =
                (wheel_dir.display().to_string(), path.display().to_string());
            let args = ["wheel", "--no-deps", "-w", &wheel_dir_s, &path_s];
            let mut built = self.pip(python, &args).await;
            if built.is_err() {
                // A setup.py-only sdist is built by `setup.py bdist_wheel`, which needs the
                // `wheel` package in the host interpreter (pyenv's lack it); PEP 517 builds it
                // in an isolated environment with its own setuptools and wheel instead.
                built = self
                    .pip(python, &[&args[..], &["--use-pep517"]].concat())
                    .await;
            }
            match built {
                Ok(_) => {
                    for w in std::fs::read_dir(&wheel_dir)
                        .map_err(SwebenchError::io("listing built wheels"))?
                        .filter_map(|e| e.ok())
                    {
                        let wname = w.file_name().to_string_lossy().into_owned();
                        std::fs::copy(w.path(), self.wheelhouse.join(&wname))
                            .map_err(SwebenchError::io(format!("copying {wname}")))?;
                        files.push(wname);
                    }
                }
                Err(e) => res.notes.push(format!(
                    "{name}: no wheel for this Python and the sdist did not build: {}",
                    last_line(&e)
                )),
            }
        }
        files.sort();
        files.dedup();
        res.files = files;
        res.requirements = kept;
        let json = serde_json::to_string_pretty(&res)
            .map_err(|e| SwebenchError::Invalid(e.to_string()))?;
        std::fs::write(&record, json)
            .map_err(SwebenchError::io(format!("writing {}", record.display())))?;
        Ok(res)
    }

    async fn pip_download(&self, python: &str, dest: &Path, args: &[String]) -> Result<(), String> {
        let mut all: Vec<String> = vec![
            "download".into(),
            "-d".into(),
            dest.display().to_string(),
            "--find-links".into(),
            self.wheelhouse.display().to_string(),
        ];
        all.extend(args.iter().cloned());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.pip(python, &refs).await.map(|_| ())
    }

    async fn pip(&self, python: &str, args: &[&str]) -> Result<String, String> {
        // `--progress-bar` belongs to the subcommand (download, wheel), so it goes after it.
        let (sub, rest) = args.split_first().ok_or("no pip subcommand")?;
        let out = tokio::process::Command::new(python)
            .args([
                "-m",
                "pip",
                "--disable-pip-version-check",
                sub,
                "--progress-bar",
                "off",
            ])
            .args(rest)
            .args(cutoff_args(sub, self.pypi_cutoff.as_deref()))
            .env_remove("PIP_FIND_LINKS")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("running {python} -m pip: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Where this source's image for `instance` differs from the official environment.
    pub fn notes_for(&self, instance_id: &str) -> Option<EnvironmentNotes> {
        self.notes.lock().ok()?.get(instance_id).cloned()
    }

    fn set_notes(&self, instance_id: &str, notes: EnvironmentNotes) {
        if let Ok(mut m) = self.notes.lock() {
            m.insert(instance_id.to_string(), notes);
        }
    }

    /// Build (or find) the image; see [`ImageSource::image_for`].
    async fn ensure(
        &self,
        engine: &DockerEngine,
        instance: &Instance,
        progress: ImageProgress<'_>,
    ) -> Result<String, SwebenchError> {
        let err = |m: String| SwebenchError::Image {
            instance_id: instance.instance_id.clone(),
            message: m,
        };
        let repo_spec = self
            .specs
            .repo(&instance.repo)
            .ok_or_else(|| err(format!("no spec for repository {}", instance.repo)))?;
        let spec = self.specs.get(&instance.repo, &instance.version)?;
        let mirror = self.mirrors.find(&instance.repo)?;
        if git_out(
            &mirror,
            &[
                "cat-file",
                "-e",
                &format!("{}^{{commit}}", instance.base_commit),
            ],
        )?
        .is_none()
        {
            return Err(err(format!(
                "the mirror {} does not have commit {}",
                mirror.display(),
                instance.base_commit
            )));
        }
        let base = self.base(engine, spec.python.as_deref(), progress).await?;
        let (ma, mi, full) = nearest_python(spec.python.as_deref(), &base.pythons)
            .cloned()
            .ok_or_else(|| err("no Python in the base image".into()))?;
        let python = format!("{ma}.{mi}");
        let mut notes = EnvironmentNotes {
            python: Some(full.clone()),
            official_python: spec.python.clone(),
            suite: base.suite.clone(),
            notes: Vec::new(),
        };
        if spec.python.as_deref().and_then(major_minor) != Some((ma, mi)) {
            notes.notes.push(format!(
                "Python {full}{} instead of the official {}",
                base.suite
                    .as_deref()
                    .map(|s| format!(" (Debian {s})"))
                    .unwrap_or_default(),
                spec.python.as_deref().unwrap_or("(unspecified)")
            ));
        }

        let requirements = environment_requirements(&mirror, instance, repo_spec, spec)?;
        let pre_install = offline_pre_install(&spec.pre_install, &mut notes.notes);
        let install = spec.install.clone().unwrap_or_default();
        let setup_repo = fill(
            SETUP_REPO,
            &[
                ("base_commit", &instance.base_commit),
                ("pre_install", &pre_install.join("\n")),
                ("install", &install),
            ],
        );
        let compat = unittest_compat(spec.python.as_deref(), (ma, mi));
        if !compat.is_empty() {
            notes.notes.push("unittest describes tests as Python 3.6 does (no description from a docstring whose first line is blank), as the official test names were printed".into());
        }
        let setup_env = fill(
            SETUP_ENV,
            &[
                ("python_bin", &format!("python{python}")),
                ("compat", &compat),
            ],
        );
        let extras = spec.install.as_deref().and_then(project_extras);
        let build_reqs = if extras.is_some() {
            let at = |p: &str| file_at(&mirror, &instance.base_commit, p);
            let (pyproject, setup_cfg, setup_py) =
                (at("pyproject.toml")?, at("setup.cfg")?, at("setup.py")?);
            let cython_sources = git_out(
                &mirror,
                &["ls-tree", "-r", "--name-only", &instance.base_commit],
            )?
            .is_some_and(|files| files.lines().any(|f| f.ends_with(".pyx")));
            build_requirements(BuildFiles {
                pyproject: pyproject.as_deref(),
                setup_cfg: setup_cfg.as_deref(),
                setup_py: setup_py.as_deref(),
                cython_sources,
            })
        } else {
            Vec::new()
        };

        // The tag: a hash of everything the image is made of.
        let mut h = Sha256::new();
        for part in [
            RECIPE_VERSION,
            &base.tag,
            DOCKERFILE,
            ACTIVATE,
            &setup_env,
            &setup_repo,
            &requirements.join("\n"),
            &build_reqs.join("\n"),
            &instance.instance_id,
            &python,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let hash = hex(&h.finalize())[..16].to_string();
        let tag = format!(
            "{}.{}:{hash}",
            self.repository,
            instance.instance_id.to_lowercase()
        );
        let _held = self.building.lock(&tag).await;
        let ctx = self
            .build_dir
            .join(format!("{}-{hash}", instance.instance_id));
        if engine.image_exists(&tag).await? {
            if let Ok(text) = std::fs::read_to_string(ctx.join("notes.json"))
                && let Ok(n) = serde_json::from_str::<EnvironmentNotes>(&text)
            {
                notes = n;
            }
            self.set_notes(&instance.instance_id, notes);
            return Ok(tag);
        }
        progress(&format!(
            "building {tag} offline (Python {full}, {} requirements)",
            requirements.len()
        ));
        if ctx.exists() {
            std::fs::remove_dir_all(&ctx)
                .map_err(SwebenchError::io(format!("clearing {}", ctx.display())))?;
        }
        std::fs::create_dir_all(ctx.join("wheels"))
            .map_err(SwebenchError::io(format!("creating {}", ctx.display())))?;

        let started = std::time::Instant::now();
        let mut timings: Vec<(&str, f64)> = Vec::new();
        let mut lap = {
            let mut last = started;
            move |phase: &'static str, timings: &mut Vec<(&str, f64)>| {
                let now = std::time::Instant::now();
                timings.push((phase, (now - last).as_secs_f64()));
                last = now;
            }
        };
        // The repository, history up to the base commit only (later commits never enter the image).
        progress(&format!(
            "exporting {} at {} from {}",
            instance.repo,
            &instance.base_commit,
            mirror.display()
        ));
        export_history(&mirror, &instance.base_commit, &ctx.join("repo.git"))
            .await
            .map_err(err)?;
        notes.notes.extend(
            export_submodules(
                &self.mirrors,
                &mirror,
                &instance.base_commit,
                &ctx.join("repo.git"),
            )
            .await?,
        );
        lap("export_history", &mut timings);

        // Host side: resolve and download the wheels.
        let src =
            tempfile::tempdir().map_err(SwebenchError::io("creating a checkout directory"))?;
        let project = match &extras {
            Some(x) => {
                checkout(&ctx.join("repo.git"), &instance.base_commit, src.path())
                    .await
                    .map_err(err)?;
                run_host_edits(&pre_install, src.path());
                Some((src.path(), x.as_str()))
            }
            None => None,
        };
        // pip on the host must be the image's Python (only asked for when there is
        // something to resolve).
        let host_python = if requirements.is_empty() && project.is_none() {
            self.host_python.clone()
        } else {
            self.host_python_for(ma, mi)?
        };
        let mut rh = Sha256::new();
        for part in [
            // A cutoff is part of the key only when set: keys without one stay as they were.
            match &self.pypi_cutoff {
                Some(c) => format!("{RESOLVER_VERSION}\0pypi-cutoff {c}"),
                None => RESOLVER_VERSION.to_string(),
            },
            requirements.join("\n"),
            build_reqs.join("\n"),
            python.clone(),
            match &extras {
                Some(x) => project_key(
                    &|p| file_at(&mirror, &instance.base_commit, p).ok().flatten(),
                    x,
                    &pre_install,
                ),
                None => String::new(),
            },
        ] {
            rh.update(part.as_bytes());
            rh.update([0]);
        }
        let rkey = hex(&rh.finalize())[..16].to_string();
        let resolution = self
            .resolve(
                &rkey,
                Wanted {
                    requirements: &requirements,
                    pip_group: spec.pip_packages.len(),
                    project,
                    build_reqs: &build_reqs,
                },
                &host_python,
                progress,
            )
            .await?;
        lap("resolve_wheels", &mut timings);
        notes.notes.extend(resolution.notes.iter().cloned());
        for f in &resolution.files {
            let (from, to) = (self.wheelhouse.join(f), ctx.join("wheels").join(f));
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(SwebenchError::io(format!(
                    "copying {f} into the build context"
                )))?;
            }
        }
        let official_python = spec.python.clone().unwrap_or_default();
        let dockerfile = fill(
            DOCKERFILE,
            &[
                ("base_image", &base.tag),
                ("instance_id", &instance.instance_id),
                ("python", &full),
                ("official_python", &official_python),
                ("suite", base.suite.as_deref().unwrap_or("")),
            ],
        );
        let files: [(&str, &str); 5] = [
            ("Dockerfile", &dockerfile),
            ("activate.sh", ACTIVATE),
            ("setup_env.sh", &setup_env),
            ("setup_repo.sh", &setup_repo),
            (
                "requirements.txt",
                &(resolution.requirements.join("\n") + "\n"),
            ),
        ];
        for (name, body) in files {
            std::fs::write(ctx.join(name), body)
                .map_err(SwebenchError::io(format!("writing {name}")))?;
        }
        let notes_json = serde_json::to_string_pretty(&notes)
            .map_err(|e| SwebenchError::Invalid(e.to_string()))?;
        std::fs::write(ctx.join("notes.json"), notes_json)
            .map_err(SwebenchError::io("writing notes.json"))?;
        drop(src);
        lap("write_context", &mut timings);
        docker_build(&tag, &ctx, &["--network", "none"], progress)
            .await
            .map_err(err)?;
        lap("docker_build", &mut timings);
        // Where a build's time goes, kept beside the recipe (bench runs compare them).
        let total = started.elapsed().as_secs_f64();
        let summary: Vec<String> = timings
            .iter()
            .map(|(p, s)| format!("{p} {s:.1}s"))
            .collect();
        progress(&format!(
            "built {tag} in {total:.1}s ({})",
            summary.join(", ")
        ));
        let mut t: serde_json::Map<String, serde_json::Value> = timings
            .iter()
            .map(|(p, s)| (p.to_string(), serde_json::json!((s * 10.0).round() / 10.0)))
            .collect();
        t.insert(
            "total".into(),
            serde_json::json!((total * 10.0).round() / 10.0),
        );
        let _ = std::fs::write(
            ctx.join("timings.json"),
            serde_json::Value::Object(t).to_string(),
        );
        // The image has them now; the recipe and notes stay for inspection.
        let _ = std::fs::remove_dir_all(ctx.join("repo.git"));
        let _ = std::fs::remove_dir_all(ctx.join("wheels"));
        self.set_notes(&instance.instance_id, notes);
        Ok(tag)
    }
}

/// What the project's own dependencies depend on: its extras, the files that declare them at
/// the base commit and the pre-install edits to them. Instances of a repository whose files
/// agree share one resolution (the base commit itself is not in it: a resolution per commit
/// cost a minute or two of pip per image for the same set of wheels).
fn project_key(
    read: &dyn Fn(&str) -> Option<String>,
    extras: &str,
    pre_install: &[String],
) -> String {
    let mut parts = vec![extras.to_string()];
    for f in PROJECT_FILES {
        parts.push(format!("{f}\n{}", read(f).unwrap_or_default()));
    }
    parts.extend(pre_install.iter().cloned());
    parts.join("\0")
}

/// The files where a Python project declares its dependencies (setup.py may read the
/// requirements files).
const PROJECT_FILES: [&str; 6] = [
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "requirements.txt",
    "requirements/base.txt",
    "tox.ini",
];

/// Whether a pre-install step only edits files: `sed -i ...`, possibly guarded by
/// `grep -q ...` through `&&` / `||` (sphinx 4.x pins its sphinxcontrib packages so).
fn edits_files_only(command: &str) -> bool {
    // Split on `&&` / `||` outside quotes; any other control character outside quotes
    // (`;`, a pipe, a redirection, a substitution) makes it more than an edit.
    let mut parts = vec![String::new()];
    let mut quote: Option<char> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '$' | '`') => return false,
            (Some(_), c) => parts.last_mut().unwrap().push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '&' | '|') if chars.peek() == Some(&c) => {
                chars.next();
                parts.push(String::new());
            }
            (None, ';' | '&' | '|' | '<' | '>' | '`' | '$' | '\n' | '(' | ')') => return false,
            (None, c) => parts.last_mut().unwrap().push(c),
        }
    }
    quote.is_none()
        && parts.iter().any(|p| p.trim_start().starts_with("sed -i "))
        && parts.iter().all(|p| {
            let p = p.trim_start();
            p.starts_with("sed -i ") || p.starts_with("grep -q ")
        })
}

/// The pre-install steps that only edit files (`sed -i ...`) change what the project
/// declares (e.g. pins in setup.py), so the host-side resolution must see them too.
fn run_host_edits(pre_install: &[String], dir: &Path) {
    for c in pre_install.iter().filter(|c| edits_files_only(c)) {
        let _ = std::process::Command::new("bash")
            .args(["-c", c])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output();
    }
}

/// A bare repository at `dest` holding `commit` and its history as branch `main`, and the
/// tags it already contains; nothing newer.
pub async fn export_history(mirror: &Path, commit: &str, dest: &Path) -> Result<(), String> {
    let d = dest.display().to_string();
    git_async(&["init", "-q", "--bare", "--initial-branch=main", &d]).await?;
    let src = mirror
        .canonicalize()
        .map_err(|e| format!("{}: {e}", mirror.display()))?;
    let src = src.display().to_string();
    fetch_into(&d, &src, &[&format!("{commit}:refs/heads/main")]).await?;
    // Tags the base commit already contains, as the official images keep them (versions
    // computed by setuptools_scm and the like depend on them); later tags stay out.
    let tags = git_async(&["-C", &src, "tag", "--merged", commit]).await?;
    let refspecs: Vec<String> = tags
        .lines()
        .filter(|t| !t.is_empty())
        .map(|t| format!("refs/tags/{t}:refs/tags/{t}"))
        .collect();
    for chunk in refspecs.chunks(500) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        fetch_into(&d, &src, &chunk).await?;
    }
    // No `git gc`: the fetch already wrote one pack with the mirror's deltas reused, and a
    // repack of the whole history cost minutes per image under load.
    // Files readable and writable by all as the image's `chmod -R 777 /testbed` leaves them,
    // set here so that chmod finds nothing to change in .git: a mode change inside the
    // image would copy the whole pack into a second layer.
    make_world_writable(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(())
}

/// A submodule of the base commit: its name and path in `.gitmodules`, the repository its URL
/// names (`owner/name`, its last two path segments) and the commit the base tree pins.
#[derive(Debug, Clone, PartialEq)]
pub struct Submodule {
    pub name: String,
    pub path: String,
    pub repo: String,
    pub commit: String,
}

/// The submodules pinned at `commit` of a mirror (none without a `.gitmodules`).
pub fn submodules_at(mirror: &Path, commit: &str) -> Result<Vec<Submodule>, SwebenchError> {
    let Some(config) = git_out(
        mirror,
        &[
            "config",
            "--blob",
            &format!("{commit}:.gitmodules"),
            "--get-regexp",
            r"^submodule\..*\.(path|url)$",
        ],
    )?
    else {
        return Ok(Vec::new());
    };
    // `submodule.NAME.path VALUE` / `submodule.NAME.url VALUE`, NAME possibly with dots.
    let mut paths: Vec<(String, String)> = Vec::new();
    let mut urls: HashMap<String, String> = HashMap::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let Some(rest) = key.strip_prefix("submodule.") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix(".path") {
            paths.push((name.to_string(), value.to_string()));
        } else if let Some(name) = rest.strip_suffix(".url") {
            urls.insert(name.to_string(), value.to_string());
        }
    }
    let mut out = Vec::new();
    for (name, path) in paths {
        let Some(repo) = urls.get(&name).and_then(|u| repo_of_url(u)) else {
            continue;
        };
        let Some(tree) = git_out(mirror, &["ls-tree", commit, "--", &path])? else {
            continue;
        };
        // `160000 commit SHA\tPATH`: a gitlink; anything else is not a pinned submodule.
        let mut fields = tree.split_whitespace();
        if fields.next() == Some("160000")
            && fields.next() == Some("commit")
            && let Some(sha) = fields.next()
        {
            out.push(Submodule {
                name,
                path,
                repo,
                commit: sha.to_string(),
            });
        }
    }
    Ok(out)
}

/// `owner/name` from a clone URL's last two path segments (`https://github.com/a/b.git`,
/// `git@github.com:a/b`); `None` for a URL with fewer (a relative `../b.git`).
fn repo_of_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let mut segments = path.rsplit('/').filter(|s| !s.is_empty() && *s != "..");
    let name = segments.next()?;
    let owner = segments.next()?;
    Some(format!("{owner}/{name}"))
}

/// Each submodule's history up to its pinned commit, from the mirror of its repository, as
/// `dest/modules/NAME`: where `git submodule update --init` finds a submodule's git dir and
/// reuses it instead of cloning, so a build step that initializes one (astropy's
/// `ah_bootstrap`) works offline. What cannot be exported is returned as notes.
pub async fn export_submodules(
    mirrors: &MirrorDir,
    mirror: &Path,
    commit: &str,
    dest: &Path,
) -> Result<Vec<String>, SwebenchError> {
    let mut notes = Vec::new();
    for sub in submodules_at(mirror, commit)? {
        let missing = |why: String| {
            format!(
                "submodule {} ({} at {}) is not in the image: {why}",
                sub.path,
                sub.repo,
                &sub.commit[..sub.commit.len().min(12)]
            )
        };
        let sub_mirror = match mirrors.find(&sub.repo) {
            Ok(m) => m,
            Err(e) => {
                notes.push(missing(e.to_string()));
                continue;
            }
        };
        let git_dir = dest.join("modules").join(&sub.name);
        match export_history(&sub_mirror, &sub.commit, &git_dir).await {
            Ok(()) => {
                // A submodule's git dir is not bare: `submodule update` gives it a work tree.
                git_async(&[
                    "--git-dir",
                    &git_dir.display().to_string(),
                    "config",
                    "core.bare",
                    "false",
                ])
                .await
                .map_err(|e| SwebenchError::Invalid(missing(e)))?;
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&git_dir);
                notes.push(missing(e));
            }
        }
    }
    Ok(notes)
}

/// `chmod -R 777` on a directory tree (symlinks left alone, as chmod -R does).
fn make_world_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_symlink() {
            continue;
        }
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o777))?;
        if ft.is_dir() {
            make_world_writable(&entry.path())?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

/// Fetch `refspecs` from the repository `src` into the bare repository `dest`, tags only
/// as named; packs kept as fetched (no unpacking of small fetches into loose objects).
async fn fetch_into(dest: &str, src: &str, refspecs: &[&str]) -> Result<(), String> {
    let mut args = vec![
        "-c",
        "fetch.unpackLimit=1",
        "--git-dir",
        dest,
        "fetch",
        "-q",
        "--no-tags",
        src,
    ];
    args.extend_from_slice(refspecs);
    let Err(e) = git_async(&args).await else {
        return Ok(());
    };
    // A mirror that leaves out some objects (fetched copies without their large files) fails
    // with "unable to read <id>": name the file, first, so a shortened message still says it.
    let Some(missing) = e
        .split("unable to read ")
        .nth(1)
        .map(|r| {
            r.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .filter(|id| id.len() == 40)
    else {
        return Err(e);
    };
    for commit in refspecs.iter().map(|r| r.split(':').next().unwrap_or(r)) {
        let tree = git_async(&["--git-dir", src, "ls-tree", "-r", commit])
            .await
            .unwrap_or_default();
        if let Some(path) = tree
            .lines()
            .find(|l| l.contains(&missing))
            .and_then(|l| l.split('\t').nth(1))
        {
            return Err(format!(
                "the mirror {src} lacks {path} (object {missing}) at {commit}, so that commit cannot be exported whole (a partial mirror, e.g. one without its large files); {e}"
            ));
        }
    }
    Err(format!(
        "the mirror {src} lacks object {missing}, so the commit cannot be exported whole (a partial mirror); {e}"
    ))
}

/// A checkout of `commit` at `dest`: a real clone sharing the objects, so version tools
/// (setuptools_scm) see the history and tags while the host resolves dependencies.
async fn checkout(git_dir: &Path, commit: &str, dest: &Path) -> Result<(), String> {
    let (g, d) = (git_dir.display().to_string(), dest.display().to_string());
    git_async(&["clone", "-q", "--shared", "--no-checkout", &g, &d]).await?;
    git_async(&["-C", &d, "checkout", "-q", commit]).await?;
    // The exported submodules too, where a build step that initializes one finds them as it
    // does in the image (a copy: initializing one writes to its git dir).
    let modules = git_dir.join("modules");
    if modules.is_dir() {
        let out = tokio::process::Command::new("cp")
            .arg("-r")
            .arg(&modules)
            .arg(dest.join(".git/modules"))
            .output()
            .await
            .map_err(|e| format!("copying {}: {e}", modules.display()))?;
        if !out.status.success() {
            return Err(format!(
                "copying {}: {}",
                modules.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

async fn git_async(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The `pythonX.Y` interpreters in an image, with their full versions.
async fn probe_pythons(
    engine: &DockerEngine,
    image: &str,
) -> Result<Vec<(u32, u32, String)>, SwebenchError> {
    let mut cfg = DockerConfig::new(image);
    cfg.user = UserChoice::Root;
    cfg.command_runner = false;
    cfg.root = "/tmp".into();
    let sb = DockerSandbox::start(engine, cfg).await?;
    let script = r#"for p in /usr/bin/python3.[0-9] /usr/bin/python3.[0-9][0-9] /usr/local/bin/python3.[0-9] /usr/local/bin/python3.[0-9][0-9]; do [ -x "$p" ] && "$p" -c 'import platform; print(platform.python_version())'; done; true"#;
    let out = sb
        .exec(&Exec::shell(script).timeout(Duration::from_secs(60)))
        .await?;
    sb.close().await?;
    let mut v: Vec<(u32, u32, String)> = out
        .stdout
        .text()
        .lines()
        .filter_map(|l| {
            let (ma, mi) = major_minor(l)?;
            Some((ma, mi, l.trim().to_string()))
        })
        .collect();
    v.sort();
    v.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    Ok(v)
}

const UPLOADED_PRIOR_TO: &str = "--uploaded-prior-to";

/// pip's option for a PyPI cutoff, for the subcommands that reach the index (sdist builds
/// under PEP 517 fetch their build requirements too).
fn cutoff_args(sub: &str, cutoff: Option<&str>) -> Vec<String> {
    match cutoff {
        Some(c) if matches!(sub, "download" | "wheel") => {
            vec![UPLOADED_PRIOR_TO.to_string(), c.to_string()]
        }
        _ => Vec::new(),
    }
}

/// A `--pypi-cutoff` as pip takes it: `YYYY-MM-DD`, optionally with an ISO 8601 time.
pub fn check_pypi_cutoff(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let date_ok = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && (b.len() == 10 || b[10] == b'T');
    if date_ok {
        Ok(())
    } else {
        Err(format!(
            "--pypi-cutoff {s:?} is not a date: give YYYY-MM-DD (or an ISO 8601 time such as 2024-08-13T00:00:00Z)"
        ))
    }
}

/// The line of pip's output that says what went wrong (its last `ERROR:` line, else the last line).
fn last_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l.trim_start().starts_with("ERROR:"))
        .or(lines.last())
        .copied()
        .unwrap_or("");
    line.trim().chars().take(300).collect()
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_string(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait::async_trait]
impl ImageSource for OfflineImages {
    fn kind(&self) -> &'static str {
        "build-offline"
    }

    async fn image_for(
        &self,
        engine: &DockerEngine,
        instance: &Instance,
        progress: ImageProgress<'_>,
    ) -> Result<String, SwebenchError> {
        self.ensure(engine, instance, progress).await
    }

    fn environment(&self, instance: &Instance) -> Option<EnvironmentNotes> {
        self.notes_for(&instance.instance_id)
    }
}

/// Requirements per instance as the offline builder would install them (for `--dry-run`
/// style listings and tests).
pub fn requirements_table(
    specs: &Specs,
    mirrors: &MirrorDir,
    instances: &[Instance],
) -> BTreeMap<String, Result<Vec<String>, String>> {
    instances
        .iter()
        .map(|i| {
            let r = (|| {
                let repo = specs
                    .repo(&i.repo)
                    .ok_or_else(|| format!("no spec for {}", i.repo))?;
                let spec = specs.get(&i.repo, &i.version).map_err(|e| e.to_string())?;
                let mirror = mirrors.find(&i.repo).map_err(|e| e.to_string())?;
                environment_requirements(&mirror, i, repo, spec).map_err(|e| e.to_string())
            })();
            (i.instance_id.clone(), r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pypi_cutoff_reaches_only_the_pip_commands_that_ask_the_index() {
        assert_eq!(
            cutoff_args("download", Some("2024-08-13")),
            vec!["--uploaded-prior-to", "2024-08-13"]
        );
        assert_eq!(
            cutoff_args("wheel", Some("2024-08-13")),
            vec!["--uploaded-prior-to", "2024-08-13"]
        );
        assert!(cutoff_args("download", None).is_empty());
        assert!(cutoff_args("install", Some("2024-08-13")).is_empty());
        for ok in ["2024-08-13", "2024-08-13T00:00:00Z"] {
            assert!(check_pypi_cutoff(ok).is_ok(), "{ok}");
        }
        for bad in ["2024-8-13", "yesterday", "", "2024-08-13 00:00"] {
            let e = check_pypi_cutoff(bad).unwrap_err();
            assert!(e.contains("YYYY-MM-DD"), "{e}");
        }
    }

    #[test]
    fn nearest_python_prefers_exact_then_closest_then_newer() {
        let av = vec![(3, 9, "3.9.2".to_string()), (3, 11, "3.11.2".to_string())];
        assert_eq!(nearest_python(Some("3.11"), &av).unwrap().2, "3.11.2");
        assert_eq!(nearest_python(Some("3.6"), &av).unwrap().2, "3.9.2");
        assert_eq!(nearest_python(Some("3.10"), &av).unwrap().2, "3.11.2");
        assert_eq!(nearest_python(None, &av).unwrap().2, "3.11.2");
        assert!(nearest_python(Some("3.9"), &[]).is_none());
    }

    #[test]
    fn only_a_python_3_6_spec_on_a_newer_python_gets_the_unittest_shim() {
        assert!(unittest_compat(Some("3.6"), (3, 9)).contains("mend_unittest_py36.pth"));
        assert!(unittest_compat(Some("3.5"), (3, 11)).contains("shortDescription"));
        assert_eq!(unittest_compat(Some("3.7"), (3, 9)), "");
        assert_eq!(unittest_compat(Some("3.6"), (3, 6)), "");
        assert_eq!(unittest_compat(None, (3, 9)), "");
    }

    #[test]
    fn requirement_comments_are_cut_as_pip_cuts_them() {
        assert_eq!(
            strip_comment("astroid==2.6.0  # Pinned to a specific version for tests"),
            "astroid==2.6.0  "
        );
        assert_eq!(strip_comment("# a whole-line comment"), "");
        // A `#` inside a URL fragment is not a comment.
        assert_eq!(
            strip_comment("pkg @ https://example.com/p.zip#sha256=ab"),
            "pkg @ https://example.com/p.zip#sha256=ab"
        );
    }

    #[test]
    fn the_suite_follows_the_spec_python() {
        // bullseye's 3.9 for specs up to 3.10, bookworm's 3.11 above and when unspecified.
        for (spec, suite) in [
            (Some("3.5"), "bullseye"),
            (Some("3.6"), "bullseye"),
            (Some("3.9"), "bullseye"),
            (Some("3.10"), "bullseye"),
            (Some("3.11"), "bookworm"),
            (Some("3.12"), "bookworm"),
            (None, "bookworm"),
            (Some("not a version"), "bookworm"),
        ] {
            assert_eq!(debian_suite_for(spec), suite, "{spec:?}");
        }
    }

    /// `git` in `dir` with a fixed identity; panics with git's message on failure.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[tokio::test]
    async fn a_mirror_missing_a_file_is_named_with_the_file() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q"]);
        std::fs::write(src.join("small.py"), "x = 1\n").unwrap();
        std::fs::write(src.join("big.dat"), "a large data file\n").unwrap();
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "c"]);
        let commit = git(&src, &["rev-parse", "HEAD"]);
        // The blob goes missing, as in a copy made without its large files.
        let blob = git(&src, &["rev-parse", "HEAD:big.dat"]);
        std::fs::remove_file(src.join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();
        let dest = d.path().join("dest.git");
        git(d.path(), &["init", "-q", "--bare", dest.to_str().unwrap()]);
        let src_git = src.join(".git").display().to_string();
        let refspec = format!("{commit}:refs/heads/main");
        let e = fetch_into(&dest.display().to_string(), &src_git, &[&refspec])
            .await
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the mirror {src_git} lacks big.dat (object {blob}) at {commit}"
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn exported_history_stops_at_the_base_commit() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q"]);
        let mut commits = Vec::new();
        for (i, tag) in [(1, Some("v1")), (2, None), (3, Some("v3"))] {
            std::fs::write(src.join("f.py"), format!("x = {i}\n")).unwrap();
            git(&src, &["add", "-A"]);
            git(&src, &["commit", "-q", "-m", &format!("c{i}")]);
            if let Some(t) = tag {
                git(&src, &["tag", "-a", t, "-m", t]);
            }
            commits.push(git(&src, &["rev-parse", "HEAD"]));
        }
        let dest = d.path().join("repo.git");
        export_history(&src, &commits[1], &dest).await.unwrap();
        // The base commit and its history, the tag it contains; not the later commit or tag.
        assert_eq!(git(&dest, &["rev-parse", "main"]), commits[1]);
        assert_eq!(git(&dest, &["rev-list", "--count", "main"]), "2");
        assert_eq!(git(&dest, &["tag"]), "v1");
        let later = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&dest)
            .args(["cat-file", "-e", &commits[2]])
            .status()
            .unwrap();
        assert!(!later.success(), "the later commit leaked into the export");
        // Already 777 everywhere, so the image's chmod -R 777 changes nothing in .git.
        let packs: Vec<_> = std::fs::read_dir(dest.join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!packs.is_empty());
        for p in packs
            .iter()
            .chain([&dest.join("HEAD"), &dest.join("objects")])
        {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o777, "{}", p.display());
        }
    }

    /// A pinned submodule is exported from its own mirror up to the pinned commit, where
    /// `git submodule update --init` finds and reuses it with every transport forbidden;
    /// one without a mirror is named in a note and the build goes on.
    #[tokio::test]
    async fn submodules_come_from_their_mirrors_at_the_pinned_commit() {
        let d = tempfile::tempdir().unwrap();
        let mirrors = d.path().join("mirrors");
        let (helpers, proj) = (mirrors.join("acme__helpers"), mirrors.join("acme__proj"));
        std::fs::create_dir_all(&helpers).unwrap();
        git(&helpers, &["init", "-q"]);
        let mut pins = Vec::new();
        for i in 1..=2 {
            std::fs::write(helpers.join("h.py"), format!("h = {i}\n")).unwrap();
            git(&helpers, &["add", "-A"]);
            git(&helpers, &["commit", "-q", "-m", &format!("h{i}")]);
            pins.push(git(&helpers, &["rev-parse", "HEAD"]));
        }
        std::fs::create_dir_all(&proj).unwrap();
        git(&proj, &["init", "-q"]);
        // Loopback URLs that nothing answers: a clone attempt would fail, not reach out.
        std::fs::write(
            proj.join(".gitmodules"),
            "[submodule \"helpers\"]\n\tpath = ext/helpers\n\turl = http://127.0.0.1:9/acme/helpers.git\n[submodule \"gone\"]\n\tpath = ext/gone\n\turl = http://127.0.0.1:9/acme/gone\n",
        )
        .unwrap();
        git(&proj, &["add", ".gitmodules"]);
        for (path, sha) in [("ext/helpers", &pins[0]), ("ext/gone", &pins[1])] {
            let info = format!("160000,{sha},{path}");
            git(&proj, &["update-index", "--add", "--cacheinfo", &info]);
        }
        git(&proj, &["commit", "-q", "-m", "pin"]);
        let base = git(&proj, &["rev-parse", "HEAD"]);
        let found = submodules_at(&proj, &base).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].repo, "acme/helpers");
        assert_eq!(found[0].commit, pins[0]);

        let dest = d.path().join("repo.git");
        export_history(&proj, &base, &dest).await.unwrap();
        let notes = export_submodules(&MirrorDir::new(&mirrors), &proj, &base, &dest)
            .await
            .unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("ext/gone") && notes[0].contains("acme/gone"),
            "{notes:?}"
        );
        let later = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dest.join("modules/helpers"))
            .args(["cat-file", "-e", &pins[1]])
            .status()
            .unwrap();
        assert!(
            !later.success(),
            "a commit after the pin leaked into the export"
        );

        // What the image does: the export as /testbed/.git, checked out; then a build step's
        // `git submodule update --init` with no transport allowed.
        let testbed = d.path().join("testbed");
        std::fs::create_dir(&testbed).unwrap();
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(&dest)
            .arg(testbed.join(".git"))
            .status()
            .unwrap();
        assert!(copied.success());
        git(&testbed, &["config", "core.bare", "false"]);
        git(&testbed, &["reset", "-q", "--hard", &base]);
        // `git submodule update --init` with every transport forbidden: only a reused git
        // dir can satisfy it.
        let init_offline = |work: &Path| {
            git(
                work,
                &[
                    "-c",
                    "protocol.allow=never",
                    "submodule",
                    "update",
                    "--init",
                    "ext/helpers",
                ],
            )
        };
        init_offline(&testbed);
        assert_eq!(
            git(&testbed.join("ext/helpers"), &["rev-parse", "HEAD"]),
            pins[0]
        );
        assert_eq!(
            std::fs::read_to_string(testbed.join("ext/helpers/h.py")).unwrap(),
            "h = 1\n"
        );
        // The host's checkout for resolving the project's dependencies can do the same.
        let host = d.path().join("host");
        checkout(&dest, &base, &host).await.unwrap();
        init_offline(&host);
        assert_eq!(
            std::fs::read_to_string(host.join("ext/helpers/h.py")).unwrap(),
            "h = 1\n"
        );
    }

    #[test]
    fn guarded_sed_steps_edit_the_host_checkout_too() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("setup.py"),
            "install_requires = ['sphinxcontrib-htmlhelp>=2.0.0', 'sphinxcontrib-jsmath']\n",
        )
        .unwrap();
        let steps = [
            "grep -q 'sphinxcontrib-htmlhelp>=2.0.0' setup.py && sed -i 's/sphinxcontrib-htmlhelp>=2.0.0/sphinxcontrib-htmlhelp>=2.0.0,<=2.0.4/' setup.py || sed -i 's/sphinxcontrib-htmlhelp/sphinxcontrib-htmlhelp<=2.0.4/' setup.py",
            "grep -q 'sphinxcontrib-jsmath>=9' setup.py && sed -i 's/sphinxcontrib-jsmath>=9/x/' setup.py || sed -i 's/sphinxcontrib-jsmath/sphinxcontrib-jsmath<=1.0.1/' setup.py",
            // Not an edit: never run on the host.
            "grep -q x setup.py && touch ran-on-host",
            "sed -i 's/a/b/' setup.py; touch ran-on-host",
            "sed -i \"s/a/$(touch ran-on-host)/\" setup.py",
            "sed -i 's/a/b/' setup.py > ran-on-host",
        ]
        .map(String::from);
        run_host_edits(&steps, d.path());
        assert_eq!(
            std::fs::read_to_string(d.path().join("setup.py")).unwrap(),
            "install_requires = ['sphinxcontrib-htmlhelp>=2.0.0,<=2.0.4', 'sphinxcontrib-jsmath<=1.0.1']\n"
        );
        assert!(!d.path().join("ran-on-host").exists());
    }

    #[test]
    fn submodule_urls_name_their_repository_by_the_last_two_segments() {
        for (url, want) in [
            (
                "https://github.com/astropy/astropy-helpers.git",
                Some("astropy/astropy-helpers"),
            ),
            ("git@github.com:a/b", Some("a/b")),
            ("git://example.org/group/sub/b.git/", Some("sub/b")),
            ("../b.git", None),
        ] {
            assert_eq!(repo_of_url(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn the_resolution_key_follows_the_project_files_not_the_commit() {
        let files =
            |setup: &'static str| move |p: &str| (p == "setup.py").then(|| setup.to_string());
        let a = project_key(&files("install_requires=['x']"), "", &[]);
        // Another commit with the same declarations: the same resolution.
        assert_eq!(a, project_key(&files("install_requires=['x']"), "", &[]));
        // Changed declarations, other extras or a pre-install edit: another one.
        assert_ne!(a, project_key(&files("install_requires=['y']"), "", &[]));
        assert_ne!(
            a,
            project_key(&files("install_requires=['x']"), "[test]", &[])
        );
        assert_ne!(
            a,
            project_key(
                &files("install_requires=['x']"),
                "",
                &["sed -i 's/x/y/' setup.py".to_string()]
            )
        );
    }

    #[test]
    fn conda_specs_become_pip_requirements() {
        assert_eq!(conda_to_pip("numpy=1.21").as_deref(), Some("numpy==1.21.*"));
        assert_eq!(conda_to_pip("pandas>=1.3").as_deref(), Some("pandas>=1.3"));
        assert_eq!(
            conda_to_pip("scipy==1.7.1").as_deref(),
            Some("scipy==1.7.1")
        );
        assert_eq!(conda_to_pip("python=3.9"), None);
        assert_eq!(conda_to_pip("iris").as_deref(), Some("scitools-iris"));
        assert_eq!(
            conda_to_pip("iris>=3.1").as_deref(),
            Some("scitools-iris>=3.1")
        );
        assert_eq!(conda_to_pip("conda-forge::eccodes"), None);
        assert_eq!(
            environment_yml_requirements("dependencies:\n  - cfgrib\n  - eccodes>=2.2\n"),
            vec!["cfgrib", "ecmwflibs", "eccodes>=2.2"]
        );
        // Conda names in a spec's `packages` get the same companion.
        let mut lines = Vec::new();
        for spec in ["numpy", "cfgrib", "python=3.9"] {
            push_conda(&mut lines, spec);
        }
        assert_eq!(lines, vec!["numpy", "cfgrib", "ecmwflibs"]);
        let yml = "name: xarray-tests\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.10\n  - numpy\n  - pint>=0.19 # units\n  - pip\n  - pip:\n      - pytest-env\n      - numbagg==0.2\n  - toolz\n";
        assert_eq!(
            environment_yml_requirements(yml),
            vec!["numpy", "pint>=0.19", "pytest-env", "numbagg==0.2", "toolz"]
        );
    }

    #[test]
    fn later_pins_override_earlier_ones() {
        let base: Vec<String> = [
            "Werkzeug==2.2.3",
            "click==8.1.3",
            "jinja2>=3",
            "pytest==7.3.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let later: Vec<String> = ["werkzeug==2.3.7", "Jinja2==3.1.2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            override_pins(&base, &later),
            vec![
                "click==8.1.3",
                "pytest==7.3.1",
                "werkzeug==2.3.7",
                "Jinja2==3.1.2"
            ]
        );
    }

    #[test]
    fn install_commands_name_the_project_and_its_extras() {
        assert_eq!(
            project_extras("python -m pip install -e .").as_deref(),
            Some("")
        );
        assert_eq!(
            project_extras("python -m pip install -e .[test]").as_deref(),
            Some("[test]")
        );
        assert_eq!(
            project_extras("python -m pip install -v --no-use-pep517 --no-build-isolation -e .")
                .as_deref(),
            Some("")
        );
        assert_eq!(
            project_extras("python setup.py install").as_deref(),
            Some("")
        );
        assert_eq!(project_extras("make"), None);
        assert_eq!(
            build_requirements(BuildFiles::default()),
            vec!["setuptools>=40.8.0", "wheel"]
        );
        let pp = "[build-system]\nrequires = [\"flit_core<4\"]\nbuild-backend = \"flit_core.buildapi\"\n";
        assert_eq!(
            build_requirements(BuildFiles {
                pyproject: Some(pp),
                ..BuildFiles::default()
            }),
            vec!["flit_core<4", "wheel"]
        );
    }

    #[test]
    fn setup_requires_from_setup_cfg_and_setup_py_are_build_requirements() {
        // xarray 0.12's setup.cfg: a continuation list, then the next key.
        let cfg = "[metadata]\nname = xarray\n\n[options]\npackages = xarray\nsetup_requires =\n    setuptools >= 41.2\n    # scm\n    setuptools_scm\ninstall_requires = numpy\n\n[tool:pytest]\nsetup_requires = not-this\n";
        assert_eq!(
            build_requirements(BuildFiles {
                setup_cfg: Some(cfg),
                ..BuildFiles::default()
            }),
            vec![
                "setuptools>=40.8.0",
                "wheel",
                "setuptools >= 41.2",
                "setuptools_scm"
            ]
        );
        let one_line = "[options]\nsetup_requires = numpy>=1.13; cython\n";
        assert_eq!(
            setup_cfg_setup_requires(one_line),
            vec!["numpy>=1.13", "cython"]
        );
        // pytest 5's setup.py: a literal list; a computed one (astropy's) names nothing.
        let py = "setup(\n    setup_requires=[\"setuptools-scm\", 'setuptools>=40.0'],\n)\n";
        let pp = "[build-system]\nrequires = [\"setuptools>=40.0\", \"wheel\"]\n";
        assert_eq!(
            build_requirements(BuildFiles {
                pyproject: Some(pp),
                setup_py: Some(py),
                ..BuildFiles::default()
            }),
            vec!["setuptools>=40.0", "wheel", "setuptools-scm"]
        );
        assert!(
            setup_py_setup_requires("setup_requires = [min_numpy_version]\nsetup_requires == x")
                .is_empty()
        );
        // astropy 3.1: computed setup_requires, Cython sources: Cython all the same, once.
        let astropy = BuildFiles {
            setup_py: Some("setup_requires = [min_numpy_version]\n"),
            cython_sources: true,
            ..BuildFiles::default()
        };
        assert_eq!(
            build_requirements(astropy),
            vec!["setuptools>=40.8.0", "wheel", "cython"]
        );
        let pinned = "[build-system]\nrequires = [\"setuptools\", \"Cython>=0.29\"]\n";
        assert_eq!(
            build_requirements(BuildFiles {
                pyproject: Some(pinned),
                ..astropy
            }),
            vec!["setuptools", "Cython>=0.29", "wheel"]
        );
    }

    #[test]
    fn requirements_includes_are_expanded_and_cleaned() {
        let files: HashMap<&str, &str> = [("tests/requirements/base.txt", "sqlparse\n# c\n")]
            .into_iter()
            .collect();
        let read = |p: &str| files.get(p).map(|s| s.to_string());
        let out = expand_requirements(
            "-r base.txt\nasgiref\n-e .\ntypes-pkg_resources\n",
            "tests/requirements",
            &read,
        );
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines, vec!["sqlparse", "asgiref", "types-setuptools"]);
        let mut notes = Vec::new();
        let pre = offline_pre_install(
            &[
                "apt-get update && apt-get install -y locales".into(),
                "sed -i 's/a/b/' setup.py".into(),
            ],
            &mut notes,
        );
        assert!(pre[0].starts_with("# skipped offline") && pre[1].starts_with("sed -i"));
        assert_eq!(notes.len(), 1);
    }
}
