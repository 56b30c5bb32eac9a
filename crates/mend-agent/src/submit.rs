//! What happens when the model calls `submit`: the repository's tests (failures that were
//! there before the change do not use up repair rounds), the regression guard, the
//! reproduction on the base commit and on the patch, and one review round. Each check
//! either ends the run or answers the model with what to do next.
use std::time::Instant;

use mend_sandbox::SandboxError;
use serde_json::json;

use crate::agent::{Agent, Event};
use crate::condense::clip;
use crate::scratch::deliverable;
use crate::tools::{TestRun, Toolbox};
use crate::trajectory::{ExitStatus, TestsOutcome, Trajectory};
use crate::verify::{
    self, RegressionRun, ReproOutcome, ReproRun, Reproduction, Review, SubmitCheck, Verification,
    VerifyConfig,
};

/// What the loop carries from one `submit` to the next.
pub(crate) struct SubmitState {
    pub repairs_left: usize,
    /// The base commit's run of the test command (failing tests), once made.
    base_failing: Option<Option<std::collections::BTreeSet<String>>>,
    /// Failures all pre-existing were shown to the model once already.
    preexisting_shown: bool,
    /// The base commit's run of the guard's tests, with the files it ran.
    base_guard: Option<(Vec<String>, RegressionRun)>,
    /// The reproduction's base-commit run, for the content it ran.
    base_repro: Option<(String, ReproRun)>,
    /// The patch shown for review and the status the run would have ended with.
    review: Option<(String, ExitStatus)>,
    reviewed: bool,
    /// The patch the reproduction last ran against.
    repro_patch: Option<String>,
}

impl SubmitState {
    pub fn new(repairs: usize) -> Self {
        SubmitState {
            repairs_left: repairs,
            base_failing: None,
            preexisting_shown: false,
            base_guard: None,
            base_repro: None,
            review: None,
            reviewed: false,
            repro_patch: None,
        }
    }
}

/// The answer to one `submit`.
type Answer = (Result<String, String>, Option<ExitStatus>);

