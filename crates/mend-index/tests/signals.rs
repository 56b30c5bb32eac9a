//! The localization signals that need no model, each on a small real repository: layout
//! directories in traceback paths, test → source, inflected and compound names, settings
//! read but never defined, co-change history, and the context pack.
mod common;

use common::{TestRepo, options};
use mend_index::{Index, IndexOptions, LocalizeOptions, RankWeights};

fn index(r: &TestRepo, cache: &std::path::Path) -> Index {
    Index::from_git(r.path(), "HEAD", &options(cache)).unwrap()
}

/// Weights with one signal switched off, to show it is that signal that ranks the file.
fn without(f: impl FnOnce(&mut RankWeights)) -> LocalizeOptions {
    let mut weights = RankWeights::default();
    f(&mut weights);
    LocalizeOptions {
        weights,
        ..LocalizeOptions::default()
    }
}

fn rank(loc: &mend_index::Localization, path: &str) -> Option<usize> {
    loc.files.iter().position(|f| f.path == path)
}

#[test]
fn installed_paths_find_files_under_lib_and_src() {
    let r = TestRepo::new();
    r.write(
        "lib/plotkit/axes/base.py",
        "def clear_axes(ax):\n    ax.cla()\n    return ax\n",
    );
    r.write(
        "lib/plotkit/axes/other.py",
        "def draw_axes(ax):\n    return ax\n",
    );
    r.write("src/_runner/main.py", "def main_loop():\n    return 0\n");
    r.commit("layout");
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    let issue = "Crash on clear\n\nTraceback (most recent call last):\n  File \"/home/u/venv/lib/python3.11/site-packages/_runner/main.py\", line 2, in main_loop\n  File \"/home/u/venv/lib/python3.11/site-packages/plotkit/axes/base.py\", line 2, in clear_axes\nAttributeError: boom\n";
    let loc = index.localize(issue, &LocalizeOptions::default());
    assert_eq!(
        loc.files[0].path, "lib/plotkit/axes/base.py",
        "{:#?}",
        loc.files
    );
    assert!(
        loc.files[0]
            .reasons
            .iter()
            .any(|r| r.contains("traceback frame")),
        "{:?}",
        loc.files[0].reasons
    );
    assert!(
        loc.files.iter().any(|f| f.path == "src/_runner/main.py"
            && f.reasons.iter().any(|r| r.contains("traceback frame"))),
        "{:#?}",
        loc.files
    );
    // Without the layout rule the frames match nothing.
    let old = index.localize(issue, &without(|w| w.layout_dirs = false));
    assert!(
        old.files
            .iter()
            .all(|f| f.reasons.iter().all(|r| !r.contains("traceback frame"))),
        "{:#?}",
        old.files
    );
}

#[test]
fn a_named_test_file_lifts_the_source_it_tests() {
    let r = TestRepo::new();
    r.write(
        "pkg/pycode/ast.py",
        "def unparse(node):\n    return str(node)\n",
    );
    r.write("pkg/other/ast.py", "def walk(node):\n    return node\n");
    r.write(
        "pkg/pycode/parser.py",
        "def parse(code):\n    return code\n",
    );
    r.write(
        "tests/test_pycode_ast.py",
        "def test_unparse():\n    assert True\n",
    );
    r.write(
        "tests/pycode/test_ast.py",
        "def test_it():\n    assert True\n",
    );
    r.commit("tests");
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    let issue = "Wrong output for tuples\n\nThe check in tests/pycode/test_ast.py should also cover a 1-tuple.";
    let loc = index.localize(issue, &LocalizeOptions::default());
    assert_eq!(loc.files[0].path, "pkg/pycode/ast.py", "{:#?}", loc.files);
    assert!(
        loc.files[0]
            .reasons
            .iter()
            .any(|r| r.contains("tested by `test_ast.py`"))
    );
    let old = index.localize(issue, &without(|w| w.test_source = 0.0));
    assert_ne!(old.files[0].path, "pkg/pycode/ast.py");
}

