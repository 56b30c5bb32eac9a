//! Choosing one patch among several candidates by what running them showed (best-of-N).
//!
//! Pure: the evidence (does it apply and parse, which reproductions it passes, which
//! regression tests it breaks) is gathered elsewhere; this module scores it and explains
//! the choice. Order of decision:
//!
//! 1. candidates that are empty, do not apply or do not parse are out;
//! 2. score = 2 × the share of valid reproductions passed (a reproduction is valid when
//!    it fails on the base commit: "fails before, passes after" is the strongest evidence,
//!    so it counts most) + 1 when the regression guard found nothing broken (0.5 when it
//!    could not tell, 0.4 / n with n regressions: fewer is better);
//! 3. ties: the largest group of the same patch once whitespace and comments are ignored,
//!    then the smallest diff, then (optionally) a judge, then the earliest candidate.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What was learned about one candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateEvidence {
    pub patch: String,
    /// Why the candidate is out before any test (empty, does not apply, does not parse).
    pub dropped: Option<String>,
    /// `passes[j]`: whether this candidate passes reproduction `j` (`None`: not run).
    pub passes: Vec<Option<bool>>,
    /// Tests that passed on the base commit and fail with this candidate (`None`: the
    /// guard did not run).
    pub regressions: Option<Vec<String>>,
}

/// The evidence about all candidates; `valid[j]` says whether reproduction `j` failed on
/// the base commit (only those count: one that passes already shows nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub candidates: Vec<CandidateEvidence>,
    pub valid: Vec<bool>,
}

/// One candidate's line of the selection table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub index: usize,
    pub dropped: Option<String>,
    pub reproductions_passed: usize,
    pub reproductions_valid: usize,
    pub regressions: Option<usize>,
    /// In thousandths (integers, so ties are exact): 0..=3000.
    pub score: u32,
    /// How many surviving candidates make the same change (itself included).
    pub votes: usize,
    pub changed_lines: usize,
}

/// The choice and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// `None` when every candidate was dropped.
    pub winner: Option<usize>,
    pub rows: Vec<Row>,
    /// Distinct changes still tied after the vote and the diff size (what a judge would
    /// be asked about; one element when nothing was left to judge).
    pub tied: Vec<usize>,
    /// The candidates the judge was asked about (empty: it was not).
    pub judged_among: Vec<usize>,
    pub reason: String,
}

impl Choice {
    /// The selection table, one candidate a line.
    pub fn table(&self) -> String {
        let mut out =
            String::from(" #  verdict            repro   regressions  score  votes  lines\n");
        for r in &self.rows {
            let mark = if Some(r.index) == self.winner {
                "*"
            } else {
                " "
            };
            let verdict = match &r.dropped {
                Some(d) => format!("out: {d}"),
                None => "kept".into(),
            };
            let regs = match r.regressions {
                Some(n) => n.to_string(),
                None => "-".into(),
            };
            out.push_str(&format!(
                "{mark}{:<2} {:<18.18} {:>2}/{:<2}   {:>11}  {:>5.2}  {:>5}  {:>5}\n",
                r.index + 1,
                verdict,
                r.reproductions_passed,
                r.reproductions_valid,
                regs,
                r.score as f64 / 1000.0,
                r.votes,
                r.changed_lines
            ));
        }
        out
    }
}

/// Asked to pick among tied candidates (their indices); `None` leaves the tie as it is.
pub type Judge<'a> = &'a (dyn Fn(&[usize]) -> Option<usize> + Sync);

