//! Indexing speed and memory on django against universal-ctags → target/bench/index.json.
//!
//! Usage: cargo bench -p mend-index --bench index -- MIRRORS [--repo django__django]
//!        [--rev COMMIT] [--later N] [--reps 3]
//!
//! The tree of `--rev` (default: the base commit of SWE-bench Verified django__django-17087)
//! is written out to a scratch directory. Each configuration then runs in a child process of
//! its own, `--reps` times, and its wall time and peak resident memory (`ru_maxrss` from
//! `wait4`, in a small launcher process) are taken:
//! - `ours_1t`, `ours_2t`: a cold index of the scratch tree (empty cache) with 1 and 2 threads;
//! - `ctags`: `ctags -R --languages=Python` on the same tree (the same files we parse);
//! - `ours_git_cold`: a cold index straight from git at `--rev`, 2 threads, into a fresh cache;
//! - `ours_git_warm`: with that cache, an index at the commit `--later` (50) first-parent
//!   commits after `--rev`: only the files that changed are parsed;
//! - `ours_git_same`: with that cache, `--rev` again (nothing to parse).
//!   Medians are reported, with ratios against ctags measured in the same run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use mend_index::{Index, IndexOptions};
use serde_json::{Value, json};

const DEFAULT_REV: &str = "4a72da71001f154ea60906a2f74898d32b7322a7";
/// A django-like report, localized after each index is built.
const SAMPLE_ISSUE: &str = "QuerySet.only() doesn't work with select_related() on a reverse \
OneToOneField relation\n\nOn Django 4.2 calling only() with select_related() on a query using \
the reverse lookup for a OneToOne relation does not generate the correct query: all the fields \
from the related model are still included in the generated SQL.";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("--child") => child(&args[1..]),
        Some("--launch") => launch(&args[1..]),
        // `cargo test --all-targets` (no `--bench`): a smoke pass on a repository made here.
        _ if !std::env::args().any(|a| a == "--bench") => smoke(),
        _ => parent(&args),
    };
    if let Err(e) = result {
        eprintln!("bench-index: {e}");
        std::process::exit(1);
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// One measured configuration, run in this child process; prints a JSON line.
fn child(args: &[String]) -> Result<(), String> {
    let mode = args.first().ok_or("child mode missing")?;
    let threads: usize = flag(args, "--threads")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let cache = flag(args, "--cache").map(PathBuf::from);
    let opts = IndexOptions {
        threads,
        cache_dir: cache,
        ..IndexOptions::default()
    };
    let started = Instant::now();
    let index = match mode.as_str() {
        "worktree" => {
            Index::from_worktree(Path::new(&flag(args, "--tree").ok_or("--tree")?), &opts)
        }
        "git" => Index::from_git(
            Path::new(&flag(args, "--repo").ok_or("--repo")?),
            &flag(args, "--rev").ok_or("--rev")?,
            &opts,
        ),
        other => return Err(format!("unknown child mode {other}")),
    }
    .map_err(|e| e.to_string())?;
    let index_seconds = started.elapsed().as_secs_f64();
    // Then one localization: the goal is index plus locate.
    let t = Instant::now();
    let loc = index.localize(SAMPLE_ISSUE, &mend_index::LocalizeOptions::default());
    let locate_seconds = t.elapsed().as_secs_f64();
    let s = index.stats();
    println!(
        "{}",
        json!({"seconds": started.elapsed().as_secs_f64(), "index_seconds": index_seconds,
               "locate_seconds": locate_seconds, "top_file": loc.files.first().map(|f| &f.path),
               "files": s.files, "symbols": s.symbols,
               "references": s.references, "parsed": s.parsed, "from_cache": s.from_cache,
               "parse_errors": s.parse_errors, "skipped": s.skipped, "list_seconds": s.list_seconds,
               "parse_seconds": s.parse_seconds, "assemble_seconds": s.assemble_seconds,
               "history_seconds": s.history_seconds, "history_commits": s.history_commits})
    );
    Ok(())
}

struct Run {
    wall: f64,
    cpu: f64,
    max_rss_kb: i64,
    out: Value,
}

/// Launcher mode: runs the command given and prints its wall time, its peak RSS and its own
/// last output line as JSON. The launcher is a fresh, small process, so the measured
/// program's `ru_maxrss` is its own: on Linux a process inherits as a floor the peak RSS of
/// whatever process it was spawned from, and the benchmark's parent is not small.
fn launch(args: &[String]) -> Result<(), String> {
    let (program, rest) = args.split_first().ok_or("--launch needs a command")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout).map_err(|e| e.to_string())?;
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: rusage is plain data; the pid is our own child's, reaped exactly once here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    if r != pid {
        return Err(format!("wait4 failed for {program}"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{program} failed: {stderr}"));
    }
    let out = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or(Value::Null);
    // CPU time too: on a shared machine wall time says as much about the neighbours.
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu_seconds = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    println!(
        "{}",
        json!({"wall": wall, "cpu_seconds": cpu_seconds, "max_rss_kb": usage.ru_maxrss, "out": out})
    );
    Ok(())
}

/// Runs a command through a launcher process and reads its wall time and peak RSS.
fn measure(cmd: &mut Command) -> Result<Run, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut launcher = Command::new(exe);
    launcher
        .arg("--launch")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let out = launcher.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("launcher output: {e}"))?;
    Ok(Run {
        wall: v["wall"].as_f64().unwrap_or(0.0),
        cpu: v["cpu_seconds"].as_f64().unwrap_or(0.0),
        max_rss_kb: v["max_rss_kb"].as_i64().unwrap_or(0),
        out: v["out"].clone(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summarize(runs: &[Run]) -> Value {
    json!({
        "median_seconds": (median(runs.iter().map(|r| r.wall).collect()) * 1000.0).round() / 1000.0,
        "median_peak_rss_mb": (median(runs.iter().map(|r| r.max_rss_kb as f64 / 1024.0).collect()) * 10.0).round() / 10.0,
        "seconds": runs.iter().map(|r| (r.wall * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        "median_cpu_seconds": (median(runs.iter().map(|r| r.cpu).collect()) * 1000.0).round() / 1000.0,
        "peak_rss_mb": runs.iter().map(|r| (r.max_rss_kb as f64 / 102.4).round() / 10.0).collect::<Vec<_>>(),
        "result": runs.last().map(|r| r.out.clone()),
    })
}

/// Writes the regular files of a commit's tree into `dir` (symlinks and submodules left out).
fn write_tree(repo: &Repository, rev: &str, dir: &Path) -> Result<usize, String> {
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| format!("{rev}: {e}"))?;
    let tree = commit.tree().map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000 {
            files.push((
                format!("{root}{}", entry.name().unwrap_or_default()),
                entry.id(),
            ));
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| e.to_string())?;
    for (path, id) in &files {
        let blob = repo.find_blob(*id).map_err(|e| e.to_string())?;
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&full, blob.content()).map_err(|e| e.to_string())?;
    }
    Ok(files.len())
}

/// The whole benchmark, once, on a 60-commit repository made here.
fn smoke() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path().join("mirrors").join("acme__gears");
    let repo = Repository::init(&dir).map_err(|e| e.to_string())?;
    let sig = git2::Signature::now("t", "t@example.com").map_err(|e| e.to_string())?;
    let mut first = None;
    for n in 0..60 {
        for k in 0..5 {
            // File k last changed at the latest commit m <= n with m % 5 == k.
            let last = if n >= k { n - (n - k) % 5 } else { 0 };
            let text = format!(
                "def gear_{k}(x):\n    return x + {last}\n\n\nclass Box{k}:\n    def size(self):\n        return {k}\n"
            );
            std::fs::create_dir_all(dir.join("gears")).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("gears/g{k}.py")), text).map_err(|e| e.to_string())?;
        }
        let mut index = repo.index().map_err(|e| e.to_string())?;
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .map_err(|e| e.to_string())?;
        index.write().map_err(|e| e.to_string())?;
        let tree = repo
            .find_tree(index.write_tree().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let id = repo
            .commit(Some("HEAD"), &sig, &sig, "step", &tree, &parents)
            .map_err(|e| e.to_string())?;
        first.get_or_insert(id);
    }
    let first = first.ok_or("no commit")?.to_string();
    let out = tmp.path().join("index.json");
    let mirrors = tmp.path().join("mirrors").display().to_string();
    let mut args = vec![
        mirrors,
        "--repo".into(),
        "acme__gears".into(),
        "--rev".into(),
        first,
        "--reps".into(),
        "1".into(),
    ];
    args.extend(["--out".into(), out.display().to_string()]);
    if which("ctags").is_none() {
        eprintln!(
            "bench-index smoke pass: universal-ctags is not installed; running without the ctags comparison"
        );
        args.push("--no-ctags".into());
    }
    parent(&args)?;
    let r: Value = serde_json::from_slice(&std::fs::read(&out).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("smoke pass: {what}: {r:#}"))
        }
    };
    check(r["ours_1t"]["result"]["files"] == 5, "5 files indexed")?;
    check(r["ours_2t"]["result"]["symbols"] == 5 * 4, "symbols")?;
    check(
        r["ours_git_warm"]["result"]["parsed"] == 5,
        "50 commits later every file changed once: 5 parsed",
    )?;
    check(
        r["ours_git_same"]["result"]["parsed"] == 0,
        "the same commit again parses nothing",
    )?;
    check(
        r["ours_1t"]["median_peak_rss_mb"].as_f64().unwrap_or(0.0) > 0.0,
        "peak memory measured",
    )?;
    println!(
        "bench-index smoke pass ok (cargo bench -p mend-index --bench index -- MIRRORS for the real run)"
    );
    Ok(())
}

