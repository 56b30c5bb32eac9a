//! The tools the model sees (bash, view, search, edit, run_tests, submit): their schemas,
//! with descriptions from `prompts/tools.toml`, and their execution in the sandbox.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mend_index::Index;
use mend_llm::ToolDef;
use mend_sandbox::{Exec, Sandbox, SandboxError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::condense::{clip, condense_test_output};
use crate::edit::{EditEngine, EditOp};
use crate::prompts::Prompts;

/// Longest observation the model sees from one tool call, in characters.
pub const MAX_OBSERVATION_CHARS: usize = 12_000;
const VIEW_MAX_LINES: usize = 400;

/// What running a tool produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolResult {
    /// Text to show the model.
    Observation(String),
    /// The model called `submit`.
    Submit { summary: String },
}

/// The outcome of a test run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestRun {
    pub command: String,
    pub passed: bool,
    pub status: String,
    pub condensed: String,
    /// The whole output, for reading test by test (not kept in the trajectory).
    #[serde(skip)]
    pub log: String,
}

/// The six tools, bound to one sandbox.
pub struct Toolbox {
    sandbox: Arc<dyn Sandbox>,
    pub edits: EditEngine,
    test_command: Option<String>,
    symbols: Option<Arc<Index>>,
    pub bash_timeout: Duration,
    pub test_timeout: Duration,
    /// The file `view` showed last, for SWE-agent's `goto`.
    last_viewed: Option<String>,
}

impl Toolbox {
    pub fn new(
        sandbox: Arc<dyn Sandbox>,
        test_command: Option<String>,
        symbols: Option<Arc<Index>>,
    ) -> Self {
        Toolbox {
            sandbox,
            edits: EditEngine::new(),
            test_command,
            symbols,
            bash_timeout: Duration::from_secs(120),
            test_timeout: Duration::from_secs(900),
            last_viewed: None,
        }
    }

    pub fn sandbox(&self) -> &Arc<dyn Sandbox> {
        &self.sandbox
    }

    /// The index of the repository at its base commit, when one was built.
    pub fn index(&self) -> Option<&Arc<Index>> {
        self.symbols.as_ref()
    }

    pub fn test_command(&self) -> Option<&str> {
        self.test_command.as_deref()
    }

    /// Find a test command when none was configured: pytest when the project looks like
    /// it uses it and it is installed, else unittest discovery.
    pub async fn detect_test_command(&mut self) -> Option<String> {
        if self.test_command.is_some() {
            return self.test_command.clone();
        }
        let probe = "if python3 -c 'import pytest' >/dev/null 2>&1; then echo pytest; \
                     elif [ -d tests ] || [ -d test ] || ls test_*.py >/dev/null 2>&1; then echo unittest; fi";
        let out = self
            .sandbox
            .exec(&Exec::shell(probe).timeout(Duration::from_secs(60)))
            .await
            .ok()?;
        let cmd = match out.stdout.text().trim() {
            "pytest" => "python3 -m pytest -q -rA -p no:cacheprovider",
            "unittest" => "python3 -m unittest discover -v",
            _ => return None,
        };
        self.test_command = Some(cmd.to_string());
        self.test_command.clone()
    }

    /// The tool specs, with descriptions from `tools.toml`.
    pub fn specs(prompts: &Prompts) -> Vec<ToolDef> {
        let docs: BTreeMap<String, toml::Value> = prompts
            .raw("tools.toml")
            .and_then(|t| toml::from_str(t).ok())
            .unwrap_or_default();
        let desc = |tool: &str| {
            docs.get(tool)
                .and_then(|t| t.get("description"))
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string()
        };
        let arg = |tool: &str, a: &str| {
            docs.get(tool)
                .and_then(|t| t.get("args"))
                .and_then(|x| x.get(a))
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string()
        };
        let s = |tool: &str, a: &str| json!({"type": "string", "description": arg(tool, a)});
        let i = |tool: &str, a: &str| json!({"type": "integer", "description": arg(tool, a)});
        let spec = |name: &str, props: Value, required: &[&str]| ToolDef {
            name: name.into(),
            description: desc(name),
            parameters: json!({"type": "object", "properties": props, "required": required}),
        };
        vec![
            spec(
                "bash",
                json!({"command": s("bash", "command"), "timeout": i("bash", "timeout")}),
                &["command"],
            ),
            spec(
                "view",
                json!({"path": s("view", "path"), "start": i("view", "start"), "end": i("view", "end")}),
                &["path"],
            ),
            spec(
                "search",
                json!({"pattern": s("search", "pattern"), "symbol": s("search", "symbol"), "path": s("search", "path")}),
                &[],
            ),
            spec(
                "edit",
                json!({
                    "mode": {"type": "string", "enum": ["replace", "insert", "create", "undo"], "description": arg("edit", "mode")},
                    "path": s("edit", "path"), "old_text": s("edit", "old_text"), "new_text": s("edit", "new_text"), "line": i("edit", "line")
                }),
                &["mode", "path"],
            ),
            spec(
                "run_tests",
                json!({"target": s("run_tests", "target")}),
                &[],
            ),
            spec("submit", json!({"summary": s("submit", "summary")}), &[]),
        ]
    }

