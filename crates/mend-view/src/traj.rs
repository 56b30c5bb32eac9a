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
            let mut h = format!("{} {}", arg("mode"), arg("path")).trim().to_string();
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
                out.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", escape(k), generic(x)));
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

/// Best-of-N: the candidates, the selection matrix and why the winner won. Shapes vary
/// with the version that wrote them, so what is recognised is laid out and the whole
/// record is also shown as it is.
fn candidates(v: &Value) -> Option<Candidates> {
    if v.is_null() {
        return None;
    }
    let list = v
        .as_array()
        .or_else(|| v.get("candidates").and_then(Value::as_array))
        .cloned()
        .unwrap_or_default();
    let chosen_ix = ["chosen", "winner", "selected"]
        .iter()
        .find_map(|k| v.get(*k))
        .cloned()
        .unwrap_or(Value::Null);
    let why = ["why", "reason", "rationale"]
        .iter()
        .find_map(|k| v.get(*k).map(s))
        .unwrap_or_default();
    let items = list
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let label = c
                .get("label")
                .or_else(|| c.get("id"))
                .map(s)
                .unwrap_or_else(|| format!("#{i}"));
            let chosen = c.get("chosen").and_then(Value::as_bool).unwrap_or(false)
                || chosen_ix.as_u64() == Some(i as u64)
                || (chosen_ix.is_string() && s(&chosen_ix) == label);
            let patch = c.get("patch").map(s).unwrap_or_default();
            let summary = c
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, x)| {
                            !matches!(k.as_str(), "patch" | "trajectory" | "steps") && !x.is_object()
                                && !x.is_array()
                        })
                        .map(|(k, x)| format!("{k}: {}", s(x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            CandidateItem {
                label,
                chosen,
                summary,
                patch_html: if patch.is_empty() {
                    String::new()
                } else {
                    folded(&patch, true)
                },
            }
        })
        .collect::<Vec<_>>();
    // The matrix: a list of rows, or an object of rows, of cells.
    let (mut header, mut rows) = (vec![], vec![]);
    if let Some(m) = v.get("matrix").or_else(|| v.get("selection_matrix")) {
        if let Some(h) = m.get("columns").and_then(Value::as_array) {
            header = h.iter().map(s).collect();
        }
        let body = m.get("rows").unwrap_or(m);
        match body {
            Value::Array(a) => {
                for r in a {
                    match r {
                        Value::Array(cells) => rows.push(cells.iter().map(s).collect()),
                        Value::Object(o) => {
                            if header.is_empty() {
                                header = o.keys().cloned().collect();
                            }
                            rows.push(header.iter().map(|k| s(&r[k.as_str()])).collect());
                        }
                        other => rows.push(vec![s(other)]),
                    }
                }
            }
            Value::Object(o) => {
                for (k, r) in o {
                    let mut cells = vec![k.clone()];
                    match r {
                        Value::Array(a) => cells.extend(a.iter().map(s)),
                        Value::Object(inner) => {
                            if header.is_empty() {
                                header = std::iter::once(String::new())
                                    .chain(inner.keys().cloned())
                                    .collect();
                            }
                            cells.extend(inner.values().map(s));
                        }
                        other => cells.push(s(other)),
                    }
                    rows.push(cells);
                }
            }
            _ => {}
        }
    }
    Some(Candidates {
        count: items.len(),
        chosen: items
            .iter()
            .find(|i| i.chosen)
            .map(|i| i.label.clone())
            .unwrap_or_else(|| s(&chosen_ix)),
        why,
        header,
        rows,
        items,
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
        candidates: candidates(&t["candidates"]),
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
        assert_eq!((v.localized[0].path.as_str(), v.localized[0].why.as_str()), ("calc.py", "defines add"));
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
    fn candidates_with_a_matrix_are_laid_out() {
        let c = candidates(&json!({
            "candidates": [{"label": "a", "patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-x\n+y", "score": 1}, {"label": "b", "score": 3}],
            "chosen": 1, "why": "passes more tests",
            "matrix": {"columns": ["", "t1", "t2"], "rows": [["a", "fail", "pass"], ["b", "pass", "pass"]]},
        }))
        .unwrap();
        assert_eq!((c.count, c.chosen.as_str(), c.why.as_str()), (2, "b", "passes more tests"));
        assert_eq!(c.rows.len(), 2);
        assert_eq!(c.header, vec!["", "t1", "t2"]);
        assert!(c.items[1].chosen && !c.items[0].chosen);
        assert!(c.items[0].summary.contains("score: 1"));
    }
}
