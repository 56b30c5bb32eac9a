//! Test output, condensed for the model. Each failing test keeps its id, its exception type
//! and message (long messages bounded) and the innermost traceback frames that point into
//! the repository with their source lines; then the run's summary line. Understood: pytest
//! (long, auto, short and native tracebacks, `-q`, `-rA`, `--tb=no`), unittest, Django's
//! `runtests.py` and sympy's `bin/test`. `max_chars` is shared fairly across failures; the
//! ones that do not fit are counted. Output in no known shape keeps its tail.
use regex::Regex;
use std::sync::OnceLock;

/// Frames kept per failure when there is room, innermost last.
const MAX_FRAMES: usize = 3;
/// Exception lines kept per failure when there is room.
const MAX_EXC_LINES: usize = 12;
/// Longest line kept; a huge repr says nothing more past this.
const MAX_LINE: usize = 400;
/// Below this share a failure is not worth showing: fewer failures are shown instead.
const MIN_SHARE: usize = 160;

/// A condensed view of a test run's output, at most `max_chars` long.
pub fn condense_test_output(output: &str, max_chars: usize) -> String {
    let clean = strip_ansi(output);
    let lines: Vec<&str> = clean.lines().map(|l| l.trim_end()).collect();
    let report = parse(&lines);
    let condensed = if report.failures.is_empty() {
        match last_traceback(&lines) {
            Some(f) => render_report(
                &Report {
                    failures: vec![f],
                    summary: report.summary,
                },
                max_chars,
            ),
            // A passing run needs its counts only; a failing one in a shape not understood
            // keeps its tail, where runners put what went wrong.
            None if !report.summary.is_empty() && !says_failed(&report.summary) => {
                report.summary.join("\n")
            }
            None => tail(&clean, 60),
        }
    } else {
        render_report(&report, max_chars)
    };
    clip(&condensed, max_chars)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Keep head and tail of a long text, saying how much was cut.
pub fn clip(s: &str, max_chars: usize) -> String {
    let n = s.chars().count();
    if n <= max_chars {
        return s.to_string();
    }
    let half = max_chars.saturating_sub(40) / 2;
    let head: String = s.chars().take(half).collect();
    let tail: String = s.chars().skip(n - half).collect();
    format!("{head}\n[... {} characters cut ...]\n{tail}", n - 2 * half)
}

/// One failing test, reduced to what the model needs.
#[derive(Debug, Default, Clone)]
struct Failure {
    /// `FAILED tests/x.py::test_y`, `ERROR: test_y (mod.Class.test_y)`, ...
    id: String,
    /// Kept frames, outermost first: a location line and its source line(s).
    frames: Vec<Vec<String>>,
    /// The exception: type and message, as many lines as it has.
    exception: Vec<String>,
    /// Exceptions this one was chained from (`raise ... from`, or raised while handling).
    chained: Vec<String>,
}

#[derive(Debug, Default)]
struct Report {
    failures: Vec<Failure>,
    summary: Vec<String>,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

fn strip_ansi(s: &str) -> String {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    re(&ANSI, r"\x1b\[[0-9;]*[A-Za-z]")
        .replace_all(s, "")
        .into_owned()
}

/// Where a failure's lines are being collected from.
enum Block {
    None,
    /// pytest or sympy: `____ title ____`.
    Underscore(String),
    /// unittest and Django: `FAIL: test (id)`.
    Unittest(String),
}

fn parse(lines: &[&str]) -> Report {
    static SECTION: OnceLock<Regex> = OnceLock::new();
    static UNDERSCORE: OnceLock<Regex> = OnceLock::new();
    static UNITTEST: OnceLock<Regex> = OnceLock::new();
    static RULE: OnceLock<Regex> = OnceLock::new();
    static SHORT: OnceLock<Regex> = OnceLock::new();
    static CAPTURED: OnceLock<Regex> = OnceLock::new();
    let section_re = re(&SECTION, r"^=+ (.+?) =+$");
    let underscore = re(&UNDERSCORE, r"^_{3,} (.+?) _{3,}$");
    let unittest = re(&UNITTEST, r"^(FAIL|ERROR|UNEXPECTED SUCCESS): (.+)$");
    let rule = re(&RULE, r"^(={20,}|-{20,}|_{20,})$");
    let short = re(
        &SHORT,
        // The node id runs to ` - ` (parameters may hold spaces).
        r"^(FAILED|ERROR|PASSED|SKIPPED|XFAIL|XPASS)\b ?(.*?)(?: - (.*))?$",
    );
    let captured = re(&CAPTURED, r"^-+ Captured .* -+$");

    let mut report = Report::default();
    // pytest's short summary: (status, node id, message lines).
    let mut short_summary: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut section = String::new();
    let mut block = Block::None;
    // False once pytest's captured output starts: the rest of the block is not traceback.
    let mut collecting = true;
    let mut body: Vec<&str> = Vec::new();
    let mut bodies: Vec<(Block, Vec<&str>)> = Vec::new();

    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let ends_block = rule.is_match(line)
            || section_re.is_match(line)
            || underscore.is_match(line)
            || unittest.is_match(line)
            || is_summary(line);
        if ends_block && !matches!(block, Block::None) {
            bodies.push((
                std::mem::replace(&mut block, Block::None),
                std::mem::take(&mut body),
            ));
        }
        if is_summary(line) {
            report.summary.push(line.trim().to_string());
            continue;
        }
        if let Some(c) = section_re.captures(line) {
            section = c[1].to_string();
            continue;
        }
        if let Some(c) = underscore.captures(line) {
            let failing = section.is_empty()
                || section.contains("FAILURES")
                || section.contains("ERRORS")
                || section.contains("test process starts");
            if failing {
                block = Block::Underscore(c[1].to_string());
                collecting = true;
            }
            continue;
        }
        if unittest.is_match(line) {
            block = Block::Unittest(line.to_string());
            collecting = true;
            // The dashed rule under the header belongs to it.
            if lines.get(i).is_some_and(|l| l.starts_with("----")) {
                i += 1;
            }
            continue;
        }
        if section.contains("short test summary") {
            if let Some(c) = short.captures(line) {
                if matches!(&c[1], "FAILED" | "ERROR") && !c[2].is_empty() {
                    let msg = c.get(3).map(|m| vec![m.as_str().to_string()]);
                    short_summary.push((
                        c[1].to_string(),
                        c[2].to_string(),
                        msg.unwrap_or_default(),
                    ));
                } else {
                    // A status that is not a failure ends the previous entry's message.
                    short_summary.push((String::new(), String::new(), Vec::new()));
                }
            } else if let Some(last) = short_summary.last_mut() {
                // A message that goes on over several lines.
                if !last.1.is_empty() && last.2.len() < MAX_EXC_LINES {
                    last.2.push(line.to_string());
                }
            }
            continue;
        }
        if captured.is_match(line) {
            collecting = false;
        } else if collecting && !matches!(block, Block::None) {
            body.push(line);
        }
    }
    if !matches!(block, Block::None) {
        bodies.push((block, body));
    }
    short_summary.retain(|s| !s.1.is_empty());

    let mut matched = vec![false; short_summary.len()];
    for (block, body) in bodies {
        let (id, frames_exc) = match block {
            Block::Unittest(header) => (header, extract(&body)),
            Block::Underscore(title) => {
                let found = match_summary(&title, &short_summary);
                let id = match found {
                    Some(k) => {
                        matched[k] = true;
                        let (status, node, _) = &short_summary[k];
                        match title.strip_prefix("ERROR at ") {
                            Some(when) => format!(
                                "{status} {node} (at {})",
                                when.split(" of ").next().unwrap_or(when)
                            ),
                            None => format!("{status} {node}"),
                        }
                    }
                    None => match title.strip_prefix("ERROR collecting ") {
                        Some(path) => format!("ERROR {path}"),
                        None => format!("FAILED {title}"),
                    },
                };
                (id, extract(&body))
            }
            Block::None => continue,
        };
        let mut f = frames_exc;
        f.id = id;
        report.failures.push(f);
    }
    // Failures the summary names but no traceback showed (`--tb=no`): their message only.
    for (k, (status, node, msg)) in short_summary.into_iter().enumerate() {
        if !matched[k] {
            report.failures.push(Failure {
                id: format!("{status} {node}"),
                exception: msg,
                ..Failure::default()
            });
        }
    }
    report
}

/// The short-summary entry a pytest block title (`Class.test_x[p]`, `ERROR at setup of
/// test_x`, `ERROR collecting path`) stands for.
fn match_summary(title: &str, summary: &[(String, String, Vec<String>)]) -> Option<usize> {
    let name = title
        .strip_prefix("ERROR at setup of ")
        .or_else(|| title.strip_prefix("ERROR at teardown of "))
        .unwrap_or(title);
    if let Some(path) = title.strip_prefix("ERROR collecting ") {
        return summary.iter().position(|s| s.1 == path);
    }
    // `Class.test_x[a.b]`: dots before the parameters separate classes.
    let (head, params) = match name.find('[') {
        Some(p) => name.split_at(p),
        None => (name, ""),
    };
    let node_tail = format!("::{}{params}", head.replace('.', "::"));
    summary
        .iter()
        .position(|s| s.1.ends_with(&node_tail) || s.1.ends_with(&format!("::{name}")))
}

/// The run's closing lines: counts and verdicts of each runner.
fn is_summary(line: &str) -> bool {
    static SUMMARY: OnceLock<Regex> = OnceLock::new();
    re(
        &SUMMARY,
        r"^(=+ .*\d+ (failed|passed|errors?|skipped|deselected|xfailed|xpassed|warnings?)\b.* in [\d.]+ ?s(econds)?.* =+|\d+ (failed|passed|errors?)\b.* in [\d.]+s( \(.*\))?|!+ .* !+|Ran \d+ tests? in .*|(FAILED|OK)( \(.*\))?|\s*tests finished: .*)$",
    )
    .is_match(line)
}

fn says_failed(summary: &[String]) -> bool {
    static FAILED: OnceLock<Regex> = OnceLock::new();
    let failed = re(
        &FAILED,
        r"\b(failed|errors?|FAILED|Interrupted)\b|\b[1-9]\d* exceptions",
    );
    summary.iter().any(|l| failed.is_match(l))
}

/// A location that is not the repository's: the standard library, installed packages,
/// the runner itself.
fn outside_repo(path: &str) -> bool {
    path.contains("site-packages")
        || path.contains("dist-packages")
        || path.contains("/lib/python")
        || path.starts_with('<')
        || path.starts_with("/usr/lib/")
}

/// Frames, exception and chained exceptions out of one failure's lines, whatever the
/// traceback style.
fn extract(body: &[&str]) -> Failure {
    static PY_FRAME: OnceLock<Regex> = OnceLock::new();
    static PT_LOC: OnceLock<Regex> = OnceLock::new();
    static CARET: OnceLock<Regex> = OnceLock::new();
    static PT_SEP: OnceLock<Regex> = OnceLock::new();
    let py_frame = re(&PY_FRAME, r#"^\s*File "(.+?)", line \d+"#);
    let pt_loc = re(&PT_LOC, r"^(\S+\.py|<[^>]+>):\d+:(?: (.*))?$");
    let caret = re(&CARET, r"^\s*[\^~]+\s*$");
    let pt_sep = re(&PT_SEP, r"^(_ ){3,}_?$");

    // Chained exceptions: each segment is one traceback; the last is the one raised.
    let mut segments: Vec<Vec<&str>> = vec![Vec::new()];
    for &l in body {
        if l.starts_with("The above exception was the direct cause")
            || l.starts_with("During handling of the above exception")
        {
            segments.push(Vec::new());
        } else if let Some(s) = segments.last_mut() {
            s.push(l);
        }
    }

    struct Seg {
        frames: Vec<(bool, Vec<String>)>,
        exception: Vec<String>,
    }
    let parse_segment = |seg: &[&str]| -> Seg {
        let mut frames: Vec<(bool, Vec<String>)> = Vec::new();
        let mut e_lines: Vec<String> = Vec::new();
        // Lines after the last frame: a plain traceback's exception.
        let mut after: Vec<String> = Vec::new();
        let mut pending_src: Vec<String> = Vec::new();
        let mut await_src = false;
        for &l in seg {
            if caret.is_match(l) || l.starts_with("Traceback (most recent call last)") {
                continue;
            }
            if let Some(c) = py_frame.captures(l) {
                frames.push((!outside_repo(&c[1]), vec![l.to_string()]));
                await_src = true;
                after.clear();
                continue;
            }
            if let Some(c) = pt_loc.captures(l) {
                let path = l.split(':').next().unwrap_or("");
                let repo = !outside_repo(path);
                let rest = c.get(2).map_or("", |m| m.as_str());
                if rest.starts_with("in ") {
                    // Short style: the location, then its source line.
                    frames.push((repo, vec![l.to_string()]));
                    await_src = true;
                } else {
                    // Long style: the `>` line came before its location.
                    let mut f = vec![l.to_string()];
                    f.append(&mut pending_src);
                    frames.push((repo, f));
                    await_src = false;
                }
                after.clear();
                continue;
            }
            if l.starts_with("E ") || l == "E" {
                e_lines.push(l.to_string());
                await_src = false;
                continue;
            }
            if l.starts_with("> ") || l == ">" {
                pending_src.push(l.to_string());
                await_src = false;
                continue;
            }
            if pt_sep.is_match(l) {
                pending_src.clear();
                continue;
            }
            if await_src && l.starts_with(' ') && !l.trim().is_empty() {
                if let Some(f) = frames.last_mut() {
                    f.1.push(l.to_string());
                }
                await_src = false;
                continue;
            }
            await_src = false;
            if !frames.is_empty() {
                after.push(l.to_string());
            }
        }
        let exception = if e_lines.is_empty() { after } else { e_lines };
        Seg {
            frames,
            exception: trim_blank(exception),
        }
    };

    let parsed: Vec<Seg> = segments
        .iter()
        .filter(|s| s.iter().any(|l| !l.trim().is_empty()))
        .map(|s| parse_segment(s))
        .collect();
    let Some((last, earlier)) = parsed.split_last() else {
        return Failure::default();
    };
    let mut frames: Vec<Vec<String>> = last
        .frames
        .iter()
        .filter(|(repo, _)| *repo)
        .map(|(_, f)| f.clone())
        .collect();
    if frames.is_empty() {
        // Nothing in the repository: the innermost frame still says where it broke.
        frames.extend(last.frames.last().map(|(_, f)| f.clone()));
    }
    let mut exception = last.exception.clone();
    if exception.is_empty() && last.frames.is_empty() {
        // No traceback at all (a doctest, a runner message): the first lines say why.
        exception = trim_blank(
            body.iter()
                .take(MAX_EXC_LINES)
                .map(|l| l.to_string())
                .collect(),
        );
    }
    Failure {
        id: String::new(),
        frames,
        exception,
        chained: earlier
            .iter()
            .filter_map(|s| s.exception.first())
            .map(|l| l.trim_start_matches('E').trim().to_string())
            .collect(),
    }
}

fn trim_blank(mut v: Vec<String>) -> Vec<String> {
    while v.last().is_some_and(|l| l.trim().is_empty()) {
        v.pop();
    }
    let start = v.iter().take_while(|l| l.trim().is_empty()).count();
    v.drain(..start);
    v
}

/// The last Python traceback in output no runner format claimed (a crash on import).
fn last_traceback(lines: &[&str]) -> Option<Failure> {
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))?;
    let mut f = extract(&lines[start..]);
    if f.exception.is_empty() {
        return None;
    }
    f.exception.truncate(MAX_EXC_LINES);
    f.id = "Traceback".into();
    Some(f)
}

