//! Reading what `mend swebench run`, `mend swebench eval` and `mend fix` leave on disk.
//! Every field is optional here: a run still going, an older mend, or a newer one that adds
//! sections (best-of-N candidates, reproduction checks) all load; what is absent is shown
//! as absent. Files are read fresh on each call, so a page shows a running batch as it is.
//!
//! A run directory (see mend-swebench's `run` module) holds `summary.json`, `status.jsonl`,
//! `predictions.jsonl`, `trajectories/<id>.traj.json`, `logs/<id>.log`, and after `--eval`
//! `<model>.<run_id>.json` (the official summary), `<model>.<run_id>.mend.json` (mend's
//! outcome per instance) and `logs/run_evaluation/<run_id>/<model>/<id>/` (report.json,
//! test_output.txt, run_instance.log).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ViewError;

const SUMMARY: &str = "summary.json";
const STATUS: &str = "status.jsonl";
const PREDICTIONS: &str = "predictions.jsonl";
const TRAJECTORIES: &str = "trajectories";
const TRAJ_SUFFIX: &str = ".traj.json";

/// What a path given to `mend view` is.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// One trajectory file (`mend fix --trajectory`, or one of a run's).
    Trajectory(PathBuf),
    /// One run directory of `mend swebench run`.
    Run(PathBuf),
    /// A directory of run directories (`runs/`).
    Runs(PathBuf),
}

impl Source {
    /// Decide what `path` is, or say why it is none of them.
    pub fn detect(path: &Path) -> Result<Source, ViewError> {
        let meta = std::fs::metadata(path).map_err(|e| ViewError::Input {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        if meta.is_file() {
            let v = read_json(path)?;
            if v.get("steps").is_some_and(Value::is_array) {
                return Ok(Source::Trajectory(path.to_path_buf()));
            }
            return Err(ViewError::Input {
                path: path.to_path_buf(),
                message: "not a trajectory: a JSON object with `steps` was expected (what `mend fix --trajectory` writes)".into(),
            });
        }
        if is_run_dir(path) {
            return Ok(Source::Run(path.to_path_buf()));
        }
        if !run_dirs(path)?.is_empty() {
            return Ok(Source::Runs(path.to_path_buf()));
        }
        Err(ViewError::Input {
            path: path.to_path_buf(),
            message: "holds no run: expected a run directory of `mend swebench run` (summary.json, predictions.jsonl or trajectories/), a directory of them, or a .traj.json file".into(),
        })
    }
}

fn is_run_dir(dir: &Path) -> bool {
    [SUMMARY, STATUS, PREDICTIONS, TRAJECTORIES]
        .iter()
        .any(|f| dir.join(f).exists())
}

/// The run directories directly inside `dir`, by name.
pub fn run_dirs(dir: &Path) -> Result<Vec<PathBuf>, ViewError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ViewError::Input {
        path: dir.to_path_buf(),
        message: format!("cannot list it: {e}"),
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && is_run_dir(p))
        .collect();
    out.sort();
    Ok(out)
}

pub fn read_json(path: &Path) -> Result<Value, ViewError> {
    let text = std::fs::read_to_string(path).map_err(|e| ViewError::Input {
        path: path.to_path_buf(),
        message: format!("cannot read it: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| ViewError::Input {
        path: path.to_path_buf(),
        message: format!("not valid JSON: {e}"),
    })
}

/// A file name for `id` that is safe in a URL and on any file system.
pub fn slug(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// One instance's record as `status.jsonl` and `summary.json` hold it; every field
/// optional, unknown ones kept in `extra` (candidates, reproduction...).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Record {
    instance_id: String,
    repo: String,
    state: String,
    exit: String,
    detail: String,
    steps: usize,
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
    wall_secs: f64,
    patch_bytes: usize,
    patch_files: usize,
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

/// One instance of a run, as its pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    /// The page's file name (no extension).
    pub slug: String,
    pub repo: String,
    pub state: String,
    pub exit: String,
    pub detail: String,
    pub steps: usize,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_secs: f64,
    pub patch_bytes: usize,
    pub patch_files: usize,
    /// `Some` once evaluated.
    pub resolved: Option<bool>,
    /// `resolved`, `unresolved`, `empty patch`, `error: ...`, or `not evaluated`.
    pub verdict: String,
    /// Best-of-N: how many candidates, and whether the chosen one differs from the first.
    pub candidates: Option<usize>,
    pub choice_changed: Option<bool>,
    /// One candidate whose first attempt ended without a patch and was run once more.
    pub retried: bool,
}

/// The official evaluation summary beside a run, with mend's outcome per instance.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub path: PathBuf,
    pub resolved: BTreeSet<String>,
    pub unresolved: BTreeSet<String>,
    pub empty: BTreeSet<String>,
    pub errors: BTreeSet<String>,
    /// mend's finer outcome (`patch_apply_failed: ...`), from `<model>.<run_id>.mend.json`.
    pub outcomes: BTreeMap<String, String>,
}

/// A run directory, loaded.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub id: String,
    pub model: String,
    pub selected: usize,
    pub not_run: usize,
    pub rows: Vec<Row>,
    pub eval: Option<Evaluation>,
    /// Sections of summary.json this viewer has no table for (shown as they are).
    pub extra: serde_json::Map<String, Value>,
}

