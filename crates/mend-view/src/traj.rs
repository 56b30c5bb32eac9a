//! A trajectory (as `mend-agent` writes it) turned into what the instance page shows:
//! steps with reasoning, tool calls and observations, edits as diffs, test runs,
//! condensations, candidates and the final patch. Read from JSON values so that absent or
//! newer fields never stop a page from rendering.
use serde::Serialize;
use serde_json::Value;

use crate::html::{diff, escape, folded, has_diff};

#[derive(Debug, Serialize)]
pub struct TrajView {
    pub model: String,
    pub mend_version: String,
    pub issue: String,
    pub base_commit: String,
    pub localized: Vec<Localized>,
    pub steps: Vec<StepView>,
    pub test_runs: Vec<TestRunView>,
    pub condensations: Vec<CondView>,
    pub steps_total: u64,
    pub model_calls: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub wall_secs: f64,
    /// `submitted`, `limit_reached`... (empty while running).
    pub exit_kind: String,
    pub exit_line: String,
    pub patch_html: String,
    pub patch_empty: bool,
    pub left_out: Vec<Localized>,
    /// Best-of-N candidates, when the run made several.
    pub candidates: Option<Candidates>,
    pub verification: Option<Verification>,
    /// Sections a newer mend added (reproduction, regression...): title and HTML.
    pub extra: Vec<Section>,
}

#[derive(Debug, Serialize)]
pub struct Localized {
    pub path: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub index: u64,
    /// `overflow` or `summary` for calls that were not the step's action.
    pub kind: String,
    pub reasoning: String,
    pub content: String,
    pub error: String,
    pub actions: Vec<ActionView>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    pub model_ms: u64,
    pub tools_ms: u64,
    pub condensations: Vec<CondView>,
}

