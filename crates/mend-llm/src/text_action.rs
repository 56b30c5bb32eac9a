//! Text-action mode: the action is exactly one fenced block with info string `action`
//! holding one JSON object, `{"tool": "view", "path": "src/x.py", "start": 1}` (the tool
//! under "tool", the other keys its arguments), or one function block in the XML-style
//! format models trained on OpenHands and SWE-agent write, which carries multi-line code
//! as is: `<function=edit><parameter=path>a.py</parameter>...</function>`.
//! JSON whose strings hold raw newlines or tabs (invalid JSON, but what models write for
//! multi-line code) is repaired before it is judged.
use serde_json::{Map, Value};

use crate::types::Problem;

/// The tool name and arguments of the reply's one action block.
pub fn parse_action(text: &str) -> Result<(String, Value), Problem> {
    let blocks = action_blocks(text);
    let body = match blocks.as_slice() {
        [] => {
            return match function_blocks(text).as_slice() {
                [] => Err(Problem::NoAction),
                [one] => one.clone(),
                several => Err(Problem::SeveralActions {
                    count: several.len(),
                }),
            };
        }
        [Block { body, closed: true }] => body,
        [Block { closed: false, .. }] => return Err(Problem::UnclosedAction),
        several => {
            return Err(Problem::SeveralActions {
                count: several.len(),
            });
        }
    };
    // A function block inside the action fence is the same action.
    if let [one] = function_blocks(body).as_slice() {
        return one.clone();
    }
    let value: Value = match serde_json::from_str(body.trim()) {
        Ok(v) => v,
        Err(e) => serde_json::from_str(&escape_raw_controls(body.trim())).map_err(|_| {
            Problem::ActionNotJson {
                error: e.to_string(),
            }
        })?,
    };
    let Value::Object(mut obj) = value else {
        return Err(Problem::ActionNotJson {
            error: format!("expected one object, got {}", kind(&value)),
        });
    };
    let Some(Value::String(tool)) = obj.remove("tool") else {
        return Err(Problem::ActionWithoutTool);
    };
    // Models often nest the arguments: {"tool": "x", "arguments": {...}}.
    let args = match (obj.len(), obj.get("arguments").or_else(|| obj.get("args"))) {
        (1, Some(Value::Object(inner))) => Value::Object(inner.clone()),
        _ => Value::Object(obj),
    };
    Ok((tool, args))
}

/// JSON text with the raw newlines, carriage returns and tabs inside its strings escaped
/// (outside strings they are whitespace and stay).
fn escape_raw_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                '\n' => {
                    out.push_str("\\n");
                    continue;
                }
                '\r' => {
                    out.push_str("\\r");
                    continue;
                }
                '\t' => {
                    out.push_str("\\t");
                    continue;
                }
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

/// Each `<function=NAME>...</function>` block: its tool and `<parameter=KEY>VALUE</parameter>`
/// arguments. Values are text as written (one leading and trailing newline dropped);
/// values that are whole numbers become numbers. A block never closed counts as an
/// unclosed action.
fn function_blocks(text: &str) -> Vec<Result<(String, Value), Problem>> {
    const OPEN: &str = "<function=";
    let mut out = vec![];
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let Some(gt) = after.find('>') else {
            out.push(Err(Problem::UnclosedAction));
            break;
        };
        let name = after[..gt].trim().trim_matches('"').to_string();
        let body_and_rest = &after[gt + 1..];
        let Some(end) = body_and_rest.find("</function>") else {
            out.push(Err(Problem::UnclosedAction));
            break;
        };
        let body = &body_and_rest[..end];
        rest = &body_and_rest[end + "</function>".len()..];
        if name.is_empty() || name.contains(char::is_whitespace) {
            out.push(Err(Problem::ActionWithoutTool));
            continue;
        }
        out.push(parameters(body).map(|args| (name, Value::Object(args))));
    }
    out
}

