//! Faults under the controllers: the API server restarts while a controller manager in
//! another process (`skiff controller-manager --kubeconfig`, over HTTPS) keeps running. It
//! must resume from a fresh list and create nothing twice, on both datastores.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use skiff::server::{self, ServerArgs};
use skiff_store::testing::EtcdProcess;

use common::wait_for;

const WAIT: Duration = Duration::from_secs(60);

/// A controller manager in a process of its own; killed when dropped.
struct ControllerManager(Child);

impl Drop for ControllerManager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts a server on `args`' data dir, waiting while a dropped one still holds it.
async fn start(args: &ServerArgs) -> Result<server::Running> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match server::start(args).await {
            Err(e)
                if format!("{e:#}").contains("in use")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

async fn admin(running: &server::Running) -> Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&running.kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// The pods the Deployment `web` owns (through its ReplicaSets), by name.
async fn web_pods(client: &Client) -> Result<BTreeSet<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    Ok(pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect())
}

async fn controllers_resume_after_an_api_server_restart(etcd: Option<EtcdProcess>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = ServerArgs::defaults(dir.path());
    args.https_port = free_port()?;
    args.bind_address = "127.0.0.1".parse()?;
    args.datastore_endpoint = etcd.as_ref().map(|e| e.endpoint());
    args.disable_controller_manager = true;
    args.disable_scheduler = true;
    let running = start(&args).await?;
    let kubeconfig = running.kubeconfig.clone();
    let log_path = dir.path().join("controller-manager.log");
    let log = std::fs::File::create(&log_path)?;
    let cm = ControllerManager(
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["controller-manager", "--leader-elect=false", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting skiff controller-manager")?,
    );

    let client = admin(&running).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "img:1"}]}}
        }
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let before = wait_for("the Deployment's 3 pods", WAIT, || async {
        let pods = web_pods(&client).await?;
        Ok((pods.len() == 3).then_some(pods))
    })
    .await?;

    // The API server goes away under the controller manager, stays away long enough for
    // its watches to fail and back off, and comes back on the same port and data.
    drop(client);
    drop(running);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = start(&args).await?;
    let client = admin(&running).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");

    // Nothing was created twice while the controllers resynced...
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = web_pods(&client).await?;
    ensure!(
        after == before,
        "pods changed across the restart: {before:?} -> {after:?}"
    );

    // ... and they act on what changes after it, exactly once.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await?;
    let scaled = wait_for("5 pods after the scale", WAIT, || async {
        let pods = web_pods(&client).await?;
        Ok((pods.len() == 5).then_some(pods))
    })
    .await?;
    ensure!(scaled.is_superset(&before), "{before:?} -> {scaled:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = web_pods(&client).await?;
    ensure!(settled == scaled, "{scaled:?} -> {settled:?}");
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    let sets = rs
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    ensure!(sets.len() == 1, "one ReplicaSet, not {}", sets.len());
    drop(cm);
    // Its informers backed off while the server was away instead of spinning.
    let lines = std::fs::read_to_string(&log_path)?.lines().count();
    // (35 warnings on this machine; a client retrying without backoff writes thousands.)
    ensure!(
        lines < 1_000,
        "the controller manager logged {lines} lines in a few seconds"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_controllers_resume_after_an_api_server_restart() -> Result<()> {
    controllers_resume_after_an_api_server_restart(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_controllers_resume_after_an_api_server_restart() -> Result<()> {
    let etcd = EtcdProcess::start_in(None).await?;
    controllers_resume_after_an_api_server_restart(Some(etcd)).await
}
