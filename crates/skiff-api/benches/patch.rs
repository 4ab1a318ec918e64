//! The patch engines on the objects the patch issue names: a strategic merge patch of a Pod
//! with 100 env vars (the three-way patch `kubectl apply` sends when one var changes and one
//! goes), and a server-side apply of a Deployment with 50 containers by a second manager
//! (`kubectl apply --server-side` changing one image). Pure CPU, no I/O: ops/s and the mean
//! time of one. Run with `cargo bench -p skiff-api --bench patch`; `SKIFF_BENCH_ONLY=smp|ssa|
//! update|create` runs one measure alone.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use skiff_api::apply::{self, Write};
use skiff_api::patch::{apply_strategic_merge_patch, Schemas};
use skiff_api::registry::Registry;

fn pod_with_env(n: usize) -> Value {
    let env: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("VAR_{i:03}"), "value": format!("value-{i}")}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox:1", "env": env}]}})
}

fn deployment(containers: usize, image: &str) -> Value {
    let cs: Vec<Value> = (0..containers)
        .map(|i| {
            json!({"name": format!("c{i:02}"), "image": format!("{image}-{i}"),
                   "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
                   "env": [{"name": "A", "value": "1"}]})
        })
        .collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": cs}}}})
}

/// Runs `f` for about `secs`, answers (ops/s, mean microseconds); `(0, 0)` without running
/// it when `SKIFF_BENCH_ONLY` names another measure (for profiling one alone).
fn measure(name: &str, secs: f64, mut f: impl FnMut()) -> (f64, f64) {
    if std::env::var("SKIFF_BENCH_ONLY").is_ok_and(|only| only != name) {
        return (0.0, 0.0);
    }
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        f();
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    (n as f64 / elapsed, elapsed / n as f64 * 1e6)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let registry = Registry::builtin();
    let schemas = Schemas::builtin();

    // SMP: one var changed, one deleted, order kept (what client-side apply sends).
    let pod = pod_with_env(100);
    let pods = registry.get("", "v1", "pods").expect("pods are served");
    let order: Vec<Value> = (0..100)
        .filter(|i| *i != 50)
        .map(|i| json!({"name": format!("VAR_{i:03}")}))
        .collect();
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"name": "app", "$setElementOrder/env": order,
            "env": [{"name": "VAR_007", "value": "changed"}, {"$patch": "delete", "name": "VAR_050"}]}]}});
    let (smp_ops, smp_us) = measure("smp", 2.0, || {
        let out =
            apply_strategic_merge_patch(&pod, &patch, schemas.kind(pods)).expect("patch applies");
        assert_eq!(
            out["spec"]["containers"][0]["env"].as_array().map(Vec::len),
            Some(99)
        );
    });

    // SSA: manager `a` owns the Deployment; manager `b` applies one changed image.
    let deploys = registry
        .get("apps", "v1", "deployments")
        .expect("deployments are served");
    let write = |manager: &'static str| Write {
        manager,
        api_version: "apps/v1",
        subresource: None,
        schema: "io.k8s.api.apps.v1.Deployment",
        has_status: deploys.has(skiff_api::registry::Subresource::Status),
        now: Utc::now(),
    };
    let first = deployment(50, "img:1");
    let live = apply::apply(&apply::identity_of(&first), &first, &write("a"), false)
        .expect("first apply")
        .object;
    let mut second = deployment(50, "img:1");
    second["spec"]["template"]["spec"]["containers"][10]["image"] = json!("img:2");
    let (ssa_ops, ssa_us) = measure("ssa", 2.0, || {
        let out = apply::apply(&live, &second, &write("a"), false).expect("re-apply");
        assert_eq!(
            out.object["spec"]["template"]["spec"]["containers"][10]["image"],
            "img:2"
        );
    });
    // A non-apply update of the same object (managedFields bookkeeping on every write).
    let (upd_ops, upd_us) = measure("update", 2.0, || {
        apply::update(&live, &second, &write("kubectl-edit")).expect("update");
    });

    // What every create records: the managed fields of a small ConfigMap (the API
    // benchmark's create) from nothing.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm-1", "namespace": "default", "uid": "u", "resourceVersion": "1",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": {"k": "v".repeat(200)}});
    let cm_write = Write {
        manager: "bench",
        api_version: "v1",
        subresource: None,
        schema: "io.k8s.api.core.v1.ConfigMap",
        has_status: false,
        now: Utc::now(),
    };
    let empty = json!({});
    let (cm_ops, cm_us) = measure("create", 2.0, || {
        let mut obj = cm.clone();
        apply::record_update(&empty, &mut obj, &cm_write).expect("record");
        assert!(obj["metadata"]["managedFields"].is_array());
    });

    println!("| operation | ops/s | mean |");
    println!("|---|---|---|");
    println!("| strategic merge patch, Pod with 100 env vars (1 changed, 1 deleted) | {smp_ops:.0} | {smp_us:.1} us |");
    println!("| server-side apply, Deployment with 50 containers (1 image changed) | {ssa_ops:.0} | {ssa_us:.1} us |");
    println!("| managedFields update of the same Deployment (a non-apply write) | {upd_ops:.0} | {upd_us:.1} us |");
    println!("| managedFields of a ConfigMap create (what every create records) | {cm_ops:.0} | {cm_us:.1} us |");
}
