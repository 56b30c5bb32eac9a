//! Where each instance's image comes from, behind one trait:
//! - [`OfficialImages`]: pull the published `swebench/sweb.eval.x86_64.<id>` images;
//! - [`BuildImages`]: render base/env/instance Dockerfiles from `docker/swebench/` and the
//!   specs, and `docker build` them (needs network, as the official harness does);
//! - [`LocalImages`]: an image map file (instance id -> image) for air-gapped machines.
//!
//! Every source reuses an image that already exists.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use mend_sandbox::DockerEngine;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::SwebenchError;
use crate::dataset::Instance;
use crate::script::{ENV_NAME, REPO_DIR};
use crate::specs::{Specs, VersionSpec};

/// A line of pull/build progress for one instance.
pub type ImageProgress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Gives the image to run an instance in, pulling or building it when missing.
#[async_trait::async_trait]
pub trait ImageSource: Send + Sync {
    /// A short name for logs (`official`, `build`, `local`).
    fn kind(&self) -> &'static str;
    /// The image reference for `instance`, available on `engine` when this returns.
    async fn image_for(
        &self,
        engine: &DockerEngine,
        instance: &Instance,
        progress: ImageProgress<'_>,
    ) -> Result<String, SwebenchError>;
    /// How the image made for `instance` differs from the official environment (another
    /// Python, a dependency that could not be installed), once `image_for` has returned.
    fn environment(&self, _instance: &Instance) -> Option<EnvironmentNotes> {
        None
    }
}

/// Where an instance's environment departs from the official one, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvironmentNotes {
    /// The Python the image runs (full version), when known.
    pub python: Option<String>,
    /// The spec's Python version.
    pub official_python: Option<String>,
    /// The Debian suite of the base image the Python came from (`bullseye`, `bookworm`),
    /// when mend chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// Each departure in a sentence.
    pub notes: Vec<String>,
}

impl EnvironmentNotes {
    /// True when the image runs another minor version of Python than the spec names.
    pub fn python_differs(&self) -> bool {
        match (&self.python, &self.official_python) {
            (Some(used), Some(official)) => {
                let mm = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
                mm(used) != mm(official)
            }
            _ => false,
        }
    }
}

fn image_err(instance: &Instance, message: impl Into<String>) -> SwebenchError {
    SwebenchError::Image {
        instance_id: instance.instance_id.clone(),
        message: message.into(),
    }
}

/// The published images: `<namespace>/sweb.eval.<arch>.<id>:<tag>` with `__` spelled `_1776_`.
#[derive(Debug, Clone)]
pub struct OfficialImages {
    pub namespace: String,
    pub arch: String,
    pub tag: String,
}

impl Default for OfficialImages {
    fn default() -> Self {
        OfficialImages {
            namespace: "swebench".into(),
            arch: "x86_64".into(),
            tag: "latest".into(),
        }
    }
}

impl OfficialImages {
    /// The official `instance_image_key` for a remote namespace.
    pub fn reference(&self, instance_id: &str) -> String {
        format!(
            "{}/sweb.eval.{}.{}:{}",
            self.namespace,
            self.arch,
            instance_id.to_lowercase(),
            self.tag
        )
        .replace("__", "_1776_")
    }
}

#[async_trait::async_trait]
impl ImageSource for OfficialImages {
    fn kind(&self) -> &'static str {
        "official"
    }

    async fn image_for(
        &self,
        engine: &DockerEngine,
        instance: &Instance,
        progress: ImageProgress<'_>,
    ) -> Result<String, SwebenchError> {
        let reference = self.reference(&instance.instance_id);
        if engine.image_exists(&reference).await? {
            return Ok(reference);
        }
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((&reference, "latest"));
        progress(&format!("pulling {reference}"));
        let opts = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let mut stream = engine.client().create_image(Some(opts), None, None);
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let line = [info.id.unwrap_or_default(), info.status.unwrap_or_default()]
                        .join(" ")
                        .trim()
                        .to_string();
                    if !line.is_empty() && line != last {
                        progress(&line);
                        last = line;
                    }
                }
                Err(e) => {
                    return Err(image_err(
                        instance,
                        format!(
                            "pulling {reference} failed: {e} (no registry? use --images build or --images local)"
                        ),
                    ));
                }
            }
        }
        Ok(reference)
    }
}

