//! Batches past one machine: `run --shard I/N` bookkeeping, `merge`, the live report of a
//! sharded run, and the job files for the schedulers people already run (Slurm array jobs,
//! Docker Swarm replicated jobs, Kubernetes Indexed Jobs). mend renders and submits; the
//! scheduler schedules. API keys travel only through the scheduler's secret mechanism: an
//! environment file only its owner can read (Slurm), a swarm secret, a Kubernetes Secret.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mend_swebench::shard::{self, ShardSpec};
use mend_swebench::{EvalOptions, Filter, Instance, PredictionsSource};

/// A shard of a run in progress: its directory and the heartbeat that tells a merge it lives.
pub struct ShardRun {
    pub run_id: String,
    pub filter: Filter,
    pub dir: PathBuf,
    /// `None` once the shard has ended: the heartbeat must not write after the end does.
    file: std::sync::Arc<std::sync::Mutex<Option<shard::ShardFile>>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

/// `--shard I/N`: this shard's instances of the selection, its run id, and `shard.json`.
pub fn start_shard(
    spec: &str,
    run_id: &str,
    runs_dir: &Path,
    selected: &[Instance],
    max_total_cost: Option<f64>,
) -> anyhow::Result<ShardRun> {
    let spec = ShardSpec::parse(spec)?;
    let ids = shard::shard_ids(selected, spec);
    let shard_run_id = spec.run_id(run_id);
    let dir = runs_dir.join(&shard_run_id);
    let file = shard::begin(&dir, run_id, spec, ids.clone(), max_total_cost)?;
    let file = std::sync::Arc::new(std::sync::Mutex::new(Some(file)));
    let (hb_dir, hb_file) = (dir.clone(), file.clone());
    let heartbeat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let mut guard = hb_file.lock().unwrap_or_else(|e| e.into_inner());
            let Some(f) = guard.as_mut() else { return };
            if let Err(e) = shard::heartbeat(&hb_dir, f) {
                tracing::warn!(error = %e, "could not refresh the shard heartbeat");
            }
        }
    });
    eprintln!(
        "shard {}/{} of run {run_id}: {} of {} instance(s), in {}",
        spec.index,
        spec.count,
        ids.len(),
        selected.len(),
        dir.display()
    );
    Ok(ShardRun {
        run_id: shard_run_id,
        filter: Filter {
            instance_ids: ids,
            ..Default::default()
        },
        dir,
        file,
        heartbeat,
    })
}

impl ShardRun {
    /// Record how the shard ended: `finished` when every instance has a prediction.
    pub fn end(self, complete: bool) -> anyhow::Result<()> {
        self.heartbeat.abort();
        let state = if complete { "finished" } else { "stopped" };
        let taken = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut f) = taken {
            shard::end(&self.dir, &mut f, state)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.filter.instance_ids.is_empty()
    }
}

#[derive(Args)]
pub struct MergeArgs {
    /// Shard directories (`runs/<run_id>-shard-I-of-N`, on shared storage or copied back).
    #[arg(required = true, value_name = "RUN_DIRS")]
    pub dirs: Vec<PathBuf>,
    /// Run id of the merged run: written to <runs-dir>/<run-id>.
    #[arg(long)]
    pub run_id: String,
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Merge despite missing, duplicate or running shards (the problems go to merge.json).
    #[arg(long)]
    pub partial: bool,
    /// Seconds without a heartbeat after which a shard that says running counts as dead.
    #[arg(long, default_value_t = 120)]
    pub stale_after: u64,
    /// Evaluate the merged predictions (needs --dataset and the image flags of the run).
    #[arg(long, requires = "dataset")]
    pub eval: bool,
    #[arg(long)]
    pub dataset: Option<String>,
    #[arg(long, default_value = "test")]
    pub split: String,
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    #[arg(long, default_value_t = 1800)]
    pub eval_timeout: u64,
    #[command(flatten)]
    pub images: super::ImageArgs,
}