impl Run {
    pub fn load(dir: &Path) -> Result<Run, ViewError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let summary = match dir.join(SUMMARY) {
            p if p.exists() => Some(read_json(&p)?),
            _ => None,
        };
        let s = summary.as_ref();
        let id = s
            .and_then(|s| s.get("run_id"))
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_string();
        let mut model = s
            .and_then(|s| s.get("model_name_or_path"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let records = match s.and_then(|s| s.get("instances")) {
            Some(list) => serde_json::from_value::<Vec<Record>>(list.clone()).map_err(|e| {
                ViewError::Input {
                    path: dir.join(SUMMARY),
                    message: format!("`instances` is not a list of instance records: {e}"),
                }
            })?,
            None => records_without_summary(dir)?,
        };
        if model.is_empty() {
            model = first_model_name(&dir.join(PREDICTIONS)).unwrap_or_default();
        }
        let eval = Evaluation::find(dir, &id, &model);
        let mut slugs = BTreeSet::new();
        let rows = records
            .into_iter()
            .map(|r| {
                let mut slug = slug(&r.instance_id);
                while !slugs.insert(slug.clone()) {
                    slug.push('_');
                }
                row(r, slug, eval.as_ref())
            })
            .collect::<Vec<_>>();
        let num = |k: &str| s.and_then(|s| s.get(k)).and_then(Value::as_u64);
        let mut extra = s.and_then(Value::as_object).cloned().unwrap_or_default();
        for known in [
            "run_id",
            "model_name_or_path",
            "selected",
            "done",
            "errors",
            "not_run",
            "exit_statuses",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "wall_secs_total",
            "wall_secs_median",
            "patch_bytes_total",
            "empty_patches",
            "instances",
            // Best-of-N totals: the run page counts them from the instances.
            "selected_among_candidates",
            "choice_differs_from_first",
            "retried",
        ] {
            extra.remove(known);
        }
        Ok(Run {
            dir: dir.to_path_buf(),
            selected: num("selected").map(|n| n as usize).unwrap_or(rows.len()),
            not_run: num("not_run").unwrap_or(0) as usize,
            id,
            model,
            rows,
            eval,
            extra,
        })
    }

    pub fn trajectory_path(&self, id: &str) -> PathBuf {
        self.dir
            .join(TRAJECTORIES)
            .join(format!("{id}{TRAJ_SUFFIX}"))
    }

    /// The agent's log of one instance (`logs/<id>.log`).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{id}.log"))
    }

    /// The evaluation's directory of one instance, if it was evaluated.
    pub fn eval_dir(&self, id: &str) -> Option<PathBuf> {
        let root = self.dir.join("logs").join("run_evaluation");
        // <run_id>/<model>/<id>: the run id and model directory as the eval wrote them.
        for run in std::fs::read_dir(&root).ok()?.filter_map(Result::ok) {
            for model in std::fs::read_dir(run.path()).ok()?.filter_map(Result::ok) {
                let d = model.path().join(id);
                if d.is_dir() {
                    return Some(d);
                }
            }
        }
        None
    }

    pub fn row_by_slug(&self, slug: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.slug == slug)
    }
}

