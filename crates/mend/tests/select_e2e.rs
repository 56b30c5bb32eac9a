//! Best-of-N end to end through the real binary: `mend fix --candidates 3` on the textkit
//! fixture in Docker, three concurrent attempts answered by a scripted model (told apart by
//! the seed each attempt sends), then the cross matrix and the regression guard run for
//! real in the attempts' containers; and the one-candidate retry of an attempt that made
//! no change.
mod support;

use std::path::Path;

use mend_llm::test_server::{Received, Reply, TestServer};
use serde_json::{Value, json};
use support::fixture_repo;

const BUGGY: &str = "    return len(text.split(\" \"))";
const FIXED: &str = "    return len(text.split())";
/// Fixes runs of spaces and the empty string, but not newlines and tabs.
const HALF: &str = "    return len([w for w in text.split(\" \") if w])";
const AVG_OLD: &str = "    words = [w for w in text.split() if w]\n    if not words:\n        return 0.0\n    return sum(len(w) for w in words) / len(words)";
/// "Simplified" with word_count: divides by zero on blank text (breaks test_no_words).
const AVG_BROKEN: &str = "    return sum(len(w) for w in text.split()) / word_count(text)";
const REPRO_SPACES: &str = "from textkit import word_count\nassert word_count('the  quick brown   fox') == 4, word_count('the  quick brown   fox')\nprint('fixed')\n";
const REPRO_FULL: &str = "from textkit import word_count\ncases = {'the  quick brown   fox': 4, 'the\\nquick\\tbrown fox': 4, '': 0}\nbad = {t: word_count(t) for t, want in cases.items() if word_count(t) != want}\nif bad:\n    raise SystemExit(f'still wrong: {bad}')\nprint('fixed')\n";

fn write_repro(text: &str) -> Reply {
    Reply::tool_calls(&[(
        "bash",
        json!({"command": format!("cat > reproduce_issue.py <<'EOF'\n{text}EOF\npython3 reproduce_issue.py; true")}),
    )])
}
fn edit(old: &str, new: &str) -> Reply {
    Reply::tool_calls(&[(
        "edit",
        json!({"mode": "replace", "path": "textkit/stats.py", "old_text": old, "new_text": new}),
    )])
}
fn submit() -> Reply {
    Reply::tool_calls(&[("submit", json!({"summary": "done"}))])
}

/// Attempt `seed`'s turn `turn`; anything past the script submits again.
fn script(seed: Option<i64>, turn: usize) -> Reply {
    let steps: Vec<Reply> = match seed {
        // One candidate, first attempt: gives up without a change.
        None => vec![submit()],
        // Fails the full reproduction (newlines and tabs).
        Some(1) => vec![write_repro(REPRO_SPACES), edit(BUGGY, HALF), submit()],
        // Passes every reproduction but breaks an existing test.
        Some(2) => vec![
            write_repro(REPRO_FULL),
            edit(BUGGY, FIXED),
            edit(AVG_OLD, AVG_BROKEN),
            submit(),
        ],
        // Right.
        _ => vec![write_repro(REPRO_FULL), edit(BUGGY, FIXED), submit()],
    };
    steps
        .into_iter()
        .nth(turn)
        .unwrap_or_else(submit)
        .with_usage(1000, 50)
}

