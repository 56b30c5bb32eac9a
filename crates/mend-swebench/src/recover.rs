//! Test patches recovered from history: for a record that has a gold `patch` and a
//! `base_commit` but no `test_patch`, find the upstream change the gold patch belongs to in
//! a mirror of the repository, and take that change's edits to test files.
//!
//! The published patches carry no `index` lines, so the gold patch's post-image blob ids
//! are computed here: the patch is applied to `base_commit`'s tree in a scratch index. The
//! change is the first commit after `base_commit` whose tree holds all those blobs (the
//! default branch first, then every ref, pull-request heads included); failing that, the
//! commit holding most of them. Its extent is then widened to the whole pull request:
//! the merge that brought it in (its second parent is the PR head), a `refs/pull/*/head`
//! pointing at it, or the run of first-parent commits before it that name the same ticket
//! (`Refs #N` then `Fixed #N`, as Django lands a PR). The test patch is the diff of the
//! test files ([`crate::mine::is_test_path`]) over that extent.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::SwebenchError;
use crate::mine::is_test_path;

/// How the change was matched to the gold patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BlobMatch {
    /// A commit's tree holds every post-image blob of the gold patch.
    All { files: usize },
    /// No commit holds them all (the files moved on before it landed); this one changes
    /// the files and its message names the pull request (`(#N)`, a squash merge).
    PrNumber { number: u64 },
    /// No commit holds them all; this one holds the most.
    Partial { matched: usize, files: usize },
}

/// Why no test patch was recovered: a cause for the report's table, and the details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRecovered {
    pub cause: &'static str,
    pub detail: String,
}

fn none(
    cause: &'static str,
    detail: String,
) -> Result<Result<Recovered, NotRecovered>, SwebenchError> {
    Ok(Err(NotRecovered { cause, detail }))
}

/// A test patch taken from the upstream change.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub test_patch: String,
    pub test_files: Vec<String>,
    /// The change's last commit (the PR head).
    pub head: String,
    /// The commit the change's diff starts from.
    pub fork: String,
    /// How the commit holding the gold post-images was found to belong to a larger change:
    /// `merge <sha>`, `pr-ref <ref>`, `commits <n>` (first-parent run) or `branch`.
    pub extent: String,
    pub matched: BlobMatch,
    /// Does the recovered test patch apply to `base_commit` (after the gold patch)?
    pub applies_at_base: bool,
}

struct Git<'a> {
    dir: &'a Path,
}

impl Git<'_> {
    fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &Path)],
    ) -> Result<Result<String, String>, SwebenchError> {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir").arg(self.dir).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(SwebenchError::io("running git"))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            let input = input.to_string();
            // Written from a thread: git may fill its stdout before reading all its input.
            let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
            let out = child
                .wait_with_output()
                .map_err(SwebenchError::io("running git"))?;
            let _ = writer.join();
            return Ok(result_of(out));
        }
        let out = child
            .wait_with_output()
            .map_err(SwebenchError::io("running git"))?;
        Ok(result_of(out))
    }

    /// stdout, or an error naming the git command.
    fn out(&self, args: &[&str]) -> Result<String, SwebenchError> {
        self.run(args, None, &[])?.map_err(|e| {
            SwebenchError::Invalid(format!(
                "git {} in {}: {}",
                args.join(" "),
                self.dir.display(),
                e
            ))
        })
    }

    fn ok(&self, args: &[&str]) -> Result<bool, SwebenchError> {
        Ok(self.run(args, None, &[])?.is_ok())
    }
}

fn result_of(out: std::process::Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The post-image paths of a patch, in order (`diff --git a/X b/Y` gives `Y`).
pub fn patch_files(patch: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/")
            && let Some((_, b)) = rest.split_once(" b/")
            && !out.iter().any(|f| f == b)
        {
            out.push(b.to_string());
        }
    }
    out
}

