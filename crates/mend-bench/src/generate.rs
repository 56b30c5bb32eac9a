//! Sampling completions through mend's model layer (its budgets, retries and accounting).
//!
//! Two prompt styles:
//! - [`PromptStyle::Completion`]: the model is asked to continue the given code (HumanEval's
//!   signature and docstring); its reply is the `completion`, cut where a new top-level
//!   statement starts, as the Codex paper's stop sequences do.
//! - [`PromptStyle::Chat`]: the task is asked for in words and the program is the fenced
//!   code block of the reply (EvalPlus's `solution`).
//!
//! Samples are appended to the samples file as they come; a rerun counts what is there and
//! asks only for the missing ones.
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use futures_util::StreamExt;
use mend_llm::{Message, Model};
use serde_json::{Value, json};

use crate::BenchError;
use crate::dataset::{Code, Problem};

/// How the model is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptStyle {
    Completion,
    Chat,
}

impl PromptStyle {
    /// Completion-style only makes sense when the prompt is code; otherwise chat.
    pub fn for_problem(self, problem: &Problem) -> PromptStyle {
        if problem.prompt_is_code {
            self
        } else {
            PromptStyle::Chat
        }
    }
}

/// The conversation for one sample.
pub fn messages(problem: &Problem, style: PromptStyle) -> Vec<Message> {
    match style.for_problem(problem) {
        PromptStyle::Completion => vec![
            Message::system(
                "You complete Python code. Reply with only the code that comes right after the \
                 given code (the function body), indented as it must be. No explanation, and \
                 do not repeat the given code.",
            ),
            Message::user(problem.prompt.clone()),
        ],
        PromptStyle::Chat => {
            let task = if problem.prompt_is_code {
                format!(
                    "Complete this Python function:\n```python\n{}```\n",
                    problem.prompt
                )
            } else {
                problem.prompt.clone()
            };
            vec![
                Message::system(
                    "You are an expert Python programmer. Answer with one complete, \
                     self-contained Python program in a single ```python code block.",
                ),
                Message::user(task),
            ]
        }
    }
}

/// The sample code in a reply.
pub fn extract(problem: &Problem, style: PromptStyle, reply: &str) -> Code {
    match style.for_problem(problem) {
        PromptStyle::Completion => {
            let body = fenced_blocks(reply)
                .into_iter()
                .next()
                .unwrap_or_else(|| without_fences(reply));
            // A model that repeated the signature wrote a whole function.
            if let Some(entry) = &problem.entry_point
                && body.contains(&format!("def {entry}("))
            {
                return Code::Solution(body);
            }
            Code::Completion(stop_at_top_level(&body))
        }
        PromptStyle::Chat => {
            let blocks = fenced_blocks(reply);
            let pick = problem
                .entry_point
                .as_ref()
                .and_then(|e| blocks.iter().find(|b| b.contains(&format!("def {e}("))))
                .or(blocks.first())
                .cloned();
            Code::Solution(pick.unwrap_or_else(|| without_fences(reply)))
        }
    }
}

/// The contents of ```python / ```py / ``` blocks, in order (an unclosed last block counts).
fn fenced_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        let t = line.trim_start();
        match &mut current {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    let info = info.trim().to_ascii_lowercase();
                    if info.is_empty() || info == "python" || info == "py" || info == "python3" {
                        current = Some(Vec::new());
                    }
                }
            }
            Some(lines) => {
                if t.starts_with("```") {
                    out.push(lines.join("\n") + "\n");
                    current = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    if let Some(lines) = current.filter(|l| !l.is_empty()) {
        out.push(lines.join("\n") + "\n");
    }
    out
}

/// A reply with no complete fenced block, less any stray fence line (a closing ``` with no
/// opening one is common in small models' replies).
fn without_fences(reply: &str) -> String {
    reply
        .split_inclusive('\n')
        .filter(|l| !l.trim_start().starts_with("```"))
        .collect()
}

/// Cut a completion where the function body ends: at the first non-blank line that starts
/// at column 0 (the Codex paper's stops: `\ndef`, `\nclass`, `\nif`, `\nprint`, `\n#`).
fn stop_at_top_level(body: &str) -> String {
    let mut out = String::new();
    for (i, line) in body.split_inclusive('\n').enumerate() {
        let top = !line.starts_with([' ', '\t']) && !line.trim().is_empty();
        if top && i > 0 {
            break;
        }
        if top && i == 0 {
            // The model left the body's indentation out of the first line: give it back.
            out.push_str("    ");
        }
        out.push_str(line);
    }
    out
}

/// What sampling did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenStats {
    pub requested: usize,
    /// Samples the file already had.
    pub existing: usize,
    pub failed_calls: usize,
}

