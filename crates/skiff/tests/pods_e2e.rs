//! End to end, as root: `skiff server` with its own real node runs a Deployment's pods as
//! real containers (runc, the CNI bridge, an image built from busybox-static and imported
//! from the air-gap directory); they answer HTTP on their pod IPs; deleting them leaves the
//! host clean (no monitors, mounts, network namespaces or pod cgroups of theirs).
//!
//! One test per binary: the node uses the host's `cni0` bridge and pod range.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::realnode::{http_get, mounts_under, processes_with, run_cleanly, skip_reason};
use common::wait_for;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_runs_in_real_containers_and_leaves_the_host_clean() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    run_cleanly(|data| async move { deployment_scenario(&data).await }).await
}

async fn deployment_scenario(data: &Path) -> Result<()> {
    let dir = data.to_path_buf();
    let c = common::realnode::start(data, "e2e-node").await?;
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo.yaml"),
    )?;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest))?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "demo");
    let running: Vec<(String, String)> = wait_for(
        "both demo pods Running with IPs",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels("app=hello"))
                    .await?;
                let ips: Vec<(String, String)> = list
                    .items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .filter_map(|p| {
                        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone())?;
                        Some((ip, p.metadata.uid.clone()?))
                    })
                    .collect();
                Ok((ips.len() == 2).then_some(ips))
            }
        },
    )
    .await?;
    for (ip, _) in &running {
        let body = wait_for("the pod answering HTTP", Duration::from_secs(20), || {
            let ip = ip.clone();
            async move { Ok(http_get(&ip, 8080)?.contains("200 OK").then_some(())) }
        })
        .await
        .and_then(|()| http_get(ip, 8080))
        .with_context(|| {
            // Pods of another skiff on this host (a leaked test's) share cni0 and may
            // hold the same IPs from their own IPAM directory.
            let ports = std::fs::read_dir("/sys/class/net/cni0/brif")
                .map(|d| d.count())
                .unwrap_or(0);
            format!("pod IP {ip}; cni0 has {ports} ports (this test's pods: 2)")
        })?;
        assert!(body.contains("Hello from a pod on skiff"), "{body}");
    }
    // Each container runs under its own monitor (the skiff binary re-executed).
    let monitors_of_this_node = || processes_with(&format!("container-monitor {}", dir.display()));
    assert_eq!(monitors_of_this_node(), 2);

    c.kubectl_stdin(
        &["delete", "deployment", "-n", "demo", "hello", "--wait=true"],
        None,
    )?;
    wait_for("the demo's pods gone", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            Ok(pods
                .list(&ListParams::default())
                .await?
                .items
                .is_empty()
                .then_some(()))
        }
    })
    .await?;
    let agent = dir.join("agent");
    let uids: Vec<String> = running.iter().map(|(_, uid)| uid.clone()).collect();
    wait_for("the host clean of the pods", Duration::from_secs(20), || {
        let agent = agent.clone();
        let uids = uids.clone();
        let monitors = monitors_of_this_node();
        async move {
            let mounts = mounts_under(&agent);
            let sandboxes = std::fs::read_dir(agent.join("sandboxes"))
                .map(|d| d.count())
                .unwrap_or(0);
            let cgroups = uids
                .iter()
                .flat_map(|u| skiff_kubelet::pods::qos::pod_cgroup_candidates(u))
                .flat_map(|path| {
                    ["memory", "cpu", "pids"].map(|h| format!("/sys/fs/cgroup/{h}{path}"))
                })
                .filter(|p| Path::new(p).exists())
                .count();
            if monitors == 0 && mounts == 0 && sandboxes == 0 && cgroups == 0 {
                Ok(Some(()))
            } else {
                bail!("monitors {monitors}, mounts {mounts}, sandboxes {sandboxes}, pod cgroups {cgroups}")
            }
        }
    })
    .await?;
    Ok(())
}
