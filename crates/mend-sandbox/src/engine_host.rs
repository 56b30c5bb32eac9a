//! Which Docker engine to talk to, decided as the docker CLI decides it: `DOCKER_HOST`; else
//! the context named by `DOCKER_CONTEXT` or by `currentContext` in the CLI's `config.json`;
//! else the local socket. Supported: `unix://` sockets and plain `tcp://`/`http://`; TLS and
//! `ssh://` get a clear error instead of a silent fall back to the local socket.
use std::path::{Path, PathBuf};

use bollard::Docker;
use sha2::{Digest, Sha256};

use crate::SandboxError;

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Seconds per engine request, bollard's default.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// The engine's plain-HTTP port when a `tcp://` address has none (as the docker CLI has it).
const DEFAULT_TCP_PORT: u16 = 2375;

/// An engine address and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub host: String,
    pub source: String,
    /// TLS was asked for (`DOCKER_TLS_VERIFY`, or a context with TLS material).
    pub tls: bool,
}

impl Endpoint {
    pub(crate) fn from_host(host: &str, source: &str) -> Endpoint {
        Endpoint {
            host: host.trim().to_string(),
            source: source.to_string(),
            tls: false,
        }
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> SandboxError {
        SandboxError::EngineUnavailable(format!("{} (from {}): {why}", self.host, self.source))
    }
}

/// The endpoint the environment names; `var` reads an environment variable.
pub(crate) fn resolve(var: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, SandboxError> {
    let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    let tls_verify = var("DOCKER_TLS_VERIFY").is_some();
    if let Some(host) = var("DOCKER_HOST") {
        let mut ep = Endpoint::from_host(&host, "DOCKER_HOST");
        ep.tls = tls_verify;
        return Ok(ep);
    }
    let config_dir = match (var("DOCKER_CONFIG"), var("HOME")) {
        (Some(d), _) => Some(PathBuf::from(d)),
        (None, Some(h)) => Some(Path::new(&h).join(".docker")),
        (None, None) => None,
    };
    let (name, source) = match var("DOCKER_CONTEXT") {
        Some(n) => (n, "DOCKER_CONTEXT".to_string()),
        None => match config_dir.as_deref().and_then(current_context) {
            Some((n, path)) => (n, format!("currentContext in {}", path.display())),
            None => ("default".to_string(), String::new()),
        },
    };
    if name == "default" {
        return Ok(Endpoint::from_host(DEFAULT_HOST, "the default socket"));
    }
    let Some(dir) = config_dir else {
        return Err(SandboxError::EngineUnavailable(format!(
            "docker context `{name}` (from {source}): neither DOCKER_CONFIG nor HOME is set, so its definition cannot be found"
        )));
    };
    context_endpoint(&dir, &name, &source)
}

/// `currentContext` of the CLI's `config.json`, when it names one.
fn current_context(config_dir: &Path) -> Option<(String, PathBuf)> {
    let path = config_dir.join("config.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable docker config");
            return None;
        }
    };
    let name = v.get("currentContext")?.as_str()?.trim().to_string();
    (!name.is_empty()).then_some((name, path))
}

