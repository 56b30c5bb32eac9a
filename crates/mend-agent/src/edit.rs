//! The edit engine: exact-then-whitespace-insensitive replacement, insertion, creation and
//! undo, each answered with the diff hunk, and guarded against breaking the file's syntax.
use std::collections::HashMap;

use mend_sandbox::{Sandbox, SandboxError};
use similar::TextDiff;

use crate::syntax;

/// One edit the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum EditOp {
    /// Replace `old` (which must occur exactly once) with `new`.
    Replace {
        path: String,
        old: String,
        new: String,
    },
    /// Insert `text` after line `line` (0 inserts at the top).
    Insert {
        path: String,
        line: usize,
        text: String,
    },
    /// Create a new file (refused if it exists).
    Create { path: String, content: String },
    /// Undo the last edit of `path`.
    Undo { path: String },
}

impl EditOp {
    pub fn path(&self) -> &str {
        match self {
            EditOp::Replace { path, .. }
            | EditOp::Insert { path, .. }
            | EditOp::Create { path, .. }
            | EditOp::Undo { path } => path,
        }
    }
}

/// An edit that was applied: what to tell the model.
#[derive(Debug, Clone)]
pub struct Applied {
    pub message: String,
    /// The unified diff of this edit.
    pub diff: String,
}

/// An edit that was refused; the file is unchanged and `0` says why (for the model).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Applies edits through a sandbox and remembers each file's earlier versions for undo.
#[derive(Default)]
pub struct EditEngine {
    /// Per path, the contents before each edit (`None`: the file did not exist).
    history: HashMap<String, Vec<Option<String>>>,
}

impl EditEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Paths this engine has edited (including created files).
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.history.keys().map(String::as_str)
    }

    pub async fn apply(&mut self, sb: &dyn Sandbox, op: &EditOp) -> Result<Applied, Refused> {
        // One name per file whichever way the model spells it (`/repo/x.py`, `./x.py`), so
        // undo finds the history.
        let root = format!("{}/", sb.root().trim_end_matches('/'));
        let path = op.path();
        let path = path
            .strip_prefix(root.as_str())
            .unwrap_or(path)
            .trim_start_matches("./")
            .to_string();
        let current = match sb.read_text(&path).await {
            Ok(t) => Some(t),
            Err(SandboxError::NotFound(_)) => None,
            Err(SandboxError::NotText(_)) => {
                return Err(Refused(format!(
                    "{path} is not UTF-8 text; edit it with bash if you must"
                )));
            }
            Err(e) => return Err(Refused(e.to_string())),
        };
        let (new_text, note) = match (op, &current) {
            (EditOp::Undo { .. }, _) => return self.undo(sb, &path, current).await,
            (EditOp::Create { content, .. }, None) => (content.clone(), String::new()),
            (EditOp::Create { .. }, Some(_)) => {
                return Err(Refused(format!(
                    "{path} already exists; use a replace or insert edit to change it"
                )));
            }
            (_, None) => {
                return Err(Refused(format!(
                    "{path} does not exist (use create to make a new file)"
                )));
            }
            (EditOp::Replace { old, new, .. }, Some(text)) => replace(text, old, new)?,
            (
                EditOp::Insert {
                    line, text: ins, ..
                },
                Some(text),
            ) => (insert(text, *line, ins)?, String::new()),
        };
        // The syntax guard: refuse to turn a file that parsed into one that does not.
        if let Some((line, col, what)) = syntax::first_syntax_error(&path, &new_text) {
            let was_clean = current
                .as_deref()
                .map(|c| syntax::first_syntax_error(&path, c).is_none())
                .unwrap_or(true);
            if was_clean {
                return Err(Refused(format!(
                    "edit refused: it would make {path} fail to parse ({what} at line {line}, column {col}). The file is unchanged.\n{}",
                    context_lines(&new_text, line, 3)
                )));
            }
        }
        sb.write_file(&path, new_text.as_bytes())
            .await
            .map_err(|e| Refused(e.to_string()))?;
        self.history
            .entry(path.clone())
            .or_default()
            .push(current.clone());
        let diff = unified(&path, current.as_deref().unwrap_or(""), &new_text);
        let verb = if current.is_none() {
            "created"
        } else {
            "edited"
        };
        let mut message = format!("{verb} {path}");
        if !note.is_empty() {
            message.push_str(&format!(" ({note})"));
        }
        Ok(Applied { message, diff })
    }

    async fn undo(
        &mut self,
        sb: &dyn Sandbox,
        path: &str,
        _current: Option<String>,
    ) -> Result<Applied, Refused> {
        let Some(prev) = self.history.get_mut(path).and_then(|h| h.pop()) else {
            return Err(Refused(format!("nothing to undo for {path}")));
        };
        let now = sb.read_text(path).await.unwrap_or_default();
        match &prev {
            Some(text) => sb
                .write_file(path, text.as_bytes())
                .await
                .map_err(|e| Refused(e.to_string()))?,
            None => {
                let out = sb
                    .exec(&mend_sandbox::Exec::new(["rm", "-f", "--", path]))
                    .await
                    .map_err(|e| Refused(e.to_string()))?;
                if !out.success() {
                    return Err(Refused(format!(
                        "could not remove {path}: {}",
                        out.stderr.text()
                    )));
                }
            }
        }
        let diff = unified(path, &now, prev.as_deref().unwrap_or(""));
        Ok(Applied {
            message: format!("undid the last edit of {path}"),
            diff,
        })
    }
}

