//! Identifier-aware tokenisation shared by the index and the issue reader, so both sides of
//! every BM25 comparison see the same terms.
//!
//! `parse_header` gives `parse_header`, `parse`, `header`; `HTTPResponse` gives
//! `httpresponse`, `http`, `response`; `a.b.c` gives the terms of `a`, `b` and `c`.

use std::borrow::Cow;

/// Words too common in prose or code to say anything about where a bug lives.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "but", "by", "can", "class", "cls", "com", "const",
    "could", "def", "did", "didn", "do", "does", "doesn", "doing", "don", "elif", "else", "except",
    "false", "finally", "for", "from", "func", "get", "github", "had", "has", "have", "having",
    "he", "her", "here", "him", "his", "how", "http", "https", "if", "import", "in", "into", "is",
    "isn", "it", "its", "just", "lambda", "let", "like", "ll", "me", "more", "most", "my", "nil",
    "no", "none", "nor", "not", "now", "of", "off", "on", "once", "one", "only", "or", "org",
    "other", "our", "out", "over", "own", "package", "pass", "py", "raise", "re", "return", "same",
    "self", "she", "should", "so", "some", "struct", "such", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "true",
    "try", "two", "type", "under", "until", "up", "use", "used", "using", "var", "ve", "very",
    "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will",
    "with", "won", "would", "www", "yield", "you", "your",
];

pub(crate) fn is_stopword(word: &str) -> bool {
    STOPWORDS.binary_search(&word).is_ok()
}

/// Runs of identifier characters with their byte offsets. Runs that start with a digit are
/// numbers, not identifiers, and are left out.
pub fn identifiers(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            while i < bytes.len() && !is_ident_byte(bytes[i]) {
                i += 1;
            }
            let start = i;
            while i < bytes.len() && is_ident_byte(bytes[i]) {
                i += 1;
            }
            if start < i && !bytes[start].is_ascii_digit() {
                return Some((start, &text[start..i]));
            }
        }
        None
    })
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The sub-words of one identifier, lowercased: split at `_`, at lower→upper case changes and
/// at the end of an acronym (`HTTPResponse` → `http`, `response`). Digits stay with their word.
pub fn subwords(ident: &str) -> Vec<String> {
    let lower = ascii_lowered(ident);
    let mut out = Vec::new();
    subword_spans(ident, |s, e| out.push(word(&lower, s, e).into_owned()));
    out
}

/// Calls `f` with the byte span of each sub-word of `ident`. Case changes are read on ASCII
/// letters only, so every span starts and ends on a character boundary.
fn subword_spans(ident: &str, mut f: impl FnMut(usize, usize)) {
    let b = ident.as_bytes();
    let mut part = 0;
    while part < b.len() {
        if b[part] == b'_' {
            part += 1;
            continue;
        }
        let end = b[part..]
            .iter()
            .position(|&c| c == b'_')
            .map_or(b.len(), |p| part + p);
        let mut start = part;
        for i in part + 1..end {
            let (prev, cur) = (b[i - 1], b[i]);
            let next_lower = i + 1 < end && b[i + 1].is_ascii_lowercase();
            let boundary = (prev.is_ascii_lowercase() || prev.is_ascii_digit())
                && cur.is_ascii_uppercase()
                || prev.is_ascii_uppercase() && cur.is_ascii_uppercase() && next_lower;
            if boundary {
                f(start, i);
                start = i;
            }
        }
        f(start, end);
        part = end;
    }
}

/// `ident` with its ASCII letters lowercased: the byte offsets stay those of `ident`, so one
/// copy serves every sub-word (and none is made when there is nothing to lower).
fn ascii_lowered(ident: &str) -> Cow<'_, str> {
    if ident.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(ident.to_ascii_lowercase())
    } else {
        Cow::Borrowed(ident)
    }
}

/// One sub-word of an [`ascii_lowered`] identifier, fully lowercased.
fn word(lowered: &str, start: usize, end: usize) -> Cow<'_, str> {
    let w = &lowered[start..end];
    if w.is_ascii() {
        Cow::Borrowed(w)
    } else {
        Cow::Owned(w.to_lowercase())
    }
}

