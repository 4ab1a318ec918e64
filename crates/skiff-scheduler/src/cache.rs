//! The scheduler's cache (upstream's `pkg/scheduler/backend/cache`): every node with the
//! pods bound or assumed on it, kept current from watches. A pod is *assumed* on its node
//! the moment the cycle picks it, before the binding is written, so the next cycles see
//! its resources taken; the watch's bound pod later confirms it, a failed binding forgets
//! it. Pods bound to a node the cache does not know yet are kept aside until it appears.
//!
//! It also keeps the selectors of Services, ReplicationControllers, ReplicaSets and
//! StatefulSets ([`Workloads`]), which PodTopologySpread's system defaults read.
//!
//! The cycle borrows the cache as its [`Snapshot`]: the scheduling loop owns the cache and
//! applies watch events between cycles, so nothing is copied per cycle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::framework::Snapshot;
use crate::types::{NodeInfo, PodInfo};
use crate::workloads::{Kind, Workload, Workloads};
use crate::zone_counts::{zone_of, ZoneCounts};

/// Where the cache has a pod.
#[derive(Clone, Debug)]
struct Placed {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, Placed>,
    /// Pods bound to nodes not in the cache, by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    image_nodes: HashMap<String, usize>,
    namespaces: Arc<HashMap<String, BTreeMap<String, String>>>,
    workloads: Workloads,
    /// The pods on `nodes` by namespace, labels and zone.
    zone_counts: ZoneCounts,
    nodes_with_affinity_pods: usize,
    nodes_with_required_anti_affinity_pods: usize,
}

/// What changed about a node, for the queue's decision to move parked pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeChange {
    Added,
    /// Something the filters read (labels, taints, unschedulable, allocatable, images).
    Relevant,
    /// Only what no filter reads (heartbeats, conditions, addresses).
    Irrelevant,
}

