//! The eval script (the official shape: reset the test files to the base commit, apply the
//! test patch, run the test command on the selected files between markers, reset again)
//! and the model-patch application ladder.
use crate::dataset::Instance;
use crate::grading::{END_TEST_OUTPUT, START_TEST_OUTPUT};
use crate::specs::{RepoSpec, VersionSpec, modified_files, test_directives};

/// Where the repository lives in SWE-bench images, and the conda env name.
pub const REPO_DIR: &str = "/testbed";
pub const ENV_NAME: &str = "testbed";
/// Where the official harness puts the model patch in the container.
pub const CONTAINER_PATCH: &str = "/tmp/patch.diff";

/// The official fallbacks, in order; the patch path is appended.
pub const APPLY_COMMANDS: [&str; 3] = [
    "git apply --verbose",
    "git apply --verbose --reject",
    "patch --batch --fuzz=5 -p1 -i",
];

const HEREDOC: &str = "EOF_114329324912";

/// The commands that put the environment on PATH.
fn activate(spec: &VersionSpec) -> Vec<String> {
    spec.activate.clone().unwrap_or_else(|| {
        vec![
            "source /opt/miniconda3/bin/activate".into(),
            format!("conda activate {ENV_NAME}"),
        ]
    })
}

/// The test command with its test files (the official `test_cmd + directives`).
pub fn test_command(instance: &Instance, repo: &RepoSpec, spec: &VersionSpec) -> String {
    let cmds = spec.test_cmd.commands();
    let directives = test_directives(&instance.test_patch, repo.django_directives);
    let mut out: Vec<String> = Vec::new();
    // Several commands: all but the last run as they are; the last gets the files.
    for (i, c) in cmds.iter().enumerate() {
        if i + 1 == cmds.len() {
            out.push(
                std::iter::once(c.clone())
                    .chain(directives.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        } else {
            out.push(c.clone());
        }
    }
    out.join("\n")
}

/// The eval script, line for line the official `make_eval_script_list` for Python repos.
pub fn eval_script(instance: &Instance, repo: &RepoSpec, spec: &VersionSpec) -> String {
    let base = &instance.base_commit;
    let test_files = modified_files(&instance.test_patch);
    // Byte for byte the official line, trailing space included when no test file pre-exists.
    let reset = format!("git checkout {base} {}", test_files.join(" "));
    let mut lines: Vec<String> = vec!["#!/bin/bash".into(), "set -uxo pipefail".into()];
    lines.extend(activate(spec));
    lines.push(format!("cd {REPO_DIR}"));
    lines.extend(spec.eval_commands.iter().cloned());
    lines.push(format!(
        "git config --global --add safe.directory {REPO_DIR}"
    ));
    lines.push(format!("cd {REPO_DIR}"));
    lines.push("git status".into());
    lines.push("git show".into());
    lines.push(format!("git -c core.fileMode=false diff {base}"));
    lines.extend(activate(spec));
    if let Some(install) = &spec.install {
        lines.push(install.clone());
    }
    lines.push(reset.clone());
    lines.push(format!(
        "git apply -v - <<'{HEREDOC}'\n{}\n{HEREDOC}",
        instance.test_patch
    ));
    lines.push(format!(": '{START_TEST_OUTPUT}'"));
    lines.push(test_command(instance, repo, spec));
    lines.push(format!(": '{END_TEST_OUTPUT}'"));
    lines.push(reset);
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specs::Specs;

    fn inst(repo: &str, version: &str, test_patch: &str) -> Instance {
        Instance {
            instance_id: "x__y-1".into(),
            repo: repo.into(),
            base_commit: "0123456789abcdef0123456789abcdef01234567".into(),
            version: version.into(),
            patch: String::new(),
            test_patch: test_patch.into(),
            problem_statement: String::new(),
            environment_setup_commit: None,
            fail_to_pass: None,
            pass_to_pass: None,
            extra: Default::default(),
        }
    }

    const DJ_TP: &str = "diff --git a/tests/queries/tests.py b/tests/queries/tests.py\n--- a/tests/queries/tests.py\n+++ b/tests/queries/tests.py\n@@ -1 +1 @@\n-a\n+b\n";

    #[test]
    fn django_eval_script_matches_the_official_shape() {
        let specs = Specs::builtin();
        let i = inst("django/django", "3.0", DJ_TP);
        let (r, s) = (
            specs.repo(&i.repo).unwrap(),
            specs.get(&i.repo, &i.version).unwrap(),
        );
        let script = eval_script(&i, r, s);
        let base = &i.base_commit;
        let expected_tail = format!(
            "git checkout {base} tests/queries/tests.py\ngit apply -v - <<'EOF_114329324912'\n{DJ_TP}\nEOF_114329324912\n: '>>>>> Start Test Output'\n./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 queries.tests\n: '>>>>> End Test Output'\ngit checkout {base} tests/queries/tests.py\n"
        );
        assert!(script.ends_with(&expected_tail), "{script}");
        assert!(script.starts_with("#!/bin/bash\nset -uxo pipefail\nsource /opt/miniconda3/bin/activate\nconda activate testbed\ncd /testbed\nsed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen\n"), "{script}");
        assert!(script.contains(&format!("git -c core.fileMode=false diff {base}\nsource /opt/miniconda3/bin/activate\nconda activate testbed\npython -m pip install -e .\n")));
    }

    #[test]
    fn sympy_command_takes_the_test_file_paths() {
        let specs = Specs::builtin();
        let tp = DJ_TP.replace("tests/queries/tests.py", "sympy/core/tests/test_basic.py");
        let i = inst("sympy/sympy", "1.9", &tp);
        let cmd = test_command(
            &i,
            specs.repo(&i.repo).unwrap(),
            specs.get(&i.repo, &i.version).unwrap(),
        );
        assert_eq!(
            cmd,
            "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose sympy/core/tests/test_basic.py"
        );
    }
}
