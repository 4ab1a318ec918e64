//! Sequences of writes by several managers, checked against what upstream's API server
//! answers and records for the same sequence.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::*;

const DEPLOY: &str = "io.k8s.api.apps.v1.Deployment";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
}

fn write(manager: &str) -> Write<'_> {
    Write {
        manager,
        api_version: "apps/v1",
        subresource: None,
        schema: DEPLOY,
        has_status: true,
        now: at(0),
    }
}

/// A Deployment configuration: replicas, labels, containers as (name, image).
fn deploy(replicas: Option<i64>, labels: Value, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(n, i)| json!({"name": n, "image": i}))
        .collect();
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
        },
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

fn apply_ok(live: &Value, config: &Value, manager: &str, force: bool) -> Value {
    match apply(live, config, &write(manager), force) {
        Ok(a) => a.object,
        Err(e) => panic!("apply by {manager}: {e}"),
    }
}

fn create(config: &Value, manager: &str) -> Value {
    apply_ok(&identity_of(config), config, manager, false)
}

/// A non-apply write of `new` over `live` by `manager`; returns the stored object.
fn update_ok(live: &Value, new: &Value, manager: &str) -> Value {
    let managed = update(live, new, &write(manager)).expect("update");
    let mut out = new.clone();
    managed.write_to(&mut out);
    out
}

fn managed(object: &Value) -> ManagedFields {
    ManagedFields::decode(object).expect("decodable managedFields")
}

/// The fieldsV1 of a manager's entry, in upstream's serialization.
fn fields(object: &Value, manager: &str, operation: Operation) -> Option<String> {
    let m = managed(object);
    let id = m
        .managers()
        .find(|id| id.manager == manager && id.operation == operation)?
        .clone();
    m.get(&id).map(Set::to_fields_v1_string)
}

fn owners(object: &Value) -> Vec<(String, Operation)> {
    managed(object)
        .managers()
        .map(|id| (id.manager.clone(), id.operation))
        .collect()
}

fn f(name: &str) -> PathElement {
    PathElement::Field(name.into())
}

fn container(name: &str) -> PathElement {
    PathElement::Key(vec![("name".into(), json!(name))])
}

#[test]
fn create_by_update_owns_every_field_set_as_upstream_records_it() {
    let new = deploy(Some(1), json!({"app": "web"}), &[("c", "nginx")]);
    let stored = update_ok(&json!({}), &new, "kubectl-create");
    assert_eq!(
        fields(&stored, "kubectl-create", Operation::Update).as_deref(),
        Some(concat!(
            r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
            r#""f:spec":{"f:replicas":{},"f:selector":{},"#,
            r#""f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
            r#""f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        ))
    );
    let entry = &stored["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl-create");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], "2023-11-14T22:13:20Z");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry.get("subresource").is_none());
}

