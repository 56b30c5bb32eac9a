//! The syntax guard: an edit that makes a file that parsed cleanly fail to parse is refused.
use tree_sitter::{Node, Parser};

/// Where a file first fails to parse (1-based line and column), or `None` if it parses
/// cleanly or its language has no grammar here.
pub fn first_syntax_error(path: &str, text: &str) -> Option<(usize, usize, String)> {
    let language: tree_sitter::Language = if path.ends_with(".py") || path.ends_with(".pyi") {
        tree_sitter_python::LANGUAGE.into()
    } else {
        return None;
    };
    let mut parser = Parser::new();
    parser.set_language(&language).ok()?;
    let tree = parser.parse(text, None)?;
    let root = tree.root_node();
    if !root.has_error() {
        return None;
    }
    let bad = find_error(root).unwrap_or(root);
    let pos = bad.start_position();
    let what = if bad.is_missing() {
        format!("missing `{}`", bad.kind())
    } else {
        "unexpected text".to_string()
    };
    Some((pos.row + 1, pos.column + 1, what))
}

/// Whether the file has a grammar here (so "parses" means something).
pub fn has_grammar(path: &str) -> bool {
    path.ends_with(".py") || path.ends_with(".pyi")
}

/// The first error in document order. An ERROR node can wrap complete statements before
/// the real fault (the whole module, when an `else:` has no `if`): skip those.
fn find_error(node: Node) -> Option<Node> {
    if node.is_missing() {
        return Some(node);
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        let faulty = child.is_error() || child.is_missing() || child.has_error();
        if node.is_error() && !faulty {
            let complete = child.is_named()
                && (child.kind().ends_with("statement") || child.kind().ends_with("definition"));
            if complete {
                continue;
            }
            return Some(child);
        }
        if faulty {
            return find_error(child).or(Some(child));
        }
    }
    node.is_error().then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_error() {
        assert_eq!(first_syntax_error("a.py", "def f():\n    return 1\n"), None);
        let (line, _, _) =
            first_syntax_error("a.py", "def f():\n    return 1\n\ndef g(:\n    pass\n").unwrap();
        assert_eq!(line, 4);
        assert_eq!(first_syntax_error("a.txt", "def g(:"), None);
    }

    #[test]
    fn an_error_that_wraps_earlier_statements_is_placed_at_its_own_line() {
        // tree-sitter makes the whole module one ERROR node here; the fault is the `else:`.
        let text = "x = 1\ny = 2\nz = 3\nw = 4\nv = 5\nelse:\n    pass\n";
        assert_eq!(
            first_syntax_error("a.py", text).map(|e| (e.0, e.1)),
            Some((6, 1))
        );
        let text = "import os\n\n\nclass A:\n    def f(self):\n        return [1, 2\n\n    def g(self):\n        pass\n";
        assert_eq!(
            first_syntax_error("a.py", text).map(|e| (e.0, e.1)),
            Some((6, 9))
        );
        let text = "x = 1\ny = 2\nz = 3\nw = 4\nv = 5\ns = \"abc\n";
        assert_eq!(
            first_syntax_error("a.py", text).map(|e| (e.0, e.1)),
            Some((6, 5))
        );
    }
}
