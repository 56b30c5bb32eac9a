//! The loop against faults real models produce, with a real HTTP server scripted on
//! 127.0.0.1 and a real git repository in a local sandbox: context overflow (condensed and
//! replayed), bad replies, unknown tools and aliases, text-mode multi-line edits, loops,
//! and tool arguments no tool can take.
use std::path::Path;
use std::sync::Arc;

use mend_agent::trajectory::{CallKind, TrajectoryWriter};
use mend_agent::{Agent, AgentConfig, ExitStatus, Prompts, RunOutput, TaskInput, Toolbox};
use mend_agent::{TestsOutcome, ToolResult};
use mend_llm::test_server::{Reply, TestServer};
use mend_llm::{Model, ModelConfig, OpenAiCompatible, ReplayModel, ToolMode};
use mend_sandbox::{LocalSandbox, Sandbox};
use serde_json::{Value, json};
use tokio::sync::watch;

const BUGGY: &str = "def area(r):\n    return 3.14 * r\n";

fn repo() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("geo.py"), BUGGY).unwrap();
    std::fs::write(
        dir.path().join("notes.txt"),
        (1..=50).map(|i| format!("line {i}\n")).collect::<String>(),
    )
    .unwrap();
    let base = mend_sandbox::testing::commit_all(dir.path(), "buggy").to_string();
    (dir, base)
}

fn sandbox(dir: &Path, base: &str) -> Arc<dyn Sandbox> {
    Arc::new(LocalSandbox::create(dir, base).unwrap())
}

fn model(server: &TestServer, mode: ToolMode, window: usize) -> Arc<dyn Model> {
    let config = ModelConfig {
        tool_mode: mode,
        context_window: Some(window),
        max_output_tokens: Some(512),
        ..server.config("gpt-4o")
    };
    Arc::new(OpenAiCompatible::new(config).unwrap())
}

fn agent(model: Arc<dyn Model>) -> Agent {
    Agent {
        model,
        prompts: Prompts::builtin().unwrap(),
        config: AgentConfig {
            // No test command in these repositories: submitting ends the run.
            test_on_submit: false,
            ..AgentConfig::default()
        },
    }
}

async fn run(agent: &Agent, sb: Arc<dyn Sandbox>, traj: Option<&Path>) -> RunOutput {
    let (_tx, stop) = watch::channel(false);
    let tools = Toolbox::new(sb, None, None);
    let task = TaskInput {
        issue: "area() of a circle is wrong: it must be pi r squared.".into(),
        ..TaskInput::default()
    };
    let writer = TrajectoryWriter::new(traj.map(Path::to_path_buf));
    agent.run(tools, task, &writer, stop, &|_| {}).await
}

fn call(name: &str, args: Value) -> Reply {
    Reply::tool_calls(&[(name, args)])
}

