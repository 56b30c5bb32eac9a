//! What only the local backend promises: the user's repository is never written.
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use mend_sandbox::{Exec, LocalSandbox, Sandbox, SandboxError};

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[tokio::test]
async fn the_users_repository_and_working_tree_are_untouched() {
    let host = tempfile::tempdir().unwrap();
    support::make_repo(host.path());
    std::fs::write(host.path().join("src/app.py"), "uncommitted work\n").unwrap();
    let before = snapshot(host.path());
    {
        let sb = LocalSandbox::create(host.path(), "HEAD").unwrap();
        assert_ne!(sb.path(), host.path());
        // The sandbox has the committed version, not the user's uncommitted edit.
        assert_eq!(
            sb.read_file("src/app.py").await.unwrap(),
            b"def add(a, b):\n    return a - b\n"
        );
        sb.write_file("src/app.py", b"changed in sandbox\n")
            .await
            .unwrap();
        let out = sb.exec(&Exec::shell("git add -A && git -c user.name=x -c user.email=x@y commit -qm wip && echo committed")).await.unwrap();
        assert_eq!(out.stdout.text().trim(), "committed", "{out:?}");
    }
    assert_eq!(
        before,
        snapshot(host.path()),
        "the user's repository changed"
    );
}

#[tokio::test]
async fn symlink_escapes_are_refused() {
    let host = tempfile::tempdir().unwrap();
    support::make_repo(host.path());
    let sb = LocalSandbox::create(host.path(), "HEAD").unwrap();
    std::os::unix::fs::symlink("/etc", sb.path().join("etc-link")).unwrap();
    let err = sb.read_file("etc-link/hostname").await.unwrap_err();
    assert!(matches!(err, SandboxError::PathEscapesRoot(_)), "{err}");
    let err = sb.write_file("etc-link/evil", b"x").await.unwrap_err();
    assert!(matches!(err, SandboxError::PathEscapesRoot(_)), "{err}");
}

#[tokio::test]
async fn bad_repository_or_revision_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let err = LocalSandbox::create(empty.path(), "HEAD")
        .err()
        .expect("not a repository");
    assert!(matches!(err, SandboxError::Git(_)), "{err}");
    let host = tempfile::tempdir().unwrap();
    support::make_repo(host.path());
    let err = LocalSandbox::create(host.path(), "no-such-branch")
        .err()
        .expect("bad revision");
    assert!(err.to_string().contains("no-such-branch"), "{err}");
}

#[tokio::test]
async fn api_keys_in_the_hosts_environment_do_not_reach_commands() {
    // SAFETY: set before any command is spawned by this test; no other thread reads it.
    unsafe { std::env::set_var("OPENAI_API_KEY", "sk-secret-test") };
    let host = tempfile::tempdir().unwrap();
    support::make_repo(host.path());
    let sb = LocalSandbox::create(host.path(), "HEAD").unwrap();
    let out = sb.exec(&Exec::shell("env")).await.unwrap();
    assert!(!out.stdout.text().contains("sk-secret-test"));
    assert!(out.stdout.text().contains("PATH="));
}

#[tokio::test]
async fn writes_through_dangling_symlinks_out_of_the_checkout_are_refused() {
    let host = tempfile::tempdir().unwrap();
    support::make_repo(host.path());
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("planted.py");
    let sb = LocalSandbox::create(host.path(), "HEAD").unwrap();
    // A link whose target does not exist yet, to a file and through a directory.
    std::os::unix::fs::symlink(&target, sb.path().join("new.py")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("dir"), sb.path().join("d")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../..", sb.path().join("up")).unwrap();
    for path in ["new.py", "d/x.py", "up/tmp/x.py"] {
        let err = sb.write_file(path, b"x = 1\n").await.unwrap_err();
        assert!(
            matches!(err, SandboxError::PathEscapesRoot(_)),
            "{path}: {err}"
        );
        let abs = format!("{}/{path}", sb.root());
        let err = sb.write_file(&abs, b"x = 1\n").await.unwrap_err();
        assert!(
            matches!(err, SandboxError::PathEscapesRoot(_)),
            "{abs}: {err}"
        );
    }
    assert!(!target.exists(), "a file was planted outside the checkout");
    assert!(!outside.path().join("dir").exists());
    // Links that stay inside the checkout still work, dangling ones included.
    std::os::unix::fs::symlink("src/app.py", sb.path().join("alias.py")).unwrap();
    std::os::unix::fs::symlink("src/later.py", sb.path().join("later.py")).unwrap();
    assert_eq!(
        sb.read_file("alias.py").await.unwrap(),
        b"def add(a, b):\n    return a - b\n"
    );
    sb.write_file("later.py", b"y = 2\n").await.unwrap();
    assert_eq!(
        std::fs::read(sb.path().join("src/later.py")).unwrap(),
        b"y = 2\n"
    );
}

/// Run by `mends_own_environment_is_not_readable_from_commands` as another user: hold a
/// secret in the environment, open a local sandbox, and try to read this process's
/// environment and memory from a command run in it.
#[tokio::test]
#[ignore = "helper process of mends_own_environment_is_not_readable_from_commands"]
async fn helper_holds_a_secret() {
    let Ok(out_file) = std::env::var("MEND_TEST_HOLDER_OUT") else {
        return;
    };
    let host = tempfile::tempdir().unwrap();
    support::make_repo(host.path());
    let sb = LocalSandbox::create(host.path(), "HEAD").unwrap();
    let script = "id -u; env; cat /proc/$PPID/environ | tr '\\0' '\\n'; \
                  head -c 64 /proc/$PPID/mem >/dev/null && echo mem-readable";
    let out = sb.exec(&Exec::shell(script)).await.unwrap();
    std::fs::write(
        out_file,
        format!("{}\n{}", out.stdout.text(), out.stderr.text()),
    )
    .unwrap();
}

#[test]
fn mends_own_environment_is_not_readable_from_commands() {
    // Root reads any process's environment; the check needs an ordinary user, as mend's
    // users are. The helper runs as `nobody`.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.txt");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "helper_holds_a_secret",
        "--ignored",
        "--nocapture",
    ])
    .env("MEND_TEST_HOLDER_OUT", &out_file)
    .env("OPENAI_API_KEY", "sk-holder-secret-4242")
    .env("HOME", dir.path())
    .env("TMPDIR", "/tmp");
    // SAFETY: geteuid(2) reads this process's id and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "the helper failed");
    let seen = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        !seen.contains("sk-holder-secret-4242"),
        "a command read mend's API key: {seen}"
    );
    assert!(!seen.contains("mem-readable"), "{seen}");
    // The command did run, as the ordinary user, with the environment it was given.
    assert!(seen.contains("PATH="), "{seen}");
}
