//! NodeResourcesFit (Filter: the pod's requests, pod count and extended resources must fit
//! in what the node has left; Score: LeastAllocated over cpu and memory, weight 1 each) and
//! NodeResourcesBalancedAllocation (Score: nodes whose cpu and memory would be used in equal
//! fractions score higher).
//! Upstream: `pkg/scheduler/framework/plugins/noderesources` (`fit.go`,
//! `least_allocated.go`, `balanced_allocation.go`, `resource_allocation.go`).
//!
//! Not here: the MostAllocated and RequestedToCapacityRatio strategies and
//! `ignoredResources`; the default configuration uses none of them.

use crate::framework::{
    CycleState, Filter, Plugin, PreFilter, PreScore, Score, Snapshot, Status, MAX_NODE_SCORE,
};
use crate::plugins::names;
use crate::resources::Resource;
use crate::types::{NodeInfo, PodInfo};

/// NodeResourcesFit with upstream's default scoring (LeastAllocated, cpu and memory weight 1).
#[derive(Default)]
pub struct NodeResourcesFit;

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        names::NODE_RESOURCES_FIT
    }
}

impl PreFilter for NodeResourcesFit {
    /// The requests are computed once per pod in [`PodInfo`]; nothing to add per cycle.
    fn pre_filter(&self, _: &mut CycleState, _: &PodInfo, _: &Snapshot) -> Status {
        Status::success()
    }
}

/// What does not fit on `node` for `request` (upstream's `fitsRequest`); empty when it fits.
pub fn insufficient_resources(request: &Resource, node: &NodeInfo) -> Vec<String> {
    let mut out = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pod_number {
        out.push("Too many pods".to_owned());
    }
    if request.is_zero() {
        return out;
    }
    let (a, r) = (&node.allocatable, &node.requested);
    if request.milli_cpu > 0 && request.milli_cpu > a.milli_cpu - r.milli_cpu {
        out.push("Insufficient cpu".to_owned());
    }
    if request.memory > 0 && request.memory > a.memory - r.memory {
        out.push("Insufficient memory".to_owned());
    }
    if request.ephemeral_storage > 0
        && request.ephemeral_storage > a.ephemeral_storage - r.ephemeral_storage
    {
        out.push("Insufficient ephemeral-storage".to_owned());
    }
    for (name, q) in &request.scalar {
        if *q > 0 && *q > a.scalar(name) - r.scalar(name) {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

impl Filter for NodeResourcesFit {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        // The common case without allocating: everything fits.
        let req = &pod.requests;
        let (a, r) = (&node.allocatable, &node.requested);
        let fits = (node.pods.len() as i64) < a.allowed_pod_number
            && (req.milli_cpu <= 0 || req.milli_cpu <= a.milli_cpu - r.milli_cpu)
            && (req.memory <= 0 || req.memory <= a.memory - r.memory)
            && (req.ephemeral_storage <= 0
                || req.ephemeral_storage <= a.ephemeral_storage - r.ephemeral_storage)
            && req
                .scalar
                .iter()
                .all(|(n, q)| *q <= 0 || *q <= a.scalar(n) - r.scalar(n));
        if fits {
            return Status::success();
        }
        let reasons = insufficient_resources(req, node);
        Status {
            code: crate::framework::Code::Unschedulable,
            reasons: reasons.into_iter().map(Into::into).collect(),
            plugin: "",
        }
    }
}

fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl Score for NodeResourcesFit {
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let (mut sum, mut weights) = (0, 0);
        let pairs = [
            (
                node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.non_zero_requested.memory + pod.non_zero_requests.memory,
                node.allocatable.memory,
            ),
        ];
        for (req, alloc) in pairs {
            if alloc == 0 {
                continue;
            }
            sum += least_requested_score(req, alloc);
            weights += 1;
        }
        if weights == 0 {
            0
        } else {
            sum / weights
        }
    }
}

/// NodeResourcesBalancedAllocation over cpu and memory.
#[derive(Default)]
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        names::BALANCED_ALLOCATION
    }
}