/// Blob id of each of `files` after applying `patch` to `base`'s tree (`None`: deleted),
/// or why the patch does not apply there.
fn post_images(
    git: &Git,
    base: &str,
    patch: &str,
    files: &[String],
) -> Result<Result<BTreeMap<String, Option<String>>, String>, SwebenchError> {
    let scratch = tempfile::tempdir().map_err(SwebenchError::io("making a scratch directory"))?;
    let index = scratch.path().join("index");
    let env = [("GIT_INDEX_FILE", index.as_path())];
    if let Err(e) = git.run(&["read-tree", base], None, &env)? {
        return Ok(Err(format!("base_commit {base} is not in the mirror: {e}")));
    }
    // `apply --cached` only touches the index; the scratch work tree satisfies git's check.
    let work = scratch.path().to_string_lossy().into_owned();
    if let Err(e) = git.run(
        &["--work-tree", &work, "apply", "--cached", "-"],
        Some(patch),
        &env,
    )? {
        return Ok(Err(format!(
            "the gold patch does not apply at base_commit: {e}"
        )));
    }
    let mut args = vec!["ls-files", "-s", "--"];
    args.extend(files.iter().map(String::as_str));
    let listed = git
        .run(&args, None, &env)?
        .map_err(SwebenchError::Invalid)?;
    let mut out: BTreeMap<String, Option<String>> =
        files.iter().map(|f| (f.clone(), None)).collect();
    for line in listed.lines() {
        if let Some((meta, path)) = line.split_once('\t')
            && let Some(oid) = meta.split_whitespace().nth(1)
        {
            out.insert(path.to_string(), Some(oid.to_string()));
        }
    }
    Ok(Ok(out))
}

/// The commits among `revs` (not reachable from `base`) that change `files`, oldest first,
/// and how many of the gold post-images each one's tree holds.
fn scored_commits(
    git: &Git,
    revs: &[&str],
    base: &str,
    post: &BTreeMap<String, Option<String>>,
) -> Result<Vec<(String, usize)>, SwebenchError> {
    let not_base = format!("^{base}");
    let mut args = vec!["rev-list", "--full-history", "--topo-order", "--reverse"];
    args.extend(revs);
    args.push(&not_base);
    args.push("--");
    args.extend(post.keys().map(String::as_str));
    let commits: Vec<String> = git
        .out(&args)?
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    if commits.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = String::new();
    for c in &commits {
        for f in post.keys() {
            query.push_str(&format!("{c}:{f}\n"));
        }
    }
    let answer = git
        .run(&["cat-file", "--batch-check"], Some(&query), &[])?
        .map_err(SwebenchError::Invalid)?;
    let lines: Vec<&str> = answer.lines().collect();
    let n = post.len();
    let mut out = Vec::with_capacity(commits.len());
    for (i, c) in commits.into_iter().enumerate() {
        let matched = post
            .values()
            .enumerate()
            .filter(|(j, want)| {
                let line = lines.get(i * n + j).copied().unwrap_or("");
                // `<oid> blob <size>`, or `<name> missing` for a path the commit lacks.
                let have = (!line.ends_with(" missing"))
                    .then(|| line.split_whitespace().next())
                    .flatten();
                have == want.as_deref()
            })
            .count();
        out.push((c, matched));
    }
    Ok(out)
}

/// The commit whose tree holds the gold patch's post-images (all of them; else one naming
/// the pull request that changes the files; else the one holding most).
fn matching_commit(
    git: &Git,
    base: &str,
    post: &BTreeMap<String, Option<String>>,
    pr_number: Option<u64>,
) -> Result<Option<(String, BlobMatch)>, SwebenchError> {
    let files = post.len();
    let mut best: Option<(String, usize)> = None;
    // The default branch first: cheaper than every ref, and where most changes landed.
    for revs in [&["HEAD"][..], &["--all"][..]] {
        for (c, matched) in scored_commits(git, revs, base, post)? {
            if matched == files {
                return Ok(Some((c, BlobMatch::All { files })));
            }
            if matched > 0 && best.as_ref().is_none_or(|(_, m)| matched > *m) {
                best = Some((c, matched));
            }
        }
    }
    if let Some(number) = pr_number
        && let Some(c) = pr_number_commit(git, base, post, number)?
    {
        return Ok(Some((c, BlobMatch::PrNumber { number })));
    }
    Ok(best.map(|(c, matched)| (c, BlobMatch::Partial { matched, files })))
}

