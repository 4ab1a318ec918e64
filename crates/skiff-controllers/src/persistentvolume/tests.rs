//! The binder's decisions by tables: objects in, the decision out.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{json, Value};

use super::index::*;
use super::sync::*;

fn pv(name: &str, cap: &str, modes: &[&str], class: &str, extra: Value) -> Arc<PersistentVolume> {
    let mut v = json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "10"},
        "spec": {"capacity": {"storage": cap}, "accessModes": modes, "storageClassName": class,
                 "hostPath": {"path": "/tmp/x"}, "persistentVolumeReclaimPolicy": "Retain",
                 "volumeMode": "Filesystem"},
        "status": {"phase": "Available"}
    });
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).expect("pv"))
}

fn pvc(name: &str, req: &str, modes: &[&str], extra: Value) -> Arc<PersistentVolumeClaim> {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "7"},
        "spec": {"resources": {"requests": {"storage": req}}, "accessModes": modes, "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}
    });
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).expect("pvc"))
}

fn class(
    name: &str,
    provisioner: &str,
    mode: &str,
    default: bool,
    created: &str,
) -> Arc<StorageClass> {
    let annotations = if default {
        json!({ANN_DEFAULT_CLASS: "true"})
    } else {
        json!({})
    };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
            "provisioner": provisioner, "volumeBindingMode": mode
        }))
        .expect("class"),
    )
}

/// Merges `patch` into `base` (null removes), as a JSON merge patch.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

fn name_of(v: &Option<Arc<PersistentVolume>>) -> Option<&str> {
    v.as_ref().and_then(|v| v.metadata.name.as_deref())
}

const RWO: &[&str] = &["ReadWriteOnce"];

#[test]
fn the_smallest_volume_that_fits_wins_among_the_fewest_access_modes() {
    let volumes = vec![
        pv("big", "10Gi", RWO, "", json!({})),
        pv("small", "1Gi", RWO, "", json!({})),
        pv("just", "2Gi", RWO, "", json!({})),
        pv(
            "rwx-tiny",
            "2Gi",
            &["ReadWriteOnce", "ReadWriteMany"],
            "",
            json!({}),
        ),
        pv("fast", "2Gi", RWO, "fast", json!({})),
        pv(
            "taken",
            "2Gi",
            RWO,
            "",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "other"}}}),
        ),
        pv(
            "pending",
            "2Gi",
            RWO,
            "",
            json!({"status": {"phase": "Pending"}}),
        ),
        pv(
            "deleting",
            "2Gi",
            RWO,
            "",
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        ),
        pv(
            "block",
            "2Gi",
            RWO,
            "",
            json!({"spec": {"volumeMode": "Block"}}),
        ),
        pv(
            "labelled",
            "3Gi",
            RWO,
            "",
            json!({"metadata": {"labels": {"tier": "gold"}}}),
        ),
        pv("rox", "1500Mi", &["ReadOnlyMany"], "", json!({})),
    ];
    // (claim, delay binding, the volume chosen)
    let table: Vec<(Arc<PersistentVolumeClaim>, bool, Option<&str>)> = vec![
        (pvc("a", "1500Mi", RWO, json!({})), false, Some("just")),
        (pvc("a", "1Gi", RWO, json!({})), false, Some("small")),
        (pvc("a", "20Gi", RWO, json!({})), false, None),
        // A claim for RWX finds only the group that has it.
        (
            pvc("a", "1Gi", &["ReadWriteMany"], json!({})),
            false,
            Some("rwx-tiny"),
        ),
        // Of another class.
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "fast"}}),
            ),
            false,
            Some("fast"),
        ),
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "slow"}}),
            ),
            false,
            None,
        ),
        // The beta annotation wins over the field.
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"metadata": {"annotations": {ANN_BETA_STORAGE_CLASS: "fast"}}}),
            ),
            false,
            Some("fast"),
        ),
        // Block mode.
        (
            pvc("a", "1Gi", RWO, json!({"spec": {"volumeMode": "Block"}})),
            false,
            Some("block"),
        ),
        // A selector.
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"selector": {"matchLabels": {"tier": "gold"}}}}),
            ),
            false,
            Some("labelled"),
        ),
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["silver"]}]}}}),
            ),
            false,
            None,
        ),
        // The claim a volume is reserved for gets it, whatever its class or phase.
        (
            pvc(
                "other",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "x"}}),
            ),
            false,
            Some("taken"),
        ),
        // WaitForFirstConsumer: only a pre-bound volume.
        (pvc("a", "1Gi", RWO, json!({})), true, None),
        (pvc("other", "1Gi", RWO, json!({})), true, Some("taken")),
    ];
    for (i, (claim, delay, want)) in table.iter().enumerate() {
        let got = find_best_match(claim, &volumes, *delay).expect("match");
        assert_eq!(name_of(&got), *want, "case {i}: {:?}", claim.spec);
    }
    // A reservation by uid for another claim of that name does not count.
    let reserved = vec![pv(
        "r",
        "1Gi",
        RWO,
        "",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "a", "uid": "old"}}}),
    )];
    assert_eq!(
        name_of(
            &find_best_match(&pvc("a", "1Gi", RWO, json!({})), &reserved, false).expect("match")
        ),
        None
    );
    // A pre-bound volume too small is skipped.
    let small = vec![pv(
        "r",
        "1Gi",
        RWO,
        "",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "a"}}}),
    )];
    assert_eq!(
        name_of(&find_best_match(&pvc("a", "2Gi", RWO, json!({})), &small, false).expect("match")),
        None
    );
}