#[derive(Debug, Serialize)]
pub struct ActionView {
    pub tool: String,
    /// One line saying what the call does (the command, the path...).
    pub headline: String,
    pub args_html: String,
    pub obs_html: String,
    /// `passed`/`failed` for test runs.
    pub outcome: String,
    pub is_edit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CondView {
    pub step: u64,
    pub trigger: String,
    pub stage: String,
    pub tokens_before: u64,
    pub tokens_after: u64,
    pub masked: u64,
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct TestRunView {
    pub command: String,
    pub passed: bool,
    pub status: String,
    pub output_html: String,
}

#[derive(Debug, Serialize)]
pub struct Candidates {
    pub count: usize,
    pub chosen: String,
    pub why: String,
    /// The selection matrix: header and rows of cells.
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Each candidate's patch and score.
    pub items: Vec<CandidateItem>,
    pub raw_html: String,
}

#[derive(Debug, Serialize)]
pub struct CandidateItem {
    pub label: String,
    pub chosen: bool,
    pub summary: String,
    pub patch_html: String,
}

#[derive(Debug, Serialize)]
pub struct Verification {
    /// The reproduction script's path.
    pub reproduction: String,
    pub repro_base: Option<ReproView>,
    pub repro_final: Option<ReproView>,
    pub regressions: Vec<String>,
    pub preexisting: Vec<String>,
    pub checks_html: String,
    pub raw_html: String,
}

#[derive(Debug, Serialize)]
pub struct ReproView {
    pub outcome: String,
    pub exit_code: String,
    pub output_html: String,
}

#[derive(Debug, Serialize)]
pub struct Section {
    pub title: String,
    pub html: String,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

/// The files the first prompt named as likely relevant, with why (as `instance.md.j2`
/// renders them: a header line, then `- path — why`).
fn localized(prompt: &[Value]) -> Vec<Localized> {
    let Some(text) = prompt
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
    else {
        return vec![];
    };
    let mut out = vec![];
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("Files most likely relevant") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        let Some(item) = line.strip_prefix("- ") else {
            break;
        };
        let (path, why) = item.split_once(" — ").unwrap_or((item, ""));
        out.push(Localized {
            path: path.to_string(),
            why: why.to_string(),
        });
    }
    out
}

/// The exit status as one line, as `ExitStatus::line` words it.
fn exit_line(v: &Value) -> (String, String) {
    let kind = s(&v["status"]);
    let detail = &v["detail"];
    let line = match kind.as_str() {
        "" => "running (no exit status yet)".to_string(),
        "submitted" => match detail["tests"].as_str() {
            Some("passed") => "submitted, tests passing".into(),
            Some("failed") => "submitted, tests failing".into(),
            Some("only_preexisting_failures") => {
                "submitted, tests passing except ones that failed before the change too".into()
            }
            _ => "submitted, no tests run".into(),
        },
        "limit_reached" => format!("stopped: {}", s(detail)),
        "loop_detected" => "stopped: the model kept repeating the same action".into(),
        "model_error" => format!("error: model: {}", s(detail)),
        "model_unavailable" => format!("error: model unreachable: {}", s(detail)),
        "sandbox_error" => format!("error: sandbox: {}", s(detail)),
        other => format!("{other} {}", s(detail)).trim().to_string(),
    };
    (kind, line)
}

fn condensation(c: &Value) -> CondView {
    CondView {
        step: u(&c["step"]),
        trigger: s(&c["trigger"]),
        stage: s(&c["stage"]),
        tokens_before: u(&c["tokens_before"]),
        tokens_after: u(&c["tokens_after"]),
        masked: u(&c["masked"]),
        summary: s(&c["summary"]),
    }
}

/// A tool call's arguments: the interesting ones first, as the reader wants them.
fn action(a: &Value) -> ActionView {
    let tool = s(&a["tool"]);
    let args = &a["arguments"];
    let obs = s(&a["observation"]);
    let arg = |k: &str| args.get(k).map(s).unwrap_or_default();
    let headline = match tool.as_str() {
        "bash" => arg("command"),
        "view" | "edit" => {
            let mut h = format!("{} {}", arg("mode"), arg("path"))
                .trim()
                .to_string();
            if args.get("start").is_some() || args.get("end").is_some() {
                h.push_str(&format!(" [{}..{}]", arg("start"), arg("end")));
            }
            h
        }
        "search" => [arg("pattern"), arg("symbol"), arg("path")]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(" in "),
        "run_tests" => arg("target"),
        "submit" => arg("summary"),
        _ => String::new(),
    };
    let is_edit = tool == "edit";
    let args_html = if is_edit && (args.get("old_text").is_some() || args.get("new_text").is_some())
    {
        // The change as the model asked for it, old above new.
        let mut d = String::new();
        for l in arg("old_text").lines() {
            d.push_str(&format!("-{l}\n"));
        }
        for l in arg("new_text").lines() {
            d.push_str(&format!("+{l}\n"));
        }
        folded(&d, true)
    } else if matches!(
        tool.as_str(),
        "bash" | "view" | "search" | "run_tests" | "submit"
    ) {
        String::new()
    } else {
        let pretty = serde_json::to_string_pretty(args).unwrap_or_default();
        folded(&pretty, false)
    };
    let outcome = match tool.as_str() {
        "run_tests" => {
            let first = obs.lines().next().unwrap_or("");
            if first.trim_end().ends_with("(passed)") {
                "passed".into()
            } else {
                "failed".into()
            }
        }
        _ => String::new(),
    };
    ActionView {
        obs_html: folded(&obs, has_diff(&obs)),
        tool,
        headline,
        args_html,
        outcome,
        is_edit,
    }
}

fn step(v: &Value, conds: &[CondView]) -> StepView {
    let index = u(&v["index"]);
    let a = &v["assistant"];
    // Reasoning some servers return beside the answer is in the raw exchange's response.
    let reasoning = s(&v["raw"]["response"]["reasoning"]);
    StepView {
        index,
        kind: s(&v["kind"]),
        reasoning,
        content: s(&a["content"]),
        error: s(&a["error"]),
        actions: v["actions"]
            .as_array()
            .map(|l| l.iter().map(action).collect())
            .unwrap_or_default(),
        tokens_in: u(&v["tokens_in"]),
        tokens_out: u(&v["tokens_out"]),
        cost_usd: v["cost_usd"].as_f64().unwrap_or(0.0),
        model_ms: u(&v["model_ms"]),
        tools_ms: u(&v["tools_ms"]),
        condensations: conds.iter().filter(|c| c.step == index).cloned().collect(),
    }
}

/// A JSON value as a small HTML table (objects) or list, for sections this viewer has no
/// special layout for.
pub fn generic(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut out = String::from("<table class=\"kv\">");
            for (k, x) in m {
                out.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape(k),
                    generic(x)
                ));
            }
            out.push_str("</table>");
            out
        }
        Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {
            let mut keys: Vec<String> = vec![];
            for x in a {
                for k in x.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            let mut out = String::from("<table class=\"grid\"><tr>");
            for k in &keys {
                out.push_str(&format!("<th>{}</th>", escape(k)));
            }
            out.push_str("</tr>");
            for x in a {
                out.push_str("<tr>");
                for k in &keys {
                    out.push_str(&format!("<td>{}</td>", generic(&x[k.as_str()])));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
            out
        }
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(generic).collect();
            format!("<ul><li>{}</li></ul>", items.join("</li><li>"))
        }
        Value::String(t) if has_diff(t) => folded(t, true),
        Value::String(t) if t.contains('\n') => folded(t, false),
        Value::String(t) => escape(t),
        Value::Null => String::from("<span class=\"muted\">–</span>"),
        other => escape(&other.to_string()),
    }
}