/// Score the candidates and pick one; see the module docs.
pub fn choose(ev: &Evidence, judge: Option<Judge<'_>>) -> Choice {
    let norms: Vec<String> = ev.candidates.iter().map(|c| normalize(&c.patch)).collect();
    let kept: Vec<usize> = (0..ev.candidates.len())
        .filter(|&i| dropped_reason(&ev.candidates[i]).is_none())
        .collect();
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in &kept {
        *groups.entry(norms[i].as_str()).or_default() += 1;
    }
    let valid_total = ev.valid.iter().filter(|v| **v).count();
    let rows: Vec<Row> = ev
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let dropped = dropped_reason(c);
            let passed = c
                .passes
                .iter()
                .enumerate()
                .filter(|(j, p)| ev.valid.get(*j).copied().unwrap_or(false) && **p == Some(true))
                .count();
            let regressions = c.regressions.as_ref().map(|r| r.len());
            let repro = (passed * 2000).checked_div(valid_total).unwrap_or(0) as u32;
            let guard = match regressions {
                Some(0) => 1000,
                Some(n) => (400 / n) as u32,
                None => 500,
            };
            Row {
                index: i,
                score: if dropped.is_some() { 0 } else { repro + guard },
                votes: if dropped.is_some() {
                    0
                } else {
                    groups.get(norms[i].as_str()).copied().unwrap_or(0)
                },
                dropped,
                reproductions_passed: passed,
                reproductions_valid: valid_total,
                regressions,
                changed_lines: changed_lines(&c.patch),
            }
        })
        .collect();
    if kept.is_empty() {
        return Choice {
            winner: None,
            rows,
            tied: vec![],
            judged_among: vec![],
            reason: "every candidate was dropped (empty, not applying or not parsing)".into(),
        };
    }
    let mut reasons: Vec<String> = Vec::new();
    let best = kept.iter().map(|&i| rows[i].score).max().unwrap_or(0);
    let mut tied: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|&i| rows[i].score == best)
        .collect();
    let r = &rows[tied[0]];
    reasons.push(format!(
        "highest score {:.2} (reproductions {}/{}, regressions {})",
        best as f64 / 1000.0,
        r.reproductions_passed,
        valid_total,
        r.regressions
            .map(|n| n.to_string())
            .unwrap_or_else(|| "not checked".into())
    ));
    if kept.len() < ev.candidates.len() {
        reasons.push(format!(
            "{} of {} dropped before testing",
            ev.candidates.len() - kept.len(),
            ev.candidates.len()
        ));
    }
    let mut narrow = |tied: &mut Vec<usize>, key: &dyn Fn(usize) -> i64, what: &str| {
        if tied.len() < 2 {
            return;
        }
        let top = tied.iter().map(|&i| key(i)).max().unwrap_or(0);
        let before = tied.len();
        tied.retain(|&i| key(i) == top);
        if tied.len() < before {
            reasons.push(what.replace("{}", &top.abs().to_string()));
        }
    };
    narrow(
        &mut tied,
        &|i| rows[i].votes as i64,
        "tie broken by majority: {} candidates make the same change",
    );
    narrow(
        &mut tied,
        &|i| -(rows[i].changed_lines as i64),
        "tie broken by the smallest diff ({} changed lines)",
    );
    // Same votes and size but different text: only distinct changes are worth judging.
    let mut distinct: Vec<usize> = Vec::new();
    for &i in &tied {
        if !distinct.iter().any(|&d| norms[d] == norms[i]) {
            distinct.push(i);
        }
    }
    let mut judged_among = vec![];
    if distinct.len() > 1
        && let Some(j) = judge
    {
        judged_among.clone_from(&distinct);
        match j(&distinct) {
            Some(pick) if distinct.contains(&pick) => {
                reasons.push(format!(
                    "the judge chose #{} among {}",
                    pick + 1,
                    list(&distinct)
                ));
                tied = vec![pick];
            }
            _ => reasons.push("the judge gave no usable choice".into()),
        }
    }
    let winner = tied[0];
    if tied.len() > 1 {
        reasons.push(format!("still tied ({}): the earliest wins", list(&tied)));
    }
    Choice {
        winner: Some(winner),
        rows,
        tied: distinct,
        judged_among,
        reason: format!("#{}: {}", winner + 1, reasons.join("; ")),
    }
}

fn list(ix: &[usize]) -> String {
    ix.iter()
        .map(|i| format!("#{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dropped_reason(c: &CandidateEvidence) -> Option<String> {
    if let Some(d) = &c.dropped {
        return Some(d.clone());
    }
    if c.patch.trim().is_empty() {
        return Some("empty".into());
    }
    None
}

/// A patch reduced to what it changes: per file, the added and removed lines with all
/// whitespace and `#`/`//` comments gone (lines left empty are dropped), so patches that
/// differ only in layout or comments compare equal.
pub fn normalize(patch: &str) -> String {
    let mut out = String::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("+++ ") {
            out.push_str("F ");
            out.push_str(rest.trim().trim_start_matches("b/"));
            out.push('\n');
            continue;
        }
        if line.starts_with("--- ") || line.starts_with("diff --git ") {
            continue;
        }
        let (sign, body) = match line.as_bytes().first() {
            Some(b'+') => ('+', &line[1..]),
            Some(b'-') => ('-', &line[1..]),
            _ => continue,
        };
        let code = strip_comment(body);
        let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if squeezed.is_empty() {
            continue;
        }
        out.push(sign);
        out.push_str(&squeezed);
        out.push('\n');
    }
    out
}

/// The line without a trailing `#` or `//` comment (quotes respected, roughly).
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == b'\\' => {
                let _ = q;
                i += 1;
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'#' => return &line[..i],
            None if c == b'/' && b.get(i + 1) == Some(&b'/') => return &line[..i],
            None => {}
        }
        i += 1;
    }
    line
}