/// Replace the unique occurrence of `old`; fall back to a whitespace-insensitive line match
/// when it is unique; otherwise refuse with the closest candidates.
fn replace(text: &str, old: &str, new: &str) -> Result<(String, String), Refused> {
    if old.is_empty() {
        return Err(Refused(
            "the text to replace is empty; use insert to add text".into(),
        ));
    }
    let starts: Vec<usize> = text.match_indices(old).map(|(i, _)| i).collect();
    match starts.len() {
        1 => return Ok((text.replacen(old, new, 1), String::new())),
        0 => {}
        n => {
            let lines: Vec<String> = starts
                .iter()
                .map(|s| (line_of(text, *s)).to_string())
                .collect();
            return Err(Refused(format!(
                "the text to replace occurs {n} times (at lines {}); include more surrounding lines so it is unique",
                lines.join(", ")
            )));
        }
    }
    let file_lines: Vec<&str> = text.split_inclusive('\n').collect();
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let old_norm: Vec<String> = old_lines.iter().map(|l| norm(l)).collect();
    let k = old_lines.len();
    let hits: Vec<usize> = if k == 0 || k > file_lines.len() {
        vec![]
    } else {
        (0..=file_lines.len() - k)
            .filter(|&i| (0..k).all(|j| norm(file_lines[i + j]) == old_norm[j]))
            .collect()
    };
    match hits.len() {
        1 => {
            let i = hits[0];
            let delta = indent_of(file_lines[i]) as isize - indent_of(old_lines[0]) as isize;
            let mut replacement = reindent(new, delta);
            let replaced_ends_nl = file_lines[i + k - 1].ends_with('\n');
            if replaced_ends_nl && !replacement.ends_with('\n') && !replacement.is_empty() {
                replacement.push('\n');
            }
            let mut out: String = file_lines[..i].concat();
            out.push_str(&replacement);
            out.push_str(&file_lines[i + k..].concat());
            Ok((
                out,
                format!("matched ignoring whitespace at line {}", i + 1),
            ))
        }
        0 => Err(Refused(format!(
            "the text to replace was not found.{}",
            candidates(&file_lines, old)
        ))),
        n => Err(Refused(format!(
            "the text to replace was not found exactly, and matches {n} places when whitespace is ignored (lines {}); include more context",
            hits.iter()
                .map(|h| (h + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The windows of the file most like `old`, with line numbers.
fn candidates(file_lines: &[&str], old: &str) -> String {
    let k = old.lines().count().max(1);
    if file_lines.is_empty() {
        return " The file is empty.".into();
    }
    let mut scored: Vec<(f32, usize)> = (0..file_lines.len().saturating_sub(k - 1).max(1))
        .map(|i| {
            let window = file_lines[i..(i + k).min(file_lines.len())].concat();
            (TextDiff::from_chars(window.as_str(), old).ratio(), i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut picked: Vec<(f32, usize)> = Vec::new();
    for (score, i) in scored {
        if picked.len() == 3 || score < 0.5 {
            break;
        }
        if picked.iter().all(|(_, j)| i.abs_diff(*j) >= k) {
            picked.push((score, i));
        }
    }
    if picked.is_empty() {
        return " Nothing in the file is close; view the file to see its current text.".into();
    }
    let mut out = String::from(" The closest places:\n");
    for (score, i) in picked {
        out.push_str(&format!(
            "--- lines {}-{} ({:.0}% similar):\n",
            i + 1,
            (i + k).min(file_lines.len()),
            score * 100.0
        ));
        for (n, l) in file_lines[i..(i + k).min(file_lines.len())]
            .iter()
            .enumerate()
        {
            out.push_str(&format!("{:>6}\t{}", i + n + 1, l));
            if !l.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

fn insert(text: &str, line: usize, ins: &str) -> Result<String, Refused> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if line > lines.len() {
        return Err(Refused(format!(
            "line {line} is past the end of the file ({} lines)",
            lines.len()
        )));
    }
    let mut out: String = lines[..line].concat();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(ins);
    if !ins.ends_with('\n') && line < lines.len() {
        out.push('\n');
    }
    out.push_str(&lines[line..].concat());
    Ok(out)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

fn reindent(text: &str, delta: isize) -> String {
    if delta == 0 {
        return text.to_string();
    }
    text.split_inclusive('\n')
        .map(|l| {
            if l.trim().is_empty() {
                l.to_string()
            } else if delta > 0 {
                format!("{}{l}", " ".repeat(delta as usize))
            } else {
                let strip = (-delta as usize).min(indent_of(l));
                l[strip..].to_string()
            }
        })
        .collect()
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

fn context_lines(text: &str, line: usize, radius: usize) -> String {
    let lo = line.saturating_sub(radius + 1);
    text.lines()
        .enumerate()
        .skip(lo)
        .take(radius * 2 + 1)
        .map(|(i, l)| format!("{}{:>6}\t{l}", if i + 1 == line { ">" } else { " " }, i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A unified diff of one file (git-style headers).
pub fn unified(path: &str, before: &str, after: &str) -> String {
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_unique_replace() {
        let (out, note) = replace("a = 1\nb = 2\n", "b = 2", "b = 3").unwrap();
        assert_eq!(out, "a = 1\nb = 3\n");
        assert!(note.is_empty());
    }

    #[test]
    fn several_matches_name_their_lines() {
        let e = replace("x = 1\ny = 2\nx = 1\n", "x = 1", "x = 9").unwrap_err();
        assert!(e.0.contains("occurs 2 times (at lines 1, 3)"), "{}", e.0);
    }

    #[test]
    fn whitespace_insensitive_match_is_applied_when_unique_and_reindents() {
        let file = "class A:\n    def f(self):\n        return 1\n";
        let (out, note) = replace(
            file,
            "def f(self):\n    return 1\n",
            "def f(self):\n    return 2\n",
        )
        .unwrap();
        assert_eq!(out, "class A:\n    def f(self):\n        return 2\n");
        assert!(note.contains("ignoring whitespace at line 2"), "{note}");
    }

    #[test]
    fn no_match_offers_the_closest_candidates() {
        let file = "def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n";
        let e = replace(file, "def add(a, b):\n    return a-b+0\n", "x").unwrap_err();
        assert!(e.0.contains("not found"), "{}", e.0);
        assert!(e.0.contains("lines 1-2"), "{}", e.0);
    }

    #[test]
    fn insert_at_top_middle_end() {
        assert_eq!(insert("a\nb\n", 0, "z").unwrap(), "z\na\nb\n");
        assert_eq!(insert("a\nb\n", 1, "z\n").unwrap(), "a\nz\nb\n");
        assert_eq!(insert("a\nb\n", 2, "z\n").unwrap(), "a\nb\nz\n");
        assert!(insert("a\n", 5, "z").is_err());
    }
}
