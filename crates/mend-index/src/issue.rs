//! Reading an issue for what it names: traceback frames, paths, dotted names, identifiers in
//! code, and the terms for BM25.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::tokenize;

/// A stack frame quoted in the issue.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub path: String,
    pub line: Option<u32>,
    pub function: Option<String>,
}

/// What an issue names, as read by [`read_issue`].
#[derive(Debug, Clone, Default)]
pub struct IssueSignals {
    /// Traceback frames, outermost first (the order Python prints them).
    pub frames: Vec<Frame>,
    /// Paths named outside tracebacks (`django/db/models/query.py`, `query.py`).
    pub paths: Vec<String>,
    /// Dotted names (`django.db.models.QuerySet`, `QuerySet.filter`).
    pub dotted: Vec<String>,
    /// Names the issue's code imports (`from a.b import C` gives `a.b.C`): weaker than names
    /// the text itself points at.
    pub imported: Vec<String>,
    /// Identifiers with a weight: more when they sit in code (fences, backticks, tracebacks,
    /// `>>>` lines) or look like code (`snake_case`, `CamelCase`).
    pub identifiers: HashMap<String, f32>,
    /// BM25 query terms with weights.
    pub terms: HashMap<String, f32>,
    /// The issue's text with whitespace collapsed, for matching quoted messages.
    pub flat_text: String,
}

static PY_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"File "([^"]+)", line (\d+)(?:, in ([A-Za-z_<][\w<>.]*))?"#).expect("static regex")
});
// `path/to/file.py:123` (pytest, compilers, Go panics) with an optional `: in func`.
static PATH_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"((?:[\w.\-]+/)*[\w.\-]+\.(?:py|pyi|go|rs|js|ts|java|c|h|cpp)):(\d+)(?::\s*in\s+([A-Za-z_]\w*))?").expect("static regex")
});
static PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[\w.\-]+/)*[\w\-]+\.(?:py|pyi|go|rs|js|ts|java|c|h|cpp|cfg|toml|txt|rst)\b")
        .expect("static regex")
});
static DOTTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+").expect("static regex"));
static FROM_IMPORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"from\s+([A-Za-z_][\w.]*)\s+import\s+\(?([\w ,]+)").expect("static regex")
});
// `numpy: 1.19.1`, `pytest==5.4.3`, `Python 3.8.5 (default, ...)`: environment dumps.
static VERSION_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\s>*|\-]*[A-Za-z][\w.\-]*\s*(?::|==|>=|=)?\s*v?\d+\.\d+[\w.\-+]*\s*(?:\(.*\)|\[.*\])?\s*$").expect("static regex")
});
/// An identifier directly followed by `(`: a call or a constructor written in prose.
static CALL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([A-Za-z_]\w*)\(").expect("static regex"));
/// HTML comments: issue and pull-request templates keep their instructions in them.
static HTML_COMMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").expect("static regex"));
/// `key: value` lines (environment dumps: `executable: /usr/bin/python`, `machine: Linux-5`).
static KEY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\s>*|\-]*[A-Za-z][\w .\-]{0,30}:\s*\S").expect("static regex"));
/// Headings of the issue and pull-request templates of the Python projects (matched
/// lower-case, after the `#`/`*` markup): their words are the template's, not the reporter's.
const TEMPLATE_HEADINGS: &[&str] = &[
    "reference issues",
    "what does this implement",
    "any other comments",
    "brief description of what is fixed",
    "other comments",
    "release notes",
    "steps/code to reproduce",
    "steps to reproduce",
    "code to reproduce",
    "code for reproduction",
    "expected results",
    "actual results",
    "expected outcome",
    "actual outcome",
    "expected behavior",
    "expected behaviour",
    "actual behavior",
    "additional information",
    "additional context",
    "bug summary",
    "bug report",
    "describe the bug",
    "to reproduce",
    "how to reproduce",
    "versions",
    "environment",
    "installation",
    "operating system",
    "matplotlib version",
    "matplotlib backend",
    "python version",
    "jupyter version",
    "screenshots",
    "description",
    "feature request",
    "proposed solution",
    "is your feature request related to a problem",
    "describe the solution",
    "describe alternatives",
    "problem",
    "solution",
    "mcve confirmation",
    "minimal complete verifiable example",
    "relevant log output",
    "anything else we need to know",
    "what happened",
    "what did you expect to happen",
    "pylint version",
    "os / environment",
    "configuration",
    "command used",
    "pylint output",
    "current behavior",
    "output of",
];
static FENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)```.*?```").expect("static regex"));
static BACKTICK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"`([^`\n]+)`").expect("static regex"));

