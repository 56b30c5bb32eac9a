//! The evidence best-of-N chooses by: every candidate against every candidate's
//! reproduction (the cross matrix) and against one regression set, each candidate in the
//! sandbox it was made in (its patch applied there). The base commit is seen through the
//! first kept candidate's sandbox with its patch taken out.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mend_index::Index;
use mend_sandbox::{Exec, Sandbox};
use serde::{Deserialize, Serialize};

use crate::select::{CandidateEvidence, Evidence};
use crate::verify::{
    RegressionRun, RegressionSet, ReproOutcome, Reproduction, TestSuite, on_base, regressions,
    related_tests, run_regression, run_reproduction,
};

/// One finished attempt.
pub struct Candidate {
    /// The sandbox the attempt ran in, its patch applied.
    pub sandbox: Arc<dyn Sandbox>,
    pub patch: String,
    /// The reproduction the attempt wrote, if any.
    pub reproduction: Option<Reproduction>,
}

/// What to run besides the reproductions.
#[derive(Clone)]
pub struct GatherOptions {
    /// The repository's test suite (None: no regression guard).
    pub suite: Option<Arc<dyn TestSuite>>,
    /// The index at the base commit, to pick the related tests.
    pub index: Option<Arc<Index>>,
    pub guard_files: usize,
    pub guard_timeout: Duration,
    pub repro_timeout: Duration,
}

impl Default for GatherOptions {
    fn default() -> Self {
        GatherOptions {
            suite: None,
            index: None,
            guard_files: 8,
            guard_timeout: Duration::from_secs(300),
            repro_timeout: Duration::from_secs(60),
        }
    }
}

/// What was run, for the trajectory and summary.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// Per reproduction (one per candidate; `None`: that candidate wrote none, or it could
    /// not be run): its outcome on the base commit.
    pub base: Vec<Option<ReproOutcome>>,
    /// `runs[i][j]`: reproduction `j` with candidate `i` (`None`: not run).
    pub runs: Vec<Vec<Option<ReproOutcome>>>,
    pub regression_set: Option<RegressionSet>,
    /// Tests failing on the base commit already (they cannot count as regressions).
    pub failing_on_base: Vec<String>,
    /// Problems met while gathering (a run that could not start...).
    pub notes: Vec<String>,
    pub ms: u64,
}

