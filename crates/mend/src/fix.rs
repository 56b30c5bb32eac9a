//! `mend fix`: issue in, tested patch out, on the user's own repository.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mend_agent::trajectory::{Trajectory, TrajectoryWriter};
use mend_agent::{
    Agent, AgentConfig, Event, ExitStatus, Prompts, TaskInput, TestSuite, TestsOutcome, Toolbox,
    VerifyConfig, deliver, workspace,
};
use mend_agent::{ContextOptions, RepoContext, repo_context};
use mend_index::{Index, IndexOptions};
use mend_llm::Limits;
use mend_sandbox::{DockerConfig, DockerEngine, Sandbox};
use mend_swebench::suite::RepoSuite;

use crate::config::{FileConfig, RepoConfig};
use crate::issue::{self, GitHubSettings, IssueArg};
use crate::model::ModelArgs;

#[derive(Args, Debug)]
pub struct FixArgs {
    /// The repository: a local path, or a git URL to clone (cached under ~/.cache/mend/repos).
    /// With a GitHub issue URL and no --repo, that issue's repository is cloned.
    #[arg(long)]
    pub repo: Option<String>,
    /// The issue: text, @FILE, or a GitHub issue URL (fetched over the REST API; GITHUB_TOKEN
    /// when set). Enterprise hosts: name the API with --github-api or `github_hosts`.
    #[arg(long)]
    pub issue: String,
    /// Revision to start from.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where commands run: docker (isolated, default) or local (a temporary checkout; file tools stay in it and commands get no keys, but commands run as you on this machine, with your files and network).
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Image for the Docker sandbox (default: mend's base image, built if missing).
    #[arg(long)]
    pub image: Option<String>,
    /// Command that runs the tests (default: detected: pytest, else unittest).
    #[arg(long)]
    pub test_cmd: Option<String>,
    /// Most model calls before stopping.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Most dollars to spend before stopping.
    #[arg(long, value_parser = crate::config::parse_cost)]
    pub max_cost: Option<f64>,
    /// Write the patch here (default: print it on stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Commit the patch on a new branch of this name; your checkout is not touched.
    #[arg(long)]
    pub branch: Option<String>,
    /// Apply the patch to your working tree (refused on uncommitted changes without --force).
    #[arg(long)]
    pub apply: bool,
    /// With --apply: apply even over uncommitted changes.
    #[arg(long)]
    pub force: bool,
    /// Where the trajectory goes (default: ~/.local/share/mend/runs/<time>.traj.json).
    #[arg(long)]
    pub trajectory: Option<PathBuf>,
    /// GitHub API base for issue URLs (GitHub Enterprise: https://HOST/api/v3). GITHUB_TOKEN
    /// goes only to api.github.com or to this.
    #[arg(long, env = "MEND_GITHUB_API")]
    pub github_api: Option<String>,
    /// Let the sandbox reach the network (off by default).
    #[arg(long)]
    pub network: bool,
    /// Once the checks pass, show the model its whole diff beside the issue for one more
    /// round (confirm or revise; one more model call at least).
    #[arg(long)]
    pub review: bool,
    /// Skip mend's own checks at submit: the reproduction runs, the regression guard and
    /// the base-commit run that tells failures the change did not cause.
    #[arg(long)]
    pub no_checks: bool,
}

pub async fn run(
    args: FixArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    // The user's config only: a repository's mend.toml is read later, and only safe keys.
    let (cfg, cfg_path) = FileConfig::user()?;
    if let Some(p) = &cfg_path {
        eprintln!("config: {}", p.display());
    }
    let github = GitHubSettings {
        api: args.github_api.clone().or(cfg.github_api.clone()),
        hosts: cfg.github_hosts.clone().unwrap_or_default(),
    };
    let issue_arg = IssueArg::parse(&args.issue, &github)?;
    if args.apply && args.branch.is_some() {
        bail!("choose one of --apply and --branch");
    }
    // Checked before anything is fetched, built or called.
    if let Some(t) = &args.trajectory {
        deliver::check_file_target(t).context("--trajectory")?;
    }
    if let Some(o) = &args.out {
        deliver::check_file_target(o).context("--out")?;
    }
    if let Some(path) = &args.model.replay {
        let recording = mend_llm::ReplayModel::load(path)
            .with_context(|| format!("loading the recording {}", path.display()))?;
        if recording.remaining() == 0 {
            bail!(
                "the recording {} has no model steps: nothing to replay",
                path.display()
            );
        }
    }
    if args.max_steps == Some(0) {
        bail!("the step limit is 0: nothing would run (give --max-steps 1 or more)");
    }
    let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    let issue = issue::load(&issue_arg, token.as_deref()).await?;
    // Cloned from the host the issue URL named (github.com or the Enterprise host).
    let clone_url = issue
        .repo
        .as_deref()
        .zip(issue::web_base(&args.issue))
        .map(|(r, web)| format!("{web}/{r}.git"));
    let repo = resolve_repo(args.repo.as_deref(), clone_url.as_deref())?;
    let base = workspace::resolve_rev(&repo, &args.rev)?;
    deliver::preflight(
        &repo,
        &deliver::Plan {
            out: args.out.as_deref(),
            branch: args.branch.as_deref(),
            apply: args.apply,
            force: args.force,
        },
    )?;
    match deliver::uncommitted_changes(&repo) {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "note: {n} uncommitted change{} {} not part of the run: mend starts from {} ({})",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" },
            args.rev,
            &base[..12]
        ),
        Err(e) => tracing::debug!(error = %e, "could not count uncommitted changes"),
    }