fn filter_view(n: &NodeInfo) -> impl PartialEq + '_ {
    (
        n.labels(),
        &n.taints,
        n.unschedulable,
        &n.allocatable,
        &n.images,
    )
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            nodes: &self.nodes,
            image_nodes: &self.image_nodes,
            namespaces: &self.namespaces,
            workloads: &self.workloads,
            zone_counts: &self.zone_counts,
            nodes_with_affinity_pods: self.nodes_with_affinity_pods,
            nodes_with_required_anti_affinity_pods: self.nodes_with_required_anti_affinity_pods,
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Whether the pod is in the cache (bound or assumed), and whether only assumed.
    pub fn pod_state(&self, uid: &str) -> Option<(&str, bool)> {
        self.pods.get(uid).map(|p| (p.node.as_str(), p.assumed))
    }

    /// Runs `f` on node `i`, keeping the affinity counters right.
    fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut NodeInfo) -> R) -> R {
        let n = &mut self.nodes[i];
        let (a0, r0) = (
            n.pods_with_affinity > 0,
            n.pods_with_required_anti_affinity > 0,
        );
        let out = f(n);
        let (a1, r1) = (
            n.pods_with_affinity > 0,
            n.pods_with_required_anti_affinity > 0,
        );
        self.nodes_with_affinity_pods =
            self.nodes_with_affinity_pods + usize::from(a1) - usize::from(a0);
        self.nodes_with_required_anti_affinity_pods =
            self.nodes_with_required_anti_affinity_pods + usize::from(r1) - usize::from(r0);
        out
    }

    /// Adds `pod` to node `i` (counters and zone counts kept).
    fn node_add_pod(&mut self, i: usize, pod: Arc<PodInfo>) {
        self.zone_counts.add(&pod, zone_of(&self.nodes[i]), 1);
        self.with_node(i, |n| n.add_pod(pod));
    }

    /// Removes the pod `uid` from node `i`, if there.
    fn node_remove_pod(&mut self, i: usize, uid: &str) -> Option<Arc<PodInfo>> {
        let pod = self.with_node(i, |n| n.remove_pod(uid))?;
        self.zone_counts.add(&pod, zone_of(&self.nodes[i]), -1);
        Some(pod)
    }

    fn count_images(&mut self, images: &BTreeMap<String, i64>, add: bool) {
        for name in images.keys() {
            if add {
                *self.image_nodes.entry(name.clone()).or_default() += 1;
            } else if let Some(c) = self.image_nodes.get_mut(name) {
                *c -= 1;
                if *c == 0 {
                    self.image_nodes.remove(name);
                }
            }
        }
    }

    /// A node added or changed.
    pub fn upsert_node(&mut self, node: Arc<Node>) -> NodeChange {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            let old_images = self.nodes[i].images.clone();
            // Compared through a fresh NodeInfo of the new object.
            let fresh = NodeInfo::new(node.clone());
            let before = filter_view(&self.nodes[i]) == filter_view(&fresh);
            let old_zone = zone_of(&self.nodes[i]).to_owned();
            self.nodes[i].set_node(node);
            let new_zone = zone_of(&self.nodes[i]).to_owned();
            if old_zone != new_zone {
                for p in &self.nodes[i].pods {
                    self.zone_counts.add(p, &old_zone, -1);
                    self.zone_counts.add(p, &new_zone, 1);
                }
            }
            if old_images != self.nodes[i].images {
                self.count_images(&old_images, false);
                let new_images = self.nodes[i].images.clone();
                self.count_images(&new_images, true);
            }
            return if before {
                NodeChange::Irrelevant
            } else {
                NodeChange::Relevant
            };
        }
        let info = NodeInfo::new(node);
        let images = info.images.clone();
        self.count_images(&images, true);
        let i = self.nodes.len();
        self.nodes.push(info);
        self.index.insert(name.clone(), i);
        for pod in self.orphans.remove(&name).unwrap_or_default() {
            self.node_add_pod(i, pod);
        }
        NodeChange::Added
    }

    /// A node deleted: its pods are kept aside in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let pods: Vec<Arc<PodInfo>> = self.nodes[i].pods.clone();
        for p in &pods {
            self.node_remove_pod(i, &p.uid);
        }
        let info = self.nodes.swap_remove(i);
        self.count_images(&info.images, false);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.index.insert(moved, i);
        }
        if !pods.is_empty() {
            self.orphans.insert(name.to_owned(), pods);
        }
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str) {
        match self.index.get(node) {
            Some(&i) => self.node_add_pod(i, pod),
            None => self.orphans.entry(node.to_owned()).or_default().push(pod),
        }
    }

    fn unplace(&mut self, uid: &str, node: &str) -> Option<Arc<PodInfo>> {
        match self.index.get(node) {
            Some(&i) => self.node_remove_pod(i, uid),
            None => {
                let list = self.orphans.get_mut(node)?;
                let j = list.iter().position(|p| p.uid == uid)?;
                let pod = list.swap_remove(j);
                if list.is_empty() {
                    self.orphans.remove(node);
                }
                Some(pod)
            }
        }
    }

    /// A pod bound to `pod.node_name` (added or changed), confirming an assumed one.
    pub fn upsert_bound_pod(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod.node_name.clone().filter(|n| !n.is_empty()) else {
            return;
        };
        if let Some(old) = self.pods.get(&pod.uid).cloned() {
            self.unplace(&pod.uid, &old.node);
        }
        self.place(pod.clone(), &node);
        self.pods.insert(
            pod.uid.clone(),
            Placed {
                node,
                assumed: false,
            },
        );
    }

    /// The cycle chose `node` for `pod`: count it there before the binding is written.
    pub fn assume(&mut self, pod: &PodInfo, node: &str) {
        let mut assumed: PodInfo = pod.clone();
        assumed.node_name = Some(node.to_owned());
        if let Some(old) = self.pods.get(&pod.uid).cloned() {
            self.unplace(&pod.uid, &old.node);
        }
        self.place(Arc::new(assumed), node);
        self.pods.insert(
            pod.uid.clone(),
            Placed {
                node: node.to_owned(),
                assumed: true,
            },
        );
    }

    /// The binding of an assumed pod failed: take it back (a bound pod stays).
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            self.remove_pod(uid);
        }
    }

    /// A pod deleted, or terminal (it no longer holds anything).
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let placed = self.pods.remove(uid)?;
        self.unplace(uid, &placed.node)
    }

    pub fn upsert_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        Arc::make_mut(&mut self.namespaces).insert(name.to_owned(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        Arc::make_mut(&mut self.namespaces).remove(name);
    }

    /// Every node name (for relists).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Every pod in the cache and whether only assumed (for relists).
    pub fn pod_uids(&self) -> Vec<(String, bool)> {
        self.pods
            .iter()
            .map(|(uid, p)| (uid.clone(), p.assumed))
            .collect()
    }

    /// A Service, ReplicationController, ReplicaSet or StatefulSet added or changed.
    pub fn upsert_workload(&mut self, w: Workload) {
        self.workloads.upsert(w);
    }

    pub fn remove_workload(&mut self, kind: Kind, namespace: &str, name: &str) {
        self.workloads.remove(kind, namespace, name);
    }

    /// Every `(namespace, name)` of `kind` (for relists).
    pub fn workload_keys(&self, kind: Kind) -> Vec<(String, String)> {
        self.workloads.keys(kind)
    }

    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, pod_with};
    use serde_json::json;

    fn node_obj(name: &str, labels: serde_json::Value) -> Arc<Node> {
        node(name, labels, "4", "8Gi", json!({})).node
    }

    fn bound(name: &str, node: &str, cpu: &str) -> Arc<PodInfo> {
        pod(
            name,
            json!({"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        )
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = Cache::new();
        assert_eq!(c.upsert_node(node_obj("a", json!({}))), NodeChange::Added);
        let p = pod(
            "p",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        c.assume(&p, "a");
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 1000);
        assert_eq!(c.pod_state(&p.uid), Some(("a", true)));
        c.forget(&p.uid);
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 0);
        c.assume(&p, "a");
        c.upsert_bound_pod(bound("p", "a", "1"));
        assert_eq!(c.pod_state(&p.uid), Some(("a", false)));
        assert_eq!(c.node("a").unwrap().pods.len(), 1);
        // Forgetting a bound pod does nothing; removing it frees the node.
        c.forget(&p.uid);
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 1000);
        c.remove_pod(&p.uid);
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn pods_of_unknown_nodes_wait_for_them() {
        let mut c = Cache::new();
        c.upsert_bound_pod(bound("p", "later", "500m"));
        assert_eq!(c.node_count(), 0);
        c.upsert_node(node_obj("later", json!({})));
        assert_eq!(c.node("later").unwrap().requested.milli_cpu, 500);
        // A node removed keeps its pods aside; back, it has them again.
        c.upsert_node(node_obj("other", json!({})));
        c.remove_node("later");
        assert_eq!(c.node_count(), 1);
        assert_eq!(c.node("other").unwrap().name, "other");
        c.upsert_node(node_obj("later", json!({})));
        assert_eq!(c.node("later").unwrap().pods.len(), 1);
    }

    #[test]
    fn node_changes_are_classified_and_counters_kept() {
        let mut c = Cache::new();
        c.upsert_node(node_obj("a", json!({"zone": "x"})));
        assert_eq!(
            c.upsert_node(node_obj("a", json!({"zone": "x"}))),
            NodeChange::Irrelevant
        );
        assert_eq!(
            c.upsert_node(node_obj("a", json!({"zone": "y"}))),
            NodeChange::Relevant
        );
        let anti = pod_with(
            "anti",
            json!({"labels": {"app": "w"}}),
            json!({"nodeName": "a", "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        c.upsert_bound_pod(anti.clone());
        let s = c.snapshot();
        assert_eq!(
            (
                s.nodes_with_affinity_pods,
                s.nodes_with_required_anti_affinity_pods
            ),
            (1, 1)
        );
        c.remove_pod(&anti.uid);
        let s = c.snapshot();
        assert_eq!(
            (
                s.nodes_with_affinity_pods,
                s.nodes_with_required_anti_affinity_pods
            ),
            (0, 0)
        );
        let with_image = node(
            "b",
            json!({}),
            "4",
            "8Gi",
            json!({"status": {"images": [{"names": ["nginx:1.25"], "sizeBytes": 100}]}}),
        );
        c.upsert_node(with_image.node.clone());
        assert_eq!(c.snapshot().image_nodes.get("nginx:1.25"), Some(&1));
        c.remove_node("b");
        assert!(c.snapshot().image_nodes.is_empty());
    }

    #[test]
    fn zone_counts_follow_pods_and_nodes() {
        let check = |c: &Cache| {
            let s = c.snapshot();
            assert!(
                s.zone_counts.same_as(&ZoneCounts::of_nodes(s.nodes)),
                "{:?} against {:?}",
                s.zone_counts,
                ZoneCounts::of_nodes(s.nodes)
            );
        };
        let zone = "topology.kubernetes.io/zone";
        let mut c = Cache::new();
        c.upsert_node(node_obj("a", json!({zone: "z1"})));
        c.upsert_node(node_obj("b", json!({})));
        let web = |name: &str, node: &str| {
            pod_with(
                name,
                json!({"labels": {"app": "web"}}),
                json!({"nodeName": node}),
            )
        };
        c.upsert_bound_pod(web("w1", "a"));
        c.upsert_bound_pod(web("w2", "b"));
        c.assume(&web("w3", ""), "a");
        check(&c);
        assert_eq!(c.snapshot().zone_counts.label_set_count("default"), 1);
        c.forget("uid-w3");
        check(&c);
        // A bound pod moved, relabeled, terminating.
        c.upsert_bound_pod(web("w1", "b"));
        check(&c);
        c.upsert_bound_pod(pod_with(
            "w2",
            json!({"labels": {"app": "db"}}),
            json!({"nodeName": "b"}),
        ));
        check(&c);
        assert_eq!(c.snapshot().zone_counts.label_set_count("default"), 2);
        c.upsert_bound_pod(pod_with(
            "w2",
            json!({"labels": {"app": "db"}, "deletionTimestamp": "2026-01-01T00:00:00Z"}),
            json!({"nodeName": "b"}),
        ));
        check(&c);
        // A node's zone changes; a node goes (its pods aside) and comes back.
        c.upsert_node(node_obj("b", json!({zone: "z2"})));
        check(&c);
        c.remove_node("b");
        check(&c);
        c.upsert_bound_pod(web("w4", "b"));
        check(&c);
        c.upsert_node(node_obj("b", json!({zone: "z1"})));
        check(&c);
        for uid in ["uid-w1", "uid-w2", "uid-w4"] {
            c.remove_pod(uid);
        }
        check(&c);
        assert_eq!(c.snapshot().zone_counts.label_set_count("default"), 0);
    }
}
