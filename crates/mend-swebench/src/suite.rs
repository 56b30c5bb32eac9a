//! The regression guard's view of a repository's tests: its test command, run on chosen
//! test files, read back test by test with the repository's own log parser.
use std::collections::BTreeMap;

use mend_agent::verify::{TestSuite, TestVerdict};

use crate::SwebenchError;
use crate::parsers::{LogParser, TestStatus};
use crate::specs::Specs;

/// A repository's test command and log parser.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSuite {
    /// Runs the whole suite; test files are appended to it.
    pub test_cmd: String,
    pub parser: LogParser,
    /// Django names test modules, not files: `tests/a/b.py` -> `a.b`.
    pub django_directives: bool,
}

impl RepoSuite {
    /// The suite of a SWE-bench instance's repository and version.
    pub fn for_instance(specs: &Specs, repo: &str, version: &str) -> Result<Self, SwebenchError> {
        let spec = specs.get(repo, version)?;
        let r = specs
            .repo(repo)
            .ok_or_else(|| SwebenchError::Invalid(format!("no spec for {repo}")))?;
        Ok(RepoSuite {
            test_cmd: spec.test_cmd.commands().join(" && "),
            parser: r.log_parser,
            django_directives: r.django_directives,
        })
    }

    /// The suite behind a plain test command (`mend fix`): pytest (made to print its `-rA`
    /// summary) or unittest (whose verbose lines Django's parser reads). `None` for any
    /// other command, whose output mend cannot read test by test.
    pub fn for_command(cmd: &str) -> Option<Self> {
        // One plain command only: a shell line is not taken apart and re-run in pieces.
        if cmd.contains([';', '&', '|', '<', '>', '`', '$', '\n']) {
            return None;
        }
        let words: Vec<&str> = cmd.split_whitespace().collect();
        if words
            .iter()
            .any(|w| *w == "pytest" || w.ends_with("/pytest"))
        {
            let test_cmd = if words.contains(&"-rA") {
                cmd.to_string()
            } else {
                format!("{cmd} -rA")
            };
            return Some(RepoSuite {
                test_cmd,
                parser: LogParser::Pytest,
                django_directives: false,
            });
        }
        if let Some(i) = words.iter().position(|w| *w == "unittest") {
            // `discover` takes no files: the guard names them to unittest itself.
            let runner = words[..=i].join(" ");
            return Some(RepoSuite {
                test_cmd: format!("{runner} -v"),
                parser: LogParser::Django,
                django_directives: false,
            });
        }
        None
    }
}

impl TestSuite for RepoSuite {
    fn command(&self, files: &[String]) -> String {
        let args: Vec<String> = files
            .iter()
            .map(|f| {
                if self.django_directives {
                    let d = f.strip_suffix(".py").unwrap_or(f);
                    d.strip_prefix("tests/").unwrap_or(d).replace('/', ".")
                } else {
                    f.clone()
                }
            })
            .map(|a| shell_quote(&a))
            .collect();
        format!("{} {}", self.test_cmd, args.join(" "))
    }

    fn full_command(&self) -> String {
        self.test_cmd.clone()
    }

    fn parse(&self, log: &str) -> BTreeMap<String, TestVerdict> {
        let map = self.parser.parse(log);
        // unittest's `FAIL: name (module.Class.name)` header also gives the bare name (an
        // official parser quirk kept for grading); the guard counts each test once.
        let bare_dup = |k: &str| {
            !k.contains(' ')
                && map
                    .range(format!("{k} (")..)
                    .next()
                    .is_some_and(|(n, _)| n.starts_with(&format!("{k} (")))
        };
        map.iter()
            .filter(|(k, _)| !bare_dup(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .filter_map(|(k, v)| {
                let v = match v {
                    TestStatus::Passed | TestStatus::Xfail => TestVerdict::Passed,
                    TestStatus::Failed | TestStatus::Error => TestVerdict::Failed,
                    TestStatus::Skipped => TestVerdict::Skipped,
                    TestStatus::Other(_) => return None,
                };
                Some((k, v))
            })
            .collect()
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_files_or_django_modules() {
        let s = Specs::builtin();
        let dj = RepoSuite::for_instance(&s, "django/django", "4.2").unwrap();
        assert!(
            dj.command(&["tests/queries/test_q.py".into()])
                .ends_with("--parallel 1 queries.test_q"),
            "{}",
            dj.command(&["tests/queries/test_q.py".into()])
        );
        let sy = RepoSuite::for_instance(&s, "sympy/sympy", "1.13").unwrap();
        assert!(
            sy.command(&["sympy/core/tests/test_basic.py".into()])
                .ends_with("bin/test -C --verbose sympy/core/tests/test_basic.py")
        );
        let py = RepoSuite::for_command("python3 -m pytest -q").unwrap();
        assert_eq!(py.full_command(), "python3 -m pytest -q -rA");
        let ut = RepoSuite::for_command("python3 -m unittest discover -v").unwrap();
        assert_eq!(
            ut.command(&["tests/test_a.py".into()]),
            "python3 -m unittest -v tests/test_a.py"
        );
        assert!(RepoSuite::for_command("make test").is_none());
        assert!(RepoSuite::for_command("echo x; touch y; python3 -m unittest -q").is_none());
    }

    #[test]
    fn verdicts_come_from_the_repository_parser() {
        let py = RepoSuite::for_command("pytest").unwrap();
        let log = "PASSED tests/test_a.py::test_one\nFAILED tests/test_a.py::test_two - assert 1 == 2\nERROR tests/test_b.py::test_three\nXFAIL tests/test_a.py::test_four\n";
        let v = py.parse(log);
        assert_eq!(v["tests/test_a.py::test_one"], TestVerdict::Passed);
        assert_eq!(v["tests/test_a.py::test_two"], TestVerdict::Failed);
        assert_eq!(v["tests/test_b.py::test_three"], TestVerdict::Failed);
        assert_eq!(v["tests/test_a.py::test_four"], TestVerdict::Passed);
        let ut = RepoSuite::for_command("python -m unittest").unwrap();
        let log = "test_x (tests.test_a.T.test_x) ... ok\ntest_y (tests.test_a.T.test_y) ... FAIL\n\nFAIL: test_y (tests.test_a.T.test_y)\n";
        let v = ut.parse(log);
        assert_eq!(
            v.values().filter(|v| **v == TestVerdict::Passed).count(),
            1,
            "{v:?}"
        );
        assert_eq!(
            v.values().filter(|v| **v == TestVerdict::Failed).count(),
            1,
            "{v:?}"
        );
    }
}
