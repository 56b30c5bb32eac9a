//! Sharded batch runs: a deterministic, balanced split of a selection into N shards (one per
//! cluster task), the `shard.json` each shard directory carries, and the merge of shard
//! directories into one run.
//!
//! A shard is an ordinary run (same files, resumes the same way) whose run id is
//! `<run_id>-shard-<I>-of-<N>`, plus `shard.json`: which instances it was given, its state
//! (`running`, `finished`, `stopped`), where it runs and a heartbeat, so a merge can tell a
//! finished shard from one still running or one that died.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::SwebenchError;
use crate::dataset::Instance;
use crate::run::{
    InstanceRecord, PREDICTIONS, PredictionLine, RunSummaryFile, SUMMARY, read_complete_lines,
};

pub const SHARD_FILE: &str = "shard.json";
pub const MERGE_FILE: &str = "merge.json";

/// Shard `index` (1-based) of `count`, as `--shard I/N` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl ShardSpec {
    pub fn parse(s: &str) -> Result<ShardSpec, SwebenchError> {
        let bad = || {
            SwebenchError::Invalid(format!(
                "--shard `{s}`: expected I/N with 1 <= I <= N (e.g. 2/3)"
            ))
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }

    /// The shard's own run id (and directory name beside the run's).
    pub fn run_id(&self, run_id: &str) -> String {
        format!("{run_id}-shard-{}-of-{}", self.index, self.count)
    }
}

/// What an instance is expected to cost, relative to others: longer issues cost more tokens
/// on every step, and larger fixes (lines and files of the reference patch) take more steps.
/// Only the ordering matters; the figures are not dollars.
pub fn expected_cost(inst: &Instance) -> f64 {
    let changed = inst
        .patch
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .count();
    let files = inst
        .patch
        .lines()
        .filter(|l| l.starts_with("diff --git "))
        .count();
    1.0 + inst.problem_statement.len() as f64 / 2000.0 + changed as f64 / 20.0 + files as f64 / 2.0
}

/// The shard (0-based) of each instance of `selected`, for `count` shards.
///
/// Repository by repository (in name order), each instance (most expensive first, then by
/// id) goes to the shard with the fewest instances of that repository, then the least
/// expected cost, then the lowest index. So every repository is spread evenly (counts differ
/// by at most one), costs even out, and the result depends only on the selection's content,
/// not its order: the same dataset and flags give the same shards on every node and re-run.
pub fn assign(selected: &[Instance], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut by_repo: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, inst) in selected.iter().enumerate() {
        by_repo.entry(inst.repo.as_str()).or_default().push(i);
    }
    let costs: Vec<f64> = selected.iter().map(expected_cost).collect();
    let mut load = vec![0.0f64; count];
    let mut out = vec![0usize; selected.len()];
    for (_, mut idx) in by_repo {
        idx.sort_by(|&a, &b| {
            costs[b]
                .total_cmp(&costs[a])
                .then_with(|| selected[a].instance_id.cmp(&selected[b].instance_id))
        });
        let mut in_repo = vec![0usize; count];
        for i in idx {
            let s = (0..count)
                .min_by(|&x, &y| {
                    in_repo[x]
                        .cmp(&in_repo[y])
                        .then_with(|| load[x].total_cmp(&load[y]))
                        .then_with(|| x.cmp(&y))
                })
                .unwrap_or(0);
            in_repo[s] += 1;
            load[s] += costs[i];
            out[i] = s;
        }
    }
    out
}

/// The instance ids of one shard, in the selection's order.
pub fn shard_ids(selected: &[Instance], spec: ShardSpec) -> Vec<String> {
    assign(selected, spec.count)
        .into_iter()
        .zip(selected)
        .filter(|(s, _)| *s + 1 == spec.index)
        .map(|(_, i)| i.instance_id.clone())
        .collect()
}

/// `shard.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardFile {
    /// The run the shard belongs to (what `merge --run-id` joins into).
    pub run_id: String,
    /// This shard's own run id (its directory name).
    pub shard_run_id: String,
    pub index: usize,
    pub count: usize,
    /// The instances this shard was given, in order.
    pub instance_ids: Vec<String>,
    /// `running`, `finished` (every instance has a prediction), `stopped` (ended early:
    /// errors, a budget, Ctrl-C; re-running resumes it).
    pub state: String,
    pub host: String,
    pub pid: u32,
    /// Unix seconds.
    pub started_at: f64,
    /// Unix seconds of the last heartbeat (a running shard refreshes it).
    pub updated_at: f64,
    pub finished_at: Option<f64>,
    /// The shard's dollar budget, when it had one.
    pub max_total_cost: Option<f64>,
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