    /// Whether `name` is one of the tools or an alias of one.
    pub fn knows(name: &str) -> bool {
        TOOLS.contains(&name) || ALIASES.contains(&name)
    }

    /// Run one tool call. Bad arguments and refused edits are observations, so the model
    /// can correct itself; only a failing sandbox is an error. Names models are trained on
    /// (SWE-agent's and OpenHands') run as the mend tool they mean.
    pub async fn run(&mut self, name: &str, args: &Value) -> Result<ToolResult, SandboxError> {
        let empty = Value::Object(Default::default());
        // Some models send no arguments at all for tools that need none.
        let args = if args.is_null() { &empty } else { args };
        if !args.is_object() {
            return Ok(ToolResult::Observation(format!(
                "the arguments of `{name}` must be one JSON object, not {}",
                json_kind(args)
            )));
        }
        if let Some(bad) = bad_string(args) {
            return Ok(ToolResult::Observation(bad));
        }
        let (name, args) = match alias(name, args, self.last_viewed.as_deref()) {
            Ok(Some((n, a))) => (n, a),
            Ok(None) => (name.to_string(), args.clone()),
            Err(obs) => return Ok(ToolResult::Observation(obs)),
        };
        let args = &args;
        let obs = match name.as_str() {
            "bash" => self.bash(args).await?,
            "view" => self.view(args).await?,
            "search" => self.search(args).await?,
            "edit" => self.edit(args).await,
            "run_tests" => {
                let target = str_arg(args, "target");
                let run = self.run_tests(target.as_deref()).await?;
                format!("{} ({})\n{}", run.command, run.status, run.condensed)
            }
            "submit" => {
                return Ok(ToolResult::Submit {
                    summary: str_arg(args, "summary").unwrap_or_default(),
                });
            }
            "think" => "Your thought is noted; continue with a tool call.".to_string(),
            other => format!(
                "unknown tool `{}`; the tools are bash, view, search, edit, run_tests and submit",
                clip(other, 80)
            ),
        };
        Ok(ToolResult::Observation(clip(&obs, MAX_OBSERVATION_CHARS)))
    }