#[test]
fn the_newest_default_class_is_the_default() {
    let classes = vec![
        class("old", "p", "Immediate", true, "2026-01-01T00:00:00Z"),
        class("plain", "p", "Immediate", false, "2026-03-01T00:00:00Z"),
        class("new-b", "p", "Immediate", true, "2026-02-01T00:00:00Z"),
        class("new-a", "p", "Immediate", true, "2026-02-01T00:00:00Z"),
    ];
    assert_eq!(
        default_class(&classes)
            .and_then(|c| c.metadata.name.clone())
            .as_deref(),
        Some("new-a")
    );
    assert!(default_class(&classes[1..2]).is_none());
}

fn view_sync(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    classes: &[Arc<StorageClass>],
    pods: &[Arc<Pod>],
) -> ClaimDecision {
    sync_claim(
        claim,
        &ClaimView {
            volumes,
            classes,
            pods,
        },
    )
    .expect("sync")
}

fn pending_with(reason: &'static str, warning: bool, message: &str) -> ClaimDecision {
    ClaimDecision::Pending(Some(Note {
        warning,
        reason,
        message: message.into(),
    }))
}

/// A claim, the classes and pods there are, and the decision.
type ClaimCase<'a> = (
    Arc<PersistentVolumeClaim>,
    &'a [Arc<StorageClass>],
    &'a [Arc<Pod>],
    ClaimDecision,
);