/// Best-of-N: the candidates, the selection matrix and why the winner won, from the
/// trajectory's `selection` record (mend-agent's `SelectionRecord`: `candidates`, `matrix`
/// of reproduction runs, `choice` with a score row per candidate and the reason). Older or
/// other shapes still show: what is recognised is laid out, and the whole record is
/// always there as it is.
fn candidates(v: &Value) -> Option<Candidates> {
    if v.is_null() {
        return None;
    }
    let list = v
        .as_array()
        .or_else(|| v.get("candidates").and_then(Value::as_array))
        .cloned()
        .unwrap_or_default();
    let choice = &v["choice"];
    let winner = choice
        .get("winner")
        .or_else(|| v.get("winner"))
        .or_else(|| v.get("chosen"))
        .and_then(Value::as_u64);
    let why = [&choice["reason"], &v["reason"], &v["why"]]
        .into_iter()
        .map(s)
        .find(|x| !x.is_empty())
        .unwrap_or_default();
    let label = |i: usize, c: &Value| {
        c.get("index")
            .and_then(Value::as_u64)
            .map(|n| format!("#{}", n + 1))
            .unwrap_or_else(|| format!("#{}", i + 1))
    };
    let score_rows: Vec<Value> = choice["rows"].as_array().cloned().unwrap_or_default();
    let items = list
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ix = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let patch = s(&c["patch"]);
            let mut facts = vec![];
            for k in [
                "exit",
                "steps",
                "cost_usd",
                "wall_secs",
                "temperature",
                "seed",
            ] {
                if let Some(x) = c.get(k).filter(|x| !x.is_null()) {
                    facts.push(format!("{}: {}", k.replace('_', " "), s(x)));
                }
            }
            if c["reproduction"].as_bool() == Some(true) {
                facts.push("wrote a reproduction".into());
            }
            if let Some(row) = score_rows.iter().find(|r| r["index"].as_u64() == Some(ix)) {
                facts.push(format!("score {}", s(&row["score"])));
                if let Some(d) = row["dropped"].as_str() {
                    facts.push(format!("dropped: {d}"));
                }
            }
            CandidateItem {
                label: label(i, c),
                chosen: winner == Some(ix),
                summary: facts.join(" · "),
                patch_html: if patch.trim().is_empty() {
                    "<p class=\"muted\">empty patch</p>".into()
                } else {
                    folded(&patch, true)
                },
            }
        })
        .collect::<Vec<_>>();
    // The matrix: candidate i (rows) run against the reproduction candidate j wrote
    // (columns), with the reproductions' outcome on the base commit first; then the
    // score columns of the choice.
    let m = &v["matrix"];
    let runs = m["runs"].as_array().cloned().unwrap_or_default();
    let base = m["base"].as_array().cloned().unwrap_or_default();
    let repros = runs
        .iter()
        .filter_map(Value::as_array)
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(base.len());
    let (mut header, mut rows) = (vec![], vec![]);
    if repros > 0 || !score_rows.is_empty() {
        header.push("candidate".to_string());
        header.extend((0..repros).map(|j| format!("repro #{}", j + 1)));
        if !score_rows.is_empty() {
            header.extend(
                [
                    "reproductions passed",
                    "regressions",
                    "votes",
                    "changed lines",
                    "score",
                ]
                .map(String::from),
            );
        }
        let cell = |x: Option<&Value>| match x {
            None | Some(Value::Null) => "–".to_string(),
            Some(x) => s(x).replace('_', " "),
        };
        if !base.is_empty() {
            let mut r = vec!["base commit".to_string()];
            r.extend((0..repros).map(|j| cell(base.get(j))));
            r.resize(header.len(), String::new());
            rows.push(r);
        }
        let n = runs.len().max(score_rows.len());
        for i in 0..n {
            let mut r = vec![
                items
                    .get(i)
                    .map(|c| c.label.clone())
                    .unwrap_or(format!("#{}", i + 1)),
            ];
            r.extend((0..repros).map(|j| cell(runs.get(i).and_then(|row| row.get(j)))));
            if let Some(sr) = score_rows.get(i) {
                r.push(format!(
                    "{}/{}",
                    s(&sr["reproductions_passed"]),
                    s(&sr["reproductions_valid"])
                ));
                r.push(cell(sr.get("regressions")));
                r.push(s(&sr["votes"]));
                r.push(s(&sr["changed_lines"]));
                r.push(s(&sr["score"]));
            }
            r.resize(header.len(), String::new());
            rows.push(r);
        }
    }
    Some(Candidates {
        count: items.len(),
        chosen: items
            .iter()
            .find(|i| i.chosen)
            .map(|i| i.label.clone())
            .unwrap_or_else(|| "none (every candidate was dropped)".into()),
        why,
        header,
        rows,
        items,
        raw_html: generic(v),
    })
}