/// Added plus removed lines of a unified diff.
pub fn changed_lines(patch: &str) -> usize {
    patch
        .lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(lines: &[&str]) -> String {
        let mut s =
            String::from("diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,1 +1,1 @@\n");
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    fn cand(patch: &str, passes: &[Option<bool>], regs: Option<usize>) -> CandidateEvidence {
        CandidateEvidence {
            patch: patch.into(),
            dropped: None,
            passes: passes.to_vec(),
            regressions: regs.map(|n| (0..n).map(|k| format!("t{k}")).collect()),
        }
    }

    #[test]
    fn normalize_ignores_whitespace_and_comments_but_not_code() {
        let a = diff(&["-x = 1", "+x = 2  # two"]);
        let b = diff(&["-x=1", "+x  =  2", "+# a comment", "+"]);
        let c = diff(&["-x = 1", "+x = 3"]);
        assert_eq!(normalize(&a), normalize(&b));
        assert_ne!(normalize(&a), normalize(&c));
        // A `#` inside a string is code.
        assert_ne!(
            normalize(&diff(&["+s = '#a'"])),
            normalize(&diff(&["+s = '#b'"]))
        );
        assert_eq!(changed_lines(&b), 4);
    }

    #[test]
    fn empty_unapplied_and_unparsable_candidates_are_out() {
        let mut broken = cand(&diff(&["+def f(:"]), &[], None);
        broken.dropped = Some("does not parse: m.py line 1".into());
        let ev = Evidence {
            candidates: vec![
                cand("", &[], None),
                broken,
                cand(&diff(&["+x = 1"]), &[], None),
            ],
            valid: vec![],
        };
        let c = choose(&ev, None);
        assert_eq!(c.winner, Some(2));
        assert_eq!(c.rows[0].dropped.as_deref(), Some("empty"));
        assert_eq!(c.rows[1].score, 0);
        assert!(c.reason.contains("2 of 3 dropped"), "{}", c.reason);
        let none = Evidence {
            candidates: vec![cand("  \n", &[], None)],
            valid: vec![],
        };
        assert_eq!(choose(&none, None).winner, None);
    }

    #[test]
    fn the_cross_matrix_and_the_guard_decide_before_votes() {
        // #1 fails the reproductions, #2 passes them but breaks a test, #3 is right;
        // #1 has a twin, so a vote alone would pick it.
        let wrong = diff(&["-x = 1", "+x = 0"]);
        let ev = Evidence {
            candidates: vec![
                cand(&wrong, &[Some(false), Some(false), Some(false)], Some(0)),
                cand(
                    &diff(&["+y = 2", "+z = 3"]),
                    &[Some(true), Some(true), Some(true)],
                    Some(1),
                ),
                cand(
                    &diff(&["-x = 1", "+x = 2"]),
                    &[Some(true), Some(true), Some(true)],
                    Some(0),
                ),
                cand(&wrong, &[Some(false), Some(false), Some(false)], Some(0)),
            ],
            // The third reproduction passes on base already: it does not count.
            valid: vec![true, true, false],
        };
        let c = choose(&ev, None);
        assert_eq!(c.winner, Some(2), "{}", c.table());
        // Passing the reproductions counts more than a clean guard.
        assert_eq!(c.rows[2].score, 3000);
        assert_eq!(c.rows[1].score, 2400);
        assert_eq!(c.rows[0].score, 1000);
        assert_eq!(c.rows[0].votes, 2);
        assert_eq!(c.rows[2].reproductions_valid, 2);
        assert!(c.table().contains("*3"), "{}", c.table());
    }

    #[test]
    fn ties_go_to_the_majority_then_the_smallest_diff_then_the_judge() {
        let a = diff(&["-x = 1", "+x = 2"]);
        let a2 = diff(&["-x = 1", "+x=2   # fixed"]);
        let big = diff(&["-x = 1", "+x = 2", "+y = 3"]);
        let ev = Evidence {
            candidates: vec![
                cand(&big, &[], None),
                cand(&a, &[], None),
                cand(&a2, &[], None),
            ],
            valid: vec![],
        };
        let c = choose(&ev, None);
        assert_eq!(c.winner, Some(1));
        assert!(c.reason.contains("majority"), "{}", c.reason);

        let small = diff(&["+y = 3"]);
        let ev = Evidence {
            candidates: vec![cand(&big, &[], None), cand(&small, &[], None)],
            valid: vec![],
        };
        let c = choose(&ev, None);
        assert_eq!(c.winner, Some(1));
        assert!(c.reason.contains("smallest diff"), "{}", c.reason);

        // Same size, different change: the judge is asked among the distinct ones.
        let other = diff(&["-x = 1", "+x = 5"]);
        let ev = Evidence {
            candidates: vec![cand(&a, &[], None), cand(&other, &[], None)],
            valid: vec![],
        };
        assert_eq!(choose(&ev, None).winner, Some(0));
        let judge = |among: &[usize]| {
            assert_eq!(among, &[0, 1]);
            Some(1)
        };
        let c = choose(&ev, Some(&judge));
        assert_eq!(c.winner, Some(1));
        assert_eq!(c.judged_among, vec![0, 1]);
        // A judge answering outside the tie is ignored.
        let bad = |_: &[usize]| Some(7);
        assert_eq!(choose(&ev, Some(&bad)).winner, Some(0));
    }

    #[test]
    fn an_unknown_guard_ranks_between_clean_and_broken() {
        let ev = Evidence {
            candidates: vec![
                cand(&diff(&["+a = 1"]), &[], Some(2)),
                cand(&diff(&["+b = 1"]), &[], None),
                cand(&diff(&["+c = 1"]), &[], Some(0)),
            ],
            valid: vec![],
        };
        let c = choose(&ev, None);
        assert_eq!(
            c.rows.iter().map(|r| r.score).collect::<Vec<_>>(),
            vec![200, 500, 1000]
        );
        assert_eq!(c.winner, Some(2));
    }
}