    let repo_cfg = RepoConfig::load(&repo);
    let user_steps = args.max_steps.or(cfg.max_steps);
    let user_cost = args.max_cost.or(cfg.max_cost);
    let default_steps = AgentConfig::default().max_steps;
    for line in repo_cfg.report(user_steps, user_cost, default_steps) {
        eprintln!("{line}");
    }
    let max_steps = repo_cfg.max_steps(user_steps, default_steps);
    if max_steps == 0 {
        bail!("the step limit is 0: nothing would run (give --max-steps 1 or more)");
    }
    let limits = Limits {
        max_cost_usd: repo_cfg.max_cost(user_cost),
        ..Default::default()
    };
    // A missing key or a dead endpoint fails here, not after minutes of retries.
    let scope = crate::doctor::Scope::default();
    crate::doctor::preflight(&args.model, cfg.model.as_ref(), &scope).await?;
    let model = crate::model::build(&args.model, cfg.model.as_ref(), limits).await?;
    eprintln!("model: {}", model.name());
    // An issue too big for the window is refused before any sandbox is made.
    let probe = TaskInput {
        issue: issue.text.clone(),
        ..Default::default()
    };
    let fits = Agent {
        model: model.clone(),
        prompts: Prompts::builtin()?,
        config: AgentConfig::default(),
    }
    .check_fits(&probe);
    fits.map_err(anyhow::Error::msg)?;
    let sandbox_kind = args
        .sandbox
        .clone()
        .or(cfg.sandbox.clone())
        .unwrap_or_else(|| "docker".into());
    let test_cmd = args
        .test_cmd
        .clone()
        .or(cfg.test_cmd.clone())
        .or(repo_cfg.test_cmd.clone());
    if sandbox_kind == "local"
        && args.test_cmd.is_none()
        && cfg.test_cmd.is_none()
        && let Some(t) = &repo_cfg.test_cmd
    {
        eprintln!(
            "warning: the repository's test command {t:?} will run on this machine, \
             outside any container, because you chose the local sandbox"
        );
    }
    let sandbox: Arc<dyn Sandbox> = match sandbox_kind.as_str() {
        "docker" => {
            let engine = DockerEngine::connect().await?;
            engine.sweep_stale().await?;
            let image = match args.image.clone().or(cfg.image.clone()) {
                Some(i) => i,
                None => crate::images::ensure_base(&engine, false, None).await?,
            };
            let mut dc = DockerConfig::new(image);
            dc.network = args.network;
            eprintln!(
                "sandbox: docker ({}), repository at {}",
                dc.image,
                &base[..12]
            );
            Arc::new(workspace::docker_workspace(&engine, dc, &repo, &base).await?)
        }
        "local" => {
            eprintln!("sandbox: local checkout at {}", &base[..12]);
            Arc::new(workspace::local_workspace(&repo, &base)?)
        }
        other => bail!("unknown sandbox `{other}`: use docker or local"),
    };
    let index = index_at(&repo, &base).await;
    let context = match &index {
        Some(ix) => {
            let (ix, text) = (ix.clone(), issue.text.clone());
            tokio::task::spawn_blocking(move || {
                repo_context(&ix, &text, &ContextOptions::default())
            })
            .await
            .unwrap_or_default()
        }
        None => RepoContext::default(),
    };
    let mut toolbox = Toolbox::new(sandbox.clone(), test_cmd, index);
    // The checks read the test command's output test by test: pytest's or unittest's.
    let suite = toolbox
        .detect_test_command()
        .await
        .as_deref()
        .and_then(RepoSuite::for_command)
        .map(|s| Arc::new(s) as Arc<dyn TestSuite>);
    let mut config = AgentConfig {
        max_steps,
        network: args.network,
        verify: (!args.no_checks).then(|| VerifyConfig {
            suite,
            review: args.review,
            ..Default::default()
        }),
        ..Default::default()
    };
    // A replay condenses where the recorded run did: with its prompt budget, and checks
    // as the recorded run made them (none for trajectories made before they existed). A
    // bare recording of exchanges (the demo's) says nothing of them: checks on, no review
    // (the checks ask the model nothing unless they find something).
    if let Some(path) = args.model.replay.as_deref() {
        match Trajectory::load(path) {
            Ok(t) => {
                config.prompt_budget = t.prompt_budget;
                config.replay_condensations = Some(t.condensations);
                match (&mut config.verify, &t.verification) {
                    (Some(v), Some(rec)) => v.review = rec.review.is_some(),
                    (v, _) => *v = None,
                }
            }
            Err(_) => {
                if let Some(v) = config.verify.as_mut() {
                    v.review = false;
                }
            }
        }
    }
    let agent = Agent {
        model,
        prompts: Prompts::builtin()?,
        config,
    };
    let task = TaskInput {
        issue: match &repo_cfg.description {
            Some(d) => format!(
                "{}\n\nAbout this repository (from its mend.toml):\n{d}\n",
                issue.text
            ),
            None => issue.text.clone(),
        },
        base_commit: Some(base.clone()),
        layout: workspace::layout(sandbox.as_ref()).await,
        localized: context.localized,
        repo_map: context.repo_map,
    };
    let traj_path = match args.trajectory.clone() {
        Some(p) => p,
        None => {
            let p = default_trajectory_path();
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            p
        }
    };
    let writer = TrajectoryWriter::new(Some(traj_path.clone()));
    let on_event = |e: Event| match e {
        Event::Step {
            index,
            tool,
            detail,
            tokens_in,
            tokens_out,
            cost_usd,
        } => {
            eprintln!(
                "step {index:>3}  {tool:<9} {detail:<60.60}  tokens {tokens_in}/{tokens_out}  ${cost_usd:.4}"
            )
        }
        Event::Thought { text, .. } => {
            let first = text.lines().next().unwrap_or("");
            let more = if text.lines().nth(1).is_some() || first.chars().count() > 100 {
                " …"
            } else {
                ""
            };
            eprintln!(
                "      > {}{more}",
                first.chars().take(100).collect::<String>()
            )
        }
        Event::Tests { passed, status } => eprintln!(
            "tests: {}",
            if passed { "passed".to_string() } else { status }
        ),
        Event::Condensed {
            stage,
            tokens_before,
            tokens_after,
            ..
        } => eprintln!(
            "  condensed the conversation ({stage}): {tokens_before} -> {tokens_after} tokens"
        ),
        Event::Checked { summary } => eprintln!("checks: {summary}"),
        Event::Finished { .. } => {}
    };
    let out = agent.run(toolbox, task, &writer, stop, &on_event).await;
    drop(agent);