/// How an issue is read; every part can be switched off to measure what it brings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOptions {
    /// Drop template, environment-dump and test-runner lines before reading names and terms.
    pub strip_noise: bool,
    /// Extra weight of identifiers and terms in the title (the first line).
    pub title_bonus: f32,
    /// `name(` in prose counts as code.
    pub calls_are_code: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            strip_noise: true,
            title_bonus: 1.0,
            calls_are_code: true,
        }
    }
}

/// Reads what an issue names.
pub fn read_issue(text: &str) -> IssueSignals {
    read_issue_with(text, &ReadOptions::default())
}

pub(crate) fn read_issue_with(text: &str, opts: &ReadOptions) -> IssueSignals {
    let mut s = IssueSignals {
        flat_text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        ..Default::default()
    };
    let mut frame_spans = Vec::new();
    for c in PY_FRAME.captures_iter(text) {
        let m = c.get(0).map_or(0..0, |m| m.range());
        frame_spans.push(m);
        s.frames.push(Frame {
            path: c[1].replace('\\', "/"),
            line: c[2].parse().ok(),
            function: c
                .get(3)
                .map(|f| f.as_str().to_string())
                .filter(|f| !f.starts_with('<')),
        });
    }
    for c in PATH_LINE.captures_iter(text) {
        let m = c.get(0).map_or(0..0, |m| m.range());
        if frame_spans
            .iter()
            .any(|f| f.start <= m.start && m.start < f.end)
        {
            continue;
        }
        s.frames.push(Frame {
            path: c[1].to_string(),
            line: c[2].parse().ok(),
            function: c.get(3).map(|f| f.as_str().to_string()),
        });
    }
    // Frames come from the raw text; everything else from the text without template,
    // environment-dump and test-runner noise.
    let stripped = if opts.strip_noise {
        strip_noise(text)
    } else {
        strip_plumbing(text)
    };
    let text = stripped.as_str();
    for m in PATH.find_iter(text) {
        let p = m.as_str();
        // `foo.py` inside a dotted name like `a.foo.py`? Paths need a slash or a file name.
        if !s.paths.iter().any(|x| x == p) && !s.frames.iter().any(|f| f.path.ends_with(p)) {
            s.paths.push(p.to_string());
        }
    }
    for m in DOTTED.find_iter(text) {
        let d = m.as_str().trim_end_matches('.');
        let ext = d.rsplit('.').next().unwrap_or("");
        if matches!(
            ext,
            "py" | "pyi"
                | "go"
                | "rs"
                | "js"
                | "ts"
                | "txt"
                | "rst"
                | "com"
                | "org"
                | "html"
                | "io"
        ) {
            continue;
        }
        if !s.dotted.iter().any(|x| x == d) {
            s.dotted.push(d.to_string());
        }
    }

    // `from a.b import C, D` names `a.b.C` and `a.b.D`.
    for c in FROM_IMPORT.captures_iter(text) {
        for name in c[2].split(',').filter_map(|n| n.split_whitespace().next()) {
            let d = format!("{}.{}", &c[1], name);
            if !s.imported.contains(&d) {
                s.imported.push(d);
            }
        }
    }
    // Words of environment dumps, interpreter banners and traceback plumbing say nothing
    // about where the bug is (stripped above); the frames' function names do.
    let mut code = String::new();
    for f in &s.frames {
        if let Some(func) = &f.function {
            code.push_str(func);
            code.push('\n');
        }
    }
    // Code regions count more than prose.
    for m in FENCE.find_iter(text) {
        code.push_str(m.as_str());
        code.push('\n');
    }
    for c in BACKTICK.captures_iter(text) {
        code.push_str(&c[1]);
        code.push('\n');
    }
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with(">>>") || t.starts_with("...") || line.starts_with("    ") {
            code.push_str(line);
            code.push('\n');
        }
    }
    // `separability_matrix(...)` or `lambdify(` in prose is a call, so code.
    if opts.calls_are_code {
        for c in CALL.captures_iter(text) {
            code.push_str(&c[1]);
            code.push('\n');
        }
    }
    let code_ids: HashMap<&str, usize> =
        tokenize::identifiers(&code).fold(HashMap::new(), |mut m, (_, id)| {
            *m.entry(id).or_default() += 1;
            m
        });
    let frame_functions: String = s
        .frames
        .iter()
        .filter_map(|f| f.function.clone())
        .collect::<Vec<_>>()
        .join("\n");
    // The title (the first line) says what the issue is about in the fewest words.
    let title = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let title_ids: std::collections::HashSet<&str> = tokenize::identifiers(title)
        .map(|(_, id)| id)
        .filter(|id| tokenize::looks_like_code(id) || code_ids.contains_key(id))
        .collect();
    // Directory and file names inside paths are not names of code.
    let without_paths = PATH.replace_all(text, " ");
    for (_, id) in
        tokenize::identifiers(&without_paths).chain(tokenize::identifiers(&frame_functions))
    {
        if id.len() < 3 || tokenize::is_stopword(&id.to_lowercase()) {
            continue;
        }
        let mut w = 1.0;
        if code_ids.contains_key(id) {
            w += 1.0;
        }
        if tokenize::looks_like_code(id) {
            w += 1.0;
        }
        if title_ids.contains(id) {
            w += opts.title_bonus;
        }
        let e = s.identifiers.entry(id.to_string()).or_insert(0.0);
        *e = e.max(w);
    }
    // Query terms: each occurrence counts, with diminishing returns; code counts double.
    let mut counts: HashMap<String, f32> = HashMap::new();
    for t in tokenize::terms(text) {
        *counts.entry(t).or_default() += 1.0;
    }
    for t in tokenize::terms(&code) {
        *counts.entry(t).or_default() += 1.0;
    }
    for t in tokenize::terms(title) {
        *counts.entry(t).or_default() += opts.title_bonus;
    }
    s.terms = counts.into_iter().map(|(t, c)| (t, 1.0 + c.ln())).collect();
    s
}

