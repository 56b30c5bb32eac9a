//! `mend fix` end to end: a real fixture repository with a real bug, a scripted model served
//! over HTTP by mend-llm's chat-completions test server, and the real sandboxes (Docker
//! engine and local checkout). Each scenario runs in both.
mod support;

use mend_llm::test_server::Reply;
use serde_json::json;
use support::{containers_of, fixture_repo, run_fix, snapshot};

const BUGGY: &str = "    return len(text.split(\" \"))";
const FIXED: &str = "    return len(text.split())";

fn view_stats() -> Reply {
    Reply::tool_calls(&[("view", json!({"path": "textkit/stats.py"}))])
}
fn edit(old: &str, new: &str) -> Reply {
    Reply::tool_calls(&[(
        "edit",
        json!({"mode": "replace", "path": "textkit/stats.py", "old_text": old, "new_text": new}),
    )])
}
fn submit() -> Reply {
    Reply::tool_calls(&[("submit", json!({"summary": "split on any whitespace"}))])
}

macro_rules! both_sandboxes {
    ($name:ident, |$sandbox:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn check($sandbox: &str) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn docker() {
                check("docker").await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                check("local").await;
            }
        }
    };
}

both_sandboxes!(fixed_on_the_first_try, |sandbox| {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let before = snapshot(repo.path());
    let run = run_fix(
        repo.path(),
        sandbox,
        vec![view_stats(), edit(BUGGY, FIXED), submit()],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let patch = run.patch.as_deref().unwrap();
    assert!(
        patch.contains("-    return len(text.split(\" \"))\n+    return len(text.split())"),
        "{patch}"
    );
    assert!(
        run.stderr().contains("submitted, tests passing"),
        "{}",
        run.stderr()
    );
    // The model saw the file with line numbers, then the diff of its edit.
    let obs = run.observations();
    assert!(
        obs.iter().any(|o| o.contains("def word_count(text):")),
        "{obs:?}"
    );
    assert!(
        obs.iter()
            .any(|o| o.contains("+    return len(text.split())")),
        "{obs:?}"
    );
    // The trajectory holds every step with its tool calls, observations and tokens.
    let traj = run.trajectory.unwrap();
    assert_eq!(traj["exit_status"]["status"], "submitted");
    assert_eq!(traj["steps"].as_array().unwrap().len(), 3);
    assert_eq!(traj["steps"][1]["actions"][0]["tool"], "edit");
    assert!(traj["totals"]["tokens_in"].as_u64().unwrap() > 0);
    assert!(traj["test_runs"][0]["passed"].as_bool().unwrap());
    // The user's repository is exactly as it was, and no container is left.
    assert_eq!(
        snapshot(repo.path()),
        before,
        "the user's repository changed"
    );
    assert!(containers_of(run.pid).is_empty());

    // The trajectory stores each request's new messages only, and replays as it ran.
    assert_eq!(traj["steps"][2]["raw"]["request"]["prefix"], 4, "{traj}");
    assert_eq!(traj["steps"][2]["raw"]["request"]["same_tools"], true);
    let saved = tempfile::tempdir().unwrap();
    let recording = saved.path().join("run.traj.json");
    std::fs::write(&recording, traj.to_string()).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    fixture_repo("textkit", fresh.path());
    let replayed = saved.path().join("replayed.patch");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["fix", "--no-review", "--repo"])
        .arg(fresh.path())
        .arg("--issue")
        .arg(format!(
            "@{}",
            support::fixtures().join("textkit/issue.md").display()
        ))
        .args(["--sandbox", sandbox, "--replay"])
        .arg(&recording)
        .arg("--out")
        .arg(&replayed)
        .env("XDG_CONFIG_HOME", saved.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(std::fs::read_to_string(&replayed).unwrap(), patch);
});

both_sandboxes!(a_non_unique_edit_then_recovery, |sandbox| {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let script = vec![
        edit("text.split(", "text.split ("),
        edit(BUGGY, FIXED),
        submit(),
    ];
    let run = run_fix(repo.path(), sandbox, script, &[]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let obs = run.observations();
    let refused = obs
        .iter()
        .find(|o| o.contains("occurs 2 times"))
        .unwrap_or_else(|| panic!("no refusal: {obs:?}"));
    // The candidates are shown with their line numbers.
    assert!(refused.contains("6") && refused.contains("11"), "{refused}");
    let patch = run.patch.unwrap();
    assert!(
        patch.contains("+    return len(text.split())") && !patch.contains("split ("),
        "{patch}"
    );
});

both_sandboxes!(a_syntax_breaking_edit_is_rejected, |sandbox| {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let script = vec![
        edit(BUGGY, "    return len(text.split(\n"),
        view_stats(),
        edit(BUGGY, FIXED),
        submit(),
    ];
    let run = run_fix(repo.path(), sandbox, script, &[]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let obs = run.observations();
    assert!(
        obs.iter()
            .any(|o| o.contains("parse") && o.contains("line")),
        "no syntax refusal: {obs:?}"
    );
    // The view after the refusal shows the file as it was.
    assert!(
        obs.iter()
            .any(|o| o.contains("return len(text.split(\" \"))")),
        "{obs:?}"
    );
    assert!(!run.patch.unwrap().contains("split(\n"));
});

both_sandboxes!(
    failing_tests_go_back_to_the_model_which_repairs,
    |sandbox| {
        let repo = tempfile::tempdir().unwrap();
        fixture_repo("textkit", repo.path());
        let partial = "    return len([w for w in text.split(\" \") if w])";
        let script = vec![
            edit(BUGGY, partial),
            submit(),
            edit(partial, FIXED),
            submit(),
        ];
        let run = run_fix(repo.path(), sandbox, script, &[]).await;
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        let obs = run.observations();
        // The first message is the issue with the repo map, which names the tests too.
        let feedback = obs
            .iter()
            .skip(1)
            .find(|o| o.contains("test_newlines_and_tabs"))
            .unwrap_or_else(|| panic!("no test feedback: {obs:?}"));
        assert!(
            !feedback.contains("test_runs_of_spaces"),
            "only the still-failing test is reported: {feedback}"
        );
        let traj = run.trajectory.unwrap();
        let runs = traj["test_runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert!(!runs[0]["passed"].as_bool().unwrap() && runs[1]["passed"].as_bool().unwrap());
    }
);

both_sandboxes!(
    a_model_returning_garbage_stops_with_a_clear_message,
    |sandbox| {
        let repo = tempfile::tempdir().unwrap();
        fixture_repo("textkit", repo.path());
        let before = snapshot(repo.path());
        let script = vec![
            Reply::text("I think"),
            Reply::raw(200, "{\"choices\": []}"),
            Reply::text("hmm"),
        ];
        let run = run_fix(repo.path(), sandbox, script, &[]).await;
        assert_eq!(run.code(), Some(4), "{}", run.stderr());
        assert!(
            run.stderr().contains("no usable action"),
            "{}",
            run.stderr()
        );
        assert!(run.stderr().contains("no changes were made"));
        assert_eq!(
            run.trajectory.unwrap()["exit_status"]["status"],
            "model_error"
        );
        assert_eq!(snapshot(repo.path()), before);
        assert!(containers_of(run.pid).is_empty());
    }
);

both_sandboxes!(the_budget_runs_out_mid_run, |sandbox| {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    // gpt-4o is priced at $2.50 per million input tokens: 1000 tokens cost $0.0025, so a
    // $0.004 budget pays for the first call and not the second.
    let script = vec![
        edit(BUGGY, FIXED).with_usage(1000, 10),
        submit().with_usage(1000, 10),
    ];
    let run = run_fix(
        repo.path(),
        sandbox,
        script,
        &["--model", "gpt-4o", "--max-cost", "0.004"],
    )
    .await;
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(run.stderr().contains("budget"), "{}", run.stderr());
    let traj = run.trajectory.unwrap();
    assert_eq!(traj["exit_status"]["status"], "limit_reached");
    assert_eq!(
        traj["steps"].as_array().unwrap().len(),
        1,
        "the partial trajectory keeps the step that was paid for"
    );
    // The edit made before the budget ran out is still handed back.
    assert!(run.patch.unwrap().contains("+    return len(text.split())"));
    assert!(containers_of(run.pid).is_empty());
});

both_sandboxes!(writing_outside_the_repository_is_refused, |sandbox| {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let outside = repo
        .path()
        .parent()
        .unwrap()
        .join(format!("mend-escape-{}.py", std::process::id()));
    let script = vec![
        Reply::tool_calls(&[(
            "edit",
            json!({"mode": "create", "path": format!("../{}", outside.file_name().unwrap().to_string_lossy()), "new_text": "x = 1\n"}),
        )]),
        Reply::tool_calls(&[(
            "edit",
            json!({"mode": "create", "path": outside.display().to_string(), "new_text": "x = 1\n"}),
        )]),
        edit(BUGGY, FIXED),
        submit(),
    ];
    let run = run_fix(repo.path(), sandbox, script, &[]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let obs = run.observations();
    assert_eq!(
        obs.iter()
            .filter(|o| o.contains("escapes the repository"))
            .count(),
        2,
        "{obs:?}"
    );
    assert!(
        !outside.exists(),
        "a file was written outside the repository"
    );
    let patch = run.patch.unwrap();
    assert!(!patch.contains("mend-escape"), "{patch}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_prompt_holds_the_code_of_the_ranked_functions() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let run = run_fix(
        repo.path(),
        "local",
        vec![view_stats(), edit(BUGGY, FIXED), submit()],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let first = run.requests[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap()
        .to_string();
    // The function the issue names comes with its code, headed by its path and lines, before
    // the model has read anything: the index's context pack.
    assert!(
        first.contains("Code of the best-ranked functions"),
        "{first}"
    );
    let (_, pack) = first
        .split_once("Code of the best-ranked functions")
        .unwrap();
    assert!(
        pack.contains(
            "textkit/stats.py:4-6\ndef word_count(text):\n    \"\"\"Return the number of words in ``text``.\"\"\"\n    return len(text.split(\" \"))\n"
        ),
        "{pack}"
    );
    // Code only from the ranked functions, not the whole file.
    assert!(
        !pack.contains("\"\"\"Word statistics for plain text.\"\"\""),
        "{pack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_action_mode_for_models_without_tool_calls() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let script = vec![
        Reply::action("Let me look.", "view", json!({"path": "textkit/stats.py"})),
        Reply::text("No block here."),
        Reply::action(
            "Fix the split.",
            "edit",
            json!({"mode": "replace", "path": "textkit/stats.py", "old_text": BUGGY, "new_text": FIXED}),
        ),
        Reply::action("Done.", "submit", json!({"summary": "split on whitespace"})),
    ];
    let run = run_fix(repo.path(), "docker", script, &["--tool-mode", "text"]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    // No `tools` field goes to a server without tool calls; the prompt describes them.
    assert!(run.requests.iter().all(|r| r.get("tools").is_none()));
    let system = run.requests[0]["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("```action") && system.contains("`edit`"),
        "{system}"
    );
    // The reply without an action was asked again with a format note, and the run went on;
    // neither the bad reply nor the note stays in the conversation.
    let retry = run.requests[2].to_string();
    assert!(retry.contains("could not be run"), "{retry}");
    let last = run.requests.last().unwrap().to_string();
    assert!(
        !last.contains("could not be run") && !last.contains("No block here"),
        "{last}"
    );
    assert!(run.patch.unwrap().contains("+    return len(text.split())"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_commits_the_fix_and_leaves_the_checkout_alone() {
    let repo = tempfile::tempdir().unwrap();
    let base = fixture_repo("textkit", repo.path());
    let before = snapshot(repo.path());
    let run = run_fix(
        repo.path(),
        "local",
        vec![edit(BUGGY, FIXED), submit()],
        &["--branch", "mend/word-count"],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let r = git2::Repository::open(repo.path()).unwrap();
    let tip = r
        .find_branch("mend/word-count", git2::BranchType::Local)
        .unwrap()
        .get()
        .peel_to_commit()
        .unwrap();
    assert_eq!(tip.parent_id(0).unwrap(), base);
    let blob = tip
        .tree()
        .unwrap()
        .get_path(std::path::Path::new("textkit/stats.py"))
        .unwrap()
        .to_object(&r)
        .unwrap()
        .peel_to_blob()
        .unwrap();
    assert!(String::from_utf8_lossy(blob.content()).contains(FIXED));
    assert_eq!(r.head().unwrap().target().unwrap(), base, "HEAD moved");
    // Only the new branch's ref and objects were added; the working tree is as it was.
    let after = snapshot(repo.path());
    for (path, bytes) in &before {
        if !path.starts_with(".git/") || path == ".git/HEAD" || path == ".git/index" {
            assert_eq!(after.get(path), Some(bytes), "{path} changed");
        }
    }
    // The same branch name again is refused before any model call.
    let again = run_fix(
        repo.path(),
        "local",
        vec![],
        &["--branch", "mend/word-count"],
    )
    .await;
    assert_eq!(again.code(), Some(1));
    assert!(
        again.stderr().contains("already exists"),
        "{}",
        again.stderr()
    );
    assert!(again.requests.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_changes_the_working_tree_only_when_clean_or_forced() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let stats = repo.path().join("textkit/stats.py");
    // A dirty tree: refused up front, before the model is called, and nothing changes.
    std::fs::write(repo.path().join("README.md"), "local work in progress\n").unwrap();
    let before = snapshot(repo.path());
    let run = run_fix(
        repo.path(),
        "local",
        vec![edit(BUGGY, FIXED), submit()],
        &["--apply"],
    )
    .await;
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(
        run.stderr().contains("uncommitted changes"),
        "{}",
        run.stderr()
    );
    assert!(
        run.requests.is_empty(),
        "the model was called before refusing"
    );
    assert_eq!(snapshot(repo.path()), before);
    // --force applies over the user's change and keeps it.
    let run = run_fix(
        repo.path(),
        "local",
        vec![edit(BUGGY, FIXED), submit()],
        &["--apply", "--force"],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(std::fs::read_to_string(&stats).unwrap().contains(FIXED));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("README.md")).unwrap(),
        "local work in progress\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_the_trajectory_and_removes_the_container() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let server = mend_llm::test_server::TestServer::start(vec![
        view_stats(),
        Reply::text("slow").with_delay(std::time::Duration::from_secs(120)),
    ])
    .await;
    let out = tempfile::tempdir().unwrap();
    let traj = out.path().join("run.traj.json");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args([
            "fix",
            "--no-review",
            "--sandbox",
            "docker",
            "--model",
            "test-model",
            "--base-url",
            &server.base_url(),
            "--issue",
            "fix word_count",
            "--repo",
        ])
        .arg(repo.path())
        .arg("--trajectory")
        .arg(&traj)
        .env_remove("OPENAI_API_KEY")
        .env("XDG_CONFIG_HOME", out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    // Wait until the second model call is under way (the first step is done).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while server.requests().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached its second call"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!containers_of(pid).is_empty());
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("mend did not stop")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&traj).unwrap()).unwrap();
    assert_eq!(t["exit_status"]["status"], "interrupted");
    assert_eq!(t["steps"].as_array().unwrap().len(), 1);
    assert!(
        containers_of(pid).is_empty(),
        "container left: {:?}",
        containers_of(pid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_action_again_and_again_is_nudged_then_stopped() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let script = vec![
        view_stats(),
        view_stats(),
        view_stats(),
        view_stats(),
        submit(),
    ];
    let run = run_fix(repo.path(), "local", script, &[]).await;
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(run.stderr().contains("kept repeating"), "{}", run.stderr());
    let obs = run.observations();
    assert!(
        obs.iter()
            .filter(|o| o.contains("same call 3 times"))
            .count()
            == 1,
        "{obs:?}"
    );
    assert_eq!(run.requests.len(), 4, "the run stops at the fourth repeat");
    assert_eq!(
        run.trajectory.unwrap()["exit_status"]["status"],
        "loop_detected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_limit_stops_the_run_and_keeps_the_work() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let script = vec![edit(BUGGY, FIXED), view_stats(), submit()];
    let run = run_fix(repo.path(), "local", script, &["--max-steps", "2"]).await;
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    assert!(
        run.stderr().contains("stopped: 2 steps"),
        "{}",
        run.stderr()
    );
    assert!(run.patch.unwrap().contains(FIXED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_observations_are_elided_near_the_context_window_but_not_the_issue_or_edits() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    // A small window (the prompt budget is what the reply, the tool schemas and a margin
    // leave of it) where one big observation fits once and then forces elision.
    // In the user's config: a repository's mend.toml cannot set the model's table.
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("mend")).unwrap();
    std::fs::write(
        xdg.path().join("mend/mend.toml"),
        "[model]\ncontext_window = 22000\n",
    )
    .unwrap();
    let xdg_path = xdg.path().display().to_string();
    let bash = |cmd: &str| Reply::tool_calls(&[("bash", json!({"command": cmd}))]);
    let script = vec![
        bash("seq 1 3000"),
        edit(BUGGY, FIXED),
        // Later outputs big enough that the prompt passes the budget whatever the
        // tokenizer's exact count of the first one.
        bash("seq 1 600"),
        bash("seq 2 600"),
        bash("seq 3 600"),
        bash("seq 4 600"),
        submit(),
    ];
    let run = support::run_fix_env(
        repo.path(),
        "local",
        script,
        &[],
        &[("XDG_CONFIG_HOME", &xdg_path)],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let last = &run.requests.last().unwrap()["messages"];
    let msgs = last.as_array().unwrap();
    let tools: Vec<&str> = msgs
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(
        tools[0].starts_with("[elided"),
        "the big old observation stays: {}",
        &tools[0][..80.min(tools[0].len())]
    );
    assert!(
        tools[1].contains("+    return len(text.split())"),
        "the edit was elided: {}",
        tools[1]
    );
    assert!(
        msgs[1]["content"]
            .as_str()
            .unwrap()
            .contains("word_count() is wrong"),
        "the issue was elided"
    );
    // The first request, before elision, had the whole output.
    let early = run.requests[1]["messages"].to_string();
    assert!(
        early.contains("2999"),
        "the observation was never shown whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_too_big_for_the_window_is_refused_before_any_sandbox() {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let dir = tempfile::tempdir().unwrap();
    let issue = dir.path().join("huge.md");
    // 5 MB of a real-looking log pasted into an issue.
    let line = "E   AssertionError: word_count('a  b') returned 3, expected 2 (run 12345)\n";
    std::fs::write(&issue, line.repeat(5_000_000 / line.len())).unwrap();
    let issue_arg = format!("@{}", issue.display());
    let run = run_fix(repo.path(), "docker", vec![], &["--issue", &issue_arg]).await;
    assert_ne!(run.code(), Some(0), "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains("does not fit the model's context window"),
        "{err}"
    );
    assert!(
        err.contains("bytes") && err.contains("window of 32768 tokens"),
        "{err}"
    );
    assert!(!err.contains("sandbox:"), "a sandbox was made: {err}");
    assert!(run.requests.is_empty(), "the model was called");
    assert!(containers_of(run.pid).is_empty());
}

both_sandboxes!(an_overflow_is_condensed_and_the_run_replays, |sandbox| {
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let thinking = |r: Reply| {
        r.edit_json(|b| {
            b["choices"][0]["message"]["content"] =
                json!("I am reading the code carefully. ".repeat(100));
        })
    };
    let bash = |cmd: &str| thinking(Reply::tool_calls(&[("bash", json!({"command": cmd}))]));
    let overflow = Reply::json(
        400,
        json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 8400 tokens.",
                         "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    );
    let script = vec![
        thinking(view_stats()),
        bash("echo one"),
        bash("echo two"),
        thinking(edit(BUGGY, FIXED)),
        bash("echo three"),
        overflow,
        Reply::text("word_count split on single spaces; fixed with split(). Next: submit."),
        submit(),
    ];
    let run = run_fix(repo.path(), sandbox, script, &[]).await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("condensed the conversation (summarised)"),
        "{}",
        run.stderr()
    );
    let traj = run.trajectory.unwrap();
    let c = traj["condensations"].as_array().unwrap();
    assert_eq!(c.len(), 1, "{traj}");
    assert_eq!(c[0]["stage"], "summarised");
    assert!(c[0]["summary"].as_str().unwrap().contains("Next: submit"));
    assert!(c[0]["tokens_after"].as_u64() < c[0]["tokens_before"].as_u64());
    let kinds: Vec<&str> = traj["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap_or("step"))
        .collect();
    assert_eq!(kinds[5..], ["overflow", "summary", "step"]);

    let saved = tempfile::tempdir().unwrap();
    let recording = saved.path().join("run.traj.json");
    std::fs::write(&recording, traj.to_string()).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    fixture_repo("textkit", fresh.path());
    let again = saved.path().join("again.traj.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["fix", "--no-review", "--repo"])
        .arg(fresh.path())
        .arg("--issue")
        .arg(format!(
            "@{}",
            support::fixtures().join("textkit/issue.md").display()
        ))
        .args(["--sandbox", sandbox, "--replay"])
        .arg(&recording)
        .arg("--trajectory")
        .arg(&again)
        .arg("--out")
        .arg(saved.path().join("replayed.patch"))
        .env("XDG_CONFIG_HOME", saved.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&again).unwrap()).unwrap();
    assert_eq!(again["condensations"][0]["stage"], "summarised");
    assert_eq!(again["condensations"][0]["summary"], c[0]["summary"]);
    assert_eq!(again["patch"], traj["patch"]);
});

fn bash(command: &str) -> Reply {
    Reply::tool_calls(&[("bash", json!({"command": command}))])
}

/// The patch applied to a fresh copy of the fixture: does the test suite pass there?
fn tests_pass_on_a_clean_checkout_with(patch: &str) -> (bool, String) {
    let fresh = tempfile::tempdir().unwrap();
    fixture_repo("textkit", fresh.path());
    let file = fresh.path().join("fix.patch");
    std::fs::write(&file, patch).unwrap();
    let apply = std::process::Command::new("git")
        .arg("-C")
        .arg(fresh.path())
        .args(["apply", "fix.patch"])
        .output()
        .unwrap();
    assert!(apply.status.success(), "{apply:?}");
    let out = std::process::Command::new("python3")
        .args(["-B", "-m", "unittest", "discover", "-v"])
        .current_dir(fresh.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both_sandboxes!(
    new_modules_made_with_bash_and_by_absolute_path_are_delivered,
    |sandbox| {
        let repo = tempfile::tempdir().unwrap();
        fixture_repo("textkit", repo.path());
        // The Docker sandbox's root is /repo; the local one's is a temporary directory the
        // model learns from its prompt, so there the path is relative.
        let helper = if sandbox == "docker" {
            "/repo/textkit/debug_words.py"
        } else {
            "textkit/debug_words.py"
        };
        let script = vec![
            // A new module made with bash.
            bash("printf 'def words(text):\\n    return text.split()\\n' > textkit/splitting.py"),
            // A new module with a scratch-like name, made by absolute path, that the fix uses.
            Reply::tool_calls(&[(
                "edit",
                json!({"mode": "create", "path": helper,
                   "new_text": "from textkit.splitting import words\n\n\ndef count(text):\n    return len(words(text))\n"}),
            )]),
            edit(
                BUGGY,
                "    from textkit.debug_words import count\n\n    return count(text)",
            ),
            // A reproduction script nothing refers to: scratch, left out and named.
            bash(
                "printf 'from textkit.stats import word_count\\nprint(word_count(\"a  b\"))\\n' > reproduce_issue.py && python3 -B reproduce_issue.py",
            ),
            submit(),
        ];
        let run = run_fix(repo.path(), sandbox, script, &[]).await;
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        let patch = run.patch.clone().unwrap();
        assert!(patch.contains("b/textkit/splitting.py"), "{patch}");
        assert!(patch.contains("b/textkit/debug_words.py"), "{patch}");
        assert!(
            patch.contains("+    from textkit.debug_words import count"),
            "{patch}"
        );
        assert!(!patch.contains("reproduce_issue.py"), "{patch}");
        assert!(
            run.stderr()
                .contains("left out of the patch: reproduce_issue.py"),
            "{}",
            run.stderr()
        );
        let traj = run.trajectory.unwrap();
        assert_eq!(traj["left_out"][0]["path"], "reproduce_issue.py", "{traj}");
        // What mend delivered passes the tests on its own.
        let (ok, log) = tests_pass_on_a_clean_checkout_with(&patch);
        assert!(ok, "{log}");
    }
);

both_sandboxes!(
    the_tests_on_submit_see_only_the_delivered_patch,
    |sandbox| {
        let repo = tempfile::tempdir().unwrap();
        fixture_repo("textkit", repo.path());
        // The fix loads a scratch-named module by a computed name: nothing in the patch names
        // it, so it is left out, and the tests on submit must fail as they would for the user.
        let script = vec![
            bash(
                "printf 'def count(text):\\n    return len(text.split())\\n' > textkit/tmp_impl.py",
            ),
            edit(
                BUGGY,
                "    import importlib\n\n    return importlib.import_module(\"textkit.\" + \"tmp\" + \"_impl\").count(text)",
            ),
            submit(),
            submit(),
            submit(),
        ];
        let run = run_fix(repo.path(), sandbox, script, &[]).await;
        assert_eq!(run.code(), Some(3), "{}", run.stderr());
        assert!(
            run.stderr().contains("submitted, tests failing"),
            "{}",
            run.stderr()
        );
        assert!(
            run.stderr()
                .contains("left out of the patch: textkit/tmp_impl.py"),
            "{}",
            run.stderr()
        );
        let obs = run.observations();
        assert!(
            obs.iter()
                .any(|o| o.contains("run without the files left out") && o.contains("tmp_impl")),
            "{obs:?}"
        );
        let (ok, _) = tests_pass_on_a_clean_checkout_with(&run.patch.unwrap());
        assert!(
            !ok,
            "the delivered patch should fail on its own, as mend said"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submodule_left_out_of_the_docker_sandbox_is_named() {
    let sub = tempfile::tempdir().unwrap();
    std::fs::write(sub.path().join("lib.py"), "Z = 1\n").unwrap();
    mend_sandbox::testing::commit_all(sub.path(), "sub");
    let repo = tempfile::tempdir().unwrap();
    fixture_repo("textkit", repo.path());
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args([
                "-c",
                "protocol.file.allow=always",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    git(&[
        "submodule",
        "add",
        "-q",
        &sub.path().display().to_string(),
        "vendor/sub",
    ]);
    git(&["commit", "-q", "-m", "a submodule"]);
    let run = run_fix(
        repo.path(),
        "docker",
        vec![edit(BUGGY, FIXED), submit()],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stderr().contains("submodule not copied") && run.stderr().contains("vendor/sub"),
        "{}",
        run.stderr()
    );
}
