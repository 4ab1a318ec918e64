//! Integration: the disruption controller and the `pods/eviction` subresource through the
//! in-process server on three simulated nodes, driven by the real kubectl (`drain`) and
//! kube-rs (`Api::<Pod>::evict`), on both datastores.
//!
//! Scenarios: a PDB `minAvailable: 2` over a Deployment's 3 pods (all pinned to `sim-0`)
//! allows 1 disruption; `kubectl drain sim-0` cordons the node, evicts one pod and is refused
//! the others with upstream's 429 message; an eviction through the API is refused the same
//! way with the `DisruptionBudget` cause; after `uncordon` the replacement runs and an
//! eviction succeeds; percentages and maxUnavailable count the controllers' scale; a pod two
//! PDBs select cannot be evicted (500); a Pending pod is evicted without asking its PDB.
//!
//! The server's scheduler places the pods (a `kubernetes.io/hostname` node selector pins them
//! to `sim-0`; the Pending pod's names a node that does not exist, so it stays unbound).

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{EvictParams, ListParams};
use kube::{Api, Client, ResourceExt};

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(120);
const TOO_MANY: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// A client that hands 429s back at once (kube-rs's default client retries them, for
/// minutes in all).
async fn client_without_retries(cluster: &Cluster) -> Result<Client> {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&cluster.kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    config.default_retry = false;
    Ok(Client::try_from(config)?)
}

fn deployment(name: &str, replicas: usize, node: Option<&str>) -> String {
    let selector = node
        .map(|n| format!("      nodeSelector: {{kubernetes.io/hostname: {n}}}\n"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
{selector}      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: nginx:1.25
"#
    )
}

fn pdb(name: &str, app: &str, field: &str, value: &str) -> String {
    format!(
        r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
spec:
  {field}: {value}
  selector:
    matchLabels: {{app: {app}}}
"#
    )
}

/// The PDB's (expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed) once it
/// equals `want` and its condition agrees.
async fn wait_status(
    client: &Client,
    name: &str,
    want: (i32, i32, i32, i32),
) -> Result<PodDisruptionBudget> {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("PDB {name} status {want:?}"), WAIT, || async {
        let p = pdbs.get(name).await?;
        let Some(s) = &p.status else { return Ok(None) };
        let got = (
            s.expected_pods,
            s.desired_healthy,
            s.current_healthy,
            s.disruptions_allowed,
        );
        let reason = if want.3 > 0 {
            "SufficientPods"
        } else {
            "InsufficientPods"
        };
        let condition_ok = s
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "DisruptionAllowed" && c.reason == reason);
        if got != want || !condition_ok || s.observed_generation != p.metadata.generation {
            anyhow::bail!("status {got:?}, conditions {:?}", s.conditions);
        }
        Ok(Some(p))
    })
    .await
}

async fn running(client: &Client, app: &str, want: usize) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("{want} ready pods of {app}"), WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect();
        Ok((ready.len() == want).then_some(ready))
    })
    .await
}

