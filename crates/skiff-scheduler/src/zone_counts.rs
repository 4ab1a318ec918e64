//! The cache's pods counted by namespace, labels and the zone of their node
//! (`topology.kubernetes.io/zone`, `""` for a node without it), so that PodTopologySpread's
//! system default zone constraint sums the few label sets its selector takes instead of
//! visiting every node's pods each cycle. Upstream visits every node (in parallel); at 5,000
//! nodes that was nearly all of a ReplicaSet pod's cycle here. Terminating pods are not
//! counted, as the plugin does not count them.
//!
//! Not here: the hostname constraint (Score counts the pods of each scored node) and
//! constraints of the pods' own (they may exclude nodes by affinity, taints or missing keys,
//! which a count over all nodes cannot know).

use std::collections::{BTreeMap, HashMap};

use crate::types::{NodeInfo, PodInfo, LABEL_TOPOLOGY_ZONE};

/// Zone value -> how many pods.
pub type PerZone = HashMap<String, i64>;

#[derive(Clone, Debug, Default)]
pub struct ZoneCounts {
    /// Namespace -> labels -> pods per zone.
    namespaces: HashMap<String, HashMap<BTreeMap<String, String>, PerZone>>,
}

/// The zone value of a node, as the plugin reads it.
pub fn zone_of(node: &NodeInfo) -> &str {
    node.labels()
        .get(LABEL_TOPOLOGY_ZONE)
        .map_or("", String::as_str)
}

impl ZoneCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `pod` (`delta` 1) or stops counting it (-1) in `zone`.
    pub fn add(&mut self, pod: &PodInfo, zone: &str, delta: i64) {
        if pod.terminating {
            return;
        }
        // Looked up before inserting, so that the common case allocates nothing.
        if !self.namespaces.contains_key(&pod.namespace) {
            self.namespaces
                .insert(pod.namespace.clone(), HashMap::new());
        }
        let Some(sets) = self.namespaces.get_mut(&pod.namespace) else {
            return;
        };
        let labels = pod.labels();
        if !sets.contains_key(labels) {
            sets.insert(labels.clone(), PerZone::new());
        }
        let Some(per_zone) = sets.get_mut(labels) else {
            return;
        };
        if !per_zone.contains_key(zone) {
            per_zone.insert(zone.to_owned(), 0);
        }
        let Some(n) = per_zone.get_mut(zone) else {
            return;
        };
        *n += delta;
        if *n != 0 {
            return;
        }
        per_zone.remove(zone);
        if per_zone.is_empty() {
            sets.remove(labels);
            if sets.is_empty() {
                self.namespaces.remove(&pod.namespace);
            }
        }
    }

    /// The distinct label sets of `namespace` with their pods per zone.
    pub fn label_sets<'a>(
        &'a self,
        namespace: &str,
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, &'a PerZone)> {
        self.namespaces.get(namespace).into_iter().flatten()
    }

    /// How many distinct label sets `namespace` has.
    pub fn label_set_count(&self, namespace: &str) -> usize {
        self.namespaces.get(namespace).map_or(0, HashMap::len)
    }

    /// The same counts computed from `nodes` (for tests and checks).
    pub fn of_nodes(nodes: &[NodeInfo]) -> Self {
        let mut c = Self::new();
        for n in nodes {
            for p in &n.pods {
                c.add(p, zone_of(n), 1);
            }
        }
        c
    }

    /// Whether two counts agree (for tests: the cache's against [`ZoneCounts::of_nodes`]).
    pub fn same_as(&self, other: &ZoneCounts) -> bool {
        self.namespaces == other.namespaces
    }
}
