//! How fast `mend view` shows a large run -> target/bench/view.json.
//!
//! The run: a real `mend swebench run --eval` batch of the browser test's five instances
//! (scripted model, real containers; cached under target/bench/view-fixture), replayed into
//! a run of `--instances` (default 500) over twelve repositories: every file of an instance
//! (trajectory, logs, evaluation report and logs, prediction, summary record) copied under a
//! new id. Measured: the run page over HTTP from `mend view` (render + transfer), the same
//! page loaded by headless Chromium (an iframe's load event: fetch, parse, layout), an
//! instance page, and `--export` of the whole run with its run page opened from disk.
//!
//! cargo bench -p mend --bench view -- [--instances N] [--reps R]
#[path = "../tests/support/view_fixture.rs"]
mod fixture;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Instant;

use fixture::{Browser, batch, build_image, mend, text, write_inputs};
use serde_json::{Value, json};

const REPOS: &[&str] = &[
    "astropy/astropy",
    "django/django",
    "matplotlib/matplotlib",
    "mwaskom/seaborn",
    "pallets/flask",
    "psf/requests",
    "pydata/xarray",
    "pylint-dev/pylint",
    "pytest-dev/pytest",
    "scikit-learn/scikit-learn",
    "sphinx-doc/sphinx",
    "sympy/sympy",
];
const SOURCE_RUN: &str = "view-src";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The real batch, made once.
fn source_run(root: &Path) -> PathBuf {
    let run = root.join("runs").join(SOURCE_RUN);
    if run.join("summary.json").exists() {
        return run;
    }
    eprintln!("making the source run (a real batch of 5 instances with evaluation)...");
    let commit = build_image(root);
    write_inputs(root, &commit);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(batch(root, SOURCE_RUN, 'a', &[]));
    run
}

/// The source run's instances replayed under `n` new ids into `<root>/runs-big/<id>`.
fn replay(src: &Path, root: &Path, n: usize) -> PathBuf {
    let id = format!("view-{n}");
    let dst = root.join("runs-big").join(&id);
    let _ = std::fs::remove_dir_all(&dst);
    for d in ["trajectories", "logs"] {
        std::fs::create_dir_all(dst.join(d)).unwrap();
    }
    let summary = read(&src.join("summary.json"));
    let model = summary["model_name_or_path"].as_str().unwrap().to_string();
    let model_dir = model.replace('/', "__");
    let records = summary["instances"].as_array().unwrap().clone();
    let eval = read(&src.join(format!("{model_dir}.{SOURCE_RUN}.json")));
    let details = read(&src.join(format!("{model_dir}.{SOURCE_RUN}.mend.json")));
    let preds: Vec<Value> = std::fs::read_to_string(src.join("predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let eval_src = src
        .join("logs/run_evaluation")
        .join(SOURCE_RUN)
        .join(&model_dir);
    let eval_dst = dst.join("logs/run_evaluation").join(&id).join(&model_dir);
    let mut new_records = vec![];
    let mut new_preds = String::new();
    let mut ids: serde_json::Map<String, Value> = serde_json::Map::new();
    let mut outcomes = serde_json::Map::new();
    for k in 0..n {
        let r = &records[k % records.len()];
        let old = r["instance_id"].as_str().unwrap();
        let repo = REPOS[k % REPOS.len()];
        let new = format!("{}-{}", repo.replace('/', "__"), 10_000 + k);
        let mut rec = r.clone();
        rec["instance_id"] = json!(new);
        rec["repo"] = json!(repo);
        new_records.push(rec);
        let t = src.join("trajectories").join(format!("{old}.traj.json"));
        std::fs::copy(
            &t,
            dst.join("trajectories").join(format!("{new}.traj.json")),
        )
        .unwrap();
        let _ = std::fs::copy(
            src.join("logs").join(format!("{old}.log")),
            dst.join("logs").join(format!("{new}.log")),
        );
        if let Some(p) = preds.iter().find(|p| p["instance_id"] == old) {
            let mut p = p.clone();
            p["instance_id"] = json!(new);
            new_preds.push_str(&p.to_string());
            new_preds.push('\n');
        }
        if eval_src.join(old).is_dir() {
            let d = eval_dst.join(&new);
            copy_dir(&eval_src.join(old), &d);
            if d.join("report.json").exists() {
                let rep = read(&d.join("report.json"));
                std::fs::write(d.join("report.json"), json!({ &new: rep[old] }).to_string())
                    .unwrap();
            }
        }
        for (key, list) in eval.as_object().unwrap() {
            if let Some(l) = list.as_array()
                && l.iter().any(|x| x == old)
            {
                ids.entry(key.clone())
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .unwrap()
                    .push(json!(new));
            }
        }
        if let Some(o) = details["outcomes"].get(old) {
            outcomes.insert(new.clone(), o.clone());
        }
    }
    let mut s = summary.clone();
    s["run_id"] = json!(id);
    s["selected"] = json!(n);
    s["instances"] = Value::Array(new_records);
    std::fs::write(dst.join("summary.json"), s.to_string()).unwrap();
    std::fs::write(dst.join("predictions.jsonl"), new_preds).unwrap();
    let mut e = eval.clone();
    for (k, v) in ids {
        e[k] = v;
    }
    std::fs::write(dst.join(format!("{model_dir}.{id}.json")), e.to_string()).unwrap();
    let mut d = details.clone();
    d["outcomes"] = Value::Object(outcomes);
    d["run_id"] = json!(id);
    std::fs::write(
        dst.join(format!("{model_dir}.{id}.mend.json")),
        d.to_string(),
    )
    .unwrap();
    dst
}

struct Serving(Child);
impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(path: &Path) -> (Serving, String) {
    let mut child = mend()
        .arg("view")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Serving(child), line.trim().to_string())
}

/// One GET over a fresh connection: milliseconds to the last byte, and the body's size.
fn get(url: &str) -> (f64, usize) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut buf = vec![];
    s.read_to_end(&mut buf).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..head_end])
    );
    (ms, buf.len() - head_end)
}