pub async fn merge_cmd(
    a: MergeArgs,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    if a.run_id.trim().is_empty() || a.run_id.contains('/') || a.run_id.contains("..") {
        bail!(
            "--run-id `{}` must be non-empty, without `/` or `..`",
            a.run_id
        );
    }
    let mut merged = shard::collect(&a.dirs, &a.run_id, Duration::from_secs(a.stale_after))?;
    let out = a.runs_dir.join(&a.run_id);
    for s in &merged.report.shards {
        eprintln!(
            "shard {}/{} {}: {}/{} predictions, ${:.2} ({})",
            s.index,
            s.count,
            s.state,
            s.predictions,
            s.assigned,
            s.cost_usd,
            s.dir.display()
        );
    }
    let problems = merged.report.problems.lines();
    shard::write(&out, &mut merged, a.partial)?;
    for p in &problems {
        eprintln!("warning (merged anyway, --partial): {p}");
    }
    eprintln!(
        "merged {} prediction(s) of {} instance(s) in {:.3}s into {}",
        merged.predictions.len(),
        merged.instance_ids.len(),
        merged.report.merge_secs,
        out.display()
    );
    let mut failed = !problems.is_empty();
    if a.eval {
        let dataset_name = a.dataset.as_deref().context("--eval needs --dataset")?;
        let specs = super::load_specs(a.images.specs.as_deref())?;
        let dataset = super::load_dataset(dataset_name, &a.split).await?;
        let mirrors = a
            .images
            .repo_mirrors
            .clone()
            .map(mend_swebench::MirrorDir::new)
            .unwrap_or_default();
        let images = super::image_source(&a.images, "official", &specs, mirrors)?;
        let mut opts = EvalOptions::new(
            dataset,
            PredictionsSource::File(out.join(mend_swebench::run::PREDICTIONS)),
            a.run_id.clone(),
            images,
        );
        opts.specs = specs;
        opts.filter = Filter {
            instance_ids: merged.instance_ids.clone(),
            ..Default::default()
        };
        if super::evaluate_run(opts, &out, a.workers, a.eval_timeout, cancel).await? {
            failed = true;
        }
    }
    println!("{}", out.display());
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// For `mend swebench report RUN`: the run's summary, or, when RUN was sharded and is not
/// merged yet, the shards joined on the fly (while they run), with a line per shard.
pub fn summary_for_report(
    runs_dir: &Path,
    run_id: &str,
) -> anyhow::Result<mend_swebench::RunSummaryFile> {
    let dir = runs_dir.join(run_id);
    if dir.join(mend_swebench::run::SUMMARY).is_file() {
        return Ok(mend_swebench::read_summary(&dir)?);
    }
    let dirs = shard::find_shard_dirs(runs_dir, run_id);
    if dirs.is_empty() {
        bail!(
            "no batch run `{run_id}` in {} (neither {}/summary.json nor shard directories {run_id}-shard-I-of-N)",
            runs_dir.display(),
            dir.display()
        );
    }
    let merged = shard::collect(&dirs, run_id, Duration::from_secs(120))?;
    let now = shard::now_secs();
    println!("sharded run {run_id}, not merged yet:");
    for s in &merged.report.shards {
        let secs = s.finished_at.unwrap_or(now) - s.started_at;
        println!(
            "  shard {}/{} {:<8} {:>4}/{:<4} predictions  ${:.2}  {:.0}s  on {}",
            s.index, s.count, s.state, s.predictions, s.assigned, s.cost_usd, secs, s.host
        );
    }
    for p in merged.report.problems.lines() {
        println!("  {p}");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(merged.summary)
}

/// What every scheduler's job needs.
#[derive(Args, Clone)]
pub struct ClusterArgs {
    /// Number of shards: one scheduler task each.
    #[arg(long)]
    pub shards: usize,
    #[arg(long)]
    pub run_id: String,
    /// Where shard directories go, as the tasks see it (shared storage, or a node-local
    /// directory you copy back before `merge`).
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Dollars the whole run may spend; each shard gets an equal part.
    #[arg(long)]
    pub max_total_cost: Option<f64>,
    /// KEY=VALUE lines (e.g. OPENAI_API_KEY=...) the tasks get as environment through the
    /// scheduler's secret mechanism. Only its owner may read it (chmod 600).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Where the rendered job goes (default: <runs-dir>/<run-id>.<kind>).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Directory the tasks work in (dataset, specs and image map paths are relative to it).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The arguments of `mend swebench run` for every shard (after `--`), without --shard,
    /// --run-id, --runs-dir and --max-total-cost, which the job sets.
    #[arg(last = true, value_name = "RUN_ARGS")]
    pub run_args: Vec<String>,
}

#[derive(Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub job: ClusterArgs,
    /// The mend binary on the compute nodes (default: this one).
    #[arg(long, value_name = "PATH")]
    pub mend: Option<PathBuf>,
    /// Extra `#SBATCH` options, e.g. --sbatch=--partition=gpu --sbatch=--cpus-per-task=4.
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Submit with `sbatch` after writing the script (prints the job id).
    #[arg(long)]
    pub submit: bool,
}

#[derive(Args)]
pub struct SwarmArgs {
    #[command(flatten)]
    pub job: ClusterArgs,
    /// The mend image every task runs (mend on top of mend's base image; see docker/mend).
    #[arg(long)]
    pub image: String,
    /// The engine socket mounted into the tasks (their sandboxes are its siblings).
    #[arg(long, default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Run the tasks on the node's network (a model server on the node's loopback).
    #[arg(long)]
    pub host_network: bool,
    /// Create the secret and the service after writing the script.
    #[arg(long)]
    pub submit: bool,
}

#[derive(Args)]
pub struct K8sArgs {
    #[command(flatten)]
    pub job: ClusterArgs,
    #[arg(long)]
    pub image: String,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The Secret holding the API key(s), made with
    /// `kubectl create secret generic NAME --from-env-file=FILE` (default mend-<run-id>-keys).
    #[arg(long)]
    pub secret: Option<String>,
    /// PersistentVolumeClaim mounted at --workdir (default /work): inputs and results.
    #[arg(long, default_value = "mend-work")]
    pub pvc: String,
    /// `socket`: the node's Docker socket (hostPath); `dind`: a privileged Docker-in-Docker
    /// sidecar per pod.
    #[arg(long, value_parser = ["socket", "dind"], default_value = "socket")]
    pub docker: String,
    #[arg(long, default_value = "docker:27-dind")]
    pub dind_image: String,
}

/// Single-quoted for sh.
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Keys of an env file, checked: KEY=VALUE lines, comments, owner-only permissions. Returns
/// the values too, so a rendered job can be checked not to contain any of them.
fn read_env_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading --env-file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "--env-file {} can be read by others (mode {:o}): it holds keys; chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --env-file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            bail!(
                "--env-file {} line {}: expected KEY=VALUE",
                path.display(),
                i + 1
            );
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "--env-file {} line {}: `{k}` is not a variable name",
                path.display(),
                i + 1
            );
        }
        out.push((k.to_string(), v.trim_matches(['"', '\'']).to_string()));
    }
    Ok(out)
}

