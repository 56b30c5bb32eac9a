//! `mend view`: serve (or export) the pages of mend-view and say where they are.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ViewArgs {
    /// A run directory of `mend swebench run`, a directory of runs, or a trajectory file.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Port on 127.0.0.1 (default: a free one, printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Open the page in the browser (xdg-open, or $BROWSER).
    #[arg(long)]
    pub open: bool,
    /// Write the pages as a static folder instead of serving them (opens with no server).
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
}

pub async fn run(a: ViewArgs) -> anyhow::Result<ExitCode> {
    let site = mend_view::Site::open(&a.path)?;
    if let Some(dir) = &a.export {
        let n = mend_view::export(&site, dir)?;
        eprintln!("wrote {n} pages");
        println!("{}", dir.join("index.html").display());
        return Ok(ExitCode::SUCCESS);
    }
    let server = mend_view::Server::bind(site, a.port).await?;
    let url = format!("http://{}/", server.addr()?);
    eprintln!("mend view: serving {} (Ctrl-C to stop)", a.path.display());
    println!("{url}");
    if a.open {
        open_browser(&url);
    }
    server.run().await.context("serving the pages")?;
    Ok(ExitCode::SUCCESS)
}

/// Start the user's browser on `url`; failing to is said, not fatal (the URL is printed).
fn open_browser(url: &str) {
    let program = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    match std::process::Command::new(&program)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => {
            eprintln!("could not start `{program}` to open the browser ({e}); open {url} yourself")
        }
    }
}