/// The page loaded by Chromium in an iframe: milliseconds from navigation to its load event.
fn browser_load(browser: &Browser, dir: &Path, url: &str) -> f64 {
    let wrapper = dir.join("load.html");
    std::fs::write(
        &wrapper,
        format!(
            "<!doctype html><body><script>var f = document.createElement('iframe'); f.style.width = '1280px'; f.style.height = '900px';\
             var t0 = performance.now(); f.onload = function () {{ document.body.setAttribute('data-ms', (performance.now() - t0).toFixed(1)); }};\
             f.src = {}; document.body.appendChild(f);</script></body>",
            json!(url)
        ),
    )
    .unwrap();
    let dom = browser.run(
        &["--dump-dom", "--allow-file-access-from-files"],
        &format!("file://{}", wrapper.display()),
    );
    let ms = dom
        .split("data-ms=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("the page did not load: {dom}"));
    ms.parse().unwrap()
}

fn stats(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({"median_ms": pick(0.5), "p90_ms": pick(0.9), "min_ms": v[0], "max_ms": v[v.len() - 1], "n": v.len()})
}

fn main() {
    let n = arg("--instances", 500);
    let reps = arg("--reps", 10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/view-fixture");
    std::fs::create_dir_all(&root).unwrap();
    let src = source_run(&root);
    let run = replay(&src, &root, n);
    let browser = Browser::new();
    let (_server, url) = serve(&run);

    let (_, bytes) = get(&url); // warm the page cache
    let http: Vec<f64> = (0..reps).map(|_| get(&url).0).collect();
    let inst_url = format!("{url}i/{}-10000.html", REPOS[0].replace('/', "__"));
    let (_, inst_bytes) = get(&inst_url);
    let inst_http: Vec<f64> = (0..reps).map(|_| get(&inst_url).0).collect();
    let tmp = tempfile::tempdir().unwrap();
    browser_load(&browser, tmp.path(), &url); // the browser's own first start
    // The floor: an iframe of a one-line page (mend view's 404) on this machine, now.
    let floor: Vec<f64> = (0..reps.clamp(3, 10))
        .map(|_| browser_load(&browser, tmp.path(), &format!("{url}no-such-page.html")))
        .collect();
    let chrome: Vec<f64> = (0..reps.clamp(3, 10))
        .map(|_| browser_load(&browser, tmp.path(), &url))
        .collect();

    let site = tmp.path().join("site");
    let t = Instant::now();
    let out = mend()
        .arg("view")
        .arg(&run)
        .arg("--export")
        .arg(&site)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let export_s = t.elapsed().as_secs_f64();
    let file_url = format!("file://{}/index.html", site.display());
    let chrome_file: Vec<f64> = (0..reps.clamp(3, 10))
        .map(|_| browser_load(&browser, tmp.path(), &file_url))
        .collect();

    let report = json!({
        "instances": n,
        "source": "a real `mend swebench run --eval` batch of 5 instances, replayed under new ids",
        "run_page_bytes": bytes,
        "run_page_http": stats(http),
        "run_page_chromium_load": stats(chrome),
        "one_line_page_chromium_load": stats(floor),
        "load_average_1min": std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split(' ').next().map(str::to_string)),
        "instance_page_bytes": inst_bytes,
        "instance_page_http": stats(inst_http),
        "export_secs": export_s,
        "export_pages": n + 1,
        "exported_run_page_chromium_load": stats(chrome_file),
        "binary": env!("CARGO_BIN_EXE_mend"),
    });
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::write(
        out_dir.join("view.json"),
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .unwrap();
    println!(
        "mend view, run of {n} instances: run page {} KB; HTTP median {:.1} ms (p90 {:.1}); Chromium load median {:.0} ms (a one-line page: {:.0} ms); \
         instance page HTTP median {:.1} ms; export {:.1} s, exported run page load median {:.0} ms",
        bytes / 1024,
        report["run_page_http"]["median_ms"].as_f64().unwrap(),
        report["run_page_http"]["p90_ms"].as_f64().unwrap(),
        report["run_page_chromium_load"]["median_ms"]
            .as_f64()
            .unwrap(),
        report["one_line_page_chromium_load"]["median_ms"]
            .as_f64()
            .unwrap(),
        report["instance_page_http"]["median_ms"].as_f64().unwrap(),
        export_s,
        report["exported_run_page_chromium_load"]["median_ms"]
            .as_f64()
            .unwrap(),
    );
    println!("-> target/bench/view.json");
}