fn row(r: Record, slug: String, eval: Option<&Evaluation>) -> Row {
    let (resolved, verdict) = match eval {
        None => (None, "not evaluated".to_string()),
        Some(e) => e.verdict(&r.instance_id),
    };
    // `selection` is what mend-swebench writes; `candidates` an older name.
    let sel = r
        .extra
        .get("selection")
        .or_else(|| r.extra.get("candidates"));
    let retried = sel.is_some_and(|v| v["retried"].as_bool() == Some(true));
    let (candidates, choice_changed) = if retried {
        (None, None)
    } else {
        candidate_counts(sel)
    };
    Row {
        id: r.instance_id,
        slug,
        repo: r.repo,
        state: r.state,
        exit: if r.exit.is_empty() {
            "unknown".into()
        } else {
            r.exit
        },
        detail: r.detail,
        steps: r.steps,
        tokens_in: r.tokens_in,
        tokens_out: r.tokens_out,
        cost_usd: r.cost_usd,
        wall_secs: r.wall_secs,
        patch_bytes: r.patch_bytes,
        patch_files: r.patch_files,
        resolved,
        verdict,
        candidates,
        choice_changed,
        retried,
    }
}

/// How many candidates a best-of-N record has and whether the choice changed the answer
/// (the chosen candidate is not the first one made). Tolerant of the record's shape: a
/// list of candidates, or an object with `candidates`/`count` and `chosen`/`winner`.
pub fn candidate_counts(v: Option<&Value>) -> (Option<usize>, Option<bool>) {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return (None, None);
    };
    let list = v
        .as_array()
        .or_else(|| v.get("candidates").and_then(Value::as_array));
    let n = list
        .map(Vec::len)
        .or_else(|| {
            v.get("candidates")
                .and_then(Value::as_u64)
                .map(|n| n as usize)
        })
        .or_else(|| v.get("count").and_then(Value::as_u64).map(|n| n as usize))
        .or_else(|| v.get("n").and_then(Value::as_u64).map(|n| n as usize));
    let changed = ["differs_from_first", "changed", "choice_changed"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_bool))
        .or_else(|| {
            ["winner", "chosen", "selected"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_u64))
                .map(|i| i != 0)
        });
    (n, changed)
}