/// An image map: instance id -> image reference.
#[derive(Debug, Clone, Default)]
pub struct LocalImages {
    pub map: HashMap<String, String>,
}

impl LocalImages {
    /// Read a map file: a JSON object `{"id": "image"}`, or lines `id image` / `id<TAB>image`
    /// (blank lines and `#` comments ignored).
    pub fn from_file(path: &Path) -> Result<LocalImages, SwebenchError> {
        let text = std::fs::read_to_string(path).map_err(SwebenchError::io(format!(
            "reading image map {}",
            path.display()
        )))?;
        Self::parse(&text).map_err(|message| SwebenchError::File {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<LocalImages, String> {
        if text.trim_start().starts_with('{') {
            let map: HashMap<String, String> = serde_json::from_str(text)
                .map_err(|e| format!("not a JSON object of strings: {e}"))?;
            return Ok(LocalImages { map });
        }
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(image), None) => {
                    map.insert(id.to_string(), image.to_string());
                }
                _ => return Err(format!("line {}: expected `instance_id image`", i + 1)),
            }
        }
        Ok(LocalImages { map })
    }
}

#[async_trait::async_trait]
impl ImageSource for LocalImages {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn image_for(
        &self,
        engine: &DockerEngine,
        instance: &Instance,
        _progress: ImageProgress<'_>,
    ) -> Result<String, SwebenchError> {
        let image = self
            .map
            .get(&instance.instance_id)
            .ok_or_else(|| image_err(instance, "not in the image map"))?;
        if !engine.image_exists(image).await? {
            return Err(image_err(
                instance,
                format!("image `{image}` from the image map does not exist on this engine"),
            ));
        }
        Ok(image.clone())
    }
}

const BASE_DOCKERFILE: &str = include_str!("../../../docker/swebench/base.Dockerfile");
const ENV_DOCKERFILE: &str = include_str!("../../../docker/swebench/env.Dockerfile");
const INSTANCE_DOCKERFILE: &str = include_str!("../../../docker/swebench/instance.Dockerfile");

/// Build images from the specs, as the official harness does (base -> env -> instance).
pub struct BuildImages {
    pub specs: Arc<Specs>,
    pub arch: String,
    pub ubuntu_version: String,
    pub conda_version: String,
    /// Where requirements.txt / environment.yml are fetched from (`https://raw.githubusercontent.com/`).
    pub raw_base_url: String,
    /// Build contexts are kept here, like the official `logs/build_images`.
    pub build_dir: PathBuf,
    /// One build at a time per image key; concurrent instances share env images.
    /// Held while an image is built, so each is built once.
    building: crate::keyed_lock::KeyedLock,
}

impl BuildImages {
    pub fn new(specs: Arc<Specs>, build_dir: PathBuf) -> BuildImages {
        BuildImages {
            specs,
            arch: "x86_64".into(),
            ubuntu_version: "22.04".into(),
            conda_version: "py311_23.11.0-2".into(),
            raw_base_url: "https://raw.githubusercontent.com/".into(),
            build_dir,
            building: Default::default(),
        }
    }