#[test]
fn unbound_claims_bind_wait_or_say_why_not() {
    let volumes = vec![
        pv("v1", "1Gi", RWO, "", json!({})),
        pv(
            "mine",
            "1Gi",
            RWO,
            "",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c"}}}),
        ),
        pv(
            "theirs",
            "1Gi",
            RWO,
            "",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "other", "uid": "x"}}}),
        ),
        pv("fast-1", "1Gi", RWO, "fast", json!({})),
    ];
    let classes = vec![
        class(
            "fast",
            "example.com/fast",
            "Immediate",
            false,
            "2026-01-01T00:00:00Z",
        ),
        class(
            "local",
            NO_PROVISIONER,
            "WaitForFirstConsumer",
            false,
            "2026-01-01T00:00:00Z",
        ),
        class(
            "local-now",
            NO_PROVISIONER,
            "Immediate",
            false,
            "2026-01-01T00:00:00Z",
        ),
        class(
            "ebs",
            "kubernetes.io/aws-ebs",
            "Immediate",
            false,
            "2026-01-01T00:00:00Z",
        ),
    ];
    let with_default = {
        let mut c = classes.clone();
        c.push(class(
            "std",
            "example.com/std",
            "Immediate",
            true,
            "2026-01-01T00:00:00Z",
        ));
        c
    };
    let waiting_pod: Arc<Pod> = Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "user", "namespace": "ns"},
            "spec": {"containers": [], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "w"}}]}}))
        .expect("pod"),
    );
    let bind = |n: &str| {
        ClaimDecision::Bind(
            volumes
                .iter()
                .find(|v| v.metadata.name.as_deref() == Some(n))
                .cloned()
                .expect("volume"),
        )
    };
    let external = "Waiting for a volume to be created either by the external provisioner 'example.com/std' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.";
    // (claim, classes, pods, decision)
    let table: Vec<ClaimCase> = vec![
        (pvc("a", "1Gi", RWO, json!({})), &classes, &[], bind("v1")),
        // Pre-bound by the volume.
        (pvc("c", "1Gi", RWO, json!({})), &classes, &[], bind("mine")),
        // Nothing fits, no class.
        (
            pvc("a", "5Gi", RWO, json!({})),
            &classes,
            &[],
            pending_with(
                "FailedBinding",
                false,
                "no persistent volumes available for this claim and no storage class is set",
            ),
        ),
        (
            pvc("a", "5Gi", RWO, json!({"spec": {"storageClassName": ""}})),
            &with_default,
            &[],
            pending_with(
                "FailedBinding",
                false,
                "no persistent volumes available for this claim and no storage class is set",
            ),
        ),
        // No class and a default exists: the default is given (retroactively).
        (
            pvc("a", "5Gi", RWO, json!({})),
            &with_default,
            &[],
            ClaimDecision::AssignDefaultClass("std".into()),
        ),
        // ... but a volume of class "" that fits still binds first.
        (
            pvc("a", "1Gi", RWO, json!({})),
            &with_default,
            &[],
            bind("v1"),
        ),
        // A class with an external provisioner.
        (
            pvc(
                "a",
                "5Gi",
                RWO,
                json!({"spec": {"storageClassName": "std"}}),
            ),
            &with_default,
            &[],
            ClaimDecision::ExternalProvisioning {
                provisioner: "example.com/std".into(),
                note: Note {
                    warning: false,
                    reason: "ExternalProvisioning",
                    message: external.into(),
                },
            },
        ),
        (
            pvc(
                "a",
                "5Gi",
                RWO,
                json!({"spec": {"storageClassName": "ebs"}}),
            ),
            &classes,
            &[],
            ClaimDecision::ExternalProvisioning {
                provisioner: "ebs.csi.aws.com".into(),
                note: Note {
                    warning: false,
                    reason: "ExternalProvisioning",
                    message: external.replace("example.com/std", "ebs.csi.aws.com"),
                },
            },
        ),
        // A class that does not exist, one without a provisioner.
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "nope"}}),
            ),
            &classes,
            &[],
            ClaimDecision::Event(Note {
                warning: true,
                reason: "ProvisioningFailed",
                message: "storageclass.storage.k8s.io \"nope\" not found".into(),
            }),
        ),
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "local-now"}}),
            ),
            &classes,
            &[],
            ClaimDecision::Event(Note {
                warning: true,
                reason: "ProvisioningFailed",
                message: "no volume plugin matched name: kubernetes.io/no-provisioner".into(),
            }),
        ),
        // The class binds on first consumer: wait, naming the pods not yet scheduled.
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "local"}}),
            ),
            &classes,
            &[],
            pending_with(
                "WaitForFirstConsumer",
                false,
                "waiting for first consumer to be created before binding",
            ),
        ),
        (
            pvc(
                "w",
                "1Gi",
                RWO,
                json!({"spec": {"storageClassName": "local"}}),
            ),
            &classes,
            std::slice::from_ref(&waiting_pod),
            pending_with(
                "WaitForPodScheduled",
                false,
                "waiting for pod user to be scheduled",
            ),
        ),
        // The claim names a volume: bound when it fits,
        (
            pvc("a", "1Gi", RWO, json!({"spec": {"volumeName": "v1"}})),
            &classes,
            &[],
            bind("v1"),
        ),
        // ... a mismatch otherwise,
        (
            pvc("a", "2Gi", RWO, json!({"spec": {"volumeName": "v1"}})),
            &classes,
            &[],
            pending_with(
                "VolumeMismatch",
                true,
                "Cannot bind to requested volume \"v1\": requested PV is too small",
            ),
        ),
        (
            pvc("a", "1Gi", RWO, json!({"spec": {"volumeName": "fast-1"}})),
            &classes,
            &[],
            pending_with(
                "VolumeMismatch",
                true,
                "Cannot bind to requested volume \"fast-1\": storageClassName does not match",
            ),
        ),
        (
            pvc(
                "a",
                "1Gi",
                &["ReadWriteMany"],
                json!({"spec": {"volumeName": "v1"}}),
            ),
            &classes,
            &[],
            pending_with(
                "VolumeMismatch",
                true,
                "Cannot bind to requested volume \"v1\": incompatible accessMode",
            ),
        ),
        (
            pvc(
                "a",
                "1Gi",
                RWO,
                json!({"spec": {"volumeName": "v1", "volumeMode": "Block"}}),
            ),
            &classes,
            &[],
            pending_with(
                "VolumeMismatch",
                true,
                "Cannot bind to requested volume \"v1\": incompatible volumeMode",
            ),
        ),
        // ... Pending while it does not exist,
        (
            pvc("a", "1Gi", RWO, json!({"spec": {"volumeName": "later"}})),
            &classes,
            &[],
            ClaimDecision::Pending(None),
        ),
        // ... and refused while another claim has it.
        (
            pvc("a", "1Gi", RWO, json!({"spec": {"volumeName": "theirs"}})),
            &classes,
            &[],
            pending_with(
                "FailedBinding",
                true,
                "volume \"theirs\" already bound to a different claim.",
            ),
        ),
        // Pre-bound both ways.
        (
            pvc("c", "1Gi", RWO, json!({"spec": {"volumeName": "mine"}})),
            &classes,
            &[],
            bind("mine"),
        ),
    ];
    for (i, (claim, classes, pods, want)) in table.iter().enumerate() {
        assert_eq!(&view_sync(claim, &volumes, classes, pods), want, "case {i}");
    }
}

