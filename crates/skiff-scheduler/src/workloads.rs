//! What the scheduler keeps of Services, ReplicationControllers, ReplicaSets and
//! StatefulSets: their selectors, by namespace and name, and nothing else (upstream's
//! PodTopologySpread reads the whole objects through shared listers; skiff's cache holds
//! every pod already, so these four kinds are reduced to what the selector needs). From them
//! [`Workloads::default_selector`] (upstream's `helper.DefaultSelector` in
//! `pkg/scheduler/framework/plugins/helper/spread.go`) selects the siblings of a pod, for
//! the system default spread constraints.
//!
//! Not here: the watches that fill it (`scheduler`), and other controllers (a Job's or a
//! DaemonSet's pods get no default selector from their owner, as upstream).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ReplicationController, Service};

use crate::types::{PodInfo, Selector};

/// The four kinds whose selectors make a pod's default selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Service,
    ReplicationController,
    ReplicaSet,
    StatefulSet,
}

/// One object of those kinds, reduced to its selector.
#[derive(Clone, Debug)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub selector: WorkloadSelector,
}

/// A selector as its kind has it.
#[derive(Clone, Debug)]
pub enum WorkloadSelector {
    /// A Service's or a ReplicationController's `spec.selector` (a label map; `None`: the
    /// field is absent, which selects nothing).
    Set(Option<BTreeMap<String, String>>),
    /// A ReplicaSet's or StatefulSet's `spec.selector`, parsed (one that does not parse
    /// selects nothing, so adds nothing, as upstream ignores its parse error).
    Labels(Selector),
}

impl Workload {
    fn new(kind: Kind, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        Self {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            selector: WorkloadSelector::Set(None),
        }
    }

    pub fn of_service(s: &Service) -> Self {
        let mut w = Self::new(Kind::Service, &s.metadata);
        w.selector = WorkloadSelector::Set(s.spec.as_ref().and_then(|s| s.selector.clone()));
        w
    }

    pub fn of_replication_controller(rc: &ReplicationController) -> Self {
        let mut w = Self::new(Kind::ReplicationController, &rc.metadata);
        w.selector = WorkloadSelector::Set(rc.spec.as_ref().and_then(|s| s.selector.clone()));
        w
    }

    pub fn of_replica_set(rs: &ReplicaSet) -> Self {
        let mut w = Self::new(Kind::ReplicaSet, &rs.metadata);
        let sel = rs.spec.as_ref().map(|s| &s.selector);
        w.selector = WorkloadSelector::Labels(
            Selector::from_k8s(sel).unwrap_or_else(|_| Selector::nothing()),
        );
        w
    }

    pub fn of_stateful_set(ss: &StatefulSet) -> Self {
        let mut w = Self::new(Kind::StatefulSet, &ss.metadata);
        let sel = ss.spec.as_ref().map(|s| &s.selector);
        w.selector = WorkloadSelector::Labels(
            Selector::from_k8s(sel).unwrap_or_else(|_| Selector::nothing()),
        );
        w
    }
}

/// One namespace's selectors by kind and name.
#[derive(Clone, Debug, Default)]
struct Namespace {
    /// Services with a selector (one without selects no pod, so it is not kept).
    services: BTreeMap<String, BTreeMap<String, String>>,
    replication_controllers: HashMap<String, BTreeMap<String, String>>,
    replica_sets: HashMap<String, Selector>,
    stateful_sets: HashMap<String, Selector>,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.replication_controllers.is_empty()
            && self.replica_sets.is_empty()
            && self.stateful_sets.is_empty()
    }

    fn remove(&mut self, kind: Kind, name: &str) {
        match kind {
            Kind::Service => {
                self.services.remove(name);
            }
            Kind::ReplicationController => {
                self.replication_controllers.remove(name);
            }
            Kind::ReplicaSet => {
                self.replica_sets.remove(name);
            }
            Kind::StatefulSet => {
                self.stateful_sets.remove(name);
            }
        }
    }

    fn names(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::ReplicationController => self.replication_controllers.keys().cloned().collect(),
            Kind::ReplicaSet => self.replica_sets.keys().cloned().collect(),
            Kind::StatefulSet => self.stateful_sets.keys().cloned().collect(),
        }
    }
}