#[test]
fn two_managers_conflict_force_and_prune() {
    let a = "manager-a";
    let b = "kubectl-client-side-apply";
    let config = deploy(
        Some(3),
        json!({"app": "web", "team": "x"}),
        &[("c", "nginx")],
    );

    // A applies to an absent object: created from the configuration, A owns all of it.
    let live = create(&config, a);
    assert_eq!(live["spec"]["replicas"], 3);
    assert_eq!(owners(&live), vec![(a.to_owned(), Operation::Apply)]);
    let a_set = fields(&live, a, Operation::Apply).expect("A's entry");
    assert!(a_set.contains(r#""f:replicas":{}"#), "{a_set}");
    assert!(
        !a_set.contains("f:name\":{},\"f:namespace"),
        "identity is not owned: {a_set}"
    );

    // B updates replicas: B owns it now, A no longer does.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let live = update_ok(&live, &scaled, b);
    assert_eq!(
        fields(&live, b, Operation::Update).as_deref(),
        Some(r#"{"f:spec":{"f:replicas":{}}}"#)
    );
    let replicas = [f("spec"), f("replicas")];
    let a_id = ManagerId {
        manager: a.into(),
        operation: Operation::Apply,
        api_version: String::new(),
        subresource: String::new(),
    };
    assert!(!managed(&live).get(&a_id).expect("A").has(&replicas));

    // A re-applies replicas=3: a conflict, reported as upstream words it.
    let err = apply(&live, &config, &write(a), false).expect_err("conflict");
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("expected conflicts, got {err}");
    };
    assert_eq!(
        conflicts.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    assert_eq!(conflicts.0[0].field(), ".spec.replicas");
    assert_eq!(
        conflicts.0[0].message(),
        r#"conflict with "kubectl-client-side-apply" using apps/v1"#
    );

    // Applying B's value instead is no conflict: A and B share the field.
    let mut agreeing = config.clone();
    agreeing["spec"]["replicas"] = json!(5);
    let shared = apply_ok(&live, &agreeing, a, false);
    assert!(managed(&shared).get(&a_id).expect("A").has(&replicas));
    assert_eq!(
        fields(&shared, b, Operation::Update).as_deref(),
        Some(r#"{"f:spec":{"f:replicas":{}}}"#)
    );

    // With force A takes the field: B's only field is gone, and so is B's entry.
    let live = apply_ok(&live, &config, a, true);
    assert_eq!(live["spec"]["replicas"], 3);
    assert_eq!(owners(&live), vec![(a.to_owned(), Operation::Apply)]);

    // A drops a label it applied and nobody else owns: removed.
    let dropped = deploy(Some(3), json!({"app": "web"}), &[("c", "nginx")]);
    let live = apply_ok(&live, &dropped, a, false);
    assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));

    // B sets a label; A applies the same value (shared), then drops it: B still owns it, so
    // it stays.
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["tier"] = json!("front");
    let live = update_ok(&live, &labelled, b);
    let with_tier = deploy(
        Some(3),
        json!({"app": "web", "tier": "front"}),
        &[("c", "nginx")],
    );
    let live = apply_ok(&live, &with_tier, a, false);
    let live = apply_ok(&live, &dropped, a, false);
    assert_eq!(
        live["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );

    // A drops replicas (it was the only owner): removed from the object.
    let no_replicas = deploy(None, json!({"app": "web"}), &[("c", "nginx")]);
    let live = apply_ok(&live, &no_replicas, a, false);
    assert!(live["spec"].get("replicas").is_none(), "{}", live["spec"]);
}

#[test]
fn containers_merge_by_name_and_keep_other_managers_items() {
    let a = "a";
    let live = create(&deploy(None, json!({"app": "web"}), &[("c", "nginx")]), a);
    // B adds a sidecar by update.
    let mut with_sidecar = live.clone();
    with_sidecar["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "sidecar", "image": "envoy"}));
    let live = update_ok(&live, &with_sidecar, "b");
    let b_fields = fields(&live, "b", Operation::Update).expect("B");
    assert!(
        b_fields.contains(r#"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{}}"#),
        "{b_fields}"
    );
    // A applies a new image for c and a new container d: merged by name, B's sidecar kept,
    // live order first, new items where A's configuration puts them.
    let live = apply_ok(
        &live,
        &deploy(
            None,
            json!({"app": "web"}),
            &[("d", "redis"), ("c", "nginx:2")],
        ),
        a,
        false,
    );
    let names: Vec<(&str, &str)> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["image"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![("d", "redis"), ("c", "nginx:2"), ("sidecar", "envoy")]
    );
    // A drops d: removed; B's sidecar stays.
    let live = apply_ok(
        &live,
        &deploy(None, json!({"app": "web"}), &[("c", "nginx:2")]),
        a,
        false,
    );
    let names: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["c", "sidecar"]);
}

#[test]
fn container_ports_are_keyed_by_port_and_defaulted_protocol() {
    let mut config = deploy(None, json!({}), &[("c", "nginx")]);
    config["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]);
    let live = create(&config, "a");
    let set = fields(&live, "a", Operation::Apply).expect("entry");
    assert!(
        set.contains(r#""k:{\"containerPort\":53,\"protocol\":\"UDP\"}":{".":{},"f:containerPort":{},"f:protocol":{}},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}"#),
        "{set}"
    );
}

#[test]
fn finalizers_are_a_set() {
    let mut config = deploy(None, json!({}), &[("c", "nginx")]);
    config["metadata"]["finalizers"] = json!(["example.com/a"]);
    let live = create(&config, "a");
    let set = fields(&live, "a", Operation::Apply).expect("entry");
    assert!(
        set.contains(r#""f:finalizers":{"v:\"example.com/a\"":{}}"#),
        "{set}"
    );
    // B adds one by update: owns just its element.
    let mut more = live.clone();
    more["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    let live = update_ok(&live, &more, "b");
    assert_eq!(
        fields(&live, "b", Operation::Update).as_deref(),
        Some(r#"{"f:metadata":{"f:finalizers":{"v:\"example.com/b\"":{}}}}"#)
    );
    // A applies a different element: union with B's; A's old one goes.
    config["metadata"]["finalizers"] = json!(["example.com/c"]);
    let live = apply_ok(&live, &config, "a", false);
    assert_eq!(
        live["metadata"]["finalizers"],
        json!(["example.com/b", "example.com/c"])
    );
}

#[test]
fn atomic_lists_are_replaced_and_owned_whole() {
    let mut config = deploy(None, json!({}), &[("c", "nginx")]);
    config["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["a", "b"]);
    let live = create(&config, "a");
    config["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["c"]);
    let live = apply_ok(&live, &config, "a", false);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["c"])
    );
    let set = fields(&live, "a", Operation::Apply).expect("entry");
    assert!(set.contains(r#""f:args":{}"#), "{set}");
    // B changes one argument: it owns the whole list, and A's next apply conflicts on it.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["c", "d"]);
    let live = update_ok(&live, &edited, "b");
    let Err(ApplyError::Conflicts(c)) = apply(&live, &config, &write("a"), false) else {
        panic!("expected a conflict");
    };
    assert_eq!(
        c.0.iter().map(Conflict::field).collect::<Vec<_>>(),
        vec![r#".spec.template.spec.containers[name="c"].args"#]
    );
    // Atomic maps and atomic structs too: the selector is one field.
    let set = fields(&live, "a", Operation::Apply).expect("entry");
    assert!(set.contains(r#""f:selector":{}"#), "{set}");
}

#[test]
fn conflicts_with_several_managers_are_listed_by_manager() {
    let config = deploy(Some(2), json!({"app": "web"}), &[("c", "nginx")]);
    let live = create(&config, "a");
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(4);
    let live = update_ok(&live, &edited, "zeta");
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox");
    edited["metadata"]["labels"]["app"] = json!("other");
    let live = update_ok(&live, &edited, "alpha");
    let Err(ApplyError::Conflicts(c)) = apply(&live, &config, &write("a"), false) else {
        panic!("expected conflicts");
    };
    assert_eq!(
        c.to_string(),
        concat!(
            "Apply failed with 3 conflicts: conflicts with \"alpha\" using apps/v1:\n",
            "- .metadata.labels.app\n",
            "- .spec.template.spec.containers[name=\"c\"].image\n",
            "conflicts with \"zeta\" using apps/v1:\n",
            "- .spec.replicas"
        )
    );
}

#[test]
fn status_writes_record_the_subresource_and_main_writes_ignore_status() {
    let config = deploy(Some(1), json!({}), &[("c", "nginx")]);
    let live = create(&config, "a");
    let mut with_status = live.clone();
    with_status["status"] = json!({"replicas": 1, "readyReplicas": 1});
    with_status["spec"]["replicas"] = json!(9); // reset by the status strategy: not owned
    let status_write = Write {
        subresource: Some("status"),
        ..write("kube-controller-manager")
    };
    let managed = update(&live, &with_status, &status_write).expect("update");
    let entry = managed.encode();
    let mine = entry
        .iter()
        .find(|e| e["manager"] == "kube-controller-manager")
        .expect("entry");
    assert_eq!(mine["subresource"], "status");
    assert_eq!(
        Set::from_fields_v1(&mine["fieldsV1"])
            .expect("fieldsV1")
            .to_fields_v1_string(),
        r#"{"f:status":{"f:readyReplicas":{},"f:replicas":{}}}"#
    );
    // A main-resource write does not own `.status`.
    let managed = update(&live, &with_status, &write("kubectl-edit")).expect("update");
    let id = managed
        .managers()
        .find(|id| id.manager == "kubectl-edit")
        .expect("entry")
        .clone();
    assert_eq!(
        managed.get(&id).map(Set::to_fields_v1_string).as_deref(),
        Some(r#"{"f:spec":{"f:replicas":{}}}"#)
    );
}

#[test]
fn unchanged_writes_keep_entries_and_times() {
    let config = deploy(Some(1), json!({}), &[("c", "nginx")]);
    let live = create(&config, "a");
    let again = apply(
        &live,
        &config,
        &Write {
            now: at(60),
            ..write("a")
        },
        false,
    )
    .expect("apply");
    assert_eq!(
        again.object, live,
        "a no-op apply changes nothing, not even the time"
    );
    let managed = update(&live, &live, &write("b")).expect("update");
    assert_eq!(
        managed.managers().count(),
        1,
        "a no-op update adds no entry"
    );
}

#[test]
fn managed_fields_in_the_request_replace_or_reset_the_live_ones() {
    let live = create(&deploy(Some(1), json!({}), &[("c", "nginx")]), "a");
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        update(&live, &reset, &write("b"))
            .expect("update")
            .managers()
            .count(),
        0
    );
    let mut edited = live.clone();
    edited["metadata"]["managedFields"][0]["manager"] = json!("renamed");
    let managed = update(&live, &edited, &write("b")).expect("update");
    assert_eq!(
        managed
            .managers()
            .map(|m| m.manager.as_str())
            .collect::<Vec<_>>(),
        vec!["renamed"]
    );
    // Garbage is ignored in favour of the live ones, as upstream.
    let mut garbage = live.clone();
    garbage["metadata"]["managedFields"] = json!([{"operation": "Bogus"}]);
    let managed = update(&live, &garbage, &write("b")).expect("update");
    assert_eq!(
        managed
            .managers()
            .map(|m| m.manager.as_str())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
}

#[test]
fn bad_configurations_are_errors() {
    let mut config = deploy(None, json!({}), &[("c", "nginx")]);
    config["spec"]["template"]["spec"]["containers"] = json!([{"image": "nginx"}]);
    let err = apply(&identity_of(&config), &config, &write("a"), false).expect_err("no key");
    assert_eq!(
        err.to_string(),
        r#".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field "name" (and doesn't have default value)"#
    );
    config["spec"]["template"]["spec"]["containers"] = json!([{"name": "c"}, {"name": "c"}]);
    let err = apply(&identity_of(&config), &config, &write("a"), false).expect_err("dup");
    assert_eq!(
        err.to_string(),
        r#".spec.template.spec.containers: duplicate entries for key [name="c"]"#
    );
    config["spec"]["template"]["spec"]["containers"] = json!([{"name": "c"}]);
    config["metadata"]["managedFields"] = json!([]);
    let err = apply(&identity_of(&config), &config, &write("a"), false).expect_err("set");
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
}

#[test]
fn manager_names_default_from_the_user_agent() {
    assert_eq!(
        manager_name(Some("kubectl-edit"), Some("kubectl/v1.32")),
        "kubectl-edit"
    );
    assert_eq!(
        manager_name(None, Some("kubectl/v1.32.0 (linux/amd64) kubernetes/abc")),
        "kubectl"
    );
    assert_eq!(manager_name(Some(""), Some("kube-rs/1.0")), "kube-rs");
    assert_eq!(manager_name(None, None), "");
    assert_eq!(manager_name(None, Some(&"x".repeat(200))).len(), 128);
    assert_eq!(manager_name(None, Some("a\u{7}b/c")), "ab");
}

#[test]
fn unknown_kinds_are_deduced() {
    let config = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, "tags": ["a"], "nested": {"x": true}},
    });
    let w = Write {
        schema: "com.example.v1.Widget",
        has_status: false,
        ..write("a")
    };
    let applied = apply(&identity_of(&config), &config, &w, false).expect("apply");
    let id = applied.managed.managers().next().expect("entry").clone();
    assert_eq!(
        applied
            .managed
            .get(&id)
            .map(Set::to_fields_v1_string)
            .as_deref(),
        Some(r#"{"f:spec":{".":{},"f:nested":{".":{},"f:x":{}},"f:size":{},"f:tags":{}}}"#)
    );
}

#[test]
fn field_sets_of_objects() {
    let pod_spec = Ty::of_kind("io.k8s.api.core.v1.Pod").field("spec");
    let set = typed::to_field_set(
        &json!({"containers": [{"name": "c", "resources": {}}], "nodeSelector": {"a": "b"}}),
        pod_spec,
    )
    .expect("set");
    assert!(set.has(&[f("containers"), container("c"), f("resources")]));
    assert!(set.has(&[f("containers"), container("c")]));
    assert!(set.has(&[f("nodeSelector")]));
    assert!(!set.has(&[f("nodeSelector"), f("a")]), "atomic map");
}

/// Found by the `server_side_apply` fuzz target: a configuration that is a string, a list
/// or null merged into the live object as a whole, and the "applied" result was that value,
/// which holds no managed fields; so did one whose `metadata` was a string. Now errors, as
/// the API server answers such bodies.
#[test]
fn a_configuration_that_is_not_an_object_is_invalid() {
    let live = create(
        &deploy(Some(1), json!({"app": "web"}), &[("c", "nginx")]),
        "a",
    );
    for config in [json!("path"), json!([1]), json!(null), json!(3)] {
        match apply(&live, &config, &write("b"), true) {
            Err(ApplyError::Invalid(Error::Invalid(m))) => {
                assert_eq!(m, "an apply configuration must be an object")
            }
            other => panic!("{config}: {other:?}"),
        }
    }
    // Nor is one whose metadata, where the managed fields go, is not a map.
    let mut config = deploy(Some(1), json!({"app": "web"}), &[("c", "nginx")]);
    config["metadata"] = json!("Deployment");
    match apply(&live, &config, &write("b"), true) {
        Err(ApplyError::Invalid(Error::Invalid(m))) => assert_eq!(m, ".metadata: expected map"),
        other => panic!("{other:?}"),
    }
}

/// Objects of every wrong shape (a scalar where a list should be, lists of lists, garbage
/// managed fields) are errors or leaves, never panics.
#[test]
fn wrong_shapes_never_panic() {
    use crate::testing::Rng;
    fn junk(rng: &mut Rng) -> Value {
        match rng.below(7) {
            0 => Value::Null,
            1 => json!(rng.below(100)),
            2 => json!("x"),
            3 => json!([1, "a", null, [], {}]),
            4 => json!({"name": 1, "f:x": {}}),
            5 => json!([{"name": "c"}, {"name": "c"}, {}]),
            _ => json!(true),
        }
    }
    fn mutate(v: &mut Value, rng: &mut Rng) {
        match v {
            Value::Object(m) if !m.is_empty() && rng.below(4) != 0 => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = &keys[rng.below(keys.len())];
                if let Some(child) = m.get_mut(k) {
                    mutate(child, rng);
                }
            }
            Value::Array(a) if !a.is_empty() && rng.below(4) != 0 => {
                let i = rng.below(a.len());
                mutate(&mut a[i], rng);
            }
            _ => *v = junk(rng),
        }
    }
    let mut rng = Rng::seeded(0x5eed_cafe_f00d_d00d);
    let mut base = deploy(Some(1), json!({"app": "web"}), &[("c", "nginx")]);
    base["metadata"]["finalizers"] = json!(["a"]);
    base["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let live = create(&base, "a");
    for _ in 0..1000 {
        let mut config = base.clone();
        mutate(&mut config, &mut rng);
        let _ = apply(&live, &config, &write("b"), rng.below(2) == 0);
        let _ = update(&live, &config, &write("b"));
        let mut garbage = live.clone();
        mutate(&mut garbage["metadata"], &mut rng);
        let _ = update(&garbage, &live, &write("b"));
        let _ = apply(&garbage, &base, &write("a"), false);
    }
}

#[test]
fn undeclared_fields_are_found_and_can_be_dropped() {
    let mut config = deploy(Some(1), json!({"app": "web"}), &[("c", "nginx")]);
    config["spec"]["replicasx"] = json!(3);
    config["spec"]["template"]["spec"]["containers"][0]["imagex"] = json!({"a": 1});
    config["metadata"]["labels"]["free-form"] = json!("ok");
    let ty = Ty::of_kind(DEPLOY);
    let unknown = typed::undeclared_fields(&config, ty).expect("walk");
    assert_eq!(
        unknown
            .paths()
            .iter()
            .map(|p| fieldpath::path_string(p))
            .collect::<Vec<_>>(),
        vec![
            ".spec.replicasx".to_owned(),
            r#".spec.template.spec.containers[name="c"].imagex"#.to_owned()
        ]
    );
    let pruned = typed::remove_items(&config, &unknown, ty).expect("remove");
    assert!(pruned["spec"].get("replicasx").is_none());
    assert_eq!(pruned["metadata"]["labels"]["free-form"], "ok");
    assert!(typed::undeclared_fields(&pruned, ty)
        .expect("walk")
        .is_empty());
}

#[test]
fn more_than_ten_updaters_are_merged_into_ancient_changes() {
    let mut live = create(
        &deploy(Some(1), json!({"app": "web"}), &[("c", "nginx")]),
        "a",
    );
    for i in 0..12 {
        let mut new = live.clone();
        new["metadata"]["labels"][format!("l{i}")] = json!("x");
        let m = update(
            &live,
            &new,
            &Write {
                now: at(i),
                ..write(&format!("m{i:02}"))
            },
        )
        .expect("update");
        m.write_to(&mut new);
        live = new;
    }
    let m = managed(&live);
    let names: Vec<&str> = m
        .managers()
        .filter(|id| id.operation == Operation::Update)
        .map(|id| id.manager.as_str())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(!names.contains(&"m00") && !names.contains(&"m01") && !names.contains(&"m02"));
    assert!(names.contains(&"ancient-changes") && names.contains(&"m11"));
    let ancient = m
        .managers()
        .find(|id| id.manager == "ancient-changes")
        .cloned()
        .expect("bucket");
    let set = m.get(&ancient).expect("set");
    for l in ["l0", "l1", "l2"] {
        assert!(set.has(&[f("metadata"), f("labels"), f(l)]), "{l}");
    }
}

/// The one-walk create path of `record_update` records exactly what the general path
/// (`update` from `{}`, then `write_to`) records, for creates of every shape: structs that Go
/// always fills in, required lists that are null when absent, list maps (with a defaulted key),
/// sets, atomic lists and maps, unknown fields, empty objects and nulls, status on kinds with and
/// without a status subresource.
#[test]
fn record_update_of_a_create_is_the_general_update() {
    let corpus: Vec<(&str, &str, bool, Value)> = vec![
        (
            "io.k8s.api.core.v1.ConfigMap",
            "v1",
            false,
            json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "uid": "u", "resourceVersion": "1",
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"a": "b"}, "annotations": {}},
            "data": {"k": "v", "e": ""}, "binaryData": null}),
        ),
        (
            "io.k8s.api.core.v1.ConfigMap",
            "v1",
            false,
            json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "only"}}),
        ),
        (
            "io.k8s.api.core.v1.ConfigMap",
            "v1",
            false,
            json!({"kind": "ConfigMap"}),
        ),
        (
            "io.k8s.api.core.v1.ConfigMap",
            "v1",
            false,
            json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "finalizers": ["a", "b"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"}],
                "generateName": "x-", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "unknownField": {"deep": [1, 2]}}),
        ),
        (DEPLOY, "apps/v1", true, {
            let mut d = deploy(
                Some(3),
                json!({"app": "web"}),
                &[("a", "img:1"), ("b", "img:2")],
            );
            d["spec"]["template"]["spec"]["containers"][0]["ports"] =
                json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]);
            d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
            d["spec"]["strategy"] =
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
            d["status"] =
                json!({"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]});
            d
        }),
        (
            DEPLOY,
            "apps/v1",
            false,
            deploy(None, json!({}), &[("a", "img:1")]),
        ),
        (
            "io.k8s.api.core.v1.Pod",
            "v1",
            true,
            json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "x"],
                        "resources": {"limits": {"cpu": "1"}}, "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                     "volumes": [{"name": "v", "emptyDir": {}}], "nodeSelector": {"a": "b"},
                     "tolerations": [{"key": "k", "operator": "Exists"}],
                     "securityContext": {}, "restartPolicy": "Always"},
            "status": {"phase": "Pending"}}),
        ),
        (
            "io.k8s.api.core.v1.Service",
            "v1",
            true,
            json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP", "name": "dns"}],
                     "selector": {"app": "web"}, "clusterIPs": ["10.43.0.10"], "type": "ClusterIP"}}),
        ),
        (
            "io.k8s.api.apps.v1.StatefulSet",
            "apps/v1",
            true,
            json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "st"},
            "spec": {"serviceName": "st", "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "io.k8s.api.batch.v1.CronJob",
            "batch/v1",
            true,
            json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "i"}], "restartPolicy": "OnFailure"}}}}}}),
        ),
        (
            "io.k8s.api.core.v1.Node",
            "v1",
            true,
            json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "labels": {"k": "v"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}),
        ),
        (
            "io.k8s.api.core.v1.Secret",
            "v1",
            false,
            json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
            "stringData": {"a": "b"}, "data": {"c": "ZA=="}}),
        ),
        (
            // Stripped fields holding odd values: the ones with something below are walked.
            "io.k8s.api.core.v1.ConfigMap",
            "v1",
            false,
            json!({
            "apiVersion": [], "kind": {}, "metadata": {"name": {"odd": 1}, "uid": ["x"],
                "namespace": {}, "generation": null, "managedFields": null, "labels": {"a": "b"}},
            "data": {"k": "v"}}),
        ),
        (
            "io.example.v1.Unknown",
            "example.io/v1",
            false,
            json!({
            "apiVersion": {"a": 1}, "kind": ["k"], "metadata": {"name": {"odd": 1}, "uid": ["x"]},
            "spec": {"a": 1}}),
        ),
        (
            "io.example.v1.Unknown",
            "example.io/v1",
            false,
            json!({
            "apiVersion": "example.io/v1", "kind": "Unknown", "metadata": {"name": "u"},
            "spec": {"list": [1, 2], "map": {"a": {"b": null}}, "empty": {}}}),
        ),
    ];
    let empty = json!({});
    for (schema, api_version, has_status, obj) in corpus {
        for manager in ["kubectl-create", ""] {
            let w = Write {
                manager,
                api_version,
                subresource: None,
                schema,
                has_status,
                now: at(5),
            };
            let mut general = obj.clone();
            update(&empty, &general, &w)
                .expect("general update")
                .write_to(&mut general);
            let mut fast = obj.clone();
            record_update(&empty, &mut fast, &w).expect("record_update");
            assert_eq!(fast, general, "{schema} {obj}");
        }
    }
    // A list-map item without its key: the same error as the general path gives.
    let bad = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"name": "x"}]}});
    let w = Write {
        manager: "m",
        api_version: "v1",
        subresource: None,
        schema: "io.k8s.api.core.v1.Service",
        has_status: true,
        now: at(5),
    };
    let general = update(&empty, &bad, &w).expect_err("general refuses");
    let fast = record_update(&empty, &mut bad.clone(), &w).expect_err("fast refuses");
    assert_eq!(fast.to_string(), general.to_string());
}
