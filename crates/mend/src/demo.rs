//! `mend demo`: the whole loop on a bundled repository, answered by a recorded conversation
//! (a `ReplayModel`), so it runs with no model endpoint. Clearly labelled as a replay.
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::fix::FixArgs;
use crate::model::ModelArgs;

/// The bundled repository: a small package with a real bug and failing tests.
const FILES: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../../tests/fixtures/textkit/files/README.md"),
    ),
    (
        "textkit/__init__.py",
        include_str!("../../../tests/fixtures/textkit/files/textkit/__init__.py"),
    ),
    (
        "textkit/stats.py",
        include_str!("../../../tests/fixtures/textkit/files/textkit/stats.py"),
    ),
    (
        "tests/__init__.py",
        include_str!("../../../tests/fixtures/textkit/files/tests/__init__.py"),
    ),
    (
        "tests/test_stats.py",
        include_str!("../../../tests/fixtures/textkit/files/tests/test_stats.py"),
    ),
];
const ISSUE: &str = include_str!("../../../tests/fixtures/textkit/issue.md");
/// Recorded from a scripted model with `cargo test -p mend --test demo -- --ignored`.
const RECORDING: &str = include_str!("../../../tests/fixtures/textkit/recording.json");
/// Three recorded attempts for `--candidates 3`: one fails the others' reproduction (it
/// misses newlines and tabs), one breaks an existing test, one is right. Recorded with
/// `cargo test -p mend --test select_e2e regenerate_demo_candidates -- --ignored`.
const CANDIDATES: [&str; 3] = [
    include_str!("../../../tests/fixtures/textkit/candidates/1.json"),
    include_str!("../../../tests/fixtures/textkit/candidates/2.json"),
    include_str!("../../../tests/fixtures/textkit/candidates/3.json"),
];

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where commands run: docker (default) or local.
    #[arg(long, default_value = "docker")]
    pub sandbox: String,
    /// Image for the Docker sandbox (default: mend's base image, built if missing).
    #[arg(long)]
    pub image: Option<String>,
    /// Keep the demo repository, patch and trajectory in this directory (default: a
    /// temporary directory, removed afterwards).
    #[arg(long)]
    pub keep: Option<std::path::PathBuf>,
    /// 3: replay three recorded candidates and show how mend chooses among them by running
    /// them (reproductions, related tests) and prints the selection table.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=3))]
    pub candidates: u16,
}

pub async fn run(
    args: DemoArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    if args.candidates == 2 {
        anyhow::bail!(
            "--candidates: the demo has one recorded run or three recorded candidates (1 or 3)"
        );
    }
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = args
        .keep
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let repo = dir.join("textkit");
    if repo.exists() {
        anyhow::bail!(
            "{} exists already; give --keep an empty directory",
            repo.display()
        );
    }
    make_repo(&repo)?;
    let recording = dir.join("recording.json");
    std::fs::write(&recording, RECORDING).context("writing the recording")?;
    let mut replays = Vec::new();
    if args.candidates == 3 {
        for (k, text) in CANDIDATES.iter().enumerate() {
            let p = dir.join(format!("candidate{}.json", k + 1));
            std::fs::write(&p, text).context("writing a candidate's recording")?;
            replays.push(p);
        }
        eprintln!(
            "== three recorded candidates: one misses part of the issue, one breaks an existing test, one is right =="
        );
    }
    let issue = dir.join("issue.md");
    std::fs::write(&issue, ISSUE).context("writing the issue")?;
    eprintln!("== mend demo: REPLAY ==");
    eprintln!("The model's answers are replayed from a recorded conversation, not a live model;");
    eprintln!(
        "everything else is real: the repository {}, the {} sandbox, the edits and the tests.",
        repo.display(),
        args.sandbox
    );
    eprintln!(
        "With a model endpoint: mend fix --repo PATH --issue @ISSUE.md --base-url URL --model NAME\n"
    );
    let fix = FixArgs {
        repo: Some(repo.display().to_string()),
        issue: format!("@{}", issue.display()),
        rev: "HEAD".into(),
        model: ModelArgs {
            replay: Some(recording),
            ..Default::default()
        },
        sandbox: Some(args.sandbox),
        image: args.image,
        test_cmd: None,
        max_steps: None,
        max_cost: None,
        out: Some(dir.join("fix.patch")),
        branch: None,
        apply: false,
        force: false,
        trajectory: Some(dir.join("demo.traj.json")),
        github_api: None,
        network: false,
        candidates: args.candidates,
        judge: false,
        replays,
        // The recordings hold no review answers.
        no_review: true,
        no_checks: false,
    };
    let code = crate::fix::run(fix, stop).await?;
    if let Ok(patch) = std::fs::read_to_string(dir.join("fix.patch")) {
        println!("{patch}");
    }
    if args.keep.is_none() {
        eprintln!("(the demo directory is removed; pass --keep DIR to look at it)");
    }
    Ok(code)
}

fn make_repo(repo: &Path) -> anyhow::Result<()> {
    for (path, text) in FILES {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(repo))?;
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    let r = git2::Repository::init(repo)?;
    let mut index = r.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = r.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("mend demo", "demo@mend.invalid")?;
    r.commit(
        Some("HEAD"),
        &sig,
        &sig,
        "textkit: word statistics",
        &tree,
        &[],
    )?;
    Ok(())
}