fn clip_line(l: &str) -> String {
    if l.chars().count() <= MAX_LINE {
        l.to_string()
    } else {
        let head: String = l.chars().take(MAX_LINE).collect();
        format!("{head} [...]")
    }
}

/// One failure with its `frames` innermost frames and `exc` exception lines.
fn render(f: &Failure, frames: usize, exc: usize) -> String {
    let mut out = vec![f.id.clone()];
    for fr in &f.frames[f.frames.len().saturating_sub(frames)..] {
        out.extend(fr.iter().map(|l| clip_line(l)));
    }
    out.extend(f.exception.iter().take(exc).map(|l| clip_line(l)));
    if f.exception.len() > exc {
        out.push(format!("[... {} more lines]", f.exception.len() - exc));
    }
    if exc > 1 {
        out.extend(
            f.chained
                .iter()
                .map(|c| format!("(chained from: {})", clip_line(c))),
        );
    }
    out.join("\n")
}

/// The richest rendering of `f` within `share` characters.
fn fit(f: &Failure, share: usize) -> String {
    const LEVELS: [(usize, usize); 5] =
        [(MAX_FRAMES, MAX_EXC_LINES), (2, 6), (1, 3), (1, 1), (0, 1)];
    let mut last = String::new();
    for (frames, exc) in LEVELS {
        last = render(f, frames, exc);
        if last.chars().count() <= share {
            return last;
        }
    }
    last.chars().take(share).collect()
}

