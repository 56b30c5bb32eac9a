//! What reaches the Docker sandbox when mend copies a repository in: no credentials, the
//! objects of shared clones, symlinks as symlinks, submodules named when skipped.
use std::path::Path;
use std::process::Command;

use mend_agent::workspace;
use mend_sandbox::{DockerConfig, Exec, Sandbox};

const TOKEN: &str = "ghp_S3cretT0kenFromTheRemoteUrl";
const HEADER: &str = "S3cretHeaderValue";
const HELPER: &str = "S3cretHelperPath";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "protocol.file.allow=always"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn small_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    std::fs::write(
        dir.join("pkg/calc.py"),
        "def add(a, b):\n    return a + b\n",
    )
    .unwrap();
    mend_sandbox::testing::commit_all(dir, "first").to_string()
}

async fn sandbox_of(repo: &Path, rev: &str) -> mend_sandbox::DockerSandbox {
    let engine = mend_sandbox::testing::engine().await;
    let image = mend_sandbox::testing::base_image(&engine).await;
    workspace::docker_workspace(&engine, DockerConfig::new(image), repo, rev)
        .await
        .unwrap()
}

async fn sh(sb: &dyn Sandbox, script: &str) -> (bool, String) {
    let out = sb.exec(&Exec::shell(script)).await.unwrap();
    (
        out.success(),
        format!("{}{}", out.stdout.text(), out.stderr.text()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_git_config_do_not_reach_the_container() {
    let host = tempfile::tempdir().unwrap();
    let rev = small_repo(host.path());
    let url = format!("https://user:{TOKEN}@git.example.invalid/o/r.git");
    git(host.path(), &["remote", "add", "origin", &url]);
    git(
        host.path(),
        &[
            "config",
            "credential.helper",
            &format!("store --file /{HELPER}"),
        ],
    );
    git(
        host.path(),
        &[
            "config",
            "http.https://git.example.invalid/.extraheader",
            &format!("AUTHORIZATION: basic {HEADER}"),
        ],
    );
    // What a fetch and a clone leave behind: FETCH_HEAD and reflogs that name the URL.
    std::fs::write(
        host.path().join(".git/FETCH_HEAD"),
        format!("{rev}\t\tbranch 'main' of {url}\n"),
    )
    .unwrap();
    let logs = host.path().join(".git/logs/refs/remotes/origin");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("main"),
        format!(
            "0000000000000000000000000000000000000000 {rev} t <t@example.com> 0 +0000\tfetch: from {url}\n"
        ),
    )
    .unwrap();
    let sb = sandbox_of(host.path(), "HEAD").await;
    let (ok, found) = sh(
        &sb,
        &format!("grep -r -a -l -e {TOKEN} -e {HEADER} -e {HELPER} /repo; git config --list"),
    )
    .await;
    assert!(!found.contains(TOKEN), "{found}");
    assert!(!found.contains(HEADER), "{found}");
    assert!(!found.contains(HELPER), "{found}");
    assert!(!ok || !found.contains("/repo/"), "{found}");
    // The repository still works: history, status and the diff.
    let (ok, log) = sh(&sb, "git log --oneline | wc -l; git status --short").await;
    assert!(ok && log.trim() == "1", "{log}");
    sb.write_file("pkg/calc.py", b"def add(a, b):\n    return b + a\n")
        .await
        .unwrap();
    assert!(sb.diff().await.unwrap().contains("+    return b + a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_clone_works_in_the_docker_sandbox() {
    let src = tempfile::tempdir().unwrap();
    small_repo(src.path());
    std::fs::write(src.path().join("pkg/more.py"), "X = 2\n").unwrap();
    let second = mend_sandbox::testing::commit_all(src.path(), "second").to_string();
    let top = tempfile::tempdir().unwrap();
    let clone = top.path().join("clone");
    git(
        top.path(),
        &[
            "clone",
            "-q",
            "--shared",
            &src.path().display().to_string(),
            "clone",
        ],
    );
    assert!(clone.join(".git/objects/info/alternates").exists());
    // One commit of the clone's own on top: objects both here and in the alternate.
    std::fs::write(clone.join("pkg/own.py"), "Y = 3\n").unwrap();
    let third = mend_sandbox::testing::commit_all(&clone, "third").to_string();

    let sb = sandbox_of(&clone, "HEAD").await;
    let (ok, out) = sh(&sb, "git log --format=%H; cat pkg/more.py pkg/own.py").await;
    assert!(ok, "{out}");
    assert!(out.contains(&third) && out.contains(&second), "{out}");
    assert!(out.contains("X = 2") && out.contains("Y = 3"), "{out}");
    let (_, alt) = sh(
        &sb,
        "cat .git/objects/info/alternates 2>&1; git fsck --connectivity-only 2>&1",
    )
    .await;
    assert!(!alt.contains(&src.path().display().to_string()), "{alt}");
    assert!(!alt.contains("missing"), "{alt}");
    // An older revision whose objects live only in the alternate.
    let older = sandbox_of(&clone, &second).await;
    let (ok, out) = sh(&older, "git rev-parse HEAD; ls pkg").await;
    assert!(
        ok && out.contains(&second) && !out.contains("own.py"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_stay_links_and_skipped_submodules_are_named() {
    let sub = tempfile::tempdir().unwrap();
    std::fs::write(sub.path().join("lib.py"), "Z = 1\n").unwrap();
    mend_sandbox::testing::commit_all(sub.path(), "sub");
    let host = tempfile::tempdir().unwrap();
    small_repo(host.path());
    std::os::unix::fs::symlink("calc.py", host.path().join("pkg/alias.py")).unwrap();
    std::os::unix::fs::symlink("pkg", host.path().join("pkgdir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", host.path().join("escape")).unwrap();
    git(host.path(), &["add", "-A"]);
    git(
        host.path(),
        &[
            "submodule",
            "add",
            "-q",
            &sub.path().display().to_string(),
            "vendor/sub",
        ],
    );
    git(
        host.path(),
        &["commit", "-q", "-m", "links and a submodule"],
    );

    let skipped = workspace::submodules(host.path(), "HEAD").unwrap();
    assert_eq!(skipped, vec!["vendor/sub".to_string()]);
    let sb = sandbox_of(host.path(), "HEAD").await;
    let (ok, out) = sh(
        &sb,
        "readlink pkg/alias.py; readlink pkgdir; cat pkgdir/alias.py; ls -A vendor/sub | wc -l",
    )
    .await;
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "calc.py", "{out}");
    assert_eq!(lines[1], "pkg", "{out}");
    assert!(out.contains("return a + b"), "{out}");
    // The file tools see through links that stay inside the repository, and only those.
    assert_eq!(
        sb.read_text("pkg/alias.py").await.unwrap(),
        "def add(a, b):\n    return a + b\n"
    );
    assert_eq!(
        sb.read_text("pkgdir/calc.py").await.unwrap(),
        "def add(a, b):\n    return a + b\n"
    );
    assert!(matches!(
        sb.read_file("escape").await,
        Err(mend_sandbox::SandboxError::PathEscapesRoot(_))
    ));
    // Nothing changed as far as git is concerned, so the diff is empty.
    assert_eq!(sb.diff().await.unwrap(), "");
}
