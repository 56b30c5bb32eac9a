//! SWE-bench instances and predictions: loading (JSONL, JSON list, parquet rows),
//! field-by-field validation with line numbers, and the `--instance-ids/--repos/--slice` filters.
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::SwebenchError;

/// One SWE-bench task instance, with the published field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub instance_id: String,
    pub repo: String,
    pub base_commit: String,
    pub version: String,
    pub patch: String,
    pub test_patch: String,
    pub problem_statement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_setup_commit: Option<String>,
    /// `None` when the record has no such field (`null` too): the instance cannot be graded
    /// until `mend swebench mine --instances` fills the lists in.
    #[serde(rename = "FAIL_TO_PASS", skip_serializing_if = "Option::is_none")]
    pub fail_to_pass: Option<Vec<String>>,
    #[serde(rename = "PASS_TO_PASS", skip_serializing_if = "Option::is_none")]
    pub pass_to_pass: Option<Vec<String>>,
    /// Fields the harness does not use (hints_text, created_at, difficulty, ...), kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One prediction: `{instance_id, model_name_or_path, model_patch}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub instance_id: String,
    pub model_name_or_path: String,
    /// `None` when the record has `null` (the official harness's `patch_is_None`).
    pub model_patch: Option<String>,
}

impl Prediction {
    /// The official harness treats `""` and `null` alike as an empty patch.
    pub fn is_empty(&self) -> bool {
        self.model_patch
            .as_deref()
            .map(str::is_empty)
            .unwrap_or(true)
    }
}

/// Which instances to keep. Applied in this order: ids, repos, slice.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub instance_ids: Vec<String>,
    pub repos: Vec<String>,
    /// Python-style `start:end` over the instances left after the other filters.
    pub slice: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.instance_ids.is_empty() && self.repos.is_empty() && self.slice.is_none()
    }

    /// Keep the matching instances; an asked-for id that is not in the data is an error
    /// (as in the official harness), so a typo never silently evaluates nothing.
    pub fn apply(&self, instances: Vec<Instance>) -> Result<Vec<Instance>, SwebenchError> {
        let mut out = instances;
        if !self.instance_ids.is_empty() {
            let missing: Vec<&str> = self
                .instance_ids
                .iter()
                .filter(|id| !out.iter().any(|i| &i.instance_id == *id))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(SwebenchError::Filter(format!(
                    "instance ids not in the dataset: {}",
                    missing.join(" ")
                )));
            }
            out.retain(|i| self.instance_ids.contains(&i.instance_id));
        }
        if !self.repos.is_empty() {
            out.retain(|i| {
                self.repos
                    .iter()
                    .any(|r| r == &i.repo || r == &i.repo.replace('/', "__"))
            });
        }
        if let Some(s) = &self.slice {
            let (start, end) = parse_slice(s, out.len())?;
            out = out
                .into_iter()
                .skip(start)
                .take(end.saturating_sub(start))
                .collect();
        }
        Ok(out)
    }
}

/// `"a:b"`, `":b"`, `"a:"`, negative indices as in Python; `"n"` alone means `":n"`.
pub fn parse_slice(s: &str, len: usize) -> Result<(usize, usize), SwebenchError> {
    let bad = || {
        SwebenchError::Filter(format!(
            "slice `{s}` is not `start:end` (e.g. `0:50`, `:10`, `-5:`)"
        ))
    };
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => ("", s.trim()),
    };
    let idx = |t: &str, default: usize| -> Result<usize, SwebenchError> {
        if t.is_empty() {
            return Ok(default);
        }
        let v: i64 = t.parse().map_err(|_| bad())?;
        Ok(if v < 0 {
            len.saturating_sub(v.unsigned_abs() as usize)
        } else {
            (v as usize).min(len)
        })
    };
    let start = idx(a, 0)?;
    let end = idx(b, len)?;
    Ok((start, end.max(start)))
}

/// Load instances from a `.jsonl` file (one object per line) or a `.json` file (a list).
pub fn load_instances(path: &Path) -> Result<Vec<Instance>, SwebenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(SwebenchError::io(format!("reading {}", path.display())))?;
    parse_instances(&text, &path.display().to_string())
}

/// Parse instances from JSONL or a JSON list (decided by the first non-blank character).
pub fn parse_instances(text: &str, source_name: &str) -> Result<Vec<Instance>, SwebenchError> {
    let records = parse_records(text, source_name)?;
    let mut out = Vec::with_capacity(records.len());
    let mut seen = std::collections::HashSet::new();
    for (line, value) in records {
        let inst = instance_from_value(value, source_name, line)?;
        if !seen.insert(inst.instance_id.clone()) {
            return Err(rec_err(
                source_name,
                line,
                Some("instance_id"),
                format!("duplicate instance id `{}`", inst.instance_id),
            ));
        }
        out.push(inst);
    }
    Ok(out)
}