/// The `run` arguments every shard gets, refusing what the job sets itself.
fn shard_args(job: &ClusterArgs) -> anyhow::Result<Vec<String>> {
    if job.shards == 0 {
        bail!("--shards must be at least 1");
    }
    if job.run_id.is_empty()
        || !job
            .run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!(
            "--run-id `{}`: use letters, digits, `-`, `_`, `.` (it names jobs and secrets)",
            job.run_id
        );
    }
    for a in &job.run_args {
        let flag = a.split('=').next().unwrap_or("");
        if [
            "--shard",
            "--run-id",
            "--runs-dir",
            "--max-total-cost",
            "--api-key",
        ]
        .contains(&flag)
        {
            bail!(
                "`{flag}` after `--`: the job sets it per shard ({})",
                if flag == "--api-key" {
                    "keys go in --env-file, never on a command line"
                } else {
                    "give it to this command instead"
                }
            );
        }
    }
    if !job.run_args.iter().any(|a| a == "--dataset") {
        bail!("the arguments after `--` need --dataset (they are `mend swebench run`'s)");
    }
    let mut v = vec![
        "--run-id".to_string(),
        job.run_id.clone(),
        "--runs-dir".into(),
        job.runs_dir.display().to_string(),
    ];
    if let Some(c) = job.max_total_cost {
        if !(c.is_finite() && c > 0.0) {
            bail!("--max-total-cost must be a positive number of dollars");
        }
        v.push("--max-total-cost".into());
        v.push(format!("{:.6}", c / job.shards as f64));
    }
    v.extend(job.run_args.iter().cloned());
    Ok(v)
}