/// The first commit on the default branch after `base` that changes the gold files and
/// whose message names pull request `number` (`(#N)`: a squash merge).
fn pr_number_commit(
    git: &Git,
    base: &str,
    post: &BTreeMap<String, Option<String>>,
    number: u64,
) -> Result<Option<String>, SwebenchError> {
    let not_base = format!("^{base}");
    let grep = format!("#{number}([^0-9]|$)");
    let mut args = vec![
        "rev-list",
        "--reverse",
        "-E",
        "--grep",
        &grep,
        "HEAD",
        &not_base,
        "--",
    ];
    args.extend(post.keys().map(String::as_str));
    Ok(git.out(&args)?.lines().next().map(str::to_string))
}

fn parents(git: &Git, commit: &str) -> Result<Vec<String>, SwebenchError> {
    Ok(git
        .out(&["rev-list", "--parents", "-n", "1", commit])?
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect())
}

/// `#123` tokens of a commit subject (Django's ticket references).
fn tickets(subject: &str) -> Vec<String> {
    let re = regex::Regex::new(r"#\d+\b").expect("valid regex");
    re.find_iter(subject)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// More commits than this on a merge's side line are not one pull request.
const MAX_PR_COMMITS: usize = 100;

/// (fork, head, extent) of the change `commit` belongs to.
fn change_extent(
    git: &Git,
    base: &str,
    commit: &str,
    pr_number: Option<u64>,
) -> Result<(String, String, String), SwebenchError> {
    let merge_base = |a: &str, b: &str| -> Result<String, SwebenchError> {
        Ok(git.out(&["merge-base", a, b])?.trim().to_string())
    };
    // The pull request's own head, when the mirror has it and it holds the commit.
    if let Some(n) = pr_number {
        let r = format!("refs/pull/{n}/head");
        if let Ok(head) = git.run(
            &["rev-parse", "--verify", &format!("{r}^{{commit}}")],
            None,
            &[],
        )? && git.ok(&["merge-base", "--is-ancestor", commit, head.trim()])?
        {
            let head = head.trim().to_string();
            return Ok((merge_base(base, &head)?, head, format!("pr-ref {r}")));
        }
    }
    if git.ok(&["merge-base", "--is-ancestor", commit, "HEAD"])? {
        // The first merge after the commit: if its first parent lacks the commit, the
        // commit came in on its second parent, the PR branch.
        let merges = git.out(&[
            "rev-list",
            "--ancestry-path",
            "--merges",
            "--reverse",
            &format!("{commit}..HEAD"),
        ])?;
        if let Some(m) = merges.lines().next() {
            let ps = parents(git, m)?;
            // A pull request's branch is short; a long side line is another branch's history
            // merged in (forks have such merges), not the change's extent.
            let side = || -> Result<usize, SwebenchError> {
                Ok(git
                    .out(&["rev-list", "--count", &format!("{}..{}", ps[0], ps[1])])?
                    .trim()
                    .parse()
                    .unwrap_or(usize::MAX))
            };
            if ps.len() >= 2
                && !git.ok(&["merge-base", "--is-ancestor", commit, &ps[0]])?
                && side()? <= MAX_PR_COMMITS
            {
                let fork = merge_base(&ps[0], &ps[1])?;
                return Ok((
                    fork,
                    ps[1].clone(),
                    format!("merge {}", &m[..m.len().min(12)]),
                ));
            }
        }
        // Landed on the main line: widen over the preceding commits naming the same ticket.
        let subject = git.out(&["log", "-1", "--format=%s", commit])?;
        let refs = tickets(&subject);
        let mut first = commit.to_string();
        let mut count = 1;
        if !refs.is_empty() {
            while count < 20 {
                let ps = parents(git, &first)?;
                let [p] = ps.as_slice() else { break };
                if p == base || !git.ok(&["merge-base", "--is-ancestor", base, p])? {
                    break;
                }
                let subject = git.out(&["log", "-1", "--format=%s", p])?;
                if !tickets(&subject).iter().any(|t| refs.contains(t))
                    || parents(git, p)?.len() != 1
                {
                    break;
                }
                first = p.clone();
                count += 1;
            }
        }
        let fork = parents(git, &first)?
            .into_iter()
            .next()
            .unwrap_or_else(|| base.to_string());
        return Ok((fork, commit.to_string(), format!("commits {count}")));
    }
    let fork = merge_base(base, commit)?;
    let pointing = git.out(&[
        "for-each-ref",
        "--points-at",
        commit,
        "--format=%(refname)",
        "refs/pull",
    ])?;
    let extent = match pointing.lines().next() {
        Some(r) => format!("pr-ref {r}"),
        None => "branch".to_string(),
    };
    Ok((fork, commit.to_string(), extent))
}

/// Does `test_patch` apply to `base` once `gold` is applied?
fn applies_at(git: &Git, base: &str, gold: &str, test_patch: &str) -> Result<bool, SwebenchError> {
    let scratch = tempfile::tempdir().map_err(SwebenchError::io("making a scratch directory"))?;
    let index = scratch.path().join("index");
    let env = [("GIT_INDEX_FILE", index.as_path())];
    let work = scratch.path().to_string_lossy().into_owned();
    let apply = ["--work-tree", &work, "apply", "--cached", "-"];
    Ok(git.run(&["read-tree", base], None, &env)?.is_ok()
        && git.run(&apply, Some(gold), &env)?.is_ok()
        && git.run(&apply, Some(test_patch), &env)?.is_ok())
}

/// The test patch of the upstream change `gold_patch` belongs to, from the mirror at
/// `git_dir`; `Ok(Err(why))` when there is none to find (the gold patch does not apply at
/// `base_commit`, no later commit holds its post-images, the change touches no test file).
/// `pr_number` (SWE-bench ids end in it) finds a squash merge by its `(#N)` when the files
/// moved on before it landed, and lets a mirror's `refs/pull/N/head` give the PR's extent.
pub fn recover_test_patch(
    git_dir: &Path,
    base_commit: &str,
    gold_patch: &str,
    pr_number: Option<u64>,
) -> Result<Result<Recovered, NotRecovered>, SwebenchError> {
    let git = Git { dir: git_dir };
    let files = patch_files(gold_patch);
    if files.is_empty() {
        return none(
            "gold patch names no file",
            "the gold patch has no `diff --git` line".into(),
        );
    }
    let base = match git.run(
        &[
            "rev-parse",
            "--verify",
            &format!("{base_commit}^{{commit}}"),
        ],
        None,
        &[],
    )? {
        Ok(s) => s.trim().to_string(),
        Err(_) => {
            return none(
                "base_commit not in the mirror",
                format!("base_commit {base_commit} is not in {}", git_dir.display()),
            );
        }
    };
    let post = match post_images(&git, &base, gold_patch, &files)? {
        Ok(p) => p,
        Err(why) => return none("gold patch does not apply at base_commit", why),
    };
    let Some((commit, matched)) = matching_commit(&git, &base, &post, pr_number)? else {
        return none(
            "no commit holds the gold post-images",
            format!(
                "no commit after base_commit holds any of the gold patch's post-images of {}",
                files.join(", ")
            ),
        );
    };
    let found = test_patch_of(&git, &base, gold_patch, &commit, matched.clone(), pr_number)?;
    // A test patch that does not apply at base_commit means the extent went wrong (a merge of
    // another branch taken for the PR's); the squash commit naming the PR, when there is one
    // (often the very commit found), is tried alone instead.
    if let (Ok(r), Some(number)) = (&found, pr_number)
        && !r.applies_at_base
        && !matches!(matched, BlobMatch::PrNumber { .. })
        && let Some(c) = pr_number_commit(&git, &base, &post, number)?
        && let Ok(other) = test_patch_of(
            &git,
            &base,
            gold_patch,
            &c,
            BlobMatch::PrNumber { number },
            pr_number,
        )?
        && other.applies_at_base
    {
        return Ok(Ok(other));
    }
    Ok(found)
}

/// The test patch of the change `commit` (matched to the gold patch by `matched`) belongs to.
fn test_patch_of(
    git: &Git,
    base: &str,
    gold_patch: &str,
    commit: &str,
    matched: BlobMatch,
    pr_number: Option<u64>,
) -> Result<Result<Recovered, NotRecovered>, SwebenchError> {
    let (fork, head, extent) = match matched {
        // A squash merge found by its number is the whole change.
        BlobMatch::PrNumber { .. } => (
            parents(git, commit)?
                .into_iter()
                .next()
                .unwrap_or_else(|| base.to_string()),
            commit.to_string(),
            "commits 1".to_string(),
        ),
        _ => change_extent(git, base, commit, pr_number)?,
    };
    let names = git.out(&["diff", "--name-only", "--no-renames", &fork, &head])?;
    let test_files: Vec<String> = names
        .lines()
        .filter(|p| !p.is_empty() && is_test_path(p))
        .map(str::to_string)
        .collect();
    if test_files.is_empty() {
        return none(
            "the change touches no test file",
            format!("the change {fork}..{head} touches no test file"),
        );
    }
    let mut args = vec![
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-renames",
        "--binary",
        "--full-index",
        &fork,
        &head,
        "--",
    ];
    args.extend(test_files.iter().map(String::as_str));
    let test_patch = git.out(&args)?;
    let applies_at_base = applies_at(git, base, gold_patch, &test_patch)?;
    Ok(Ok(Recovered {
        test_patch,
        test_files,
        head,
        fork,
        extent,
        matched,
        applies_at_base,
    }))
}

/// A patch reduced to what it changes: file -> hunks, each hunk its body lines (context,
/// `+`, `-`; trailing blanks trimmed). Headers, `index` lines and line numbers are left out,
/// so two diffs of the same change made at different commits compare equal.
pub fn normalise_patch(patch: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut file: Option<String> = None;
    let mut in_hunk = false;
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            file = patch_files(line).into_iter().next();
            if let Some(f) = &file {
                out.entry(f.clone()).or_default();
            }
            in_hunk = false;
            continue;
        }
        let Some(f) = &file else { continue };
        if line.starts_with("@@") {
            out.entry(f.clone()).or_default().push(Vec::new());
            in_hunk = true;
            continue;
        }
        if in_hunk && matches!(line.chars().next(), Some(' ' | '+' | '-') | None) {
            if let Some(h) = out.get_mut(f).and_then(|v| v.last_mut()) {
                h.push(line.trim_end().to_string());
            }
        } else {
            in_hunk = false;
        }
    }
    out
}

