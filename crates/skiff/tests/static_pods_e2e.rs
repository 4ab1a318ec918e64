//! End to end, as root: `skiff server` with its own real node runs a static pod dropped in
//! `<data-dir>/agent/pod-manifests` as a real container (runc, the CNI bridge, the demo
//! image from the air-gap directory); its mirror pod shows it Running with its pod IP, it
//! answers HTTP there, `kubectl exec` on the mirror pod reaches it, `kubectl delete` of the
//! mirror pod brings a new one and leaves the container running; removing the manifest
//! stops it and deletes the mirror pod.
//!
//! One test per binary: the node uses the host's `cni0` bridge and pod range.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use common::realnode::{http_get, processes_with, run_cleanly, skip_reason};
use common::wait_for;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

const NODE: &str = "static-e2e";
const MIRROR: &str = "hello-static-e2e";

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: kube-system
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: web
    image: docker.io/skiff/demo-web:v1
    imagePullPolicy: IfNotPresent
    ports:
    - containerPort: 8080
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pod_runs_in_a_real_container_with_its_mirror_pod() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    run_cleanly(|data| async move { scenario(&data).await }).await
}

async fn scenario(data: &Path) -> Result<()> {
    let c = common::realnode::start(data, NODE).await?;
    let manifests = data.join("agent/pod-manifests");
    assert!(
        manifests.is_dir(),
        "the node agent makes the manifest directory"
    );
    std::fs::write(manifests.join("hello.yaml"), MANIFEST)?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "kube-system");
    let ip = wait_for(
        "the mirror pod Running with a pod IP",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let Some(p) = pods.get_opt(MIRROR).await? else {
                    return Ok(None);
                };
                let s = p.status.unwrap_or_default();
                Ok((s.phase.as_deref() == Some("Running"))
                    .then_some(s.pod_ip)
                    .flatten())
            }
        },
    )
    .await?;
    let body = wait_for("the pod answering HTTP", Duration::from_secs(20), || {
        let ip = ip.clone();
        async move {
            let answer = http_get(&ip, 8080)?;
            Ok(answer.contains("200 OK").then_some(answer))
        }
    })
    .await?;
    assert!(body.contains("Hello from a pod on skiff"), "{body}");
    let monitors = || processes_with(&format!("container-monitor {}", data.display()));
    assert_eq!(monitors(), 1);

    // kubectl exec through the mirror pod reaches the static pod's container.
    let out = c.kubectl_output(
        &["-n", "kube-system", "exec", MIRROR, "--", "hostname"],
        None,
    )?;
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).as_ref(),
            out.status.code()
        ),
        ("hello-static-e2e\n", Some(0)),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // kubectl delete of the mirror pod: a new one comes, the container runs on.
    let before = pods.get(MIRROR).await?;
    let first = before.metadata.uid.clone();
    let container_id = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .and_then(|c| c.container_id.clone())
    };
    let id_before = container_id(&before);
    assert!(id_before.is_some());
    c.kubectl(&["-n", "kube-system", "delete", "pod", MIRROR, "--wait=false"])?;
    let again = wait_for("a new mirror pod Running", Duration::from_secs(30), || {
        let (pods, first) = (pods.clone(), first.clone());
        async move {
            let p = pods.get_opt(MIRROR).await?;
            Ok(p.filter(|p| {
                p.metadata.uid != first
                    && p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && container_id(p).is_some()
            }))
        }
    })
    .await
    .map(|p| container_id(&p))?;
    assert_eq!(again, id_before, "the same container");
    assert_eq!(monitors(), 1);
    assert!(http_get(&ip, 8080)?.contains("200 OK"));

    std::fs::remove_file(manifests.join("hello.yaml"))?;
    wait_for(
        "the mirror pod gone and the container stopped",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let gone = pods.get_opt(MIRROR).await?.is_none();
                Ok((gone && monitors() == 0).then_some(()))
            }
        },
    )
    .await?;
    Ok(())
}
