//! The pages: which routes a source has, and each one rendered on demand with minijinja
//! (templates compiled in). Links are relative, so the same pages work served and as
//! files (`--export`): every route is a file path ending in `.html`.
//!
//! Routes: a trajectory file is `index.html`; a run is `index.html` and `i/<id>.html`; a
//! runs directory is `index.html`, `r/<run>/index.html`, `r/<run>/i/<id>.html` and
//! `compare/<run a>/<run b>.html`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde::Serialize;
use serde_json::Value;

use crate::ViewError;
use crate::html::{folded, tail};
use crate::load::{Row, Run, Source, read_json, run_dirs, slug};
use crate::plot::{Bar, bars, histogram};
use crate::traj;

/// A template context: each value serialized (minijinja's `context!` takes only its own types).
macro_rules! ctx {
    ($($k:ident => $v:expr),* $(,)?) => {{
        let mut m = BTreeMap::<&'static str, minijinja::Value>::new();
        $( m.insert(stringify!($k), minijinja::Value::from(minijinja::value::Serde(&$v))); )*
        minijinja::Value::from(minijinja::value::Serde(m))
    }};
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("instance.html", include_str!("../templates/instance.html")),
    ("compare.html", include_str!("../templates/compare.html")),
];

/// Logs shown on a page are cut to their last this many bytes.
const LOG_TAIL: usize = 200_000;
/// Export every pair of runs up to this many runs; beyond, neighbours (by name) only.
const ALL_PAIRS_UP_TO: usize = 12;

/// What `mend view` shows: a source and its pages.
pub struct Site {
    source: Source,
    env: Environment<'static>,
}

#[derive(Serialize)]
struct Crumb {
    label: String,
    href: String,
}

fn crumb(label: impl Into<String>, href: impl Into<String>) -> Crumb {
    Crumb {
        label: label.into(),
        href: href.into(),
    }
}

impl Site {
    /// The site for `path` (a run directory, a runs directory or a trajectory file).
    pub fn open(path: &Path) -> Result<Site, ViewError> {
        let source = Source::detect(path)?;
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .map_err(|e| ViewError::Template(format!("{name}: {e:#}")))?;
        }
        Ok(Site { source, env })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Every page's route, for export.
    pub fn routes(&self) -> Result<Vec<String>, ViewError> {
        let mut out = vec!["index.html".to_string()];
        match &self.source {
            Source::Trajectory(_) => {}
            Source::Run(dir) => {
                let run = Run::load(dir)?;
                out.extend(run.rows.iter().map(|r| format!("i/{}.html", r.slug)));
            }
            Source::Runs(dir) => {
                let runs = self.runs(dir)?;
                for (s, run) in &runs {
                    out.push(format!("r/{s}/index.html"));
                    out.extend(run.rows.iter().map(|r| format!("r/{s}/i/{}.html", r.slug)));
                }
                for (a, b) in pairs(&runs) {
                    out.push(format!("compare/{a}/{b}.html"));
                }
            }
        }
        Ok(out)
    }