    async fn bash(&self, args: &Value) -> Result<String, SandboxError> {
        let Some(command) = str_arg(args, "command") else {
            return Ok("bash needs a `command` argument".into());
        };
        let secs = match int_arg(args, "timeout") {
            Ok(t) => t.map_or(self.bash_timeout.as_secs(), |t| t.clamp(1, 1800) as u64),
            Err(e) => return Ok(e),
        };
        let out = self
            .sandbox
            .exec(
                &quiet_python(Exec::new(["bash", "-c", &command]))
                    .timeout(Duration::from_secs(secs))
                    .output_cap(256 << 10),
            )
            .await?;
        let mut text = String::new();
        let (o, e) = (out.stdout.text(), out.stderr.text());
        text.push_str(&o);
        if !e.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&e);
        }
        if text.trim().is_empty() {
            text = "(no output)".into();
        }
        Ok(format!("[{}]\n{text}", out.status_line()))
    }

    async fn view(&mut self, args: &Value) -> Result<String, SandboxError> {
        let Some(path) = str_arg(args, "path") else {
            return Ok("view needs a `path` argument (a string)".into());
        };
        self.last_viewed = Some(path.clone());
        let path = if path.trim().is_empty() {
            ".".to_string()
        } else {
            path
        };
        match self.sandbox.read_file(&path).await {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let total = lines.len();
                let (start, end) = match view_range(args, total) {
                    Ok(r) => r,
                    Err(e) => return Ok(format!("{path} has {total} lines; {e}")),
                };
                let mut end = end;
                let mut note = String::new();
                if end + 1 > start + VIEW_MAX_LINES {
                    end = start + VIEW_MAX_LINES - 1;
                    note = format!(
                        "\n[showing lines {start}-{end} of {total}; pass start/end to see more]"
                    );
                }
                let body: String = lines[start - 1..end]
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{:>6}\t{l}\n", start + i))
                    .collect();
                Ok(format!("{path} ({total} lines)\n{body}{note}"))
            }
            Err(SandboxError::IsDirectory(_)) => {
                let out = self
                    .sandbox
                    .exec(
                        &Exec::new([
                            "find",
                            &path,
                            "-maxdepth",
                            "2",
                            "-not",
                            "-path",
                            "*/.git",
                            "-not",
                            "-path",
                            "*/.git/*",
                            "-not",
                            "-name",
                            "__pycache__",
                        ])
                        .timeout(Duration::from_secs(60)),
                    )
                    .await?;
                let listing = out.stdout.text();
                let mut entries: Vec<&str> = listing.lines().collect();
                entries.sort();
                let n = entries.len();
                entries.truncate(300);
                Ok(format!(
                    "{path}/ ({n} entries, two levels deep)\n{}{}",
                    entries.join("\n"),
                    if n > 300 {
                        "\n[... more entries cut]"
                    } else {
                        ""
                    }
                ))
            }
            Err(SandboxError::NotFound(_)) => Ok(format!("{path} does not exist")),
            Err(e @ SandboxError::PathEscapesRoot(_)) => Ok(e.to_string()),
            Err(e) => Err(e),
        }
    }

    async fn search(&self, args: &Value) -> Result<String, SandboxError> {
        if let Some(symbol) = str_arg(args, "symbol") {
            let Some(index) = &self.symbols else {
                return Ok("symbol search is unavailable (no index); use pattern".into());
            };
            let hits = index.find_symbol(&symbol);
            if hits.is_empty() {
                return Ok(format!("no definition named `{symbol}` in the index"));
            }
            // The index is of the base commit: after edits, lines may have moved.
            return Ok(hits
                .iter()
                .take(50)
                .map(|h| {
                    format!(
                        "{}:{}: {} {} {}",
                        h.path, h.line, h.kind, h.name, h.signature
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"));
        }
        let Some(pattern) = str_arg(args, "pattern") else {
            return Ok("search needs `pattern` or `symbol`".into());
        };
        let path = str_arg(args, "path").unwrap_or_else(|| ".".into());
        let cmd = Exec::new([
            "git",
            "-c",
            "safe.directory=*",
            "grep",
            "-n",
            "-I",
            "--untracked",
            "-E",
            "-e",
            &pattern,
            "--",
            &path,
        ])
        .timeout(Duration::from_secs(120));
        let out = self.sandbox.exec(&cmd).await?;
        match out.exit_code() {
            Some(0) => {
                let text = out.stdout.text();
                let lines: Vec<&str> = text.lines().collect();
                let n = lines.len();
                let shown: Vec<String> = lines.iter().take(100).map(|l| clip(l, 300)).collect();
                Ok(format!(
                    "{n} matching lines{}\n{}",
                    if n > 100 {
                        " (first 100 shown; narrow the pattern or path)"
                    } else {
                        ""
                    },
                    shown.join("\n")
                ))
            }
            Some(1) => Ok(format!("no matches for /{pattern}/ under {path}")),
            _ => Ok(format!("search failed: {}", out.stderr.text().trim())),
        }
    }

    async fn edit(&mut self, args: &Value) -> String {
        let Some(path) = str_arg(args, "path") else {
            return "edit needs a `path`".into();
        };
        let new_text = str_arg(args, "new_text");
        let op = match str_arg(args, "mode").as_deref() {
            Some("replace") => match (str_arg(args, "old_text"), new_text) {
                (Some(old), Some(new)) => EditOp::Replace { path, old, new },
                _ => return "replace needs `old_text` and `new_text`".into(),
            },
            Some("insert") => match (int_arg(args, "line"), new_text) {
                (Err(e), _) => return e,
                (Ok(Some(line)), _) if line < 0 => {
                    return format!("`line` must be 0 or more, not {line}");
                }
                (Ok(Some(line)), Some(text)) => EditOp::Insert {
                    path,
                    line: usize::try_from(line).unwrap_or(usize::MAX),
                    text,
                },
                _ => return "insert needs `line` and `new_text`".into(),
            },
            Some("create") => EditOp::Create {
                path,
                content: new_text.unwrap_or_default(),
            },
            Some("undo") => EditOp::Undo { path },
            _ => return "edit needs `mode`: replace, insert, create or undo".into(),
        };
        match self.edits.apply(self.sandbox.as_ref(), &op).await {
            Ok(applied) => format!("{}\n{}", applied.message, applied.diff),
            Err(refused) => refused.0,
        }
    }

    /// Run the test command (with an optional target) and condense its output.
    pub async fn run_tests(&mut self, target: Option<&str>) -> Result<TestRun, SandboxError> {
        let Some(base) = self.detect_test_command().await else {
            return Ok(TestRun {
                command: String::new(),
                passed: false,
                status: "no test command configured or detected".into(),
                condensed: String::new(),
                log: String::new(),
            });
        };
        let command = match target {
            Some(t) if !t.trim().is_empty() => format!("{base} {t}"),
            _ => base,
        };
        let out = self
            .sandbox
            .exec(
                &quiet_python(Exec::new(["bash", "-c", &command]))
                    .timeout(self.test_timeout)
                    .output_cap(4 << 20),
            )
            .await?;
        let all = format!("{}\n{}", out.stdout.text(), out.stderr.text());
        Ok(TestRun {
            command,
            passed: out.success(),
            status: if out.success() {
                "passed".into()
            } else {
                out.status_line()
            },
            condensed: condense_test_output(&all, 8_000),
            log: all,
        })
    }
}

/// Python run by the agent writes no bytecode, so `__pycache__` never reaches the diff.
fn quiet_python(exec: Exec) -> Exec {
    exec.env("PYTHONDONTWRITEBYTECODE", "1")
}

fn str_arg(args: &Value, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(str::to_string)
}

const TOOLS: &[&str] = &["bash", "view", "search", "edit", "run_tests", "submit"];
/// Tool names of SWE-agent and OpenHands that mean one of mend's tools.
const ALIASES: &[&str] = &[
    "str_replace_editor",
    "execute_bash",
    "finish",
    "think",
    "find_file",
    "search_dir",
    "search_file",
    "open",
    "goto",
];

/// The mend tool and arguments an alias call means; `Ok(None)` for a name that is not an
/// alias, `Err` with what to tell the model when the alias call cannot be mapped.
fn alias(
    name: &str,
    args: &Value,
    last_viewed: Option<&str>,
) -> Result<Option<(String, Value)>, String> {
    let s = |k: &str| args.get(k).and_then(Value::as_str);
    let get = |k: &str| args.get(k).cloned().unwrap_or(Value::Null);
    let mapped = |tool: &str, v: Value| {
        // Drop the keys the alias had no value for.
        let v = match v {
            Value::Object(m) => {
                Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
            }
            other => other,
        };
        Ok(Some((tool.to_string(), v)))
    };
    match name {
        "execute_bash" => mapped(
            "bash",
            json!({"command": get("command"), "timeout": get("timeout")}),
        ),
        "finish" => mapped(
            "submit",
            json!({"summary": args.get("message").or_else(|| args.get("summary")).cloned().unwrap_or(Value::Null)}),
        ),
        "think" => mapped("think", json!({})),
        "str_replace_editor" => {
            let path = get("path");
            match s("command") {
                Some("view") => {
                    let (start, end) = match args.get("view_range").and_then(Value::as_array) {
                        Some(r) if r.len() == 2 => {
                            // -1 as the end means "to the end of the file".
                            let end = r[1].clone();
                            let end = if end.as_i64() == Some(-1) {
                                Value::Null
                            } else {
                                end
                            };
                            (r[0].clone(), end)
                        }
                        _ => (Value::Null, Value::Null),
                    };
                    mapped("view", json!({"path": path, "start": start, "end": end}))
                }
                Some("create") => mapped(
                    "edit",
                    json!({"mode": "create", "path": path, "new_text": get("file_text")}),
                ),
                Some("str_replace") => mapped(
                    "edit",
                    json!({"mode": "replace", "path": path, "old_text": get("old_str"),
                           "new_text": args.get("new_str").cloned().unwrap_or_else(|| json!(""))}),
                ),
                Some("insert") => mapped(
                    "edit",
                    json!({"mode": "insert", "path": path, "line": get("insert_line"), "new_text": get("new_str")}),
                ),
                Some("undo_edit") => mapped("edit", json!({"mode": "undo", "path": path})),
                other => Err(format!(
                    "str_replace_editor needs `command`: view, create, str_replace, insert or undo_edit (got {}); mend's own tools are view and edit",
                    other.map_or_else(|| "none".to_string(), |c| format!("`{}`", clip(c, 40)))
                )),
            }
        }
        "find_file" => {
            let Some(file) = s("file_name") else {
                return Err("find_file needs `file_name`".into());
            };
            let dir = s("dir").unwrap_or(".");
            mapped(
                "bash",
                json!({"command": format!("find {} -name {} -not -path '*/.git/*' | head -100", shell_quote(dir), shell_quote(file))}),
            )
        }
        "search_dir" | "search_file" => {
            let key = if name == "search_dir" { "dir" } else { "file" };
            let Some(term) = s("search_term") else {
                return Err(format!("{name} needs `search_term`"));
            };
            // SWE-agent searches for the literal text, mend's search takes a regex.
            mapped(
                "search",
                json!({"pattern": regex::escape(term), "path": get(key)}),
            )
        }
        "open" => {
            let line = int_arg(args, "line_number")?;
            let start = line.map(|l| (l - 50).max(1));
            mapped(
                "view",
                json!({"path": get("path"), "start": start, "end": start.map(|s| s + 99)}),
            )
        }
        "goto" => {
            let Some(path) = last_viewed else {
                return Err("goto needs an open file: view one first".into());
            };
            match int_arg(args, "line_number") {
                Ok(Some(l)) => {
                    let start = (l - 50).max(1);
                    mapped(
                        "view",
                        json!({"path": path, "start": start, "end": start + 99}),
                    )
                }
                Ok(None) => Err("goto needs `line_number`".into()),
                Err(e) => Err(e),
            }
        }
        _ => Ok(None),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// An integer argument: a JSON integer, a whole float, or a numeric string; `Err` with what
/// to tell the model for anything else.
fn int_arg(args: &Value, key: &str) -> Result<Option<i64>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            // Past i64: as far as any file goes.
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a whole number, not {n}")),
        Some(Value::String(t)) => match t.trim().parse::<i64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!(
                "`{key}` must be a whole number, not {:?}",
                clip(t, 40)
            )),
        },
        Some(other) => Err(format!(
            "`{key}` must be a whole number, not {}",
            json_kind(other)
        )),
    }
}

/// The 1-based inclusive line range `view` shows, or why the arguments make none.
fn view_range(args: &Value, total: usize) -> Result<(usize, usize), String> {
    let start = int_arg(args, "start")?;
    let end = int_arg(args, "end")?;
    if let Some(s) = start.filter(|s| *s < 0) {
        return Err(format!("start={s} is negative; lines are numbered from 1"));
    }
    // A negative end counts from the end of the file (-1: the last line).
    let end = match end {
        Some(e) if e < 0 => (total as i64 + 1 + e).max(0) as usize,
        Some(e) => usize::try_from(e).unwrap_or(usize::MAX).min(total),
        None => total,
    };
    let start = start.map_or(1, |s| usize::try_from(s).unwrap_or(usize::MAX).max(1));
    if start > total.max(1) {
        return Err(format!("start={start} is past the end"));
    }
    if end + 1 < start {
        return Err(format!(
            "start={start} is after end={end}; pass start <= end"
        ));
    }
    Ok((start, end))
}

/// A string argument no tool can take: a NUL byte (no path or command can hold one), a
/// path longer than any file system takes, or a command or pattern past what one
/// process argument may hold (128 KiB on Linux). File contents may be any length.
fn bad_string(args: &Value) -> Option<String> {
    const PATH_MAX: usize = 4096;
    const ARG_MAX: usize = 100_000;
    let Value::Object(m) = args else { return None };
    m.iter().find_map(|(k, v)| {
        let s = v.as_str()?;
        let key = clip(k, 40);
        if s.contains('\0') {
            return Some(format!(
                "the argument `{key}` holds a NUL byte; no path or command can"
            ));
        }
        let content = matches!(
            k.as_str(),
            "new_text"
                | "old_text"
                | "file_text"
                | "new_str"
                | "old_str"
                | "summary"
                | "message"
                | "thought"
        );
        if k.contains("path") && s.len() > PATH_MAX {
            return Some(format!(
                "the argument `{key}` is {} bytes long; paths are at most {PATH_MAX}",
                s.len()
            ));
        }
        (!content && s.len() > ARG_MAX).then(|| {
            format!(
                "the argument `{key}` is {} bytes long, more than a command line can take \
                 ({ARG_MAX}); write long scripts to a file with `edit` and run the file",
                s.len()
            )
        })
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