fn parent(args: &[String]) -> Result<(), String> {
    let mirrors = args
        .iter()
        .find(|a| !a.starts_with("--") && !is_flag_value(args, a))
        .cloned()
        .or_else(|| std::env::var("MEND_BENCH_MIRRORS").ok())
        .ok_or("usage: index MIRRORS_DIR [--repo django__django] [--rev COMMIT] [--later 50] [--reps 3]")?;
    let name = flag(args, "--repo").unwrap_or_else(|| "django__django".into());
    let rev = flag(args, "--rev").unwrap_or_else(|| DEFAULT_REV.into());
    let later_n: usize = flag(args, "--later")
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let reps: usize = flag(args, "--reps")
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mirror = PathBuf::from(&mirrors).join(&name);
    if !mirror.exists() {
        return Err(format!(
            "no mirror at {}: the benchmark needs a git mirror of django/django there (named {name})",
            mirror.display()
        ));
    }
    let repo = Repository::open(&mirror).map_err(|e| format!("{}: {e}", mirror.display()))?;
    let base = repo
        .revparse_single(&rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| format!("{rev}: {e}"))?
        .id();
    let later = later_commit(&repo, base, later_n)?;
    let no_ctags = args.iter().any(|a| a == "--no-ctags");
    let ctags = if no_ctags {
        None
    } else {
        Some(
            which("ctags")
                .ok_or("universal-ctags is not installed (apt-get install universal-ctags)")?,
        )
    };

    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tree = scratch.path().join("tree");
    let written = write_tree(&repo, &base.to_string(), &tree)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    eprintln!("{name} at {base}: {written} files written; {reps} repetitions each");

    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut ours = [Vec::new(), Vec::new()];
    let mut ctags_runs = Vec::new();
    let (mut git_cold, mut git_warm, mut git_same) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        // Interleaved, so drift in the machine's load touches every configuration alike.
        for (k, threads) in [1, 2].into_iter().enumerate() {
            let cache = scratch.path().join(format!("cache-wt-{rep}-{threads}"));
            ours[k].push(measure(
                Command::new(&exe)
                    .args([
                        "--child",
                        "worktree",
                        "--threads",
                        &threads.to_string(),
                        "--tree",
                    ])
                    .arg(&tree)
                    .arg("--cache")
                    .arg(&cache),
            )?);
        }
        let tags = scratch.path().join(format!("tags-{rep}"));
        if let Some(ctags) = &ctags {
            ctags_runs.push(measure(
                Command::new(ctags)
                    .args(["-R", "--languages=Python", "-f"])
                    .arg(&tags)
                    .arg(&tree),
            )?);
        }
        let cache = scratch.path().join(format!("cache-git-{rep}"));
        let git = |rev: &str| {
            let mut c = Command::new(&exe);
            c.args(["--child", "git", "--threads", "2", "--repo"])
                .arg(&mirror)
                .args(["--rev", rev, "--cache"])
                .arg(&cache);
            c
        };
        git_cold.push(measure(&mut git(&base.to_string()))?);
        git_warm.push(measure(&mut git(&later.to_string()))?);
        git_same.push(measure(&mut git(&base.to_string()))?);
        eprintln!("repetition {} done", rep + 1);
    }
    let tag_count = std::fs::read_to_string(scratch.path().join("tags-0"))
        .map(|t| t.lines().filter(|l| !l.starts_with("!_")).count())
        .unwrap_or(0);
    let med = |runs: &[Run]| median(runs.iter().map(|r| r.wall).collect());
    let rss = |runs: &[Run]| median(runs.iter().map(|r| r.max_rss_kb as f64).collect());
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let (ctags_summary, time_ratio, rss_ratio) = if ctags_runs.is_empty() {
        (Value::Null, Value::Null, Value::Null)
    } else {
        let mut summary = summarize(&ctags_runs);
        summary["tags"] = json!(tag_count);
        (
            summary,
            json!({"ours_1t": round(med(&ours[0]) / med(&ctags_runs)), "ours_2t": round(med(&ours[1]) / med(&ctags_runs))}),
            json!({"ours_1t": round(rss(&ours[0]) / rss(&ctags_runs)), "ours_2t": round(rss(&ours[1]) / rss(&ctags_runs))}),
        )
    };
    let report = json!({
        "repository": name,
        "commit": base.to_string(),
        "later_commit": later.to_string(),
        "later_first_parent_commits": later_n,
        "files_in_tree": written,
        "repetitions": reps,
        "ours_1t": summarize(&ours[0]),
        "ours_2t": summarize(&ours[1]),
        "ctags": ctags_summary,
        "ours_git_cold": summarize(&git_cold),
        "ours_git_warm": summarize(&git_warm),
        "ours_git_same": summarize(&git_same),
        "ratio_time_vs_ctags": time_ratio,
        "ratio_peak_rss_vs_ctags": rss_ratio,
        "speedup_2t_vs_1t": round(med(&ours[0]) / med(&ours[1])),
        "warm_vs_cold": round(med(&git_warm) / med(&git_cold)),
        "load_average_before": load_before.trim(),
        "load_average_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "notes": "wall seconds, CPU seconds (user + system) and peak RSS of a child process per run (wait4 in a \
                  small launcher); medians over the repetitions; each of ours indexes then localizes one issue; \
                  cold = empty cache; ctags limited to Python, the files we parse",
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = flag(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("index.json"));
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, &text).map_err(|e| e.to_string())?;
    print_summary(&report);
    println!("wrote {}", out.display());
    Ok(())
}