/// Load predictions: JSONL, a JSON list, or a JSON object keyed by instance id (SWE-agent's form).
pub fn load_predictions(path: &Path) -> Result<Vec<Prediction>, SwebenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(SwebenchError::io(format!("reading {}", path.display())))?;
    parse_predictions(&text, &path.display().to_string())
}

pub fn parse_predictions(text: &str, source_name: &str) -> Result<Vec<Prediction>, SwebenchError> {
    // A single JSON object keyed by instance id is SWE-agent's form; anything else is JSONL or a list.
    let whole = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Map<String, Value>>(text).ok()
    } else {
        None
    };
    let records: Vec<(usize, Value)> = match whole {
        Some(m) if !m.is_empty() && m.values().all(Value::is_object) => {
            m.into_iter().map(|(_, v)| (1, v)).collect()
        }
        _ => parse_records(text, source_name)?,
    };
    let mut out = Vec::with_capacity(records.len());
    let mut seen = std::collections::HashSet::new();
    for (line, value) in records {
        let Value::Object(mut m) = value else {
            return Err(rec_err(
                source_name,
                line,
                None,
                "expected a JSON object".into(),
            ));
        };
        let instance_id = req_str(&mut m, "instance_id", source_name, line)?;
        let model_name_or_path = match m.remove("model_name_or_path") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Null) | None => "None".to_string(),
            Some(other) => {
                return Err(rec_err(
                    source_name,
                    line,
                    Some("model_name_or_path"),
                    format!("expected a string, got {}", kind(&other)),
                ));
            }
        };
        let model_patch = match m.remove("model_patch") {
            Some(Value::String(s)) => Some(s),
            Some(Value::Null) | None => None,
            Some(other) => {
                return Err(rec_err(
                    source_name,
                    line,
                    Some("model_patch"),
                    format!("expected a string or null, got {}", kind(&other)),
                ));
            }
        };
        if !seen.insert(instance_id.clone()) {
            return Err(rec_err(
                source_name,
                line,
                Some("instance_id"),
                format!("duplicate prediction for `{instance_id}`"),
            ));
        }
        out.push(Prediction {
            instance_id,
            model_name_or_path,
            model_patch,
        });
    }
    Ok(out)
}

/// The dataset's own patches as predictions (`--predictions gold`).
pub fn gold_predictions(instances: &[Instance]) -> Vec<Prediction> {
    instances
        .iter()
        .map(|i| Prediction {
            instance_id: i.instance_id.clone(),
            model_name_or_path: "gold".into(),
            model_patch: Some(i.patch.clone()),
        })
        .collect()
}

/// Split the text into JSON values with the line each starts on.
pub(crate) fn parse_records(
    text: &str,
    source_name: &str,
) -> Result<Vec<(usize, Value)>, SwebenchError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let v: Value =
            serde_json::from_str(text).map_err(|e| json_err(source_name, e.line(), &e))?;
        let Value::Array(items) = v else {
            unreachable!("starts with [")
        };
        // Element index stands in for the line in a JSON list.
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| json_err(source_name, lineno, &e))?;
        out.push((lineno, v));
    }
    Ok(out)
}

fn json_err(source_name: &str, line: usize, e: &serde_json::Error) -> SwebenchError {
    let what = if e.is_eof() {
        "truncated JSON"
    } else {
        "malformed JSON"
    };
    rec_err(source_name, line, None, format!("{what} ({e})"))
}