/// A context's docker endpoint, from `contexts/meta/<sha256(name)>/meta.json`.
fn context_endpoint(config_dir: &Path, name: &str, source: &str) -> Result<Endpoint, SandboxError> {
    let digest = hex(&Sha256::digest(name.as_bytes()));
    let meta = config_dir
        .join("contexts/meta")
        .join(&digest)
        .join("meta.json");
    let what = format!("docker context `{name}` (from {source})");
    let text = std::fs::read_to_string(&meta).map_err(|e| {
        SandboxError::EngineUnavailable(format!(
            "{what} is not defined: cannot read {}: {e} (`docker context ls` lists the contexts)",
            meta.display()
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        SandboxError::EngineUnavailable(format!("{what}: {} is not JSON: {e}", meta.display()))
    })?;
    let host = v
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| {
            SandboxError::EngineUnavailable(format!(
                "{what}: {} has no Endpoints.docker.Host",
                meta.display()
            ))
        })?;
    let mut ep = Endpoint::from_host(host, &what);
    ep.tls = config_dir
        .join("contexts/tls")
        .join(&digest)
        .join("docker")
        .exists();
    Ok(ep)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client for the endpoint (no request made yet).
pub(crate) fn client(ep: &Endpoint) -> Result<Docker, SandboxError> {
    let host = ep.host.as_str();
    let scheme = host.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "unix" => {
            let path = &host["unix://".len()..];
            if !Path::new(path).exists() {
                return Err(ep.unavailable(format!("no socket at {path}")));
            }
            Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| ep.unavailable(crate::docker::engine_message(&e)))
        }
        "tcp" | "http" => {
            if ep.tls {
                return Err(ep.unavailable(
                    "TLS to the engine (DOCKER_TLS_VERIFY or a context's certificates) is not supported; \
                     reach it through an SSH tunnel to its socket, or unset DOCKER_TLS_VERIFY for a plain-HTTP engine on a trusted network",
                ));
            }
            Docker::connect_with_http(
                &with_default_port(host),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(|e| ep.unavailable(crate::docker::engine_message(&e)))
        }
        "ssh" => Err(ep.unavailable(
            "ssh:// engines are not supported; forward the remote socket and point DOCKER_HOST at it: \
             `ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock HOST &` then DOCKER_HOST=unix:///tmp/docker.sock",
        )),
        "https" => Err(ep.unavailable(
            "TLS to the engine is not supported; use a unix:// socket (an SSH tunnel to a remote one) or plain tcp://",
        )),
        _ => Err(ep.unavailable(
            "not an engine address mend can use (unix:///path/to/docker.sock or tcp://HOST:PORT)",
        )),
    }
}

/// `tcp://host` means port 2375, as for the docker CLI.
fn with_default_port(host: &str) -> String {
    let (scheme, rest) = host.split_once("://").unwrap_or(("tcp", host));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let has_port = match authority.rsplit_once(':') {
        // `[::1]` alone has colons but no port.
        Some((h, p)) => !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty(),
        None => false,
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{DEFAULT_TCP_PORT}")
    };
    if path.is_empty() {
        format!("{scheme}://{authority}")
    } else {
        format!("{scheme}://{authority}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn write_context(dir: &Path, name: &str, host: &str) {
        let d = dir
            .join("contexts/meta")
            .join(hex(&Sha256::digest(name.as_bytes())));
        std::fs::create_dir_all(&d).unwrap();
        let meta = serde_json::json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}});
        std::fs::write(d.join("meta.json"), meta.to_string()).unwrap();
    }

    #[test]
    fn docker_host_wins_then_the_context_then_the_default_socket() {
        let cfg = tempfile::tempdir().unwrap();
        let c = cfg.path().to_str().unwrap();
        write_context(cfg.path(), "remote", "tcp://127.0.0.1:2399");
        write_context(cfg.path(), "other", "unix:///run/other.sock");
        std::fs::write(
            cfg.path().join("config.json"),
            r#"{"auths": {}, "currentContext": "other"}"#,
        )
        .unwrap();

        let ep = resolve(&env(&[
            ("DOCKER_HOST", "tcp://10.0.0.1:2375"),
            ("DOCKER_CONTEXT", "remote"),
            ("DOCKER_CONFIG", c),
        ]))
        .unwrap();
        assert_eq!(
            (ep.host.as_str(), ep.source.as_str()),
            ("tcp://10.0.0.1:2375", "DOCKER_HOST")
        );

        let ep = resolve(&env(&[("DOCKER_CONTEXT", "remote"), ("DOCKER_CONFIG", c)])).unwrap();
        assert_eq!(ep.host, "tcp://127.0.0.1:2399");
        assert!(ep.source.contains("`remote`"), "{}", ep.source);

        // No DOCKER_CONTEXT: the CLI's current context.
        let ep = resolve(&env(&[("DOCKER_CONFIG", c)])).unwrap();
        assert_eq!(ep.host, "unix:///run/other.sock");
        assert!(ep.source.contains("config.json"), "{}", ep.source);

        // `default` and nothing at all: the local socket. HOME/.docker is the config dir.
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        assert_eq!(resolve(&env(&[("HOME", h)])).unwrap().host, DEFAULT_HOST);
        let ep = resolve(&env(&[("DOCKER_CONTEXT", "default"), ("DOCKER_CONFIG", c)])).unwrap();
        assert_eq!(ep.host, DEFAULT_HOST);
        assert_eq!(resolve(&env(&[])).unwrap().host, DEFAULT_HOST);
        // An empty DOCKER_HOST is unset.
        let ep = resolve(&env(&[("DOCKER_HOST", ""), ("HOME", h)])).unwrap();
        assert_eq!(ep.host, DEFAULT_HOST);
    }

    #[test]
    fn an_unknown_context_and_unsupported_schemes_are_clear_errors() {
        let cfg = tempfile::tempdir().unwrap();
        let c = cfg.path().to_str().unwrap();
        let e = resolve(&env(&[("DOCKER_CONTEXT", "nope"), ("DOCKER_CONFIG", c)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`nope`") && e.contains("not defined"), "{e}");

        let e = client(&Endpoint::from_host("ssh://me@build-host", "DOCKER_HOST"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ssh://me@build-host") && e.contains("ssh -nNT -L"),
            "{e}"
        );
        let e = client(&Endpoint::from_host(
            "unix:///nowhere/docker.sock",
            "DOCKER_HOST",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no socket at /nowhere/docker.sock") && e.contains("DOCKER_HOST"),
            "{e}"
        );
        let mut tls = Endpoint::from_host("tcp://127.0.0.1:2376", "DOCKER_HOST");
        tls.tls = true;
        assert!(client(&tls).unwrap_err().to_string().contains("TLS"));
        let e = client(&Endpoint::from_host(
            "npipe:////./pipe/docker",
            "DOCKER_HOST",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("npipe://"), "{e}");
        // A context with TLS material is refused too, not used in plain text.
        write_context(cfg.path(), "secure", "tcp://127.0.0.1:2376");
        let digest = hex(&Sha256::digest(b"secure"));
        std::fs::create_dir_all(cfg.path().join("contexts/tls").join(digest).join("docker"))
            .unwrap();
        let ep = resolve(&env(&[("DOCKER_CONTEXT", "secure"), ("DOCKER_CONFIG", c)])).unwrap();
        assert!(ep.tls);
    }

    #[test]
    fn tcp_without_a_port_means_2375() {
        assert_eq!(with_default_port("tcp://10.1.2.3"), "tcp://10.1.2.3:2375");
        assert_eq!(
            with_default_port("tcp://10.1.2.3:4000"),
            "tcp://10.1.2.3:4000"
        );
        assert_eq!(with_default_port("tcp://[::1]"), "tcp://[::1]:2375");
        assert_eq!(with_default_port("tcp://[::1]:9"), "tcp://[::1]:9");
        assert_eq!(with_default_port("http://h/x"), "http://h:2375/x");
    }
}