fn overflow() -> Reply {
    Reply::json(
        400,
        json!({"error": {
            "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
    )
}

/// The JSON body of the `i`th request the server received.
fn body(server: &TestServer, i: usize) -> Value {
    server.requests()[i].json()
}

/// A step whose thought is long (assistant text is never elided, only summarised).
fn thinking_call(thought_words: usize, name: &str, args: Value) -> Reply {
    let thought = "I am reading the code carefully. ".repeat(thought_words / 6);
    Reply::tool_calls(&[(name, args)]).edit_json(|b| {
        b["choices"][0]["message"]["content"] = json!(thought);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_is_summarised_the_run_goes_on_and_the_trajectory_replays() {
    let (dir, base) = repo();
    let server = TestServer::start(vec![
        thinking_call(600, "view", json!({"path": "geo.py"})),
        thinking_call(600, "bash", json!({"command": "echo one"})),
        thinking_call(600, "bash", json!({"command": "echo two"})),
        thinking_call(600, "edit", json!({"mode": "replace", "path": "geo.py", "old_text": "3.14 * r", "new_text": "3.14 * r * r"})),
        thinking_call(600, "bash", json!({"command": "echo three"})),
        overflow(),
        Reply::text("The issue: area() must be pi r^2. geo.py line 2 was fixed to 3.14 * r * r. Plan: submit."),
        call("submit", json!({"summary": "area squares r"})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let traj_dir = tempfile::tempdir().unwrap();
    let traj_path = traj_dir.path().join("run.traj.json");
    let out = run(&a, sandbox(dir.path(), &base), Some(&traj_path)).await;
    assert_eq!(
        out.exit,
        ExitStatus::Submitted {
            tests: TestsOutcome::NotRun
        },
        "the overflow did not end the run"
    );
    assert!(
        out.patch.contains("+    return 3.14 * r * r"),
        "{}",
        out.patch
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 8);
    // The summary call: one user message holding the history and the current diff.
    let summary_req = body(&server, 6);
    let msgs = summary_req["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{summary_req}");
    let text = msgs[0]["content"].as_str().unwrap();
    assert!(
        text.contains("<history>") && text.contains("echo one"),
        "{text}"
    );
    assert!(
        text.contains("+    return 3.14 * r * r"),
        "the diff is in: {text}"
    );
    assert!(
        summary_req.get("tools").is_none(),
        "no tools offered: {summary_req}"
    );
    // The retried step: shorter than what overflowed, the issue kept, the summary in,
    // the last two turns kept.
    let (before, after) = (body(&server, 5), body(&server, 7));
    let (nb, na) = (
        before["messages"].as_array().unwrap().len(),
        after["messages"].as_array().unwrap().len(),
    );
    assert!(na < nb, "{na} vs {nb} messages");
    let after_text = after["messages"].to_string();
    assert!(after_text.contains("area() of a circle is wrong"));
    assert!(
        after_text.contains("geo.py line 2 was fixed"),
        "{after_text}"
    );
    assert!(after_text.contains("echo three"), "the last turn is kept");
    assert!(!after_text.contains("echo one"), "the middle is summarised");

    let t = &out.trajectory;
    assert_eq!(t.condensations.len(), 1, "{:?}", t.condensations);
    let c = &t.condensations[0];
    assert_eq!(c.stage, "summarised");
    assert!(c.trigger.starts_with("overflow:"), "{}", c.trigger);
    assert!(c.tokens_after < c.tokens_before, "{c:?}");
    assert!(c.summary.as_deref().unwrap().contains("Plan: submit"));
    let kinds: Vec<Option<CallKind>> = t.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![
            None,
            None,
            None,
            None,
            None,
            Some(CallKind::Overflow),
            Some(CallKind::Summary),
            None
        ]
    );

    // Replaying the written trajectory reproduces the run: the same requests, the same
    // condensation, the same end, every recorded call used.
    let (dir2, base2) = repo();
    let replay = Arc::new(ReplayModel::load(&traj_path).unwrap());
    let recorded = mend_agent::Trajectory::load(&traj_path).unwrap();
    assert!(recorded.prompt_budget.is_some());
    let mut replayer = agent(replay.clone());
    // As `mend fix --replay` does: the recorded budget, whatever window the replay reports.
    replayer.config.prompt_budget = recorded.prompt_budget;
    let again = run(&replayer, sandbox(dir2.path(), &base2), None).await;
    assert_eq!(again.exit, out.exit);
    assert_eq!(replay.remaining(), 0);
    // The same condensation (token counts differ by the temporary directory's name).
    let (x, y) = (
        &again.trajectory.condensations,
        &out.trajectory.condensations,
    );
    assert_eq!(x.len(), 1);
    assert_eq!(
        (&x[0].stage, &x[0].summary, x[0].summarised),
        (&y[0].stage, &y[0].summary, y[0].summarised)
    );
    assert_eq!(again.patch, out.patch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_summary_call_overflows_too_mend_summarises_mechanically() {
    let (dir, base) = repo();
    let server = TestServer::start(vec![
        thinking_call(600, "view", json!({"path": "geo.py"})),
        thinking_call(600, "bash", json!({"command": "echo one"})),
        thinking_call(600, "bash", json!({"command": "echo two"})),
        thinking_call(600, "bash", json!({"command": "echo three"})),
        overflow(),
        overflow(),
        call("submit", json!({"summary": "gave up"})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    let c = &out.trajectory.condensations;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].stage, "mechanical");
    let last = body(&server, 6)["messages"].to_string();
    assert!(last.contains("mend wrote this summary itself"), "{last}");
    assert!(last.contains("bash command=echo one"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_with_nothing_left_to_condense_ends_the_run_clearly() {
    let (dir, base) = repo();
    let server = TestServer::start(vec![overflow(), overflow()]).await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    match &out.exit {
        ExitStatus::ModelError(m) => {
            assert!(m.contains("cannot be shortened further"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 1, "no retry of the same request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_observations_are_masked_in_chunks_so_the_prefix_stays_put() {
    let (dir, base) = repo();
    let big = |i: usize| call("bash", json!({"command": format!("seq {i} 400")}));
    let mut script: Vec<Reply> = (1..=14).map(big).collect();
    script.push(call("submit", json!({})));
    let server = TestServer::start(script).await;
    // A window where a handful of these observations pass the budget.
    let a = agent(model(&server, ToolMode::Native, 9_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    let c = &out.trajectory.condensations;
    assert!(
        !c.is_empty()
            && c.iter()
                .all(|c| c.stage == "masked" && c.trigger == "budget"),
        "{c:?}"
    );
    // Between two maskings the requests only grow: each one starts with the one before.
    let reqs: Vec<Vec<Value>> = server
        .requests()
        .iter()
        .map(|r| r.json()["messages"].as_array().unwrap().clone())
        .collect();
    let changed_prefix = reqs
        .windows(2)
        .filter(|w| w[1].len() < w[0].len() || w[1][..w[0].len()] != w[0][..])
        .count();
    assert_eq!(
        changed_prefix,
        c.len(),
        "the prefix changed only at a masking"
    );
    assert!(
        c.len() <= 3,
        "masking happened in chunks, not every few steps: {}",
        c.len()
    );
    // The budget leaves room for the reply and the tools: no request passed it.
    let budget = a.prompt_budget(&Toolbox::specs(&a.prompts));
    assert!(budget < 9_000 - 512, "{budget}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_garbage_replies_are_asked_again_but_never_kept() {
    let (dir, base) = repo();
    let server = TestServer::start(vec![
        Reply::message(json!({"role": "assistant", "content": ""}), "stop"),
        Reply::text("I think the bug is in geo.py."),
        call("view", json!({"path": "geo.py"})),
        call("submit", json!({})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    for i in 0..4 {
        let msgs = body(&server, i)["messages"].as_array().unwrap().clone();
        for m in &msgs {
            if m["role"] == "assistant" {
                let content = m["content"].as_str().unwrap_or("");
                assert!(
                    !content.trim().is_empty() || m.get("tool_calls").is_some(),
                    "request {i} holds an empty assistant message: {m}"
                );
                assert!(
                    !content.contains("the bug is in geo.py"),
                    "garbage kept in request {i}"
                );
            }
        }
    }
    // The retries carry a note (in the last user message, not a new turn); once a good
    // reply comes, the note is gone.
    let second = body(&server, 1)["messages"].as_array().unwrap().clone();
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(
        second[1]["content"]
            .as_str()
            .unwrap()
            .contains("reply was empty")
    );
    let third = body(&server, 2)["messages"].to_string();
    assert!(
        third.contains("began: \\\"I think the bug is in geo.py.\\\""),
        "{third}"
    );
    let fourth = body(&server, 3)["messages"].to_string();
    assert!(
        !fourth.contains("could not be run") && !fourth.contains("no tool call"),
        "{fourth}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_count_as_bad_replies_and_stop_the_run() {
    let (dir, base) = repo();
    let server = TestServer::start(vec![
        call("frobnicate", json!({"x": 1})),
        call("view", json!({"path": "geo.py"})),
        call("frobnicate", json!({"x": 2})),
        call("open_sesame", json!({})),
        call("frobnicate", json!({"x": 3})),
        call("view", json!({"path": "never"})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    match &out.exit {
        ExitStatus::ModelError(m) => {
            assert!(m.contains("3 replies in a row had no usable action"), "{m}");
            assert!(m.contains("no tool named `frobnicate`"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        5,
        "a good reply reset the counter once"
    );
    let last = body(&server, 4)["messages"].to_string();
    assert!(
        !last.contains("open_sesame\",\"arguments"),
        "unknown calls are not kept: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swe_agent_and_openhands_tool_names_run_as_mends_tools() {
    let (dir, base) = repo();
    let server = TestServer::start(vec![
        call("str_replace_editor", json!({"command": "view", "path": "geo.py", "view_range": [1, -1]})),
        call("execute_bash", json!({"command": "echo from-execute-bash"})),
        call("think", json!({"thought": "the area needs r squared"})),
        call("search_dir", json!({"search_term": "3.14 * r", "dir": "."})),
        call("open", json!({"path": "notes.txt", "line_number": 40})),
        call("goto", json!({"line_number": 5})),
        call("find_file", json!({"file_name": "geo.py"})),
        call("str_replace_editor", json!({"command": "str_replace", "path": "geo.py", "old_str": "3.14 * r", "new_str": "3.14 * r * r"})),
        call("str_replace_editor", json!({"command": "create", "path": "circle.py", "file_text": "from geo import area\n"})),
        call("finish", json!({"message": "fixed"})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    let obs: Vec<String> = out
        .trajectory
        .steps
        .iter()
        .flat_map(|s| s.actions.iter().map(|a| a.observation.clone()))
        .collect();
    assert!(obs[0].contains("     2\t    return 3.14 * r"), "{}", obs[0]);
    assert!(obs[1].contains("from-execute-bash"), "{}", obs[1]);
    assert!(obs[2].contains("thought is noted"), "{}", obs[2]);
    assert!(obs[3].contains("geo.py:2:"), "{}", obs[3]);
    assert!(
        obs[4].contains("    40\tline 40") && obs[4].contains("notes.txt"),
        "{}",
        obs[4]
    );
    assert!(obs[5].contains("     5\tline 5"), "{}", obs[5]);
    assert!(obs[6].contains("./geo.py"), "{}", obs[6]);
    assert!(
        out.patch.contains("+    return 3.14 * r * r"),
        "{}",
        out.patch
    );
    assert!(out.patch.contains("circle.py"), "{}", out.patch);
    assert_eq!(server.requests().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mode_edits_carry_multi_line_code() {
    let (dir, base) = repo();
    let fn_block = "The function must square r.\n<function=edit>\n<parameter=mode>replace</parameter>\n<parameter=path>geo.py</parameter>\n<parameter=old_text>\ndef area(r):\n    return 3.14 * r\n</parameter>\n<parameter=new_text>\ndef area(r):\n    \"\"\"Area of a circle: {pi r^2}.\"\"\"\n    return 3.14 * r * r\n</parameter>\n</function>";
    let raw_json = "Now a helper.\n```action\n{\"tool\": \"edit\", \"mode\": \"create\", \"path\": \"util.py\", \"new_text\": \"def twice(x):\n\treturn 2 * x\n\"}\n```";
    let server = TestServer::start(vec![
        Reply::text(fn_block),
        Reply::text(raw_json),
        Reply::action("done", "submit", json!({})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Text, 100_000));
    let sb = sandbox(dir.path(), &base);
    let out = run(&a, sb.clone(), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    let geo = String::from_utf8(sb.read_file("geo.py").await.unwrap()).unwrap();
    assert_eq!(
        geo,
        "def area(r):\n    \"\"\"Area of a circle: {pi r^2}.\"\"\"\n    return 3.14 * r * r\n"
    );
    let util = String::from_utf8(sb.read_file("util.py").await.unwrap()).unwrap();
    assert_eq!(util, "def twice(x):\n\treturn 2 * x\n");
    // The system prompt teaches the function format; the model's own block goes back to it
    // once (not with a JSON copy appended).
    let req = body(&server, 1);
    assert!(
        req["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("<function=edit>")
    );
    let assistant = req["messages"][2]["content"].as_str().unwrap();
    assert_eq!(assistant.matches("<function=edit>").count(), 1);
    assert!(!assistant.contains("```action"), "{assistant}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_actions_are_nudged_once_then_stopped() {
    let (dir, base) = repo();
    let a_call = || call("view", json!({"path": "geo.py"}));
    let b_call = || call("view", json!({"path": "notes.txt", "start": 1, "end": 2}));
    let mut script = vec![];
    for _ in 0..5 {
        script.push(a_call());
        script.push(b_call());
    }
    let server = TestServer::start(script).await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert_eq!(out.exit, ExitStatus::LoopDetected);
    let obs: Vec<String> = out
        .trajectory
        .steps
        .iter()
        .flat_map(|s| s.actions.iter().map(|a| a.observation.clone()))
        .collect();
    let nudges: Vec<usize> = obs
        .iter()
        .enumerate()
        .filter(|(_, o)| o.contains("alternating between the same two calls"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(nudges, vec![5], "nudged once, at the sixth call");
    assert_eq!(server.requests().len(), 8, "stopped at the eighth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_command_timing_out_again_is_nudged_then_stopped() {
    let (dir, base) = repo();
    // The output differs each time (a timestamp), so it is never an exact repeat.
    let slow = || {
        call(
            "bash",
            json!({"command": "date +%s%N; sleep 30", "timeout": 1}),
        )
    };
    let server = TestServer::start(vec![
        slow(),
        call("view", json!({"path": "geo.py"})),
        slow(),
        slow(),
        call("submit", json!({})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Native, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert_eq!(out.exit, ExitStatus::LoopDetected);
    let obs: Vec<String> = out
        .trajectory
        .steps
        .iter()
        .flat_map(|s| s.actions.iter().map(|a| a.observation.clone()))
        .collect();
    assert!(obs[0].starts_with("[timed out"), "{}", obs[0]);
    assert!(
        !obs[0].contains("timed out 2 times") && obs[2].contains("has now timed out 2 times"),
        "{obs:?}"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_arguments_no_tool_can_take_are_answered_never_panic() {
    let (dir, base) = repo();
    let mut tools = Toolbox::new(sandbox(dir.path(), &base), None, None);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "view",
            json!({"path": "notes.txt", "start": 10, "end": 3}),
            "start=10 is after end=3",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": 30, "end": 1}),
            "start=30 is after end=1",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": -4}),
            "start=-4 is negative",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": u64::MAX}),
            "is past the end",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": 9_223_372_036_854_775_807i64, "end": 9_223_372_036_854_775_807i64}),
            "is past the end",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": "7", "end": "8"}),
            "     8\tline 8",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": 49.0, "end": -1}),
            "    50\tline 50",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": 1.5}),
            "must be a whole number",
        ),
        (
            "view",
            json!({"path": "notes.txt", "start": [1]}),
            "must be a whole number, not an array",
        ),
        ("view", json!({"path": 7}), "view needs a `path`"),
        ("view", json!({}), "view needs a `path`"),
        ("view", json!({"path": "a\u{0}b"}), "NUL byte"),
        ("view", json!({"path": "\u{fffd}\u{7}/x"}), "does not exist"),
        ("view", json!({"path": "../../etc/passwd"}), ""),
        ("view", json!(["notes.txt"]), "must be one JSON object"),
        ("bash", json!({"command": "echo hi", "timeout": -5}), "hi"),
        (
            "bash",
            json!({"command": "echo hi", "timeout": "soon"}),
            "must be a whole number",
        ),
        ("bash", json!({"command": ["ls"]}), "bash needs a `command`"),
        ("bash", json!({"command": "echo \u{0}"}), "NUL byte"),
        (
            "edit",
            json!({"mode": "insert", "path": "geo.py", "line": -1, "new_text": "x"}),
            "must be 0 or more",
        ),
        (
            "edit",
            json!({"mode": "insert", "path": "geo.py", "line": u64::MAX, "new_text": "# x"}),
            "past the end",
        ),
        (
            "edit",
            json!({"mode": "replace", "path": "geo.py", "old_text": 3, "new_text": "y"}),
            "replace needs",
        ),
        (
            "edit",
            json!({"mode": "teleport", "path": "geo.py"}),
            "edit needs `mode`",
        ),
        ("search", json!({"pattern": "(unclosed"}), "search failed"),
        ("search", json!({"pattern": 12}), "search needs"),
        (
            "str_replace_editor",
            json!({"command": "explode", "path": "geo.py"}),
            "needs `command`",
        ),
        (
            "str_replace_editor",
            json!({"path": "geo.py"}),
            "needs `command`",
        ),
        (
            "goto",
            json!({"line_number": "x"}),
            "must be a whole number",
        ),
        ("find_file", json!({}), "needs `file_name`"),
        ("run_tests", json!({"target": 5}), "no test command"),
        ("no_such_tool", json!({}), "unknown tool `no_such_tool`"),
    ];
    let long_path = "d/".repeat(3_000);
    let long_command = format!("echo {}", "x".repeat(200_000));
    let long_text = "# a comment\n".repeat(20_000);
    let more: Vec<(&str, Value, &str)> = vec![
        ("view", json!({"path": long_path}), "paths are at most 4096"),
        (
            "bash",
            json!({"command": long_command}),
            "more than a command line can take",
        ),
        (
            "search",
            json!({"pattern": "y".repeat(150_000)}),
            "more than a command line can take",
        ),
        (
            "edit",
            json!({"mode": "create", "path": "big.py", "new_text": long_text}),
            "created big.py",
        ),
    ];
    for (name, args, want) in cases.into_iter().chain(more) {
        let got = match tools.run(name, &args).await {
            Ok(ToolResult::Observation(o)) => o,
            other => panic!("{name} {args}: {other:?}"),
        };
        assert!(got.contains(want), "{name} {args}: {got}");
    }
    assert_eq!(
        String::from_utf8(tools.sandbox().read_file("geo.py").await.unwrap()).unwrap(),
        BUGGY,
        "no bad argument changed a file"
    );
    // Long file contents are not arguments of a command line: they are written whole.
    assert_eq!(
        tools.sandbox().read_file("big.py").await.unwrap().len(),
        "# a comment\n".len() * 20_000
    );
}

#[tokio::test]
async fn an_issue_too_big_for_the_window_is_refused_with_the_sizes() {
    let server = TestServer::start(vec![]).await;
    let a = agent(model(&server, ToolMode::Native, 8_192));
    let huge = TaskInput {
        issue: "Traceback line that repeats\n".repeat(200_000),
        ..TaskInput::default()
    };
    let e = a.check_fits(&huge).unwrap_err();
    assert!(e.contains("does not fit the model's context window"), "{e}");
    assert!(
        e.contains("5600000 bytes") && e.contains("window of 8192 tokens"),
        "{e}"
    );
    let fine = TaskInput {
        issue: "a small issue".into(),
        ..TaskInput::default()
    };
    assert_eq!(a.check_fits(&fine), Ok(()));
    assert!(server.requests().is_empty(), "no model call to check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2048_token_window_in_text_mode_gets_the_short_prompt_and_condenses() {
    let (dir, base) = repo();
    let seq =
        |n: usize| Reply::action("Looking.", "bash", json!({"command": format!("seq 1 {n}")}));
    let server = TestServer::start(vec![
        seq(150),
        seq(160),
        seq(170),
        seq(180),
        Reply::action("Done.", "submit", json!({})),
    ])
    .await;
    let a = agent(model(&server, ToolMode::Text, 2048));
    let task = TaskInput {
        issue: "area() of a circle is wrong: it must be pi r squared.".into(),
        ..TaskInput::default()
    };
    assert_eq!(a.check_fits(&task), Ok(()));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    let system = body(&server, 0)["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("Tools (arguments; ? = optional)"),
        "{system}"
    );
    assert!(
        system.contains("- edit(line?, mode, new_text?, old_text?, path)"),
        "{system}"
    );
    assert!(!system.contains("JSON schema"), "{system}");
    assert!(!out.trajectory.condensations.is_empty());
    let budget = out.trajectory.prompt_budget.unwrap();
    assert!(budget < 2048 - 512, "{budget}");
}

/// Text mode, told nothing of the real window: the very first request (the full
/// instructions with every tool's schema, and the issue) overflows, and there is no history
/// to condense. The short instructions replace the full ones and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_request_that_overflows_gets_the_short_instructions() {
    let (dir, base) = repo();
    let server =
        TestServer::start(vec![overflow(), Reply::action("done", "submit", json!({}))]).await;
    let a = agent(model(&server, ToolMode::Text, 100_000));
    let out = run(&a, sandbox(dir.path(), &base), None).await;
    assert!(
        matches!(out.exit, ExitStatus::Submitted { .. }),
        "{:?}",
        out.exit
    );
    let c = &out.trajectory.condensations;
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].stage, "compact instructions");
    assert!(c[0].trigger.starts_with("overflow"), "{c:?}");
    assert!(c[0].tokens_after < c[0].tokens_before, "{c:?}");
    let system = |i: usize| {
        server.requests()[i].json()["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .len()
    };
    assert_eq!(server.requests().len(), 2);
    assert!(system(1) < system(0), "{} vs {}", system(1), system(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_pack_too_big_for_the_window_is_left_out_before_the_other_hints() {
    let (dir, base) = repo();
    let hints = |pack: &str| TaskInput {
        issue: "area() of a circle is wrong: it must be pi r squared.".into(),
        localized: vec![mend_agent::Localized {
            path: "geo.py".into(),
            why: "defines `area`".into(),
        }],
        code_pack: Some(pack.to_string()),
        ..TaskInput::default()
    };
    let first_user = |server: &TestServer| {
        body(server, 0)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap()
            .to_string()
    };
    // A pack that fits: the model sees the code and the ranked files.
    let server = TestServer::start(vec![call("submit", json!({}))]).await;
    let a = agent(model(&server, ToolMode::Native, 32_000));
    let small = "geo.py:1-2\ndef area(r):\n    return 3.14 * r\n";
    run_task(&a, sandbox(dir.path(), &base), hints(small)).await;
    let user = first_user(&server);
    assert!(user.contains("Code of the best-ranked functions"), "{user}");
    assert!(user.contains(small) && user.contains("- geo.py"), "{user}");
    // A pack that would take most of the window: left out, the ranked files stay.
    let server = TestServer::start(vec![call("submit", json!({}))]).await;
    let a = agent(model(&server, ToolMode::Native, 32_000));
    let huge = "x = 1\n".repeat(40_000);
    run_task(&a, sandbox(dir.path(), &base), hints(&huge)).await;
    let user = first_user(&server);
    assert!(
        !user.contains("Code of the best-ranked functions"),
        "{user}"
    );
    assert!(user.contains("- geo.py — defines `area`"), "{user}");
}

async fn run_task(agent: &Agent, sb: Arc<dyn Sandbox>, task: TaskInput) -> RunOutput {
    let (_tx, stop) = watch::channel(false);
    let tools = Toolbox::new(sb, None, None);
    let writer = TrajectoryWriter::new(None);
    agent.run(tools, task, &writer, stop, &|_| {}).await
}