fn rec_err(source_name: &str, line: usize, field: Option<&str>, message: String) -> SwebenchError {
    SwebenchError::Record {
        source_name: source_name.to_string(),
        line,
        field: field.map(str::to_string),
        message,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn req_str(
    m: &mut Map<String, Value>,
    field: &str,
    src: &str,
    line: usize,
) -> Result<String, SwebenchError> {
    match m.remove(field) {
        Some(Value::String(s)) => Ok(s),
        None => Err(rec_err(src, line, Some(field), "missing".into())),
        Some(other) => Err(rec_err(
            src,
            line,
            Some(field),
            format!("expected a string, got {}", kind(&other)),
        )),
    }
}

/// Build and validate one instance from a JSON value.
pub fn instance_from_value(
    value: Value,
    src: &str,
    line: usize,
) -> Result<Instance, SwebenchError> {
    let Value::Object(mut m) = value else {
        return Err(rec_err(
            src,
            line,
            None,
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    };
    let instance_id = req_str(&mut m, "instance_id", src, line)?;
    if instance_id.trim().is_empty()
        || instance_id
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '\\')
        || instance_id.contains("..")
    {
        return Err(rec_err(
            src,
            line,
            Some("instance_id"),
            format!("`{instance_id}` is not a valid id (no spaces, slashes or `..`)"),
        ));
    }
    let repo = req_str(&mut m, "repo", src, line)?;
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == ".." || p.chars().any(char::is_whitespace))
    {
        return Err(rec_err(
            src,
            line,
            Some("repo"),
            format!("`{repo}` is not `owner/name`"),
        ));
    }
    let base_commit = req_str(&mut m, "base_commit", src, line)?;
    if !(7..=40).contains(&base_commit.len()) || !base_commit.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(rec_err(
            src,
            line,
            Some("base_commit"),
            format!("`{base_commit}` is not a git commit id (7-40 hex digits)"),
        ));
    }
    // Published data has strings; some hand-made files have numbers like 3.0.
    let version = match m.remove("version") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        None => return Err(rec_err(src, line, Some("version"), "missing".into())),
        Some(other) => {
            return Err(rec_err(
                src,
                line,
                Some("version"),
                format!("expected a non-empty string, got {}", kind(&other)),
            ));
        }
    };
    let patch = req_str(&mut m, "patch", src, line)?;
    let test_patch = req_str(&mut m, "test_patch", src, line)?;
    if !test_patch.contains("diff --git ") && !test_patch.contains("\n+++ ") {
        return Err(rec_err(
            src,
            line,
            Some("test_patch"),
            "not a unified diff".into(),
        ));
    }
    let problem_statement = match m.remove("problem_statement") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(other) => {
            return Err(rec_err(
                src,
                line,
                Some("problem_statement"),
                format!("expected a string, got {}", kind(&other)),
            ));
        }
    };
    let environment_setup_commit = match m.remove("environment_setup_commit") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(other) => {
            return Err(rec_err(
                src,
                line,
                Some("environment_setup_commit"),
                format!("expected a string, got {}", kind(&other)),
            ));
        }
    };
    let fail_to_pass = test_list(m.remove("FAIL_TO_PASS"), "FAIL_TO_PASS", src, line)?;
    let pass_to_pass = test_list(m.remove("PASS_TO_PASS"), "PASS_TO_PASS", src, line)?;
    Ok(Instance {
        instance_id,
        repo,
        base_commit,
        version,
        patch,
        test_patch,
        problem_statement,
        environment_setup_commit,
        fail_to_pass,
        pass_to_pass,
        extra: m,
    })
}

/// A test list arrives as a JSON string holding a list (published data) or as a list.
/// Missing (or `null`) is kept apart from `[]`: such a record can be mined, not graded.
fn test_list(
    v: Option<Value>,
    field: &str,
    src: &str,
    line: usize,
) -> Result<Option<Vec<String>>, SwebenchError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => a,
            Ok(other) => {
                return Err(rec_err(
                    src,
                    line,
                    Some(field),
                    format!("the string holds {}, not a list", kind(&other)),
                ));
            }
            Err(e) => {
                return Err(rec_err(
                    src,
                    line,
                    Some(field),
                    format!("the string is not a JSON list ({e})"),
                ));
            }
        },
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(rec_err(
                src,
                line,
                Some(field),
                format!(
                    "expected a list or a JSON string of a list, got {}",
                    kind(&other)
                ),
            ));
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(i, t)| match t {
            Value::String(s) => Ok(s),
            other => Err(rec_err(
                src,
                line,
                Some(field),
                format!("item {i} is {}, not a string", kind(&other)),
            )),
        })
        .collect::<Result<Vec<String>, SwebenchError>>()
        .map(Some)
}

impl Instance {
    /// Why this instance cannot be graded, if it cannot: a test list is missing, or
    /// `FAIL_TO_PASS` is empty — then no test tells a fix from no change at all, and any
    /// patch (a comment, nothing) would count as resolved. Every published SWE-bench
    /// instance has at least one `FAIL_TO_PASS` test.
    pub fn ungradable_reason(&self) -> Option<String> {
        let missing: Vec<&str> = [
            ("FAIL_TO_PASS", self.fail_to_pass.is_none()),
            ("PASS_TO_PASS", self.pass_to_pass.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, gone)| gone.then_some(name))
        .collect();
        if !missing.is_empty() {
            return Some(format!("no {}", missing.join(" and no ")));
        }
        match &self.fail_to_pass {
            Some(f) if f.is_empty() => Some("FAIL_TO_PASS is empty".into()),
            _ => None,
        }
    }
}

