//! `mend fix`: issue in, tested patch out, on the user's own repository.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mend_agent::trajectory::TrajectoryWriter;
use mend_agent::{
    Agent, AgentConfig, Event, ExitStatus, Prompts, TaskInput, TestsOutcome, Toolbox, deliver,
    workspace,
};
use mend_agent::{ContextOptions, RepoContext, repo_context};
use mend_index::{Index, IndexOptions};
use mend_llm::Limits;
use mend_sandbox::{DockerConfig, DockerEngine, Sandbox};

use crate::config::FileConfig;
use crate::issue::{self, IssueArg};
use crate::model::ModelArgs;

#[derive(Args, Debug)]
pub struct FixArgs {
    /// The repository: a local path, or a git URL to clone (cached under ~/.cache/mend/repos).
    /// With a GitHub issue URL and no --repo, that issue's repository is cloned.
    #[arg(long)]
    pub repo: Option<String>,
    /// The issue: text, @FILE, or a GitHub issue URL (fetched over the REST API; GITHUB_TOKEN when set).
    #[arg(long)]
    pub issue: String,
    /// Revision to start from.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where commands run: docker (isolated, default) or local (a temporary checkout).
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
    #[arg(long)]
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
    /// GitHub API base (GitHub Enterprise, or a local stand-in).
    #[arg(long, env = "MEND_GITHUB_API")]
    pub github_api: Option<String>,
    /// Let the sandbox reach the network (off by default).
    #[arg(long)]
    pub network: bool,
}

pub async fn run(
    args: FixArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let issue_arg = IssueArg::parse(&args.issue);
    let local_repo = args.repo.as_deref().map(Path::new).filter(|p| p.exists());
    let (cfg, cfg_path) = FileConfig::discover(local_repo)?;
    if let Some(p) = &cfg_path {
        eprintln!("config: {}", p.display());
    }
    let github_api = args
        .github_api
        .clone()
        .or(cfg.github_api.clone())
        .unwrap_or_else(|| "https://api.github.com".into());
    let token = std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty());
    let issue = issue::load(&issue_arg, &github_api, token.as_deref()).await?;
    let repo = resolve_repo(args.repo.as_deref(), issue.repo.as_deref())?;
    let base = workspace::resolve_rev(&repo, &args.rev)?;
    if args.apply && args.branch.is_some() {
        bail!("choose one of --apply and --branch");
    }
    deliver::preflight(&repo, args.apply, args.force, args.branch.as_deref())?;

    let limits = Limits {
        max_cost_usd: args.max_cost.or(cfg.max_cost),
        ..Default::default()
    };
    // A missing key or a dead endpoint fails here, not after minutes of retries.
    let scope = crate::doctor::Scope::default();
    crate::doctor::preflight(&args.model, cfg.model.as_ref(), &scope).await?;
    let model = crate::model::build(&args.model, cfg.model.as_ref(), limits).await?;
    eprintln!("model: {}", model.name());
    let sandbox_kind = args
        .sandbox
        .clone()
        .or(cfg.sandbox.clone())
        .unwrap_or_else(|| "docker".into());
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
    let test_cmd = args.test_cmd.clone().or(cfg.test_cmd.clone());
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
    let toolbox = Toolbox::new(sandbox.clone(), test_cmd, index);
    let mut config = AgentConfig::default();
    if let Some(n) = args.max_steps.or(cfg.max_steps) {
        config.max_steps = n;
    }
    config.network = args.network;
    let agent = Agent {
        model,
        prompts: Prompts::builtin()?,
        config,
    };
    let task = TaskInput {
        issue: issue.text.clone(),
        base_commit: Some(base.clone()),
        layout: workspace::layout(sandbox.as_ref()).await,
        localized: context.localized,
        repo_map: context.repo_map,
    };
    let traj_path = args
        .trajectory
        .clone()
        .unwrap_or_else(default_trajectory_path);
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
        Event::Finished { .. } => {}
    };
    let out = agent.run(toolbox, task, &writer, stop, &on_event).await;
    drop(agent);

    eprintln!("\n{}", out.exit.line());
    eprintln!("trajectory: {}", traj_path.display());
    if out.patch.trim().is_empty() {
        eprintln!("no changes were made");
        return Ok(exit_code(&out.exit, true));
    }
    eprint!("{}", diffstat(&out.patch));
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
        let id = deliver::commit_on_branch(&repo, &base, &out.patch, branch, &msg)?;
        eprintln!(
            "committed {} on branch {branch} (your checkout is unchanged)",
            &id[..12]
        );
    }
    if args.apply {
        deliver::apply_to_worktree(&repo, &out.patch, args.force)?;
        eprintln!("applied to {}", repo.display());
    }
    Ok(exit_code(&out.exit, false))
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
            tests: TestsOutcome::Failed,
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
        (None, Some(r)) => format!("https://github.com/{r}.git"),
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