    /// The page at `route`, or `None` when there is no such page.
    pub fn page(&self, route: &str) -> Result<Option<String>, ViewError> {
        let route = route.trim_start_matches('/');
        let route = if route.is_empty() || route.ends_with('/') {
            format!("{route}index.html")
        } else {
            route.to_string()
        };
        let parts: Vec<&str> = route.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || p.starts_with('.')) {
            return Ok(None);
        }
        match (&self.source, parts.as_slice()) {
            (Source::Trajectory(path), ["index.html"]) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let id = name.strip_suffix(".traj.json").unwrap_or(&name).to_string();
                self.instance_page(&id, Some(path.clone()), None, None, "", vec![])
                    .map(Some)
            }
            (Source::Run(dir), ["index.html"]) => {
                self.run_page(&Run::load(dir)?, "", vec![]).map(Some)
            }
            (Source::Run(dir), ["i", file]) => {
                let run = Run::load(dir)?;
                self.run_instance(
                    &run,
                    file,
                    "../",
                    vec![crumb(run.id.clone(), "../index.html")],
                )
            }
            (Source::Runs(dir), ["index.html"]) => self.runs_page(dir).map(Some),
            (Source::Runs(dir), ["r", run, rest @ ..]) => {
                let Some(run) = self.run_by_slug(dir, run)? else {
                    return Ok(None);
                };
                match rest {
                    ["index.html"] => self
                        .run_page(&run, "../../", vec![crumb("runs", "../../index.html")])
                        .map(Some),
                    ["i", file] => self.run_instance(
                        &run,
                        file,
                        "../../../",
                        vec![
                            crumb("runs", "../../../index.html"),
                            crumb(run.id.clone(), "../index.html"),
                        ],
                    ),
                    _ => Ok(None),
                }
            }
            (Source::Runs(dir), ["compare", a, b]) => {
                let Some(b) = b.strip_suffix(".html") else {
                    return Ok(None);
                };
                let (Some(ra), Some(rb)) = (self.run_by_slug(dir, a)?, self.run_by_slug(dir, b)?)
                else {
                    return Ok(None);
                };
                self.compare_page(&ra, a, &rb, b).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, ViewError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| ViewError::Template(format!("{name}: {e:#}")))
    }

    /// Runs of a runs directory by their page slug.
    fn runs(&self, dir: &Path) -> Result<Vec<(String, Run)>, ViewError> {
        let mut out = vec![];
        let mut seen = BTreeSet::new();
        for d in run_dirs(dir)? {
            let name = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let mut s = slug(&name);
            while !seen.insert(s.clone()) {
                s.push('_');
            }
            out.push((s, Run::load(&d)?));
        }
        Ok(out)
    }

    fn run_by_slug(&self, dir: &Path, s: &str) -> Result<Option<Run>, ViewError> {
        // Only the one run is loaded: slugs are the directory names made safe.
        for d in run_dirs(dir)? {
            let name = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if slug(&name) == s {
                return Run::load(&d).map(Some);
            }
        }
        Ok(None)
    }

    fn run_instance(
        &self,
        run: &Run,
        file: &str,
        root: &str,
        crumbs: Vec<Crumb>,
    ) -> Result<Option<String>, ViewError> {
        let Some(s) = file.strip_suffix(".html") else {
            return Ok(None);
        };
        let Some(row) = run.row_by_slug(s) else {
            return Ok(None);
        };
        let path = run.trajectory_path(&row.id);
        self.instance_page(
            &row.id,
            path.exists().then_some(path),
            Some(run),
            Some(row),
            root,
            crumbs,
        )
        .map(Some)
    }

    fn runs_page(&self, dir: &Path) -> Result<String, ViewError> {
        #[derive(Serialize)]
        struct RunLine {
            slug: String,
            id: String,
            model: String,
            instances: usize,
            done: usize,
            resolved: Option<usize>,
            rate: String,
            cost: f64,
        }
        #[derive(Serialize)]
        struct Pair {
            a: String,
            b: String,
            a_id: String,
            b_id: String,
        }
        let runs = self.runs(dir)?;
        let lines: Vec<RunLine> = runs
            .iter()
            .map(|(s, r)| {
                let resolved = r
                    .eval
                    .as_ref()
                    .map(|_| r.rows.iter().filter(|x| x.resolved == Some(true)).count());
                RunLine {
                    slug: s.clone(),
                    id: r.id.clone(),
                    model: r.model.clone(),
                    instances: r.selected.max(r.rows.len()),
                    done: r.rows.iter().filter(|x| x.state == "done").count(),
                    rate: rate(resolved, r.selected.max(r.rows.len())),
                    resolved,
                    cost: r.rows.iter().map(|x| x.cost_usd).sum(),
                }
            })
            .collect();
        let ids: BTreeMap<&str, &str> = runs
            .iter()
            .map(|(s, r)| (s.as_str(), r.id.as_str()))
            .collect();
        let pairs: Vec<Pair> = pairs(&runs)
            .into_iter()
            .map(|(a, b)| Pair {
                a_id: ids.get(a.as_str()).copied().unwrap_or("").to_string(),
                b_id: ids.get(b.as_str()).copied().unwrap_or("").to_string(),
                a,
                b,
            })
            .collect();
        self.render(
            "runs.html",
            ctx! {
                title => format!("{} runs", lines.len()),
                version => env!("CARGO_PKG_VERSION"),
                crumbs => Vec::<Crumb>::new(),
                dir => dir.display().to_string(),
                runs => lines,
                pairs => pairs,
            },
        )
    }

    fn run_page(&self, run: &Run, root: &str, crumbs: Vec<Crumb>) -> Result<String, ViewError> {
        #[derive(Serialize, Default)]
        struct RepoLine {
            repo: String,
            instances: usize,
            done: usize,
            patches: usize,
            resolved: Option<usize>,
            rate: String,
            cost: f64,
        }
        #[derive(Serialize)]
        struct Card {
            k: String,
            v: String,
        }
        #[derive(Serialize)]
        struct Cand {
            instances: usize,
            total: usize,
            changed: usize,
            known: usize,
            retried: usize,
        }
        let rows = &run.rows;
        let evaluated = run.eval.is_some();
        let mut repos: BTreeMap<&str, RepoLine> = BTreeMap::new();
        for r in rows {
            let line = repos.entry(r.repo.as_str()).or_insert_with(|| RepoLine {
                repo: r.repo.clone(),
                ..Default::default()
            });
            line.instances += 1;
            line.done += usize::from(r.state == "done");
            line.patches += usize::from(r.patch_bytes > 0);
            line.cost += r.cost_usd;
            if evaluated {
                *line.resolved.get_or_insert(0) += usize::from(r.resolved == Some(true));
            }
        }
        for line in repos.values_mut() {
            line.rate = rate(line.resolved, line.instances);
        }
        let repo_bars: Vec<Bar> = repos
            .values()
            .map(|l| {
                let part = l.resolved.unwrap_or(l.patches);
                Bar {
                    label: l.repo.clone(),
                    part: part as f64,
                    whole: l.instances as f64,
                    note: format!("{part}/{}", l.instances),
                }
            })
            .collect();
        let mut exits: BTreeMap<&str, usize> = BTreeMap::new();
        for r in rows {
            *exits.entry(r.exit.as_str()).or_default() += 1;
        }
        let exit_bars: Vec<Bar> = exits
            .iter()
            .map(|(k, n)| Bar {
                label: k.to_string(),
                part: *n as f64,
                whole: *n as f64,
                note: n.to_string(),
            })
            .collect();
        let costs: Vec<f64> = rows.iter().map(|r| r.cost_usd).collect();
        let walls: Vec<f64> = rows.iter().map(|r| r.wall_secs).collect();
        let steps: Vec<f64> = rows.iter().map(|r| r.steps as f64).collect();
        let top = |key: &dyn Fn(&Row) -> f64| -> Vec<Row> {
            let mut v: Vec<&Row> = rows.iter().collect();
            v.sort_by(|a, b| key(b).total_cmp(&key(a)));
            v.into_iter().take(10).cloned().collect()
        };
        let resolved = rows.iter().filter(|r| r.resolved == Some(true)).count();
        let total = run.selected.max(rows.len());
        let cost: f64 = costs.iter().sum();
        let mut sorted_walls = walls.clone();
        sorted_walls.sort_by(f64::total_cmp);
        let mut cards = vec![
            Card {
                k: "instances".into(),
                v: format!("{total}"),
            },
            Card {
                k: format!("done ({} not run)", run.not_run),
                v: rows
                    .iter()
                    .filter(|r| r.state == "done")
                    .count()
                    .to_string(),
            },
            Card {
                k: "non-empty patches".into(),
                v: rows
                    .iter()
                    .filter(|r| r.patch_bytes > 0)
                    .count()
                    .to_string(),
            },
        ];
        if evaluated {
            cards.push(Card {
                k: "resolved".into(),
                v: format!("{resolved} ({})", rate(Some(resolved), total)),
            });
        }
        cards.extend([
            Card {
                k: "cost".into(),
                v: format!("${cost:.2}"),
            },
            Card {
                k: "tokens in / out".into(),
                v: format!(
                    "{} / {}",
                    rows.iter().map(|r| r.tokens_in).sum::<u64>(),
                    rows.iter().map(|r| r.tokens_out).sum::<u64>()
                ),
            },
            Card {
                k: "median wall time".into(),
                v: format!(
                    "{:.1} s",
                    sorted_walls
                        .get(sorted_walls.len() / 2)
                        .copied()
                        .unwrap_or(0.0)
                ),
            },
        ]);
        let with_cands: Vec<&Row> = rows.iter().filter(|r| r.candidates.is_some()).collect();
        let retried = rows.iter().filter(|r| r.retried).count();
        let cand = (!with_cands.is_empty() || retried > 0).then(|| Cand {
            retried,
            instances: with_cands.len(),
            total: with_cands.iter().filter_map(|r| r.candidates).sum(),
            changed: with_cands
                .iter()
                .filter(|r| r.choice_changed == Some(true))
                .count(),
            known: with_cands
                .iter()
                .filter(|r| r.choice_changed.is_some())
                .count(),
        });
        let extra: Vec<traj::Section> = run
            .extra
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| traj::Section {
                title: k.replace('_', " "),
                html: traj::generic(v),
            })
            .collect();
        let options = |f: &dyn Fn(&Row) -> &str| -> Vec<String> {
            rows.iter()
                .map(|r| f(r).to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        // Axis labels with as many decimals as the range needs.
        let (dm, dw) = (decimals(&costs), decimals(&walls));
        let money = move |v: f64| format!("{v:.dm$}");
        let secs = move |v: f64| format!("{v:.dw$}");
        let count = |v: f64| format!("{v:.0}");
        self.render(
            "run.html",
            ctx! {
                title => format!("run {}", run.id),
                version => env!("CARGO_PKG_VERSION"),
                crumbs => crumbs,
                root => root,
                ilink => "i/",
                run => ctx! {
                    id => run.id.clone(),
                    model => run.model.clone(),
                    dir => run.dir.display().to_string(),
                    eval_path => run.eval.as_ref().map(|e| e.path.display().to_string()),
                },
                cards => cards,
                plots => ctx! {
                    repos => bars("resolved per repository", &repo_bars),
                    exits => bars("exit statuses", &exit_bars),
                    cost => histogram("cost per instance", &costs, 12, &money),
                    time => histogram("wall time per instance", &walls, 12, &secs),
                    steps => histogram("steps per instance", &steps, 12, &count),
                },
                repos => repos.into_values().collect::<Vec<_>>(),
                costliest => top(&|r| r.cost_usd),
                slowest => top(&|r| r.wall_secs),
                cand => cand,
                extra => extra,
                repo_options => options(&|r| r.repo.as_str()),
                exit_options => options(&|r| r.exit.as_str()),
                rows => rows,
            },
        )
    }

    fn instance_page(
        &self,
        id: &str,
        traj_path: Option<PathBuf>,
        run: Option<&Run>,
        row: Option<&Row>,
        root: &str,
        crumbs: Vec<Crumb>,
    ) -> Result<String, ViewError> {
        let t = match &traj_path {
            Some(p) => Some(traj::view(&read_json(p)?)),
            None => None,
        };
        let ev = run.and_then(|r| eval_view(r, id, row));
        let agent_log_html = run
            .and_then(|r| std::fs::read_to_string(r.log_path(id)).ok())
            .map(|text| folded(tail(&text, LOG_TAIL).0, false));
        self.render(
            "instance.html",
            ctx! {
                title => id,
                version => env!("CARGO_PKG_VERSION"),
                crumbs => crumbs,
                root => root,
                id => id,
                repo => row.map(|r| r.repo.clone()).unwrap_or_default(),
                source => traj_path.map(|p| p.display().to_string()),
                row => row,
                t => t,
                ev => ev,
                agent_log_html => agent_log_html,
            },
        )
    }

    fn compare_page(
        &self,
        a: &Run,
        a_slug: &str,
        b: &Run,
        b_slug: &str,
    ) -> Result<String, ViewError> {
        #[derive(Serialize)]
        struct PairRow {
            id: String,
            a: Option<Row>,
            b: Option<Row>,
            a_patch: String,
            b_patch: String,
        }
        let both_evaluated = a.eval.is_some() && b.eval.is_some();
        // What "solved" means: resolved when both were evaluated, else a submitted patch.
        let solved = |r: &Row| {
            if both_evaluated {
                r.resolved == Some(true)
            } else {
                r.exit == "submitted" && r.patch_bytes > 0
            }
        };
        let pa = patches(&a.dir);
        let pb = patches(&b.dir);
        let ra: BTreeMap<&str, &Row> = a.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let rb: BTreeMap<&str, &Row> = b.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let ids: BTreeSet<&str> = ra.keys().chain(rb.keys()).copied().collect();
        let (mut only_a, mut only_b, mut differ) = (vec![], vec![], vec![]);
        let (mut both, mut neither, mut one_sided) = (0, 0, 0);
        for id in ids {
            let (x, y) = (ra.get(id).copied(), rb.get(id).copied());
            let pair = || PairRow {
                id: id.to_string(),
                a: x.cloned(),
                b: y.cloned(),
                a_patch: pa.get(id).map(|p| folded(p, true)).unwrap_or_default(),
                b_patch: pb.get(id).map(|p| folded(p, true)).unwrap_or_default(),
            };
            match (x, y) {
                (Some(x), Some(y)) => match (solved(x), solved(y)) {
                    (true, true) => both += 1,
                    (true, false) => only_a.push(pair()),
                    (false, true) => only_b.push(pair()),
                    (false, false) => {
                        neither += 1;
                        if x.exit != y.exit {
                            differ.push(pair());
                        }
                    }
                },
                _ => one_sided += 1,
            }
        }
        let side = |r: &Run, s: &str| {
            ctx! { id => r.id.clone(), model => r.model.clone(), slug => s }
        };
        self.render(
            "compare.html",
            ctx! {
                title => format!("{} vs {}", a.id, b.id),
                version => env!("CARGO_PKG_VERSION"),
                crumbs => vec![crumb("runs", "../../index.html")],
                a => side(a, a_slug),
                b => side(b, b_slug),
                what => if both_evaluated { "resolved" } else { "patched" },
                both_evaluated => both_evaluated,
                only_a => only_a,
                only_b => only_b,
                differ => differ,
                both => both,
                neither => neither,
                one_sided => one_sided,
            },
        )
    }
}