impl Agent {
    pub(crate) async fn on_submit(
        &self,
        tools: &mut Toolbox,
        summary: &str,
        step: usize,
        state: &mut SubmitState,
        traj: &mut Trajectory,
        on_event: &(dyn Fn(Event) + Send + Sync),
    ) -> Answer {
        let keep = self.config.keep_scratch_files;
        let verify = self.config.verify.clone();
        let patch = match tools.sandbox().diff().await {
            Ok(d) => deliverable(&d, keep).0,
            Err(e) => return (Err(e.to_string()), None),
        };
        // Submitted again after the review: unchanged is a confirmation.
        if let Some((shown, status)) = state.review.take() {
            let same = shown == patch;
            if let Some(r) = traj.verification.as_mut().and_then(|v| v.review.as_mut()) {
                r.outcome = Some(if same { "confirmed" } else { "revised" }.into());
            }
            if same {
                return (
                    Ok(format!("submitted after review: {summary}")),
                    Some(status),
                );
            }
        }
        let mut tests = TestsOutcome::NotRun;
        let mut done = format!("submitted: {summary}");
        if self.config.test_on_submit {
            let run = match crate::scratch::test_delivered(tools, keep).await {
                Ok(r) => r,
                Err(e) => return (Err(e.to_string()), None),
            };
            traj.test_runs.push(run.clone());
            on_event(Event::Tests {
                passed: run.passed,
                status: run.status.clone(),
            });
            if !run.command.is_empty() {
                if run.passed {
                    tests = TestsOutcome::Passed;
                    done = format!("submitted; the tests pass ({})", run.command);
                } else {
                    let preexisting = self
                        .preexisting(tools, &run, &patch, verify.as_ref(), state, traj)
                        .await;
                    let only_old = preexisting.as_ref().is_some_and(|p| p.only);
                    if only_old && state.preexisting_shown {
                        // Seen once already: they are not the change's doing.
                        tests = TestsOutcome::OnlyPreexistingFailures;
                        done = format!(
                            "submitted; the tests that fail ({}) failed before your change too",
                            run.command
                        );
                    } else {
                        let decision = if only_old { "shown" } else { "repair" };
                        record_check(traj, step, None, vec![], only_old, decision);
                        return self.test_feedback(&run, preexisting, state);
                    }
                }
            }
        }
        let status = ExitStatus::Submitted { tests };
        let Some(verify) = verify else {
            return (Ok(done), Some(status));
        };
        let t0 = Instant::now();
        let guard = self.guard(tools, &patch, &verify, state, traj).await;
        let repro = self.reproduce(tools, &patch, &verify, state, traj).await;
        add_ms(traj, t0);
        // A check that cannot run is left out; a sandbox left without the patch is not.
        let guard = match guard {
            Ok(g) => g,
            Err(e) if fatal(&e) => return (Err(e.to_string()), None),
            Err(e) => {
                tracing::warn!(error = %e, "the regression guard could not run");
                None
            }
        };
        let repro = match repro {
            Ok(r) => r,
            Err(e) if fatal(&e) => return (Err(e.to_string()), None),
            Err(e) => {
                tracing::warn!(error = %e, "the reproduction could not run");
                None
            }
        };
        let regs = guard.as_ref().map(|g| g.0.clone()).unwrap_or_default();
        on_event(Event::Checked {
            summary: checks_line(
                traj.verification.as_ref(),
                guard.as_ref().map(|g| &g.1),
                &regs,
            ),
        });
        if let Some((regs, after)) = guard.filter(|g| !g.0.is_empty() && state.repairs_left > 0) {
            let rounds_left = state.repairs_left;
            state.repairs_left -= 1;
            record_check(
                traj,
                step,
                repro.as_ref().map(|r| r.outcome),
                regs.clone(),
                false,
                "repair",
            );
            let text = self
                .prompts
                .render(
                    "regression_feedback.md.j2",
                    json!({"command": after.command, "regressions": regs.iter().take(20).collect::<Vec<_>>(),
                           "more": regs.len().saturating_sub(20), "condensed": after.condensed,
                           "rounds_left": rounds_left}),
                )
                .unwrap_or_else(|e| format!("tests that passed before your change now fail: {}; {e}", regs.join(", ")));
            return (Ok(text), None);
        }
        if verify.review && !state.reviewed {
            state.reviewed = true;
            record_check(
                traj,
                step,
                repro.as_ref().map(|r| r.outcome),
                regs.clone(),
                false,
                "review",
            );
            if let Some(v) = traj.verification.as_mut() {
                v.review = Some(Review {
                    step,
                    outcome: None,
                });
            }
            let base = traj
                .verification
                .as_ref()
                .and_then(|v| v.repro_base.as_ref())
                .map(|r| r.outcome);
            let text = self
                .prompts
                .render(
                    "review.md.j2",
                    json!({"issue": clip(&traj.issue, 6_000), "diff": clip(&patch, 12_000),
                           "tests": traj.test_runs.last().filter(|_| self.config.test_on_submit).map(|r| format!("{} ({})", r.command, r.status)),
                           "repro_base": base.map(outcome_word), "repro_after": repro.as_ref().map(|r| outcome_word(r.outcome)),
                           "repro_file": verify::REPRO_FILE, "regressions": regs}),
                )
                .unwrap_or_else(|e| format!("review your diff against the issue, then submit again; {e}"));
            state.review = Some((patch, status));
            return (Ok(text), None);
        }
        record_check(
            traj,
            step,
            repro.as_ref().map(|r| r.outcome),
            regs,
            false,
            "accepted",
        );
        (Ok(done), Some(status))
    }

    fn test_feedback(
        &self,
        run: &TestRun,
        preexisting: Option<Preexisting>,
        state: &mut SubmitState,
    ) -> Answer {
        let only_old = preexisting.as_ref().is_some_and(|p| p.only);
        let old: Vec<String> = preexisting.map(|p| p.failing).unwrap_or_default();
        if only_old {
            state.preexisting_shown = true;
        }
        let rounds_left = state.repairs_left;
        let feedback = self
            .prompts
            .render(
                "test_feedback.md.j2",
                json!({"command": run.command, "status": run.status, "condensed": run.condensed,
                       "rounds_left": rounds_left, "only_preexisting": only_old,
                       "preexisting": old.iter().take(20).collect::<Vec<_>>()}),
            )
            .unwrap_or_else(|e| format!("tests failed ({}); {e}", run.status));
        if only_old {
            // Free: the failures are not known to be the change's.
            return (Ok(feedback), None);
        }
        if rounds_left == 0 {
            return (
                Ok(feedback),
                Some(ExitStatus::Submitted {
                    tests: TestsOutcome::Failed,
                }),
            );
        }
        state.repairs_left -= 1;
        (Ok(feedback), None)
    }