fn parameters(body: &str) -> Result<Map<String, Value>, Problem> {
    const OPEN: &str = "<parameter=";
    const CLOSE: &str = "</parameter>";
    let mut args = Map::new();
    let mut rest = body;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let gt = after.find('>').ok_or(Problem::UnclosedAction)?;
        let key = after[..gt].trim().trim_matches('"').to_string();
        let value_and_rest = &after[gt + 1..];
        // A value runs to its closing tag, or (when the model left it out) to the next
        // parameter or the end of the block.
        let (end, skip) = match value_and_rest.find(CLOSE) {
            Some(e) => (e, CLOSE.len()),
            None => (value_and_rest.find(OPEN).unwrap_or(value_and_rest.len()), 0),
        };
        let raw = &value_and_rest[..end];
        let raw = raw.strip_prefix('\n').unwrap_or(raw);
        let raw = raw.strip_suffix('\n').unwrap_or(raw);
        let value = match raw.trim().parse::<i64>() {
            Ok(n) if !raw.trim().is_empty() => Value::from(n),
            _ => Value::String(raw.to_string()),
        };
        args.insert(key, value);
        rest = &value_and_rest[end + skip..];
    }
    Ok(args)
}

/// How many action blocks the text holds (closed or not), counting function blocks.
pub(crate) fn count_action_blocks(text: &str) -> usize {
    match action_blocks(text).len() {
        0 => function_blocks(text).len(),
        n => n,
    }
}

/// The action block for a call, as the model would have written it.
pub(crate) fn render_action(tool: &str, arguments: &Result<Value, String>) -> String {
    let json = match arguments {
        Ok(Value::Object(args)) => {
            let mut obj = Map::new();
            obj.insert("tool".into(), Value::String(tool.into()));
            obj.extend(args.clone());
            Value::Object(obj).to_string()
        }
        Ok(other) => serde_json::json!({"tool": tool, "arguments": other}).to_string(),
        Err(raw) => format!(
            "{{\"tool\": {}, <invalid arguments>: {raw}}}",
            Value::String(tool.into())
        ),
    };
    format!("```action\n{json}\n```")
}

struct Block {
    body: String,
    closed: bool,
}

