//! `mend view`: batch runs, trajectories and evaluations as web pages — rendered on the
//! server with minijinja, plots drawn as SVG by mend, a few lines of plain script for
//! filters. Served by a small HTTP server on 127.0.0.1 or exported as a static folder.
//!
//! ```no_run
//! # async fn f() -> Result<(), mend_view::ViewError> {
//! let site = mend_view::Site::open(std::path::Path::new("runs"))?;
//! let server = mend_view::Server::bind(site, 0).await?;
//! println!("http://{}/", server.addr()?);
//! server.run().await
//! # }
//! ```
mod export;
mod html;
mod load;
mod pages;
mod plot;
mod serve;
mod traj;

use std::path::PathBuf;

pub use export::export;
pub use load::Source;
pub use pages::Site;
pub use serve::Server;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The path given, or a file in it, is not what `mend view` reads.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    #[error("page template {0}")]
    Template(String),
    #[error("server: {0}")]
    Serve(String),
    #[error("export: {0}")]
    Export(String),
}
