//! Shared fixtures: a real git repository made with git2, and the real base image.
#![allow(dead_code)]
use std::path::Path;

use mend_sandbox::{DockerConfig, DockerEngine, DockerSandbox};

pub use mend_sandbox::testing::{base_image, engine};

/// A small repository: one commit with `src/app.py`, `.gitignore` ignoring `*.log`.
pub fn make_repo(dir: &Path) -> git2::Oid {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/app.py"), "def add(a, b):\n    return a - b\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "*.log\n").unwrap();
    std::fs::write(dir.join("README"), "demo\n").unwrap();
    mend_sandbox::testing::commit_all(dir, "initial")
}

pub async fn docker_sandbox() -> DockerSandbox {
    let engine = engine().await;
    let image = base_image(&engine).await;
    DockerSandbox::start(&engine, DockerConfig::new(image))
        .await
        .expect("start sandbox")
}

/// Does a container with this name still exist?
pub async fn container_exists(engine: &DockerEngine, name: &str) -> bool {
    engine.client().inspect_container(name, None).await.is_ok()
}

/// The host part of mend's owner label: the hostname and this process's PID namespace
/// (a process in another namespace cannot judge whether our pids are alive).
#[allow(dead_code)]
pub fn owner_host() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    format!("{}/{}", host.trim(), ns.display())
}
