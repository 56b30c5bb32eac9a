//! The loop: prompt, call the model, run its tool calls, feed back observations; on submit
//! run the tests and give failures back for a bounded number of repair rounds.
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::prompts::Prompts;
use crate::tools::{ToolResult, Toolbox};
use crate::trajectory::{
    Action, ExitStatus, Step, TestsOutcome, Totals, Trajectory, TrajectoryWriter,
};
use mend_llm::{
    Completion, ExchangeCompactor, Message, Model, ModelError, Problem, ToolCall, ToolDef, ToolMode,
};

/// Limits and switches of one run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub max_steps: usize,
    pub max_wall: Duration,
    /// Times failing tests after `submit` go back to the model.
    pub repair_rounds: usize,
    /// Fraction of the context window at which old observations are elided.
    pub elide_at: f64,
    /// Replies in a row that carry no usable action before the run stops.
    pub max_garbage_in_a_row: usize,
    /// Keep new files named like scratch (reproduction scripts) in the patch even when
    /// nothing refers to them.
    pub keep_scratch_files: bool,
    /// Run the test command when the model submits (off for suites too big to run whole,
    /// where the model runs the tests it needs with `run_tests`).
    pub test_on_submit: bool,
    pub network: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_steps: 60,
            max_wall: Duration::from_secs(45 * 60),
            repair_rounds: 2,
            elide_at: 0.8,
            max_garbage_in_a_row: 3,
            keep_scratch_files: false,
            test_on_submit: true,
            network: false,
        }
    }
}

/// What the agent is given to start with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskInput {
    pub issue: String,
    pub base_commit: Option<String>,
    /// Top-level listing of the repository.
    pub layout: Option<String>,
    /// Likely relevant files from the index, with why.
    pub localized: Vec<Localized>,
    pub repo_map: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Localized {
    pub path: String,
    pub why: String,
}

/// Progress for displays.
#[derive(Debug, Clone)]
pub enum Event {
    Step {
        index: usize,
        tool: String,
        detail: String,
        tokens_in: u64,
        tokens_out: u64,
        cost_usd: f64,
    },
    /// What the model said before its tool calls (its reasoning), when it said something.
    Thought {
        index: usize,
        text: String,
    },
    Tests {
        passed: bool,
        status: String,
    },
    Finished {
        status: ExitStatus,
    },
}

pub struct RunOutput {
    pub patch: String,
    /// New files in the sandbox that the patch leaves out (scratch), for the user to see.
    pub left_out: Vec<crate::scratch::LeftOut>,
    pub exit: ExitStatus,
    pub trajectory: Trajectory,
}

pub struct Agent {
    pub model: Arc<dyn Model>,
    pub prompts: Prompts,
    pub config: AgentConfig,
}

