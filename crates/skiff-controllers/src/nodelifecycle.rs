//! Node lifecycle: a node whose kubelet stops renewing its Lease (and posting status) for
//! `--node-monitor-grace-period` gets its conditions set to `Unknown`, its pods marked not
//! ready, and the `node.kubernetes.io/unreachable` taints (`NoSchedule` at once, `NoExecute`
//! through a per-zone rate limiter); a node that reports `Ready=False` gets the `not-ready`
//! ones; a healthy node loses them again. Pods on a node with `NoExecute` taints they do not
//! tolerate are evicted (deleted), at once or after their `tolerationSeconds`, counted from
//! the taint's `timeAdded`. Upstream: pkg/controller/nodelifecycle/node_lifecycle_controller.go
//! (monitorNodeHealth, the zone states and rates) and pkg/controller/tainteviction.
//!
//! The decisions are pure: [`node_health`] (a node, its Lease, the time -> conditions and
//! taints wanted), [`zone_state`], [`eviction_time`] (a pod's tolerations against a node's
//! taints). The loop around them runs every few seconds over the informers' caches.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::Recorder;
use crate::{Context, Result, Task};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Upstream's `--node-monitor-period`.
const MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// How often pods on tainted nodes are checked for eviction.
const EVICTION_PERIOD: Duration = Duration::from_secs(1);
/// Upstream's `--node-startup-grace-period`: a node that never posted status is given this long.
const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// Upstream's `--node-eviction-rate` (nodes per second whose NoExecute taint is added) and
/// `--secondary-node-eviction-rate`, `--unhealthy-zone-threshold`, `--large-cluster-size-threshold`.
const EVICTION_RATE: f64 = 0.1;
const SECONDARY_EVICTION_RATE: f64 = 0.01;
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// The conditions a kubelet posts and the controller sets to Unknown.
const CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the node's health asks of its conditions and taints.
#[derive(Debug, PartialEq)]
pub struct Health {
    /// `Ready` as the controller sees it: "True", "False" or "Unknown".
    pub ready: String,
    /// Conditions to write (those the kubelet stopped posting, now Unknown); empty: none.
    pub conditions: Vec<NodeCondition>,
}

/// When the node last showed it is alive: its Lease's renew time, else its Ready condition's
/// heartbeat, else its creation (plus the startup grace, for a node that never posted).
fn last_alive(node: &Node, lease: Option<&Lease>) -> (Option<Timestamp>, bool) {
    let renewed = lease
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
        .map(|t| t.0);
    let heartbeat = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    match (renewed, heartbeat) {
        (Some(a), Some(b)) => (Some(a.max(b)), true),
        (Some(a), None) | (None, Some(a)) => (Some(a), true),
        (None, None) => (
            node.metadata.creation_timestamp.as_ref().map(|t| t.0),
            false,
        ),
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The node's health at `now` (upstream's `tryUpdateNodeHealth`).
pub fn node_health(node: &Node, lease: Option<&Lease>, now: Timestamp, grace: Duration) -> Health {
    let (alive, ever_posted) = last_alive(node, lease);
    let allowed = if ever_posted {
        grace
    } else {
        grace.max(STARTUP_GRACE)
    };
    let allowed = SignedDuration::try_from(allowed).unwrap_or(SignedDuration::MAX);
    let stale = alive.is_none_or(|t| t.checked_add(allowed).is_ok_and(|end| end <= now));
    let current = ready_condition(node).map_or("Unknown", |c| c.status.as_str());
    if !stale {
        return Health {
            ready: current.to_owned(),
            conditions: Vec::new(),
        };
    }
    let existing = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    let mut conditions = Vec::new();
    for kind in CONDITIONS {
        let old = existing.and_then(|cs| cs.iter().find(|c| c.type_ == *kind));
        match old {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => conditions.push(NodeCondition {
                type_: (*kind).to_owned(),
                status: "Unknown".into(),
                reason: Some("NodeStatusUnknown".into()),
                message: Some("Kubelet stopped posting node status.".into()),
                last_heartbeat_time: c.last_heartbeat_time.clone(),
                last_transition_time: Some(Time(now)),
            }),
            None => conditions.push(NodeCondition {
                type_: (*kind).to_owned(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(Time(now)),
            }),
        }
    }
    Health {
        ready: "Unknown".into(),
        conditions,
    }
}

/// The taints a node's Ready state calls for (`key`, `effect`), as upstream's
/// TaintNodesByCondition and NoExecute tainting: Unknown -> unreachable, False -> not-ready.
pub fn wanted_taint_key(ready: &str) -> Option<&'static str> {
    match ready {
        "Unknown" => Some(UNREACHABLE),
        "False" => Some(NOT_READY),
        _ => None,
    }
}

/// A node's taints after the controller's change: the `unreachable`/`not-ready` taints of
/// the other state removed, the `NoSchedule` one of `key`'s state added, its `NoExecute` one
/// added when `add_no_execute` (the zone's limiter allowed it) or removed when `lift_no_execute`
/// (every zone is down). Other taints are kept as they are.
pub fn wanted_taints(
    current: &[Taint],
    key: Option<&str>,
    add_no_execute: bool,
    lift_no_execute: bool,
    now: Timestamp,
) -> Vec<Taint> {
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| (t.key != UNREACHABLE && t.key != NOT_READY) || Some(t.key.as_str()) == key)
        .cloned()
        .collect();
    let Some(key) = key else { return taints };
    let has =
        |taints: &[Taint], effect: &str| taints.iter().any(|t| t.key == key && t.effect == effect);
    if !has(&taints, "NoSchedule") {
        taints.push(Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            time_added: None,
            value: None,
        });
    }
    if lift_no_execute {
        // Every zone down: the controller's own connectivity is the likelier fault, so
        // upstream stops evicting and lifts the NoExecute taints.
        taints.retain(|t| !(t.key == key && t.effect == "NoExecute"));
    } else if add_no_execute && !has(&taints, "NoExecute") {
        taints.push(Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(now)),
            value: None,
        });
    }
    taints
}