    eprintln!("\n{}", out.exit.line());
    // Written once more here to know that it was: the loop's own writes only log failures.
    match writer.write(&out.trajectory) {
        Ok(()) => eprintln!("trajectory: {}", traj_path.display()),
        Err(e) => eprintln!(
            "warning: the trajectory was NOT written to {}: {e}",
            traj_path.display()
        ),
    }
    for f in &out.left_out {
        eprintln!("left out of the patch: {} ({})", f.path, f.reason);
    }
    if out.patch.trim().is_empty() {
        eprintln!("no changes were made");
        return Ok(exit_code(&out.exit, true));
    }
    eprint!("{}", diffstat(&out.patch));
    if let Err(e) = deliver_patch(&args, &repo, &base, &issue, &out) {
        // The run's work is never lost to a delivery failure: shown and kept.
        std::io::stdout().write_all(out.patch.as_bytes())?;
        let saved = save_patch(&traj_path, &out.patch);
        let whereto = match &saved {
            Ok(p) => format!("saved to {}", p.display()),
            Err(e2) => format!("could not be saved ({e2})"),
        };
        bail!("{e:#}\nthe patch was not delivered; it is printed above on stdout and {whereto}");
    }
    Ok(exit_code(&out.exit, false))
}

fn deliver_patch(
    args: &FixArgs,
    repo: &Path,
    base: &str,
    issue: &issue::Issue,
    out: &mend_agent::RunOutput,
) -> anyhow::Result<()> {
    if let Some(path) = &args.out {
        deliver::write_patch_file(path, &out.patch)?;
        eprintln!("patch: {}", path.display());
    } else if args.branch.is_none() && !args.apply {
        std::io::stdout().write_all(out.patch.as_bytes())?;
    }
    if let Some(branch) = &args.branch {
        let msg = format!(
            "{}\n\nMade by mend ({}).",
            issue
                .title
                .clone()
                .unwrap_or_else(|| "Fix the issue".into()),
            out.exit.line()
        );
        let id = deliver::commit_on_branch(repo, base, &out.patch, branch, &msg)?;
        eprintln!(
            "committed {} on branch {branch} (your checkout is unchanged)",
            &id[..12]
        );
    }
    if args.apply {
        deliver::apply_to_worktree(repo, &out.patch, args.force)?;
        eprintln!("applied to {}", repo.display());
    }
    Ok(())
}