#[test]
fn bound_claims_stay_bound_or_are_lost() {
    let done = json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}}, "status": {"phase": "Bound"}});
    let claim = |volume: Option<&str>| {
        let mut extra = done.clone();
        merge(&mut extra, json!({"spec": {"volumeName": volume}}));
        pvc("c", "1Gi", RWO, extra)
    };
    let volumes = vec![
        pv(
            "ok",
            "1Gi",
            RWO,
            "",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "uid-c"}}}),
        ),
        pv("unbound", "1Gi", RWO, "", json!({})),
        pv(
            "misbound",
            "1Gi",
            RWO,
            "",
            json!({"spec": {"claimRef": {"namespace": "ns", "name": "d", "uid": "uid-d"}}}),
        ),
    ];
    let lost = |reason: &'static str, message: &str| {
        ClaimDecision::Lost(Note {
            warning: true,
            reason,
            message: message.into(),
        })
    };
    let table = [
        (claim(Some("ok")), ClaimDecision::Bind(volumes[0].clone())),
        (
            claim(Some("unbound")),
            ClaimDecision::Bind(volumes[1].clone()),
        ),
        (
            claim(Some("misbound")),
            lost(
                "ClaimMisbound",
                "Two claims are bound to the same volume, this one is bound incorrectly",
            ),
        ),
        (
            claim(Some("gone")),
            lost(
                "ClaimLost",
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            ),
        ),
        (
            claim(None),
            lost(
                "ClaimLost",
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
            ),
        ),
    ];
    for (i, (c, want)) in table.iter().enumerate() {
        assert_eq!(&view_sync(c, &volumes, &[], &[]), want, "case {i}");
    }
}

