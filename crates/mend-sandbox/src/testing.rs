//! Fixtures the workspace's tests share (feature `testing`): real git repositories and the
//! real engine with the base image. Every helper panics with a clear message, as a test
//! should; nothing here is for production paths.
use std::path::Path;

use crate::{DockerEngine, base_image};

/// Commit every file under `dir` that `.gitignore` does not ignore, on top of `HEAD` (or as
/// the first commit), making the repository if there is none. Returns the commit id.
pub fn commit_all(dir: &Path, message: &str) -> git2::Oid {
    let repo = git2::Repository::open(dir)
        .or_else(|_| git2::Repository::init(dir))
        .unwrap_or_else(|e| panic!("git repository at {}: {e}", dir.display()));
    let mut index = repo.index().expect("the repository's index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("staging the files");
    index.write().expect("writing the index");
    let tree = repo
        .find_tree(index.write_tree().expect("writing the tree"))
        .expect("the tree just written");
    let sig = git2::Signature::now("mend test", "test@example.com").expect("a signature");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        message,
        &tree,
        parent.as_ref().into_iter().collect::<Vec<_>>().as_slice(),
    )
    .expect("committing")
}

/// The running Docker engine; a test that needs it fails loudly without it.
pub async fn engine() -> DockerEngine {
    DockerEngine::connect()
        .await
        .expect("the Docker engine must be running for this test (docker/setup-host.sh starts it)")
}

/// The base image, built on first use (once across processes); its tag.
pub async fn base_image(engine: &DockerEngine) -> String {
    base_image::ensure(engine, &mut |p| eprintln!("base image: {p:?}"))
        .await
        .expect("building the base image")
}