/// mend's own checks at submit (the trajectory's `verification`): the reproduction on the
/// base commit and on the patch, regressions, each submit's check.
fn verification(v: &Value) -> Option<Verification> {
    if !v.is_object() {
        return None;
    }
    let run = |r: &Value| {
        (!r.is_null()).then(|| ReproView {
            outcome: s(&r["outcome"]).replace('_', " "),
            exit_code: s(&r["exit_code"]),
            output_html: folded(&s(&r["output"]), false),
        })
    };
    let list = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default()
    };
    Some(Verification {
        reproduction: s(&v["reproduction"]["path"]),
        repro_base: run(&v["repro_base"]),
        repro_final: run(&v["repro_final"]),
        regressions: list(&v["regressions"]),
        preexisting: list(&v["preexisting_failures"]),
        checks_html: match &v["checks"] {
            Value::Array(a) if !a.is_empty() => generic(&v["checks"]),
            _ => String::new(),
        },
        raw_html: generic(v),
    })
}

/// Fields of a trajectory this viewer lays out itself; any other is shown as a section.
const KNOWN: &[&str] = &[
    "mend_version",
    "model",
    "issue",
    "base_commit",
    "templates",
    "tools",
    "prompt",
    "steps",
    "test_runs",
    "condensations",
    "prompt_budget",
    "totals",
    "exit_status",
    "patch",
    "left_out",
    "started_at_unix",
    "candidates",
    "selection",
    "verification",
];