fn answer(r: &Received) -> Reply {
    let body = r.json();
    let turns = body["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
        .unwrap_or(0);
    let seed = body["seed"].as_i64();
    // The retry test's second attempt (seed 2) is the right one.
    if body["model"] == "retry-model" && seed.is_some() {
        return script(Some(3), turns);
    }
    script(seed, turns)
}

struct Run {
    code: Option<i32>,
    stderr: String,
    patch: String,
    traj: Value,
    dir: tempfile::TempDir,
}

async fn fix(repo: &Path, extra: &[&str]) -> Run {
    let server = TestServer::with_handler(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["fix", "--no-review", "--repo"])
        .arg(repo)
        .arg("--issue")
        .arg(format!(
            "@{}",
            support::fixtures().join("textkit/issue.md").display()
        ))
        .args(["--base-url", &server.base_url()])
        .arg("--out")
        .arg(dir.path().join("fix.patch"))
        .arg("--trajectory")
        .arg(dir.path().join("run.traj.json"))
        .args(extra)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MEND_MODEL")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        patch: std::fs::read_to_string(dir.path().join("fix.patch")).unwrap_or_default(),
        traj: std::fs::read_to_string(dir.path().join("run.traj.json"))
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null),
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_candidates_the_right_one_is_chosen_by_running_them() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let run = fix(repo.path(), &["--candidates", "3", "--model", "test-model"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // The third candidate's change, not the first's nor the second's.
    assert!(run.patch.contains(&format!("+{FIXED}")), "{}", run.patch);
    assert!(!run.patch.contains("word_count(text)\n"), "{}", run.patch);
    assert!(!run.patch.contains("reproduce_issue.py"), "{}", run.patch);
    let sel = &run.traj["selection"];
    assert_eq!(sel["choice"]["winner"], 2, "{}", run.stderr);
    assert_eq!(sel["differs_from_first"], true);
    // Every reproduction fails on the base commit, so every one counts.
    assert_eq!(
        sel["matrix"]["base"],
        json!(["reproduces", "reproduces", "reproduces"]),
        "{sel}"
    );
    let rows = sel["choice"]["rows"].as_array().unwrap();
    // #1 passes only its own (weaker) reproduction.
    assert_eq!(rows[0]["reproductions_passed"], 1, "{sel}");
    assert_eq!(rows[0]["regressions"], 0, "{sel}");
    // #2 passes them all but breaks test_no_words, which passed on the base commit.
    assert_eq!(rows[1]["reproductions_passed"], 3, "{sel}");
    assert_eq!(rows[1]["regressions"], 1, "{sel}");
    assert_eq!(rows[2]["reproductions_passed"], 3, "{sel}");
    assert_eq!(rows[2]["regressions"], 0, "{sel}");
    assert_eq!(rows[2]["score"], 3000);
    let set = sel["matrix"]["regression_set"]["files"].to_string();
    assert!(set.contains("tests/test_stats.py"), "{set}");
    // The seeds differ, the later attempts sample warmer.
    let seeds: Vec<i64> = sel["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seed"].as_i64().unwrap())
        .collect();
    assert_eq!(seeds, vec![1, 2, 3]);
    assert!(run.stderr.contains("chose #3"), "{}", run.stderr);
    // Every candidate's own trajectory is kept beside the run's.
    for k in 1..=3 {
        assert!(
            run.dir
                .path()
                .join(format!("run.cand{k}.traj.json"))
                .exists(),
            "candidate {k}'s trajectory"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_candidate_without_a_change_is_retried_once_with_another_seed() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let run = fix(repo.path(), &["--model", "retry-model"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("retrying once"), "{}", run.stderr);
    assert!(run.patch.contains(&format!("+{FIXED}")), "{}", run.patch);
    let sel = &run.traj["selection"];
    assert_eq!(sel["retried"], true, "{sel}");
    assert_eq!(sel["candidates"][0]["patch"], "");
    assert_eq!(sel["candidates"][1]["seed"], 2);
    assert_eq!(sel["choice"]["rows"][0]["dropped"], "empty");
    assert!(run.dir.path().join("run.cand1.traj.json").exists());
    assert!(run.dir.path().join("run.cand2.traj.json").exists());
}

/// Writes `tests/fixtures/textkit/candidates/{1,2,3}.json`, the recordings `mend demo
/// --candidates 3` replays, from the three scripted attempts above run through the real loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates the demo's candidate recordings (writes into tests/fixtures); run by hand"]
async fn regenerate_demo_candidates() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let run = fix(
        repo.path(),
        &["--candidates", "3", "--model", "scripted-demo"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let dir = support::fixtures().join("textkit/candidates");
    std::fs::create_dir_all(&dir).unwrap();
    for k in 1..=3 {
        let traj: Value = serde_json::from_str(
            &std::fs::read_to_string(run.dir.path().join(format!("run.cand{k}.traj.json")))
                .unwrap(),
        )
        .unwrap();
        let rec = mend_llm::Recording::from_value(&traj).unwrap();
        std::fs::write(
            dir.join(format!("{k}.json")),
            serde_json::to_string_pretty(&rec.to_value()).unwrap() + "\n",
        )
        .unwrap();
    }
}

#[test]
fn a_bad_candidate_count_is_refused_naming_the_flag() {
    for args in [
        &["fix", "--issue", "x", "--candidates", "0"][..],
        &["fix", "--issue", "x", "--candidates", "17"][..],
        &[
            "swebench",
            "run",
            "--dataset",
            "d.jsonl",
            "--candidates",
            "0",
        ][..],
        &["demo", "--candidates", "2"][..],
    ] {
        let out = support::mend().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--candidates"), "{args:?}: {err}");
    }
}