#[test]
fn inflected_and_compound_names_reach_files_and_definitions() {
    let r = TestRepo::new();
    r.write(
        "lib/mock.py",
        "def patch_object(target):\n    return target\n",
    );
    r.write(
        "lib/sets/issubset.py",
        "def handler(a, b):\n    return a <= b\n",
    );
    r.write(
        "lib/sets/contains.py",
        "def issubset_fallback(a):\n    return a\n",
    );
    r.write(
        "lib/misc.py",
        "def isdisjoint(a, b):\n    return not (a & b)\n",
    );
    r.commit("names");
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    let loc = index.localize(
        "`is_subset` gives wrong answers for `Interval`s",
        &LocalizeOptions::default(),
    );
    assert_eq!(
        loc.files[0].path, "lib/sets/issubset.py",
        "{:#?}",
        loc.files
    );
    let loc = index.localize(
        "Objects `mocked` with a spec lose their signature",
        &LocalizeOptions::default(),
    );
    assert_eq!(loc.files[0].path, "lib/mock.py", "{:#?}", loc.files);
    let loc = index.localize("`is_disjoint` is always true", &LocalizeOptions::default());
    assert_eq!(loc.symbols[0].name, "isdisjoint", "{:#?}", loc.symbols);
    let old = index.localize(
        "`is_subset` gives wrong answers for `Interval`s",
        &without(|w| w.stem = 0.0),
    );
    assert!(rank(&old, "lib/sets/issubset.py").is_none_or(|r| r > 0));
}

#[test]
fn a_setting_read_but_never_defined_points_at_its_readers() {
    let r = TestRepo::new();
    r.write(
        "docs_tool/ext/typehints.py",
        "def record_typehints(app, obj):\n    if app.config.autodoc_typehints == 'none':\n        return None\n    return obj\n",
    );
    r.write(
        "docs_tool/ext/setup.py",
        "def setup(app):\n    app.add_config_value('autodoc_typehints', 'signature', True)\n",
    );
    r.write("docs_tool/builder.py", "def build(app):\n    return app\n");
    r.commit("settings");
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    let issue = "Setting `autodoc_typehints` to none has no effect on overloaded callables";
    let loc = index.localize(issue, &LocalizeOptions::default());
    assert_eq!(
        loc.files[0].path, "docs_tool/ext/typehints.py",
        "{:#?}",
        loc.files
    );
    assert_eq!(loc.symbols[0].name, "record_typehints");
    assert!(
        loc.symbols[0]
            .reasons
            .iter()
            .any(|r| r.contains("reads `autodoc_typehints`"))
    );
    let old = index.localize(issue, &without(|w| w.reader = 0.0));
    assert!(
        old.files
            .iter()
            .all(|f| f.reasons.iter().all(|r| !r.contains("reads `"))),
        "{:#?}",
        old.files
    );
}

#[test]
fn files_changed_together_before_rise_with_the_best_file() {
    let r = TestRepo::new();
    for b in ["mysql", "sqlite3", "oracle", "postgres"] {
        r.write(
            &format!("db/backends/{b}/operations.py"),
            format!(
                "class DatabaseOperations:\n    def quote_{b}(self, name):\n        return name\n"
            ),
        );
    }
    r.write("db/backends/base/operations.py", "class BaseDatabaseOperations:\n    def date_trunc_sql(self, kind):\n        raise NotImplementedError\n");
    r.write(
        "db/models/functions.py",
        "def trunc(kind):\n    return kind\n",
    );
    r.commit("import");
    // mysql and oracle operations changed together twice; sqlite3 with functions once.
    for k in 0..2 {
        for b in ["mysql", "oracle"] {
            r.write(
                &format!("db/backends/{b}/operations.py"),
                format!("class DatabaseOperations:\n    def quote_{b}(self, name):\n        return name  # {k}\n"),
            );
        }
        r.commit("mysql and oracle together");
    }
    r.write(
        "db/models/functions.py",
        "def trunc(kind):\n    return kind  # changed\n",
    );
    r.write(
        "db/backends/sqlite3/operations.py",
        "class DatabaseOperations:\n    def quote_sqlite3(self, name):\n        return name  # x\n",
    );
    r.commit("sqlite3 with functions");
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    assert_eq!(index.stats().history_commits, 4);
    let issue = "`quote_mysql` quotes identifiers with the wrong character";
    let loc = index.localize(issue, &LocalizeOptions::default());
    assert_eq!(loc.files[0].path, "db/backends/mysql/operations.py");
    assert_eq!(
        loc.files[1].path, "db/backends/oracle/operations.py",
        "{:#?}",
        loc.files
    );
    assert!(
        loc.files[1]
            .reasons
            .iter()
            .any(|r| r.contains("changed together with `db/backends/mysql/operations.py`")),
        "{:?}",
        loc.files[1].reasons
    );
    // No history, no co-change evidence.
    let plain = Index::from_git(
        r.path(),
        "HEAD",
        &IndexOptions {
            history_commits: 0,
            ..options(cache.path())
        },
    )
    .unwrap();
    assert_eq!(plain.stats().history_commits, 0);
    let loc = plain.localize(issue, &LocalizeOptions::default());
    assert!(
        loc.files
            .iter()
            .all(|f| f.reasons.iter().all(|r| !r.contains("changed together")))
    );
    // History is read at or before the indexed commit only: at the first fix commit the
    // sqlite3/functions commit does not exist yet.
    let first_fix = r.repo.revparse_single("HEAD~2").unwrap().id().to_string();
    let early = Index::from_git(r.path(), &first_fix, &options(cache.path())).unwrap();
    assert_eq!(early.stats().history_commits, 2);
}