pub fn view(t: &Value) -> TrajView {
    let conds: Vec<CondView> = t["condensations"]
        .as_array()
        .map(|l| l.iter().map(condensation).collect())
        .unwrap_or_default();
    let (exit_kind, exit_line) = exit_line(&t["exit_status"]);
    let patch = s(&t["patch"]);
    let totals = &t["totals"];
    let extra = t
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| !KNOWN.contains(&k.as_str()) && !v.is_null())
                .map(|(k, v)| Section {
                    title: k.replace('_', " "),
                    html: generic(v),
                })
                .collect()
        })
        .unwrap_or_default();
    TrajView {
        model: s(&t["model"]),
        mend_version: s(&t["mend_version"]),
        issue: s(&t["issue"]),
        base_commit: s(&t["base_commit"]),
        localized: localized(t["prompt"].as_array().map(Vec::as_slice).unwrap_or(&[])),
        steps: t["steps"]
            .as_array()
            .map(|l| l.iter().map(|x| step(x, &conds)).collect())
            .unwrap_or_default(),
        test_runs: t["test_runs"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|r| TestRunView {
                        command: s(&r["command"]),
                        passed: r["passed"].as_bool().unwrap_or(false),
                        status: s(&r["status"]),
                        output_html: folded(&s(&r["condensed"]), false),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        condensations: conds,
        steps_total: u(&totals["steps"]),
        model_calls: u(&totals["model_calls"]),
        tokens_in: u(&totals["tokens_in"]),
        tokens_out: u(&totals["tokens_out"]),
        cost_usd: totals["cost_usd"].as_f64().unwrap_or(0.0),
        wall_secs: totals["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        exit_kind,
        exit_line,
        patch_empty: patch.trim().is_empty(),
        patch_html: diff(&patch),
        left_out: t["left_out"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|x| Localized {
                        path: s(&x["path"]),
                        why: s(&x["reason"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        // `selection` is what mend writes; `candidates` an older name.
        candidates: candidates(if t["selection"].is_null() {
            &t["candidates"]
        } else {
            &t["selection"]
        }),
        verification: verification(&t["verification"]),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trajectory_with_absent_fields_still_views() {
        let v = view(&json!({"steps": []}));
        assert_eq!(v.exit_line, "running (no exit status yet)");
        assert!(v.patch_empty && v.candidates.is_none() && v.extra.is_empty());
    }

    #[test]
    fn steps_actions_and_localized_files_are_read() {
        let t = json!({
            "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content":
                "<issue>x</issue>\nFiles most likely relevant to the issue (ranked):\n- calc.py — defines add\n- b.py\n\nFix it."}],
            "steps": [{"index": 1, "assistant": {"content": "I will fix it"}, "actions": [
                {"tool": "edit", "arguments": {"mode": "replace", "path": "calc.py", "old_text": "a - b", "new_text": "a + b"},
                 "observation": "edited\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a - b\n+a + b"},
                {"tool": "run_tests", "arguments": {}, "observation": "pytest (exit 1)\nFAILED"}],
                "tokens_in": 10, "tokens_out": 2, "cost_usd": 0.5, "model_ms": 3, "tools_ms": 4}],
            "condensations": [{"step": 1, "trigger": "budget", "stage": "masked", "tokens_before": 9, "tokens_after": 3, "masked": 2}],
            "exit_status": {"status": "limit_reached", "detail": "step limit (1)"},
            "reproduction": {"passed": true},
        });
        let v = view(&t);
        assert_eq!(v.localized.len(), 2);
        assert_eq!(
            (v.localized[0].path.as_str(), v.localized[0].why.as_str()),
            ("calc.py", "defines add")
        );
        let st = &v.steps[0];
        assert_eq!(st.content, "I will fix it");
        assert!(st.actions[0].is_edit && st.actions[0].obs_html.contains("class=\"da\""));
        assert!(st.actions[0].args_html.contains("-a - b"));
        assert_eq!(st.actions[1].outcome, "failed");
        assert_eq!(st.condensations.len(), 1);
        assert_eq!(v.exit_line, "stopped: step limit (1)");
        assert_eq!(v.extra[0].title, "reproduction");
    }

    #[test]
    fn a_selection_record_is_laid_out_as_a_matrix_with_scores() {
        let sel = json!({
            "candidates": [
                {"index": 0, "exit": "submitted", "patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-x\n+y", "steps": 4, "cost_usd": 0.1, "reproduction": true},
                {"index": 1, "exit": "limit_reached", "patch": "", "steps": 9, "cost_usd": 0.2, "reproduction": false}],
            "matrix": {"base": ["reproduces", null], "runs": [["fixed", null], ["reproduces", null]], "failing_on_base": [], "notes": [], "ms": 5},
            "choice": {"winner": 0, "rows": [
                {"index": 0, "dropped": null, "reproductions_passed": 1, "reproductions_valid": 1, "regressions": 0, "score": 3000, "votes": 1, "changed_lines": 2},
                {"index": 1, "dropped": "empty patch", "reproductions_passed": 0, "reproductions_valid": 1, "regressions": null, "score": 0, "votes": 0, "changed_lines": 0}],
                "tied": [0], "judged_among": [], "reason": "only #1 passes the reproduction"},
            "differs_from_first": false, "retried": false});
        let v = view(&json!({"steps": [], "selection": sel, "verification": {
            "repro_base": {"outcome": "reproduces", "exit_code": 1, "output": "AssertionError", "ms": 3},
            "repro_final": {"outcome": "fixed", "exit_code": 0, "output": "", "ms": 3},
            "regressions": [], "checks": [{"step": 4, "repro": "fixed", "regressions": []}], "ms": 9}}));
        let c = v.candidates.unwrap();
        assert_eq!((c.count, c.chosen.as_str()), (2, "#1"));
        assert_eq!(c.why, "only #1 passes the reproduction");
        assert_eq!(c.header[..3], ["candidate", "repro #1", "repro #2"]);
        assert_eq!(c.rows[0][..3], ["base commit", "reproduces", "–"]);
        assert_eq!(
            c.rows[1],
            ["#1", "fixed", "–", "1/1", "0", "1", "2", "3000"]
        );
        assert!(
            c.items[1].summary.contains("dropped: empty patch"),
            "{}",
            c.items[1].summary
        );
        assert!(c.items[0].chosen && c.items[1].patch_html.contains("empty patch"));
        let ver = v.verification.unwrap();
        assert_eq!(ver.repro_base.unwrap().outcome, "reproduces");
        assert_eq!(ver.repro_final.unwrap().outcome, "fixed");
        assert!(ver.checks_html.contains("<table"));
        assert!(
            v.extra.is_empty(),
            "selection and verification have their own sections"
        );
    }
}