#[test]
fn volumes_follow_their_claims() {
    let bound_to =
        |uid: &str| json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": uid}}});
    let claim_on = |v: &str| pvc("c", "1Gi", RWO, json!({"spec": {"volumeName": v}}));
    let by_controller = json!({"metadata": {"annotations": {ANN_BOUND_BY_CONTROLLER: "yes"}}});
    let mut provisioned = bound_to("uid-c");
    merge(
        &mut provisioned,
        json!({"metadata": {"annotations": {ANN_DYNAMICALLY_PROVISIONED: "example.com/p"}}, "spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
    );
    // (volume, claim found, decision)
    let table: Vec<(
        Arc<PersistentVolume>,
        Option<Arc<PersistentVolumeClaim>>,
        VolumeDecision,
    )> = vec![
        (
            pv("v", "1Gi", RWO, "", json!({})),
            None,
            VolumeDecision::Phase("Available"),
        ),
        (
            pv(
                "v",
                "1Gi",
                RWO,
                "",
                json!({"spec": {"claimRef": {"namespace": "ns", "name": "c"}}}),
            ),
            None,
            VolumeDecision::Phase("Available"),
        ),
        (
            pv("v", "1Gi", RWO, "", bound_to("uid-c")),
            Some(claim_on("v")),
            VolumeDecision::Phase("Bound"),
        ),
        (
            pv("v", "1Gi", RWO, "", bound_to("uid-c")),
            None,
            VolumeDecision::Reclaim,
        ),
        (
            pv("v", "1Gi", RWO, "", bound_to("uid-c")),
            Some(pvc("c", "1Gi", RWO, json!({}))),
            VolumeDecision::SyncClaim("ns".into(), "c".into()),
        ),
        (
            pv("v", "1Gi", RWO, "", bound_to("uid-c")),
            Some(claim_on("elsewhere")),
            VolumeDecision::Unbind,
        ),
        (
            pv("v", "1Gi", RWO, "", provisioned),
            Some(claim_on("elsewhere")),
            VolumeDecision::Reclaim,
        ),
        (
            pv("v", "1Gi", RWO, "", {
                let mut b = bound_to("uid-c");
                merge(&mut b, by_controller);
                b
            }),
            Some(claim_on("elsewhere")),
            VolumeDecision::Unbind,
        ),
    ];
    for (i, (v, c, want)) in table.iter().enumerate() {
        assert_eq!(&sync_volume(v, c.as_deref()), want, "case {i}");
    }
    // A claim of another volume mode.
    let block = pvc("c", "1Gi", RWO, json!({"spec": {"volumeMode": "Block"}}));
    assert!(matches!(
        sync_volume(&pv("v", "1Gi", RWO, "", bound_to("uid-c")), Some(&block)),
        VolumeDecision::Mismatch { .. }
    ));
}

#[test]
fn released_volumes_are_reclaimed_by_policy() {
    let with = |policy: &str, extra: Value| {
        let mut e = json!({"spec": {"persistentVolumeReclaimPolicy": policy, "claimRef": {"namespace": "ns", "name": "c", "uid": "u"}}, "status": {"phase": "Released"}});
        merge(&mut e, extra);
        pv("v", "1Gi", RWO, "", e)
    };
    let fail = |reason: &'static str, message: &str| {
        Reclaim::Fail(Note {
            warning: true,
            reason,
            message: message.into(),
        })
    };
    let table = [
        (with("Retain", json!({})), vec![], Reclaim::Retain),
        (with("Delete", json!({})), vec![], Reclaim::Delete),
        (
            with(
                "Delete",
                json!({"spec": {"hostPath": null, "csi": {"driver": "d", "volumeHandle": "h"}}}),
            ),
            vec![],
            Reclaim::External,
        ),
        (
            with(
                "Delete",
                json!({"metadata": {"annotations": {ANN_DYNAMICALLY_PROVISIONED: "rancher.io/local-path"}}}),
            ),
            vec![],
            Reclaim::External,
        ),
        (
            with("Recycle", json!({})),
            vec![],
            fail(
                "VolumeFailedRecycle",
                "No recycler plugin found for the volume!",
            ),
        ),
        (
            with("Recycle", json!({})),
            vec!["ns/p".to_string()],
            Reclaim::InUse(Note {
                warning: false,
                reason: "VolumeFailedRecycle",
                message: "Volume is used by pods: ns/p".into(),
            }),
        ),
        (
            with("Sometimes", json!({})),
            vec![],
            fail(
                "VolumeUnknownReclaimPolicy",
                "Volume has unrecognized PersistentVolumeReclaimPolicy",
            ),
        ),
    ];
    for (i, (v, users, want)) in table.iter().enumerate() {
        assert_eq!(&reclaim(v, users), want, "case {i}");
    }
    // Released: the claim is gone, has another uid, or is bound to another volume.
    let v = with("Delete", json!({}));
    let claim = |uid: &str, volume: &str| {
        pvc(
            "c",
            "1Gi",
            RWO,
            json!({"metadata": {"uid": uid}, "spec": {"volumeName": volume}}),
        )
    };
    assert!(is_released(&v, None));
    assert!(is_released(&v, Some(&claim("other", "v"))));
    assert!(is_released(&v, Some(&claim("u", "w"))));
    assert!(!is_released(&v, Some(&claim("u", "v"))));
    assert!(!is_released(&v, Some(&claim("u", ""))));
    assert!(!is_released(&pv("v", "1Gi", RWO, "", json!({})), None));
}

#[test]
fn binding_writes_what_upstream_writes() {
    let claim = pvc("c", "1Gi", RWO, json!({}));
    // The controller chose: the ref with uid and resourceVersion, and its annotation.
    let v = volume_bound_to(&pv("v", "2Gi", RWO, "", json!({})), &claim).expect("changed");
    let spec = v.spec.clone().expect("spec");
    let r = spec.claim_ref.expect("claimRef");
    assert_eq!(
        (
            r.kind.as_deref(),
            r.api_version.as_deref(),
            r.namespace.as_deref(),
            r.name.as_deref(),
            r.uid.as_deref(),
            r.resource_version.as_deref()
        ),
        (
            Some("PersistentVolumeClaim"),
            Some("v1"),
            Some("ns"),
            Some("c"),
            Some("uid-c"),
            Some("7")
        )
    );
    assert_eq!(
        v.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_BOUND_BY_CONTROLLER))
            .map(String::as_str),
        Some("yes")
    );
    assert!(
        volume_bound_to(&v, &claim).is_none(),
        "nothing more to write"
    );
    // Pre-bound by the user: the uid is filled in, no annotation.
    let pre = pv(
        "v",
        "2Gi",
        RWO,
        "",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "c"}}}),
    );
    let v2 = volume_bound_to(&pre, &claim).expect("changed");
    assert_eq!(
        v2.spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.as_deref()),
        Some("uid-c")
    );
    assert!(v2.metadata.annotations.is_none());

    // The claim: volumeName, bind-completed, bound-by-controller when the controller chose.
    let c = claim_bound_to(&claim, &v).expect("changed");
    assert_eq!(
        c.spec.as_ref().and_then(|s| s.volume_name.as_deref()),
        Some("v")
    );
    let a = c.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        (
            a.get(ANN_BIND_COMPLETED).map(String::as_str),
            a.get(ANN_BOUND_BY_CONTROLLER).map(String::as_str)
        ),
        (Some("yes"), Some("yes"))
    );
    assert!(claim_bound_to(&c, &v).is_none());
    // The user named the volume: no bound-by-controller.
    let named = pvc("c", "1Gi", RWO, json!({"spec": {"volumeName": "v"}}));
    let c2 = claim_bound_to(&named, &v).expect("changed");
    let a2 = c2.metadata.annotations.clone().unwrap_or_default();
    assert!(
        a2.contains_key(ANN_BIND_COMPLETED) && !a2.contains_key(ANN_BOUND_BY_CONTROLLER),
        "{a2:?}"
    );

    // The status: phase, the volume's capacity and access modes; cleared when Pending.
    let status = claim_status(&c, "Bound", Some(&v)).expect("changed");
    assert_eq!(status.phase.as_deref(), Some("Bound"));
    assert_eq!(
        status
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.as_str()),
        Some("2Gi")
    );
    assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    let mut bound = c.clone();
    bound.status = Some(status);
    assert!(
        claim_status(&bound, "Bound", Some(&v)).is_none(),
        "nothing more to write"
    );
    let pending = claim_status(&bound, "Pending", None).expect("changed");
    assert_eq!((pending.capacity, pending.access_modes), (None, None));
    assert!(claim_status(&claim, "Pending", None).is_none());
}

