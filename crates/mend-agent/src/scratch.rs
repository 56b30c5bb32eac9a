//! What of the sandbox's changes goes into the patch. New files belong in it (made with the
//! edit tool or with bash, by any path) unless they are clearly the agent's scratch — named
//! like a reproduction or debug script — and nothing else in the patch refers to them by
//! file or module name. Every file left out is named, and the tests on submit run without
//! them, against exactly the patch delivered.
use std::time::{SystemTime, UNIX_EPOCH};

use mend_sandbox::{Exec, Sandbox, SandboxError};
use serde::{Deserialize, Serialize};

use crate::tools::{TestRun, Toolbox};

/// A new file the sandbox holds that the patch does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub path: String,
    pub reason: String,
}

/// Name starts of the scripts agents write to try things out.
const SCRATCH_PREFIXES: &[&str] = &[
    "reproduce",
    "repro_",
    "repro.",
    "scratch",
    "debug_",
    "tmp_",
    "temp_",
];

/// The patch to deliver from a raw sandbox diff: build output dropped, and (unless
/// `keep_scratch`) unreferenced scratch files left out and listed.
pub fn deliverable(diff: &str, keep_scratch: bool) -> (String, Vec<LeftOut>) {
    let diff = drop_build_junk(diff);
    if keep_scratch {
        return (diff, vec![]);
    }
    split_scratch(&diff)
}

/// The sandbox's patch as [`deliverable`] makes it; a diff that fails is an empty patch.
pub async fn final_patch(sb: &dyn Sandbox, keep_scratch: bool) -> (String, Vec<LeftOut>) {
    match sb.diff().await {
        Ok(d) => deliverable(&d, keep_scratch),
        Err(e) => {
            tracing::warn!(error = %e, "could not diff the sandbox");
            (String::new(), vec![])
        }
    }
}

