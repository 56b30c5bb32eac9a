//! What only the Docker backend promises: isolation, limits, cleanup on every path.
mod support;

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use mend_sandbox::{
    DockerConfig, DockerSandbox, Exec, SANDBOX_LABEL, Sandbox, SandboxError, Termination,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_network_by_default() {
    let sb = support::docker_sandbox().await;
    let out = sb.exec(&Exec::shell("ls /sys/class/net")).await.unwrap();
    assert_eq!(
        out.stdout.text().split_whitespace().collect::<Vec<_>>(),
        vec!["lo"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_as_the_non_root_user_of_the_base_image() {
    let sb = support::docker_sandbox().await;
    assert_eq!(sb.user(), "mend");
    let out = sb.exec(&Exec::new(["id", "-un"])).await.unwrap();
    assert_eq!(out.stdout.text().trim(), "mend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_reported_as_out_of_memory() {
    let engine = support::engine().await;
    let image = support::base_image(&engine).await;
    let mut cfg = DockerConfig::new(image);
    cfg.memory_bytes = Some(96 << 20);
    let sb = DockerSandbox::start(&engine, cfg).await.unwrap();
    let out = sb
        .exec(
            &Exec::new(["python3", "-c", "x = bytearray(1 << 30); print(len(x))"])
                .timeout(Duration::from_secs(120)),
        )
        .await
        .unwrap();
    assert_eq!(out.termination, Termination::OutOfMemory, "{out:?}");
    assert!(out.status_line().contains("out of memory"));
    // The sandbox still works afterwards, and a plain kill is not mistaken for OOM.
    let out = sb.exec(&Exec::shell("kill -9 $$")).await.unwrap();
    assert_eq!(out.termination, Termination::Signal(9), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_removed_on_drop_and_on_close() {
    let engine = support::engine().await;
    let sb = support::docker_sandbox().await;
    let name = sb.name().to_string();
    assert!(support::container_exists(&engine, &name).await);
    drop(sb);
    assert!(
        !support::container_exists(&engine, &name).await,
        "dropped sandbox still exists"
    );

    let sb = support::docker_sandbox().await;
    let name = sb.name().to_string();
    sb.close().await.unwrap();
    assert!(
        !support::container_exists(&engine, &name).await,
        "closed sandbox still exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_removed_after_a_panic() {
    let engine = support::engine().await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let sb = support::docker_sandbox().await;
        tx.send(sb.name().to_string()).unwrap();
        panic!("a task holding a sandbox panics");
    });
    let name = rx.await.unwrap();
    assert!(task.await.unwrap_err().is_panic());
    assert!(
        !support::container_exists(&engine, &name).await,
        "the panicking task's container survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_sandboxes_at_once() {
    let engine = support::engine().await;
    let image = support::base_image(&engine).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let engine = engine.clone();
        let image = image.clone();
        tasks.push(tokio::spawn(async move {
            let sb = DockerSandbox::start(&engine, DockerConfig::new(image))
                .await
                .unwrap();
            let out = sb
                .exec(&Exec::shell(format!("echo sandbox-{i}")))
                .await
                .unwrap();
            assert_eq!(out.stdout.text(), format!("sandbox-{i}\n"));
            sb.name().to_string()
        }));
    }
    let mut names = Vec::new();
    for t in tasks {
        names.push(t.await.unwrap());
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 16);
    for n in names {
        assert!(
            !support::container_exists(&engine, &n).await,
            "{n} was not removed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_a_clear_error() {
    let engine = support::engine().await;
    let err =
        match DockerSandbox::start(&engine, DockerConfig::new("mend-no-such-image:nope")).await {
            Ok(_) => panic!("started from an image that does not exist"),
            Err(e) => e,
        };
    assert!(matches!(err, SandboxError::ImageNotFound(_)), "{err}");
    assert!(err.to_string().contains("mend-no-such-image:nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_containers_of_dead_runs_are_swept() {
    let engine = support::engine().await;
    let image = support::base_image(&engine).await;
    let host = support::owner_host();
    let mut labels = HashMap::new();
    labels.insert(SANDBOX_LABEL.to_string(), "1".to_string());
    // pid 0 with a made-up start time: an owner that is certainly gone.
    labels.insert("dev.mend.owner".to_string(), format!("0:1:{host}"));
    let name = format!("mend-stale-test-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(image),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    engine
        .client()
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .unwrap();
    assert!(support::container_exists(&engine, &name).await);
    // A live sandbox of this process must survive the sweep.
    let live = support::docker_sandbox().await;
    let removed = engine.sweep_stale().await.unwrap();
    assert!(removed >= 1);
    assert!(
        !support::container_exists(&engine, &name).await,
        "stale container not swept"
    );
    assert!(
        support::container_exists(&engine, live.name()).await,
        "a live sandbox was swept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_container_is_reported_as_gone() {
    let engine = support::engine().await;
    let sb = support::docker_sandbox().await;
    engine
        .client()
        .kill_container(
            sb.name(),
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .unwrap();
    let err = sb.exec(&Exec::new(["true"])).await.unwrap_err();
    assert!(matches!(err, SandboxError::ContainerGone(_)), "{err}");
}