#[test]
fn unbinding_keeps_a_users_reservation() {
    let by_controller = pv(
        "v",
        "1Gi",
        RWO,
        "",
        json!({"metadata": {"annotations": {ANN_BOUND_BY_CONTROLLER: "yes"}},
        "spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "u"}}}),
    );
    let undone = volume_unbound(&by_controller);
    assert!(undone
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_none());
    assert!(undone.metadata.annotations.is_none());
    let by_user = pv(
        "v",
        "1Gi",
        RWO,
        "",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "c", "uid": "u"}}}),
    );
    let r = volume_unbound(&by_user)
        .spec
        .and_then(|s| s.claim_ref)
        .expect("kept");
    assert_eq!((r.name.as_deref(), r.uid), (Some("c"), None));
}

#[test]
fn written_objects_shadow_older_cached_copies() {
    let newer: super::Newer<PersistentVolume> = super::Newer::default();
    let cached = pv("v", "1Gi", RWO, "", json!({}));
    let mut mine = (*cached).clone();
    mine.metadata.resource_version = Some("11".into());
    newer.wrote(mine);
    assert_eq!(
        newer
            .fresh(cached.clone())
            .metadata
            .resource_version
            .as_deref(),
        Some("11")
    );
    // The cache caught up: its copy, and ours is forgotten.
    let caught_up = pv(
        "v",
        "1Gi",
        RWO,
        "",
        json!({"metadata": {"resourceVersion": "12"}}),
    );
    assert_eq!(
        newer.fresh(caught_up).metadata.resource_version.as_deref(),
        Some("12")
    );
    assert_eq!(
        newer.fresh(cached).metadata.resource_version.as_deref(),
        Some("10")
    );
}
