//! The scheduling cycle alone, without the API: 10,000 pending pods onto 5,000 nodes through
//! the default plugins, each pod assumed in the cache before the next (as the loop does);
//! once with pods nothing owns, once with the pods of one ReplicaSet (which the system
//! default topology spreading scores).
//! It bounds what the whole scheduler can do; the end-to-end number (watches, bindings,
//! events through the API server) is `cargo bench -p skiff --bench controlplane` with
//! `SKIFF_BENCH_ONLY=schedule`.
//!
//! `cargo bench -p skiff-scheduler --bench scheduling`

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use skiff_scheduler::cache::Cache;
use skiff_scheduler::framework::Framework;
use skiff_scheduler::schedule_one::{Algorithm, Nominated};
use skiff_scheduler::types::PodInfo;
use skiff_scheduler::workloads::Workload;

const NODES: usize = 5_000;
const PODS: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run("pods without an owner", false)?;
    // What a Deployment makes: PodTopologySpread's system defaults score every cycle.
    run("pods of one ReplicaSet", true)?;
    Ok(())
}

fn run(what: &str, owned: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut cache = Cache::new();
    for i in 0..NODES {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("sim-{i}"), "labels": {
                "kubernetes.io/hostname": format!("sim-{i}"),
                "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
            "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}}
        }))?;
        cache.upsert_node(Arc::new(node));
    }
    if owned {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "bench-1", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "bench", "pod-template-hash": "1"}}}
        }))?;
        cache.upsert_workload(Workload::of_replica_set(&rs));
    }
    let pods: Vec<Arc<PodInfo>> = (0..PODS)
        .map(|i| {
            let mut pod = json!({
                "metadata": {"name": format!("p-{i}"), "namespace": "default",
                             "uid": format!("uid-{i}"),
                             "labels": {"app": "bench", "pod-template-hash": "1"}},
                "spec": {"containers": [{"name": "c", "image": "img:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            });
            if owned {
                pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
                    "kind": "ReplicaSet", "name": "bench-1", "uid": "rs-uid", "controller": true}]);
            }
            let pod: Pod = serde_json::from_value(pod).expect("a valid pod");
            Arc::new(PodInfo::new(Arc::new(pod)))
        })
        .collect();
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut algo = Algorithm::seeded(Framework::default_plugins(), parallelism, 1);
    let nominated = Nominated::new();
    let mut cycles = Vec::with_capacity(PODS);
    let started = Instant::now();
    for pod in &pods {
        let t = Instant::now();
        let result = algo
            .schedule_pod(pod, &cache.snapshot(), &nominated)
            .map_err(|e| e.to_string())?;
        cache.assume(pod, &result.node);
        cycles.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let total = started.elapsed().as_secs_f64();
    cycles.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| cycles[((cycles.len() as f64 - 1.0) * q) as usize];
    println!(
        "scheduling cycle, {what}: {PODS} pods onto {NODES} nodes in {total:.2} s = {:.0} pods/s; \
         per cycle p50 {:.0} us, p99 {:.0} us",
        PODS as f64 / total,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