/// The pairs of runs exported (and listed): all of them for a few runs, else neighbours.
fn pairs(runs: &[(String, Run)]) -> Vec<(String, String)> {
    let mut out = vec![];
    for i in 0..runs.len() {
        for j in i + 1..runs.len() {
            if runs.len() <= ALL_PAIRS_UP_TO || j == i + 1 {
                out.push((runs[i].0.clone(), runs[j].0.clone()));
            }
        }
    }
    out
}

/// Decimals that tell the ends of `values`' range apart (at most 4).
fn decimals(values: &[f64]) -> usize {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    match span {
        s if !s.is_finite() || s >= 20.0 => 0,
        s if s >= 2.0 => 1,
        s if s >= 0.2 => 2,
        s if s >= 0.02 => 3,
        _ => 4,
    }
}

fn rate(resolved: Option<usize>, total: usize) -> String {
    match resolved {
        Some(n) if total > 0 => format!("{:.1}%", 100.0 * n as f64 / total as f64),
        _ => "–".into(),
    }
}

/// `instance_id -> model_patch` from a run's predictions (torn lines skipped).
fn patches(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("predictions.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["instance_id"].as_str()?.to_string(),
                v["model_patch"].as_str().unwrap_or("").to_string(),
            ))
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

#[derive(Serialize)]
struct EvalView {
    resolved: bool,
    verdict: String,
    dir: String,
    has_report: bool,
    applied: bool,
    f2p_ok: Vec<String>,
    f2p_bad: Vec<String>,
    p2p_ok: Vec<String>,
    p2p_bad: Vec<String>,
    test_log_html: String,
    test_log_cut: bool,
    run_log_html: String,
}

