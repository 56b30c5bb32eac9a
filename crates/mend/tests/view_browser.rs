//! `mend view` in a real browser (headless Chromium). The fixture is made for real: two
//! `mend swebench run --eval` batches of synthetic instances over a small repository (its
//! image built FROM mend's base image), the agent answered by mend-llm's scripted
//! chat-completions server, each run fixing a different instance wrongly. The pages are
//! served by `mend view`, loaded by Chromium, their DOM checked and screenshots saved under
//! `target/view/`; then the same pages exported and opened from disk with no server.
#[path = "support/view_fixture.rs"]
mod fixture;
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use fixture::{Browser, IMAGE, batch, build_image, mend, text, write_inputs};

/// `href="..."` values of links in `dom` whose target contains `part`.
fn hrefs(dom: &str, part: &str) -> Vec<String> {
    dom.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|h| h.contains(part))
        .map(|h| h.replace("&amp;", "&"))
        .collect()
}

/// `base` (a page URL) joined with a relative link.
fn join(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.rsplit_once('/').unwrap().0.split('/').collect();
    for p in rel.split('/') {
        match p {
            ".." => {
                parts.pop();
            }
            "." => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The element with `id` (its opening tag to the end of the DOM), for scoped checks.
fn from_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the page"));
    &dom[at..]
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mend view PATH` on a free port; returns the server and its URL.
fn serve(path: &Path) -> (Serving, String) {
    serve_with(path, &[], &[])
}

fn serve_with(path: &Path, args: &[&str], env: &[(&str, &str)]) -> (Serving, String) {
    let mut child = mend()
        .arg("view")
        .arg(path)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "printed {url:?}"
    );
    (Serving(child), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_instances_and_comparisons_render_in_chromium_served_and_exported() {
    let browser = Browser::new();
    let work = tempfile::tempdir().unwrap();
    let commit = build_image(work.path());
    write_inputs(work.path(), &commit);
    let (a, b) = (
        format!("view-a-{}", std::process::id()),
        format!("view-b-{}", std::process::id()),
    );
    batch(work.path(), &a, 'a', &[]).await;
    batch(work.path(), &b, 'b', &[]).await;
    let runs = work.path().join("runs");

    // The runs directory: both runs, and a link to compare them.
    let (_server, root) = serve(&runs);
    let dom = browser.dom(&format!("{root}index.html"));
    assert!(dom.contains(&a) && dom.contains(&b), "{dom}");
    let compare = hrefs(&dom, "compare/");
    assert_eq!(compare.len(), 1, "{compare:?}");

    // A run: figures, tables, every instance, filters.
    let run_link = hrefs(&dom, &format!("r/{a}/"));
    let run_url = join(&format!("{root}index.html"), &run_link[0]);
    let dom = browser.dom(&run_url);
    for fig in [
        "fig-repos",
        "fig-exits",
        "fig-cost",
        "fig-time",
        "fig-steps",
    ] {
        assert!(from_id(&dom, fig).contains("<svg"), "no plot in #{fig}");
    }
    let repos = from_id(&dom, "repos");
    assert!(repos.contains("mendtest/calc") && repos.contains("mendtest/numbers"));
    // Run a: calc-1, calc-3? no: calc-1 and numbers-1 resolved; calc-2 wrong, calc-3 limit, numbers-2 empty.
    assert!(
        from_id(&dom, "cards").contains("2 (40.0%)"),
        "{}",
        &from_id(&dom, "cards")[..600]
    );
    let table = from_id(&dom, "instances");
    assert_eq!(table.matches("<tr data-repo=").count(), 5, "{table}");
    assert!(table.contains("limit_reached") && table.contains("submitted"));
    assert!(
        table.contains("badge ok\">resolved") && table.contains("empty patch"),
        "{table}"
    );
    browser.screenshot(&run_url, "run.png", "1280,1400");
    // Filters from the address (shareable): only calc's resolved instance is shown.
    let dom = browser.dom(&format!("{run_url}?repo=mendtest/calc&resolved=yes"));
    let rows = from_id(&dom, "instances");
    assert_eq!(
        rows.matches("<tr data-repo=").count() - rows.matches(" hidden=\"\"").count(),
        1,
        "{rows}"
    );
    assert!(dom.contains("id=\"shown\">1<"), "the count of shown rows");

    // Run → instance: the issue, localized files, steps with reasoning, calls, diffs,
    // test outcomes, the patch and the evaluation with its test lists.
    let inst = hrefs(&dom, "mendtest__calc-1.html");
    let inst_url = join(&run_url, &inst[0]);
    let dom = browser.dom(&inst_url);
    assert!(from_id(&dom, "issue").contains("add(2, 3) returns -1"));
    assert!(
        from_id(&dom, "localized").contains("calc.py"),
        "the localized files"
    );
    let steps = from_id(&dom, "steps");
    assert_eq!(steps.matches("<section class=\"step").count(), 5, "{steps}");
    assert!(
        steps.contains("(thinking about view)") && steps.contains("Let me read calc.py first.")
    );
    for tool in ["view", "bash", "edit", "run_tests", "submit"] {
        assert!(
            steps.contains(&format!("data-tool=\"{tool}\"")),
            "no {tool} call"
        );
    }
    assert!(
        steps.contains("<span class=\"da\">+    return a + b</span>"),
        "the edit's diff, coloured"
    );
    assert!(
        steps.contains("badge ok\">tests passed"),
        "run_tests outcome"
    );
    assert!(from_id(&dom, "test-runs").contains("python3 -m unittest -v"));
    assert!(from_id(&dom, "patch").contains("<span class=\"dd\">-    return a - b</span>"));
    let ev = from_id(&dom, "evaluation");
    assert!(ev.contains("badge ok\">resolved"));
    assert!(from_id(&dom, "fail-to-pass").contains("✓ test_zero (tests.test_more.More.test_zero)"));
    assert!(from_id(&dom, "pass-to-pass").contains("✓ test_one (tests.test_more.More.test_one)"));
    assert!(
        from_id(&dom, "test-output").contains("Ran 2 tests"),
        "the eval's test log"
    );
    browser.screenshot(&inst_url, "instance.png", "1280,2000");

    // The unresolved one lists its failing tests; the looping one has its long output folded.
    let dom = browser.dom(&join(
        &run_url,
        &hrefs(&browser.dom(&run_url), "mendtest__calc-2.html")[0],
    ));
    assert!(
        from_id(&dom, "fail-to-pass").contains("✗ test_zero"),
        "failing F2P listed"
    );
    let dom = browser.dom(&join(&run_url, "i/mendtest__calc-3.html"));
    assert!(
        dom.contains("step limit") || dom.contains("stopped:"),
        "the exit line"
    );
    assert!(
        from_id(&dom, "steps").contains("<details><summary>all 15"),
        "long output folded"
    );

    // Compare: calc-1 resolved by a only, calc-2 by b only, side by side with patches.
    let cmp_url = join(&format!("{root}index.html"), &compare[0]);
    let dom = browser.dom(&cmp_url);
    let (first, second) = if compare[0].contains(&format!("compare/{a}/")) {
        ("only-a", "only-b")
    } else {
        ("only-b", "only-a")
    };
    let only_a = from_id(&dom, first);
    let only_a = &only_a[..only_a.find("</table>").unwrap()];
    assert!(
        only_a.contains("mendtest__calc-1") && !only_a.contains("mendtest__calc-2"),
        "{only_a}"
    );
    let only_b = from_id(&dom, second);
    let only_b = &only_b[..only_b.find("</table>").unwrap()];
    assert!(only_b.contains("mendtest__calc-2"), "{only_b}");
    assert!(
        only_b.contains("+    return a * b") || only_a.contains("+    return a * b"),
        "the wrong patch shown"
    );
    browser.screenshot(&cmp_url, "compare.png", "1280,900");
    // Compare → instance of the other run.
    let other = hrefs(only_a, "/i/mendtest__calc-1.html");
    assert!(!other.is_empty());
    let dom = browser.dom(&join(&cmp_url, &other[0]));
    assert!(dom.contains("id=\"instance-title\">mendtest__calc-1<"));

    // One trajectory file, as `mend fix --trajectory` leaves them.
    let traj = runs
        .join(&a)
        .join("trajectories/mendtest__numbers-1.traj.json");
    // On the port asked for, and `--open` starts $BROWSER on the page.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opened = work.path().join("opened.txt");
    let opener = work.path().join("open.sh");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&opener)
        .status()
        .unwrap();
    let (_one, url) = serve_with(
        &traj,
        &["--port", &port.to_string(), "--open"],
        &[("BROWSER", opener.to_str().unwrap())],
    );
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !opened.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap_or_default().trim(),
        url,
        "--open"
    );
    let dom = browser.dom(&format!("{url}index.html"));
    assert_eq!(
        from_id(&dom, "steps")
            .matches("<section class=\"step")
            .count(),
        2
    );
    assert!(from_id(&dom, "patch").contains("+    return a + b"));

    // Export: the same pages as files, opened with no server, nothing fetched from anywhere.
    let site = work.path().join("site");
    let out = mend()
        .arg("view")
        .arg(&runs)
        .arg("--export")
        .arg(&site)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    drop(_server);
    let mut pages = 0;
    let mut stack = vec![site.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "html") {
                pages += 1;
                let html = std::fs::read_to_string(e.path()).unwrap();
                for outside in [
                    "src=\"http",
                    "href=\"http",
                    "<link rel=\"stylesheet\"",
                    "src=\"/",
                    "href=\"/",
                ] {
                    assert!(
                        !html.contains(outside),
                        "{} refers outside: {outside}",
                        e.path().display()
                    );
                }
            }
        }
    }
    // index + 2 runs × (run page + 5 instances) + 1 comparison.
    assert_eq!(pages, 1 + 2 * 6 + 1);
    let file_root = format!("file://{}/", site.display());
    let dom = browser.dom(&format!("{file_root}index.html"));
    let run_page = join(
        &format!("{file_root}index.html"),
        &hrefs(&dom, &format!("r/{a}/"))[0],
    );
    let dom = browser.dom(&run_page);
    assert!(from_id(&dom, "fig-repos").contains("<svg"));
    let dom = browser.dom(&join(&run_page, &hrefs(&dom, "mendtest__calc-1.html")[0]));
    assert_eq!(
        from_id(&dom, "steps")
            .matches("<section class=\"step")
            .count(),
        5
    );
    let dom = browser.dom(&format!("{file_root}{}", compare[0]));
    assert!(from_id(&dom, "compare-counts").contains("resolved by"));
    browser.screenshot(
        &format!("{file_root}{}", run_link[0]),
        "export-run.png",
        "1280,900",
    );

    // Exporting over something that is not an export is refused, and it is left alone.
    let other = work.path().join("mine");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep").unwrap();
    let out = mend()
        .arg("view")
        .arg(&runs)
        .arg("--export")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(other.join("notes.txt")).unwrap(),
        "keep"
    );
    let _ = Command::new("docker").args(["rmi", "-f", IMAGE]).output();
}

#[test]
fn a_path_that_holds_no_run_is_refused_with_what_was_expected() {
    let d = tempfile::tempdir().unwrap();
    let out = mend()
        .arg("view")
        .arg(d.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope: cannot read it"),
        "{}",
        text(&out)
    );
    let out = mend().arg("view").arg(d.path()).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no run"),
        "{}",
        text(&out)
    );
}
