//! Pod garbage collection, as upstream's pod GC controller (pkg/controller/podgc): every 20 s
//! it deletes terminated pods (Succeeded or Failed) beyond `--terminated-pod-gc-threshold`,
//! oldest first; pods bound to a node that no longer exists (after a 40 s quarantine and a
//! fresh read of the node, marked Failed with a `DisruptionTarget` condition first, then
//! deleted at once); and terminating pods that were never scheduled (no kubelet will
//! finish them), deleted at once.
//!
//! [`terminated_to_delete`] and [`orphans`] are the pure decisions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::pods::is_terminated;
use crate::{Context, Result, Task};

/// Upstream's `gcCheckPeriod` and `quarantineTime`.
const PERIOD: Duration = Duration::from_secs(20);
const QUARANTINE: Duration = Duration::from_secs(40);

/// The terminated pods to delete so that at most `threshold` remain (0: keep them all),
/// oldest first.
pub fn terminated_to_delete(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut terminated: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).collect();
    if terminated.len() <= threshold {
        return Vec::new();
    }
    terminated.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let excess = terminated.len() - threshold;
    terminated.into_iter().take(excess).cloned().collect()
}

/// Pods bound to a node not in `nodes`.
pub fn orphans(pods: &[Arc<Pod>], nodes: &HashSet<String>) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty() && !nodes.contains(n))
        })
        .cloned()
        .collect()
}

struct State {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    nodes: Store<Node>,
}

/// Sets up the `podgc` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let state = Arc::new(State {
        ctx: ctx.clone(),
        pods: ctx.informers.store(),
        nodes: ctx.informers.store(),
    });
    let synced = futures::future::join(
        ctx.informers.synced::<Pod>(),
        ctx.informers.synced::<Node>(),
    );
    Ok(Box::pin(async move {
        synced.await;
        // Nodes missing from the cache, and since when.
        let mut missing_since: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            gc_once(&state, &mut missing_since).await;
        }
    }))
}

async fn force_delete(api: &Api<Pod>, pod: &Pod) {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::debug!(pod = %pod.name_any(), error = %e, "pod GC delete"),
    }
}

fn api_for(state: &State, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        state.ctx.client.clone(),
        &pod.namespace().unwrap_or_default(),
    )
}

async fn gc_once(state: &State, missing_since: &mut HashMap<String, Instant>) {
    let pods = state.pods.state();
    for pod in terminated_to_delete(&pods, state.ctx.config.terminated_pod_gc_threshold) {
        tracing::info!(pod = %pod.name_any(), "pod GC: deleting a terminated pod over the threshold");
        let api = api_for(state, &pod);
        match api.delete(&pod.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::debug!(error = %e, "pod GC delete"),
        }
    }

    let nodes: HashSet<String> = state.nodes.state().iter().map(|n| n.name_any()).collect();
    let orphaned = orphans(&pods, &nodes);
    let now = Instant::now();
    let wanted: HashSet<String> = orphaned
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    missing_since.retain(|n, _| wanted.contains(n));
    let node_api: Api<Node> = Api::all(state.ctx.client.clone());
    let mut gone: HashSet<String> = HashSet::new();
    for node in &wanted {
        let since = *missing_since.entry(node.clone()).or_insert(now);
        if now.duration_since(since) < QUARANTINE {
            continue;
        }
        // The cache may lag: upstream checks the node with a fresh read.
        if let Ok(None) = node_api.get_opt(node).await {
            gone.insert(node.clone());
        }
    }
    for pod in orphaned {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if !gone.contains(node) {
            continue;
        }
        tracing::info!(pod = %pod.name_any(), node, "pod GC: deleting a pod of a node that no longer exists");
        let api = api_for(state, &pod);
        if !is_terminated(&pod) {
            let status = json!({"status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists", "lastTransitionTime": Time(Timestamp::now())}]}});
            let _ = api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&status),
                )
                .await;
        }
        force_delete(&api, &pod).await;
    }

    for pod in pods.iter().filter(|p| {
        p.metadata.deletion_timestamp.is_some()
            && p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty)
    }) {
        tracing::info!(pod = %pod.name_any(), "pod GC: deleting an unscheduled terminating pod");
        force_delete(&api_for(state, pod), pod).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::jiff::SignedDuration;

    fn pod(name: &str, phase: &str, age_s: i64, node: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::now() - SignedDuration::from_secs(age_s))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn the_oldest_terminated_pods_over_the_threshold_go() {
        let pods = vec![
            pod("new-done", "Succeeded", 10, None),
            pod("running", "Running", 1000, None),
            pod("old-failed", "Failed", 500, None),
            pod("mid-done", "Succeeded", 100, None),
        ];
        let names = |v: Vec<Arc<Pod>>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(
            names(terminated_to_delete(&pods, 1)),
            ["old-failed", "mid-done"]
        );
        assert!(terminated_to_delete(&pods, 3).is_empty());
        assert!(
            terminated_to_delete(&pods, 0).is_empty(),
            "0 keeps them all"
        );
    }

    #[test]
    fn pods_of_missing_nodes_are_orphans() {
        let pods = vec![
            pod("a", "Running", 1, Some("n1")),
            pod("b", "Pending", 1, Some("gone")),
            pod("c", "Pending", 1, None),
        ];
        let nodes: HashSet<String> = ["n1".to_owned()].into();
        let found: Vec<String> = orphans(&pods, &nodes)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(found, ["b"]);
    }
}