/// The evaluation of one instance: its verdict, test lists and logs.
fn eval_view(run: &Run, id: &str, row: Option<&Row>) -> Option<EvalView> {
    let dir = run.eval_dir(id);
    if dir.is_none() && row.is_none_or(|r| r.resolved.is_none()) {
        return None;
    }
    let report = dir
        .as_ref()
        .and_then(|d| read_json(&d.join("report.json")).ok())
        .map(|v| v[id].clone())
        .filter(|v| !v.is_null());
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ts = report
        .as_ref()
        .map(|r| r["tests_status"].clone())
        .unwrap_or_default();
    let read = |name: &str| {
        dir.as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
    };
    let test_log = read("test_output.txt").unwrap_or_default();
    let (shown, cut) = tail(&test_log, LOG_TAIL);
    let resolved = report
        .as_ref()
        .and_then(|r| r["resolved"].as_bool())
        .or(row.and_then(|r| r.resolved))
        .unwrap_or(false);
    Some(EvalView {
        resolved,
        verdict: row
            .map(|r| r.verdict.clone())
            .unwrap_or_else(|| if resolved { "resolved" } else { "unresolved" }.into()),
        dir: dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        has_report: report.is_some(),
        applied: report
            .as_ref()
            .and_then(|r| r["patch_successfully_applied"].as_bool())
            .unwrap_or(false),
        f2p_ok: list(&ts["FAIL_TO_PASS"]["success"]),
        f2p_bad: list(&ts["FAIL_TO_PASS"]["failure"]),
        p2p_ok: list(&ts["PASS_TO_PASS"]["success"]),
        p2p_bad: list(&ts["PASS_TO_PASS"]["failure"]),
        test_log_html: if shown.is_empty() {
            String::new()
        } else {
            folded(shown, false)
        },
        test_log_cut: cut,
        run_log_html: read("run_instance.log")
            .map(|t| folded(tail(&t, LOG_TAIL).0, false))
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run still being written (no evaluation, one trajectory missing) with the sections
    /// a newer mend adds: every page renders, and the additions show.
    #[test]
    fn every_page_of_a_partial_run_with_newer_sections_renders() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("r 1");
        std::fs::create_dir_all(run.join("trajectories")).unwrap();
        let rec = |id: &str, sel: Value| {
            json!({"instance_id": id, "repo": "o/r", "state": "done", "exit": "submitted", "steps": 3,
                   "cost_usd": 0.5, "wall_secs": 9.0, "patch_bytes": 10, "selection": sel, "future_field": [1]})
        };
        let summary = json!({"run_id": "r1", "model_name_or_path": "m", "selected": 3,
            "selected_among_candidates": 1, "new_totals": {"x": 1},
            "instances": [
                rec("o__r-1", json!({"candidates": 3, "winner": 2, "differs_from_first": true, "retried": false})),
                rec("o__r-2", json!({"candidates": 1, "winner": 0, "differs_from_first": false, "retried": true})),
                rec("o__r-3", Value::Null)]});
        std::fs::write(run.join("summary.json"), summary.to_string()).unwrap();
        let traj = json!({"model": "m", "issue": "<b>bug</b>", "steps": [
                {"index": 1, "assistant": {"content": "look"}, "actions": [{"tool": "bash", "arguments": {"command": "ls"}, "observation": "a\nb"}]},
                {"index": 2, "kind": "overflow", "assistant": {"error": "too long"}, "actions": []}],
            "exit_status": {"status": "submitted", "detail": {"tests": "only_preexisting_failures"}},
            "patch": "",
            "selection": {"candidates": [{"index": 0, "patch": ""}, {"index": 1, "patch": ""}, {"index": 2, "patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b"}],
                          "matrix": {"base": [null, null, "reproduces"], "runs": [[null, null, "reproduces"], [null, null, "timed_out"], [null, null, "fixed"]]},
                          "choice": {"winner": 2, "rows": [], "reason": "#3 fixes its reproduction"}},
            "verification": {"repro_base": {"outcome": "reproduces", "exit_code": 1, "output": "boom"}, "regressions": ["t1"], "ms": 1}});
        std::fs::write(run.join("trajectories/o__r-1.traj.json"), traj.to_string()).unwrap();
        let site = Site::open(d.path()).unwrap();
        let routes = site.routes().unwrap();
        assert_eq!(routes.len(), 1 + 1 + 3, "{routes:?}");
        for r in &routes {
            assert!(site.page(r).unwrap().is_some(), "{r}");
        }
        let page = site.page("r/r_1/index.html").unwrap().unwrap();
        assert!(
            page.contains("id=\"candidates-summary\""),
            "run page candidates"
        );
        assert!(page.contains("1 attempt(s) without a patch were run once more"));
        assert!(
            page.contains("new totals"),
            "an unknown summary section is shown"
        );
        let page = site.page("r/r_1/i/o__r-1.html").unwrap().unwrap();
        assert!(
            page.contains("&lt;b&gt;bug") && !page.contains("<b>bug"),
            "the issue is escaped"
        );
        assert!(page.contains("id=\"selection-matrix\"") && page.contains("timed out"));
        assert!(page.contains("#3 fixes its reproduction"));
        assert!(page.contains("id=\"verification\"") && page.contains("t1"));
        assert!(page.contains("except ones that failed before"));
        assert!(page.contains("overflow call"));
        let page = site.page("r/r_1/i/o__r-2.html").unwrap().unwrap();
        assert!(page.contains("No trajectory for this instance"));
        assert_eq!(site.page("r/r_1/i/nope.html").unwrap(), None);
        assert_eq!(site.page("r/../etc/passwd").unwrap(), None);
        assert_eq!(site.page("compare/r_1/zz.html").unwrap(), None);
    }
}