    fn platform(&self) -> &'static str {
        if self.arch == "arm64" {
            "linux/arm64/v8"
        } else {
            "linux/x86_64"
        }
    }

    pub fn base_dockerfile(&self) -> String {
        let conda_arch = if self.arch == "arm64" {
            "aarch64"
        } else {
            "x86_64"
        };
        fill(
            BASE_DOCKERFILE,
            &[
                ("platform", self.platform()),
                ("ubuntu_version", &self.ubuntu_version),
                ("conda_version", &self.conda_version),
                ("conda_arch", conda_arch),
            ],
        )
    }

    pub fn base_image_key(&self) -> String {
        format!("sweb.base.py.{}:latest", self.arch)
    }

    pub fn env_dockerfile(&self, base_image: &str) -> String {
        fill(
            ENV_DOCKERFILE,
            &[("platform", self.platform()), ("base_image", base_image)],
        )
    }

    pub fn instance_dockerfile(&self, env_image: &str) -> String {
        fill(
            INSTANCE_DOCKERFILE,
            &[("platform", self.platform()), ("env_image", env_image)],
        )
    }

    /// Fetch the first of `paths` that exists at `commit` (following `-r` includes for requirements).
    async fn fetch_first(
        &self,
        repo: &str,
        commit: &str,
        paths: &[String],
        follow_includes: bool,
    ) -> Result<String, String> {
        let http = crate::http_client().map_err(|e| e.to_string())?;
        for p in paths {
            let url = format!(
                "{}/{repo}/{commit}/{p}",
                self.raw_base_url.trim_end_matches('/')
            );
            let resp = http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_success() {
                continue;
            }
            let text = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !follow_includes {
                return Ok(text);
            }
            let dir = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let mut original = Vec::new();
            let mut additional = Vec::new();
            let excluded = |l: &str| {
                ["-e .", "#", ".[test"]
                    .iter()
                    .any(|x| l.trim().starts_with(x))
            };
            for line in text.split('\n') {
                if let Some(inc) = line.trim().strip_prefix("-r") {
                    let inc_path = if dir.is_empty() {
                        inc.trim().to_string()
                    } else {
                        format!("{dir}/{}", inc.trim())
                    };
                    let url = format!(
                        "{}/{repo}/{commit}/{inc_path}",
                        self.raw_base_url.trim_end_matches('/')
                    );
                    if let Ok(r) = http.get(&url).send().await
                        && r.status().is_success()
                    {
                        let t = r.text().await.unwrap_or_default();
                        additional
                            .extend(t.split('\n').filter(|l| !excluded(l)).map(str::to_string));
                    }
                } else if !excluded(line) {
                    original.push(line.to_string());
                }
            }
            additional.push(original.join("\n"));
            return Ok(additional.join("\n"));
        }
        Err(format!("none of {paths:?} found for {repo} at {commit}"))
    }

    /// The environment setup script (the official `make_env_script_list_py`).
    pub async fn env_script(
        &self,
        instance: &Instance,
        spec: &VersionSpec,
    ) -> Result<String, SwebenchError> {
        const HD: &str = "EOF_59812759871";
        let repo = self
            .specs
            .repo(&instance.repo)
            .ok_or_else(|| image_err(instance, "repository not in the specs"))?;
        let commit = instance
            .environment_setup_commit
            .as_deref()
            .unwrap_or(&instance.base_commit);
        let python = spec.python.clone().unwrap_or_else(|| "3.9".into());
        let mut cmds = vec!["source /opt/miniconda3/bin/activate".to_string()];
        match spec.packages.as_deref().unwrap_or("") {
            "requirements.txt" => {
                let reqs = self
                    .fetch_first(&instance.repo, commit, &repo.requirements_paths, true)
                    .await
                    .map_err(|m| image_err(instance, m))?;
                let reqs = clean_requirements(&reqs);
                cmds.push(format!("conda create -n {ENV_NAME} python={python} -y"));
                cmds.push(format!(
                    "cat <<'{HD}' > $HOME/requirements.txt\n{reqs}\n{HD}"
                ));
                cmds.push(format!(
                    "conda activate {ENV_NAME} && python -m pip install -r $HOME/requirements.txt"
                ));
                cmds.push("rm $HOME/requirements.txt".into());
            }
            "environment.yml" => {
                let yml = self
                    .fetch_first(&instance.repo, commit, &repo.environment_yml_paths, false)
                    .await
                    .map_err(|m| image_err(instance, m))?;
                let yml: String = yml
                    .split('\n')
                    .map(|l| {
                        if l.starts_with("name:") {
                            format!("name: {ENV_NAME}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                cmds.push(format!("cat <<'{HD}' > environment.yml\n{yml}\n{HD}"));
                if spec.no_use_env {
                    cmds.push(format!(
                        "conda create -c conda-forge -n {ENV_NAME} python={python} -y"
                    ));
                    cmds.push("conda env update -f environment.yml".into());
                } else {
                    cmds.push("conda env create --file environment.yml".into());
                    cmds.push(format!(
                        "conda activate {ENV_NAME} && conda install python={python} -y"
                    ));
                }
                cmds.push("rm environment.yml".into());
            }
            pkgs => cmds.push(format!(
                "conda create -n {ENV_NAME} python={python} {pkgs} -y"
            )),
        }
        cmds.push(format!("conda activate {ENV_NAME}"));
        if !spec.pip_packages.is_empty() {
            cmds.push(format!(
                "python -m pip install {}",
                spec.pip_packages.join(" ")
            ));
        }
        Ok(["#!/bin/bash", "set -euxo pipefail"]
            .iter()
            .map(|s| s.to_string())
            .chain(cmds)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n")
    }

    /// The repository setup script (the official `make_repo_script_list_py`).
    pub fn repo_script(&self, instance: &Instance, spec: &VersionSpec) -> String {
        let (repo, base) = (&instance.repo, &instance.base_commit);
        let mut cmds: Vec<String> = vec![
            format!("git clone -o origin --single-branch https://github.com/{repo} {REPO_DIR}"),
            format!("chmod -R 777 {REPO_DIR}"),
            format!("cd {REPO_DIR}"),
            format!("git reset --hard {base}"),
            "git remote remove origin".into(),
            format!("TARGET_TIMESTAMP=$(git show -s --format=%ci {base})"),
            r#"git tag -l | while read tag; do TAG_COMMIT=$(git rev-list -n 1 "$tag"); TAG_TIME=$(git show -s --format=%ci "$TAG_COMMIT"); if [[ "$TAG_TIME" > "$TARGET_TIMESTAMP" ]]; then git tag -d "$tag"; fi; done"#.into(),
            "git reflog expire --expire=now --all".into(),
            "git gc --prune=now --aggressive".into(),
            r#"AFTER_TIMESTAMP=$(date -d "$TARGET_TIMESTAMP + 1 second" '+%Y-%m-%d %H:%M:%S')"#.into(),
            r#"COMMIT_COUNT=$(git log --oneline --all --since="$AFTER_TIMESTAMP" | wc -l)"#.into(),
            r#"[ "$COMMIT_COUNT" -eq 0 ] || exit 1"#.into(),
            "source /opt/miniconda3/bin/activate".into(),
            format!("conda activate {ENV_NAME}"),
            r#"echo "Current environment: $CONDA_DEFAULT_ENV""#.into(),
        ];
        cmds.extend(spec.pre_install.iter().cloned());
        if let Some(i) = &spec.install {
            cmds.push(i.clone());
        }
        cmds.extend([
            "git config --global user.email setup@swebench.config".into(),
            "git config --global user.name SWE-bench".into(),
            "git commit --allow-empty -am SWE-bench".into(),
        ]);
        ["#!/bin/bash", "set -euxo pipefail"]
            .iter()
            .map(|s| s.to_string())
            .chain(cmds)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }

    async fn ensure(
        &self,
        engine: &DockerEngine,
        tag: &str,
        files: &[(&str, String)],
        instance: &Instance,
        progress: ImageProgress<'_>,
    ) -> Result<(), SwebenchError> {
        let _held = self.building.lock(tag).await;
        if engine.image_exists(tag).await? {
            return Ok(());
        }
        let dir = self.build_dir.join(tag.replace([':', '/'], "__"));
        std::fs::create_dir_all(&dir)
            .map_err(SwebenchError::io(format!("creating {}", dir.display())))?;
        for (name, body) in files {
            std::fs::write(dir.join(name), body).map_err(SwebenchError::io(format!(
                "writing {}",
                dir.join(name).display()
            )))?;
        }
        progress(&format!("building {tag}"));
        docker_build(tag, &dir, &[], progress)
            .await
            .map_err(|m| image_err(instance, m))
    }
}

#[async_trait::async_trait]
impl ImageSource for BuildImages {
    fn kind(&self) -> &'static str {
        "build"
    }

    async fn image_for(
        &self,
        engine: &DockerEngine,
        instance: &Instance,
        progress: ImageProgress<'_>,
    ) -> Result<String, SwebenchError> {
        let instance_tag = format!(
            "sweb.eval.{}.{}:latest",
            self.arch,
            instance.instance_id.to_lowercase()
        );
        if engine.image_exists(&instance_tag).await? {
            return Ok(instance_tag);
        }
        let spec = self.specs.get(&instance.repo, &instance.version)?;
        let base = self.base_image_key();
        self.ensure(
            engine,
            &base,
            &[("Dockerfile", self.base_dockerfile())],
            instance,
            progress,
        )
        .await?;
        let env_script = self.env_script(instance, spec).await?;
        let env_tag = format!(
            "sweb.env.py.{}.{}:latest",
            self.arch,
            short_hash(&env_script)
        );
        self.ensure(
            engine,
            &env_tag,
            &[
                ("Dockerfile", self.env_dockerfile(&base)),
                ("setup_env.sh", env_script),
            ],
            instance,
            progress,
        )
        .await?;
        let files = [
            ("Dockerfile", self.instance_dockerfile(&env_tag)),
            ("setup_repo.sh", self.repo_script(instance, spec)),
        ];
        self.ensure(engine, &instance_tag, &files, instance, progress)
            .await?;
        Ok(instance_tag)
    }
}

/// Yanked packages replaced in requirements (official `REPLACE_REQ_PACKAGES`).
pub fn clean_requirements(text: &str) -> String {
    text.split('\n')
        .map(|l| {
            let rest = l.strip_prefix("types-pkg_resources");
            match rest {
                Some(r) if r.is_empty() || r.starts_with(['<', '>', '=', '!', '~']) => {
                    "types-setuptools".to_string()
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_string(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

fn short_hash(s: &str) -> String {
    // FNV-1a twice with different seeds: a stable 22-hex-digit key with no extra dependency.
    let fnv = |seed: u64| {
        s.bytes()
            .fold(seed, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf29ce484222325),
        fnv(0x84222325cbf29ce4)
    )[..22]
        .to_string()
}

/// `docker build -t TAG [ARGS] DIR`, streaming its output to `progress`. The whole output
/// goes to DIR.build.log (beside the context, not in it); a failure's message holds the lines that name an error (a compiler's
/// `error:` scrolls far above the tail pip prints after it) and the tail.
pub async fn docker_build(
    tag: &str,
    dir: &Path,
    args: &[&str],
    progress: ImageProgress<'_>,
) -> Result<(), String> {
    // --force-rm: a failed step's intermediate container is removed too (not only on success).
    let mut child = tokio::process::Command::new("docker")
        .args(["build", "--force-rm", "-t", tag])
        .args(args)
        .arg(".")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running docker build: {e}"))?;
    let stderr = child.stderr.take();
    let stdout = child.stdout.take();
    let mut log = BuildLog::default();
    let empty = || futures_util::stream::empty::<String>().boxed();
    let mut lines = futures_util::stream::select(
        stdout
            .map(|s| tokio_stream_lines(BufReader::new(s).lines()))
            .unwrap_or_else(empty),
        stderr
            .map(|s| tokio_stream_lines(BufReader::new(s).lines()))
            .unwrap_or_else(empty),
    );
    let log_path = dir.with_extension("build.log");
    let mut file = std::fs::File::create(&log_path).ok();
    while let Some(line) = lines.next().await {
        progress(&line);
        if let Some(f) = file.as_mut() {
            use std::io::Write as _;
            if writeln!(f, "{line}").is_err() {
                file = None;
            }
        }
        log.push(line);
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for docker build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "docker build of {tag} failed ({status}; whole log: {}):\n{}",
            log_path.display(),
            log.failure_text()
        ))
    }
}

/// What a failed build's message keeps of its output: the first lines that name an error,
/// each with a little context, and the last lines.
#[derive(Default)]
pub struct BuildLog {
    /// The first lines that name an error, each with the lines around it.
    errors: Vec<Vec<String>>,
    recent: std::collections::VecDeque<String>,
    /// Lines still to add after the last error line (its context).
    after: usize,
}

impl BuildLog {
    const TAIL: usize = 40;
    const ERRORS: usize = 6;
    const BEFORE: usize = 3;
    const AFTER: usize = 4;

    fn names_an_error(line: &str) -> bool {
        let l = line.to_ascii_lowercase();
        l.contains("error:") || l.contains("fatal error") || l.contains("error[")
    }

    pub fn push(&mut self, line: String) {
        if self.after > 0
            && let Some(block) = self.errors.last_mut()
        {
            block.push(line.clone());
            self.after -= 1;
        } else if self.errors.len() < Self::ERRORS && Self::names_an_error(&line) {
            let start = self.recent.len().saturating_sub(Self::BEFORE);
            let mut block: Vec<String> = self.recent.iter().skip(start).cloned().collect();
            block.push(line.clone());
            self.errors.push(block);
            self.after = Self::AFTER;
        }
        self.recent.push_back(line);
        if self.recent.len() > Self::TAIL {
            self.recent.pop_front();
        }
    }

    /// The error blocks (when the tail does not already show them), then the tail.
    pub fn failure_text(&self) -> String {
        let tail: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        let mut out = String::new();
        for block in &self.errors {
            let error_line = block
                .iter()
                .find(|l| Self::names_an_error(l))
                .map(String::as_str);
            if error_line.is_some_and(|e| tail.contains(&e)) {
                continue;
            }
            out.push_str(&block.join("\n"));
            out.push_str("\n...\n");
        }
        out.push_str(&tail.join("\n"));
        out
    }
}

fn tokio_stream_lines<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(
    lines: tokio::io::Lines<R>,
) -> futures_util::stream::BoxStream<'static, String> {
    futures_util::stream::unfold(lines, |mut l| async move {
        match l.next_line().await {
            Ok(Some(line)) => Some((line, l)),
            _ => None,
        }
    })
    .boxed()
}

/// Parse the `--images` choice.
pub fn parse_kind(s: &str) -> Result<&'static str, SwebenchError> {
    match s {
        "official" => Ok("official"),
        "build" => Ok("build"),
        "local" => Ok("local"),
        "build-offline" => Ok("build-offline"),
        other => Err(SwebenchError::Invalid(format!(
            "--images must be official, build, local or build-offline, not `{other}`"
        ))),
    }
}

#[cfg(test)]
mod build_log_tests {
    use super::BuildLog;

    #[test]
    fn a_compiler_error_far_above_the_tail_is_kept() {
        let mut log = BuildLog::default();
        for i in 0..50 {
            log.push(format!("Collecting package{i}"));
        }
        log.push(
            "astropy/_erfa.c:12:10: fatal error: longintrepr.h: No such file or directory".into(),
        );
        for i in 0..200 {
            log.push(format!("  pip traceback line {i}"));
        }
        let text = log.failure_text();
        assert!(text.contains("fatal error: longintrepr.h"), "{text}");
        assert!(
            text.contains("Collecting package49"),
            "context before: {text}"
        );
        assert!(
            text.contains("pip traceback line 3"),
            "context after: {text}"
        );
        assert!(text.ends_with("pip traceback line 199"), "{text}");
        assert!(!text.contains("Collecting package10\n"), "{text}");
        // An error already in the tail is not repeated.
        let mut short = BuildLog::default();
        short.push("error: no".into());
        short.push("end".into());
        assert_eq!(short.failure_text(), "error: no\nend");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_reference_spelling() {
        let o = OfficialImages::default();
        assert_eq!(
            o.reference("django__django-11099"),
            "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
        );
        assert_eq!(
            o.reference("SymPy__sympy-1"),
            "swebench/sweb.eval.x86_64.sympy_1776_sympy-1:latest"
        );
    }

    #[test]
    fn image_map_forms() {
        let m = LocalImages::parse("# map\nA__b-1 img:1\n\nc__d-2\timg:2\n").unwrap();
        assert_eq!(m.map["A__b-1"], "img:1");
        assert_eq!(m.map["c__d-2"], "img:2");
        let m = LocalImages::parse(r#"{"x__y-1": "mine:latest"}"#).unwrap();
        assert_eq!(m.map["x__y-1"], "mine:latest");
        assert!(
            LocalImages::parse("a b c\n")
                .unwrap_err()
                .contains("line 1")
        );
    }

    #[test]
    fn build_renders_dockerfiles_and_scripts_from_the_specs() {
        let b = BuildImages::new(Arc::new(Specs::builtin()), std::env::temp_dir());
        let base = b.base_dockerfile();
        assert!(
            base.contains("FROM --platform=linux/x86_64 ubuntu:22.04")
                && base.contains("Miniconda3-py311_23.11.0-2-Linux-x86_64.sh")
        );
        assert!(!base.contains('{'), "unfilled placeholder: {base}");
        assert!(
            b.env_dockerfile("sweb.base.py.x86_64:latest")
                .starts_with("# SWE-bench environment image")
        );
        assert!(
            b.instance_dockerfile("e:1")
                .contains("FROM --platform=linux/x86_64 e:1")
        );
        let i = crate::dataset::parse_instances(
            r#"{"instance_id":"sympy__sympy-1","repo":"sympy/sympy","base_commit":"abcdef0","version":"1.9","patch":"","test_patch":"diff --git a/x b/x\n"}"#,
            "t",
        )
        .unwrap()
        .remove(0);
        let spec = b.specs.get("sympy/sympy", "1.9").unwrap();
        let s = b.repo_script(&i, spec);
        assert!(s.starts_with("#!/bin/bash\nset -euxo pipefail\ngit clone -o origin --single-branch https://github.com/sympy/sympy /testbed\n"));
        assert!(
            s.contains("git reset --hard abcdef0\n")
                && s.contains("\npython -m pip install -e .\n")
                && s.ends_with("git commit --allow-empty -am SWE-bench\n")
        );
        assert_eq!(
            clean_requirements("a\ntypes-pkg_resources==1\ntypes-pkg_resourcesx"),
            "a\ntypes-setuptools\ntypes-pkg_resourcesx"
        );
    }

    #[tokio::test]
    async fn env_script_fetches_requirements_from_the_configured_host() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/django/django/abcdef0/tests/requirements/py3.txt",
                get(|| async { "-r base.txt\nasgiref\n# comment\n-e .\ntypes-pkg_resources\n" }),
            )
            .route(
                "/django/django/abcdef0/tests/requirements/base.txt",
                get(|| async { "sqlparse\n" }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut b = BuildImages::new(Arc::new(Specs::builtin()), std::env::temp_dir());
        b.raw_base_url = format!("http://{addr}/");
        let i = crate::dataset::parse_instances(
            r#"{"instance_id":"django__django-1","repo":"django/django","base_commit":"abcdef0","version":"3.0","patch":"","test_patch":"diff --git a/x b/x\n"}"#,
            "t",
        )
        .unwrap()
        .remove(0);
        let s = b
            .env_script(&i, b.specs.get("django/django", "3.0").unwrap())
            .await
            .unwrap();
        assert!(s.contains("conda create -n testbed python=3.6 -y\n"), "{s}");
        assert!(s.contains("cat <<'EOF_59812759871' > $HOME/requirements.txt\nsqlparse\n\nasgiref\ntypes-setuptools\n\nEOF_59812759871\n"), "{s}");
        assert!(
            s.contains("conda activate testbed && python -m pip install -r $HOME/requirements.txt")
        );
    }
}