/// How a recovered test patch compares with the known one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub exact: bool,
    /// Test files the known patch changes and the recovered one does not.
    pub missing_files: Vec<String>,
    /// Test files the recovered patch changes and the known one does not.
    pub extra_files: Vec<String>,
    /// Files both change, with different hunks.
    pub differing_files: Vec<String>,
}

impl Comparison {
    /// One cause for a table of misses.
    pub fn cause(&self) -> &'static str {
        match (
            self.exact,
            self.missing_files.is_empty(),
            self.extra_files.is_empty(),
        ) {
            (true, ..) => "exact",
            (false, false, false) => "other test files",
            (false, false, true) => "missing test files",
            (false, true, false) => "extra test files",
            (false, true, true) => "same files, different hunks",
        }
    }
}

/// Compare normalised: same files, same hunks.
pub fn compare(recovered: &str, known: &str) -> Comparison {
    let a = normalise_patch(recovered);
    let b = normalise_patch(known);
    let missing_files: Vec<String> = b.keys().filter(|f| !a.contains_key(*f)).cloned().collect();
    let extra_files: Vec<String> = a.keys().filter(|f| !b.contains_key(*f)).cloned().collect();
    let differing_files: Vec<String> = a
        .iter()
        .filter(|(f, h)| b.get(*f).is_some_and(|k| k != *h))
        .map(|(f, _)| f.clone())
        .collect();
    Comparison {
        exact: missing_files.is_empty() && extra_files.is_empty() && differing_files.is_empty(),
        missing_files,
        extra_files,
        differing_files,
    }
}

