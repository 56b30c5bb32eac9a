//! On the real SWE-bench Verified records on this machine (../shared/data; the tests fail
//! loudly when it is missing):
//! every instance loads, has a spec, renders an eval script of the official shape, and its
//! gold patch passes the pre-apply checks (none would be wrongly rejected).
use std::path::Path;

use mend_swebench::script::eval_script;
use mend_swebench::specs::test_directives;
use mend_swebench::{Specs, load_instances};

/// `shared/data/NAME` beside the checkout (`../shared/data` of the main checkout; a
/// worktree sits deeper, so every ancestor is tried). Missing data fails the test.
fn shared_data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/data").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("shared/data/{name} not found beside the checkout: these tests need the project's shared SWE-bench records")
        })
}

#[test]
fn verified_dev_instances_render_and_their_gold_patches_pass_the_checks() {
    let path = shared_data("swe-bench-verified.dev.jsonl");
    let specs = Specs::builtin();
    let all = load_instances(&path).unwrap();
    assert_eq!(all.len(), 47);
    for i in &all {
        let repo = specs
            .repo(&i.repo)
            .unwrap_or_else(|| panic!("{}: no repo spec", i.instance_id));
        let spec = specs.get(&i.repo, &i.version).unwrap();
        let d = test_directives(&i.test_patch, repo.django_directives);
        assert!(!d.is_empty(), "{}: no test files selected", i.instance_id);
        let s = eval_script(i, repo, spec);
        assert!(
            s.starts_with("#!/bin/bash\nset -uxo pipefail\n"),
            "{}",
            i.instance_id
        );
        assert!(
            s.contains(&format!(
                ": '>>>>> Start Test Output'\n{}",
                spec.test_cmd.commands().join("\n")
            )),
            "{}",
            i.instance_id
        );
        assert!(s.contains(&i.test_patch), "{}", i.instance_id);
        if let Err(e) = mend_sandbox::patch::validate(&i.patch, None) {
            assert!(
                !matches!(
                    e,
                    mend_sandbox::PatchError::PathEscapes(_)
                        | mend_sandbox::PatchError::GitDir(_)
                        | mend_sandbox::PatchError::Binary
                ),
                "{}: gold patch would be rejected: {e}",
                i.instance_id
            );
        }
    }
}

/// The records here have no FAIL_TO_PASS/PASS_TO_PASS: evaluating them is refused up front
/// (no image is looked for, nothing written), naming the instance and `mine --instances`.
#[tokio::test]
async fn shared_dev_records_without_test_lists_are_refused_by_evaluate() {
    let path = shared_data("swe-bench-verified.dev.jsonl");
    let all = load_instances(&path).unwrap();
    let id = all[0].instance_id.clone();
    let work = tempfile::tempdir().unwrap();
    let mut opts = mend_swebench::EvalOptions::new(
        all,
        mend_swebench::PredictionsSource::Gold,
        "shared-nolists",
        std::sync::Arc::new(mend_swebench::LocalImages::default()),
    );
    opts.filter.instance_ids = vec![id.clone()];
    opts.log_root = work.path().join("logs");
    opts.report_dir = work.path().to_path_buf();
    match mend_swebench::evaluate(opts).await {
        Ok(s) => panic!("graded without test lists: {:?}", s.outcomes),
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.contains(&id)
                    && e.contains("no FAIL_TO_PASS")
                    && e.contains("mend swebench mine --instances"),
                "{e}"
            );
        }
    }
    assert!(std::fs::read_dir(work.path()).unwrap().next().is_none());
}
