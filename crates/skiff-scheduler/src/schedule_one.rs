//! One scheduling cycle, pure: PreFilter, Filter over the nodes (the pod's nominated node
//! first; then from a rotating start, stopping once `percentageOfNodesToScore` of them
//! fit; in parallel over the rest when many nodes must be checked), PreScore and Score over
//! the feasible nodes (each plugin's scores normalized, weighted, summed), and the highest
//! total picked with ties broken at random. Nominated pods of at least the pod's priority
//! are counted on their nodes, as upstream's `RunFilterPluginsWithNominatedPods` does.
//!
//! Upstream counterpart: `pkg/scheduler/schedule_one.go` (`schedulePod`,
//! `findNodesThatFitPod`, `findNodesThatPassFilters`, `numFeasibleNodesToFind`,
//! `prioritizeNodes`, `selectHost`) and the filter/score runners of
//! `pkg/scheduler/framework/runtime/framework.go`.
//!
//! Not here: binding, assuming and failure handling, which need the cache and the API
//! (`scheduler`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::{Rng, SeedableRng};

use crate::framework::{
    Code, CycleState, Diagnosis, Filter, FitError, Framework, Snapshot, Status,
};
use crate::types::{NodeInfo, PodInfo};

/// Fewer nodes than this are all checked.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;
/// Nodes checked on the calling thread before the rest is split over threads.
const SEQUENTIAL_CHUNK: usize = 1024;

/// Pods nominated to each node (by preemption), which lower-priority pods must leave room for.
pub type Nominated = HashMap<String, Vec<Arc<PodInfo>>>;

/// How many feasible nodes are enough (upstream's `numFeasibleNodesToFind`): all below 100
/// nodes; else `percentage` (0: adaptive, 50% minus 1% per 125 nodes, at least 5%) of
/// them, at least 100.
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = percentage as usize;
    if pct == 0 {
        pct = 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    (num_all_nodes * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The outcome of a successful cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// What one thread's share of the filtering found: the feasible nodes, the statuses of the
/// others, and how many it looked at.
type ChunkResult = (Vec<usize>, Vec<(usize, Status)>, usize);

/// Why a cycle found no node.
#[derive(Debug)]
pub enum ScheduleError {
    /// The cluster has no nodes (upstream's `ErrNoNodesAvailable`).
    NoNodes,
    /// No node fits; the cycle state is kept for preemption.
    Fit(FitError, CycleState),
    /// A plugin failed.
    Internal(String),
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoNodes => f.write_str("no nodes available to schedule pods"),
            Self::Fit(e, _) => e.fmt(f),
            Self::Internal(e) => f.write_str(e),
        }
    }
}

/// The scheduling algorithm with its per-scheduler state (the rotating start node, the
/// random tie-breaker).
pub struct Algorithm {
    pub framework: Framework,
    /// 0: adaptive.
    pub percentage_of_nodes_to_score: u32,
    /// Threads that filter when many nodes must be checked.
    pub parallelism: usize,
    next_start_node_index: usize,
    rng: rand::rngs::StdRng,
}

impl Algorithm {
    pub fn new(framework: Framework, parallelism: usize) -> Self {
        Self {
            framework,
            percentage_of_nodes_to_score: 0,
            parallelism: parallelism.max(1),
            next_start_node_index: 0,
            rng: rand::rngs::StdRng::seed_from_u64(rand::random()),
        }
    }

    /// The same with a fixed seed (tests and benches).
    pub fn seeded(framework: Framework, parallelism: usize, seed: u64) -> Self {
        let mut a = Self::new(framework, parallelism);
        a.rng = rand::rngs::StdRng::seed_from_u64(seed);
        a
    }

    pub fn rng(&mut self) -> &mut rand::rngs::StdRng {
        &mut self.rng
    }