pub fn read_shard_file(dir: &Path) -> Result<ShardFile, SwebenchError> {
    let path = dir.join(SHARD_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(SwebenchError::io(format!("reading {}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| SwebenchError::File {
        path,
        message: e.to_string(),
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SwebenchError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| SwebenchError::Invalid(e.to_string()))?
        + "\n";
    std::fs::write(&tmp, text).map_err(SwebenchError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(SwebenchError::io(format!("renaming to {}", path.display())))
}

/// Mark a shard directory as running this process's shard. A directory made for another
/// split (other instances, another N, another run) is refused: resuming it would silently
/// run a different part of the dataset.
pub fn begin(
    dir: &Path,
    run_id: &str,
    spec: ShardSpec,
    instance_ids: Vec<String>,
    max_total_cost: Option<f64>,
) -> Result<ShardFile, SwebenchError> {
    std::fs::create_dir_all(dir)
        .map_err(SwebenchError::io(format!("creating {}", dir.display())))?;
    if dir.join(SHARD_FILE).exists() {
        let old = read_shard_file(dir)?;
        if old.run_id != run_id
            || old.index != spec.index
            || old.count != spec.count
            || old.instance_ids != instance_ids
        {
            return Err(SwebenchError::Invalid(format!(
                "{} was made for shard {}/{} of run `{}` with {} instance(s); this is shard {}/{} of `{}` with {} instance(s) (the dataset or the selection changed?). Use another --run-id, or the original dataset and flags",
                dir.display(),
                old.index,
                old.count,
                old.run_id,
                old.instance_ids.len(),
                spec.index,
                spec.count,
                run_id,
                instance_ids.len()
            )));
        }
    }
    let now = now_secs();
    let file = ShardFile {
        run_id: run_id.to_string(),
        shard_run_id: spec.run_id(run_id),
        index: spec.index,
        count: spec.count,
        instance_ids,
        state: "running".into(),
        host: hostname(),
        pid: std::process::id(),
        started_at: now,
        updated_at: now,
        finished_at: None,
        max_total_cost,
    };
    write_json(&dir.join(SHARD_FILE), &file)?;
    Ok(file)
}

/// Refresh the heartbeat of a running shard.
pub fn heartbeat(dir: &Path, file: &mut ShardFile) -> Result<(), SwebenchError> {
    file.updated_at = now_secs();
    write_json(&dir.join(SHARD_FILE), file)
}

/// Record how the shard ended (`finished` or `stopped`).
pub fn end(dir: &Path, file: &mut ShardFile, state: &str) -> Result<(), SwebenchError> {
    let now = now_secs();
    file.state = state.to_string();
    file.updated_at = now;
    file.finished_at = Some(now);
    write_json(&dir.join(SHARD_FILE), file)
}

/// One shard directory as the merge saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardStatus {
    pub dir: PathBuf,
    pub index: usize,
    pub count: usize,
    /// `running`, `finished`, `stopped`, or `dead` (says running, no heartbeat for too long).
    pub state: String,
    pub assigned: usize,
    pub predictions: usize,
    pub cost_usd: f64,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub host: String,
}

/// What is wrong with a set of shards; any of these stops a merge unless it is partial.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MergeProblems {
    /// Shard indices of 1..=N with no directory.
    pub missing_shards: Vec<usize>,
    /// Shards still running (fresh heartbeat) or dead (stale heartbeat), by directory.
    pub running_shards: Vec<PathBuf>,
    pub dead_shards: Vec<PathBuf>,
    /// Instances assigned to a shard that has no prediction for them.
    pub missing_instances: Vec<String>,
    /// Instances with a prediction in more than one shard directory.
    pub duplicates: Vec<String>,
    /// Anything else that makes the directories not one run (other run ids, other N, the
    /// same shard twice, other model names, a prediction nobody was assigned).
    pub inconsistent: Vec<String>,
}

impl MergeProblems {
    pub fn is_empty(&self) -> bool {
        *self == MergeProblems::default()
    }

    /// One line per kind of problem, for people.
    pub fn lines(&self) -> Vec<String> {
        let list = |v: &[String]| {
            let shown: Vec<&str> = v.iter().take(10).map(String::as_str).collect();
            let more = v.len().saturating_sub(10);
            format!(
                "{}{}",
                shown.join(" "),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            )
        };
        let dirs = |v: &[PathBuf]| {
            v.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        if !self.missing_shards.is_empty() {
            let v: Vec<String> = self.missing_shards.iter().map(|i| i.to_string()).collect();
            out.push(format!("missing shard(s): {}", v.join(" ")));
        }
        if !self.running_shards.is_empty() {
            out.push(format!(
                "shard(s) still running: {}",
                list(&dirs(&self.running_shards))
            ));
        }
        if !self.dead_shards.is_empty() {
            out.push(format!(
                "shard(s) that say running but stopped their heartbeat (killed? re-run them to resume): {}",
                list(&dirs(&self.dead_shards))
            ));
        }
        if !self.missing_instances.is_empty() {
            out.push(format!(
                "{} instance(s) without a prediction: {}",
                self.missing_instances.len(),
                list(&self.missing_instances)
            ));
        }
        if !self.duplicates.is_empty() {
            out.push(format!(
                "{} instance(s) predicted in more than one shard: {}",
                self.duplicates.len(),
                list(&self.duplicates)
            ));
        }
        out.extend(self.inconsistent.iter().cloned());
        out
    }
}

/// What a merge found and joined (the content of `merge.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MergeReport {
    pub run_id: String,
    pub shards: Vec<ShardStatus>,
    pub problems: MergeProblems,
    /// Whether the merge went ahead despite problems (`--partial`).
    pub partial: bool,
    pub predictions: usize,
    pub merge_secs: f64,
}

/// The joined run, before anything is written.
pub struct Merged {
    pub report: MergeReport,
    /// Sorted by instance id; for a duplicate, the first directory's line.
    pub predictions: Vec<PredictionLine>,
    pub summary: RunSummaryFile,
    /// Every assigned instance id, in shard order.
    pub instance_ids: Vec<String>,
}

/// Read shard directories and join them in memory; nothing is written. `stale_after`: a
/// shard whose heartbeat is older than this while it says running counts as dead.
pub fn collect(
    dirs: &[PathBuf],
    run_id: &str,
    stale_after: Duration,
) -> Result<Merged, SwebenchError> {
    let started = std::time::Instant::now();
    if dirs.is_empty() {
        return Err(SwebenchError::Invalid(
            "no shard directories to merge".into(),
        ));
    }
    let mut problems = MergeProblems::default();
    let mut shards = Vec::new();
    let mut files = Vec::new();
    for d in dirs {
        let f = read_shard_file(d).map_err(|e| {
            SwebenchError::Invalid(format!(
                "{} is not a shard directory (made by `mend swebench run --shard I/N`): {e}",
                d.display()
            ))
        })?;
        files.push((d.clone(), f));
    }
    let count = files[0].1.count;
    let parent = files[0].1.run_id.clone();
    let mut seen_index: BTreeMap<usize, PathBuf> = BTreeMap::new();
    for (d, f) in &files {
        if f.run_id != parent {
            problems.inconsistent.push(format!(
                "{} belongs to run `{}`, {} to run `{}`",
                d.display(),
                f.run_id,
                files[0].0.display(),
                parent
            ));
        }
        if f.count != count {
            problems.inconsistent.push(format!(
                "{} is shard {}/{} but {} is of {count}",
                d.display(),
                f.index,
                f.count,
                files[0].0.display()
            ));
        }
        if let Some(other) = seen_index.insert(f.index, d.clone()) {
            problems.inconsistent.push(format!(
                "shard {} appears twice: {} and {}",
                f.index,
                other.display(),
                d.display()
            ));
        }
    }
    problems.missing_shards = (1..=count)
        .filter(|i| !seen_index.contains_key(i))
        .collect();

    let now = now_secs();
    let mut by_id: BTreeMap<String, PredictionLine> = BTreeMap::new();
    let mut dup: BTreeSet<String> = BTreeSet::new();
    let mut assigned: Vec<String> = Vec::new();
    let mut assigned_set: BTreeSet<String> = BTreeSet::new();
    let mut records: Vec<InstanceRecord> = Vec::new();
    let mut model_names: BTreeSet<String> = BTreeSet::new();
    let mut summary = RunSummaryFile {
        run_id: run_id.to_string(),
        ..Default::default()
    };
    for (d, f) in &files {
        // A shard still writing may have a torn last line: it is left alone (the file is the shard's).
        let (preds, _, _torn) = read_complete_lines::<PredictionLine>(&d.join(PREDICTIONS))?;
        let shard_summary = match std::fs::read_to_string(d.join(SUMMARY)) {
            Ok(t) => Some(serde_json::from_str::<RunSummaryFile>(&t).map_err(|e| {
                SwebenchError::File {
                    path: d.join(SUMMARY),
                    message: e.to_string(),
                }
            })?),
            Err(_) => None,
        };
        let state = if f.state == "running" && now - f.updated_at > stale_after.as_secs_f64() {
            "dead".to_string()
        } else {
            f.state.clone()
        };
        match state.as_str() {
            "running" => problems.running_shards.push(d.clone()),
            "dead" => problems.dead_shards.push(d.clone()),
            _ => {}
        }
        for id in &f.instance_ids {
            if assigned_set.insert(id.clone()) {
                assigned.push(id.clone());
            } else {
                problems
                    .inconsistent
                    .push(format!("{id} is assigned to more than one shard"));
            }
        }
        let mine: BTreeSet<&String> = f.instance_ids.iter().collect();
        for p in &preds {
            if !mine.contains(&p.instance_id) {
                problems.inconsistent.push(format!(
                    "{} has a prediction for {}, which shard {} was not given",
                    d.display(),
                    p.instance_id,
                    f.index
                ));
            }
            model_names.insert(p.model_name_or_path.clone());
            if by_id.contains_key(&p.instance_id) {
                dup.insert(p.instance_id.clone());
            } else {
                by_id.insert(p.instance_id.clone(), p.clone());
            }
        }
        let cost = shard_summary.as_ref().map_or(0.0, |s| s.cost_usd);
        if let Some(s) = &shard_summary {
            summary.tokens_in += s.tokens_in;
            summary.tokens_out += s.tokens_out;
            summary.cost_usd += s.cost_usd;
            summary.wall_secs_total += s.wall_secs_total;
            if summary.model_name_or_path.is_empty() {
                summary.model_name_or_path = s.model_name_or_path.clone();
            }
            records.extend(s.instances.iter().cloned());
        }
        shards.push(ShardStatus {
            dir: d.clone(),
            index: f.index,
            count: f.count,
            state,
            assigned: f.instance_ids.len(),
            predictions: preds.len(),
            cost_usd: cost,
            started_at: f.started_at,
            finished_at: f.finished_at,
            host: f.host.clone(),
        });
    }
    if model_names.len() > 1 {
        problems.inconsistent.push(format!(
            "the shards used different model names: {}",
            model_names.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    problems.duplicates = dup.into_iter().collect();
    problems.missing_instances = assigned
        .iter()
        .filter(|id| !by_id.contains_key(*id))
        .cloned()
        .collect();
    shards.sort_by_key(|s| s.index);

    // The summary over the shards' latest records: one per instance (a done one wins).
    let mut latest: BTreeMap<String, InstanceRecord> = BTreeMap::new();
    for r in records {
        match latest.get(&r.instance_id) {
            Some(prev) if prev.is_done() => {}
            _ => {
                latest.insert(r.instance_id.clone(), r);
            }
        }
    }
    summary.selected = assigned.len();
    let mut walls = Vec::new();
    for id in &assigned {
        let Some(r) = latest.remove(id) else { continue };
        if r.is_done() {
            summary.done += 1;
            summary.patch_bytes_total += r.patch_bytes;
            summary.empty_patches += usize::from(r.patch_bytes == 0);
        } else {
            summary.errors += 1;
        }
        *summary.exit_statuses.entry(r.exit.clone()).or_default() += 1;
        walls.push(r.wall_secs);
        summary.instances.push(r);
    }
    walls.sort_by(f64::total_cmp);
    summary.wall_secs_median = walls.get(walls.len() / 2).copied().unwrap_or(0.0);
    summary.not_run = summary.selected - summary.instances.len();
    let predictions: Vec<PredictionLine> = by_id.into_values().collect();
    Ok(Merged {
        report: MergeReport {
            run_id: run_id.to_string(),
            shards,
            problems,
            partial: false,
            predictions: predictions.len(),
            merge_secs: started.elapsed().as_secs_f64(),
        },
        predictions,
        summary,
        instance_ids: assigned,
    })
}

/// Write a merged run into `out_dir`: `predictions.jsonl` (official format, by instance id),
/// `summary.json` and `merge.json`. Refuses when there are problems unless `partial`, and
/// refuses an `out_dir` that holds a run of its own (not one made by a merge).
pub fn write(out_dir: &Path, merged: &mut Merged, partial: bool) -> Result<(), SwebenchError> {
    if !merged.report.problems.is_empty() && !partial {
        return Err(SwebenchError::Invalid(format!(
            "not merged:\n  {}\n(--partial merges what is there and records the problems in {MERGE_FILE})",
            merged.report.problems.lines().join("\n  ")
        )));
    }
    if out_dir.join(PREDICTIONS).exists() && !out_dir.join(MERGE_FILE).exists() {
        return Err(SwebenchError::Invalid(format!(
            "{} already holds a run that no merge made; merge into another --run-id",
            out_dir.display()
        )));
    }
    std::fs::create_dir_all(out_dir)
        .map_err(SwebenchError::io(format!("creating {}", out_dir.display())))?;
    let mut text = String::new();
    for p in &merged.predictions {
        text.push_str(
            &serde_json::to_string(p).map_err(|e| SwebenchError::Invalid(e.to_string()))?,
        );
        text.push('\n');
    }
    let path = out_dir.join(PREDICTIONS);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(SwebenchError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path)
        .map_err(SwebenchError::io(format!("renaming to {}", path.display())))?;
    write_json(&out_dir.join(SUMMARY), &merged.summary)?;
    merged.report.partial = partial;
    write_json(&out_dir.join(MERGE_FILE), &merged.report)
}

/// Shard directories of `run_id` under `runs_dir` (`<run_id>-shard-I-of-N`), by index.
pub fn find_shard_dirs(runs_dir: &Path, run_id: &str) -> Vec<PathBuf> {
    let prefix = format!("{run_id}-shard-");
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(runs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let rest = name.strip_prefix(&prefix)?;
            let (i, _n) = rest.split_once("-of-")?;
            let i: usize = i.parse().ok()?;
            e.path().join(SHARD_FILE).is_file().then(|| (i, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, repo: &str, statement_len: usize) -> Instance {
        Instance {
            instance_id: id.into(),
            repo: repo.into(),
            base_commit: "0".repeat(40),
            version: "1".into(),
            patch: String::new(),
            test_patch: String::new(),
            problem_statement: "x".repeat(statement_len),
            environment_setup_commit: None,
            fail_to_pass: None,
            pass_to_pass: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn shard_specs_parse_and_bad_ones_say_what_was_expected() {
        assert_eq!(
            ShardSpec::parse("2/3").unwrap(),
            ShardSpec { index: 2, count: 3 }
        );
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            let e = ShardSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected I/N"), "{bad}: {e}");
        }
        assert_eq!(
            ShardSpec { index: 2, count: 3 }.run_id("r"),
            "r-shard-2-of-3"
        );
    }

    #[test]
    fn shards_cover_everything_once_spread_each_repo_and_ignore_input_order() {
        let mut all = Vec::new();
        for (repo, n) in [("a/big", 20), ("b/mid", 9), ("c/one", 1)] {
            for k in 0..n {
                all.push(inst(&format!("{repo}-{k}"), repo, 100 + 700 * (k % 5)));
            }
        }
        let n = 3;
        let mut seen = BTreeSet::new();
        let mut loads = Vec::new();
        for i in 1..=n {
            let ids = shard_ids(&all, ShardSpec { index: i, count: n });
            for id in &ids {
                assert!(seen.insert(id.clone()), "{id} in two shards");
            }
            // Every repository spread evenly.
            for (repo, total) in [("a/big", 20usize), ("b/mid", 9)] {
                let c = ids.iter().filter(|id| id.starts_with(repo)).count();
                assert!(c == total / n || c == total.div_ceil(n), "{repo}: {c}");
            }
            loads.push(
                all.iter()
                    .filter(|x| ids.contains(&x.instance_id))
                    .map(expected_cost)
                    .sum::<f64>(),
            );
        }
        assert_eq!(seen.len(), all.len());
        let (lo, hi) = (
            loads.iter().cloned().fold(f64::MAX, f64::min),
            loads.iter().cloned().fold(0.0, f64::max),
        );
        assert!(hi - lo <= 1.5, "unbalanced expected cost: {loads:?}");
        // The same split whatever the order the dataset came in.
        let mut rev = all.clone();
        rev.reverse();
        for i in 1..=n {
            let spec = ShardSpec { index: i, count: n };
            let mut a = shard_ids(&all, spec);
            let mut b = shard_ids(&rev, spec);
            a.sort();
            b.sort();
            assert_eq!(a, b);
        }
    }

    fn shard_dir(root: &Path, spec: ShardSpec, ids: &[&str], done: &[&str]) -> PathBuf {
        let dir = root.join(spec.run_id("r"));
        let mut f = begin(
            &dir,
            "r",
            spec,
            ids.iter().map(|s| s.to_string()).collect(),
            None,
        )
        .unwrap();
        let mut text = String::new();
        for id in done {
            text.push_str(&format!(
                "{{\"instance_id\":\"{id}\",\"model_name_or_path\":\"m\",\"model_patch\":\"p-{id}\"}}\n"
            ));
        }
        std::fs::write(dir.join(PREDICTIONS), text).unwrap();
        end(&dir, &mut f, "finished").unwrap();
        dir
    }

    #[test]
    fn merge_refuses_missing_duplicate_and_running_shards_unless_partial() {
        let root = tempfile::tempdir().unwrap();
        let s = |i| ShardSpec { index: i, count: 3 };
        let d1 = shard_dir(root.path(), s(1), &["a", "b"], &["a", "b"]);
        let d2 = shard_dir(root.path(), s(2), &["c", "d"], &["c"]);
        // Shard 3 is missing; shard 2 lacks d.
        let mut m = collect(&[d1.clone(), d2.clone()], "r", Duration::from_secs(60)).unwrap();
        assert_eq!(m.report.problems.missing_shards, vec![3]);
        assert_eq!(m.report.problems.missing_instances, vec!["d".to_string()]);
        let out = root.path().join("r");
        let e = write(&out, &mut m, false).unwrap_err().to_string();
        assert!(
            e.contains("missing shard(s): 3") && e.contains("without a prediction: d"),
            "{e}"
        );
        assert!(!out.exists(), "a refused merge wrote something");
        write(&out, &mut m, true).unwrap();
        let merged = std::fs::read_to_string(out.join(PREDICTIONS)).unwrap();
        assert_eq!(merged.lines().count(), 3);
        let report: MergeReport =
            serde_json::from_str(&std::fs::read_to_string(out.join(MERGE_FILE)).unwrap()).unwrap();
        assert!(report.partial && report.problems.missing_shards == vec![3]);

        // A shard still running (fresh heartbeat) and one whose heartbeat stopped.
        let d3 = root.path().join(s(3).run_id("r"));
        let mut f3 = begin(&d3, "r", s(3), vec!["e".into()], None).unwrap();
        let m = collect(
            &[d1.clone(), d2.clone(), d3.clone()],
            "r",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(m.report.problems.running_shards, vec![d3.clone()]);
        f3.updated_at -= 600.0;
        write_json(&d3.join(SHARD_FILE), &f3).unwrap();
        let m = collect(
            &[d1.clone(), d2.clone(), d3.clone()],
            "r",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(m.report.problems.dead_shards, vec![d3.clone()]);

        // The same instance predicted by two directories (a shard copied back twice).
        let copy = root.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        for f in [SHARD_FILE, PREDICTIONS] {
            std::fs::copy(d1.join(f), copy.join(f)).unwrap();
        }
        let m = collect(&[d1.clone(), copy], "r", Duration::from_secs(60)).unwrap();
        assert_eq!(
            m.report.problems.duplicates,
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(m.report.problems.inconsistent[0].contains("shard 1 appears twice"));
    }

    #[test]
    fn a_shard_directory_made_for_another_split_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let spec = ShardSpec { index: 1, count: 2 };
        let dir = root.path().join(spec.run_id("r"));
        begin(&dir, "r", spec, vec!["a".into()], None).unwrap();
        begin(&dir, "r", spec, vec!["a".into()], None).unwrap();
        let e = begin(&dir, "r", spec, vec!["a".into(), "b".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the dataset or the selection changed"), "{e}");
    }
}