/// The selectors of every Service, ReplicationController, ReplicaSet and StatefulSet.
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    namespaces: HashMap<String, Namespace>,
}

impl Workloads {
    pub fn new() -> Self {
        Self::default()
    }

    /// An object added or changed.
    pub fn upsert(&mut self, w: Workload) {
        let ns = self.namespaces.entry(w.namespace.clone()).or_default();
        match (w.kind, w.selector) {
            (Kind::Service, WorkloadSelector::Set(Some(sel))) if !sel.is_empty() => {
                ns.services.insert(w.name, sel);
            }
            // Selects nothing: as good as absent.
            (Kind::Service, _) => ns.remove(Kind::Service, &w.name),
            (Kind::ReplicationController, WorkloadSelector::Set(sel)) => {
                ns.replication_controllers
                    .insert(w.name, sel.unwrap_or_default());
            }
            (Kind::ReplicaSet, WorkloadSelector::Labels(sel)) => {
                ns.replica_sets.insert(w.name, sel);
            }
            (Kind::StatefulSet, WorkloadSelector::Labels(sel)) => {
                ns.stateful_sets.insert(w.name, sel);
            }
            // A kind with the other kind's selector: not built by the `of_*` constructors.
            (kind, _) => ns.remove(kind, &w.name),
        }
        if ns.is_empty() {
            self.namespaces.remove(&w.namespace);
        }
    }

