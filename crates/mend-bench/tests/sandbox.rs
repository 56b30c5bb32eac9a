//! Samples executed for real in mend's Docker sandbox (the real engine, mend's base image):
//! misbehaving samples are stopped and fail with their reason, each benchmark's reference
//! solutions pass and wrong ones fail, and a run sampled from a (scripted, real HTTP) model
//! is scored and resumed.
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mend_bench::{
    Benchmark, Code, EvalOptions, Limits, Problem, PromptStyle, Report, evaluate, generate, load,
    read_samples, results_path,
};
use mend_llm::OpenAiCompatible;
use mend_llm::test_server::{Reply, TestServer};
use serde_json::{Value, json};

async fn run(
    problems: &[Problem],
    samples: &Path,
    workers: usize,
    timeout: Duration,
) -> (Report, Vec<Value>) {
    let engine = mend_sandbox::testing::engine().await;
    let image = mend_sandbox::testing::base_image(&engine).await;
    let all = read_samples(samples, problems).expect("reading the samples");
    let results = results_path(samples);
    let opts = EvalOptions {
        workers,
        limits: Limits {
            timeout,
            memory_bytes: 512 << 20,
            ..Limits::default()
        },
        ks: vec![1, 2],
    };
    let report = evaluate(
        &engine,
        &image,
        problems,
        &all,
        &results,
        &opts,
        &|_, _, _| {},
    )
    .await
    .expect("evaluating");
    let text = std::fs::read_to_string(&results).expect("the results file");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a results line is JSON"))
        .collect();
    (report, lines)
}