impl Agent {
    /// Run the loop to the end. The trajectory is written after every step; `stop` turning
    /// true (Ctrl-C) ends the run at the next await point with status `interrupted`.
    pub async fn run(
        &self,
        mut tools: Toolbox,
        task: TaskInput,
        writer: &TrajectoryWriter,
        mut stop: watch::Receiver<bool>,
        on_event: &(dyn Fn(Event) + Send + Sync),
    ) -> RunOutput {
        let started = Instant::now();
        let specs = Toolbox::specs(&self.prompts);
        let test_command = tools.detect_test_command().await;
        let text_actions = self.model.tool_mode() == ToolMode::Text;
        let root = tools.sandbox().root().to_string();
        let mut conv = Vec::new();
        let system = self.prompts.render(
            "system.md.j2",
            json!({"root": root, "network": self.config.network, "text_actions": text_actions, "tools": specs}),
        );
        let instance = self.prompts.render(
            "instance.md.j2",
            json!({"issue": task.issue, "root": root, "base_commit": task.base_commit, "layout": task.layout,
                   "localized": task.localized, "repo_map": task.repo_map, "test_command": test_command}),
        );
        let mut traj = Trajectory {
            mend_version: env!("CARGO_PKG_VERSION").into(),
            model: self.model.name(),
            issue: task.issue.clone(),
            base_commit: task.base_commit.clone(),
            templates: self.prompts.versions(),
            tools: specs.clone(),
            prompt: vec![],
            steps: vec![],
            test_runs: vec![],
            totals: Totals::default(),
            exit_status: None,
            patch: None,
            left_out: vec![],
            started_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let exit = match (system, instance) {
            (Ok(s), Ok(i)) => {
                conv.push(Message::System { content: s });
                conv.push(Message::User { content: i });
                traj.prompt = conv
                    .iter()
                    .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                    .collect();
                self.drive(
                    &mut tools, &mut conv, &specs, &mut traj, writer, &mut stop, on_event, started,
                )
                .await
            }
            (Err(e), _) | (_, Err(e)) => ExitStatus::ModelError(format!("prompt: {e}")),
        };
        // The patch is whatever the sandbox holds, whatever way the run ended.
        let (patch, left_out) =
            crate::scratch::final_patch(tools.sandbox().as_ref(), self.config.keep_scratch_files)
                .await;
        traj.left_out = left_out.clone();
        traj.totals.wall_ms = started.elapsed().as_millis() as u64;
        traj.exit_status = Some(exit.clone());
        traj.patch = Some(patch.clone());
        if let Err(e) = writer.write(&traj) {
            tracing::warn!(error = %e, "could not write the trajectory");
        }
        on_event(Event::Finished {
            status: exit.clone(),
        });
        RunOutput {
            patch,
            left_out,
            exit,
            trajectory: traj,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        tools: &mut Toolbox,
        conv: &mut Vec<Message>,
        specs: &[ToolDef],
        traj: &mut Trajectory,
        writer: &TrajectoryWriter,
        stop: &mut watch::Receiver<bool>,
        on_event: &(dyn Fn(Event) + Send + Sync),
        started: Instant,
    ) -> ExitStatus {
        let mut repairs_left = self.config.repair_rounds;
        let mut garbage = 0usize;
        // Each step's request repeats the conversation so far; store only what is new.
        let mut exchanges = ExchangeCompactor::new();
        let mut last_sig: Option<String> = None;
        let mut repeats = 0usize;
        for index in 1..=self.config.max_steps {
            if *stop.borrow() {
                return ExitStatus::Interrupted;
            }
            if started.elapsed() > self.config.max_wall {
                return ExitStatus::LimitReached(format!(
                    "wall time {}s",
                    self.config.max_wall.as_secs()
                ));
            }
            self.fit_context(conv);
            let t0 = Instant::now();
            let turn = tokio::select! {
                t = self.model.complete(conv, specs) => t,
                _ = stop.changed() => return ExitStatus::Interrupted,
            };
            let turn = match turn {
                Ok(t) => t,
                Err(e @ ModelError::Budget(_)) => return ExitStatus::LimitReached(e.to_string()),
                Err(e @ ModelError::GaveUp { .. }) => {
                    return ExitStatus::ModelUnavailable(e.to_string());
                }
                Err(e) => return ExitStatus::ModelError(e.to_string()),
            };
            let problem = problems_to_tell(&turn);
            let model_ms = t0.elapsed().as_millis() as u64;
            traj.totals.model_calls += 1;
            traj.totals.tokens_in += turn.usage.tokens_in;
            traj.totals.tokens_out += turn.usage.tokens_out;
            traj.totals.cost_usd += turn.cost.usd;
            traj.totals.steps = index;
            conv.push(turn.message());
            if !turn.content.trim().is_empty() {
                on_event(Event::Thought {
                    index,
                    text: turn.content.trim().to_string(),
                });
            }
            let mut step = Step {
                index,
                assistant: json!({"content": turn.content, "tool_calls": turn.tool_calls}),
                actions: vec![],
                tokens_in: turn.usage.tokens_in,
                tokens_out: turn.usage.tokens_out,
                cost_usd: turn.cost.usd,
                model_ms,
                tools_ms: 0,
                raw: (!turn.raw.is_null()).then(|| exchanges.compact(&turn.raw)),
            };
            let t1 = Instant::now();
            let mut outcome: Option<ExitStatus> = None;

            // A reply with nothing to run: tell the model, and count it.
            if turn.tool_calls.is_empty() {
                garbage += 1;
                let problem = problem
                    .clone()
                    .unwrap_or_else(|| "your reply had no tool call".into());
                let text = self.format_error(&problem);
                conv.push(Message::User {
                    content: text.clone(),
                });
                step.actions.push(Action {
                    tool: "(none)".into(),
                    arguments: Value::Null,
                    observation: text,
                });
                if garbage >= self.config.max_garbage_in_a_row {
                    outcome = Some(ExitStatus::ModelError(format!(
                        "{garbage} replies in a row had no usable action (last: {problem})"
                    )));
                }
            } else {
                garbage = 0;
            }

            for call in &turn.tool_calls {
                if outcome.is_some() {
                    // Still answer every call id so the conversation stays well formed.
                    conv.push(Message::Tool {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        content: "not run: the run is ending".into(),
                    });
                    continue;
                }
                let (observation, finished) = self
                    .run_call(tools, call, &mut repairs_left, traj, on_event)
                    .await;
                let observation = match observation {
                    Ok(o) => o,
                    Err(e) => {
                        outcome = Some(ExitStatus::SandboxError(e));
                        String::from("the sandbox failed")
                    }
                };
                // Loop detection: the same call with the same answer, again and again.
                let sig = format!(
                    "{}|{}|{}",
                    call.name,
                    canonical(&call.arguments),
                    observation
                );
                if last_sig.as_deref() == Some(sig.as_str()) {
                    repeats += 1;
                } else {
                    repeats = 1;
                    last_sig = Some(sig);
                }
                let mut observation = observation;
                if repeats == 3 {
                    observation.push_str("\n\n");
                    observation.push_str(
                        &self
                            .prompts
                            .render("loop_nudge.md.j2", json!({"times": repeats}))
                            .unwrap_or_default(),
                    );
                } else if repeats > 3 && outcome.is_none() {
                    outcome = Some(ExitStatus::LoopDetected);
                }
                if let Some(status) = finished {
                    outcome.get_or_insert(status);
                }
                on_event(Event::Step {
                    index,
                    tool: call.name.clone(),
                    detail: summarize_args(&call.arguments),
                    tokens_in: traj.totals.tokens_in,
                    tokens_out: traj.totals.tokens_out,
                    cost_usd: traj.totals.cost_usd,
                });
                step.actions.push(Action {
                    tool: call.name.clone(),
                    arguments: call.arguments.clone().unwrap_or_else(Value::String),
                    observation: observation.clone(),
                });
                conv.push(Message::Tool {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: observation,
                });
            }
            if let Some(problem) = problem.as_ref().filter(|_| !turn.tool_calls.is_empty()) {
                conv.push(Message::User {
                    content: self.format_error(problem),
                });
            }
            step.tools_ms = t1.elapsed().as_millis() as u64;
            traj.steps.push(step);
            traj.totals.wall_ms = started.elapsed().as_millis() as u64;
            if let Err(e) = writer.write(traj) {
                tracing::warn!(error = %e, "could not write the trajectory");
            }
            if let Some(status) = outcome {
                return status;
            }
        }
        ExitStatus::LimitReached(format!("{} steps", self.config.max_steps))
    }

    /// Run one call. Returns the observation and, for `submit`, how the run ends (or
    /// `None` when failing tests go back to the model).
    async fn run_call(
        &self,
        tools: &mut Toolbox,
        call: &ToolCall,
        repairs_left: &mut usize,
        traj: &mut Trajectory,
        on_event: &(dyn Fn(Event) + Send + Sync),
    ) -> (Result<String, String>, Option<ExitStatus>) {
        let args = match &call.arguments {
            Ok(v) => v.clone(),
            Err(raw) => {
                let shown: String = raw.chars().take(300).collect();
                return (
                    Ok(format!(
                        "the arguments of `{}` are not valid JSON: {shown}",
                        call.name
                    )),
                    None,
                );
            }
        };
        match tools.run(&call.name, &args).await {
            Ok(ToolResult::Observation(o)) => (Ok(o), None),
            Ok(ToolResult::Submit { summary }) => {
                if !self.config.test_on_submit {
                    return (
                        Ok(format!("submitted: {summary}")),
                        Some(ExitStatus::Submitted {
                            tests: TestsOutcome::NotRun,
                        }),
                    );
                }
                let run =
                    match crate::scratch::test_delivered(tools, self.config.keep_scratch_files)
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => return (Err(e.to_string()), None),
                    };
                traj.test_runs.push(run.clone());
                on_event(Event::Tests {
                    passed: run.passed,
                    status: run.status.clone(),
                });
                if run.command.is_empty() {
                    return (
                        Ok(format!("submitted: {summary}")),
                        Some(ExitStatus::Submitted {
                            tests: TestsOutcome::NotRun,
                        }),
                    );
                }
                if run.passed {
                    return (
                        Ok(format!("submitted; the tests pass ({})", run.command)),
                        Some(ExitStatus::Submitted {
                            tests: TestsOutcome::Passed,
                        }),
                    );
                }
                let rounds_left = *repairs_left;
                let feedback = self
                    .prompts
                    .render("test_feedback.md.j2", json!({"command": run.command, "status": run.status, "condensed": run.condensed, "rounds_left": rounds_left}))
                    .unwrap_or_else(|e| format!("tests failed ({}); {e}", run.status));
                if rounds_left == 0 {
                    return (
                        Ok(feedback),
                        Some(ExitStatus::Submitted {
                            tests: TestsOutcome::Failed,
                        }),
                    );
                }
                *repairs_left -= 1;
                (Ok(feedback), None)
            }
            Err(e) => (Err(e.to_string()), None),
        }
    }

    fn format_error(&self, problem: &str) -> String {
        if self.model.tool_mode() == ToolMode::Text {
            self.prompts
                .render("format_error.md.j2", json!({"problem": problem}))
                .unwrap_or_else(|_| problem.to_string())
        } else {
            format!("{problem}. Call one of the tools (or `submit` when you are done).")
        }
    }

    /// Keep the conversation inside the context window: elide the oldest observations
    /// first, never the system prompt, the issue, the last exchanges or the latest edits.
    fn fit_context(&self, conv: &mut [Message]) {
        let budget = (self.model.context_window() as f64 * self.config.elide_at) as usize;
        if self.model.count_tokens(conv) <= budget {
            return;
        }
        const KEEP_LAST: usize = 6;
        let n = conv.len();
        let last_edits: BTreeSet<usize> = conv
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m, Message::Tool { name, .. } if name == "edit"))
            .map(|(i, _)| i)
            .rev()
            .take(3)
            .collect();
        for i in 2..n.saturating_sub(KEEP_LAST) {
            if last_edits.contains(&i) {
                continue;
            }
            if let Message::Tool { content, .. } = &mut conv[i]
                && content.len() > 200
                && !content.starts_with("[elided")
            {
                let lines = content.lines().count();
                *content = format!("[elided to save context: an observation of {lines} lines]");
                if self.model.count_tokens(conv) <= budget {
                    return;
                }
            }
        }
    }
}

/// The problems of a reply to tell the model about. A bad call (unknown tool, arguments
/// that are not JSON) is already answered by that call's own observation.
fn problems_to_tell(turn: &Completion) -> Option<String> {
    let rest: Vec<String> = turn
        .problems
        .iter()
        .filter(|p| {
            turn.tool_calls.is_empty()
                || !matches!(
                    p,
                    Problem::UnknownTool { .. } | Problem::InvalidArguments { .. }
                )
        })
        .map(|p| p.to_string())
        .collect();
    (!rest.is_empty()).then(|| rest.join("\n"))
}

fn canonical(args: &Result<Value, String>) -> String {
    match args {
        Ok(v) => v.to_string(),
        Err(s) => s.clone(),
    }
}

fn summarize_args(args: &Result<Value, String>) -> String {
    let Ok(Value::Object(map)) = args else {
        return String::new();
    };
    let pick = ["command", "path", "pattern", "symbol", "mode", "target"];
    let parts: Vec<String> = pick
        .iter()
        .filter_map(|k| {
            map.get(*k).and_then(Value::as_str).map(|v| {
                format!(
                    "{k}={}",
                    v.lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(60)
                        .collect::<String>()
                )
            })
        })
        .collect();
    parts.join(" ")
}
