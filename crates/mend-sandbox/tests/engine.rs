//! Reaching the engine and cleaning up after dead owners, on the real Docker engine: a zombie
//! owner counts as dead; `tcp://` and `unix://` addresses reach the engine through small
//! proxies of its socket (listening on 127.0.0.1 or in a temp dir only); a missing socket is a
//! clear error that names it.
mod support;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use mend_sandbox::{DockerConfig, DockerEngine, DockerSandbox, Exec, SANDBOX_LABEL, Sandbox};

/// The real engine's socket (the test machine's `DOCKER_HOST` when it names a socket).
fn engine_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

async fn pipe<S>(mut client: S, count: Arc<AtomicUsize>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    count.fetch_add(1, Ordering::SeqCst);
    let Ok(mut upstream) = tokio::net::UnixStream::connect(engine_socket()).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// A byte-for-byte proxy of the engine's socket on 127.0.0.1; returns its port and a
/// connection counter.
async fn tcp_proxy() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(pipe(s, c.clone()));
        }
    });
    (port, count)
}

/// The same on a unix socket at `path`.
async fn unix_proxy(path: &Path) -> Arc<AtomicUsize> {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(pipe(s, c.clone()));
        }
    });
    count
}

async fn exists(engine: &DockerEngine, name: &str) -> bool {
    engine
        .client()
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .is_ok()
}

/// A labelled container (not started) owned by process `pid`, as mend labels its own.
async fn owned_container(engine: &DockerEngine, image: &str, name: &str, pid: u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let host = support::owner_host();
    let mut labels = HashMap::new();
    labels.insert(SANDBOX_LABEL.to_string(), "1".to_string());
    labels.insert(
        "dev.mend.owner".to_string(),
        format!("{pid}:{start}:{host}"),
    );
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    engine
        .client()
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await
        .unwrap();
}

fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .trim_start()
        .chars()
        .next()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_zombie_owner_are_swept_and_a_live_owners_are_kept() {
    let engine = mend_sandbox::testing::engine().await;
    let image = mend_sandbox::testing::base_image(&engine).await;
    // A child that exits and is not waited for: a zombie until we reap it at the end.
    let mut zombie = std::process::Command::new("true").spawn().unwrap();
    let zpid = zombie.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state(zpid) != 'Z' {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never became a zombie"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut alive = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .unwrap();
    let me = std::process::id();
    let dead_name = format!("mend-zombie-owner-{me}");
    let live_name = format!("mend-live-owner-{me}");
    owned_container(&engine, &image, &dead_name, zpid).await;
    owned_container(&engine, &image, &live_name, alive.id()).await;

    let removed = engine.sweep_stale().await.unwrap();
    let dead_left = exists(&engine, &dead_name).await;
    let live_left = exists(&engine, &live_name).await;
    // Clean up before asserting, whatever happened.
    let _ = alive.kill();
    let _ = alive.wait();
    let _ = zombie.wait();
    for n in [&dead_name, &live_name] {
        let _ = engine
            .client()
            .remove_container(
                n,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
    }
    assert!(
        !dead_left,
        "the container of a zombie owner was kept (removed {removed})"
    );
    assert!(live_left, "the container of a live owner was swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_address_reaches_the_engine_through_a_local_proxy() {
    let (port, count) = tcp_proxy().await;
    let engine = DockerEngine::connect_to(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(engine.endpoint(), format!("tcp://127.0.0.1:{port}"));
    let after_connect = count.load(Ordering::SeqCst);
    assert!(after_connect >= 1, "the proxy saw no connection");
    let image = mend_sandbox::testing::base_image(&engine).await;
    // A whole sandbox over it: start, exec (an upgraded, attached connection), remove.
    let sb = DockerSandbox::start(&engine, DockerConfig::new(image))
        .await
        .unwrap();
    let name = sb.name().to_string();
    let out = sb.exec(&Exec::shell("echo over-tcp")).await.unwrap();
    assert_eq!(out.stdout.text().trim(), "over-tcp");
    drop(sb);
    let local = mend_sandbox::testing::engine().await;
    assert!(
        !exists(&local, &name).await,
        "the container was not removed"
    );
    assert!(count.load(Ordering::SeqCst) > after_connect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_address_is_honoured_and_a_missing_socket_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("proxy.sock");
    let count = unix_proxy(&sock).await;
    let engine = DockerEngine::connect_to(&format!("unix://{}", sock.display()))
        .await
        .unwrap();
    assert!(
        count.load(Ordering::SeqCst) >= 1,
        "the proxy saw no connection"
    );
    assert!(engine.sweep_stale().await.is_ok());

    let missing = dir.path().join("no-engine-here.sock");
    let err = DockerEngine::connect_to(&format!("unix://{}", missing.display()))
        .await
        .err()
        .expect("a missing socket must not connect");
    let msg = err.to_string();
    assert!(
        msg.contains(&missing.display().to_string()) && msg.contains("no socket"),
        "{msg}"
    );
    // Something listening that is not an engine: an error naming the address, not a hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = DockerEngine::connect_to(&format!("tcp://127.0.0.1:{port}"))
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