/// Refuse instances that cannot be graded ([`Instance::ungradable_reason`]), naming them
/// and how to fill their test lists in.
pub fn check_gradable<'a>(
    instances: impl IntoIterator<Item = &'a Instance>,
) -> Result<(), SwebenchError> {
    let bad: Vec<String> = instances
        .into_iter()
        .filter_map(|i| {
            i.ungradable_reason()
                .map(|why| format!("{} ({why})", i.instance_id))
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 5;
    let mut names = bad
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if bad.len() > SHOWN {
        names.push_str(&format!(" and {} more", bad.len() - SHOWN));
    }
    Err(SwebenchError::Ungradable {
        count: bad.len(),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "diff --git a/t.py b/t.py\n--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-a\n+b\n";

    fn rec(extra: &str) -> String {
        format!(
            r#"{{"instance_id":"o__r-1","repo":"o/r","base_commit":"abcdef1234567","version":"1.0","patch":"","test_patch":{tp}{extra}}}"#,
            tp = serde_json::to_string(TP).unwrap()
        )
    }

    #[test]
    fn test_lists_as_strings_or_lists() {
        let a = parse_instances(
            &rec(r#","FAIL_TO_PASS":"[\"t.py::a\"]","PASS_TO_PASS":["t.py::b"]"#),
            "x",
        )
        .unwrap();
        assert_eq!(a[0].fail_to_pass, Some(vec!["t.py::a".to_string()]));
        assert_eq!(a[0].pass_to_pass, Some(vec!["t.py::b".to_string()]));
        assert_eq!(a[0].ungradable_reason(), None);
        let truncated_list = format!(
            ",\"FAIL_TO_PASS\":{}",
            serde_json::to_string("[\"t.py::a\"").unwrap()
        );
        let e = parse_instances(&rec(&truncated_list), "data.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("FAIL_TO_PASS"), "{e}");
        let e = parse_instances(&rec(r#","PASS_TO_PASS":[1]"#), "d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("PASS_TO_PASS") && e.contains("item 0"), "{e}");
    }

    #[test]
    fn truncated_and_malformed_lines_name_line_and_field() {
        let good = rec("");
        let text = format!("{good}\n\n{}\n", &good[..good.len() - 10]);
        let e = parse_instances(&text, "d.jsonl").unwrap_err().to_string();
        assert!(e.starts_with("d.jsonl: line 3: truncated JSON"), "{e}");
        let bad_commit = rec("").replace("abcdef1234567", "not-a-commit");
        let e = parse_instances(&format!("{good}\n{bad_commit}"), "d.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2: field `base_commit`"), "{e}");
        let no_repo = rec("").replace(r#""repo":"o/r","#, "");
        let e = parse_instances(&no_repo, "d").unwrap_err().to_string();
        assert!(e.contains("field `repo`: missing"), "{e}");
        let dup = format!("{good}\n{good}");
        assert!(
            parse_instances(&dup, "d")
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
        let list = format!("[{good}, 5]");
        let e = parse_instances(&list, "d.json").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("a number"), "{e}");
    }

    #[test]
    fn filters_and_slices() {
        let mk = |id: &str, repo: &str| {
            rec("")
                .replace("o__r-1", id)
                .replace("\"o/r\"", &format!("\"{repo}\""))
        };
        let text = [
            mk("a__a-1", "a/a"),
            mk("b__b-1", "b/b"),
            mk("a__a-2", "a/a"),
            mk("c__c-1", "c/c"),
        ]
        .join("\n");
        let all = parse_instances(&text, "d").unwrap();
        let ids = |v: Vec<Instance>| v.into_iter().map(|i| i.instance_id).collect::<Vec<_>>();
        let f = Filter {
            repos: vec!["a/a".into()],
            ..Default::default()
        };
        assert_eq!(ids(f.apply(all.clone()).unwrap()), vec!["a__a-1", "a__a-2"]);
        let f = Filter {
            slice: Some("1:3".into()),
            ..Default::default()
        };
        assert_eq!(ids(f.apply(all.clone()).unwrap()), vec!["b__b-1", "a__a-2"]);
        let f = Filter {
            slice: Some("-1:".into()),
            ..Default::default()
        };
        assert_eq!(ids(f.apply(all.clone()).unwrap()), vec!["c__c-1"]);
        let f = Filter {
            instance_ids: vec!["c__c-1".into(), "b__b-1".into()],
            ..Default::default()
        };
        assert_eq!(ids(f.apply(all.clone()).unwrap()), vec!["b__b-1", "c__c-1"]);
        let f = Filter {
            instance_ids: vec!["nope".into()],
            ..Default::default()
        };
        assert!(f.apply(all.clone()).is_err());
        assert!(
            Filter {
                slice: Some("x:y".into()),
                ..Default::default()
            }
            .apply(all)
            .is_err()
        );
    }

    #[test]
    fn predictions_in_all_three_forms() {
        let jsonl = "{\"instance_id\":\"a\",\"model_name_or_path\":\"m/x\",\"model_patch\":\"diff\"}\n{\"instance_id\":\"b\",\"model_name_or_path\":\"m/x\",\"model_patch\":null}\n";
        let p = parse_predictions(jsonl, "p.jsonl").unwrap();
        assert_eq!(p.len(), 2);
        assert!(!p[0].is_empty() && p[1].is_empty() && p[1].model_patch.is_none());
        let list = r#"[{"instance_id":"a","model_name_or_path":"m","model_patch":""}]"#;
        assert!(parse_predictions(list, "p.json").unwrap()[0].is_empty());
        let dict = r#"{"a": {"instance_id":"a","model_name_or_path":"m","model_patch":"x"}, "b": {"instance_id":"b","model_patch":"y"}}"#;
        let p = parse_predictions(dict, "p.json").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].model_name_or_path, "None");
        let e = parse_predictions("{\"model_patch\":\"x\"}\n", "p.jsonl")
            .unwrap_err()
            .to_string();
        assert!(e.contains("instance_id"), "{e}");
    }

    #[test]
    fn records_without_test_lists_load_but_are_ungradable() {
        let one = |extra: &str| parse_instances(&rec(extra), "d").unwrap().remove(0);
        let none = one("");
        assert_eq!(
            (none.fail_to_pass.as_ref(), none.pass_to_pass.as_ref()),
            (None, None)
        );
        assert_eq!(
            none.ungradable_reason().as_deref(),
            Some("no FAIL_TO_PASS and no PASS_TO_PASS")
        );
        let nulls = one(r#","FAIL_TO_PASS":null,"PASS_TO_PASS":null"#);
        assert!(nulls.ungradable_reason().is_some());
        let empty = one(r#","FAIL_TO_PASS":"[]","PASS_TO_PASS":[]"#);
        assert_eq!(
            empty.ungradable_reason().as_deref(),
            Some("FAIL_TO_PASS is empty")
        );
        let no_p2p = one(r#","FAIL_TO_PASS":["t::a"]"#);
        assert_eq!(
            no_p2p.ungradable_reason().as_deref(),
            Some("no PASS_TO_PASS")
        );
        // Official shape: FAIL_TO_PASS given, PASS_TO_PASS empty.
        let ok = one(r#","FAIL_TO_PASS":["t::a"],"PASS_TO_PASS":[]"#);
        assert_eq!(ok.ungradable_reason(), None);
        // Missing lists stay missing when written back (published form has them or not).
        let v = serde_json::to_value(&none).unwrap();
        assert!(v.get("FAIL_TO_PASS").is_none());

        let e = check_gradable([&ok, &none, &empty])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 instance(s)")
                && e.contains("o__r-1 (no FAIL_TO_PASS and no PASS_TO_PASS)")
                && e.contains("mend swebench mine --instances"),
            "{e}"
        );
        assert!(check_gradable([&ok]).is_ok());
    }

    /// The development data on this machine loads and validates (fails when it is missing).
    #[test]
    fn shared_dev_data_loads_when_present() {
        // `../shared/data` of the main checkout; a worktree sits deeper, so try every ancestor.
        let Some(path) = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join("shared/data/swe-bench-verified.dev.jsonl"))
            .find(|p| p.exists())
        else {
            panic!(
                "shared/data not found beside the checkout: this test needs the project's shared SWE-bench records"
            );
        };
        let all = load_instances(&path).unwrap();
        assert_eq!(all.len(), 47);
        assert!(
            all.iter()
                .all(|i| !i.patch.is_empty() && i.extra.contains_key("difficulty"))
        );
        // It has no test lists: none of it can be graded as it is.
        let e = check_gradable(&all).unwrap_err().to_string();
        assert!(e.contains("47 instance(s)"), "{e}");
    }
}
