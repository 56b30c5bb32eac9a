//! Localization quality on SWE-bench-format instances → target/bench/locate.json.
//!
//! Usage: cargo bench -p mend-index --bench locate -- INSTANCES.jsonl[,MORE.jsonl] MIRRORS
//!        [--only REPO] [--limit N] [--verbose] [--out FILE] [--work DIR] [--no-baseline]
//!        [--check-recovery] [--grid WEIGHTS.jsonl]
//! INSTANCES may be JSONL or a JSON array of records. (`MEND_BENCH_INSTANCES`, `MEND_BENCH_MIRRORS` and `MEND_BENCH_OUT` stand in for the
//! arguments.) Under `cargo test --all-targets` it runs a smoke pass on a repository it makes.
//!
//! For each instance: the repository at `base_commit` (indexed straight from git at that
//! commit; no checkout), the issue text (`problem_statement`) as the only input. Gold files are
//! the files the gold `patch` modifies (SWE-bench puts test files in `test_patch`, so these are
//! the non-test files; files the patch creates cannot be found and are left out). Gold
//! functions are the innermost class/function/method enclosing each changed pre-image line
//! (module-level changes have none). Acc@k counts an instance when every gold item is in the
//! top k. The baseline is plain BM25 over whole files (path + content, lowercase words, no
//! identifier splitting, no boosts), and over whole function bodies for its function figures.
//!
//! MIRRORS holds one git directory (bare mirror or clone, or a symlink to one) per repository,
//! named `owner__name`. An instance without `base_commit` gets one recovered from its mirror:
//! the newest commit whose files match every pre-image blob id in the patch's `index` lines
//! (cached in target/bench/recovered-bases.json).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use git2::{Oid, Repository};
use mend_index::{
    Index, IndexOptions, LocalizeOptions, RankWeights, TextBm25, estimate_tokens, tokenize,
};
use serde_json::{Value, json};

const KS: [usize; 4] = [1, 3, 5, 10];
const FUNC_KS: [usize; 2] = [5, 10];
/// The context-pack budget checked (the SWE-bench paper's BM25 retrieval setting).
const PACK_TOKENS: usize = 27_000;

struct FileDiff {
    path: String,
    old_blob: Option<String>,
    created: bool,
    /// Pre-image lines removed, and insertion points (new text goes after this pre-image line).
    removed: Vec<u32>,
    inserted_after: Vec<u32>,
    /// Each hunk's pre-image: its first line number and its context and removed lines.
    hunks: Vec<(u32, Vec<String>)>,
}