/// Records from `status.jsonl` (the latest per instance, a done one final), or else one
/// per trajectory file: a run that has not written its summary yet.
fn records_without_summary(dir: &Path) -> Result<Vec<Record>, ViewError> {
    let mut latest: BTreeMap<String, Record> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(dir.join(STATUS)) {
        // A torn last line (the run is writing, or crashed) is skipped.
        for r in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        {
            let keep_old = latest
                .get(&r.instance_id)
                .is_some_and(|old| old.state == "done");
            if !keep_old {
                latest.insert(r.instance_id.clone(), r);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join(TRAJECTORIES)) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(TRAJ_SUFFIX) else {
                continue;
            };
            if latest.contains_key(id) {
                continue;
            }
            let t = read_json(&e.path()).unwrap_or(Value::Null);
            let totals = &t["totals"];
            latest.insert(
                id.to_string(),
                Record {
                    instance_id: id.to_string(),
                    repo: repo_of(id),
                    state: if t["exit_status"].is_null() {
                        "running".into()
                    } else {
                        "done".into()
                    },
                    exit: t["exit_status"]["status"]
                        .as_str()
                        .unwrap_or("running")
                        .into(),
                    steps: totals["steps"].as_u64().unwrap_or(0) as usize,
                    tokens_in: totals["tokens_in"].as_u64().unwrap_or(0),
                    tokens_out: totals["tokens_out"].as_u64().unwrap_or(0),
                    cost_usd: totals["cost_usd"].as_f64().unwrap_or(0.0),
                    wall_secs: totals["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                    patch_bytes: t["patch"].as_str().map(str::len).unwrap_or(0),
                    ..Default::default()
                },
            );
        }
    }
    Ok(latest.into_values().collect())
}

/// `owner/name` from a SWE-bench id `owner__name-1234`.
fn repo_of(id: &str) -> String {
    match id.rsplit_once('-') {
        Some((repo, _)) => repo.replacen("__", "/", 1),
        None => String::new(),
    }
}

fn first_model_name(predictions: &Path) -> Option<String> {
    let text = std::fs::read_to_string(predictions).ok()?;
    let line = text.lines().next()?;
    let v: Value = serde_json::from_str(line).ok()?;
    v["model_name_or_path"].as_str().map(str::to_string)
}

impl Evaluation {
    /// The evaluation summary in the run directory: `<model>.<run_id>.json`, or any JSON
    /// there with the official `resolved_ids`.
    fn find(dir: &Path, run_id: &str, model: &str) -> Option<Evaluation> {
        let expected = dir.join(format!("{}.{run_id}.json", model.replace('/', "__")));
        let path = if expected.is_file() {
            expected
        } else {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().unwrap_or_default().to_string_lossy();
                    n.ends_with(&format!(".{run_id}.json")) && !n.ends_with(".mend.json")
                })
                .collect();
            found.sort();
            found.into_iter().next()?
        };
        let v = read_json(&path).ok()?;
        v.get("resolved_ids")?;
        let ids = |k: &str| -> BTreeSet<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let details = path.with_extension("mend.json");
        let outcomes = read_json(&details)
            .ok()
            .and_then(|d| d.get("outcomes").and_then(Value::as_object).cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(id, o)| {
                let kind = o["outcome"].as_str().unwrap_or("").replace('_', " ");
                let text = match o["detail"].as_str() {
                    Some(d) => format!("{kind}: {d}"),
                    None => kind,
                };
                (id, text)
            })
            .collect();
        Some(Evaluation {
            resolved: ids("resolved_ids"),
            unresolved: ids("unresolved_ids"),
            empty: ids("empty_patch_ids"),
            errors: ids("error_ids"),
            outcomes,
            path,
        })
    }

    fn verdict(&self, id: &str) -> (Option<bool>, String) {
        if self.resolved.contains(id) {
            (Some(true), "resolved".into())
        } else if self.unresolved.contains(id) {
            (Some(false), "unresolved".into())
        } else if self.empty.contains(id) {
            (Some(false), "empty patch".into())
        } else if self.errors.contains(id) {
            let why = self
                .outcomes
                .get(id)
                .cloned()
                .unwrap_or_else(|| "error".into());
            (Some(false), format!("error: {why}"))
        } else {
            (None, "not evaluated".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_file_names() {
        assert_eq!(slug("django__django-11099"), "django__django-11099");
        assert_eq!(slug("a/b c"), "a_b_c");
        assert_eq!(slug("../x"), "_.._x");
        assert_eq!(slug(""), "_");
        assert_eq!(repo_of("django__django-11099"), "django/django");
    }

    #[test]
    fn candidate_records_of_several_shapes_are_counted() {
        let v = serde_json::json!({"candidates": [{}, {}, {}], "chosen": 2});
        assert_eq!(candidate_counts(Some(&v)), (Some(3), Some(true)));
        let v = serde_json::json!([{}, {}]);
        assert_eq!(candidate_counts(Some(&v)), (Some(2), None));
        let v = serde_json::json!({"count": 4, "changed": false});
        assert_eq!(candidate_counts(Some(&v)), (Some(4), Some(false)));
        // mend-swebench's SelectionSummary.
        let v = serde_json::json!({"candidates": 3, "winner": 1, "differs_from_first": true, "retried": false, "scores": [0, 3000, 1000]});
        assert_eq!(candidate_counts(Some(&v)), (Some(3), Some(true)));
        assert_eq!(candidate_counts(None), (None, None));
    }

    #[test]
    fn bad_input_is_named() {
        let d = tempfile::tempdir().unwrap();
        let e = Source::detect(&d.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
        let e = Source::detect(d.path()).unwrap_err().to_string();
        assert!(e.contains("holds no run"), "{e}");
        let f = d.path().join("x.json");
        std::fs::write(&f, "{\"a\": 1}").unwrap();
        let e = Source::detect(&f).unwrap_err().to_string();
        assert!(e.contains("not a trajectory"), "{e}");
        std::fs::write(&f, "{not json").unwrap();
        let e = Source::detect(&f).unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let run = d.path().join("r1");
        std::fs::create_dir_all(run.join("trajectories")).unwrap();
        std::fs::write(run.join("summary.json"), "{\"instances\": 3}").unwrap();
        assert_eq!(
            Source::detect(d.path()).unwrap(),
            Source::Runs(d.path().into())
        );
        let e = Run::load(&run).unwrap_err().to_string();
        assert!(e.contains("summary.json") && e.contains("instances"), "{e}");
    }
}
