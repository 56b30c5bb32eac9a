//! Test patches recovered from history, on real git repositories made here: a Django-style
//! change landed as two first-parent commits naming the same ticket, a PR branch merged
//! with a merge commit, a squash merge landed after the file moved on, and a gold patch
//! that no commit holds.
use std::path::Path;
use std::process::Command;

use mend_swebench::recover::{BlobMatch, compare, recover_test_patch};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
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

fn commit(dir: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// A diff as SWE-bench publishes it: no `index` lines.
fn published_diff(dir: &Path, from: &str, to: &str, paths: &[&str]) -> String {
    let mut args = vec!["diff", "--no-color", from, to, "--"];
    args.extend(paths);
    git(dir, &args)
        .lines()
        .filter(|l| !l.starts_with("index "))
        .map(|l| format!("{l}\n"))
        .collect()
}

const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";
const TESTS: &str = "from calc import add, mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n";

fn new_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    commit(
        dir,
        &[
            ("calc.py", CALC),
            ("tests/test_calc.py", TESTS),
            ("README", "calc\n"),
        ],
        "Initial",
    )
}

#[test]
fn a_ticket_landed_as_two_commits_gives_both_test_changes() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let base = new_repo(&dir);
    let t1 = format!("{TESTS}\n\ndef test_mul_zero():\n    assert mul(0, 3) == 0\n");
    commit(
        &dir,
        &[("tests/test_calc.py", &t1)],
        "Refs #7 -- Added a test for mul().",
    );
    let t2 = format!("{t1}\n\ndef test_add():\n    assert add(1, 2) == 3\n");
    let fix = commit(
        &dir,
        &[
            ("calc.py", &CALC.replace("a - b", "a + b")),
            ("tests/test_calc.py", &t2),
        ],
        "Fixed #7 -- Made add() add.",
    );
    // Later work on the same files must not count.
    commit(
        &dir,
        &[
            ("calc.py", &CALC.replace("a - b", "b + a")),
            ("tests/test_calc.py", &format!("{t2}# end\n")),
        ],
        "Refs #8 -- Reordered.",
    );
    let gold = published_diff(&dir, &base, &fix, &["calc.py"]);
    let known = published_diff(&dir, &base, &fix, &["tests/test_calc.py"]);

    let r = recover_test_patch(&dir.join(".git"), &base, &gold, None)
        .unwrap()
        .unwrap_or_else(|e| panic!("not recovered: {e:?}"));
    assert_eq!(r.head, fix);
    assert_eq!(r.fork, base);
    assert_eq!(r.extent, "commits 2");
    assert_eq!(r.matched, BlobMatch::All { files: 1 });
    assert_eq!(r.test_files, vec!["tests/test_calc.py"]);
    assert!(r.applies_at_base);
    let cmp = compare(&r.test_patch, &known);
    assert!(cmp.exact, "{cmp:?}\n{}", r.test_patch);
}

#[test]
fn a_merged_branch_gives_the_whole_branch_and_a_foreign_gold_patch_gives_a_reason() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let base = new_repo(&dir);
    git(&dir, &["checkout", "-q", "-b", "fix-add"]);
    let fixed = CALC.replace("a - b", "a + b");
    let t1 = format!("{TESTS}\n\ndef test_add():\n    assert add(1, 2) == 3\n");
    let fix = commit(
        &dir,
        &[("calc.py", &fixed), ("tests/test_calc.py", &t1)],
        "Fix add",
    );
    let t2 = format!("{t1}\n\ndef test_add_negative():\n    assert add(-1, -2) == -3\n");
    let pr_head = commit(
        &dir,
        &[
            ("tests/test_calc.py", &t2),
            ("tests/data/cases.txt", "1 2 3\n"),
        ],
        "More tests",
    );
    git(&dir, &["checkout", "-q", "main"]);
    commit(&dir, &[("README", "calc, a calculator\n")], "Docs");
    git(
        &dir,
        &[
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "Merge pull request #12",
            "fix-add",
        ],
    );
    git(&dir, &["branch", "-q", "-D", "fix-add"]);
    let gold = published_diff(&dir, &base, &fix, &["calc.py"]);
    let known = published_diff(&dir, &base, &pr_head, &["tests"]);

    // From a bare mirror, as the bench mirrors are.
    let bare = work.path().join("mirror.git");
    Command::new("git")
        .args(["clone", "-q", "--mirror"])
        .arg(&dir)
        .arg(&bare)
        .status()
        .unwrap();
    let r = recover_test_patch(&bare, &base, &gold, Some(12))
        .unwrap()
        .unwrap_or_else(|e| panic!("not recovered: {e:?}"));
    assert_eq!(r.head, pr_head);
    assert_eq!(r.fork, base);
    assert!(r.extent.starts_with("merge "), "{}", r.extent);
    assert_eq!(
        r.test_files,
        vec!["tests/data/cases.txt", "tests/test_calc.py"]
    );
    assert!(compare(&r.test_patch, &known).exact, "{}", r.test_patch);

    // A gold patch no commit holds: nothing recovered, and why.
    let foreign = published_diff(&dir, &base, &fix, &["calc.py"])
        .replace("+    return a + b", "+    return b + a");
    let e = recover_test_patch(&bare, &base, &foreign, None)
        .unwrap()
        .unwrap_err();
    assert_eq!(e.cause, "no commit holds the gold post-images");
    // One that does not apply at base_commit.
    let broken = gold.replace("-    return a - b", "-    return a / b");
    let e = recover_test_patch(&bare, &base, &broken, None)
        .unwrap()
        .unwrap_err();
    assert_eq!(e.cause, "gold patch does not apply at base_commit", "{e:?}");
    let e = recover_test_patch(
        &bare,
        "0123456789abcdef0123456789abcdef01234567",
        &gold,
        None,
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(e.cause, "base_commit not in the mirror");
}