fn parse_patch(patch: &str) -> Vec<FileDiff> {
    let mut out: Vec<FileDiff> = Vec::new();
    let mut old_line = 0u32;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            let path = rest.split(" b/").next().unwrap_or(rest).to_string();
            out.push(FileDiff {
                path,
                old_blob: None,
                created: false,
                removed: Vec::new(),
                inserted_after: Vec::new(),
                hunks: Vec::new(),
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("index ") {
            let old = rest.split("..").next().unwrap_or("");
            if !old.chars().all(|c| c == '0') {
                cur.old_blob = Some(old.to_string());
            }
        } else if line.starts_with("new file mode") || line == "--- /dev/null" {
            cur.created = true;
        } else if let Some(rest) = line.strip_prefix("@@ -") {
            let start = rest
                .split([',', ' '])
                .next()
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(1);
            old_line = start;
            cur.hunks.push((start, Vec::new()));
        } else if line.starts_with("---") || line.starts_with("+++") {
        } else if let Some(text) = line.strip_prefix('-') {
            if let Some(h) = cur.hunks.last_mut() {
                h.1.push(text.to_string());
            }
            cur.removed.push(old_line);
            old_line += 1;
        } else if line.starts_with('+') {
            if cur.inserted_after.last() != Some(&(old_line - 1)) {
                cur.inserted_after.push(old_line.saturating_sub(1));
            }
        } else if line.starts_with(' ') || line.is_empty() {
            if let Some(h) = cur.hunks.last_mut() {
                h.1.push(line.get(1..).unwrap_or("").to_string());
            }
            old_line += 1;
        }
    }
    out
}

/// The innermost unit holding the pre-image line, or for an insertion after line `l`, the
/// innermost unit holding both `l` and `l + 1`.
/// Also counts the changed places outside every unit (module-level code: imports, constants).
fn gold_functions(index: &Index, diffs: &[FileDiff]) -> (Vec<(String, String)>, usize) {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut module_level = 0;
    let mut push = |path: &str, name: &str| {
        let item = (path.to_string(), name.to_string());
        if !out.contains(&item) {
            out.push(item);
        }
    };
    for d in diffs.iter().filter(|d| !d.created) {
        for &l in &d.removed {
            match index.enclosing_unit(&d.path, l) {
                Some(s) => push(&d.path, &s.qualified_name),
                None => module_level += 1,
            }
        }
        for &l in &d.inserted_after {
            if l == 0 {
                continue;
            }
            let inner = index
                .symbols_in(&d.path)
                .iter()
                .filter(|s| s.unit && s.start_line <= l && l < s.end_line)
                .min_by_key(|s| s.end_line - s.start_line);
            match inner {
                Some(s) => push(&d.path, &s.qualified_name),
                None => module_level += 1,
            }
        }
    }
    (out, module_level)
}

/// The newest commit (of all branches) where every file the patch modifies reads, at each
/// hunk's position, exactly the hunk's pre-image lines. (The records carry no `index` lines,
/// so blob ids cannot be matched; the pre-image text can.) Each distinct blob is checked once.
fn recover_base(repo: &Repository, diffs: &[FileDiff]) -> Option<String> {
    let targets: Vec<&FileDiff> = diffs
        .iter()
        .filter(|d| !d.created && !d.hunks.is_empty())
        .collect();
    if targets.is_empty() {
        return None;
    }
    let mut walk = repo.revwalk().ok()?;
    walk.push_glob("refs/heads/*").ok()?;
    walk.set_sorting(git2::Sort::TIME).ok()?;
    let mut verdicts: HashMap<(usize, Oid), bool> = HashMap::new();
    for oid in walk.flatten() {
        let Ok(commit) = repo.find_commit(oid) else {
            continue;
        };
        let Ok(tree) = commit.tree() else { continue };
        let all = targets.iter().enumerate().all(|(k, d)| {
            let Ok(entry) = tree.get_path(Path::new(&d.path)) else {
                return false;
            };
            *verdicts
                .entry((k, entry.id()))
                .or_insert_with(|| match &d.old_blob {
                    // With `index` lines, the pre-image blob id says it exactly.
                    Some(prefix) => entry.id().to_string().starts_with(prefix.as_str()),
                    None => repo
                        .find_blob(entry.id())
                        .is_ok_and(|b| pre_image_matches(&String::from_utf8_lossy(b.content()), d)),
                })
        });
        if all {
            return Some(oid.to_string());
        }
    }
    None
}

/// Whether the patched files have the same blobs at two commits.
fn same_files(repo: &Repository, a: &str, b: &str, diffs: &[FileDiff]) -> bool {
    let tree = |c: &str| {
        Oid::from_str(c)
            .ok()
            .and_then(|o| repo.find_commit(o).ok())
            .and_then(|c| c.tree().ok())
    };
    let (Some(ta), Some(tb)) = (tree(a), tree(b)) else {
        return false;
    };
    diffs.iter().filter(|d| !d.created).all(|d| {
        let id = |t: &git2::Tree| t.get_path(Path::new(&d.path)).ok().map(|e| e.id());
        id(&ta).is_some() && id(&ta) == id(&tb)
    })
}

fn pre_image_matches(text: &str, d: &FileDiff) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    d.hunks.iter().all(|(start, old)| {
        let from = (*start as usize).saturating_sub(1);
        from + old.len() <= lines.len()
            && old
                .iter()
                .zip(&lines[from..])
                .all(|(a, b)| a.trim_end() == b.trim_end())
    })
}

/// Counts about the gold patches themselves.
#[derive(Default)]
struct Counts {
    created: usize,
    not_indexed: usize,
    multi_file: usize,
    module_level: usize,
    no_function: usize,
}

#[derive(Default, Clone)]
struct Tally {
    n: usize,
    file_hits: [usize; 4],
    /// At least one gold file in the top k.
    any_file_hits: [usize; 4],
    bm25_any_file_hits: [usize; 4],
    /// Instances whose gold functions all fit in the context pack.
    pack_fits: usize,
    func_n: usize,
    func_hits: [usize; 2],
    bm25_file_hits: [usize; 4],
    bm25_func_hits: [usize; 2],
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.n += o.n;
        self.func_n += o.func_n;
        self.pack_fits += o.pack_fits;
        for i in 0..4 {
            self.any_file_hits[i] += o.any_file_hits[i];
            self.bm25_any_file_hits[i] += o.bm25_any_file_hits[i];
            self.file_hits[i] += o.file_hits[i];
            self.bm25_file_hits[i] += o.bm25_file_hits[i];
        }
        for i in 0..2 {
            self.func_hits[i] += o.func_hits[i];
            self.bm25_func_hits[i] += o.bm25_func_hits[i];
        }
    }

    fn frac(hits: usize, n: usize) -> Value {
        if n == 0 {
            Value::Null
        } else {
            json!((hits as f64 / n as f64 * 1000.0).round() / 1000.0)
        }
    }

    fn json(&self) -> Value {
        let mut ours = serde_json::Map::new();
        let mut base = serde_json::Map::new();
        for (i, k) in KS.iter().enumerate() {
            ours.insert(
                format!("file_acc@{k}"),
                Self::frac(self.file_hits[i], self.n),
            );
            base.insert(
                format!("file_acc@{k}"),
                Self::frac(self.bm25_file_hits[i], self.n),
            );
            ours.insert(
                format!("any_file_acc@{k}"),
                Self::frac(self.any_file_hits[i], self.n),
            );
            base.insert(
                format!("any_file_acc@{k}"),
                Self::frac(self.bm25_any_file_hits[i], self.n),
            );
        }
        ours.insert(
            format!("gold_functions_in_{PACK_TOKENS}_token_pack"),
            Self::frac(self.pack_fits, self.func_n),
        );
        for (i, k) in FUNC_KS.iter().enumerate() {
            ours.insert(
                format!("func_acc@{k}"),
                Self::frac(self.func_hits[i], self.func_n),
            );
            base.insert(
                format!("func_acc@{k}"),
                Self::frac(self.bm25_func_hits[i], self.func_n),
            );
        }
        ours.insert("instances".into(), json!(self.n));
        ours.insert("func_instances".into(), json!(self.func_n));
        ours.insert("bm25".into(), Value::Object(base));
        Value::Object(ours)
    }
}

