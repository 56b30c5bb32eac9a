//! The loop: prompt, call the model, run its tool calls, feed back observations; on submit
//! run the tests and give failures back for a bounded number of repair rounds.
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::condense::clip;
use crate::prompts::Prompts;
use crate::scratch::drop_build_junk;
use crate::submit::SubmitState;
use crate::tools::{ToolResult, Toolbox};
use crate::trajectory::{
    Action, CallKind, Condensation, ExitStatus, Step, Totals, Trajectory, TrajectoryWriter,
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
    /// When the prompt passes its budget, every observation older than the last this many
    /// is elided at once (so the prompt's prefix then stays the same for several steps).
    pub keep_recent_observations: usize,
    /// The prompt budget in tokens, instead of the one computed from the model (a replay
    /// takes the recorded run's, so it condenses where the run did).
    pub prompt_budget: Option<usize>,
    /// A replay condenses exactly where and how the recorded run did, whatever its own
    /// token estimates say (the live model's were corrected by what its server reported).
    pub replay_condensations: Option<Vec<Condensation>>,
    /// Replies in a row that carry no usable action before the run stops.
    pub max_garbage_in_a_row: usize,
    /// Keep new files named like scratch (reproduction scripts) in the patch even when
    /// nothing refers to them.
    pub keep_scratch_files: bool,
    /// Run the test command when the model submits (off for suites too big to run whole,
    /// where the model runs the tests it needs with `run_tests`).
    pub test_on_submit: bool,
    pub network: bool,
    /// mend's own checks at `submit` (reproduction, regression guard, review); `None`: off.
    pub verify: Option<crate::verify::VerifyConfig>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_steps: 60,
            max_wall: Duration::from_secs(45 * 60),
            repair_rounds: 2,
            keep_recent_observations: 4,
            prompt_budget: None,
            replay_condensations: None,
            max_garbage_in_a_row: 3,
            keep_scratch_files: false,
            test_on_submit: true,
            network: false,
            verify: None,
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
    /// The best-ranked functions' code (the index's context pack).
    pub code_pack: Option<String>,
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
    /// The conversation was shortened to fit the context window.
    Condensed {
        index: usize,
        /// `masked`, `summarised` or `mechanical`.
        stage: String,
        tokens_before: usize,
        tokens_after: usize,
    },
    /// mend's own checks at a `submit`: what they found, in one line.
    Checked {
        summary: String,
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
        let root = tools.sandbox().root().to_string();
        let mut conv = Vec::new();
        // Without the index's code, then without all its hints, when they would leave too
        // little room for the work.
        let without_code = TaskInput {
            code_pack: None,
            ..task.clone()
        };
        let bare = TaskInput {
            issue: task.issue.clone(),
            base_commit: task.base_commit.clone(),
            ..TaskInput::default()
        };
        let mut first = self.first_prompt(&specs, &task, &root, test_command.as_deref());
        for (smaller, what) in [(&without_code, "code"), (&bare, "hints")] {
            let Ok((s, i)) = &first else { break };
            let need = self
                .model
                .count_tokens(&[Message::system(s.clone()), Message::user(i.clone())]);
            if need <= self.prompt_budget(&specs) / 2 {
                break;
            }
            tracing::info!(
                tokens = need,
                "the first prompt is large: leaving out the index's {what}"
            );
            first = self.first_prompt(&specs, smaller, &root, test_command.as_deref());
        }
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
            condensations: vec![],
            prompt_budget: Some(self.prompt_budget(&specs)),
            totals: Totals::default(),
            exit_status: None,
            patch: None,
            left_out: vec![],
            verification: crate::submit::new_verification(self.config.verify.as_ref()),
            started_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            selection: None,
        };
        let mut state = SubmitState::new(self.config.repair_rounds);
        let exit = match first {
            Ok((s, i)) => {
                conv.push(Message::System { content: s });
                conv.push(Message::User { content: i });
                traj.prompt = conv
                    .iter()
                    .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
                    .collect();
                self.drive(
                    &mut tools, &mut conv, &specs, &mut traj, writer, &mut stop, on_event, started,
                    &mut state,
                )
                .await
            }
            Err(e) => ExitStatus::ModelError(format!("prompt: {e}")),
        };
        // Every trajectory says what its final patch does to the reproduction.
        if !matches!(exit, ExitStatus::Interrupted | ExitStatus::SandboxError(_)) {
            self.reproduce_at_end(&tools, &mut state, &mut traj).await;
        }
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
        state: &mut SubmitState,
    ) -> ExitStatus {
        let mut garbage = 0usize;
        // Each step's request repeats the conversation so far; store only what is new.
        let mut exchanges = ExchangeCompactor::new();
        let mut loops = LoopWatch::default();
        // A bad reply is not kept: the next request asks again with this note instead.
        let mut note: Option<String> = None;
        // After an overflow the server's window is known to be smaller than the estimate.
        let mut learned_cap: Option<usize> = None;
        let mut schedule = self.config.replay_condensations.clone();
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
            let mut overflows = 0usize;
            let (turn, model_ms) = loop {
                let budget = self
                    .prompt_budget(specs)
                    .min(learned_cap.unwrap_or(usize::MAX));
                let (over, forced) = match schedule.as_mut() {
                    Some(s) => {
                        let f = take_scheduled(s, index, |t| t == "budget");
                        (f.is_some(), f)
                    }
                    None => (self.model.count_tokens(conv) > budget, None),
                };
                if over {
                    let c = self
                        .condense(
                            tools,
                            conv,
                            traj,
                            &mut exchanges,
                            (index, "budget", budget),
                            forced.as_ref(),
                        )
                        .await;
                    if let Some(c) = c {
                        on_event(condensed_event(&c));
                        traj.condensations.push(c);
                    }
                }
                let request = with_note(conv, note.as_deref());
                let t0 = Instant::now();
                let result = tokio::select! {
                    t = self.model.complete(&request, specs) => t,
                    _ = stop.changed() => return ExitStatus::Interrupted,
                };
                let model_ms = t0.elapsed().as_millis() as u64;
                let why = match &result {
                    Err(e) if e.is_overflow() => e.to_string(),
                    // A replay answers the recorded overflow with its marker.
                    Ok(t) if t.finish_reason.as_deref() == Some(OVERFLOW_MARK) => t.content.clone(),
                    _ => break (result, model_ms),
                };
                overflows += 1;
                let sent = self.model.count_tokens(&request);
                let raw = match &result {
                    Ok(t) => t.raw.clone(),
                    Err(_) => self.marker_exchange(&request, specs, &why, OVERFLOW_MARK),
                };
                traj.totals.model_calls += 1;
                traj.steps.push(Step {
                    index,
                    assistant: json!({"error": why}),
                    actions: vec![],
                    tokens_in: 0,
                    tokens_out: 0,
                    cost_usd: 0.0,
                    model_ms,
                    tools_ms: 0,
                    raw: Some(exchanges.compact(&raw)),
                    kind: Some(CallKind::Overflow),
                });
                tracing::warn!(step = index, tokens = sent, error = %why, "the request overflowed the context window; condensing");
                if overflows > MAX_OVERFLOWS_PER_STEP {
                    return ExitStatus::ModelError(format!(
                        "the request overflowed the context window {overflows} times in a row \
                         after condensing: {why}"
                    ));
                }
                // Aim below what overflowed: by the server's own numbers when it gave them.
                let target = match &result {
                    Err(ModelError::ContextOverflow {
                        prompt_tokens: Some(p),
                        window: Some(w),
                        ..
                    }) if *p > 0 => {
                        let scale = (*w as f64 / *p as f64).min(1.0);
                        let room = *w as usize;
                        ((sent as f64 * scale) as usize)
                            .saturating_sub(self.model.max_output_tokens().min(room / 4))
                            * 9
                            / 10
                    }
                    _ => sent * 4 / 5,
                };
                learned_cap = Some(target.min(learned_cap.unwrap_or(usize::MAX)));
                let trigger = format!("overflow: {}", clip(&why, 300));
                let forced = schedule
                    .as_mut()
                    .and_then(|s| take_scheduled(s, index, |t| t.starts_with("overflow")));
                let condensed = match forced.as_ref().filter(|f| f.stage == COMPACT_STAGE) {
                    Some(_) => None,
                    None => {
                        self.condense(
                            tools,
                            conv,
                            traj,
                            &mut exchanges,
                            (index, &trigger, target),
                            forced.as_ref(),
                        )
                        .await
                    }
                };
                // Nothing left to shorten but the instructions: their short form, once.
                let condensed = condensed.or_else(|| {
                    self.compact_instructions(specs, tools.sandbox().root(), conv, index, &trigger)
                });
                match condensed {
                    Some(c) => {
                        on_event(condensed_event(&c));
                        traj.condensations.push(c);
                    }
                    None => {
                        return ExitStatus::ModelError(format!(
                            "the request does not fit the context window and the history \
                             cannot be shortened further: {why}"
                        ));
                    }
                }
                if let Err(e) = writer.write(traj) {
                    tracing::warn!(error = %e, "could not write the trajectory");
                }
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
            traj.totals.model_calls += 1;
            traj.totals.tokens_in += turn.usage.tokens_in;
            traj.totals.tokens_out += turn.usage.tokens_out;
            traj.totals.cost_usd += turn.cost.usd;
            traj.totals.steps = index;
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
                kind: None,
            };
            let t1 = Instant::now();
            let mut outcome: Option<ExitStatus> = None;

            // A reply with nothing usable to run (no call, only unknown tools, arguments that
            // are not JSON) is not kept: the next request asks again, with a note, and the
            // counter goes up.
            let usable = turn
                .tool_calls
                .iter()
                .any(|c| Toolbox::knows(&c.name) && c.arguments.is_ok());
            if !usable {
                garbage += 1;
                let problem = problem
                    .clone()
                    .or_else(|| turn.problem_text())
                    .unwrap_or_else(|| "your reply had no tool call".into());
                let text = self.retry_note(&problem, &turn);
                step.actions.push(Action {
                    tool: "(none)".into(),
                    arguments: Value::Null,
                    observation: text.clone(),
                });
                note = Some(text);
                if garbage >= self.config.max_garbage_in_a_row {
                    outcome = Some(ExitStatus::ModelError(format!(
                        "{garbage} replies in a row had no usable action (last: {problem})"
                    )));
                }
            } else {
                garbage = 0;
                note = None;
                conv.push(turn.message());
            }

            for call in turn.tool_calls.iter().filter(|_| usable) {
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
                    .run_call(tools, call, index, state, traj, on_event)
                    .await;
                let mut observation = match observation {
                    Ok(o) => o,
                    Err(e) => {
                        outcome = Some(ExitStatus::SandboxError(e));
                        String::from("the sandbox failed")
                    }
                };
                match loops.see(call, &observation) {
                    LoopVerdict::Fine => {}
                    LoopVerdict::Nudge { kind, times } => {
                        observation.push_str("\n\n");
                        observation.push_str(
                            &self
                                .prompts
                                .render("loop_nudge.md.j2", json!({"times": times, "kind": kind}))
                                .unwrap_or_default(),
                        );
                    }
                    LoopVerdict::Stop => {
                        outcome.get_or_insert(ExitStatus::LoopDetected);
                    }
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
            if let Some(problem) = problem.as_ref().filter(|_| usable) {
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

    /// The exchange to record for a call that produced no completion (an overflow, a failed
    /// summary): a replay answers it with `mark` as the finish reason and `why` as the text.
    fn marker_exchange(
        &self,
        request: &[Message],
        tools: &[ToolDef],
        why: &str,
        mark: &str,
    ) -> Value {
        json!({
            "model": self.model.name(),
            "tool_mode": self.model.tool_mode(),
            "request": {"messages": request, "tools": tools},
            "response": {"content": why, "finish_reason": mark},
        })
    }

    /// What the next request says about a reply that was not kept.
    fn retry_note(&self, problem: &str, turn: &Completion) -> String {
        let said = turn.content.trim();
        let mut text = self.format_error(problem);
        if !said.is_empty() {
            text = format!(
                "Your last reply (not kept in the conversation) began: \"{}\"\n\n{text}",
                clip(said, 300)
            );
        }
        text
    }

    /// Run one call. Returns the observation and, for `submit`, how the run ends (or
    /// `None` when failing tests go back to the model).
    async fn run_call(
        &self,
        tools: &mut Toolbox,
        call: &ToolCall,
        step: usize,
        state: &mut SubmitState,
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
                self.on_submit(tools, &summary, step, state, traj, on_event)
                    .await
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

    /// The tokens a prompt may take: the window less the output limit, the tool schemas
    /// and a margin for the estimate's error.
    pub fn prompt_budget(&self, specs: &[ToolDef]) -> usize {
        if let Some(b) = self.config.prompt_budget {
            return b;
        }
        let window = self.model.context_window();
        let margin = (window / 20).max(64);
        window
            .saturating_sub(self.model.max_output_tokens())
            .saturating_sub(self.model.count_tool_tokens(specs))
            .saturating_sub(margin)
    }

    /// Refuse a task whose first prompt (the instructions and the issue) cannot fit the
    /// model's window even with the whole history condensed away, before any sandbox is
    /// made. The error names the sizes.
    pub fn check_fits(&self, task: &TaskInput) -> Result<(), String> {
        let specs = Toolbox::specs(&self.prompts);
        let bare = TaskInput {
            issue: task.issue.clone(),
            base_commit: task.base_commit.clone(),
            ..TaskInput::default()
        };
        let (system, instance) = self
            .first_prompt(&specs, &bare, "/repo", None)
            .map_err(|e| format!("prompt: {e}"))?;
        let msgs = [Message::system(system), Message::user(instance)];
        let need = self.model.count_tokens(&msgs);
        let budget = self.prompt_budget(&specs);
        // Room for at least a few steps of work beside the first prompt.
        let room = budget.saturating_sub(need);
        if room < budget / 10 {
            let issue_tokens = self
                .model
                .count_tokens(&[Message::user(task.issue.clone())]);
            return Err(format!(
                "the issue does not fit the model's context window: the first prompt takes about \
                 {need} tokens (the issue alone {issue_tokens} tokens, {} bytes), but {} has a \
                 window of {} tokens, of which {budget} are for the prompt ({} are kept for the \
                 reply, {} for the tool schemas, the rest is a safety margin) and a tenth of \
                 that must stay free for the work; shorten the issue or use a model with a \
                 larger window",
                task.issue.len(),
                self.model.name(),
                self.model.context_window(),
                self.model.max_output_tokens(),
                self.model.count_tool_tokens(&specs),
            ));
        }
        Ok(())
    }

    /// Swap the system prompt for its short form (no tool schemas, terse rules) when that
    /// shortens the request: the last lever when the history holds nothing to condense.
    fn compact_instructions(
        &self,
        specs: &[ToolDef],
        root: &str,
        conv: &mut [Message],
        step: usize,
        trigger: &str,
    ) -> Option<Condensation> {
        let compact = self.system_prompt(specs, root, true).ok()?;
        match conv.first() {
            Some(Message::System { content }) if *content != compact => {}
            _ => return None,
        }
        let before = self.model.count_tokens(conv);
        let old = std::mem::replace(&mut conv[0], Message::system(compact));
        let after = self.model.count_tokens(conv);
        if after >= before {
            conv[0] = old;
            return None;
        }
        tracing::info!(
            step,
            before,
            after,
            "the short instructions replace the full ones"
        );
        Some(Condensation {
            step,
            trigger: trigger.to_string(),
            stage: COMPACT_STAGE.into(),
            tokens_before: before,
            tokens_after: after,
            masked: 0,
            summarised: None,
            summary: None,
        })
    }

    /// The system prompt, in full or in its short form (no tool schemas, terse rules).
    fn system_prompt(
        &self,
        specs: &[ToolDef],
        root: &str,
        compact: bool,
    ) -> Result<String, crate::prompts::PromptError> {
        let text_actions = self.model.tool_mode() == ToolMode::Text;
        self.prompts.render(
            "system.md.j2",
            json!({"root": root, "network": self.config.network, "text_actions": text_actions,
                   "tools": specs, "compact": compact,
                   "reproduce": self.config.verify.as_ref().is_some_and(|v| v.reproduce),
                   "repro_file": crate::verify::REPRO_FILE}),
        )
    }

    fn first_prompt(
        &self,
        specs: &[ToolDef],
        task: &TaskInput,
        root: &str,
        test_command: Option<&str>,
    ) -> Result<(String, String), crate::prompts::PromptError> {
        let system_with = |compact: bool| self.system_prompt(specs, root, compact);
        let mut system = system_with(false)?;
        // A small window (a local model's 2-4k) gets the short instructions: the full ones
        // with every tool's JSON schema would leave little room for the work.
        if self.model.count_tokens(&[Message::system(system.clone())])
            > self.prompt_budget(specs) / 3
        {
            system = system_with(true)?;
        }
        let instance = self.prompts.render(
            "instance.md.j2",
            json!({"issue": task.issue, "root": root, "base_commit": task.base_commit, "layout": task.layout,
                   "localized": task.localized, "repo_map": task.repo_map, "code_pack": task.code_pack,
                   "test_command": test_command}),
        )?;
        Ok((system, instance))
    }

    /// Shorten the conversation to `target` tokens, in stages, stopping at the first that
    /// gets there: (a) elide every observation older than the last few at once, then all but
    /// the last; (b) replace the middle of the conversation with a summary the model writes
    /// (mend writes one itself when that call fails); (c) elide every observation. `None`
    /// when nothing could be shortened.
    #[allow(clippy::too_many_arguments)]
    async fn condense(
        &self,
        tools: &Toolbox,
        conv: &mut Vec<Message>,
        traj: &mut Trajectory,
        exchanges: &mut ExchangeCompactor,
        (step, trigger, target): (usize, &str, usize),
        forced: Option<&Condensation>,
    ) -> Option<Condensation> {
        let before = self.model.count_tokens(conv);
        let mut c = Condensation {
            step,
            trigger: trigger.to_string(),
            stage: "masked".into(),
            tokens_before: before,
            tokens_after: before,
            masked: 0,
            summarised: None,
            summary: None,
        };
        let fits = |conv: &[Message]| self.model.count_tokens(conv) <= target;
        // Mask well below the target, so the prefix then stays put for several steps.
        let low_water = target * 6 / 10;
        let k = self.config.keep_recent_observations;
        for keep in [k, k / 2, 1] {
            c.masked += mask_observations(conv, keep.max(1));
            if self.model.count_tokens(conv) <= low_water {
                break;
            }
        }
        // A replay summarises where the recorded run did, and only there.
        let summarise = forced.map_or_else(
            || !fits(conv),
            |f| f.stage != "masked" && f.stage != COMPACT_STAGE,
        );
        let calls_before = traj.steps.len();
        if summarise
            && let Some((range, summary, stage)) = self
                .summarise(tools, conv, traj, exchanges, step, target)
                .await
        {
            c.summarised = Some(range);
            c.summary = Some(summary);
            c.stage = stage.into();
        }
        if !fits(conv) {
            c.masked += mask_observations(conv, 0);
        }
        c.tokens_after = self.model.count_tokens(conv);
        tracing::info!(step, trigger, stage = %c.stage, before = c.tokens_before, after = c.tokens_after, "condensed the conversation");
        // A summary call is always recorded, even when it saved nothing: a replay must
        // make the same call at the same point.
        let called = traj.steps.len() > calls_before;
        (forced.is_some() || called || c.tokens_after < c.tokens_before).then_some(c)
    }

    /// Replace the middle of the conversation (after the issue, before the last two turns)
    /// with one summary message: the range replaced, the summary, and the stage.
    async fn summarise(
        &self,
        tools: &Toolbox,
        conv: &mut Vec<Message>,
        traj: &mut Trajectory,
        exchanges: &mut ExchangeCompactor,
        step: usize,
        target: usize,
    ) -> Option<((usize, usize), String, &'static str)> {
        const KEEP_TURNS: usize = 2;
        let turn_starts: Vec<usize> = conv
            .iter()
            .enumerate()
            .filter(|(i, m)| *i >= 2 && matches!(m, Message::Assistant { .. }))
            .map(|(i, _)| i)
            .collect();
        let tail = turn_starts
            .len()
            .checked_sub(KEEP_TURNS)
            .map_or(2, |k| turn_starts[k]);
        if tail < 4 {
            return None;
        }
        let middle = &conv[2..tail];
        let first_step = traj
            .steps
            .iter()
            .find(|s| s.kind.is_none())
            .map_or(1, |s| s.index);
        let last_step = traj
            .steps
            .iter()
            .filter(|s| s.kind.is_none())
            .nth_back(KEEP_TURNS)
            .map_or(first_step, |s| s.index);
        let diff = match tools.sandbox().diff().await {
            Ok(d) => clip(&drop_build_junk(&d), 6_000),
            Err(e) => format!("(the diff could not be read: {e})"),
        };
        let tests = traj.test_runs.last().map(|r| {
            format!(
                "{} ({})\n{}",
                r.command,
                r.status,
                clip(&r.condensed, 1_500)
            )
        });
        // The transcript is cut to fit the summary call's own window.
        let room_chars = target.saturating_mul(2).max(2_000);
        let history = clip(&transcript(middle), room_chars);
        let request = self
            .prompts
            .render(
                "summarize.md.j2",
                json!({"issue": clip(&traj.issue, 4_000), "history": history, "diff": diff, "tests": tests}),
            )
            .ok()
            .map(|t| vec![Message::user(t)]);
        let mut summary: Option<String> = None;
        if let Some(request) = request {
            let t0 = Instant::now();
            let result = self.model.complete(&request, &[]).await;
            let model_ms = t0.elapsed().as_millis() as u64;
            traj.totals.model_calls += 1;
            let (raw, assistant, usage, cost) = match &result {
                Ok(t) => {
                    let text = t.content.trim();
                    if !text.is_empty()
                        && t.finish_reason.as_deref() != Some(SUMMARY_FAILED_MARK)
                        && t.finish_reason.as_deref() != Some(OVERFLOW_MARK)
                    {
                        summary = Some(clip(text, 6_000));
                    }
                    (
                        t.raw.clone(),
                        json!({"content": t.content}),
                        t.usage,
                        t.cost,
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the summary call failed; mend summarises mechanically");
                    let why = e.to_string();
                    (
                        self.marker_exchange(&request, &[], &why, SUMMARY_FAILED_MARK),
                        json!({"error": why}),
                        Default::default(),
                        Default::default(),
                    )
                }
            };
            traj.totals.tokens_in += usage.tokens_in;
            traj.totals.tokens_out += usage.tokens_out;
            traj.totals.cost_usd += cost.usd;
            traj.steps.push(Step {
                index: step,
                assistant,
                actions: vec![],
                tokens_in: usage.tokens_in,
                tokens_out: usage.tokens_out,
                cost_usd: cost.usd,
                model_ms,
                tools_ms: 0,
                raw: (!raw.is_null()).then(|| exchanges.compact(&raw)),
                kind: Some(CallKind::Summary),
            });
        }
        let (summary, mechanical) = match summary {
            Some(s) => (s, false),
            None => (mechanical_summary(middle), true),
        };
        let message = self
            .prompts
            .render(
                "summary.md.j2",
                json!({"first": first_step, "last": last_step, "summary": summary, "mechanical": mechanical,
                       "diff": diff, "tests": traj.test_runs.last().map(|r| format!("{} ({})", r.command, r.status))}),
            )
            .unwrap_or_else(|_| summary.clone());
        conv.splice(2..tail, [Message::user(message)]);
        Some((
            (2, tail),
            summary,
            if mechanical {
                "mechanical"
            } else {
                "summarised"
            },
        ))
    }
}

fn condensed_event(c: &Condensation) -> Event {
    Event::Condensed {
        index: c.step,
        stage: c.stage.clone(),
        tokens_before: c.tokens_before,
        tokens_after: c.tokens_after,
    }
}

/// How many overflows one step may meet, each followed by a condensation, before the run
/// ends.
const MAX_OVERFLOWS_PER_STEP: usize = 4;
/// Finish reasons of recorded calls that produced no completion; never sent by a server.
const OVERFLOW_MARK: &str = "mend:context_overflow";
const SUMMARY_FAILED_MARK: &str = "mend:summary_failed";
const ELIDED: &str = "[elided to save context";

/// The request: the conversation, with the note about a reply that was not kept (joined to
/// the last user message, since some chat templates refuse two user turns in a row).
fn with_note<'a>(conv: &'a [Message], note: Option<&str>) -> Cow<'a, [Message]> {
    let Some(note) = note else {
        return Cow::Borrowed(conv);
    };
    let mut v = conv.to_vec();
    match v.last_mut() {
        Some(Message::User { content }) => {
            content.push_str("\n\n");
            content.push_str(note);
        }
        _ => v.push(Message::user(note)),
    }
    Cow::Owned(v)
}

/// Elide every observation but the last `keep` (and, unless `keep` is 0, the last three
/// edits), all at once. Returns how many were elided.
fn mask_observations(conv: &mut [Message], keep: usize) -> usize {
    let observations: Vec<usize> = conv
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, Message::Tool { .. }))
        .map(|(i, _)| i)
        .collect();
    let last_edits: BTreeSet<usize> = if keep == 0 {
        BTreeSet::new()
    } else {
        observations
            .iter()
            .copied()
            .filter(|i| matches!(&conv[*i], Message::Tool { name, .. } if name == "edit" || name == "str_replace_editor"))
            .rev()
            .take(3)
            .collect()
    };
    let old = observations.len().saturating_sub(keep);
    let mut n = 0;
    for &i in &observations[..old] {
        if last_edits.contains(&i) {
            continue;
        }
        if let Message::Tool { content, .. } = &mut conv[i]
            && content.len() > 200
            && !content.starts_with(ELIDED)
        {
            let lines = content.lines().count();
            *content = format!("{ELIDED}: an observation of {lines} lines]");
            n += 1;
        }
    }
    n
}

/// The messages as plain text for the summary call.
fn transcript(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        match m {
            Message::System { content } | Message::User { content } => {
                out.push_str(&format!("[user]\n{}\n\n", clip(content, 2_000)));
            }
            Message::Assistant {
                content,
                tool_calls,
            } => {
                out.push_str("[assistant]\n");
                if !content.trim().is_empty() {
                    out.push_str(&clip(content.trim(), 1_500));
                    out.push('\n');
                }
                for c in tool_calls {
                    let args = match &c.arguments {
                        Ok(v) => v.to_string(),
                        Err(raw) => raw.clone(),
                    };
                    out.push_str(&format!("call {}({})\n", c.name, clip(&args, 600)));
                }
                out.push('\n');
            }
            Message::Tool { name, content, .. } => {
                out.push_str(&format!("[{name} result]\n{}\n\n", clip(content, 1_500)));
            }
        }
    }
    out
}