    /// Which of a failing run's tests failed on the base commit too (the test command run
    /// once there, without the patch). `None` when the output cannot be read test by test.
    async fn preexisting(
        &self,
        tools: &mut Toolbox,
        run: &TestRun,
        patch: &str,
        verify: Option<&VerifyConfig>,
        state: &mut SubmitState,
        traj: &mut Trajectory,
    ) -> Option<Preexisting> {
        let suite = verify?.suite.clone()?;
        let failing: Vec<String> = suite
            .parse(&run.log)
            .into_iter()
            .filter(|(_, v)| *v == verify::TestVerdict::Failed)
            .map(|(k, _)| k)
            .collect();
        if failing.is_empty() {
            return None;
        }
        if state.base_failing.is_none() {
            let t0 = Instant::now();
            let sb = tools.sandbox().clone();
            let timeout = tools.test_timeout;
            let base = verify::on_base(sb.as_ref(), patch, || {
                verify::run_command(sb.as_ref(), suite.as_ref(), &run.command, timeout)
            })
            .await;
            let base = match base {
                Ok(Ok(r)) if !r.timed_out && !r.tests.is_empty() => Some(r.failing()),
                Ok(Ok(_)) => None,
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(error = %e, "could not run the tests on the base commit");
                    None
                }
            };
            if let Some(v) = traj.verification.as_mut() {
                v.preexisting_failures = base.as_ref().map(|b| b.iter().cloned().collect());
            }
            add_ms(traj, t0);
            state.base_failing = Some(base);
        }
        let base = state.base_failing.clone().flatten()?;
        let old: Vec<String> = failing
            .iter()
            .filter(|f| base.contains(*f))
            .cloned()
            .collect();
        Some(Preexisting {
            only: old.len() == failing.len(),
            failing: old,
        })
    }

    /// The regression guard: the tests related to the change, on the base commit (once per
    /// set of files) and with the patch. `Ok(None)` when it cannot run (no suite, no index,
    /// no related tests).
    async fn guard(
        &self,
        tools: &Toolbox,
        patch: &str,
        verify: &VerifyConfig,
        state: &mut SubmitState,
        traj: &mut Trajectory,
    ) -> Result<Option<(Vec<String>, RegressionRun)>, SandboxError> {
        let (Some(suite), Some(index)) = (verify.suite.clone(), tools.index().cloned()) else {
            return Ok(None);
        };
        let (p, n) = (patch.to_string(), verify.guard_files);
        let set = tokio::task::spawn_blocking(move || verify::related_tests(&index, &p, n))
            .await
            .unwrap_or_default();
        if let Some(v) = traj.verification.as_mut() {
            v.regression_set = Some(set.clone());
        }
        if set.is_empty() {
            return Ok(None);
        }
        let sb = tools.sandbox().clone();
        let paths = set.paths();
        let base = match &state.base_guard {
            Some((files, run)) if *files == paths => run.clone(),
            _ => {
                let run = verify::on_base(sb.as_ref(), patch, || {
                    verify::run_regression(sb.as_ref(), suite.as_ref(), &set, verify.guard_timeout)
                })
                .await
                .and_then(|r| r)?;
                state.base_guard = Some((paths, run.clone()));
                run
            }
        };
        let after =
            verify::run_regression(sb.as_ref(), suite.as_ref(), &set, verify.guard_timeout).await?;
        let regs = verify::regressions(&base, &after);
        if let Some(v) = traj.verification.as_mut() {
            v.regression_base = Some(base);
            v.regression_final = Some(after.clone());
            v.regressions = regs.clone();
        }
        Ok(Some((regs, after)))
    }

    /// Run the agent's reproduction, if it wrote one, on the patch and (once per content)
    /// on the base commit.
    pub(crate) async fn reproduce(
        &self,
        tools: &Toolbox,
        patch: &str,
        verify: &VerifyConfig,
        state: &mut SubmitState,
        traj: &mut Trajectory,
    ) -> Result<Option<ReproRun>, SandboxError> {
        if !verify.reproduce {
            return Ok(None);
        }
        let sb = tools.sandbox().clone();
        let Some(repro) = Reproduction::find(sb.as_ref()).await? else {
            return Ok(None);
        };
        let base = match &state.base_repro {
            Some((content, run)) if *content == repro.content => run.clone(),
            _ => {
                let run = verify::on_base(sb.as_ref(), patch, || {
                    verify::run_reproduction(sb.as_ref(), &repro, verify.repro_timeout)
                })
                .await
                .and_then(|r| r)?;
                state.base_repro = Some((repro.content.clone(), run.clone()));
                run
            }
        };
        let after = verify::run_reproduction(sb.as_ref(), &repro, verify.repro_timeout).await?;
        state.repro_patch = Some(patch.to_string());
        if let Some(v) = traj.verification.as_mut() {
            v.reproduction = Some(repro);
            v.repro_base = Some(base);
            v.repro_final = Some(after.clone());
        }
        Ok(Some(after))
    }

    /// At the end of a run that did not end on a checked `submit`: the reproduction on the
    /// final patch, so every trajectory says what its patch does to it.
    pub(crate) async fn reproduce_at_end(
        &self,
        tools: &Toolbox,
        state: &mut SubmitState,
        traj: &mut Trajectory,
    ) {
        let Some(verify) = self.config.verify.clone() else {
            return;
        };
        let patch = match tools.sandbox().diff().await {
            Ok(d) => deliverable(&d, self.config.keep_scratch_files).0,
            Err(_) => return,
        };
        if state.repro_patch.as_deref() == Some(patch.as_str())
            && traj
                .verification
                .as_ref()
                .is_some_and(|v| v.repro_final.is_some())
        {
            return;
        }
        let t0 = Instant::now();
        if let Err(e) = self.reproduce(tools, &patch, &verify, state, traj).await {
            tracing::warn!(error = %e, "could not run the reproduction at the end of the run");
        }
        add_ms(traj, t0);
    }
}