/// Beside the trajectory (checked writable before the run), else in the temp directory.
fn save_patch(traj_path: &Path, patch: &str) -> anyhow::Result<PathBuf> {
    let beside = traj_path.with_extension("patch");
    if deliver::write_patch_file(&beside, patch).is_ok() {
        return Ok(beside);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let tmp = std::env::temp_dir().join(format!("mend-{}-{t}.patch", std::process::id()));
    deliver::write_patch_file(&tmp, patch)?;
    Ok(tmp)
}

/// 0: submitted with passing (or no) tests; 3: submitted with failing tests; 4: stopped
/// without a submission, or nothing changed; 130: interrupted.
fn exit_code(exit: &ExitStatus, empty_patch: bool) -> ExitCode {
    match exit {
        ExitStatus::Interrupted => ExitCode::from(130),
        _ if empty_patch => ExitCode::from(4),
        ExitStatus::Submitted {
            tests: TestsOutcome::Passed | TestsOutcome::NotRun,
        } => ExitCode::SUCCESS,
        ExitStatus::Submitted {
            tests: TestsOutcome::Failed | TestsOutcome::OnlyPreexistingFailures,
        } => ExitCode::from(3),
        _ => ExitCode::from(4),
    }
}

/// The repository's index at the base commit (cached by blob, so a second run is quick).
/// The index only gives hints: when it cannot be built the run goes on without it.
async fn index_at(repo: &Path, base: &str) -> Option<Arc<Index>> {
    let (repo, base) = (repo.to_path_buf(), base.to_string());
    let built = tokio::task::spawn_blocking(move || {
        Index::from_git(&repo, &base, &IndexOptions::default())
    })
    .await;
    match built {
        Ok(Ok(ix)) => {
            let st = ix.stats();
            eprintln!(
                "index: {} files, {} symbols in {:.1}s ({} parsed, {} from cache)",
                st.files, st.symbols, st.seconds, st.parsed, st.from_cache
            );
            Some(Arc::new(ix))
        }
        Ok(Err(e)) => {
            eprintln!("index: not built ({e}); going on without it");
            None
        }
        Err(e) => {
            eprintln!("index: not built ({e}); going on without it");
            None
        }
    }
}

/// A local path, or a URL cloned (or refreshed) into the cache.
fn resolve_repo(arg: Option<&str>, from_issue: Option<&str>) -> anyhow::Result<PathBuf> {
    let url = match (arg, from_issue) {
        (Some(a), _) if Path::new(a).exists() => {
            return Path::new(a)
                .canonicalize()
                .with_context(|| format!("resolving {a}"));
        }
        (Some(a), _) if a.contains("://") || a.starts_with("git@") => a.to_string(),
        (Some(a), _) => bail!("--repo {a}: no such directory, and not a URL"),
        (None, Some(url)) => url.to_string(),
        (None, None) => std::env::current_dir()?.display().to_string(),
    };
    if Path::new(&url).exists() {
        return Ok(PathBuf::from(url));
    }
    let name: String = url
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("_");
    let cache = dirs_cache().join("repos").join(name);
    let status = if cache.join(".git").exists() {
        eprintln!("updating {}", cache.display());
        std::process::Command::new("git")
            .arg("-C")
            .arg(&cache)
            .args(["fetch", "--quiet", "origin"])
            .status()
    } else {
        eprintln!("cloning {url} into {}", cache.display());
        std::fs::create_dir_all(cache.parent().unwrap_or(Path::new(".")))?;
        std::process::Command::new("git")
            .args(["clone", "--quiet", &url])
            .arg(&cache)
            .status()
    }
    .context("running git")?;
    if !status.success() {
        bail!("could not clone or update {url}");
    }
    Ok(cache)
}

fn dirs_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        })
        .join("mend")
}

fn default_trajectory_path() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    data.join("mend/runs").join(format!("fix-{t}.traj.json"))
}

/// `git diff --stat`-like summary.
fn diffstat(patch: &str) -> String {
    let mut out = String::new();
    let mut current: Option<(String, usize, usize)> = None;
    let flush = |c: Option<(String, usize, usize)>, out: &mut String| {
        if let Some((f, a, r)) = c {
            out.push_str(&format!(" {f} | +{a} -{r}\n"));
        }
    };
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            flush(current.take(), &mut out);
            current = Some((
                rest.rsplit_once(" b/")
                    .map(|(_, p)| p.to_string())
                    .unwrap_or_default(),
                0,
                0,
            ));
        } else if let Some(c) = current.as_mut() {
            if line.starts_with('+') && !line.starts_with("+++") {
                c.1 += 1;
            } else if line.starts_with('-') && !line.starts_with("---") {
                c.2 += 1;
            }
        }
    }
    flush(current, &mut out);
    out
}