/// The issue without what only carries noise for ranking: template instructions (HTML
/// comments, template headings, check boxes), environment dumps (version listings, runs of
/// `key: value` lines with numbers or paths), interpreter banners, test-runner output and
/// traceback frame lines (the frames are read separately).
fn strip_noise(text: &str) -> String {
    let text = HTML_COMMENT.replace_all(text, " ");
    let lines: Vec<&str> = text.lines().collect();
    // Runs of four or more `key: value` lines, half of them with digits or paths, are dumps.
    let mut dump = vec![false; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        let mut j = i;
        while j < lines.len() && KEY_VALUE.is_match(lines[j]) {
            j += 1;
        }
        if j - i >= 4 {
            let numeric = lines[i..j]
                .iter()
                .filter(|l| l.chars().any(|c| c.is_ascii_digit() || c == '/'))
                .count();
            if numeric * 2 >= j - i {
                dump[i..j].iter_mut().for_each(|d| *d = true);
            }
        }
        i = j.max(i + 1);
    }
    let mut out = String::with_capacity(text.len());
    for (k, line) in lines.iter().enumerate() {
        let t = line.trim();
        let banner =
            t.contains("\"copyright\", \"credits\"") || t.contains("'copyright', 'credits'");
        let plumbing =
            t.starts_with("File \"") || t.starts_with("Traceback (most recent call last)");
        if dump[k]
            || banner
            || plumbing
            || VERSION_LINE.is_match(line)
            || is_template(t)
            || is_runner_output(t)
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The old reading: version listings, banners and traceback plumbing only.
fn strip_plumbing(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim();
        let banner =
            t.contains("\"copyright\", \"credits\"") || t.contains("'copyright', 'credits'");
        let plumbing =
            t.starts_with("File \"") || t.starts_with("Traceback (most recent call last)");
        if banner || plumbing || VERSION_LINE.is_match(line) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A template heading (`#### Expected Results`, `**Describe the bug**`) or check box.
fn is_template(t: &str) -> bool {
    if t.starts_with("- [ ]") || t.starts_with("- [x]") || t.starts_with("- [X]") {
        return true;
    }
    let heading = t.starts_with('#') || t.starts_with("**") || t.ends_with(':');
    if !heading {
        return false;
    }
    let words = t
        .trim_matches(|c: char| c == '#' || c == '*' || c == ':' || c.is_whitespace())
        .to_lowercase();
    // Short headings must match whole ("Problem" yes, "Problem with the parser" no).
    words.len() < 60
        && TEMPLATE_HEADINGS
            .iter()
            .any(|h| words == *h || (h.len() >= 12 && words.starts_with(h)))
}

/// pytest's session banner, progress and summary lines.
fn is_runner_output(t: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "platform ",
        "rootdir:",
        "cachedir:",
        "plugins:",
        "collected ",
        "collecting ",
        "configfile:",
        "inifile:",
        "hypothesis profile",
        "Using --randomly-seed",
    ];
    if PREFIXES.iter().any(|p| t.starts_with(p)) {
        return true;
    }
    // `===== test session starts =====`, `____ test_x ____`, `tests/test_a.py F.. [100%]`.
    let rule = t.len() > 6 && (t.starts_with("=====") || t.starts_with("_____"));
    rule || (t.ends_with("%]") && t.contains(" ["))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE: &str = r#"QuerySet.filter() crashes with `Q` objects

When I call `Model.objects.filter(q)` I get:

```
Traceback (most recent call last):
  File "/venv/lib/python3.9/site-packages/django/db/models/query.py", line 942, in filter
    return self._filter_or_exclude(False, args, kwargs)
  File "/venv/lib/python3.9/site-packages/django/db/models/sql/query.py", line 1290, in build_filter
    raise TypeError("bad")
TypeError: bad
```
See also django/db/models/lookups.py and tests at tests/queries/tests.py:120.
"#;

    #[test]
    fn frames_paths_and_dotted_names() {
        let s = read_issue(ISSUE);
        assert_eq!(s.frames.len(), 3);
        assert_eq!(
            s.frames[0].path,
            "/venv/lib/python3.9/site-packages/django/db/models/query.py"
        );
        assert_eq!(s.frames[0].line, Some(942));
        assert_eq!(s.frames[1].function.as_deref(), Some("build_filter"));
        assert_eq!(
            s.frames[2],
            Frame {
                path: "tests/queries/tests.py".into(),
                line: Some(120),
                function: None
            }
        );
        assert!(
            s.paths.contains(&"django/db/models/lookups.py".to_string()),
            "{:?}",
            s.paths
        );
        assert!(s.dotted.contains(&"QuerySet.filter".to_string()));
        assert!(s.dotted.contains(&"Model.objects.filter".to_string()));
    }

    #[test]
    fn environment_dumps_and_traceback_plumbing_are_not_query_words() {
        let issue = "Saving fails in `save_frame`.\n\nnumpy: 1.19.1\npytest==5.4.3\nlibhdf5: 1.10.6\nPython 3.8.5 (default, Jul 28 2020)\n\nTraceback (most recent call last):\n  File \"/x/app.py\", line 3, in render_page\n";
        let s = read_issue(issue);
        for gone in ["numpy", "pytest", "libhdf5", "last", "recent"] {
            assert!(!s.terms.contains_key(gone), "{gone} still a term");
        }
        assert!(s.terms.contains_key("save_frame"));
        assert!(
            s.identifiers["render_page"] >= 2.0,
            "frame functions count as code"
        );
        assert_eq!(s.frames[0].function.as_deref(), Some("render_page"));
    }

    #[test]
    fn from_imports_name_their_members() {
        let s =
            read_issue("```\nfrom sklearn.linear_model import RidgeClassifierCV, Ridge as R\n```");
        assert!(
            s.imported
                .contains(&"sklearn.linear_model.RidgeClassifierCV".to_string()),
            "{:?}",
            s.imported
        );
        assert!(
            s.imported
                .contains(&"sklearn.linear_model.Ridge".to_string())
        );
    }

    #[test]
    fn code_identifiers_weigh_more() {
        let s = read_issue(ISSUE);
        assert!(s.identifiers["_filter_or_exclude"] > s.identifiers["crashes"]);
        assert!(s.identifiers["QuerySet"] >= 2.0);
        // Parts of paths are not identifiers.
        assert!(
            !s.identifiers.contains_key("lookups"),
            "{:?}",
            s.identifiers.keys()
        );
        assert!(s.terms.contains_key("queryset") && s.terms.contains_key("filter"));
    }
}