#[test]
fn the_context_pack_holds_ranked_code_within_its_budget() {
    let r = common::shop_repo();
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    let loc = index.localize(
        "`parse_header` fails without a colon",
        &LocalizeOptions::default(),
    );
    let read = |p: &str| std::fs::read_to_string(r.path().join(p)).ok();
    let pack = index.context_pack(&loc, 400, 0.2, read);
    assert!(pack.tokens <= 400, "{}", pack.tokens);
    assert_eq!(pack.functions[0], "shop/utils.py::parse_header");
    assert!(
        pack.text.contains("key, _, value = line.partition(\":\")"),
        "{}",
        pack.text
    );
    assert!(pack.text.contains("shop/utils.py:"));
    // A tiny budget holds less, and says how much it left out.
    let small = index.context_pack(&loc, 40, 0.0, |p: &str| {
        std::fs::read_to_string(r.path().join(p)).ok()
    });
    assert!(small.tokens <= 40);
    assert!(small.left_out > 0);
}

#[test]
fn definitions_one_call_or_override_away_from_the_named_one_rise() {
    let r = TestRepo::new();
    r.write(
        "mat/common.py",
        "from mat.sparse import row_join\n\nclass MatrixCommon:\n    def hstack(self, *args):\n        return row_join(self, args)\n\n    def clear(self):\n        return self\n",
    );
    r.write(
        "mat/sparse.py",
        "def row_join(m, rest):\n    return m\n\ndef col_join(m, rest):\n    return m\n",
    );
    r.write(
        "mat/dense.py",
        "from mat.common import MatrixCommon\n\nclass DenseMatrix(MatrixCommon):\n    def clear(self):\n        return None\n",
    );
    for i in 0..6 {
        r.write(
            &format!("mat/noise_{i}.py"),
            format!("def stacking_{i}(m):\n    \"\"\"Stacking matrices.\"\"\"\n    return m\n"),
        );
    }
    r.commit("matrices");
    let cache = tempfile::tempdir().unwrap();
    let index = index(&r, cache.path());
    let loc = index.localize(
        "Behavior of `MatrixCommon.hstack` changed for empty matrices",
        &LocalizeOptions::default(),
    );
    let row_join = loc
        .symbols
        .iter()
        .find(|s| s.name == "row_join")
        .expect("the callee is ranked");
    assert!(
        row_join
            .reasons
            .iter()
            .any(|r| r.contains("called by `MatrixCommon.hstack`")),
        "{:?}",
        row_join.reasons
    );
    let pos = |loc: &mend_index::Localization, name: &str| {
        loc.symbols.iter().position(|s| s.name == name)
    };
    let old = index.localize(
        "Behavior of `MatrixCommon.hstack` changed for empty matrices",
        &without(|w| w.hop = 0.0),
    );
    assert!(pos(&loc, "row_join") < pos(&old, "row_join").or(Some(usize::MAX)));
    // An override of the named method.
    let loc = index.localize(
        "`MatrixCommon.clear` leaves data behind",
        &LocalizeOptions::default(),
    );
    let dense = loc
        .symbols
        .iter()
        .find(|s| s.name == "DenseMatrix.clear")
        .expect("the override is ranked");
    assert!(
        dense
            .reasons
            .iter()
            .any(|r| r.contains("overrides or is overridden by `MatrixCommon.clear`")),
        "{:?}",
        dense.reasons
    );
}