/// One record's recovery, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRecovery {
    pub instance_id: String,
    pub repo: String,
    /// The record came with a `test_patch` (the recovered one is compared with it).
    pub had_test_patch: bool,
    /// Why nothing was recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_recovered: Option<NotRecovered>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fork: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<BlobMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applies_at_base: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub secs: f64,
}

/// The figures of a batch: how many records got a test patch, and on those whose
/// `test_patch` was known, how many recovered ones match it exactly and why the rest differ.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryReport {
    pub records: usize,
    /// Stopped before every record was looked at.
    pub interrupted: bool,
    pub recovered: usize,
    /// Records without a `test_patch` that now have one.
    pub filled_in: usize,
    pub with_known_test_patch: usize,
    /// Of those, recovered and compared.
    pub compared: usize,
    pub exact: usize,
    /// `exact / with_known_test_patch` (a record with nothing recovered counts as a miss).
    pub exact_rate: f64,
    /// Misses among records with a known test patch, by cause.
    pub miss_causes: BTreeMap<String, usize>,
    /// Records with nothing recovered, by cause.
    pub not_recovered: BTreeMap<String, usize>,
    pub instances: Vec<InstanceRecovery>,
}

/// A record's required string field, or an error naming the line and field.
fn field<'a>(
    m: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    source: &str,
    line: usize,
) -> Result<&'a str, SwebenchError> {
    match m.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        Some(serde_json::Value::String(_)) => Err(record_error(source, line, key, "empty")),
        Some(_) => Err(record_error(source, line, key, "not a string")),
        None => Err(record_error(source, line, key, "missing")),
    }
}

