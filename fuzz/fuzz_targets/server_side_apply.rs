//! Server-side apply and the managed-fields bookkeeping of every write
//! (`skiff_api::apply`), against a live Deployment that two managers wrote: `kubectl`
//! applied it, `hpa` updated its replicas and a label.
//!
//! Input: a flags byte (bit 0: force; bits 1-2: the manager of the first write, `kubectl`,
//! `hpa` or a new one; bit 3: the second write is an update, not an apply), then a
//! configuration as JSON on one line, then an optional second write's body.
//!
//! Invariants: no panic; a refusal is an error with a message; when an apply succeeds its
//! result's `metadata.managedFields` decode back to exactly the managed fields it returned,
//! and applying the same configuration again as the same manager conflicts with nobody and
//! changes nothing; the fields the server drops from a configuration (undeclared ones) can
//! be found and removed; the live object taken from the input (garbage managed fields
//! included) is an error or a result, never a panic.

#![no_main]

use std::sync::OnceLock;

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use skiff_api::apply::{self, typed, ApplyError, ManagedFields, Ty, Write};
use skiff_fuzz::split;

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const MANAGERS: [&str; 4] = ["kubectl", "hpa", "fuzzer", ""];

fn write(manager: &str) -> Write<'_> {
    Write {
        manager,
        api_version: "apps/v1",
        subresource: None,
        schema: DEPLOYMENT,
        has_status: true,
        now: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
    }
}

fn base_config() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    {"name": "sidecar", "image": "busybox", "args": ["sleep", "infinity"]},
                ]},
            },
        },
    })
}

/// The Deployment `kubectl` applied and `hpa` then updated.
fn live() -> &'static Value {
    static LIVE: OnceLock<Value> = OnceLock::new();
    LIVE.get_or_init(|| {
        let config = base_config();
        let created = apply::apply(
            &apply::identity_of(&config),
            &config,
            &write("kubectl"),
            false,
        )
        .expect("the base configuration applies");
        let mut updated = created.object.clone();
        updated["spec"]["replicas"] = json!(5);
        updated["metadata"]["labels"]["scaled"] = json!("true");
        let managed = apply::update(&created.object, &updated, &write("hpa")).expect("update");
        managed.write_to(&mut updated);
        updated
    })
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// Applies and checks what a successful apply promises; the result, if it succeeded.
fn apply_checked(live: &Value, config: &Value, manager: &str, force: bool) -> Option<Value> {
    match apply::apply(live, config, &write(manager), force) {
        Ok(applied) => {
            let decoded = ManagedFields::decode(&applied.object)
                .unwrap_or_else(|e| panic!("an apply's managedFields do not decode: {e}"));
            assert_eq!(
                decoded, applied.managed,
                "managedFields written != returned"
            );
            match apply::apply(&applied.object, config, &write(manager), false) {
                Ok(again) => assert_eq!(
                    without_managed_fields(&again.object),
                    without_managed_fields(&applied.object),
                    "applying the same configuration again changed the object"
                ),
                Err(ApplyError::Conflicts(c)) => {
                    panic!("applying the same configuration again conflicts: {c}")
                }
                Err(ApplyError::Invalid(e)) => {
                    panic!("a configuration that applied is invalid the second time: {e}")
                }
            }
            Some(applied.object)
        }
        Err(e) => {
            assert!(
                !e.to_string().is_empty(),
                "an apply error without a message"
            );
            None
        }
    }
}

/// Updates and checks that the managed fields decode back from the stored object (one with a
/// `metadata` map: only such an object is ever stored).
fn update_checked(live: &Value, new: &Value, manager: &str) {
    let managed = apply::update(live, new, &write(manager));
    if let (Ok(managed), Some(Value::Object(_))) = (managed, new.get("metadata")) {
        let mut stored = new.clone();
        managed.write_to(&mut stored);
        assert_eq!(
            ManagedFields::decode(&stored).as_ref(),
            Ok(&managed),
            "an update's managedFields do not decode back"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, first, second)) = split(data) else {
        return;
    };
    let Ok(config) = serde_json::from_slice::<Value>(first) else {
        return;
    };
    let force = flags & 1 != 0;
    let manager = MANAGERS[usize::from(flags >> 1) & 3];
    let live = live();

    // What the API server does to a configuration first: drop the undeclared fields.
    let ty = Ty::of_kind(DEPLOYMENT);
    if let Ok(unknown) = typed::undeclared_fields(&config, ty) {
        if let Ok(pruned) = typed::remove_items(&config, &unknown, ty) {
            let left = typed::undeclared_fields(&pruned, ty);
            assert!(
                left.as_ref().map_or(true, |s| s.is_empty()),
                "undeclared fields left after removing them: {left:?}"
            );
        }
    }

    let after = apply_checked(live, &config, manager, force);
    update_checked(live, &config, manager);

    // The input as the live object: its managed fields are whatever the fuzzer wrote.
    let _ = apply::apply(&config, &base_config(), &write("kubectl"), force);
    update_checked(&config, live, "hpa");

    let Some(after) = after else {
        return;
    };
    let Ok(second) = serde_json::from_slice::<Value>(second) else {
        return;
    };
    let other = MANAGERS[(usize::from(flags >> 1) + 1) & 3];
    if flags & 8 != 0 {
        update_checked(&after, &second, other);
    } else {
        apply_checked(&after, &second, other, force);
    }
});
