//! A small HTTP/1.1 server for the pages: GET and HEAD only, on 127.0.0.1, one response
//! per connection (`Connection: close`). Pages are rendered per request from the files
//! on disk, so reloading shows a running batch as it is now.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Site, ViewError};

/// Requests larger than this (the request line and headers) are refused.
const MAX_HEAD: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound server; [`Server::run`] answers until the future is dropped.
pub struct Server {
    listener: TcpListener,
    site: Arc<Site>,
}

impl Server {
    /// Bind 127.0.0.1 on `port` (0: a free one).
    pub async fn bind(site: Site, port: u16) -> Result<Server, ViewError> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| ViewError::Serve(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        Ok(Server {
            listener,
            site: Arc::new(site),
        })
    }

    pub fn addr(&self) -> Result<SocketAddr, ViewError> {
        self.listener
            .local_addr()
            .map_err(|e| ViewError::Serve(e.to_string()))
    }

    /// Answer connections forever (each on its own task).
    pub async fn run(self) -> Result<(), ViewError> {
        loop {
            let (stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| ViewError::Serve(format!("accept: {e}")))?;
            let _ = stream.set_nodelay(true);
            let site = self.site.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &site).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
    }
}

/// The request line's method and path, from a request head.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    Some((method, target))
}

/// `%XX` decoded; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn answer(mut stream: TcpStream, site: &Arc<Site>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD {
            return respond(
                &mut stream,
                431,
                "text/plain",
                b"request head too large\n",
                true,
            )
            .await;
        }
        let n = match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let Some((method, target)) = request_line(&head) else {
        return respond(&mut stream, 400, "text/plain", b"bad request\n", true).await;
    };
    let with_body = method == "GET";
    if !with_body && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", b"only GET and HEAD\n", true).await;
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let Some(path) = percent_decode(path) else {
        return respond(&mut stream, 400, "text/plain", b"bad path\n", with_body).await;
    };
    if path == "/favicon.ico" {
        return respond(&mut stream, 204, "text/plain", b"", with_body).await;
    }
    // Rendering reads files: off the executor.
    let started = std::time::Instant::now();
    let (site, route) = (site.clone(), path.clone());
    let page = tokio::task::spawn_blocking(move || site.page(&route))
        .await
        .unwrap_or_else(|e| Err(ViewError::Serve(format!("rendering failed: {e}"))));
    tracing::debug!(path = %path, ms = started.elapsed().as_millis() as u64, "rendered");
    match page {
        Ok(Some(html)) => {
            respond(
                &mut stream,
                200,
                "text/html; charset=utf-8",
                html.as_bytes(),
                with_body,
            )
            .await
        }
        Ok(None) => {
            let body = format!("no page at {path}\n");
            respond(
                &mut stream,
                404,
                "text/plain; charset=utf-8",
                body.as_bytes(),
                with_body,
            )
            .await
        }
        Err(e) => {
            let body = format!("cannot show {path}: {e}\n");
            respond(
                &mut stream,
                500,
                "text/plain; charset=utf-8",
                body.as_bytes(),
                with_body,
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // One write of head and body: no small first segment held back by Nagle.
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    if with_body {
        out.extend_from_slice(body);
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_and_escapes_are_parsed() {
        assert_eq!(
            request_line("GET /i/a.html?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/i/a.html?x=1"))
        );
        assert_eq!(request_line("GET /\r\n"), None);
        assert_eq!(request_line("garbage"), None);
        assert_eq!(
            percent_decode("/r/a%20b.html").as_deref(),
            Some("/r/a b.html")
        );
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%4"), None);
    }
}