fn render_report(report: &Report, max_chars: usize) -> String {
    let summary = clip(&report.summary.join("\n"), 600);
    // Room for the note on failures left out, when there are some.
    let note_room = 220;
    let room = max_chars.saturating_sub(summary.chars().count() + 2);

    // A failure that repeats an earlier one's error (parametrized tests) is named only.
    let mut first_seen: Vec<&Failure> = Vec::new();
    let failures: Vec<Failure> = report
        .failures
        .iter()
        .map(|f| {
            let same = first_seen
                .iter()
                .find(|s| s.frames == f.frames && s.exception == f.exception);
            match same {
                Some(s) if !f.exception.is_empty() => Failure {
                    id: format!("{} (same error as {})", f.id, s.id),
                    ..Failure::default()
                },
                _ => {
                    first_seen.push(f);
                    f.clone()
                }
            }
        })
        .collect();

    // As many failures as get a useful share each, in the order they ran.
    let full: Vec<usize> = failures
        .iter()
        .map(|f| render(f, MAX_FRAMES, MAX_EXC_LINES).chars().count() + 2)
        .collect();
    let floors = |budget: usize| {
        let mut shown = 0;
        let mut floor = 0;
        for &size in &full {
            floor += size.min(MIN_SHARE);
            if floor > budget && shown > 0 {
                break;
            }
            shown += 1;
        }
        shown
    };
    let (shown, budget) = match floors(room) {
        all if all == failures.len() => (all, room),
        _ => {
            let budget = room.saturating_sub(note_room);
            (floors(budget), budget)
        }
    };

    // Each failure gets its share; what a short one leaves goes to the others.
    let mut order: Vec<usize> = (0..shown).collect();
    order.sort_by_key(|&k| full[k]);
    let mut shares = vec![0; shown];
    let mut left = budget;
    for (done, &k) in order.iter().enumerate() {
        let share = left / (shown - done);
        shares[k] = full[k].min(share);
        left -= shares[k];
    }
    let mut parts: Vec<String> = failures[..shown]
        .iter()
        .zip(&shares)
        .map(|(f, &s)| fit(f, s.saturating_sub(2)))
        .collect();
    let n = failures.len();
    if shown < n {
        let mut note = format!("[... {} more failing tests not shown:", n - shown);
        for f in &report.failures[shown..] {
            if note.chars().count() + f.id.chars().count() + 8 > note_room - 20 {
                note.push_str(" ...");
                break;
            }
            note.push(' ');
            note.push_str(&f.id);
        }
        note.push(']');
        parts.push(note);
    }
    if !summary.is_empty() {
        parts.push(summary);
    }
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_failures_assertions_and_repo_frames() {
        let out = "============================= test session starts ==============================\n\
collected 3 items\n\ntests/test_calc.py .F.                                                 [100%]\n\n\
=================================== FAILURES ===================================\n\
___________________________________ test_add ___________________________________\n\n\
    def test_add():\n>       assert add(2, 3) == 5\nE       assert -1 == 5\nE        +  where -1 = add(2, 3)\n\n\
tests/test_calc.py:6: AssertionError\n\
/usr/lib/python3/dist-packages/_pytest/python.py:10: in call\n\
=========================== short test summary info ============================\n\
FAILED tests/test_calc.py::test_add - assert -1 == 5\n\
========================= 1 failed, 2 passed in 0.03s ==========================\n";
        let c = condense_test_output(out, 10_000);
        assert!(c.contains("FAILED tests/test_calc.py::test_add"));
        assert!(c.contains("E       assert -1 == 5"));
        assert!(c.contains("tests/test_calc.py:6: AssertionError"));
        assert!(c.contains("1 failed, 2 passed"));
        assert!(!c.contains("collected 3 items"));
        assert!(!c.contains("/usr/lib/python3"));
    }

    #[test]
    fn passing_runs_keep_counts_and_unknown_failures_their_tail() {
        let passing = "test_a ... ok\ntest_b ... ok\n\n----------------------------------------------------------------------\nRan 2 tests in 0.001s\n\nOK\n";
        assert_eq!(
            condense_test_output(passing, 1_000),
            "Ran 2 tests in 0.001s\nOK"
        );
        // pytest `--tb=line` without a short summary: no block, but the lines stay.
        let line_style = "=== FAILURES ===\n/repo/calc.py:6: TypeError: bad operand\n==================== 1 failed in 0.02s ====================\n";
        let c = condense_test_output(line_style, 1_000);
        assert!(c.contains("/repo/calc.py:6: TypeError: bad operand"), "{c}");
        assert!(c.contains("1 failed"), "{c}");
    }

    #[test]
    fn parameters_with_spaces_match_their_summary_entry() {
        let out = "=== FAILURES ===\n___ test_p[a b] ___\n\n>       assert f(1)\nE       ValueError: no\n\ntests/t.py:4: ValueError\n=== short test summary info ===\nFAILED tests/t.py::test_p[a b] - ValueError: no\n=== 1 failed in 0.01s ===\n";
        let c = condense_test_output(out, 1_000);
        assert!(c.starts_with("FAILED tests/t.py::test_p[a b]\ntests/t.py:4: ValueError\n>       assert f(1)\nE       ValueError: no"), "{c}");
        assert_eq!(c.matches("test_p[a b]").count(), 1, "{c}");
    }

    #[test]
    fn clip_keeps_both_ends() {
        let s = "a".repeat(50) + &"b".repeat(50);
        let c = clip(&s, 60);
        assert_eq!(c, "aaaaaaaaaa\n[... 80 characters cut ...]\nbbbbbbbbbb");
        assert!(c.chars().count() <= 60);
    }
}
