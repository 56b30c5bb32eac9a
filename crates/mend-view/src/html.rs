//! Small HTML fragments made in Rust rather than in templates: escaped text, coloured diffs,
//! long outputs folded. Everything here escapes what it is given.

/// `text` with `& < > " '` escaped for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The class of one line of a unified diff, if it is a diff line at all.
fn diff_class(line: &str) -> Option<&'static str> {
    if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff --git") {
        Some("dh")
    } else if line.starts_with("@@") {
        Some("dk")
    } else if line.starts_with('+') {
        Some("da")
    } else if line.starts_with('-') {
        Some("dd")
    } else {
        None
    }
}

/// A unified diff (or any text holding one) as a `<pre>` with added, removed, hunk and
/// header lines coloured.
pub fn diff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 5 / 4 + 32);
    out.push_str("<pre class=\"diff\">");
    for line in text.lines() {
        match diff_class(line) {
            Some(c) => {
                out.push_str("<span class=\"");
                out.push_str(c);
                out.push_str("\">");
                out.push_str(&escape(line));
                out.push_str("</span>\n");
            }
            None => {
                out.push_str(&escape(line));
                out.push('\n');
            }
        }
    }
    out.push_str("</pre>");
    out
}

/// Whether `text` looks like it holds a unified diff (an edit's observation does).
pub fn has_diff(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("@@ ")) && text.lines().any(|l| l.starts_with("+++ "))
}

/// Lines shown before a long output is folded.
const PREVIEW_LINES: usize = 12;
/// Outputs longer than this (lines or characters) are folded.
const FOLD_LINES: usize = 25;
const FOLD_CHARS: usize = 3_000;

/// `text` as a `<pre>` (a coloured diff when `as_diff`); a long one shows its first lines
/// and folds the whole into a `<details>` the reader opens (no script needed).
pub fn folded(text: &str, as_diff: bool) -> String {
    let render = |t: &str| {
        if as_diff {
            diff(t)
        } else {
            format!("<pre>{}</pre>", escape(t))
        }
    };
    let lines = text.lines().count();
    if lines <= FOLD_LINES && text.len() <= FOLD_CHARS {
        return render(text);
    }
    let preview: String = text
        .lines()
        .take(PREVIEW_LINES)
        .collect::<Vec<_>>()
        .join("\n");
    let preview: String = preview.chars().take(FOLD_CHARS / 2).collect();
    format!(
        "<div class=\"fold\">{}<details><summary>all {lines} lines ({} characters)</summary>{}</details></div>",
        render(&preview),
        text.len(),
        render(text)
    )
}

/// The last `max` bytes of `text` (at a line start), and whether anything was cut.
pub fn tail(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let start = text[start..]
        .find('\n')
        .map(|i| start + i + 1)
        .unwrap_or(start);
    (&text[start..], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_colours_diff_lines() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let d = diff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old <b>\n+new\n ctx");
        assert!(
            d.contains("<span class=\"dd\">-old &lt;b&gt;</span>"),
            "{d}"
        );
        assert!(d.contains("<span class=\"da\">+new</span>"), "{d}");
        assert!(d.contains("<span class=\"dk\">@@ -1 +1 @@</span>"), "{d}");
        assert!(d.contains("<span class=\"dh\">+++ b/x</span>"), "{d}");
        assert!(d.contains("\n ctx\n"), "{d}");
        assert!(has_diff("edited\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n"));
        assert!(!has_diff("+ not a diff"));
    }

    #[test]
    fn long_outputs_fold_and_short_ones_do_not() {
        assert_eq!(folded("a\nb", false), "<pre>a\nb</pre>");
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let f = folded(&long, false);
        assert!(f.contains("<details><summary>all 100 lines"), "{f}");
        assert!(f.contains("line 99"));
        let preview = f.split("<details>").next().unwrap();
        assert!(
            preview.contains("line 11") && !preview.contains("line 12"),
            "{preview}"
        );
    }

    #[test]
    fn tail_cuts_at_a_line_start_and_keeps_utf8_whole() {
        assert_eq!(tail("short", 10), ("short", false));
        let (t, cut) = tail("ééé\nline two\nend", 9);
        assert!(cut);
        assert_eq!(t, "end");
    }
}