/// Whether a check's error leaves the sandbox unusable: the engine gone, or the patch not
/// put back after a base-commit run.
fn fatal(e: &SandboxError) -> bool {
    match e {
        SandboxError::Engine { action, .. } => action.starts_with("putting the patch back"),
        SandboxError::ContainerGone(_) | SandboxError::EngineUnavailable(_) => true,
        _ => false,
    }
}

struct Preexisting {
    /// Every failing test failed on the base commit too.
    only: bool,
    /// The failing tests that failed on the base commit too.
    failing: Vec<String>,
}

fn outcome_word(o: ReproOutcome) -> &'static str {
    match o {
        ReproOutcome::Fixed => "exits 0 (the issue does not show)",
        ReproOutcome::Reproduces => "exits non-zero (the issue shows)",
        ReproOutcome::TimedOut => "timed out",
    }
}

/// One line for displays: the reproduction before and after, the guard's tests.
fn checks_line(v: Option<&Verification>, guard: Option<&RegressionRun>, regs: &[String]) -> String {
    let mut parts = Vec::new();
    if let Some(v) = v
        && let (Some(b), Some(a)) = (&v.repro_base, &v.repro_final)
    {
        let word = |o: ReproOutcome| match o {
            ReproOutcome::Fixed => "passes",
            ReproOutcome::Reproduces => "fails",
            ReproOutcome::TimedOut => "times out",
        };
        parts.push(format!(
            "reproduction {} before the change, {} after",
            word(b.outcome),
            word(a.outcome)
        ));
    }
    match guard {
        Some(g) => parts.push(format!(
            "{} related tests run before and after, {} regression{}",
            g.tests.len(),
            regs.len(),
            if regs.len() == 1 { "" } else { "s" }
        )),
        None => parts.push("no related tests to guard with".into()),
    }
    parts.join("; ")
}

fn record_check(
    traj: &mut Trajectory,
    step: usize,
    repro: Option<ReproOutcome>,
    regressions: Vec<String>,
    only_preexisting_failures: bool,
    decision: &str,
) {
    if let Some(v) = traj.verification.as_mut() {
        v.checks.push(SubmitCheck {
            step,
            repro,
            regressions,
            only_preexisting_failures,
            decision: decision.into(),
        });
    }
}

fn add_ms(traj: &mut Trajectory, t0: Instant) {
    if let Some(v) = traj.verification.as_mut() {
        v.ms += t0.elapsed().as_millis() as u64;
    }
}

/// A fresh record for a run with checks on.
pub(crate) fn new_verification(cfg: Option<&VerifyConfig>) -> Option<Verification> {
    cfg.map(|_| Verification::default())
}
