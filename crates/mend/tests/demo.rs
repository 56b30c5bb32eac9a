//! `mend demo`: the README's main command. It replays the recorded conversation in
//! `tests/fixtures/textkit/recording.json` against the real sandbox and tests.
mod support;

use std::process::Command;

use mend_llm::test_server::Reply;
use serde_json::json;

#[test]
fn the_demo_fixes_the_bundled_repository_in_docker_labelled_as_a_replay() {
    let keep = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["demo", "--keep"])
        .arg(keep.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("REPLAY"), "{stderr}");
    assert!(stderr.contains("submitted, tests passing"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("+    return len(text.split())"), "{stdout}");
    let traj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(keep.path().join("demo.traj.json")).unwrap())
            .unwrap();
    assert!(
        traj["model"].as_str().unwrap().starts_with("replay:"),
        "{}",
        traj["model"]
    );
    // The tests really ran in the sandbox: failing before the edit, passing after.
    let runs: Vec<&str> = traj["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap())
        .filter(|a| a["tool"] == "run_tests")
        .map(|a| a["observation"].as_str().unwrap())
        .collect();
    assert!(
        runs.first().unwrap().contains("test_runs_of_spaces"),
        "{runs:?}"
    );
    assert!(
        runs.last().unwrap().contains("passed") || runs.last().unwrap().contains("OK"),
        "{runs:?}"
    );
    // mend ran the model's reproduction on the original code and on the fix, and left it
    // out of the patch.
    let v = &traj["verification"];
    assert_eq!(v["repro_base"]["outcome"], "reproduces", "{v}");
    assert_eq!(v["repro_final"]["outcome"], "fixed", "{v}");
    assert!(!stdout.contains("reproduce_issue.py"), "{stdout}");
    assert!(
        stderr.contains("checks: reproduction fails before the change, passes after"),
        "{stderr}"
    );
}

#[test]
fn the_candidates_demo_chooses_the_right_one_and_prints_the_table() {
    let keep = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["demo", "--candidates", "3", "--keep"])
        .arg(keep.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("REPLAY"), "{stderr}");
    // The table: #1 passes 1 of 3 reproductions, #2 breaks a test, #3 wins.
    assert!(stderr.contains(" #  verdict"), "{stderr}");
    assert!(stderr.contains("chose #3"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("+    return len(text.split())"), "{stdout}");
    assert!(!stdout.contains("/ word_count(text)"), "{stdout}");
    let traj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(keep.path().join("demo.traj.json")).unwrap())
            .unwrap();
    let rows = traj["selection"]["choice"]["rows"].as_array().unwrap();
    assert_eq!(rows[0]["reproductions_passed"], 1, "{}", traj["selection"]);
    assert_eq!(rows[1]["regressions"], 1, "{}", traj["selection"]);
    assert_eq!(traj["selection"]["choice"]["winner"], 2);
}

fn say(content: &str, tool: &str, args: serde_json::Value) -> Reply {
    Reply::message(
        json!({"role": "assistant", "content": content, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": tool, "arguments": args.to_string()}}]}),
        "tool_calls",
    )
    .with_usage(1800, 90)
}

/// Writes `tests/fixtures/textkit/recording.json` from a scripted conversation run through
/// the real loop. Run it when prompts or tools change in a way the replay notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates the demo recording (writes into tests/fixtures); run by hand"]
async fn regenerate_demo_recording() {
    let repo = tempfile::tempdir().unwrap();
    support::fixture_repo("textkit", repo.path());
    let script = vec![
        say(
            "The issue is about `word_count`; let me read it.",
            "view",
            json!({"path": "textkit/stats.py"}),
        ),
        say(
            "`word_count` splits on a single space. I'll reproduce the three cases of the issue first.",
            "edit",
            json!({"mode": "create", "path": "reproduce_issue.py", "new_text": "from textkit import word_count\n\ncases = {\"the  quick brown   fox\": 4, \"the\\nquick\\tbrown fox\": 4, \"\": 0}\nwrong = {t: word_count(t) for t, want in cases.items() if word_count(t) != want}\nassert not wrong, f\"wrong counts: {wrong}\"\nprint(\"all counts right\")\n"}),
        ),
        say(
            "Run it.",
            "bash",
            json!({"command": "python3 reproduce_issue.py"}),
        ),
        say(
            "Reproduced: all three counts are wrong. Let me run the tests to see the failures too.",
            "run_tests",
            json!({}),
        ),
        say(
            "`text.split(\" \")` yields empty strings for runs of spaces and ignores tabs and newlines. \
             `str.split()` with no argument splits on any run of whitespace and drops empty strings, \
             which is what all three cases need.",
            "edit",
            json!({"mode": "replace", "path": "textkit/stats.py", "old_text": "    return len(text.split(\" \"))", "new_text": "    return len(text.split())"}),
        ),
        say(
            "Now the reproduction again.",
            "bash",
            json!({"command": "python3 reproduce_issue.py"}),
        ),
        say("And the tests.", "run_tests", json!({})),
        say(
            "All tests pass.",
            "submit",
            json!({"summary": "word_count now splits on any whitespace with str.split(), so runs of spaces, tabs, newlines and the empty string are counted right."}),
        ),
    ];
    let run = support::run_fix(repo.path(), "docker", script, &["--model", "scripted-demo"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let recording = mend_llm::Recording::from_value(run.trajectory.as_ref().unwrap()).unwrap();
    let path = support::fixtures().join("textkit/recording.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&recording.to_value()).unwrap() + "\n",
    )
    .unwrap();
}