fn is_flag_value(args: &[String], a: &String) -> bool {
    args.windows(2)
        .any(|w| w[0].starts_with("--") && &w[1] == a)
}

fn later_commit(repo: &Repository, base: Oid, n: usize) -> Result<Oid, String> {
    let mut walk = repo.revwalk().map_err(|e| e.to_string())?;
    walk.push_head().map_err(|e| e.to_string())?;
    walk.hide(base).map_err(|e| e.to_string())?;
    walk.simplify_first_parent().map_err(|e| e.to_string())?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(|e| e.to_string())?;
    let after: Vec<Oid> = walk.flatten().collect();
    after
        .get(n.saturating_sub(1))
        .copied()
        .ok_or_else(|| format!("fewer than {n} commits after {base} on HEAD"))
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

fn print_summary(r: &Value) {
    let row = |name: &str, v: &Value| {
        let res = &v["result"];
        println!(
            "{name:16} {:>8.2} s ({:>6.2} cpu s, history {:.2} s, locate {:.2} s)  {:>7.1} MB   files {:>5}  symbols {:>6}  parsed {:>5}  cached {:>5}",
            v["median_seconds"].as_f64().unwrap_or(0.0),
            v["median_cpu_seconds"].as_f64().unwrap_or(0.0),
            res["history_seconds"].as_f64().unwrap_or(0.0),
            res["locate_seconds"].as_f64().unwrap_or(0.0),
            v["median_peak_rss_mb"].as_f64().unwrap_or(0.0),
            res["files"].as_u64().unwrap_or(0),
            res["symbols"].as_u64().unwrap_or(0),
            res["parsed"].as_u64().unwrap_or(0),
            res["from_cache"].as_u64().unwrap_or(0),
        );
    };
    println!(
        "{} at {} ({} files in the tree), medians of {} runs:",
        r["repository"], r["commit"], r["files_in_tree"], r["repetitions"]
    );
    row("ours, 1 thread", &r["ours_1t"]);
    row("ours, 2 threads", &r["ours_2t"]);
    println!(
        "{:16} {:>8.2} s  {:>7.1} MB   tags {}",
        "ctags -R",
        r["ctags"]["median_seconds"].as_f64().unwrap_or(0.0),
        r["ctags"]["median_peak_rss_mb"].as_f64().unwrap_or(0.0),
        r["ctags"]["tags"]
    );
    row("git, cold", &r["ours_git_cold"]);
    row("git, +50 commits", &r["ours_git_warm"]);
    row("git, same again", &r["ours_git_same"]);
    println!(
        "time vs ctags: 1 thread {}x, 2 threads {}x; peak memory vs ctags: {}x / {}x; warm/cold {}",
        r["ratio_time_vs_ctags"]["ours_1t"],
        r["ratio_time_vs_ctags"]["ours_2t"],
        r["ratio_peak_rss_vs_ctags"]["ours_1t"],
        r["ratio_peak_rss_vs_ctags"]["ours_2t"],
        r["warm_vs_cold"]
    );
}