    /// Runs one cycle for `pod` (upstream's `schedulePod`).
    pub fn schedule_pod(
        &mut self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nominated: &Nominated,
    ) -> Result<ScheduleResult, ScheduleError> {
        if snapshot.nodes.is_empty() {
            return Err(ScheduleError::NoNodes);
        }
        let mut state = CycleState::default();
        let (feasible, diagnosis, evaluated) =
            self.find_nodes_that_fit(&mut state, pod, snapshot, nominated)?;
        if feasible.is_empty() {
            return Err(ScheduleError::Fit(
                FitError {
                    num_all_nodes: snapshot.nodes.len(),
                    diagnosis,
                },
                state,
            ));
        }
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: snapshot.nodes[feasible[0]].name.clone(),
                evaluated_nodes: evaluated,
                feasible_nodes: 1,
            });
        }
        let nodes: Vec<&NodeInfo> = feasible.iter().map(|i| &snapshot.nodes[*i]).collect();
        let totals = self.prioritize(&mut state, pod, &nodes, snapshot);
        let best = select_host(&totals, &mut self.rng);
        Ok(ScheduleResult {
            node: nodes[best].name.clone(),
            evaluated_nodes: evaluated,
            feasible_nodes: nodes.len(),
        })
    }

    /// PreFilter, then Filter until enough nodes fit: (feasible node indices, diagnosis,
    /// nodes evaluated).
    fn find_nodes_that_fit(
        &mut self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nominated: &Nominated,
    ) -> Result<(Vec<usize>, Diagnosis, usize), ScheduleError> {
        let mut diagnosis = Diagnosis::default();
        let s = self.framework.run_pre_filters(state, pod, snapshot);
        if !s.is_success() {
            if s.code == Code::Error {
                return Err(ScheduleError::Internal(format!(
                    "running PreFilter plugin {}: {}",
                    s.plugin,
                    s.message()
                )));
            }
            diagnosis.pre_filter_msg = s.message();
            diagnosis.unschedulable_plugins.insert(s.plugin);
            diagnosis.absent_status = Some(s);
            return Ok((Vec::new(), diagnosis, 0));
        }
        let filters: Vec<&dyn Filter> = self
            .framework
            .filters
            .iter()
            .filter(|f| !state.skip_filter.contains(f.name()))
            .map(|f| f.as_ref())
            .collect();
        let state: &CycleState = state;
        let n = snapshot.nodes.len();
        // The nominated node first (upstream's `evaluateNominatedNode`).
        let nominated_node = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(name) = nominated_node {
            if let Some(i) = snapshot.nodes.iter().position(|n| n.name == name) {
                let s = filter_with_nominated(&filters, state, pod, &snapshot.nodes[i], nominated);
                if s.is_success() {
                    return Ok((vec![i], diagnosis, 1));
                }
            }
        }
        let to_find = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, n);
        let start = self.next_start_node_index % n;
        let check = |k: usize| {
            let i = (start + k) % n;
            (
                i,
                filter_with_nominated(&filters, state, pod, &snapshot.nodes[i], nominated),
            )
        };
        let mut feasible = Vec::with_capacity(to_find.min(n));
        let mut statuses: Vec<(usize, Status)> = Vec::new();
        let mut processed = 0;
        let first = n.min(SEQUENTIAL_CHUNK);
        while processed < first && feasible.len() < to_find {
            let (i, s) = check(processed);
            processed += 1;
            if s.is_success() {
                feasible.push(i);
            } else {
                statuses.push((i, s));
            }
        }
        if feasible.len() < to_find && processed < n {
            let threads = self.parallelism.min(n - processed).max(1);
            let found = AtomicUsize::new(feasible.len());
            let rest = n - processed;
            let per = rest.div_ceil(threads);
            let base = processed;
            let parts: Vec<ChunkResult> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let check = &check;
                        let found = &found;
                        scope.spawn(move || {
                            let (lo, hi) = (base + t * per, (base + (t + 1) * per).min(n));
                            let mut ok = Vec::new();
                            let mut bad = Vec::new();
                            let mut done = 0;
                            for k in lo..hi {
                                if found.load(Ordering::Relaxed) >= to_find {
                                    break;
                                }
                                let (i, s) = check(k);
                                done += 1;
                                if s.is_success() {
                                    ok.push(i);
                                    found.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    bad.push((i, s));
                                }
                            }
                            (ok, bad, done)
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            for (ok, bad, done) in parts {
                feasible.extend(ok);
                statuses.extend(bad);
                processed += done;
            }
            feasible.truncate(to_find);
        }
        self.next_start_node_index = (start + processed) % n;
        if let Some((_, s)) = statuses.iter().find(|(_, s)| s.code == Code::Error) {
            return Err(ScheduleError::Internal(format!(
                "running Filter plugin {}: {}",
                s.plugin,
                s.message()
            )));
        }
        if feasible.is_empty() {
            for (_, s) in &statuses {
                diagnosis.unschedulable_plugins.insert(s.plugin);
            }
            diagnosis.node_to_status = statuses
                .into_iter()
                .map(|(i, s)| (snapshot.nodes[i].name.clone(), s))
                .collect();
        }
        Ok((feasible, diagnosis, processed))
    }

    /// PreScore and Score: each node's weighted total (upstream's `prioritizeNodes`).
    pub fn prioritize(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Vec<i64> {
        for p in &self.framework.pre_scores {
            let s = p.pre_score(state, pod, nodes, snapshot);
            if s.code == Code::Skip {
                state.skip_score.insert(p.name());
            }
        }
        let mut totals = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for (plugin, weight) in &self.framework.scores {
            if state.skip_score.contains(plugin.name()) {
                continue;
            }
            for (slot, node) in scores.iter_mut().zip(nodes) {
                *slot = plugin.score(state, pod, node, snapshot);
            }
            plugin.normalize(state, pod, nodes, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        totals
    }
}

/// Runs the filters on `node`; when pods of at least `pod`'s priority are nominated to it,
/// first with them added (they must still fit), then without (upstream's
/// `RunFilterPluginsWithNominatedPods`: pod affinity to a nominated pod must not be relied on).
pub fn filter_with_nominated(
    filters: &[&dyn Filter],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    nominated: &Nominated,
) -> Status {
    if !nominated.is_empty() {
        if let Some(list) = nominated.get(&node.name) {
            let extra: Vec<&Arc<PodInfo>> = list
                .iter()
                .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
                .collect();
            if !extra.is_empty() {
                let mut node2 = node.clone();
                let mut state2 = state.clone();
                for p in extra {
                    node2.add_pod(p.clone());
                    state2.add_pod(pod, p, &node2);
                }
                let s = run_filters(filters, &state2, pod, &node2);
                if !s.is_success() {
                    return s;
                }
            }
        }
    }
    run_filters(filters, state, pod, node)
}

fn run_filters(
    filters: &[&dyn Filter],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    for f in filters {
        let s = f.filter(state, pod, node);
        if !s.is_success() {
            return s.with_plugin(f.name());
        }
    }
    Status::success()
}

/// The index of the highest total, ties broken uniformly at random (upstream's reservoir
/// sampling in `selectHost`).
pub fn select_host(totals: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut count = 0;
    for (i, t) in totals.iter().enumerate() {
        if *t > totals[best] {
            best = i;
            count = 1;
        } else if *t == totals[best] {
            count += 1;
            if rng.random_range(0..count) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn feasible_nodes_to_find() {
        assert_eq!(num_feasible_nodes_to_find(0, 10), 10);
        assert_eq!(num_feasible_nodes_to_find(0, 99), 99);
        assert_eq!(num_feasible_nodes_to_find(0, 100), 100);
        // 50 - 1000/125 = 42%.
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        // 50 - 40 = 10%.
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        // Floor of 5%.
        assert_eq!(num_feasible_nodes_to_find(0, 10000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 6000), 300);
        assert_eq!(num_feasible_nodes_to_find(10, 500), 100);
        assert_eq!(num_feasible_nodes_to_find(100, 500), 500);
    }

    #[test]
    fn ties_are_broken_among_the_best_only() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[select_host(&[5, 9, 9, 1], &mut rng)] += 1;
        }
        assert_eq!((seen[0], seen[3]), (0, 0));
        assert!(seen[1] > 100 && seen[2] > 100, "{seen:?}");
    }

    #[test]
    fn picks_the_least_allocated_node() {
        let world = World::new(vec![
            with_pods(
                node("busy", json!({}), "4", "8Gi", json!({})),
                &[pod_requesting("x", "3", "6Gi")],
            ),
            node("idle", json!({}), "4", "8Gi", json!({})),
        ]);
        let mut algo = Algorithm::seeded(Framework::default_plugins(), 1, 7);
        let r = algo
            .schedule_pod(
                &pod_requesting("p", "500m", "1Gi"),
                &world.snapshot(),
                &Nominated::new(),
            )
            .unwrap();
        assert_eq!(r.node, "idle");
        assert_eq!((r.evaluated_nodes, r.feasible_nodes), (2, 2));
    }

    #[test]
    fn stops_after_enough_feasible_nodes_and_rotates() {
        let nodes: Vec<_> = (0..1000)
            .map(|i| plain_node(&format!("n{i}"), json!({})))
            .collect();
        let world = World::new(nodes);
        let mut algo = Algorithm::seeded(Framework::default_plugins(), 2, 7);
        let p = pod_requesting("p", "1", "1Gi");
        let r = algo
            .schedule_pod(&p, &world.snapshot(), &Nominated::new())
            .unwrap();
        assert_eq!((r.evaluated_nodes, r.feasible_nodes), (420, 420));
        assert_eq!(algo.next_start_node_index, 420);
        algo.schedule_pod(&p, &world.snapshot(), &Nominated::new())
            .unwrap();
        assert_eq!(algo.next_start_node_index, 840);
    }

    #[test]
    fn checks_every_node_in_parallel_when_few_fit() {
        // 3,000 nodes, only the last 10 labeled: the first chunk runs alone, the rest on
        // two threads; every node is checked, the 10 found.
        let nodes: Vec<_> = (0..3000)
            .map(|i| {
                plain_node(
                    &format!("n{i}"),
                    if i >= 2990 {
                        json!({"pool": "x"})
                    } else {
                        json!({})
                    },
                )
            })
            .collect();
        let world = World::new(nodes);
        let mut algo = Algorithm::seeded(Framework::default_plugins(), 2, 7);
        let p = pod("p", json!({"nodeSelector": {"pool": "x"}}));
        let r = algo
            .schedule_pod(&p, &world.snapshot(), &Nominated::new())
            .unwrap();
        assert_eq!((r.evaluated_nodes, r.feasible_nodes), (3000, 10));
        let q = pod("q", json!({"nodeSelector": {"pool": "none"}}));
        match algo.schedule_pod(&q, &world.snapshot(), &Nominated::new()) {
            Err(ScheduleError::Fit(e, _)) => assert_eq!(
                e.to_string(),
                "0/3000 nodes are available: 3000 node(s) didn't match Pod's node affinity/selector."
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_nodes_is_its_own_error() {
        let world = World::new(vec![]);
        let mut algo = Algorithm::seeded(Framework::default_plugins(), 1, 7);
        let e = algo
            .schedule_pod(&pod("p", json!({})), &world.snapshot(), &Nominated::new())
            .unwrap_err();
        assert_eq!(e.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn nominated_pods_of_higher_priority_keep_their_room() {
        let world = World::new(vec![node("a", json!({}), "2", "4Gi", json!({}))]);
        let big = pod(
            "big",
            json!({"priority": 100, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]}),
        );
        let mut nominated = Nominated::new();
        nominated.insert("a".into(), vec![big]);
        let mut algo = Algorithm::seeded(Framework::default_plugins(), 1, 7);
        let low = pod(
            "low",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        let e = algo
            .schedule_pod(&low, &world.snapshot(), &nominated)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "0/1 nodes are available: 1 Insufficient cpu."
        );
        // A pod of higher priority than the nominated one ignores it.
        let high = pod(
            "high",
            json!({"priority": 200, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        assert_eq!(
            algo.schedule_pod(&high, &world.snapshot(), &nominated)
                .unwrap()
                .node,
            "a"
        );
    }
}