/// Writes `change` of the node's taints, reading the node afresh when the cached copy is
/// stale (a conflict), so the kubelet's and the controller's own writes are never undone.
async fn write_taints(
    api: &Api<Node>,
    cached: &Node,
    change: impl Fn(&[Taint]) -> Vec<Taint>,
) -> Result<(), kube::Error> {
    let name = cached.name_any();
    let mut node = cached.clone();
    for attempt in 0..3 {
        let current = node_taints(&node);
        let taints = change(&current);
        if taints == current {
            return Ok(());
        }
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 2 => {
                node = api.get(&name).await?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The disruption state of a zone (upstream's `ComputeZoneState`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

pub fn zone_state(ready: usize, not_ready: usize) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && (not_ready as f64) / ((ready + not_ready) as f64) >= UNHEALTHY_ZONE_THRESHOLD
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// Nodes per second that may get the NoExecute taint in a zone of `size` nodes in `state`.
pub fn eviction_rate(state: ZoneState, size: usize) -> f64 {
    match state {
        ZoneState::Normal => EVICTION_RATE,
        ZoneState::PartialDisruption if size > LARGE_CLUSTER_THRESHOLD => SECONDARY_EVICTION_RATE,
        ZoneState::PartialDisruption | ZoneState::FullDisruption => 0.0,
    }
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    match t.operator.as_deref() {
        Some("Exists") => t
            .key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == taint.key),
        _ => {
            t.key.as_deref() == Some(taint.key.as_str())
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// When a pod on a node with `taints` is to be evicted (upstream's taint eviction):
/// `Some(now-or-earlier)` for a NoExecute taint it does not tolerate, the earliest
/// `timeAdded + tolerationSeconds` over the taints it tolerates for a while, `None` when it
/// tolerates them all for ever (or there are none).
pub fn eviction_time(pod: &Pod, taints: &[Taint], now: Timestamp) -> Option<Timestamp> {
    let tolerations: &[Toleration] = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let seconds = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let added = taint.time_added.as_ref().map_or(now, |t| t.0);
        let at = added
            .checked_add(SignedDuration::from_secs(seconds))
            .unwrap_or(Timestamp::MAX);
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest
}

/// A token bucket per zone for adding NoExecute taints (burst 1, as upstream's limiter).
#[derive(Default)]
struct ZoneLimiter {
    tokens: f64,
    last: Option<Instant>,
}

impl ZoneLimiter {
    /// Gives back a token whose write failed.
    fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(1.0);
    }

    fn try_take(&mut self, rate: f64, now: Instant) -> bool {
        let elapsed = self.last.map_or(1.0 / rate.max(1e-9), |l| {
            now.duration_since(l).as_secs_f64()
        });
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * rate).min(1.0);
        if rate > 0.0 && self.tokens >= 1.0 - 1e-9 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn zone_of(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    format!(
        "{}:\0:{}",
        get("topology.kubernetes.io/region"),
        get("topology.kubernetes.io/zone")
    )
}

struct State {
    ctx: Arc<Context>,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    recorder: Recorder,
    pod_recorder: Recorder,
}

/// Sets up the `nodelifecycle` controller (node health, taints and taint-based eviction).
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let state = Arc::new(State {
        ctx: ctx.clone(),
        nodes: ctx.informers.store(),
        leases: ctx.informers.store(),
        pods: ctx.informers.store(),
        recorder: Recorder::new(ctx.client.clone(), "node-controller"),
        pod_recorder: Recorder::new(ctx.client.clone(), "taint-eviction-controller"),
    });
    let synced = futures::future::join3(
        ctx.informers.synced::<Node>(),
        ctx.informers.synced::<Lease>(),
        ctx.informers.synced::<Pod>(),
    );
    Ok(Box::pin(async move {
        synced.await;
        tracing::debug!("node lifecycle: caches synced, monitoring nodes");
        let mut limiters: HashMap<String, ZoneLimiter> = HashMap::new();
        let mut monitor = tokio::time::interval(MONITOR_PERIOD);
        let mut evict = tokio::time::interval(EVICTION_PERIOD);
        loop {
            tokio::select! {
                _ = monitor.tick() => monitor_nodes(&state, &mut limiters).await,
                _ = evict.tick() => evict_pods(&state).await,
            }
        }
    }))
}

fn node_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// One pass of upstream's `monitorNodeHealth`.
async fn monitor_nodes(state: &State, limiters: &mut HashMap<String, ZoneLimiter>) {
    tracing::trace!("node lifecycle: monitoring pass");
    let now = Timestamp::now();
    let nodes = state.nodes.state();
    let mut health: Vec<(Arc<Node>, Health)> = Vec::with_capacity(nodes.len());
    let mut zones: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for node in nodes {
        let lease = state
            .leases
            .get(&ObjectRef::new(&node.name_any()).within("kube-node-lease"));
        let h = node_health(
            &node,
            lease.as_deref(),
            now,
            state.ctx.config.node_monitor_grace_period,
        );
        tracing::trace!(node = %node.name_any(), ready = %h.ready, writes = h.conditions.len(), taints = ?node.spec.as_ref().and_then(|s| s.taints.as_ref()), "node health");
        let counts = zones.entry(zone_of(&node)).or_default();
        if h.ready == "True" {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        health.push((node, h));
    }
    let all_disrupted = !zones.is_empty()
        && zones
            .values()
            .all(|(r, n)| zone_state(*r, *n) == ZoneState::FullDisruption);
    let client = state.ctx.client.clone();
    let api: Api<Node> = Api::all(client.clone());
    for (node, h) in health {
        let name = node.name_any();
        if !h.conditions.is_empty() {
            let patch = json!({"status": {"conditions": h.conditions}});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = %name, "node stopped posting status: conditions Unknown");
                    state
                        .recorder
                        .normal(
                            &*node,
                            "NodeNotReady",
                            format!("Node {name} status is now: NodeNotReady"),
                        )
                        .await;
                    mark_pods_not_ready(state, &name, now).await;
                }
                Err(e) => tracing::debug!(node = %name, error = %e, "updating node conditions"),
            }
        }
        // The taints the Ready state calls for.
        let key = wanted_taint_key(&h.ready);
        let current = node_taints(&node);
        let wants_no_execute = key.is_some_and(|k| {
            !current
                .iter()
                .any(|t| t.key == k && t.effect == "NoExecute")
        });
        // A NoExecute taint waits its turn in its zone (and none while every zone is down).
        let mut took_token = false;
        if wants_no_execute && !all_disrupted {
            let (ready, not_ready) = zones.get(&zone_of(&node)).copied().unwrap_or_default();
            let rate = eviction_rate(zone_state(ready, not_ready), ready + not_ready);
            took_token = limiters
                .entry(zone_of(&node))
                .or_default()
                .try_take(rate, Instant::now());
        }
        let change = |taints: &[Taint]| wanted_taints(taints, key, took_token, all_disrupted, now);
        if change(&current) == current {
            continue;
        }
        if let Err(e) = write_taints(&api, &node, change).await {
            tracing::debug!(node = %name, error = %e, "updating node taints");
            if took_token {
                limiters.entry(zone_of(&node)).or_default().refund();
            }
        }
    }
}

/// Upstream's `MarkPodsNotReady`: the pods of a node that stopped reporting are not ready.
async fn mark_pods_not_ready(state: &State, node: &str, now: Timestamp) {
    for pod in state.pods.state() {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        if ready.is_none_or(|c| c.status == "False") {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(
            state.ctx.client.clone(),
            &pod.namespace().unwrap_or_default(),
        );
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": Time(now)}]}});
        if let Err(e) = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(pod = %pod.name_any(), error = %e, "marking a pod not ready");
        }
    }
}

/// Deletes the pods whose eviction time on their tainted node has come.
async fn evict_pods(state: &State) {
    let tainted: HashMap<String, Vec<Taint>> = state
        .nodes
        .state()
        .iter()
        .filter_map(|n| {
            let taints = node_taints(n);
            taints
                .iter()
                .any(|t| t.effect == "NoExecute")
                .then(|| (n.name_any(), taints))
        })
        .collect();
    if tainted.is_empty() {
        return;
    }
    let now = Timestamp::now();
    for pod in state.pods.state() {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(taints) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| tainted.get(n))
        else {
            continue;
        };
        if eviction_time(&pod, taints, now).is_none_or(|at| at > now) {
            continue;
        }
        let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &ns);
        // Upstream records why before deleting: the DisruptionTarget condition.
        let condition = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager", "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": Time(now)}]}});
        let _ = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(&condition),
            )
            .await;
        state
            .pod_recorder
            .normal(
                &*pod,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{name}"),
            )
            .await;
        let params = DeleteParams {
            preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "evicted from a tainted node"),
            Err(e) => tracing::debug!(pod = %name, error = %e, "taint eviction"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeStatus, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const GRACE: Duration = Duration::from_secs(40);

    fn node_with_ready(status: &str, heartbeat: Timestamp) -> Node {
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n".into()),
                creation_timestamp: Some(Time(heartbeat - SignedDuration::from_secs(3600))),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    last_heartbeat_time: Some(Time(heartbeat)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lease(renewed: Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_is_unknown_once_its_lease_and_status_are_older_than_the_grace_period() {
        let now = Timestamp::now();
        let old = now - SignedDuration::from_secs(120);
        let node = node_with_ready("True", old);
        // The lease is fresh: healthy, whatever the status heartbeat says.
        let fresh = node_health(
            &node,
            Some(&lease(now - SignedDuration::from_secs(10))),
            now,
            GRACE,
        );
        assert_eq!(
            fresh,
            Health {
                ready: "True".into(),
                conditions: vec![]
            }
        );
        let stale = node_health(
            &node,
            Some(&lease(now - SignedDuration::from_secs(41))),
            now,
            GRACE,
        );
        assert_eq!(stale.ready, "Unknown");
        let types: Vec<&str> = stale.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, CONDITIONS);
        assert_eq!(
            stale.conditions[0].reason.as_deref(),
            Some("NodeStatusUnknown")
        );
        assert_eq!(stale.conditions[0].last_heartbeat_time, Some(Time(old)));
        assert_eq!(
            stale.conditions[1].reason.as_deref(),
            Some("NodeStatusNeverUpdated")
        );
        // Once Unknown, nothing more to write.
        let mut unknown = node.clone();
        unknown.status = Some(NodeStatus {
            conditions: Some(stale.conditions.clone()),
            ..Default::default()
        });
        assert!(node_health(&unknown, None, now, GRACE)
            .conditions
            .is_empty());
    }

    #[test]
    fn a_node_that_never_posted_gets_the_startup_grace() {
        let now = Timestamp::now();
        let mut node = Node::default();
        node.metadata.creation_timestamp = Some(Time(now - SignedDuration::from_secs(45)));
        assert!(node_health(&node, None, now, GRACE).conditions.is_empty());
        node.metadata.creation_timestamp = Some(Time(now - SignedDuration::from_secs(61)));
        let h = node_health(&node, None, now, GRACE);
        assert_eq!(
            h.conditions[0].message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }

    #[test]
    fn zone_states_and_rates_follow_upstream() {
        assert_eq!(zone_state(3, 0), ZoneState::Normal);
        assert_eq!(zone_state(2, 1), ZoneState::Normal);
        assert_eq!(
            zone_state(2, 2),
            ZoneState::Normal,
            "fewer than 3 not ready is never a disruption"
        );
        assert_eq!(zone_state(2, 3), ZoneState::PartialDisruption);
        assert_eq!(zone_state(0, 1), ZoneState::FullDisruption);
        assert_eq!(eviction_rate(ZoneState::Normal, 3), 0.1);
        assert_eq!(eviction_rate(ZoneState::PartialDisruption, 10), 0.0);
        assert_eq!(eviction_rate(ZoneState::PartialDisruption, 100), 0.01);
        assert_eq!(eviction_rate(ZoneState::FullDisruption, 100), 0.0);
        let mut limiter = ZoneLimiter::default();
        let t0 = Instant::now();
        assert!(limiter.try_take(0.1, t0), "the first node at once");
        assert!(!limiter.try_take(0.1, t0 + Duration::from_secs(5)));
        assert!(limiter.try_take(0.1, t0 + Duration::from_secs(11)));
        assert!(!ZoneLimiter::default().try_take(0.0, t0));
    }

    fn pod_tolerating(tolerations: Vec<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: Some(tolerations),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn eviction_waits_for_the_shortest_matching_toleration() {
        let now = Timestamp::now();
        let added = now - SignedDuration::from_secs(10);
        let taints = vec![Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(added)),
            value: None,
        }];
        assert_eq!(
            eviction_time(&pod_tolerating(vec![]), &taints, now),
            Some(now),
            "not tolerated: at once"
        );
        let for_300 = Toleration {
            key: Some(UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            value: None,
        };
        assert_eq!(
            eviction_time(&pod_tolerating(vec![for_300.clone()]), &taints, now),
            Some(added + SignedDuration::from_secs(300))
        );
        let forever = Toleration {
            toleration_seconds: None,
            ..for_300.clone()
        };
        assert_eq!(
            eviction_time(&pod_tolerating(vec![forever]), &taints, now),
            None
        );
        let everything = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(
            eviction_time(&pod_tolerating(vec![everything]), &taints, now),
            None
        );
        let other_effect = Toleration {
            effect: Some("NoSchedule".into()),
            ..for_300
        };
        assert_eq!(
            eviction_time(&pod_tolerating(vec![other_effect]), &taints, now),
            Some(now)
        );
        let no_schedule_only = vec![Taint {
            effect: "NoSchedule".into(),
            ..taints[0].clone()
        }];
        assert_eq!(
            eviction_time(&pod_tolerating(vec![]), &no_schedule_only, now),
            None
        );
    }

    #[test]
    fn taint_changes_keep_other_taints_and_follow_the_limiter() {
        let now = Timestamp::now();
        let other = Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            value: Some("gpu".into()),
            time_added: None,
        };
        let not_ready = Taint {
            key: NOT_READY.into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        let keys = |ts: &[Taint]| {
            ts.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect::<Vec<_>>()
        };
        let held_back = wanted_taints(
            &[other.clone(), not_ready.clone()],
            Some(UNREACHABLE),
            false,
            false,
            now,
        );
        assert_eq!(
            keys(&held_back),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule"
            ]
        );
        let tainted = wanted_taints(&held_back, Some(UNREACHABLE), true, false, now);
        assert_eq!(
            tainted
                .last()
                .map(|t| (t.effect.as_str(), t.time_added.clone())),
            Some(("NoExecute", Some(Time(now))))
        );
        let lifted = wanted_taints(&tainted, Some(UNREACHABLE), true, true, now);
        assert_eq!(lifted, held_back, "every zone down lifts NoExecute");
        let healthy = wanted_taints(&tainted, None, false, false, now);
        assert_eq!(healthy, vec![other]);
    }

    #[test]
    fn taints_follow_the_ready_state() {
        assert_eq!(wanted_taint_key("Unknown"), Some(UNREACHABLE));
        assert_eq!(wanted_taint_key("False"), Some(NOT_READY));
        assert_eq!(wanted_taint_key("True"), None);
    }
}