/// Run everything and return the evidence for [`crate::select::choose`] with the matrix.
pub async fn gather(cands: &[Candidate], opts: &GatherOptions) -> (Evidence, Matrix) {
    let t0 = Instant::now();
    let n = cands.len();
    let mut matrix = Matrix {
        base: vec![None; n],
        runs: vec![vec![None; n]; n],
        ..Default::default()
    };
    let mut ev = Evidence {
        candidates: cands
            .iter()
            .map(|c| CandidateEvidence {
                patch: c.patch.clone(),
                passes: vec![None; n],
                ..Default::default()
            })
            .collect(),
        valid: vec![false; n],
    };
    // Out before anything runs: empty, or Python that no longer parses.
    let parse = join_all(
        cands
            .iter()
            .map(|c| parse_problem(c.sandbox.as_ref(), &c.patch)),
    )
    .await;
    for (i, p) in parse.into_iter().enumerate() {
        if cands[i].patch.trim().is_empty() {
            ev.candidates[i].dropped = Some("empty".into());
        } else if let Some(p) = p {
            ev.candidates[i].dropped = Some(format!("does not parse: {p}"));
        }
    }
    let kept: Vec<usize> = (0..n)
        .filter(|&i| ev.candidates[i].dropped.is_none())
        .collect();
    let Some(&first) = kept.first() else {
        matrix.ms = t0.elapsed().as_millis() as u64;
        return (ev, matrix);
    };
    let repros: Vec<Option<&Reproduction>> =
        cands.iter().map(|c| c.reproduction.as_ref()).collect();
    // The related tests of every kept candidate's change, so all are judged on one set.
    let set = match (&opts.suite, &opts.index) {
        (Some(_), Some(ix)) => {
            let union: String = kept.iter().map(|&i| cands[i].patch.as_str()).collect();
            let s = related_tests(ix, &union, opts.guard_files);
            (!s.is_empty()).then_some(s)
        }
        _ => None,
    };
    // The base commit, in the first kept candidate's sandbox with its patch taken out.
    let base_sb = cands[first].sandbox.as_ref();
    let base_work = async {
        let mut outs = Vec::new();
        for r in &repros {
            outs.push(match r {
                Some(r) => run_reproduction(base_sb, r, opts.repro_timeout).await.ok(),
                None => None,
            });
        }
        let reg = match (&opts.suite, &set) {
            (Some(s), Some(set)) => run_regression(base_sb, s.as_ref(), set, opts.guard_timeout)
                .await
                .ok(),
            _ => None,
        };
        (outs, reg)
    };
    let (base_repro, base_reg): (Vec<Option<crate::verify::ReproRun>>, Option<RegressionRun>) =
        match on_base(base_sb, &cands[first].patch, || base_work).await {
            Ok(r) => r,
            Err(e) => {
                matrix
                    .notes
                    .push(format!("the base commit could not be run: {e}"));
                (vec![None; n], None)
            }
        };
    for (j, r) in base_repro.iter().enumerate() {
        matrix.base[j] = r.as_ref().map(|r| r.outcome);
        ev.valid[j] = matches!(matrix.base[j], Some(ReproOutcome::Reproduces));
    }
    if let Some(b) = &base_reg {
        matrix.failing_on_base = b.failing().into_iter().collect();
    }
    // Each kept candidate in its own sandbox, all at once.
    let per = join_all(kept.iter().map(|&i| {
        let sb = cands[i].sandbox.clone();
        let repros = &repros;
        let (set, suite, base_reg) = (&set, &opts.suite, &base_reg);
        async move {
            let mut row = vec![None; repros.len()];
            for (j, r) in repros.iter().enumerate() {
                if let Some(r) = r {
                    row[j] = run_reproduction(sb.as_ref(), r, opts.repro_timeout)
                        .await
                        .ok()
                        .map(|r| r.outcome);
                }
            }
            let regs = match (suite, set, base_reg) {
                (Some(s), Some(set), Some(base)) => {
                    run_regression(sb.as_ref(), s.as_ref(), set, opts.guard_timeout)
                        .await
                        .ok()
                        .map(|after| regressions(base, &after))
                }
                _ => None,
            };
            (i, row, regs)
        }
    }))
    .await;
    for (i, row, regs) in per {
        ev.candidates[i].passes = row
            .iter()
            .map(|o| o.map(|o| o == ReproOutcome::Fixed))
            .collect();
        ev.candidates[i].regressions = regs;
        matrix.runs[i] = row;
    }
    matrix.regression_set = set;
    matrix.ms = t0.elapsed().as_millis() as u64;
    (ev, matrix)
}

/// Changed Python files that no longer parse, as "path line N: message" (None: all parse,
/// or there is no Python to ask).
pub async fn parse_problem(sb: &dyn Sandbox, patch: &str) -> Option<String> {
    let files: Vec<String> = patch
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.trim().to_string())
        .filter(|p| p.ends_with(".py"))
        .collect();
    if files.is_empty() {
        return None;
    }
    const CHECK: &str = "import ast, sys\nfor f in sys.argv[1:]:\n    try:\n        ast.parse(open(f, 'rb').read(), f)\n    except SyntaxError as e:\n        print(f'{f} line {e.lineno}: {e.msg}')\n        sys.exit(3)\n";
    let mut argv = vec![
        "sh".to_string(),
        "-c".into(),
        "PY=$(command -v python || command -v python3) || exit 0; exec \"$PY\" -c \"$0\" \"$@\""
            .into(),
        CHECK.into(),
    ];
    argv.extend(files);
    let out = sb
        .exec(&Exec::new(argv).timeout(Duration::from_secs(60)))
        .await
        .ok()?;
    (out.exit_code() == Some(3)).then(|| out.stdout.text().trim().to_string())
}

