//! Builders for plugin tests: pods and nodes from JSON, snapshots over them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::framework::{CycleState, Framework, Snapshot};
use crate::types::{NodeInfo, PodInfo};

/// A pod `name` in `default` with `spec` (containers default to one named `c`).
pub fn pod(name: &str, spec: Value) -> Arc<PodInfo> {
    pod_with(name, json!({}), spec)
}

/// A pod with `labels`.
pub fn pod_labeled(name: &str, labels: Value, spec: Value) -> Arc<PodInfo> {
    pod_with(name, json!({"labels": labels}), spec)
}

/// A pod with extra `metadata` fields.
pub fn pod_with(name: &str, metadata: Value, mut spec: Value) -> Arc<PodInfo> {
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c"}]);
    }
    let mut meta = json!({"name": name, "namespace": "default", "uid": format!("uid-{name}")});
    if let (Some(m), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
        for (k, v) in extra {
            m.insert(k.clone(), v.clone());
        }
    }
    let pod: Pod = serde_json::from_value(json!({"metadata": meta, "spec": spec})).expect("pod");
    Arc::new(PodInfo::new(Arc::new(pod)))
}

/// A pod requesting `cpu` and `memory`.
pub fn pod_requesting(name: &str, cpu: &str, memory: &str) -> Arc<PodInfo> {
    pod(
        name,
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}),
    )
}

/// A node `name` with `labels` and allocatable cpu/memory/pods, plus `extra` merged into
/// the object (spec, status fields).
pub fn node(name: &str, labels: Value, cpu: &str, memory: &str, extra: Value) -> NodeInfo {
    let mut labels = labels;
    if labels.get("kubernetes.io/hostname").is_none() {
        labels["kubernetes.io/hostname"] = json!(name);
    }
    let mut obj = json!({
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}
    });
    merge(&mut obj, extra);
    let node: Node = serde_json::from_value(obj).expect("node");
    NodeInfo::new(Arc::new(node))
}

/// A node with only a name and labels (32 cpus, 128Gi).
pub fn plain_node(name: &str, labels: Value) -> NodeInfo {
    node(name, labels, "32", "128Gi", json!({}))
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The pieces a [`Snapshot`] borrows.
pub struct World {
    pub nodes: Vec<NodeInfo>,
    pub images: HashMap<String, usize>,
    pub namespaces: Arc<HashMap<String, BTreeMap<String, String>>>,
    pub workloads: crate::workloads::Workloads,
    pub zone_counts: crate::zone_counts::ZoneCounts,
}

impl World {
    pub fn new(nodes: Vec<NodeInfo>) -> Self {
        let mut images = HashMap::new();
        for n in &nodes {
            for name in n.images.keys() {
                *images.entry(name.clone()).or_insert(0) += 1;
            }
        }
        let namespaces = Arc::new(
            [(
                "default".to_string(),
                BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    "default".to_string(),
                )]),
            )]
            .into_iter()
            .collect(),
        );
        Self {
            images,
            namespaces,
            workloads: crate::workloads::Workloads::new(),
            zone_counts: crate::zone_counts::ZoneCounts::of_nodes(&nodes),
            nodes,
        }
    }

    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            nodes: &self.nodes,
            image_nodes: &self.images,
            namespaces: &self.namespaces,
            workloads: &self.workloads,
            zone_counts: &self.zone_counts,
            nodes_with_affinity_pods: self
                .nodes
                .iter()
                .filter(|n| n.pods_with_affinity > 0)
                .count(),
            nodes_with_required_anti_affinity_pods: self
                .nodes
                .iter()
                .filter(|n| n.pods_with_required_anti_affinity > 0)
                .count(),
        }
    }

    /// Runs PreFilter and Filter of the default plugins on every node: each node's status.
    #[allow(dead_code)] // for the plugins' tests to come (the queue's, preemption's)
    pub fn filter(&self, pod: &PodInfo) -> Vec<crate::framework::Status> {
        let fwk = Framework::default_plugins();
        let snap = self.snapshot();
        let mut state = CycleState::default();
        let s = fwk.run_pre_filters(&mut state, pod, &snap);
        if !s.is_success() {
            return self.nodes.iter().map(|_| s.clone()).collect();
        }
        self.nodes
            .iter()
            .map(|n| fwk.run_filters(&state, pod, n))
            .collect()
    }
}

/// Places `pod` on `node` (as the cache does for a bound pod).
pub fn with_pods(mut node: NodeInfo, pods: &[Arc<PodInfo>]) -> NodeInfo {
    for p in pods {
        node.add_pod(p.clone());
    }
    node
}
