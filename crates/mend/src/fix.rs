//! `mend fix`: issue in, tested patch out, on the user's own repository.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use mend_agent::trajectory::{Trajectory, TrajectoryWriter};
use mend_agent::{
    Agent, AgentConfig, Event, ExitStatus, Prompts, TaskInput, TestSuite, TestsOutcome, Toolbox,
    VerifyConfig, deliver, workspace,
};
use mend_agent::{ContextOptions, RepoContext, repo_context};
use mend_agent::{candidates, select};
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
    /// Independent attempts, each in its own sandbox (other temperature and seed, the cost
    /// budget shared); the one that running them favours is delivered: reproductions
    /// passed, no related test broken, then the most common change, then the smallest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub candidates: u16,
    /// With --candidates: ask the model to choose among candidates still tied.
    #[arg(long)]
    pub judge: bool,
    /// One recording per attempt instead of --replay (the demo's three candidates).
    #[arg(skip)]
    pub replays: Vec<PathBuf>,
    /// Skip the review round: by default, once the checks pass, the model is shown its
    /// whole diff beside the issue and asked to confirm or revise it (one bounded round,
    /// one more model call at least).
    #[arg(long)]
    pub no_review: bool,
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
    let models =
        crate::model::AttemptModels::build(&args.model, cfg.model.as_ref(), limits, &args.replays)
            .await?;
    let n = usize::from(args.candidates);
    let (probe_model, _, _) = models.get(0, n > 1);
    eprintln!("model: {}", probe_model.name());
    // An issue too big for the window is refused before any sandbox is made.
    let probe = TaskInput {
        issue: issue.text.clone(),
        ..Default::default()
    };
    let fits = Agent {
        model: probe_model.clone(),
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
    let place = match sandbox_kind.as_str() {
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
            Place::Docker(engine, Box::new(dc))
        }
        "local" => {
            eprintln!("sandbox: local checkout at {}", &base[..12]);
            Place::Local
        }
        other => bail!("unknown sandbox `{other}`: use docker or local"),
    };
    let index = index_at(&repo, &base).await;
    let context = match &index {
        Some(ix) => {
            let (ix, text, repo) = (ix.clone(), issue.text.clone(), repo.clone());
            // The pack holds at most an eighth of the model's window.
            let defaults = ContextOptions::default();
            let opts = ContextOptions {
                pack_tokens: defaults.pack_tokens.min(probe_model.context_window() / 8),
                ..defaults
            };
            tokio::task::spawn_blocking(move || {
                let git = git2::Repository::open(&repo).ok();
                // The files' text at the base commit, from the blobs the index read.
                let read = |p: &str| {
                    let blob = git2::Oid::from_str(&ix.file(p)?.blob).ok()?;
                    let blob = git.as_ref()?.find_blob(blob).ok()?;
                    Some(String::from_utf8_lossy(blob.content()).into_owned())
                };
                repo_context(&ix, &text, &opts, read)
            })
            .await
            .unwrap_or_default()
        }
        None => RepoContext::default(),
    };
    let mut config = AgentConfig {
        max_steps,
        network: args.network,
        // The suite is found in each attempt's sandbox (the test command it detects).
        verify: (!args.no_checks).then(|| VerifyConfig {
            suite: None,
            review: !args.no_review,
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
    let task_issue = match &repo_cfg.description {
        Some(d) => format!(
            "{}\n\nAbout this repository (from its mend.toml):\n{d}\n",
            issue.text
        ),
        None => issue.text.clone(),
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
    let ctx = AttemptCtx {
        repo: &repo,
        base: &base,
        place: &place,
        test_cmd: test_cmd.clone(),
        index: index.clone(),
        context: &context,
        config,
        issue: task_issue,
        several: n > 1,
    };
    let attempt_path = |k: usize| -> PathBuf {
        if n > 1 || k > 0 {
            candidate_path(&traj_path, k)
        } else {
            traj_path.clone()
        }
    };
    let mut attempts: Vec<anyhow::Result<Attempt>> = if n == 1 {
        let (m, t, s) = models.get(0, false);
        vec![ctx.run(0, m, t, s, attempt_path(0), stop.clone()).await]
    } else {
        // Independent attempts, each in its own sandbox, as many at once as there are
        // cores (the budget is shared: the ledger stops all of them together).
        let parallel = std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(2)
            .clamp(1, n);
        eprintln!("{n} candidates, {parallel} at a time");
        futures_util::stream::iter((0..n).map(|k| {
            let (m, t, s) = models.get(k, true);
            ctx.run(k, m, t, s, attempt_path(k), stop.clone())
        }))
        .buffered(parallel)
        .collect()
        .await
    };
    // Cheapest first: one attempt that ended without a patch is run once more, in a fresh
    // sandbox with another seed, before it is given up.
    let mut retried = false;
    if n == 1
        && let Some(Ok(a)) = attempts.first()
        && a.out.patch.trim().is_empty()
        // The model finished its work without a change. A limit, a loop or a broken
        // model would likely end the same way again on the user's machine (a batch
        // retries those too: `mend swebench run`).
        && matches!(a.out.exit, ExitStatus::Submitted { .. })
        && !*stop.borrow()
        && models.budget_left()
    {
        eprintln!(
            "\nno patch from the first attempt ({}); retrying once in a fresh sandbox with another seed",
            a.out.exit.line()
        );
        // The first attempt's trajectory moves aside: the run's path gets the winner's.
        let first_path = candidate_path(&traj_path, 0);
        if let Some(Ok(a)) = attempts.first_mut()
            && std::fs::rename(&a.trajectory, &first_path).is_ok()
        {
            a.trajectory = first_path;
        }
        let (m, t, s) = models.get(1, true);
        attempts.push(ctx.run(1, m, t, s, attempt_path(1), stop.clone()).await);
        retried = true;
    }
    let (out, winner_sandbox) = if attempts.len() == 1 {
        match attempts.pop() {
            Some(Ok(a)) => (a.out, a.sandbox),
            Some(Err(e)) => return Err(e),
            None => bail!("the attempt could not run"),
        }
    } else {
        choose_candidate(&ctx, attempts, &args, &issue.text, &models, retried).await?
    };
    drop(winner_sandbox);

    eprintln!("\n{}", out.exit.line());
    let writer = TrajectoryWriter::new(Some(traj_path.clone()));
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

/// Where sandboxes come from.
enum Place {
    Docker(DockerEngine, Box<DockerConfig>),
    Local,
}

/// What every attempt shares.
struct AttemptCtx<'a> {
    repo: &'a Path,
    base: &'a str,
    place: &'a Place,
    test_cmd: Option<String>,
    index: Option<Arc<Index>>,
    context: &'a RepoContext,
    config: AgentConfig,
    issue: String,
    /// Several attempts: their lines are prefixed with the attempt's number.
    several: bool,
}

/// One finished attempt; its sandbox is kept for the selection's runs.
struct Attempt {
    out: mend_agent::RunOutput,
    sandbox: Arc<dyn Sandbox>,
    temperature: Option<f32>,
    seed: Option<i64>,
    trajectory: PathBuf,
    wall_secs: f64,
}

impl AttemptCtx<'_> {
    async fn run(
        &self,
        k: usize,
        model: Arc<dyn mend_llm::Model>,
        temperature: Option<f32>,
        seed: Option<i64>,
        traj: PathBuf,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Attempt> {
        let started = std::time::Instant::now();
        let sandbox: Arc<dyn Sandbox> = match self.place {
            Place::Docker(engine, dc) => Arc::new(
                workspace::docker_workspace(engine, (**dc).clone(), self.repo, self.base).await?,
            ),
            Place::Local => Arc::new(workspace::local_workspace(self.repo, self.base)?),
        };
        let mut toolbox = Toolbox::new(sandbox.clone(), self.test_cmd.clone(), self.index.clone());
        let mut config = self.config.clone();
        // The checks read the test command's output test by test: pytest's or unittest's.
        if let Some(v) = config.verify.as_mut()
            && v.suite.is_none()
        {
            v.suite = toolbox
                .detect_test_command()
                .await
                .as_deref()
                .and_then(RepoSuite::for_command)
                .map(|s| Arc::new(s) as Arc<dyn TestSuite>);
        }
        let agent = Agent {
            model,
            prompts: Prompts::builtin()?,
            config,
        };
        let task = TaskInput {
            issue: self.issue.clone(),
            base_commit: Some(self.base.to_string()),
            layout: workspace::layout(sandbox.as_ref()).await,
            localized: self.context.localized.clone(),
            repo_map: self.context.repo_map.clone(),
            code_pack: self.context.code_pack.clone(),
        };
        let tag = if self.several {
            format!("[{}] ", k + 1)
        } else {
            String::new()
        };
        let writer = TrajectoryWriter::new(Some(traj.clone()));
        let on_event = |e: Event| print_event(&tag, e);
        let out = agent.run(toolbox, task, &writer, stop, &on_event).await;
        if self.several {
            eprintln!("{tag}{}", out.exit.line());
        }
        Ok(Attempt {
            out,
            sandbox,
            temperature,
            seed,
            trajectory: traj,
            wall_secs: started.elapsed().as_secs_f64(),
        })
    }
}

fn print_event(tag: &str, e: Event) {
    match e {
        Event::Step {
            index,
            tool,
            detail,
            tokens_in,
            tokens_out,
            cost_usd,
        } => {
            eprintln!(
                "{tag}step {index:>3}  {tool:<9} {detail:<60.60}  tokens {tokens_in}/{tokens_out}  ${cost_usd:.4}"
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
                "{tag}      > {}{more}",
                first.chars().take(100).collect::<String>()
            )
        }
        Event::Tests { passed, status } => eprintln!(
            "{tag}tests: {}",
            if passed { "passed".to_string() } else { status }
        ),
        Event::Condensed {
            stage,
            tokens_before,
            tokens_after,
            ..
        } => eprintln!(
            "{tag}  condensed the conversation ({stage}): {tokens_before} -> {tokens_after} tokens"
        ),
        Event::Checked { summary } => eprintln!("{tag}checks: {summary}"),
        Event::Finished { .. } => {}
    }
}

/// `<name>.candK.traj.json` beside the run's trajectory (K from 1).
fn candidate_path(traj: &Path, k: usize) -> PathBuf {
    let name = traj
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "run.traj.json".into());
    let stem = name
        .strip_suffix(".traj.json")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(&name);
    traj.with_file_name(format!("{stem}.cand{}.traj.json", k + 1))
}

/// Choose among the attempts: run each against every reproduction and the regression
/// set, score, print the table. Returns the winner's output (its trajectory carrying the
/// selection) and sandbox.
async fn choose_candidate(
    ctx: &AttemptCtx<'_>,
    attempts: Vec<anyhow::Result<Attempt>>,
    args: &FixArgs,
    issue: &str,
    models: &crate::model::AttemptModels,
    retried: bool,
) -> anyhow::Result<(mend_agent::RunOutput, Arc<dyn Sandbox>)> {
    let mut ok: Vec<Attempt> = Vec::new();
    for (k, a) in attempts.into_iter().enumerate() {
        match a {
            Ok(a) => ok.push(a),
            Err(e) => eprintln!("candidate {}: could not run: {e:#}", k + 1),
        }
    }
    if ok.is_empty() {
        bail!("no attempt could run");
    }
    let mut cands = Vec::new();
    for a in &ok {
        // The agent's reproduction stays in its sandbox (scratch, not in the patch).
        let repro = mend_agent::verify::Reproduction::find(a.sandbox.as_ref())
            .await
            .ok()
            .flatten();
        cands.push(candidates::Candidate {
            sandbox: a.sandbox.clone(),
            patch: a.out.patch.clone(),
            reproduction: repro,
        });
    }
    // The test command the attempts used (configured, else detected as they did).
    let test_cmd = match &ctx.test_cmd {
        Some(c) => Some(c.clone()),
        None => {
            Toolbox::new(cands[0].sandbox.clone(), None, None)
                .detect_test_command()
                .await
        }
    };
    let suite = test_cmd
        .as_deref()
        .and_then(mend_swebench::suite::RepoSuite::for_command)
        .map(|s| Arc::new(s) as Arc<dyn mend_agent::verify::TestSuite>);
    let opts = candidates::GatherOptions {
        suite,
        index: ctx.index.clone(),
        ..Default::default()
    };
    eprintln!(
        "\nchecking {} candidates: every reproduction on each, and the related tests",
        cands.len()
    );
    let (ev, matrix) = candidates::gather(&cands, &opts).await;
    let mut choice = select::choose(&ev, None);
    if args.judge && choice.tied.len() > 1 {
        let tied: Vec<(usize, &str)> = choice
            .tied
            .iter()
            .map(|&i| (i, cands[i].patch.as_str()))
            .collect();
        let (m, _, _) = models.get(0, false);
        let pick = candidates::judge(m.as_ref(), issue, &tied).await;
        choice = select::choose(&ev, Some(&move |_: &[usize]| pick));
    }
    eprintln!("\n{}", choice.table().trim_end());
    eprintln!("chose {}", choice.reason);
    let record = candidates::SelectionRecord {
        candidates: ok
            .iter()
            .enumerate()
            .map(|(i, a)| candidates::AttemptRecord {
                index: i,
                exit: a.out.exit.kind().to_string(),
                patch: a.out.patch.clone(),
                temperature: a.temperature,
                seed: a.seed,
                trajectory: Some(a.trajectory.display().to_string()),
                steps: a.out.trajectory.totals.steps,
                cost_usd: a.out.trajectory.totals.cost_usd,
                wall_secs: a.wall_secs,
                reproduction: cands[i].reproduction.is_some(),
            })
            .collect(),
        matrix,
        differs_from_first: choice.winner.is_some_and(|w| w != 0),
        choice: choice.clone(),
        retried,
    };
    // Nothing kept (all empty or broken): the first attempt's output stands.
    let w = choice.winner.unwrap_or(0);
    let winner = ok.swap_remove(w);
    let mut out = winner.out;
    out.trajectory.selection = Some(record);
    Ok((out, winner.sandbox))
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