impl PreScore for BalancedAllocation {
    /// A pod that requests neither cpu nor memory is not scored, so best-effort pods do not
    /// all pile onto one node (upstream issue 129138).
    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        _: &Snapshot,
    ) -> Status {
        if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl Score for BalancedAllocation {
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let pairs = [
            (
                node.requested.milli_cpu + pod.requests.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.requested.memory + pod.requests.memory,
                node.allocatable.memory,
            ),
        ];
        let mut fractions = [0f64; 2];
        let mut n = 0;
        for (req, alloc) in pairs {
            if alloc == 0 {
                continue;
            }
            fractions[n] = (req as f64 / alloc as f64).min(1.0);
            n += 1;
        }
        let std = if n == 2 {
            ((fractions[0] - fractions[1]) / 2.0).abs()
        } else {
            0.0
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn fit_table() {
        let st = CycleState::default();
        let busy = with_pods(
            node("n", json!({}), "2", "4Gi", json!({})),
            &[pod_requesting("a", "1500m", "1Gi")],
        );
        let cases: [(std::sync::Arc<PodInfo>, Code, &str); 5] = [
            (pod_requesting("fits", "500m", "3Gi"), Code::Success, ""),
            (
                pod_requesting("cpu", "501m", "1Gi"),
                Code::Unschedulable,
                "Insufficient cpu",
            ),
            (
                pod_requesting("both", "1", "4Gi"),
                Code::Unschedulable,
                "Insufficient cpu, Insufficient memory",
            ),
            (pod("none", json!({})), Code::Success, ""),
            (
                pod(
                    "gpu",
                    json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
                ),
                Code::Unschedulable,
                "Insufficient example.com/gpu",
            ),
        ];
        for (p, code, msg) in cases {
            let s = NodeResourcesFit.filter(&st, &p, &busy);
            assert_eq!((s.code, s.message().as_str()), (code, msg), "{}", p.name);
        }
    }

    #[test]
    fn pod_count_and_overhead_count() {
        let st = CycleState::default();
        let full = with_pods(
            node(
                "n",
                json!({}),
                "2",
                "4Gi",
                json!({"status": {"allocatable": {"pods": "1"}}}),
            ),
            &[pod("a", json!({}))],
        );
        let s = NodeResourcesFit.filter(&st, &pod("b", json!({})), &full);
        assert_eq!(s.message(), "Too many pods");
        let n = node("m", json!({}), "1", "4Gi", json!({}));
        let p = pod(
            "o",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "900m"}}}], "overhead": {"cpu": "200m"}}),
        );
        assert_eq!(
            NodeResourcesFit.filter(&st, &p, &n).message(),
            "Insufficient cpu"
        );
        // Extended resources the node has.
        let g = node(
            "g",
            json!({}),
            "1",
            "1Gi",
            json!({"status": {"allocatable": {"example.com/gpu": "2"}}}),
        );
        let p = pod(
            "gpu",
            json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "2"}}}]}),
        );
        assert!(NodeResourcesFit.filter(&st, &p, &g).is_success());
    }

    #[test]
    fn least_allocated_scores_as_upstream() {
        // Upstream's table: node 4000m/10000 with nothing; pod 3000m/5000 -> cpu 25, mem 50.
        let world = World::new(vec![
            node("a", json!({}), "4", "10000", json!({})),
            node("b", json!({}), "6", "10000", json!({})),
        ]);
        let snap = world.snapshot();
        let st = CycleState::default();
        let p = pod_requesting("p", "3", "5000");
        assert_eq!(
            NodeResourcesFit.score(&st, &p, &world.nodes[0], &snap),
            (25 + 50) / 2
        );
        assert_eq!(
            NodeResourcesFit.score(&st, &p, &world.nodes[1], &snap),
            (50 + 50) / 2
        );
        // A pod without requests counts as 100m / 200Mi.
        let n = node("c", json!({}), "1", "1000Mi", json!({}));
        assert_eq!(
            NodeResourcesFit.score(&st, &pod("e", json!({})), &n, &snap),
            (90 + 80) / 2
        );
    }

    #[test]
    fn balanced_allocation_scores_as_upstream() {
        let world = World::new(vec![node("a", json!({}), "4", "10000", json!({}))]);
        let snap = world.snapshot();
        let st = CycleState::default();
        // cpu 3/4 = 0.75, memory 5000/10000 = 0.5: std 0.125 -> 87.
        let p = pod_requesting("p", "3", "5000");
        assert_eq!(
            BalancedAllocation.score(&st, &p, &world.nodes[0], &snap),
            87
        );
        let mut cs = CycleState::default();
        assert_eq!(
            BalancedAllocation
                .pre_score(&mut cs, &pod("e", json!({})), &[], &snap)
                .code,
            Code::Skip
        );
        assert!(BalancedAllocation
            .pre_score(&mut cs, &p, &[], &snap)
            .is_success());
    }
}