    /// An object deleted.
    pub fn remove(&mut self, kind: Kind, namespace: &str, name: &str) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.remove(kind, name);
            if ns.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }

    /// Every `(namespace, name)` of `kind` (for relists).
    pub fn keys(&self, kind: Kind) -> Vec<(String, String)> {
        self.namespaces
            .iter()
            .flat_map(|(ns, n)| n.names(kind).into_iter().map(|name| (ns.clone(), name)))
            .collect()
    }

    /// The selector of the pods that belong with `pod` (upstream's `DefaultSelector`): the
    /// union of the selectors of the Services in its namespace that select it, and of its
    /// controller's selector when that is a ReplicationController, ReplicaSet or
    /// StatefulSet the scheduler knows (found by name in the pod's namespace, as upstream's
    /// listers find it). Empty (selects everything) when nothing selects the pod.
    pub fn default_selector(&self, pod: &PodInfo) -> Selector {
        let Some(ns) = self.namespaces.get(&pod.namespace) else {
            return Selector::everything();
        };
        let labels = pod.labels();
        // The selectors all match the pod, so no two disagree about a key.
        let mut set: BTreeMap<&str, &str> = BTreeMap::new();
        for sel in ns.services.values() {
            if sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                set.extend(sel.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
        }
        let owner = pod
            .pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        let mut extra = None;
        if let Some(owner) = owner {
            match (owner.api_version.as_str(), owner.kind.as_str()) {
                ("v1", "ReplicationController") => {
                    if let Some(sel) = ns.replication_controllers.get(&owner.name) {
                        set.extend(sel.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    }
                }
                ("apps/v1", "ReplicaSet") => extra = ns.replica_sets.get(&owner.name),
                ("apps/v1", "StatefulSet") => extra = ns.stateful_sets.get(&owner.name),
                // Not owned by a supported controller.
                _ => {}
            }
        }
        let mut selector = Selector::from_set(set);
        if let Some(extra) = extra {
            selector.add_all(extra);
        }
        selector
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod_with;
    use serde_json::json;

    fn owned_by(kind: &str, name: &str, labels: serde_json::Value) -> std::sync::Arc<PodInfo> {
        let api_version = if kind == "ReplicationController" {
            "v1"
        } else {
            "apps/v1"
        };
        pod_with(
            "p",
            json!({"labels": labels, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u0"},
                {"apiVersion": api_version, "kind": kind, "name": name, "uid": "u1", "controller": true}]}),
            json!({}),
        )
    }

    fn workloads(items: serde_json::Value) -> Workloads {
        let mut w = Workloads::new();
        for item in items.as_array().into_iter().flatten() {
            let wl = match item["kind"].as_str() {
                Some("Service") => {
                    Workload::of_service(&serde_json::from_value(item.clone()).unwrap())
                }
                Some("ReplicationController") => Workload::of_replication_controller(
                    &serde_json::from_value(item.clone()).unwrap(),
                ),
                Some("ReplicaSet") => {
                    Workload::of_replica_set(&serde_json::from_value(item.clone()).unwrap())
                }
                _ => Workload::of_stateful_set(&serde_json::from_value(item.clone()).unwrap()),
            };
            w.upsert(wl);
        }
        w
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_default_selector_is_the_union_of_services_and_the_controller() {
        let w = workloads(json!([
            {"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
             "spec": {"selector": {"app": "web"}}},
            {"kind": "Service", "metadata": {"name": "tier", "namespace": "default"},
             "spec": {"selector": {"tier": "front"}}},
            {"kind": "Service", "metadata": {"name": "other", "namespace": "default"},
             "spec": {"selector": {"app": "db"}}},
            {"kind": "Service", "metadata": {"name": "elsewhere", "namespace": "kube-system"},
             "spec": {"selector": {"app": "web"}}},
            {"kind": "Service", "metadata": {"name": "headless", "namespace": "default"}, "spec": {}},
            {"kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"app": "web", "hash": "1"},
                 "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}}},
            {"kind": "ReplicationController", "metadata": {"name": "rc", "namespace": "default"},
             "spec": {"selector": {"rc": "yes"}}},
            {"kind": "StatefulSet", "metadata": {"name": "ss", "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"ss": "yes"}}}},
        ]));
        let pod_labels =
            json!({"app": "web", "tier": "front", "hash": "1", "rc": "yes", "ss": "yes"});
        // Services web and tier, plus the ReplicaSet's requirements.
        let s = w.default_selector(&owned_by("ReplicaSet", "web-1", pod_labels.clone()));
        assert!(!s.is_empty());
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("hash", "1")])));
        assert!(
            !s.matches(&labels(&[("app", "web"), ("tier", "front")])),
            "needs hash"
        );
        assert!(
            !s.matches(&labels(&[("app", "web"), ("hash", "1")])),
            "needs tier"
        );
        assert!(
            !s.matches(&labels(&[
                ("app", "web"),
                ("tier", "front"),
                ("hash", "1"),
                ("track", "canary")
            ])),
            "the RS's expressions count"
        );
        // A ReplicationController's map and a StatefulSet's selector.
        let s = w.default_selector(&owned_by("ReplicationController", "rc", pod_labels.clone()));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("rc", "yes")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        let s = w.default_selector(&owned_by("StatefulSet", "ss", pod_labels.clone()));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("ss", "yes")])));
        // An owner the scheduler does not know, or of another kind: the Services alone.
        let s = w.default_selector(&owned_by("ReplicaSet", "gone", pod_labels.clone()));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        let s = w.default_selector(&owned_by("DaemonSet", "web-1", pod_labels.clone()));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        // Nothing selects it: empty, so no default constraint.
        let lone = owned_by("DaemonSet", "d", json!({"app": "lone"}));
        assert!(w.default_selector(&lone).is_empty());
        let elsewhere = pod_with(
            "p",
            json!({"namespace": "nowhere", "labels": {"app": "web"}}),
            json!({}),
        );
        assert!(w.default_selector(&elsewhere).is_empty());
    }

    #[test]
    fn deletes_and_relists_forget_selectors() {
        let mut w = workloads(json!([
            {"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
             "spec": {"selector": {"app": "web"}}},
            {"kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": "default"},
             "spec": {"selector": {"matchLabels": {"app": "web"}}}},
        ]));
        let p = owned_by("ReplicaSet", "rs", json!({"app": "web"}));
        assert!(!w.default_selector(&p).is_empty());
        assert_eq!(
            w.keys(Kind::ReplicaSet),
            [("default".to_string(), "rs".to_string())]
        );
        w.remove(Kind::Service, "default", "web");
        assert!(
            !w.default_selector(&p).is_empty(),
            "the ReplicaSet still selects it"
        );
        w.remove(Kind::ReplicaSet, "default", "rs");
        assert!(w.default_selector(&p).is_empty());
        assert!(w.namespaces.is_empty(), "an emptied namespace is dropped");
        // A Service updated to select nothing is forgotten.
        let mut w = workloads(
            json!([{"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
             "spec": {"selector": {"app": "web"}}}]),
        );
        w.upsert(Workload::of_service(
            &serde_json::from_value(
                json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {}}),
            )
            .unwrap(),
        ));
        assert!(w.keys(Kind::Service).is_empty());
    }
}