/// Fenced blocks (``` or ~~~, three or more, indented at most 3 spaces) whose info string's
/// first word is `action`. Other fenced blocks are skipped whole, so an example inside a
/// ```python block does not count.
fn action_blocks(text: &str) -> Vec<Block> {
    let mut out = vec![];
    let mut open: Option<(char, usize, bool, String)> = None; // fence char, length, is action, body
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = line.trim_start_matches(' ');
        let fence = fence_of(trimmed).filter(|_| indent <= 3);
        match &mut open {
            None => {
                if let Some((ch, len)) = fence {
                    let info = trimmed[len..].trim();
                    let is_action = info
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| w.eq_ignore_ascii_case("action"));
                    open = Some((ch, len, is_action, String::new()));
                }
            }
            Some((ch, len, is_action, body)) => {
                let closes = fence
                    .is_some_and(|(c, l)| c == *ch && l >= *len && trimmed[l..].trim().is_empty());
                if closes {
                    if *is_action {
                        out.push(Block {
                            body: std::mem::take(body),
                            closed: true,
                        });
                    }
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    if let Some((_, _, true, body)) = open {
        out.push(Block {
            body,
            closed: false,
        });
    }
    out
}

fn fence_of(trimmed: &str) -> Option<(char, usize)> {
    let ch = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|c| *c == ch).count();
    (len >= 3).then_some((ch, len))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_block_parses() {
        let text = "I'll look at the file.\n\n```action\n{\"tool\": \"view\", \"path\": \"src/x.py\", \"start\": 1}\n```\n";
        let (tool, args) = parse_action(text).unwrap();
        assert_eq!(tool, "view");
        assert_eq!(args, json!({"path": "src/x.py", "start": 1}));
    }

    #[test]
    fn nested_arguments_are_unwrapped() {
        let (tool, args) = parse_action(
            "```action\n{\"tool\": \"bash\", \"arguments\": {\"command\": \"ls\"}}\n```",
        )
        .unwrap();
        assert_eq!((tool.as_str(), args), ("bash", json!({"command": "ls"})));
    }

    #[test]
    fn failures_are_typed() {
        assert_eq!(parse_action("just thinking"), Err(Problem::NoAction));
        let two = "```action\n{\"tool\": \"a\"}\n```\ntext\n```action\n{\"tool\": \"b\"}\n```";
        assert_eq!(parse_action(two), Err(Problem::SeveralActions { count: 2 }));
        assert!(matches!(
            parse_action("```action\n{\"tool\": \"view\", path}\n```"),
            Err(Problem::ActionNotJson { .. })
        ));
        assert!(matches!(
            parse_action("```action\n[1]\n```"),
            Err(Problem::ActionNotJson { .. })
        ));
        assert_eq!(
            parse_action("```action\n{\"path\": \"x\"}\n```"),
            Err(Problem::ActionWithoutTool)
        );
        assert_eq!(
            parse_action("```action\n{\"tool\": \"view\""),
            Err(Problem::UnclosedAction)
        );
    }

    #[test]
    fn other_fences_do_not_count() {
        let text = "Example:\n````markdown\n```action\n{\"tool\": \"x\"}\n```\n````\nNow:\n~~~ action\n{\"tool\": \"bash\", \"command\": \"ls\"}\n~~~\n";
        assert_eq!(parse_action(text).unwrap().0, "bash");
        let python =
            "```python\nprint(1)\n```\n```action\n{\"tool\": \"bash\", \"command\": \"ls\"}\n```";
        assert_eq!(parse_action(python).unwrap().0, "bash");
    }

    #[test]
    fn raw_newlines_and_tabs_in_json_strings_are_repaired() {
        let text = "```action\n{\"tool\": \"edit\", \"mode\": \"replace\", \"path\": \"a.py\",\n \"old_text\": \"def f():\n\treturn 1\", \"new_text\": \"def f():\n    return \\\"2\\\"\n\"}\n```";
        let (tool, args) = parse_action(text).unwrap();
        assert_eq!(tool, "edit");
        assert_eq!(args["old_text"], "def f():\n\treturn 1");
        assert_eq!(args["new_text"], "def f():\n    return \"2\"\n");
        // Still broken after the repair: the original error is reported.
        assert!(matches!(
            parse_action("```action\n{\"tool\": \"edit\", \"path\": \"a\nb}\n```"),
            Err(Problem::ActionNotJson { .. })
        ));
    }

    #[test]
    fn xml_style_function_blocks_carry_multi_line_code() {
        let text = "I will fix it.\n<function=edit>\n<parameter=mode>replace</parameter>\n<parameter=path>src/a.py</parameter>\n<parameter=old_text>\ndef f():\n    return \"a\"  # {not json}\n</parameter>\n<parameter=new_text>\ndef f():\n\treturn 'b'\n\n</parameter>\n</function>";
        let (tool, args) = parse_action(text).unwrap();
        assert_eq!(tool, "edit");
        assert_eq!(args["path"], "src/a.py");
        assert_eq!(args["old_text"], "def f():\n    return \"a\"  # {not json}");
        assert_eq!(args["new_text"], "def f():\n\treturn 'b'\n");
        // Numbers are numbers; a block inside the action fence counts too.
        let fenced = "```action\n<function=view><parameter=path>a.py</parameter><parameter=start>3</parameter></function>\n```";
        assert_eq!(
            parse_action(fenced).unwrap(),
            ("view".into(), json!({"path": "a.py", "start": 3}))
        );
        assert_eq!(
            parse_action("<function=bash><parameter=command>ls"),
            Err(Problem::UnclosedAction)
        );
        let two = "<function=bash><parameter=command>ls</parameter></function><function=submit></function>";
        assert_eq!(parse_action(two), Err(Problem::SeveralActions { count: 2 }));
    }

    #[test]
    fn render_round_trips() {
        let block = render_action("view", &Ok(json!({"path": "a.py"})));
        assert_eq!(
            parse_action(&block).unwrap(),
            ("view".into(), json!({"path": "a.py"}))
        );
    }
}
