//! The `mend` command line: wires the library crates together and shows progress.
//! Everything the user reads is printed here; the libraries only return values.
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
    // the first Ctrl-C as a request; a second one, or any Ctrl-C for the others, aborts.
    let graceful = matches!(
        cli.command,
        Command::Fix(_) | Command::Demo(_) | Command::Swebench(_)
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let result = rt.block_on(async {
        let interrupted = async {
            let _ = tokio::signal::ctrl_c().await;
            if graceful {
                eprintln!("\nstopping cleanly: finished work is kept (Ctrl-C again to abort)");
                let _ = stop_tx.send(true);
                let _ = tokio::signal::ctrl_c().await;
            }
        };
        tokio::select! {
            r = run(cli.command, stop_rx) => r,
            _ = interrupted => {
                let n = mend_sandbox::remove_live_containers();
                eprintln!("\ninterrupted; removed {n} sandbox container(s)");
                Ok(ExitCode::from(130))
            }
        }
    });
    // Whatever path we leave by, no container of ours outlives the process.
    mend_sandbox::remove_live_containers();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
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
    }
}