/// Run the test command against exactly the patch that would be delivered: the files it
/// leaves out are moved aside for the run and put back after.
pub async fn test_delivered(
    tools: &mut Toolbox,
    keep_scratch: bool,
) -> Result<TestRun, SandboxError> {
    let sb = tools.sandbox().clone();
    let (_, left_out) = deliverable(&sb.diff().await?, keep_scratch);
    if left_out.is_empty() {
        return tools.run_tests(None).await;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let aside = format!("/tmp/.mend-aside-{}-{nanos}", std::process::id());
    let paths: Vec<&str> = left_out.iter().map(|l| l.path.as_str()).collect();
    shuffle(
        sb.as_ref(),
        "set -e; a=$1; shift; for p; do mkdir -p \"$a/$(dirname \"$p\")\"; mv -- \"$p\" \"$a/$p\"; done",
        &aside,
        &paths,
    )
    .await?;
    let run = tools.run_tests(None).await;
    // Put them back whatever the tests did: the model may still want them.
    let back = shuffle(
        sb.as_ref(),
        "a=$1; shift; for p; do mv -- \"$a/$p\" \"$p\"; done; rm -rf -- \"$a\"",
        &aside,
        &paths,
    )
    .await;
    let mut run = run?;
    back?;
    if !run.passed && !run.command.is_empty() {
        run.condensed = format!(
            "(run without the files left out of the patch as scratch: {})\n{}",
            paths.join(", "),
            run.condensed
        );
    }
    Ok(run)
}

async fn shuffle(
    sb: &dyn Sandbox,
    script: &str,
    aside: &str,
    paths: &[&str],
) -> Result<(), SandboxError> {
    let mut argv = vec!["sh", "-c", script, "sh", aside];
    argv.extend_from_slice(paths);
    let out = sb.exec(&Exec::new(argv)).await?;
    if out.success() {
        Ok(())
    } else {
        Err(SandboxError::Engine {
            action: "moving scratch files aside for the tests".into(),
            message: out.stderr.text(),
        })
    }
}

/// Leave out new files named like scratch that nothing kept refers to; a scratch file that
/// a kept one names is kept too, and so on until nothing changes.
fn split_scratch(patch: &str) -> (String, Vec<LeftOut>) {
    let chunks: Vec<(&str, String, bool)> = split_file_chunks(patch)
        .into_iter()
        .map(|c| {
            let path = chunk_path(c);
            let candidate = is_new(c) && is_scratch_name(&path);
            (c, path, candidate)
        })
        .collect();
    let mut keep: Vec<bool> = chunks.iter().map(|(_, _, cand)| !cand).collect();
    loop {
        let mut changed = false;
        for i in 0..chunks.len() {
            if keep[i] {
                continue;
            }
            let referenced = chunks
                .iter()
                .enumerate()
                .any(|(j, (c, _, _))| keep[j] && refers_to(c, &chunks[i].1));
            if referenced {
                keep[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = String::new();
    let mut left_out = Vec::new();
    for (i, (chunk, path, _)) in chunks.iter().enumerate() {
        if keep[i] {
            out.push_str(chunk);
        } else {
            tracing::info!(%path, "leaving a scratch file out of the patch");
            left_out.push(LeftOut {
                path: path.clone(),
                reason:
                    "new file named like a scratch script, and nothing in the patch refers to it"
                        .into(),
            });
        }
    }
    (out, left_out)
}

fn is_new(chunk: &str) -> bool {
    chunk
        .lines()
        .take(4)
        .any(|l| l.starts_with("new file mode"))
}

fn chunk_path(chunk: &str) -> String {
    chunk
        .lines()
        .next()
        .and_then(|l| l.rsplit_once(" b/"))
        .map(|(_, p)| p.trim_matches('"').to_string())
        .unwrap_or_default()
}

fn is_scratch_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
    SCRATCH_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `text` names the file at `path`: its file name, or its stem as a whole word (a
/// module import, `python -m`, a path without the extension).
fn refers_to(text: &str, path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.is_empty() {
        return false;
    }
    let stem = name.split_once('.').map(|(s, _)| s).unwrap_or(name);
    let word = |c: char| c.is_alphanumeric() || c == '_';
    [name, stem].iter().any(|needle| {
        text.match_indices(needle).any(|(i, m)| {
            let before = text[..i].chars().next_back();
            let after = text[i + m.len()..].chars().next();
            !before.is_some_and(word) && !after.is_some_and(word)
        })
    })
}

/// Build output never belongs in a patch, ignored by the repository or not.
pub fn drop_build_junk(patch: &str) -> String {
    split_file_chunks(patch)
        .into_iter()
        .filter(|chunk| {
            let head = chunk.lines().next().unwrap_or("");
            let junk = [
                "__pycache__/",
                ".pyc ",
                ".pytest_cache/",
                ".egg-info/",
                ".mypy_cache/",
                ".tox/",
            ];
            !junk
                .iter()
                .any(|j| head.contains(j) || head.ends_with(j.trim_end()))
        })
        .collect()
}

fn split_file_chunks(patch: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = patch
        .match_indices("diff --git ")
        .filter(|(i, _)| *i == 0 || patch.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i)
        .collect();
    starts.push(patch.len());
    starts.windows(2).map(|w| &patch[w[0]..w[1]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_file(path: &str, body: &str) -> String {
        let lines: String = body.lines().map(|l| format!("+{l}\n")).collect();
        format!(
            "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n{lines}",
            body.lines().count()
        )
    }

    const EDIT: &str = "diff --git a/src/app.py b/src/app.py\n--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1,2 @@\n-a = 1\n+from src.helpers import tidy\n+a = tidy(1)\n";

    #[test]
    fn new_files_stay_unless_unreferenced_scratch() {
        let patch = format!(
            "{EDIT}{}{}{}",
            new_file("src/helpers.py", "def tidy(x):\n    return x\n"),
            new_file("reproduce_issue.py", "from src.app import a\nprint(a)\n"),
            new_file("tests/test_tidy.py", "from src.helpers import tidy\n"),
        );
        let (out, left) = deliverable(&patch, false);
        assert!(
            out.contains("b/src/helpers.py"),
            "made with bash or edit, kept: {out}"
        );
        assert!(out.contains("b/tests/test_tidy.py"), "{out}");
        assert!(!out.contains("reproduce_issue.py"), "{out}");
        assert_eq!(
            left.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(),
            vec!["reproduce_issue.py"]
        );
        let (all, none) = deliverable(&patch, true);
        assert!(all.contains("reproduce_issue.py") && none.is_empty());
    }

    #[test]
    fn a_scratch_named_file_that_the_patch_uses_is_kept() {
        // The fix imports a module whose name looks like scratch; a second scratch file is
        // kept because the first (kept) one names it.
        let edit = EDIT.replace("src.helpers", "src.debug_tools");
        let patch = format!(
            "{edit}{}{}{}",
            new_file(
                "src/debug_tools.py",
                "from src.tmp_consts import K\ndef tidy(x):\n    return x\n"
            ),
            new_file("src/tmp_consts.py", "K = 1\n"),
            new_file("scratch.py", "print('debug_tools_x')\n"),
        );
        let (out, left) = deliverable(&patch, false);
        assert!(out.contains("b/src/debug_tools.py"), "{out}");
        assert!(out.contains("b/src/tmp_consts.py"), "{out}");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].path, "scratch.py");
    }

    #[test]
    fn references_are_whole_words() {
        assert!(refers_to("import repro_x\n", "repro_x.py"));
        assert!(refers_to("python repro_x.py", "a/repro_x.py"));
        assert!(!refers_to("import repro_xy\n", "repro_x.py"));
        assert!(!refers_to("my_repro_x = 1", "repro_x.py"));
    }

    #[test]
    fn build_output_is_dropped() {
        let patch = format!(
            "{EDIT}{}",
            new_file("src/__pycache__/app.cpython-311.pyc", "x")
        );
        let (out, left) = deliverable(&patch, false);
        assert!(!out.contains("__pycache__") && left.is_empty(), "{out}");
    }
}