/// Refuse to write a job that carries a key (an env-file value on a command line).
fn check_no_secrets(rendered: &str, env: &[(String, String)]) -> anyhow::Result<()> {
    for (k, v) in env {
        if v.len() >= 4 && rendered.contains(v.as_str()) {
            bail!("the rendered job would contain the value of {k} from --env-file; refusing");
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    super::absolute(p)
}

fn write_job(path: &Path, text: &str, executable: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn env_of(job: &ClusterArgs) -> anyhow::Result<Vec<(String, String)>> {
    job.env_file
        .as_deref()
        .map(read_env_file)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The sbatch script of an array job, one task per shard.
pub fn render_slurm(a: &SlurmArgs) -> anyhow::Result<String> {
    let job = &a.job;
    let mut args = shard_args(job)?;
    let workdir = absolute(job.workdir.as_deref().unwrap_or(Path::new(".")))?;
    let runs = workdir.join(&job.runs_dir);
    // sbatch opens the output file before the task starts: the directory must exist.
    let logs = runs.join(format!("{}-slurm", job.run_id));
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mend = match &a.mend {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding this mend binary")?,
    };
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=mend-{}\n", job.run_id);
    s += &format!("#SBATCH --array=1-{}\n", job.shards);
    s += &format!("#SBATCH --chdir={}\n", workdir.display());
    s += &format!("#SBATCH --output={}/%a.out\n", logs.display());
    s += "#SBATCH --open-mode=append\n";
    for o in &a.sbatch {
        if o.contains('\n') {
            bail!("--sbatch `{o}` spans lines");
        }
        s += &format!("#SBATCH {o}\n");
    }
    s += "set -euo pipefail\n";
    if let Some(f) = &job.env_file {
        let f = absolute(f)?;
        s += "# API keys: from a file only its owner can read; never in this script or on a command line.\n";
        s += &format!("set -a; . {}; set +a\n", sh_quote(&f.display().to_string()));
    }
    s += "# Each task uses its node's Docker engine; the shard directory resumes if the task is requeued.\n";
    s += &format!(
        "exec {} swebench run --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\"",
        sh_quote(&mend.display().to_string()),
        job.shards
    );
    for x in args.drain(..) {
        s.push(' ');
        s += &sh_quote(&x);
    }
    s.push('\n');
    check_no_secrets(&s, &env_of(job)?)?;
    Ok(s)
}

pub fn slurm_cmd(a: SlurmArgs) -> anyhow::Result<ExitCode> {
    let script = render_slurm(&a)?;
    let path = a
        .job
        .out
        .clone()
        .unwrap_or_else(|| a.job.runs_dir.join(format!("{}.sbatch", a.job.run_id)));
    write_job(&path, &script, true)?;
    eprintln!("wrote {}", path.display());
    if a.submit {
        let out = std::process::Command::new("sbatch")
            .arg("--parsable")
            .arg(&path)
            .output()
            .context("running sbatch (is Slurm installed here?)")?;
        if !out.status.success() {
            bail!(
                "sbatch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        eprintln!(
            "submitted job {id}: {} task(s); follow with `mend swebench report {} --runs-dir {}`, then `mend swebench merge`",
            a.job.shards,
            a.job.run_id,
            a.job.runs_dir.display()
        );
        println!("{id}");
    } else {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The task command of the container schedulers: keys sourced from the mounted secret,
/// then `mend swebench run` for shard `$1`... The run arguments follow as "$@".
fn task_script(shard_expr: &str, shards: usize, secret_path: Option<&str>) -> String {
    let mut s = String::from("set -eu; ");
    if let Some(p) = secret_path {
        s += &format!("set -a; . {p}; set +a; ");
    }
    s += &format!("exec mend swebench run --shard \"{shard_expr}/{shards}\" \"$@\"");
    s
}

/// The shard number of a swarm task from its slot (see `MEND_SLOT` below).
const SWARM_SHARD: &str =
    "$(case \"${MEND_SLOT:-}\" in (''|*[!0-9]*) echo 1;; (*) echo $((MEND_SLOT + 1));; esac)";

/// The swarm submission script: a secret from the env file, a replicated job of N tasks.
pub fn render_swarm(a: &SwarmArgs) -> anyhow::Result<String> {
    let job = &a.job;
    let args = shard_args(job)?;
    let workdir = absolute(job.workdir.as_deref().unwrap_or(Path::new(".")))?;
    let name = format!("mend-{}", job.run_id);
    let secret = format!("{name}-env");
    let mut s = String::from("#!/bin/sh\nset -eu\n");
    if let Some(f) = &job.env_file {
        s += "# API keys: a swarm secret made from the file (mounted read-only in the tasks); never on a command line.\n";
        s += &format!(
            "docker secret create {secret} {} >/dev/null\n",
            sh_quote(&absolute(f)?.display().to_string())
        );
    }
    let mut c: Vec<String> = vec![
        "docker service create --detach".into(),
        format!("--name {name}"),
        "--mode replicated-job".into(),
        format!("--replicas {}", job.shards),
        format!("--max-concurrent {}", job.shards),
        "--restart-condition none".into(),
        format!("--label dev.mend.swebench.run_id={}", job.run_id),
        "--user root".into(),
        // Swarm numbers a replicated job's tasks from 0, and slot 0 renders as the node's
        // id, or empty before the task has a node (Docker 20.10, both seen here): anything
        // but a number is slot 0, and shard = slot + 1.
        "--env 'MEND_SLOT={{.Task.Slot}}'".into(),
        format!(
            "--mount type=bind,src={0},dst={0}",
            sh_quote(&a.docker_socket.display().to_string())
        ),
        format!(
            "--mount type=bind,src={0},dst={0}",
            sh_quote(&workdir.display().to_string())
        ),
        format!("--workdir {}", sh_quote(&workdir.display().to_string())),
    ];
    if job.env_file.is_some() {
        c.push(format!(
            "--secret source={secret},target=mend-env,mode=0400"
        ));
    }
    if a.host_network {
        c.push("--network host".into());
    }
    let secret_path = job.env_file.as_ref().map(|_| "/run/secrets/mend-env");
    c.push(sh_quote(&a.image));
    c.push("/bin/sh -c".into());
    c.push(sh_quote(&task_script(SWARM_SHARD, job.shards, secret_path)));
    c.push("mend".into());
    c.extend(args.iter().map(|x| sh_quote(x)));
    s += &c.join(" \\\n  ");
    s += "\n";
    check_no_secrets(&s, &env_of(job)?)?;
    Ok(s)
}

pub fn swarm_cmd(a: SwarmArgs) -> anyhow::Result<ExitCode> {
    let script = render_swarm(&a)?;
    let path = a
        .job
        .out
        .clone()
        .unwrap_or_else(|| a.job.runs_dir.join(format!("{}.swarm.sh", a.job.run_id)));
    write_job(&path, &script, true)?;
    eprintln!("wrote {}", path.display());
    if a.submit {
        let out = std::process::Command::new("sh")
            .arg(&path)
            .output()
            .context("running the swarm script")?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        eprintln!(
            "created service mend-{}: {} task(s); follow with `mend swebench report {}`; remove with `docker service rm mend-{0}`{}",
            a.job.run_id,
            a.job.shards,
            a.job.run_id,
            if a.job.env_file.is_some() {
                format!(" and `docker secret rm mend-{}-env`", a.job.run_id)
            } else {
                String::new()
            }
        );
        println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    } else {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The Indexed Job manifest (as a JSON value; [`to_yaml`] writes it).
pub fn render_k8s(a: &K8sArgs) -> anyhow::Result<serde_json::Value> {
    use serde_json::json;
    let job = &a.job;
    let args = shard_args(job)?;
    let workdir = job
        .workdir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/work"));
    if !workdir.is_absolute() {
        bail!("--workdir for Kubernetes is a path inside the pod and must be absolute");
    }
    let workdir = workdir.display().to_string();
    let name = format!(
        "mend-{}",
        job.run_id.to_lowercase().replace(['_', '.'], "-")
    );
    let secret = a.secret.clone().unwrap_or_else(|| format!("{name}-keys"));
    let labels = json!({"app.kubernetes.io/name": "mend", "app.kubernetes.io/instance": name});
    let mut command = vec![
        json!("/bin/sh"),
        json!("-c"),
        // Kubernetes numbers completions from 0: shard = index + 1.
        json!(task_script(
            "$((JOB_COMPLETION_INDEX + 1))",
            job.shards,
            None
        )),
        json!("mend"),
    ];
    command.extend(args.iter().map(|x| json!(x)));
    let mut mounts = vec![json!({"name": "work", "mountPath": workdir})];
    let mut volumes = vec![json!({"name": "work", "persistentVolumeClaim": {"claimName": a.pvc}})];
    let mut env = vec![];
    let mut init = vec![];
    if a.docker == "socket" {
        mounts.push(json!({"name": "docker-sock", "mountPath": "/var/run/docker.sock"}));
        volumes.push(json!({"name": "docker-sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}}));
    } else {
        env.push(json!({"name": "DOCKER_HOST", "value": "tcp://127.0.0.1:2375"}));
        volumes.push(json!({"name": "dind-storage", "emptyDir": {}}));
        // A native sidecar (an init container that keeps running): the engine is up, per
        // its startup probe, before mend starts, and it stops when mend ends.
        init.push(json!({
            "name": "dind",
            "image": a.dind_image,
            "restartPolicy": "Always",
            "args": ["--host=tcp://127.0.0.1:2375"],
            "env": [{"name": "DOCKER_TLS_CERTDIR", "value": ""}],
            "securityContext": {"privileged": true},
            "startupProbe": {"exec": {"command": ["docker", "-H", "tcp://127.0.0.1:2375", "info"]}, "periodSeconds": 2, "failureThreshold": 90},
            "volumeMounts": [{"name": "dind-storage", "mountPath": "/var/lib/docker"}],
        }));
    }
    let mut container = json!({
        "name": "mend",
        "image": a.image,
        "workingDir": workdir,
        "command": command,
        "envFrom": [{"secretRef": {"name": secret}}],
        "volumeMounts": mounts,
    });
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
    });
    if !init.is_empty() {
        pod["initContainers"] = json!(init);
    }
    let manifest = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": a.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": job.shards,
            "parallelism": job.shards,
            // A failed pod is retried (a shard directory resumes), but not forever.
            "backoffLimit": job.shards * 2,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    });
    check_no_secrets(&manifest.to_string(), &env_of(job)?)?;
    Ok(manifest)
}

/// YAML of a JSON value: block style, every string double-quoted (JSON escapes are YAML's).
pub fn to_yaml(v: &serde_json::Value) -> String {
    fn scalar(v: &serde_json::Value) -> Option<String> {
        use serde_json::Value as V;
        match v {
            V::Object(m) if m.is_empty() => Some("{}".into()),
            V::Array(a) if a.is_empty() => Some("[]".into()),
            V::Object(_) | V::Array(_) => None,
            other => Some(other.to_string()),
        }
    }
    fn key(k: &str) -> String {
        if k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            && !k.is_empty()
        {
            k.to_string()
        } else {
            serde_json::Value::from(k).to_string()
        }
    }
    fn emit(v: &serde_json::Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match scalar(x) {
                        Some(s) => *out += &format!("{pad}{}: {s}\n", key(k)),
                        None => {
                            *out += &format!("{pad}{}:\n", key(k));
                            emit(x, indent + 2, out);
                        }
                    }
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    match scalar(x) {
                        Some(s) => *out += &format!("{pad}- {s}\n"),
                        None => {
                            let mut inner = String::new();
                            emit(x, indent + 2, &mut inner);
                            // The first line of the item goes after the dash.
                            *out += &format!("{pad}- {}", &inner[indent + 2..]);
                        }
                    }
                }
            }
            other => *out += &format!("{pad}{other}\n"),
        }
    }
    let mut out = String::new();
    emit(v, 0, &mut out);
    out
}

pub fn k8s_cmd(a: K8sArgs) -> anyhow::Result<ExitCode> {
    let manifest = render_k8s(&a)?;
    let yaml = format!(
        "# mend swebench run {} as a Kubernetes Indexed Job ({} shards).\n# Before applying: kubectl -n {} create secret generic {} --from-env-file=keys.env\n---\n{}",
        a.job.run_id,
        a.job.shards,
        a.namespace,
        manifest["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]
            .as_str()
            .unwrap_or(""),
        to_yaml(&manifest)
    );
    let path = a
        .job
        .out
        .clone()
        .unwrap_or_else(|| a.job.runs_dir.join(format!("{}.k8s.yaml", a.job.run_id)));
    write_job(&path, &yaml, false)?;
    eprintln!("wrote {}", path.display());
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_of_nested_values_round_trips_through_json_shapes() {
        let v =
            serde_json::json!({"a": [{"b": 1, "c": ["x y", "it's \"q\""]}, "s"], "e": {}, "f": []});
        let y = to_yaml(&v);
        assert_eq!(
            y,
            "a:\n  - b: 1\n    c:\n      - \"x y\"\n      - \"it's \\\"q\\\"\"\n  - \"s\"\ne: {}\nf: []\n"
        );
    }

    /// Swarm renders slot 0 as the node's id, or empty: both are shard 1.
    #[test]
    fn a_swarm_slot_that_is_not_a_number_is_the_first_shard() {
        for (slot, shard) in [
            (None, "1"),
            (Some(""), "1"),
            (Some("50f77ewvk80e2kypva1n5ucfr"), "1"),
            (Some("0"), "1"),
            (Some("1"), "2"),
            (Some("2"), "3"),
        ] {
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", &format!("set -eu; echo \"{SWARM_SHARD}\"")]);
            cmd.env_remove("MEND_SLOT");
            if let Some(v) = slot {
                cmd.env("MEND_SLOT", v);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{slot:?}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                shard,
                "{slot:?}"
            );
        }
    }

    #[test]
    fn quoting_for_sh_keeps_every_byte() {
        assert_eq!(sh_quote("plain-1.0"), "plain-1.0");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
