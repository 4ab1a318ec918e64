//! DefaultPreemption (the PostFilter): when a pod fits nowhere, find nodes where evicting
//! lower-priority pods would make room, choose the fewest and least important victims
//! (PodDisruptionBudgets respected where possible), and pick one node by upstream's order:
//! fewest PDB violations, lowest highest victim priority, lowest priority sum, fewest
//! victims, latest start of the highest-priority victims. Pure: it returns the node and the
//! victims; deleting them and nominating the pod is the caller's (`scheduler`).
//!
//! Upstream counterparts: `pkg/scheduler/framework/preemption/preemption.go` (`Evaluator`,
//! `findCandidates`, `DryRunPreemption`, `SelectCandidate`, `pickOneNodeForPreemption`) and
//! `pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go`
//! (`SelectVictimsOnNode`, `PodEligibleToPreemptOthers`, `filterPodsWithPDBViolation`,
//! `GetOffsetAndNumCandidates`).
//!
//! Not here: asynchronous preemption's API calls (they are `scheduler`'s), and extenders.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rand::Rng;

use crate::framework::{
    Code, CycleState, Diagnosis, Filter, FitError, Framework, Snapshot, Status,
};
use crate::plugins::names;
use crate::schedule_one::{filter_with_nominated, Nominated};
use crate::types::{NodeInfo, PodInfo, Selector};

pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// Upstream's `minCandidateNodesPercentage` and `minCandidateNodesAbsolute`.
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// A PodDisruptionBudget as preemption reads it.
#[derive(Clone, Debug)]
pub struct Pdb {
    pub namespace: String,
    /// A PDB with a nil or empty selector matches nothing.
    pub selector: Selector,
    pub disruptions_allowed: i32,
    pub disrupted_pods: HashSet<String>,
}

impl Pdb {
    pub fn from_k8s(pdb: &PodDisruptionBudget) -> Self {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| Selector::from_k8s(Some(s)).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(Selector::nothing);
        let status = pdb.status.as_ref();
        Self {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            selector,
            disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
            disrupted_pods: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// The pods to evict on one node.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    /// Sorted most important first.
    pub victims: Vec<Arc<PodInfo>>,
    pub num_pdb_violations: usize,
}

/// What preemption decided.
#[derive(Debug)]
pub enum Outcome {
    /// Evict `victims` on `node`, nominate the pod there.
    Preempt(Candidate),
    /// No help: the status's message goes after the fit error (`preemption: ...`); the pod's
    /// nominated node, if any, is to be cleared when `clear_nomination`.
    NotHelpful {
        status: Status,
        clear_nomination: bool,
    },
}

/// Whether `pod` was deleted by preemption (a `DisruptionTarget` condition with reason
/// `PreemptionByScheduler`, and a deletion timestamp).
pub fn terminating_by_preemption(pod: &PodInfo) -> bool {
    pod.terminating
        && pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "DisruptionTarget"
                        && c.status == "True"
                        && c.reason.as_deref() == Some("PreemptionByScheduler")
                })
            })
}

/// Upstream's `PodEligibleToPreemptOthers`: `None` when eligible, else why not.
pub fn ineligible_reason(
    pod: &PodInfo,
    snapshot: &Snapshot,
    diagnosis: &Diagnosis,
) -> Option<&'static str> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())?;
    if diagnosis
        .status_of(nominated)
        .is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable)
    {
        return None;
    }
    let node = snapshot.nodes.iter().find(|n| n.name == nominated)?;
    if node
        .pods
        .iter()
        .any(|p| p.priority < pod.priority && terminating_by_preemption(p))
    {
        return Some("not eligible due to a terminating pod on the nominated node.");
    }
    None
}

/// Splits `pods` into those whose eviction would violate a PDB and the rest (upstream's
/// `filterPodsWithPDBViolation`), each keeping its order.
pub fn split_by_pdb_violation(
    pods: &[Arc<PodInfo>],
    pdbs: &[Pdb],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs.iter().map(|p| p.disruptions_allowed).collect();
    let (mut violating, mut ok) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violated = false;
        if !p.labels().is_empty() {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.namespace != p.namespace || !pdb.selector.matches(p.labels()) {
                    continue;
                }
                if pdb.disrupted_pods.contains(&p.name) {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(p.clone());
        } else {
            ok.push(p.clone());
        }
    }
    (violating, ok)
}

/// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod; if the pod then fits,
/// put back as many as possible, most important first, PDB-violating ones before the others.
/// `node` and `state` are this node's private copies.
pub fn select_victims_on_node(
    filters: &[&dyn Filter],
    state: &mut CycleState,
    pod: &PodInfo,
    node: &mut NodeInfo,
    pdbs: &[Pdb],
    nominated: &Nominated,
) -> Result<Candidate, Status> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    for p in &potential {
        node.remove_pod(&p.uid);
        state.remove_pod(pod, p, node);
    }
    let s = filter_with_nominated(filters, state, pod, node, nominated);
    if !s.is_success() {
        return Err(s);
    }
    potential.sort_by(|a, b| {
        if a.more_important_than(b) {
            std::cmp::Ordering::Less
        } else if b.more_important_than(a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let (violating, non_violating) = split_by_pdb_violation(&potential, pdbs);
    let mut victims = Vec::new();
    let mut num_violations = 0;
    let mut reprieve = |p: &Arc<PodInfo>, state: &mut CycleState, node: &mut NodeInfo| -> bool {
        node.add_pod(p.clone());
        state.add_pod(pod, p, node);
        let fits = filter_with_nominated(filters, state, pod, node, nominated).is_success();
        if !fits {
            node.remove_pod(&p.uid);
            state.remove_pod(pod, p, node);
            victims.push(p.clone());
        }
        fits
    };
    for p in &violating {
        if !reprieve(p, state, node) {
            num_violations += 1;
        }
    }
    for p in &non_violating {
        reprieve(p, state, node);
    }
    if !violating.is_empty() && !non_violating.is_empty() {
        victims.sort_by(|a: &Arc<PodInfo>, b| {
            if a.more_important_than(b) {
                std::cmp::Ordering::Less
            } else if b.more_important_than(a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
    }
    if victims.is_empty() {
        return Err(Status::error(format!(
            "expected at least one victim pod on node {:?}",
            node.name
        )));
    }
    Ok(Candidate {
        node: node.name.clone(),
        victims,
        num_pdb_violations: num_violations,
    })
}

/// Upstream's `pickOneNodeForPreemption`: the index of the best candidate.
pub fn pick_one_node(candidates: &[Candidate]) -> Option<usize> {
    if candidates.is_empty() {
        return None;
    }
    type ScoreFn = fn(&Candidate) -> i64;
    let funcs: [ScoreFn; 5] = [
        |c| -(c.num_pdb_violations as i64),
        |c| -i64::from(c.victims.first().map(|v| v.priority).unwrap_or(i32::MIN)),
        |c| {
            -c.victims
                .iter()
                .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
                .sum::<i64>()
        },
        |c| -(c.victims.len() as i64),
        |c| {
            // The earliest start among the highest-priority victims; later is better.
            let top = c.victims.first().map(|v| v.priority).unwrap_or(0);
            c.victims
                .iter()
                .filter(|v| v.priority == top)
                .map(|v| v.start_time)
                .min()
                .unwrap_or(i64::MAX)
        },
    ];
    let mut alive: Vec<usize> = (0..candidates.len()).collect();
    for f in funcs {
        let best = alive.iter().map(|i| f(&candidates[*i])).max().unwrap_or(0);
        alive.retain(|i| f(&candidates[*i]) == best);
        if alive.len() == 1 {
            break;
        }
    }
    alive.first().copied()
}

/// Runs preemption for `pod`, which fit no node (`diagnosis` says why on each), with the
/// cycle's `state` from PreFilter.
// Upstream's Evaluator takes the same inputs; a struct of them would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn preempt(
    framework: &Framework,
    state: &CycleState,
    pod: &PodInfo,
    snapshot: &Snapshot,
    diagnosis: &Diagnosis,
    pdbs: &[Pdb],
    nominated: &Nominated,
    rng: &mut impl Rng,
) -> Outcome {
    let wrap = |msg: String| {
        Status::unschedulable(format!("preemption: {msg}")).with_plugin(names::DEFAULT_PREEMPTION)
    };
    if let Some(reason) = ineligible_reason(pod, snapshot, diagnosis) {
        return Outcome::NotHelpful {
            status: wrap(reason.to_owned()),
            clear_nomination: false,
        };
    }
    let potential: Vec<&NodeInfo> = snapshot
        .nodes
        .iter()
        .filter(|n| {
            diagnosis
                .status_of(&n.name)
                .is_none_or(|s| s.code != Code::UnschedulableAndUnresolvable)
        })
        .collect();
    let all = snapshot.nodes.len();
    let not_helpful = |node_to_status: Vec<(String, Status)>| {
        let e = FitError {
            num_all_nodes: all,
            diagnosis: Diagnosis {
                node_to_status,
                absent_status: Some(Status::unresolvable(NOT_HELPFUL)),
                ..Default::default()
            },
        };
        Outcome::NotHelpful {
            status: wrap(e.to_string()),
            clear_nomination: true,
        }
    };
    if potential.is_empty() {
        return not_helpful(Vec::new());
    }
    let filters: Vec<&dyn Filter> = framework
        .filters
        .iter()
        .filter(|f| !state.skip_filter.contains(f.name()))
        .map(|f| f.as_ref())
        .collect();
    let num_candidates = (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(potential.len());
    let offset = rng.random_range(0..potential.len());
    let mut candidates = Vec::new();
    let mut statuses = Vec::new();
    for k in 0..potential.len() {
        let node = potential[(offset + k) % potential.len()];
        let mut node_copy = node.clone();
        let mut state_copy = state.clone();
        match select_victims_on_node(
            &filters,
            &mut state_copy,
            pod,
            &mut node_copy,
            pdbs,
            nominated,
        ) {
            Ok(c) => candidates.push(c),
            Err(s) => statuses.push((node.name.clone(), s)),
        }
        let non_violating = candidates
            .iter()
            .filter(|c| c.num_pdb_violations == 0)
            .count();
        if non_violating > 0 && candidates.len() >= num_candidates {
            break;
        }
    }
    match pick_one_node(&candidates) {
        Some(i) => Outcome::Preempt(candidates.swap_remove(i)),
        None => not_helpful(statuses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use crate::schedule_one::{Algorithm, ScheduleError};
    use rand::SeedableRng;
    use serde_json::json;

    fn prio(name: &str, priority: i32, cpu: &str, labels: serde_json::Value) -> Arc<PodInfo> {
        pod_with(
            name,
            json!({"labels": labels}),
            json!({"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        )
    }

    fn run(world: &World, p: &PodInfo, pdbs: &[Pdb]) -> Outcome {
        let fwk = Framework::default_plugins();
        let mut algo = Algorithm::seeded(fwk.clone(), 1, 3);
        let snap = world.snapshot();
        match algo.schedule_pod(p, &snap, &Nominated::new()) {
            Err(ScheduleError::Fit(e, state)) => {
                let mut rng = rand::rngs::StdRng::seed_from_u64(5);
                preempt(
                    &fwk,
                    &state,
                    p,
                    &snap,
                    &e.diagnosis,
                    pdbs,
                    &Nominated::new(),
                    &mut rng,
                )
            }
            other => panic!("expected a fit error, got {other:?}"),
        }
    }

    fn victims(o: &Outcome) -> (String, Vec<String>) {
        match o {
            Outcome::Preempt(c) => (
                c.node.clone(),
                c.victims.iter().map(|v| v.name.clone()).collect(),
            ),
            Outcome::NotHelpful { status, .. } => panic!("no preemption: {}", status.message()),
        }
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        // Node a: one low pod of 3 cpu. Node b: two pods, 1.5 cpu each, priority 5 and 10.
        let world = World::new(vec![
            with_pods(
                node("a", json!({}), "4", "8Gi", json!({})),
                &[prio("a-low", 1, "3", json!({}))],
            ),
            with_pods(
                node("b", json!({}), "4", "8Gi", json!({})),
                &[
                    prio("b-5", 5, "1500m", json!({})),
                    prio("b-10", 10, "1500m", json!({})),
                ],
            ),
        ]);
        let p = prio("p", 100, "2", json!({}));
        // Highest victim priority: a has 1, b has 10 (b needs both) -> a.
        assert_eq!(
            victims(&run(&world, &p, &[])),
            ("a".into(), vec!["a-low".into()])
        );
    }

    #[test]
    fn reprieves_what_can_stay_and_respects_pdbs() {
        // Three 1-cpu pods on a 4-cpu node (1 free); the 2-cpu preemptor needs one evicted.
        let world = World::new(vec![with_pods(
            node("a", json!({}), "4", "8Gi", json!({})),
            &[
                prio("x", 1, "1", json!({"app": "x"})),
                prio("y", 2, "1", json!({"app": "y"})),
                prio("z", 3, "1", json!({"app": "z"})),
            ],
        )]);
        let p = prio("p", 100, "2", json!({}));
        // The least important goes.
        assert_eq!(victims(&run(&world, &p, &[])).1, ["x"]);
        // x is protected by a PDB with no disruptions allowed: x is reprieved first, then y
        // (the most important of the others that must go is... the least important: y).
        let pdb = Pdb {
            namespace: "default".into(),
            selector: Selector::from_k8s(Some(
                &serde_json::from_value(json!({"matchLabels": {"app": "x"}})).unwrap(),
            ))
            .unwrap(),
            disruptions_allowed: 0,
            disrupted_pods: HashSet::new(),
        };
        let o = run(&world, &p, &[pdb]);
        assert_eq!(victims(&o).1, ["y"]);
    }

    #[test]
    fn no_victims_message() {
        let world = World::new(vec![
            with_pods(
                node("a", json!({}), "1", "8Gi", json!({})),
                &[prio("a-high", 1000, "1", json!({}))],
            ),
            with_pods(
                node("b", json!({}), "1", "8Gi", json!({})),
                &[prio("b-high", 1000, "1", json!({}))],
            ),
            node(
                "c",
                json!({}),
                "1",
                "8Gi",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
            ),
        ]);
        let p = prio("p", 100, "1", json!({}));
        match run(&world, &p, &[]) {
            Outcome::NotHelpful {
                status,
                clear_nomination,
            } => {
                assert!(clear_nomination);
                assert_eq!(
                    status.message(),
                    "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
                );
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn preemption_policy_never() {
        let world = World::new(vec![with_pods(
            node("a", json!({}), "1", "8Gi", json!({})),
            &[prio("low", 1, "1", json!({}))],
        )]);
        let p = pod(
            "p",
            json!({"priority": 100, "preemptionPolicy": "Never",
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        match run(&world, &p, &[]) {
            Outcome::NotHelpful { status, .. } => {
                assert_eq!(
                    status.message(),
                    "preemption: not eligible due to preemptionPolicy=Never."
                )
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn candidate_order() {
        let c = |node: &str, v: Vec<Arc<PodInfo>>, pdb: usize| Candidate {
            node: node.into(),
            victims: v,
            num_pdb_violations: pdb,
        };
        // Fewer PDB violations win over everything.
        let cands = vec![
            c("a", vec![prio("1", 1, "1", json!({}))], 1),
            c(
                "b",
                vec![prio("2", 50, "1", json!({})), prio("3", 50, "1", json!({}))],
                0,
            ),
        ];
        assert_eq!(pick_one_node(&cands), Some(1));
        // Then the lowest highest priority, then the lowest sum, then fewer pods.
        let cands = vec![
            c("a", vec![prio("1", 10, "1", json!({}))], 0),
            c(
                "b",
                vec![prio("2", 5, "1", json!({})), prio("3", 5, "1", json!({}))],
                0,
            ),
            c(
                "c",
                vec![prio("4", 5, "1", json!({})), prio("5", 4, "1", json!({}))],
                0,
            ),
        ];
        assert_eq!(pick_one_node(&cands), Some(2));
        let cands = vec![
            c(
                "a",
                vec![prio("1", 5, "1", json!({})), prio("2", 5, "1", json!({}))],
                0,
            ),
            c("b", vec![prio("3", 10, "1", json!({}))], 0),
            c(
                "c",
                vec![prio("4", 5, "1", json!({})), prio("5", 5, "1", json!({}))],
                0,
            ),
        ];
        assert_eq!(pick_one_node(&cands), Some(0));
    }
}