fn record_error(source: &str, line: usize, key: &str, what: &str) -> SwebenchError {
    SwebenchError::Record {
        source_name: source.to_string(),
        line,
        field: Some(key.to_string()),
        message: what.to_string(),
    }
}

/// Parse records (JSONL or a JSON list) that need `instance_id`, `repo`, `base_commit` and
/// `patch`; any other field is kept as it is.
pub fn parse_records(
    text: &str,
    source: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, SwebenchError> {
    let mut out = Vec::new();
    for (line, v) in crate::dataset::parse_records(text, source)? {
        let serde_json::Value::Object(m) = v else {
            return Err(SwebenchError::Record {
                source_name: source.to_string(),
                line,
                field: None,
                message: "expected a JSON object".into(),
            });
        };
        for key in ["instance_id", "repo", "base_commit", "patch"] {
            field(&m, key, source, line)?;
        }
        out.push(m);
    }
    Ok(out)
}

/// Recover the test patch of every record from its repository's mirror. Records without a
/// `test_patch` get the recovered one; records with one keep it and are compared. Returns
/// the records that have a test patch afterwards, and the report. `progress` sees each
/// record as it is done; once `stop()` is true no further record is started (the report says
/// `interrupted`).
pub fn recover_records(
    records: Vec<serde_json::Map<String, serde_json::Value>>,
    mirrors: &crate::offline::MirrorDir,
    stop: &dyn Fn() -> bool,
    mut progress: impl FnMut(&InstanceRecovery),
) -> Result<
    (
        Vec<serde_json::Map<String, serde_json::Value>>,
        RecoveryReport,
    ),
    SwebenchError,
> {
    let mut report = RecoveryReport {
        records: records.len(),
        ..Default::default()
    };
    let mut git_dirs: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    let mut out = Vec::new();
    for mut rec in records {
        if stop() {
            report.interrupted = true;
            break;
        }
        let s = |k: &str| {
            rec.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (id, repo, base, gold) = (s("instance_id"), s("repo"), s("base_commit"), s("patch"));
        let known = Some(s("test_patch")).filter(|t| !t.trim().is_empty());
        let git_dir = match git_dirs.get(&repo) {
            Some(d) => d.clone(),
            None => {
                let d = crate::mine::git_dir_of(&mirrors.find(&repo)?)?;
                git_dirs.insert(repo.clone(), d.clone());
                d
            }
        };
        let started = std::time::Instant::now();
        let pr = id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
        let result = recover_test_patch(&git_dir, &base, &gold, pr)?;
        let mut row = InstanceRecovery {
            instance_id: id,
            repo,
            had_test_patch: known.is_some(),
            not_recovered: None,
            head: None,
            fork: None,
            extent: None,
            matched: None,
            applies_at_base: None,
            test_files: Vec::new(),
            comparison: None,
            cause: None,
            secs: 0.0,
        };
        report.with_known_test_patch += usize::from(known.is_some());
        match result {
            Ok(r) => {
                report.recovered += 1;
                if let Some(k) = &known {
                    let cmp = compare(&r.test_patch, k);
                    report.compared += 1;
                    report.exact += usize::from(cmp.exact);
                    if !cmp.exact {
                        *report
                            .miss_causes
                            .entry(cmp.cause().to_string())
                            .or_default() += 1;
                    }
                    row.cause = Some(cmp.cause().to_string());
                    row.comparison = Some(cmp);
                } else {
                    report.filled_in += 1;
                    rec.insert(
                        "test_patch".into(),
                        serde_json::Value::String(r.test_patch.clone()),
                    );
                }
                row.head = Some(r.head);
                row.fork = Some(r.fork);
                row.extent = Some(r.extent);
                row.matched = Some(r.matched);
                row.applies_at_base = Some(r.applies_at_base);
                row.test_files = r.test_files;
                out.push(rec);
            }
            Err(why) => {
                *report
                    .not_recovered
                    .entry(why.cause.to_string())
                    .or_default() += 1;
                if known.is_some() {
                    *report
                        .miss_causes
                        .entry("nothing recovered".into())
                        .or_default() += 1;
                    out.push(rec);
                }
                row.not_recovered = Some(why);
            }
        }
        row.secs = started.elapsed().as_secs_f64();
        progress(&row);
        report.instances.push(row);
    }
    report.exact_rate = if report.with_known_test_patch == 0 {
        0.0
    } else {
        report.exact as f64 / report.with_known_test_patch as f64
    };
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_patches_ignore_headers_and_line_numbers() {
        let a = "diff --git a/t/test_a.py b/t/test_a.py\nindex 1111111..2222222 100644\n--- a/t/test_a.py\n+++ b/t/test_a.py\n@@ -1,2 +1,3 @@ def f():\n x\n+y\n z\n";
        let b = "diff --git a/t/test_a.py b/t/test_a.py\n--- a/t/test_a.py\n+++ b/t/test_a.py\n@@ -10,2 +10,3 @@\n x\n+y \n z\n";
        assert!(compare(a, b).exact);
        let c = b.replace("+y", "+w");
        let cmp = compare(a, &c);
        assert_eq!(cmp.differing_files, vec!["t/test_a.py"]);
        assert_eq!(cmp.cause(), "same files, different hunks");
        let cmp = compare(a, "");
        assert_eq!(cmp.extra_files, vec!["t/test_a.py"]);
        assert_eq!(cmp.cause(), "extra test files");
    }

    #[test]
    fn ticket_references_are_found() {
        assert_eq!(
            tickets("Fixed #31657 -- Fixed ordering (#12)."),
            vec!["#31657", "#12"]
        );
        assert!(tickets("Bump version").is_empty());
    }
}