/// A summary mend writes without the model: each call and the first line of its answer.
fn mechanical_summary(messages: &[Message]) -> String {
    let mut answers: HashMap<&str, &str> = HashMap::new();
    for m in messages {
        if let Message::Tool {
            call_id, content, ..
        } = m
        {
            answers.insert(call_id, content);
        }
    }
    let mut lines = vec!["Calls made (with the first line of each answer):".to_string()];
    for m in messages {
        if let Message::Assistant { tool_calls, .. } = m {
            for c in tool_calls {
                let first = answers
                    .get(c.id.as_str())
                    .and_then(|a| a.lines().find(|l| !l.trim().is_empty()))
                    .unwrap_or("");
                lines.push(format!(
                    "- {} {} -> {}",
                    c.name,
                    summarize_args(&c.arguments),
                    clip(first, 160)
                ));
            }
        }
    }
    lines.join("\n")
}

/// What the loop watch says about the latest call.
enum LoopVerdict {
    Fine,
    Nudge { kind: &'static str, times: usize },
    Stop,
}

/// Loop detection: the same call with the same answer again and again, two calls taking
/// turns (A, B, A, B...) with the same answers, and the same command timing out again
/// (its output differs each time, so it never looks like a repeat). Each kind is nudged
/// once; going on after the nudge ends the run.
#[derive(Default)]
struct LoopWatch {
    recent: Vec<String>,
    alternation_nudged: bool,
    timeouts: HashMap<String, usize>,
}

impl LoopWatch {
    fn see(&mut self, call: &ToolCall, observation: &str) -> LoopVerdict {
        let args = canonical(&call.arguments);
        if observation.starts_with("[timed out") {
            let n = self
                .timeouts
                .entry(format!("{}|{args}", call.name))
                .or_insert(0);
            *n += 1;
            match *n {
                2 => {
                    return LoopVerdict::Nudge {
                        kind: "timeout",
                        times: 2,
                    };
                }
                n if n > 2 => return LoopVerdict::Stop,
                _ => {}
            }
        }
        self.recent
            .push(format!("{}|{args}|{observation}", call.name));
        if self.recent.len() > 16 {
            self.recent.remove(0);
        }
        let r = &self.recent;
        let n = r.len();
        let repeats = r.iter().rev().take_while(|s| **s == r[n - 1]).count();
        if repeats == 3 {
            return LoopVerdict::Nudge {
                kind: "repeat",
                times: 3,
            };
        }
        if repeats > 3 {
            return LoopVerdict::Stop;
        }
        // Trailing positions that repeat the call two before and differ from the one before.
        let alternating = (2..n)
            .rev()
            .take_while(|&i| r[i] == r[i - 2] && r[i] != r[i - 1])
            .count();
        if alternating >= 4 && !self.alternation_nudged {
            self.alternation_nudged = true;
            return LoopVerdict::Nudge {
                kind: "alternate",
                times: alternating + 2,
            };
        }
        if alternating >= 6 {
            return LoopVerdict::Stop;
        }
        if alternating == 0 {
            self.alternation_nudged = false;
        }
        LoopVerdict::Fine
    }
}

/// The condensation stage that swaps in the short system prompt.
const COMPACT_STAGE: &str = "compact instructions";

/// The first recorded condensation of `step` whose trigger matches, taken off the schedule.
fn take_scheduled(
    schedule: &mut Vec<Condensation>,
    step: usize,
    trigger: impl Fn(&str) -> bool,
) -> Option<Condensation> {
    let i = schedule
        .iter()
        .position(|c| c.step == step && trigger(&c.trigger))?;
    Some(schedule.remove(i))
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