async fn drain_respects_the_budget(cluster: &Cluster) -> Result<()> {
    let client = &cluster.client;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            &(deployment("web", 3, Some("sim-0"))
                + "---"
                + &pdb("web", "web", "minAvailable", "2")),
        ),
    )?;
    let before = running(client, "web", 3).await?;
    let p = wait_status(client, "web", (3, 2, 3, 1)).await?;
    ensure!(p
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.as_ref())
        .is_none());

    // Drain: one pod goes, the others are refused until the timeout.
    let out = cluster.kubectl_output(
        &[
            "drain",
            "sim-0",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=15s",
        ],
        None,
    )?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !out.status.success(),
        "drain should time out on the budget: {text}"
    );
    ensure!(text.contains("cordoned"), "{text}");
    ensure!(text.contains(TOO_MANY), "{text}");
    ensure!(
        text.matches("evicted").count() == 1,
        "one pod evicted: {text}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    ensure!(nodes.get("sim-0").await?.spec.and_then(|s| s.unschedulable) == Some(true));

    // The replacement cannot run (its node is cordoned): 2 healthy of 3 expected, none allowed.
    let left = running(client, "web", 2).await?;
    let gone: Vec<_> = before
        .iter()
        .filter(|p| !left.iter().any(|l| l.uid() == p.uid()))
        .collect();
    ensure!(
        gone.len() == 1,
        "exactly one of the original pods was evicted"
    );
    wait_status(client, "web", (3, 2, 2, 0)).await?;

    // The eviction API says the same, with upstream's cause.
    let pods: Api<Pod> = Api::namespaced(client_without_retries(cluster).await?, "default");
    match pods
        .evict(&left[0].name_any(), &EvictParams::default())
        .await
    {
        Err(kube::Error::Api(s)) => {
            ensure!(s.code == 429, "{s:?}");
            ensure!(s.reason == "TooManyRequests", "{s:?}");
            ensure!(s.message == TOO_MANY, "{s:?}");
            let causes = s.details.map(|d| d.causes).unwrap_or_default();
            ensure!(
                causes.iter().any(|c| c.reason == "DisruptionBudget"
                    && c.message
                        == "The disruption budget web needs 2 healthy pods and has 2 currently"),
                "{causes:?}"
            );
        }
        other => bail!("eviction past the budget: {other:?}"),
    }

    // Uncordoned, the replacement runs and one disruption is allowed again.
    cluster.kubectl(&["uncordon", "sim-0"])?;
    running(client, "web", 3).await?;
    wait_status(client, "web", (3, 2, 3, 1)).await?;
    let victim = left[0].name_any();
    let status = pods.evict(&victim, &EvictParams::default()).await?;
    ensure!(status.is_success(), "{status:?}");
    wait_for("the evicted pod gone", WAIT, || async {
        Ok(pods
            .get_opt(&victim)
            .await?
            .is_none_or(|p| p.uid() != left[0].uid())
            .then_some(()))
    })
    .await?;
    Ok(())
}

async fn percentages_several_budgets_and_pending_pods(cluster: &Cluster) -> Result<()> {
    let client = &cluster.client;
    let yaml = [
        deployment("half", 4, None),
        pdb("half-max", "half", "maxUnavailable", "\"50%\""),
        deployment("third", 3, None),
        pdb("third-min", "third", "minAvailable", "\"34%\""),
    ]
    .join("---");
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    running(client, "half", 4).await?;
    running(client, "third", 3).await?;
    // maxUnavailable 50% of 4: 2 may go; minAvailable 34% of 3 rounds up to 2.
    wait_status(client, "half-max", (4, 2, 4, 2)).await?;
    wait_status(client, "third-min", (3, 2, 3, 1)).await?;

    // A second budget over the same pods: evictions are refused with 500.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pdb("third-other", "third", "maxUnavailable", "1")),
    )?;
    wait_status(client, "third-other", (3, 2, 3, 1)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let third = running(client, "third", 3).await?;
    match pods
        .evict(&third[0].name_any(), &EvictParams::default())
        .await
    {
        Err(kube::Error::Api(s)) => {
            ensure!(s.code == 500, "{s:?}");
            ensure!(
                s.message == "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                "{s:?}"
            );
        }
        other => bail!("eviction under two budgets: {other:?}"),
    }

    // A Pending pod (pinned to a node that does not exist) goes whatever its budget says.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            &(deployment("stuck", 1, Some("nowhere"))
                + "---"
                + &pdb("stuck", "stuck", "minAvailable", "1")),
        ),
    )?;
    let stuck = wait_for("the pending pod", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=stuck"))
            .await?;
        Ok(list.items.into_iter().next())
    })
    .await?;
    wait_status(client, "stuck", (1, 1, 0, 0)).await?;
    let status = pods
        .evict(&stuck.name_any(), &EvictParams::default())
        .await?;
    ensure!(status.is_success(), "{status:?}");

    // A missing pod is 404.
    match pods.evict("no-such-pod", &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => ensure!(s.code == 404, "{s:?}"),
        other => bail!("eviction of a missing pod: {other:?}"),
    }
    Ok(())
}

on_both_datastores!(nodes: 3;
    drain_respects_the_budget,
    percentages_several_budgets_and_pending_pods,
);