/// Rank (1-based) of the last gold item in a ranked list, `None` if one is missing.
fn all_within(ranked: &[String], gold: &[String]) -> Option<usize> {
    let mut worst = 0;
    for g in gold {
        worst = worst.max(ranked.iter().position(|r| r == g)? + 1);
    }
    Some(worst)
}

/// Rank (1-based) of the first gold item in a ranked list.
fn any_within(ranked: &[String], gold: &[String]) -> Option<usize> {
    gold.iter()
        .filter_map(|g| ranked.iter().position(|r| r == g).map(|p| p + 1))
        .min()
}

fn hits<const N: usize>(rank: Option<usize>, ks: [usize; N]) -> [usize; N] {
    ks.map(|k| usize::from(rank.is_some_and(|r| r <= k)))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and gets a smoke
    // pass on a repository made here (no mirrors needed).
    let result = if args.iter().any(|a| a == "--bench") {
        run(args.into_iter().filter(|a| a != "--bench").collect())
    } else {
        smoke()
    };
    if let Err(e) = result {
        eprintln!("bench-locate: {e}");
        std::process::exit(1);
    }
}

/// The whole benchmark on a two-commit repository and two synthetic instances: one with its
/// base commit, one whose base must be recovered from the patch's pre-image text.
fn smoke() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mirrors = tmp.path().join("mirrors");
    let repo_dir = mirrors.join("acme__widget");
    let repo = Repository::init(&repo_dir).map_err(|e| e.to_string())?;
    let write = |path: &str, text: &str| {
        let full = repo_dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap_or(&repo_dir)).map_err(|e| e.to_string())?;
        std::fs::write(full, text).map_err(|e| e.to_string())
    };
    let commit = |msg: &str| -> Result<Oid, String> {
        let mut index = repo.index().map_err(|e| e.to_string())?;
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .map_err(|e| e.to_string())?;
        index.write().map_err(|e| e.to_string())?;
        let tree = repo
            .find_tree(index.write_tree().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let sig = git2::Signature::now("t", "t@example.com").map_err(|e| e.to_string())?;
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
            .map_err(|e| e.to_string())
    };
    write("widget/__init__.py", "")?;
    write(
        "widget/gears.py",
        "def turn_gear(teeth):\n    return teeth * 2\n\n\ndef oil_gear(gear):\n    return gear\n",
    )?;
    write(
        "widget/frame.py",
        "class Frame:\n    def mount(self, part):\n        return part\n",
    )?;
    write(
        "tests/test_gears.py",
        "from widget.gears import turn_gear\n\n\ndef test_turn():\n    assert turn_gear(2) == 4\n",
    )?;
    let base = commit("base")?;
    write(
        "widget/gears.py",
        "def turn_gear(teeth):\n    return teeth * 3\n\n\ndef oil_gear(gear):\n    return gear\n",
    )?;
    let fixed = commit("fix")?;
    let tree = |c: Oid| {
        repo.find_commit(c)
            .and_then(|c| c.tree())
            .map_err(|e| e.to_string())
    };
    let diff = repo
        .diff_tree_to_tree(Some(&tree(base)?), Some(&tree(fixed)?), None)
        .map_err(|e| e.to_string())?;
    let mut patch = String::new();
    diff.print(git2::DiffFormat::Patch, |_, _, l| {
        if matches!(l.origin(), '+' | '-' | ' ') {
            patch.push(l.origin());
        }
        patch.push_str(&String::from_utf8_lossy(l.content()));
        true
    })
    .map_err(|e| e.to_string())?;
    let no_index: String = patch
        .lines()
        .filter(|l| !l.starts_with("index "))
        .map(|l| format!("{l}\n"))
        .collect();
    let issue = "`turn_gear` doubles the teeth instead of tripling them.";
    let instances = tmp.path().join("instances.jsonl");
    let lines = [
        json!({"instance_id": "acme__widget-1", "repo": "acme/widget", "base_commit": base.to_string(), "problem_statement": issue, "patch": patch}),
        json!({"instance_id": "acme__widget-2", "repo": "acme/widget", "problem_statement": issue, "patch": no_index}),
    ];
    std::fs::write(
        &instances,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .map_err(|e| e.to_string())?;
    let out = tmp.path().join("locate.json");
    run(vec![
        instances.display().to_string(),
        mirrors.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--work".into(),
        tmp.path().join("work").display().to_string(),
    ])?;
    let report: Value = serde_json::from_slice(&std::fs::read(&out).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("smoke pass: {what}: {report:#}"))
        }
    };
    check(report["instances"] == 2, "both instances run")?;
    check(
        report["file_acc@1"] == 1.0 && report["func_acc@5"] == 1.0,
        "turn_gear found first",
    )?;
    check(
        report["details"][1]["base_recovered"] == true,
        "base recovered from the pre-image",
    )?;
    check(
        report["details"][1]["base_commit"] == base.to_string(),
        "recovered base is the real one",
    )?;
    check(
        report["details"][0]["gold_functions"][0] == "widget/gears.py::turn_gear",
        "gold function",
    )?;
    check(report["bm25"]["file_acc@10"] == 1.0, "baseline computed")?;
    check(
        report["any_file_acc@1"] == 1.0 && report["details"][0]["gold_file_ranks"][0] == 1,
        "any-file Acc and per-file ranks",
    )?;
    check(
        report["gold"]["instances_with_created_files"] == 0
            && report["details"][0]["gold_created"] == json!([])
            && report["details"][0]["gold_not_indexed"] == json!([]),
        "created and unindexed gold files reported",
    )?;
    check(
        report["index_seconds"]["cold_per_repo"]["acme/widget"].is_number(),
        "cold index time",
    )?;
    check(
        report["details"][0]["pack_fits"] == true,
        "the gold function is in the context pack",
    )?;
    check(
        report["per_repo"]["acme/widget"]["instances"] == 2,
        "per-repo table",
    )?;
    // Missing mirrors are a clear error.
    let err = run(vec![
        instances.display().to_string(),
        "/nonexistent/mirrors".into(),
    ])
    .err()
    .unwrap_or_default();
    check(err.contains("does not exist"), "missing mirrors error")?;
    println!(
        "bench-locate smoke pass ok (cargo bench -p mend-index --bench locate -- INSTANCES MIRRORS for the real run)"
    );
    Ok(())
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut positional = Vec::new();
    let (mut only, mut limit, mut verbose, mut check_recovery) = (None, usize::MAX, false, false);
    let (mut grid_path, mut no_baseline) = (None, false);
    let mut budget: Option<f64> = None;
    let (mut out_path, mut work_dir) = (None, None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => only = it.next(),
            "--limit" => limit = it.next().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX),
            "--verbose" | "-v" => verbose = true,
            "--check-recovery" => check_recovery = true,
            // Tuning: one JSON object of `RankWeights` overrides per line, all scored per instance.
            "--grid" => grid_path = it.next(),
            "--no-baseline" => no_baseline = true,
            // A wall-clock budget: no instance is started after it; the report says so.
            "--budget-secs" => {
                budget = it.next().and_then(|n| n.parse::<f64>().ok());
            }
            "--out" => out_path = it.next().map(PathBuf::from),
            // Where the parse cache and the recovered base commits are kept.
            "--work" => work_dir = it.next().map(PathBuf::from),
            _ => positional.push(a),
        }
    }
    let instances_path = positional
        .first()
        .cloned()
        .or_else(|| std::env::var("MEND_BENCH_INSTANCES").ok())
        .ok_or("usage: locate INSTANCES.jsonl MIRRORS_DIR (or MEND_BENCH_INSTANCES / MEND_BENCH_MIRRORS)")?;
    let mirrors = PathBuf::from(
        positional
            .get(1)
            .cloned()
            .or_else(|| std::env::var("MEND_BENCH_MIRRORS").ok())
            .ok_or("usage: locate INSTANCES.jsonl MIRRORS_DIR (or MEND_BENCH_INSTANCES / MEND_BENCH_MIRRORS)")?,
    );
    if !mirrors.is_dir() {
        return Err(format!(
            "the mirrors directory {} does not exist: make one git mirror per repository there, named owner__name",
            mirrors.display()
        ));
    }
    // JSONL, or one JSON array of records.
    let mut records: Vec<Value> = Vec::new();
    for path in instances_path.split(',') {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        if text.trim_start().starts_with('[') {
            let all: Vec<Value> =
                serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            records.extend(all);
        } else {
            for (lineno, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                records.push(
                    serde_json::from_str(line)
                        .map_err(|e| format!("{path}:{}: {e}", lineno + 1))?,
                );
            }
        }
    }
    let grid: Vec<(String, RankWeights)> = match &grid_path {
        None => Vec::new(),
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read {p}: {e}"))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                // An optional "label" names the line; the rest are `RankWeights` overrides.
                let v: Value = serde_json::from_str(l).map_err(|e| format!("{p}: {e}"))?;
                let label = v
                    .get("label")
                    .and_then(Value::as_str)
                    .map_or_else(|| l.to_string(), String::from);
                serde_json::from_value(v)
                    .map(|w| (label, w))
                    .map_err(|e| format!("{p}: {e}"))
            })
            .collect::<Result<_, _>>()?,
    };
    let mut grid_tallies: Vec<BTreeMap<String, Tally>> = vec![BTreeMap::new(); grid.len()];
    let mut cold_secs: BTreeMap<String, f64> = BTreeMap::new();
    let mut counts = Counts::default();
    let bench_dir = work_dir
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench"));
    std::fs::create_dir_all(&bench_dir)
        .map_err(|e| format!("cannot make {}: {e}", bench_dir.display()))?;
    // Checked before the long run, not after it. (`cargo bench` runs this in the crate's
    // directory, so a relative --out is relative to crates/mend-index.)
    let out = out_path
        .or_else(|| std::env::var("MEND_BENCH_OUT").ok().map(PathBuf::from))
        .unwrap_or_else(|| bench_dir.join("locate.json"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot make the directory of --out {}: {e}", out.display()))?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&out)
        .map_err(|e| format!("cannot write --out {}: {e}", out.display()))?;
    let bases_path = bench_dir.join("recovered-bases.json");
    let mut recovered: BTreeMap<String, Option<String>> = std::fs::read(&bases_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let opts = IndexOptions {
        cache_dir: Some(bench_dir.join("index-cache")),
        ..IndexOptions::default()
    };

    let mut per_repo: BTreeMap<String, Tally> = BTreeMap::new();
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut details = Vec::new();
    let mut index_secs = Vec::new();
    let mut locate_secs = Vec::new();
    let mut repos: HashMap<String, Option<Repository>> = HashMap::new();
    let mut recovery_checks = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    let mut stopped_early: Option<usize> = None;
    for (n, inst) in records.iter().enumerate() {
        if done >= limit {
            break;
        }
        if budget.is_some_and(|b| started.elapsed().as_secs_f64() > b) {
            stopped_early = Some(n);
            break;
        }
        // Progress on stderr: a run over hundreds of instances takes many minutes.
        eprintln!(
            "[{:>4}/{}] {:>6.0}s {}",
            n + 1,
            records.len(),
            started.elapsed().as_secs_f64(),
            inst.get("instance_id")
                .and_then(Value::as_str)
                .unwrap_or("?")
        );
        let field = |k: &str| {
            inst.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (id, repo_name, patch, issue) = (
            field("instance_id"),
            field("repo"),
            // Some published copies call the gold patch `golden_patch`.
            Some(field("patch"))
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| field("golden_patch")),
            field("problem_statement"),
        );
        if only
            .as_ref()
            .is_some_and(|o| !repo_name.contains(o.as_str()))
        {
            continue;
        }
        let mirror = mirrors.join(repo_name.replace('/', "__"));
        let repo = repos
            .entry(repo_name.clone())
            .or_insert_with(|| Repository::open(&mirror).ok());
        let Some(repo) = repo.as_ref() else {
            skipped.entry("no mirror".into()).or_default().push(id);
            continue;
        };
        let diffs = parse_patch(&patch);
        let mut base = field("base_commit");
        let mut base_recovered = false;
        if base.is_empty() {
            let found = match recovered.get(&id) {
                Some(Some(b)) => Some(b.clone()),
                _ => {
                    let found = recover_base(repo, &diffs);
                    recovered.insert(id.clone(), found.clone());
                    found
                }
            };
            match found {
                Some(b) => {
                    base = b;
                    base_recovered = true;
                }
                None => {
                    skipped
                        .entry("no base commit recoverable".into())
                        .or_default()
                        .push(id);
                    continue;
                }
            }
        }
        if check_recovery && !base_recovered {
            // How well recovery works where the answer is known: same pre-image files?
            let found = recover_base(repo, &diffs);
            let same = found
                .as_deref()
                .is_some_and(|r| same_files(repo, r, &base, &diffs));
            recovery_checks
                .push(json!({"instance_id": id, "recovered": found, "same_gold_files": same}));
            println!(
                "{id:40} recovery check: recovered {found:?}, gold files identical to base: {same}"
            );
        }
        if repo
            .find_commit(Oid::from_str(&base).unwrap_or(Oid::ZERO_SHA1))
            .is_err()
        {
            skipped
                .entry("base commit not in mirror".into())
                .or_default()
                .push(id);
            continue;
        }
        // Index time: the first instance of each repository also builds without the cache
        // (cold: every file parsed); every instance's cached build is the warm figure.
        if !cold_secs.contains_key(&repo_name) {
            let t0 = Instant::now();
            let cold = IndexOptions {
                use_cache: false,
                ..opts.clone()
            };
            Index::from_git(&mirror, &base, &cold).map_err(|e| format!("{id}: {e}"))?;
            cold_secs.insert(repo_name.clone(), t0.elapsed().as_secs_f64());
        }
        let t0 = Instant::now();
        let index = Index::from_git(&mirror, &base, &opts).map_err(|e| format!("{id}: {e}"))?;
        index_secs.push(t0.elapsed().as_secs_f64());
        // Every file the patch touches, sorted by whether it can be found at all: files the
        // patch creates cannot; files the index does not hold (not Python, too big) cannot
        // either, and count as misses rather than being dropped.
        let created: Vec<String> = diffs
            .iter()
            .filter(|d| d.created)
            .map(|d| d.path.clone())
            .collect();
        let gold_files: Vec<String> = diffs
            .iter()
            .filter(|d| !d.created)
            .map(|d| d.path.clone())
            .collect();
        let not_indexed: Vec<String> = gold_files
            .iter()
            .filter(|p| index.file(p).is_none())
            .cloned()
            .collect();
        if !created.is_empty() {
            counts.created += 1;
        }
        if !not_indexed.is_empty() {
            counts.not_indexed += 1;
        }
        if gold_files.len() > 1 {
            counts.multi_file += 1;
        }
        if gold_files.is_empty() {
            skipped
                .entry("patch creates files only".into())
                .or_default()
                .push(id);
            continue;
        }
        let (gold_funcs, module_level) = gold_functions(&index, &diffs);
        if module_level > 0 {
            counts.module_level += 1;
        }
        if gold_funcs.is_empty() {
            counts.no_function += 1;
        }
        let t1 = Instant::now();
        let loc = index.localize(
            &issue,
            &LocalizeOptions {
                max_files: 50,
                max_symbols: 400,
                ..Default::default()
            },
        );
        locate_secs.push(t1.elapsed().as_secs_f64());
        let ranked_files: Vec<String> = loc.files.iter().map(|f| f.path.clone()).collect();
        let ranked_funcs: Vec<String> = loc
            .symbols
            .iter()
            .take(50)
            .map(|s| format!("{}::{}", s.path, s.name))
            .collect();
        let gold_func_keys: Vec<String> = gold_funcs
            .iter()
            .map(|(p, n)| format!("{p}::{n}"))
            .collect();
        let read = |path: &str| {
            let f = index.file(path)?;
            let blob = repo.find_blob(Oid::from_str(&f.blob).ok()?).ok()?;
            Some(String::from_utf8_lossy(blob.content()).into_owned())
        };
        let pack = index.context_pack(&loc, PACK_TOKENS, 0.1, read);
        let pack_fits =
            !gold_func_keys.is_empty() && gold_func_keys.iter().all(|g| pack.functions.contains(g));
        // The gold files' whole size: what a prompt of whole files would cost.
        let gold_file_tokens: usize = gold_files
            .iter()
            .filter_map(|p| read(p))
            .map(|t| estimate_tokens(&t))
            .sum();

        let gold_key = |t: &mut Tally, loc: &mend_index::Localization| {
            let files: Vec<String> = loc.files.iter().map(|f| f.path.clone()).collect();
            let funcs: Vec<String> = loc
                .symbols
                .iter()
                .map(|s| format!("{}::{}", s.path, s.name))
                .collect();
            t.n += 1;
            let add = hits(all_within(&files, &gold_files), KS);
            for (h, a) in t.file_hits.iter_mut().zip(add) {
                *h += a;
            }
            let add = hits(any_within(&files, &gold_files), KS);
            for (h, a) in t.any_file_hits.iter_mut().zip(add) {
                *h += a;
            }
            if !gold_funcs.is_empty() {
                t.func_n += 1;
                let add = hits(all_within(&funcs, &gold_func_keys), FUNC_KS);
                for (h, a) in t.func_hits.iter_mut().zip(add) {
                    *h += a;
                }
            }
        };
        for ((_, weights), tallies) in grid.iter().zip(grid_tallies.iter_mut()) {
            let opts = LocalizeOptions {
                max_files: 50,
                max_symbols: 50,
                weights: weights.clone(),
                ..Default::default()
            };
            gold_key(
                tallies.entry(repo_name.clone()).or_default(),
                &index.localize(&issue, &opts),
            );
        }
        // The baseline over the same files, from their contents at the same commit.
        let (bm25_files, bm25_funcs) = if no_baseline {
            (Vec::new(), Vec::new())
        } else {
            baseline(repo, &index, &issue)
        };
        let file_rank = all_within(&ranked_files, &gold_files);
        let any_rank = any_within(&ranked_files, &gold_files);
        let func_rank = if gold_funcs.is_empty() {
            None
        } else {
            all_within(&ranked_funcs, &gold_func_keys)
        };
        let bm25_file_rank = all_within(&bm25_files, &gold_files);
        let bm25_func_rank = if gold_funcs.is_empty() {
            None
        } else {
            all_within(&bm25_funcs, &gold_func_keys)
        };
        let mut t = Tally {
            n: 1,
            file_hits: hits(file_rank, KS),
            any_file_hits: hits(any_rank, KS),
            bm25_file_hits: hits(bm25_file_rank, KS),
            bm25_any_file_hits: hits(any_within(&bm25_files, &gold_files), KS),
            pack_fits: usize::from(pack_fits),
            ..Tally::default()
        };
        if !gold_funcs.is_empty() {
            t.func_n = 1;
            t.func_hits = hits(func_rank, FUNC_KS);
            t.bm25_func_hits = hits(bm25_func_rank, FUNC_KS);
        }
        per_repo.entry(repo_name.clone()).or_default().add(&t);
        if verbose {
            println!(
                "{id:40} file rank {:>4} (bm25 {:>4})  func rank {:>4} (bm25 {:>4})  gold {:?} {:?}",
                file_rank.map_or("-".into(), |r| r.to_string()),
                bm25_file_rank.map_or("-".into(), |r| r.to_string()),
                func_rank.map_or("-".into(), |r| r.to_string()),
                bm25_func_rank.map_or("-".into(), |r| r.to_string()),
                gold_files,
                gold_funcs.iter().map(|g| &g.1).collect::<Vec<_>>(),
            );
            if file_rank.is_none_or(|r| r > 1) {
                for f in loc.files.iter().take(3) {
                    println!("      {:.3} {} {:?}", f.score, f.path, f.reasons);
                }
            }
        }
        let rank_of =
            |ranked: &[String], g: &String| ranked.iter().position(|r| r == g).map(|p| p + 1);
        details.push(json!({
            "instance_id": id, "repo": repo_name, "base_commit": base, "base_recovered": base_recovered,
            "gold_files": gold_files, "gold_functions": gold_func_keys,
            "gold_created": created, "gold_not_indexed": not_indexed, "module_level_changes": module_level,
            "gold_file_ranks": gold_files.iter().map(|g| rank_of(&ranked_files, g)).collect::<Vec<_>>(),
            "gold_function_ranks": gold_func_keys.iter().map(|g| rank_of(&ranked_funcs, g)).collect::<Vec<_>>(),
            "file_rank": file_rank, "any_file_rank": any_rank, "func_rank": func_rank,
            "bm25_file_rank": bm25_file_rank, "bm25_func_rank": bm25_func_rank,
            "pack_fits": pack_fits, "pack_tokens": pack.tokens, "gold_file_tokens": gold_file_tokens,
            "top_files": ranked_files.iter().take(5).collect::<Vec<_>>(),
            "top_file_reasons": loc.files.iter().take(3).map(|f| json!({"path": f.path, "reasons": f.reasons})).collect::<Vec<_>>(),
            "index": {"files": index.stats().files, "parsed": index.stats().parsed, "from_cache": index.stats().from_cache, "seconds": index.stats().seconds, "history_seconds": index.stats().history_seconds},
        }));
        done += 1;
    }
    if let Ok(b) = serde_json::to_vec_pretty(&recovered) {
        let _ = std::fs::write(&bases_path, b);
    }
    if per_repo.is_empty() {
        return Err(format!(
            "no instance could be run (skipped: {skipped:?}); is {} a directory of mirrors named owner__name?",
            mirrors.display()
        ));
    }
    let mut total = Tally::default();
    for t in per_repo.values() {
        total.add(t);
    }
    let mut report = total.json();
    let obj = report.as_object_mut().ok_or("report")?;
    if !grid.is_empty() {
        println!(
            "signals / grid over {} instances (f@1 f@3 f@5 f@10 any@5 fn@5 fn@10):",
            total.n
        );
        let mut rows = Vec::new();
        let mut table = Vec::new();
        for ((label, _), by_repo) in grid.iter().zip(&grid_tallies) {
            let mut t = Tally::default();
            for r in by_repo.values() {
                t.add(r);
            }
            let row = format!(
                "{} {} {} {} {} {} {}  {label}",
                pct(t.file_hits[0], t.n),
                pct(t.file_hits[1], t.n),
                pct(t.file_hits[2], t.n),
                pct(t.file_hits[3], t.n),
                pct(t.any_file_hits[2], t.n),
                pct(t.func_hits[0], t.func_n),
                pct(t.func_hits[1], t.func_n)
            );
            println!("{row}");
            rows.push(row);
            let mut j = t.json();
            if let Some(o) = j.as_object_mut() {
                o.remove("bm25");
                o.remove(&format!("gold_functions_in_{PACK_TOKENS}_token_pack"));
                o.insert("label".into(), json!(label));
                o.insert(
                    "per_repo_file_acc@5".into(),
                    by_repo
                        .iter()
                        .map(|(r, t)| (r.clone(), Tally::frac(t.file_hits[2], t.n)))
                        .collect(),
                );
            }
            table.push(j);
        }
        let _ = std::fs::write(bench_dir.join("locate-grid.txt"), rows.join("\n"));
        obj.insert("signals".into(), Value::Array(table));
    }
    obj.insert(
        "gold".into(),
        json!({
            "instances_with_created_files": counts.created,
            "instances_with_gold_files_not_indexed": counts.not_indexed,
            "multi_file_instances": counts.multi_file,
            "instances_with_module_level_changes": counts.module_level,
            "instances_without_gold_function": counts.no_function,
            "note": "file_acc@k: every file the patch modifies in the top k (files it creates are left out, and reported; modified files the index does not hold count as misses); any_file_acc@k: at least one; func_acc@k over func_instances, the instances with at least one changed line inside a function or class",
        }),
    );
    obj.insert(
        "per_repo".into(),
        Value::Object(
            per_repo
                .iter()
                .map(|(r, t)| (r.clone(), t.json()))
                .collect(),
        ),
    );
    obj.insert(
        "skipped".into(),
        Value::Object(
            skipped
                .iter()
                .map(|(k, v)| (k.clone(), json!({"count": v.len(), "instances": v})))
                .collect(),
        ),
    );
    obj.insert("instances_file".into(), json!(instances_path));
    obj.insert("records".into(), json!(records.len()));
    if let Some(at) = stopped_early {
        obj.insert(
            "stopped_early".into(),
            json!({"reason": "--budget-secs reached", "records_started": at, "records": records.len()}),
        );
        println!(
            "stopped early (--budget-secs): {at} of {} records started",
            records.len()
        );
    }
    if check_recovery {
        obj.insert("recovery_checks".into(), Value::Array(recovery_checks));
    }
    obj.insert(
        "median_index_seconds".into(),
        json!(median(&mut index_secs)),
    );
    obj.insert(
        "index_seconds".into(),
        json!({
            "warm_median": median(&mut index_secs),
            "cold_median": median(&mut cold_secs.values().copied().collect::<Vec<_>>()),
            "cold_per_repo": cold_secs,
            "note": "cold: the first instance of each repository indexed without the parse cache; warm: every instance with the cache (earlier commits' parses)",
        }),
    );
    obj.insert(
        "median_localize_seconds".into(),
        json!(median(&mut locate_secs)),
    );
    obj.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    obj.insert("details".into(), Value::Array(details));
    std::fs::write(
        &out,
        serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    print_table(&total, &per_repo);
    println!(
        "skipped: {}",
        skipped
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("wrote {}", out.display());
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(h: usize, n: usize) -> String {
    if n == 0 {
        "   -".into()
    } else {
        format!("{:>4.0}", h as f64 * 100.0 / n as f64)
    }
}

fn print_table(total: &Tally, per_repo: &BTreeMap<String, Tally>) {
    println!(
        "{:28} {:>4} | {:>4} {:>4} {:>4} {:>4} {:>4} {:>4} {:>4} {:>4} | {:>4} {:>4} {:>4} {:>4} {:>4} {:>4}",
        "repository (% acc)",
        "n",
        "f@1",
        "f@3",
        "f@5",
        "f@10",
        "a@5",
        "fn@5",
        "fn10",
        "pack",
        "b@1",
        "b@3",
        "b@5",
        "b@10",
        "bf@5",
        "bf10"
    );
    let row = |name: &str, t: &Tally| {
        println!(
            "{:28} {:>4} | {} {} {} {} {} {} {} {} | {} {} {} {} {} {}",
            name,
            t.n,
            pct(t.file_hits[0], t.n),
            pct(t.file_hits[1], t.n),
            pct(t.file_hits[2], t.n),
            pct(t.file_hits[3], t.n),
            pct(t.any_file_hits[2], t.n),
            pct(t.func_hits[0], t.func_n),
            pct(t.func_hits[1], t.func_n),
            pct(t.pack_fits, t.func_n),
            pct(t.bm25_file_hits[0], t.n),
            pct(t.bm25_file_hits[1], t.n),
            pct(t.bm25_file_hits[2], t.n),
            pct(t.bm25_file_hits[3], t.n),
            pct(t.bm25_func_hits[0], t.func_n),
            pct(t.bm25_func_hits[1], t.func_n),
        );
    };
    for (r, t) in per_repo {
        row(r, t);
    }
    row("ALL", total);
    println!(
        "(ours: f@k all gold files in the top k, a@5 any gold file in the top 5, fn@k function Acc@k, pack: gold functions all inside a {PACK_TOKENS}-token context pack; plain BM25 baseline: b@k files, bf@k functions)"
    );
}

/// Plain BM25 over the indexed files' whole contents (path + text) and over whole unit
/// bodies; returns file paths and `path::qualified` names, best first.
fn baseline(repo: &Repository, index: &Index, issue: &str) -> (Vec<String>, Vec<String>) {
    let query = tokenize::plain_words(issue);
    let mut paths = Vec::new();
    let mut docs = Vec::new();
    let mut unit_keys = Vec::new();
    let mut unit_docs = Vec::new();
    for f in index.files() {
        let Ok(oid) = Oid::from_str(&f.blob) else {
            continue;
        };
        let Ok(blob) = repo.find_blob(oid) else {
            continue;
        };
        let text = String::from_utf8_lossy(blob.content());
        let mut words = tokenize::plain_words(&f.path.replace('/', " "));
        words.extend(tokenize::plain_words(&text));
        docs.push(words);
        paths.push(f.path.clone());
        let lines: Vec<&str> = text.lines().collect();
        for s in index.symbols_in(&f.path).iter().filter(|s| s.unit) {
            let lo = (s.start_line as usize).saturating_sub(1).min(lines.len());
            let hi = (s.end_line as usize).min(lines.len());
            unit_docs.push(tokenize::plain_words(&lines[lo..hi].join("\n")));
            unit_keys.push(format!("{}::{}", f.path, s.qualified_name));
        }
    }
    let files = TextBm25::new(docs)
        .search(&query, 50)
        .into_iter()
        .map(|(i, _)| paths[i].clone())
        .collect();
    let funcs = TextBm25::new(unit_docs)
        .search(&query, 50)
        .into_iter()
        .map(|(i, _)| unit_keys[i].clone())
        .collect();
    (files, funcs)
}