/// Ask `model` for `n` samples of every problem, `concurrency` calls at a time, appending
/// `{"task_id", "completion"|"solution"}` lines to `samples`. Problems that already have
/// `n` samples there are skipped. A call that fails (budget, retries exhausted) stops the
/// run with its error after the calls in flight are written.
pub async fn generate(
    model: &dyn Model,
    problems: &[Problem],
    n: usize,
    style: PromptStyle,
    concurrency: usize,
    samples: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<GenStats, BenchError> {
    let io = |e: std::io::Error| BenchError::Io {
        path: samples.to_path_buf(),
        source: e,
    };
    let mut have: HashMap<String, usize> = HashMap::new();
    match std::fs::read_to_string(samples) {
        Ok(text) => {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line)
                    && let Some(t) = v.get("task_id").and_then(Value::as_str)
                {
                    *have.entry(t.to_string()).or_default() += 1;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut stats = GenStats {
        existing: have.values().sum(),
        ..Default::default()
    };
    let todo: Vec<&Problem> = problems
        .iter()
        .flat_map(|p| {
            let missing = n.saturating_sub(have.get(&p.task_id).copied().unwrap_or(0));
            std::iter::repeat_n(p, missing)
        })
        .collect();
    stats.requested = todo.len();
    if let Some(dir) = samples.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(samples)
            .map_err(io)?,
    );
    let total = todo.len();
    let done = Mutex::new(0usize);
    let mut first_error = None;
    let mut calls = futures_util::stream::iter(todo.into_iter().map(|p| async move {
        let reply = model.complete(&messages(p, style), &[]).await;
        (p, reply)
    }))
    .buffer_unordered(concurrency.max(1));
    while let Some((p, reply)) = calls.next().await {
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                stats.failed_calls += 1;
                first_error.get_or_insert(e);
                continue;
            }
        };
        let code = extract(p, style, &reply.content);
        let rec = match code {
            Code::Completion(c) => json!({"task_id": p.task_id, "completion": c}),
            Code::Solution(s) => json!({"task_id": p.task_id, "solution": s}),
        };
        if let Ok(mut f) = file.lock() {
            writeln!(f, "{rec}").map_err(io)?;
        }
        let d = done.lock().map(|mut d| {
            *d += 1;
            *d
        });
        progress(d.unwrap_or(0), total);
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Check;

    fn problem() -> Problem {
        Problem {
            task_id: "HumanEval/0".into(),
            prompt: "def add(a, b):\n    \"\"\"Add.\"\"\"\n".into(),
            prompt_is_code: true,
            prefix: "def add(a, b):\n    \"\"\"Add.\"\"\"\n".into(),
            entry_point: Some("add".into()),
            canonical: None,
            check: Check::Script {
                test: String::new(),
            },
            preamble: String::new(),
        }
    }

    #[test]
    fn completions_stop_at_the_next_top_level_statement() {
        let p = problem();
        let c = extract(
            &p,
            PromptStyle::Completion,
            "    return a + b\n\nprint(add(1, 2))\n",
        );
        assert_eq!(c, Code::Completion("    return a + b\n\n".into()));
        // Fenced, first line unindented.
        let c = extract(&p, PromptStyle::Completion, "```python\nreturn a + b\n```");
        assert_eq!(c, Code::Completion("    return a + b\n".into()));
        // The whole function repeated: a solution.
        let c = extract(
            &p,
            PromptStyle::Completion,
            "def add(a, b):\n    return a + b\n",
        );
        assert!(matches!(c, Code::Solution(_)));
    }

    #[test]
    fn chat_replies_give_the_block_with_the_entry_point() {
        let p = problem();
        let reply = "Here:\n```python\nimport math\n```\nand\n```python\ndef add(a, b):\n    return a + b\n```\nDone.";
        assert_eq!(
            extract(&p, PromptStyle::Chat, reply),
            Code::Solution("def add(a, b):\n    return a + b\n".into())
        );
        assert_eq!(
            extract(&p, PromptStyle::Chat, "```\nx = 1"),
            Code::Solution("x = 1\n".into())
        );
        // A closing fence with no opening one.
        assert_eq!(
            extract(
                &p,
                PromptStyle::Chat,
                "def add(a, b):\n    return a + b\n```"
            ),
            Code::Solution("def add(a, b):\n    return a + b\n".into())
        );
    }
}