/// A light plural strip so `fields` meets `field`; code words are left otherwise alone.
fn stem(word: &str) -> &str {
    if word.len() > 4
        && word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        &word[..word.len() - 1]
    } else {
        word
    }
}

/// Calls `emit` with each BM25 term of one identifier: the whole identifier lowercased when it
/// has more than one sub-word, then each sub-word (stemmed). Stopwords and one-letter words are
/// dropped.
pub fn identifier_terms(ident: &str, mut emit: impl FnMut(&str)) {
    // Runs once per identifier occurrence of every indexed file: no allocation unless the
    // identifier has capitals (one lowered copy) or non-ASCII letters.
    let lower = ascii_lowered(ident);
    let mut words = 0;
    subword_spans(ident, |_, _| words += 1);
    if words > 1 {
        let whole = lower.trim_matches('_');
        if whole.len() > 2 {
            emit(&word(whole, 0, whole.len()));
        }
    }
    subword_spans(ident, |s, e| {
        let w = word(&lower, s, e);
        if w.len() < 2 || is_stopword(&w) || w.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        emit(stem(&w));
    });
}

/// All BM25 terms of a text, in order.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (_, ident) in identifiers(text) {
        identifier_terms(ident, |t| out.push(t.to_string()));
    }
    out
}

/// Plain words for the baseline: lowercased `[A-Za-z0-9_]+` runs, no splitting, no stemming.
pub fn plain_words(text: &str) -> Vec<String> {
    identifiers(text)
        .map(|(_, w)| w.to_lowercase())
        .filter(|w| w.len() > 1 && !is_stopword(w))
        .collect()
}

/// Whether an identifier looks like code rather than an English word: it has an underscore,
/// an inner capital, or a digit.
pub fn looks_like_code(ident: &str) -> bool {
    let inner_upper =
        ident.chars().skip(1).any(|c| c.is_uppercase()) && ident.chars().any(|c| c.is_lowercase());
    ident.contains('_') || inner_upper || ident.bytes().any(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn splits_snake_camel_and_acronyms() {
        assert_eq!(subwords("parse_header"), ["parse", "header"]);
        assert_eq!(subwords("HTTPResponse"), ["http", "response"]);
        assert_eq!(
            subwords("getHTTPResponseCode2"),
            ["get", "http", "response", "code2"]
        );
        assert_eq!(subwords("__init__"), ["init"]);
        assert_eq!(subwords("QuerySet"), ["query", "set"]);
        assert_eq!(subwords("_"), Vec::<String>::new());
        assert_eq!(subwords("a__B"), ["a", "b"]);
        assert_eq!(subwords("XMLHttp2Request"), ["xml", "http2", "request"]);
        // Non-ASCII letters are lowered, and case changes are read on ASCII letters.
        assert_eq!(subwords("ÜberKlasse_größe"), ["über", "klasse", "größe"]);
    }

    #[test]
    fn terms_keep_whole_identifiers_and_parts() {
        assert_eq!(
            terms("parse_header(x)"),
            ["parse_header", "parse", "header"]
        );
        assert_eq!(
            terms("django.db.models.QuerySet"),
            ["django", "db", "model", "queryset", "query", "set"]
        );
        assert_eq!(terms("The fields of 42 items"), ["field", "item"]);
        let mut got = vec![];
        identifier_terms("__HTTPResponse__", |t| got.push(t.to_string()));
        assert_eq!(got, ["httpresponse", "response"]);
        got.clear();
        identifier_terms("ÜberKlasse", |t| got.push(t.to_string()));
        assert_eq!(got, ["überklasse", "über", "klasse"]);
    }

    #[test]
    fn identifiers_skip_numbers_and_report_offsets() {
        let ids: Vec<_> = identifiers("a1 = 22 + b_c").collect();
        assert_eq!(ids, [(0, "a1"), (10, "b_c")]);
    }

    #[test]
    fn code_shape() {
        assert!(looks_like_code("parse_header"));
        assert!(looks_like_code("QuerySet"));
        assert!(!looks_like_code("Query"));
        assert!(!looks_like_code("query"));
    }
}