fn samples_file(dir: &Path, name: &str, records: &[Value]) -> std::path::PathBuf {
    support::write_jsonl(&dir.join(name), records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_samples_are_stopped_and_fail_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let problems = load(Benchmark::HumanEval, &support::humaneval_small(dir.path())).unwrap();
    // Bodies for `def double(x)`, each with the reason its failure must give.
    let cases: &[(&str, &str)] = &[
        ("    while True:\n        pass\n", "timed out"),
        // Ignores the harness's alarm: the sandbox kills the process group at its timeout.
        (
            "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n",
            "timed out",
        ),
        (
            "    import os\n    while True:\n        os.fork()\n",
            "blocked: started a process (os.fork)",
        ),
        // Past the audit hook (ctypes): the container's pids limit holds it, the timeout ends it.
        (
            "    import ctypes\n    libc = ctypes.CDLL(None)\n    while True:\n        libc.fork()\n",
            "timed out",
        ),
        (
            "    import subprocess\n    subprocess.run(['sh', '-c', 'echo hi'])\n    return 2 * x\n",
            "blocked: started a process (subprocess.Popen)",
        ),
        ("    x = bytearray(8 << 30)\n", "out of memory"),
        (
            "    xs = []\n    while True:\n        xs.append(bytearray(64 << 20))\n",
            "out of memory",
        ),
        (
            "    open('/tmp/escape', 'w').write('x')\n    return 2 * x\n",
            "blocked: wrote outside its directory (/tmp/escape)",
        ),
        // Catching the refusal does not make it pass.
        (
            "    try:\n        open('../../home/escape', 'w')\n    except Exception:\n        pass\n    return 2 * x\n",
            "blocked: wrote outside its directory",
        ),
        (
            "    import os\n    try:\n        os.remove('/etc/hostname')\n    except Exception:\n        pass\n    return 2 * x\n",
            "blocked: wrote outside its directory (os.remove /etc/hostname)",
        ),
        (
            "    import socket\n    socket.create_connection(('10.0.0.1', 80), timeout=1)\n",
            "blocked: tried the network",
        ),
        (
            "    import urllib.request\n    urllib.request.urlopen('http://example.com', timeout=1)\n",
            "blocked: tried the network",
        ),
        (
            "    import os\n    os._exit(0)\n",
            "exited with code 0 before the tests finished",
        ),
        ("    return 2 * x +\n", "SyntaxError"),
        // Its own directory is its to use; and the container still works after all the above.
        (
            "    open('scratch.txt', 'w').write('ok')\n    return 2 * x\n",
            "passed",
        ),
        ("    return 2 * x\n", "passed"),
    ];
    let recs: Vec<Value> = cases
        .iter()
        .map(|(c, _)| json!({"task_id": "Test/1", "completion": c}))
        .collect();
    let samples = samples_file(dir.path(), "bad.jsonl", &recs);
    let started = Instant::now();
    // One worker: every sample runs in the same container, after the ones before it.
    let (report, lines) = run(&problems, &samples, 1, Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    assert_eq!(lines.len(), cases.len());
    for ((code, want), line) in cases.iter().zip(&lines) {
        let result = line["result"].as_str().unwrap_or_default();
        assert!(
            result.contains(want),
            "sample\n{code}\nshould give `{want}`, gave `{result}`"
        );
        assert_eq!(line["passed"], json!(*want == "passed"), "{code}: {result}");
    }
    assert_eq!(report.passed, 2);
    assert!(
        report.failures.get("timed out").copied().unwrap_or(0) >= 3,
        "{:?}",
        report.failures
    );
    // Three timeouts of 2 s (+ the sandbox's margin for the one that ignores the alarm).
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}

/// Wrong samples: (task_id, the sample's code fields).
type Wrong = Vec<(&'static str, Value)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmarks_reference_solutions_pass_and_wrong_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (benchmark, file, wrong sample per task)
    let sets: Vec<(Benchmark, std::path::PathBuf, Wrong)> = vec![
        (
            Benchmark::HumanEval,
            support::humaneval_small(d),
            vec![
                ("Test/0", json!({"completion": "    return sum(xs) + 1\n"})),
                ("Test/1", json!({"completion": "    pass\n"})),
            ],
        ),
        (
            Benchmark::Mbpp,
            support::mbpp(d),
            vec![
                (
                    "2",
                    json!({"solution": "def similar_elements(a, b):\n    return ()\n"}),
                ),
                (
                    "3",
                    json!({"solution": "def is_not_prime(n):\n    return n % 2 == 0\n"}),
                ),
            ],
        ),
        (
            Benchmark::EvalPlusHumanEval,
            support::humaneval_plus(d),
            vec![
                (
                    "HumanEval/2",
                    json!({"completion": "    return number - int(number) + 1e-3\n"}),
                ),
                // Right on the base inputs, wrong on a plus input (the big integer).
                (
                    "HumanEval/4",
                    json!({"completion": "    return int(float(sum(numbers)))\n"}),
                ),
            ],
        ),
        (
            Benchmark::EvalPlusMbpp,
            support::mbpp_plus(d),
            vec![
                // Right on the base inputs, wrong for (0, 0).
                (
                    "Mbpp/6",
                    json!({"solution": "def differ_At_One_Bit_Pos(a, b):\n    return bin(a ^ b).count('1') <= 1\n"}),
                ),
            ],
        ),
        (
            Benchmark::LiveCodeBench,
            support::livecodebench(d),
            vec![
                // Passes the public test, fails a private (compressed) one.
                (
                    "1000_A",
                    json!({"solution": "n = int(input())\nprint(abs(n) * 2)\n"}),
                ),
                (
                    "3001",
                    json!({"solution": "class Solution:\n    def addTwo(self, a, nums):\n        return nums\n"}),
                ),
            ],
        ),
        (
            Benchmark::Apps,
            support::apps(d),
            vec![
                (
                    "4000",
                    json!({"solution": "a, b = map(int, input().split())\nprint(a * b)\n"}),
                ),
                (
                    "4001",
                    json!({"solution": "def largest(xs):\n    return min(xs)\n"}),
                ),
            ],
        ),
    ];
    // Right answers where the file has no reference solution (LiveCodeBench).
    let written = |task: &str| -> Option<Code> {
        match task {
            "1000_A" => Some(Code::Solution("n = int(input())\nprint(2 * n)\n".into())),
            "3001" => Some(Code::Solution(
                "from typing import List\nclass Solution:\n    def addTwo(self, a: int, nums: List[int]) -> List[int]:\n        return [a + x for x in nums]\n".into(),
            )),
            _ => None,
        }
    };
    for (bench, file, wrong) in sets {
        let problems = load(bench, &file).unwrap();
        let mut recs = Vec::new();
        for p in &problems {
            let right = p
                .canonical
                .clone()
                .or_else(|| written(&p.task_id))
                .expect("a right answer");
            recs.push(match right {
                Code::Completion(c) => json!({"task_id": p.task_id, "completion": c}),
                Code::Solution(s) => json!({"task_id": p.task_id, "solution": s}),
            });
        }
        for (task, w) in &wrong {
            let mut r = w.clone();
            r["task_id"] = json!(task);
            recs.push(r);
        }
        let samples = samples_file(d, &format!("{}-samples.jsonl", bench.name()), &recs);
        let (report, lines) = run(&problems, &samples, 2, Duration::from_secs(3)).await;
        for (i, line) in lines.iter().enumerate() {
            let right = i < problems.len();
            assert_eq!(
                line["passed"],
                json!(right),
                "{}: {} sample {} gave {}",
                bench.name(),
                if right { "the right" } else { "a wrong" },
                line["task_id"],
                line["result"]
            );
        }
        assert_eq!(report.passed, problems.len(), "{}", bench.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_from_a_model_are_scored_and_a_rerun_resumes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let problems = load(Benchmark::HumanEval, &support::humaneval_small(dir.path())).unwrap();
    let server = TestServer::start(vec![
        Reply::text("```python\ndef total(xs):\n    return sum(xs)\n```"),
        Reply::text("Sure:\n```python\ndef total(xs):\n    return 0\n```\nIt sums."),
        Reply::text("```python\ndef double(x: int) -> int:\n    return x + x\n```"),
        Reply::text("```py\ndef double(x):\n    return x * 3\n```"),
    ])
    .await;
    let mut cfg = server.config("test-model");
    cfg.context_window = Some(8192);
    let model = OpenAiCompatible::new(cfg).expect("a client");
    let samples = dir.path().join("out/samples.jsonl");
    // One call at a time: the scripted replies come in order.
    let stats = generate(
        &model,
        &problems,
        2,
        PromptStyle::Chat,
        1,
        &samples,
        &|_, _| {},
    )
    .await
    .expect("sampling");
    assert_eq!((stats.requested, stats.existing), (4, 0));
    let asked = server.requests();
    assert_eq!(asked.len(), 4);
    let first = asked[0].json();
    let user = first["messages"][1]["content"].as_str().unwrap_or_default();
    assert!(user.contains("def total(xs: List[int]) -> int:"), "{user}");

    let (report, lines) = run(&problems, &samples, 2, Duration::from_secs(3)).await;
    assert_eq!(report.samples, 4);
    assert_eq!(report.passed, 2);
    assert!(
        (report.pass_at_k["pass@1"] - 0.5).abs() < 1e-9,
        "{:?}",
        report.pass_at_k
    );
    assert!(
        (report.pass_at_k["pass@2"] - 1.0).abs() < 1e-9,
        "{:?}",
        report.pass_at_k
    );
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|l| l.get("solution").is_some() && l.get("completion_id").is_some())
    );

    // A rerun asks the model for nothing and checks nothing again.
    let stats = generate(
        &model,
        &problems,
        2,
        PromptStyle::Chat,
        1,
        &samples,
        &|_, _| {},
    )
    .await
    .expect("sampling again");
    assert_eq!((stats.requested, stats.existing), (0, 4));
    assert_eq!(server.requests().len(), 4);
    let (again, lines_again) = run(&problems, &samples, 2, Duration::from_secs(3)).await;
    assert_eq!(again.checked, 0);
    assert_eq!(again.pass_at_k, report.pass_at_k);
    assert_eq!(lines_again, lines);

    // A run stopped half-way: its results file has one verdict (and a torn line); only the
    // other samples are checked.
    let results = results_path(&samples);
    let kept = format!(
        "{}\n{{\"task_id\": \"Te",
        serde_json::to_string(&lines[0]).unwrap()
    );
    std::fs::write(&results, kept).unwrap();
    let (resumed, lines_resumed) = run(&problems, &samples, 2, Duration::from_secs(3)).await;
    assert_eq!(resumed.checked, 3);
    assert_eq!(lines_resumed, lines);
}