/// Temperature and seed of attempt `k` (0-based): the first samples as configured, the
/// others warmer (at least 0.7) so they differ; each has its own seed.
pub fn attempt_sampling(k: usize, configured: Option<f32>) -> (Option<f32>, Option<i64>) {
    let t = if k == 0 {
        configured
    } else {
        Some(configured.unwrap_or(0.0).max(0.7))
    };
    (t, Some(k as i64 + 1))
}

/// One attempt as the trajectory and summary.json record it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub index: usize,
    /// The agent's exit status kind (`submitted`, `limit_reached`...).
    pub exit: String,
    pub patch: String,
    pub temperature: Option<f32>,
    pub seed: Option<i64>,
    /// Where its own trajectory is.
    pub trajectory: Option<String>,
    pub steps: usize,
    pub cost_usd: f64,
    pub wall_secs: f64,
    /// Whether it wrote a reproduction.
    pub reproduction: bool,
}

/// Every candidate, the matrix, the scores and why the winner won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionRecord {
    pub candidates: Vec<AttemptRecord>,
    pub matrix: Matrix,
    pub choice: crate::select::Choice,
    /// The winner is not the first candidate.
    pub differs_from_first: bool,
    /// With one candidate: the first attempt ended without a patch and was run once more.
    #[serde(default)]
    pub retried: bool,
}

/// Ask the model which of the tied candidates (index, patch) fixes the issue; the index
/// it names, if it names one of them.
pub async fn judge(
    model: &dyn mend_llm::Model,
    issue: &str,
    tied: &[(usize, &str)],
) -> Option<usize> {
    let mut prompt = format!(
        "Several candidate patches for this issue passed the same checks. Which one fixes \
         the issue best? Answer with its number only, like `#2`.\n\n<issue>\n{issue}\n</issue>\n"
    );
    for (i, p) in tied {
        prompt.push_str(&format!(
            "\n<candidate number=\"#{}\">\n{p}\n</candidate>\n",
            i + 1
        ));
    }
    let msgs = [
        mend_llm::Message::system(
            "You review patches. Reply with the number of the best candidate.",
        ),
        mend_llm::Message::user(prompt),
    ];
    let reply = model.complete(&msgs, &[]).await.ok()?;
    pick_number(&reply.content, tied.iter().map(|(i, _)| *i))
}

/// The first `#N` (else bare number) in `text` that names one of `among` (1-based).
fn pick_number(text: &str, among: impl Iterator<Item = usize> + Clone) -> Option<usize> {
    let nums = |hash: bool| -> Vec<usize> {
        let re = if hash { r"#(\d+)" } else { r"\b(\d+)\b" };
        regex::Regex::new(re)
            .ok()
            .map(|r| {
                r.captures_iter(text)
                    .filter_map(|c| c[1].parse::<usize>().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    for n in nums(true).into_iter().chain(nums(false)) {
        if n >= 1 && among.clone().any(|i| i + 1 == n) {
            return Some(n - 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_differ_in_seed_and_the_later_ones_are_warmer() {
        assert_eq!(attempt_sampling(0, None), (None, Some(1)));
        assert_eq!(attempt_sampling(1, None), (Some(0.7), Some(2)));
        assert_eq!(attempt_sampling(2, Some(1.0)), (Some(1.0), Some(3)));
    }

    #[test]
    fn the_judges_answer_is_read_as_one_of_the_tied() {
        let among = [1usize, 3];
        assert_eq!(
            pick_number("I'd go with #4.", among.iter().copied()),
            Some(3)
        );
        assert_eq!(pick_number("Candidate 2", among.iter().copied()), Some(1));
        assert_eq!(
            pick_number("#1 is wrong; #2", among.iter().copied()),
            Some(1)
        );
        assert_eq!(pick_number("none of them", among.iter().copied()), None);
    }
}