#[test]
fn a_squash_merge_after_the_file_moved_on_is_found_by_its_pr_number() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let base = new_repo(&dir);
    // The PR was made at base; main changed calc.py before the squash landed.
    let gold_tree = CALC.replace("a - b", "a + b");
    git(&dir, &["checkout", "-q", "-b", "pr"]);
    let pr = commit(&dir, &[("calc.py", &gold_tree)], "pr");
    let gold = published_diff(&dir, &base, &pr, &["calc.py"]);
    git(&dir, &["checkout", "-q", "main"]);
    git(&dir, &["branch", "-q", "-D", "pr"]);
    let moved = CALC.replace("a * b", "b * a");
    commit(&dir, &[("calc.py", &moved)], "Swap mul (#30)");
    let t = format!("{TESTS}\n\ndef test_add():\n    assert add(1, 2) == 3\n");
    let squash = commit(
        &dir,
        &[
            ("calc.py", &moved.replace("a - b", "a + b")),
            ("tests/test_calc.py", &t),
        ],
        "FIX add() (#31)",
    );
    let r = recover_test_patch(&dir.join(".git"), &base, &gold, Some(31))
        .unwrap()
        .unwrap_or_else(|e| panic!("not recovered: {e:?}"));
    assert_eq!(r.matched, BlobMatch::PrNumber { number: 31 });
    assert_eq!(r.head, squash);
    assert!(
        r.test_patch.contains("+def test_add():"),
        "{}",
        r.test_patch
    );
    assert!(r.applies_at_base);
    // Without the number, the post-image is nowhere.
    let e = recover_test_patch(&dir.join(".git"), &base, &gold, None)
        .unwrap()
        .unwrap_err();
    assert_eq!(e.cause, "no commit holds the gold post-images");
}

/// A fork whose default branch merged upstream in as a second parent (as the scikit-learn
/// fork did): the squash commit looks like a PR branch of that merge, and its extent then
/// starts before base_commit, so the test patch does not apply there. The commit naming the
/// PR number, taken alone, gives the one that does.
#[test]
fn a_test_patch_that_does_not_apply_falls_back_to_the_commit_naming_the_pr() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let c0 = new_repo(&dir);
    let t1 = format!("{TESTS}\n\ndef test_mul_one():\n    assert mul(1, 3) == 3\n");
    let base = commit(
        &dir,
        &[("tests/test_calc.py", &t1)],
        "Test mul by one (#39)",
    );
    let t2 = format!("{t1}\n\ndef test_add():\n    assert add(1, 2) == 3\n");
    let squash = commit(
        &dir,
        &[
            ("calc.py", &CALC.replace("a - b", "a + b")),
            ("tests/test_calc.py", &t2),
        ],
        "Fix add() (#40)",
    );
    let gold = published_diff(&dir, &base, &squash, &["calc.py"]);
    let known = published_diff(&dir, &base, &squash, &["tests/test_calc.py"]);
    git(&dir, &["checkout", "-q", "-b", "fork", &c0]);
    commit(&dir, &[("README", "the fork\n")], "Fork readme");
    git(
        &dir,
        &["merge", "-q", "--no-ff", "-m", "Merge upstream", "main"],
    );
    git(&dir, &["branch", "-q", "-D", "main"]);

    let r = recover_test_patch(&dir.join(".git"), &base, &gold, Some(40))
        .unwrap()
        .unwrap_or_else(|e| panic!("not recovered: {e:?}"));
    assert_eq!(r.matched, BlobMatch::PrNumber { number: 40 });
    assert_eq!(
        (r.head.as_str(), r.fork.as_str()),
        (squash.as_str(), base.as_str())
    );
    assert!(r.applies_at_base);
    assert!(compare(&r.test_patch, &known).exact, "{}", r.test_patch);
    // Without the number the merge's extent stands, and the result says it does not apply.
    let r = recover_test_patch(&dir.join(".git"), &base, &gold, None)
        .unwrap()
        .unwrap();
    assert!(r.extent.starts_with("merge "), "{}", r.extent);
    assert_eq!(r.fork, c0);
    assert!(!r.applies_at_base);
}
