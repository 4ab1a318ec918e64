//! Integration: PersistentVolumes and claims through the in-process server with the real
//! kubectl, on simulated nodes: static binding to the best of several volumes, pre-binding
//! either way, a claim that finds nothing (and says so in `kubectl describe`), claims of a
//! `WaitForFirstConsumer` class and of an external provisioner, the protection finalizers
//! (a claim in use stays Terminating until its pod goes, a Bound volume until its claim
//! goes), and the reclaim policies of released volumes.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;
use serde_json::json;

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(30);

fn pv_yaml(name: &str, size: &str, modes: &[&str], class: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity:\n    storage: {size}\n  accessModes: {modes:?}\n  storageClassName: \"{class}\"\n  hostPath:\n    path: /tmp/skiff-volumes-{name}\n{extra}---\n"
    )
}

fn pvc_yaml(name: &str, size: &str, modes: &[&str], spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  accessModes: {modes:?}\n  resources:\n    requests:\n      storage: {size}\n{spec_extra}---\n"
    )
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn finalizers(meta: &kube::api::ObjectMeta) -> Vec<String> {
    meta.finalizers.clone().unwrap_or_default()
}

/// Waits until the claim is Bound to `volume` and the volume Bound back; both as saved.
async fn wait_bound(
    c: &Cluster,
    claim: &str,
    volume: &str,
) -> Result<(PersistentVolumeClaim, PersistentVolume)> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    wait_for(&format!("{claim} bound to {volume}"), WAIT, || async {
        let pvc = claims.get(claim).await?;
        let pv = volumes.get(volume).await?;
        let claim_bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
            && pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(volume);
        let volume_bound = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        Ok((claim_bound && volume_bound).then_some((pvc, pv)))
    })
    .await
}

async fn phase_of(volumes: &Api<PersistentVolume>, name: &str) -> Result<Option<String>> {
    Ok(volumes
        .get_opt(name)
        .await?
        .and_then(|v| v.status.and_then(|s| s.phase)))
}

/// Claims bind to the smallest Available volume of their class with their access modes
/// and volume mode; the writes are upstream's; a claim nothing fits stays Pending with
/// `FailedBinding`.
async fn claims_bind_to_the_best_volume(c: &Cluster) -> Result<()> {
    let mut manifest = String::new();
    manifest += &pv_yaml("pv-small", "1Gi", &["ReadWriteOnce"], "", "");
    manifest += &pv_yaml("pv-fit", "2Gi", &["ReadWriteOnce"], "", "");
    manifest += &pv_yaml("pv-big", "5Gi", &["ReadWriteOnce"], "", "");
    manifest += &pv_yaml("pv-rwx", "2Gi", &["ReadWriteOnce", "ReadWriteMany"], "", "");
    manifest += &pv_yaml("pv-fast", "3Gi", &["ReadWriteOnce"], "fast", "");
    manifest += &pv_yaml(
        "pv-block",
        "2Gi",
        &["ReadWriteOnce"],
        "",
        "  volumeMode: Block\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest))?;
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    for name in [
        "pv-small", "pv-fit", "pv-big", "pv-rwx", "pv-fast", "pv-block",
    ] {
        wait_for(&format!("{name} Available"), WAIT, || async {
            Ok((phase_of(&volumes, name).await?.as_deref() == Some("Available")).then_some(()))
        })
        .await?;
        let pv = volumes.get(name).await?;
        ensure!(
            finalizers(&pv.metadata) == ["kubernetes.io/pv-protection"],
            "{name}: {:?}",
            pv.metadata.finalizers
        );
    }
    let mut claims = String::new();
    // No class at all (and no default class): volumes of class "".
    claims += &pvc_yaml("data", "1500Mi", &["ReadWriteOnce"], "");
    claims += &pvc_yaml(
        "shared",
        "1Gi",
        &["ReadWriteMany"],
        "  storageClassName: \"\"\n",
    );
    claims += &pvc_yaml(
        "quick",
        "1Gi",
        &["ReadWriteOnce"],
        "  storageClassName: fast\n",
    );
    claims += &pvc_yaml(
        "raw",
        "1Gi",
        &["ReadWriteOnce"],
        "  storageClassName: \"\"\n  volumeMode: Block\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&claims))?;
    let (pvc, pv) = wait_bound(c, "data", "pv-fit").await?;
    wait_bound(c, "shared", "pv-rwx").await?;
    wait_bound(c, "quick", "pv-fast").await?;
    wait_bound(c, "raw", "pv-block").await?;

    // What upstream writes on both sides.
    let r = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.clone())
        .unwrap_or_default();
    ensure!(
        r.kind.as_deref() == Some("PersistentVolumeClaim")
            && r.namespace.as_deref() == Some("default")
            && r.name.as_deref() == Some("data")
            && r.uid == pvc.metadata.uid
            && r.resource_version.is_some(),
        "{r:?}"
    );
    ensure!(
        annotation(&pv.metadata, "pv.kubernetes.io/bound-by-controller") == Some("yes"),
        "{:?}",
        pv.metadata.annotations
    );
    ensure!(
        annotation(&pvc.metadata, "pv.kubernetes.io/bind-completed") == Some("yes")
            && annotation(&pvc.metadata, "pv.kubernetes.io/bound-by-controller") == Some("yes"),
        "{:?}",
        pvc.metadata.annotations
    );
    ensure!(
        finalizers(&pvc.metadata) == ["kubernetes.io/pvc-protection"],
        "{:?}",
        pvc.metadata.finalizers
    );
    let status = pvc.status.clone().unwrap_or_default();
    ensure!(
        status
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.as_str())
            == Some("2Gi")
            && status.access_modes == Some(vec!["ReadWriteOnce".to_string()]),
        "{status:?}"
    );
    for name in ["pv-small", "pv-big"] {
        ensure!(
            phase_of(&volumes, name).await?.as_deref() == Some("Available"),
            "{name} is still free"
        );
    }
    // kubectl shows both sides as upstream's printers do.
    let got = c.kubectl(&["get", "pvc", "data", "--no-headers"])?;
    let cols: Vec<&str> = got.split_whitespace().collect();
    ensure!(
        cols[..5] == ["data", "Bound", "pv-fit", "2Gi", "RWO"],
        "{got}"
    );
    let got = c.kubectl(&["get", "pv", "pv-fit", "--no-headers"])?;
    ensure!(
        got.contains("Bound") && got.contains("default/data"),
        "{got}"
    );

    // Nothing left that fits: Pending, and the reason in `kubectl describe`.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pvc_yaml("huge", "50Gi", &["ReadWriteOnce"], "")),
    )?;
    let described = wait_for("FailedBinding on huge", WAIT, || async {
        let out = c.kubectl(&["describe", "pvc", "huge"])?;
        Ok(out.contains("FailedBinding").then_some(out))
    })
    .await?;
    ensure!(
        described
            .contains("no persistent volumes available for this claim and no storage class is set")
            && described.contains("persistentvolume-controller"),
        "{described}"
    );
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let huge = claims_api.get("huge").await?;
    ensure!(
        huge.status.and_then(|s| s.phase).as_deref() == Some("Pending")
            && huge.spec.and_then(|s| s.volume_name).is_none(),
        "huge stays unbound"
    );
    // A volume that fits appears: it is taken.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pv_yaml("pv-huge", "64Gi", &["ReadWriteOnce"], "", "")),
    )?;
    wait_bound(c, "huge", "pv-huge").await?;
    Ok(())
}

/// A volume reserved for a claim (its `claimRef`) and a claim naming its volume
/// (`volumeName`) bind to each other, not to a better fit; the annotations say who chose.
async fn pre_bound_volumes_and_claims_bind_to_each_other(c: &Cluster) -> Result<()> {
    let mut manifest = String::new();
    manifest += &pv_yaml("decoy", "1Gi", &["ReadWriteOnce"], "", "");
    manifest += &pv_yaml(
        "reserved",
        "4Gi",
        &["ReadWriteOnce"],
        "",
        "  claimRef:\n    namespace: default\n    name: wants-reserved\n",
    );
    manifest += &pv_yaml("chosen", "8Gi", &["ReadWriteOnce"], "", "");
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest))?;
    let mut claims = String::new();
    claims += &pvc_yaml("wants-reserved", "1Gi", &["ReadWriteOnce"], "");
    claims += &pvc_yaml(
        "names-chosen",
        "1Gi",
        &["ReadWriteOnce"],
        "  volumeName: chosen\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&claims))?;

    let (pvc, pv) = wait_bound(c, "wants-reserved", "reserved").await?;
    ensure!(
        annotation(&pv.metadata, "pv.kubernetes.io/bound-by-controller").is_none(),
        "the user bound the volume: {:?}",
        pv.metadata.annotations
    );
    ensure!(
        annotation(&pvc.metadata, "pv.kubernetes.io/bound-by-controller") == Some("yes"),
        "{:?}",
        pvc.metadata.annotations
    );
    ensure!(
        pv.spec.and_then(|s| s.claim_ref).and_then(|r| r.uid) == pvc.metadata.uid,
        "the reservation gets the claim's uid"
    );

    let (pvc, pv) = wait_bound(c, "names-chosen", "chosen").await?;
    ensure!(
        annotation(&pv.metadata, "pv.kubernetes.io/bound-by-controller") == Some("yes"),
        "{:?}",
        pv.metadata.annotations
    );
    ensure!(
        annotation(&pvc.metadata, "pv.kubernetes.io/bound-by-controller").is_none()
            && annotation(&pvc.metadata, "pv.kubernetes.io/bind-completed") == Some("yes"),
        "the user chose the volume: {:?}",
        pvc.metadata.annotations
    );
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    ensure!(phase_of(&volumes, "decoy").await?.as_deref() == Some("Available"));

    // A claim naming a volume that is too small is told why.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pvc_yaml(
            "names-decoy",
            "2Gi",
            &["ReadWriteOnce"],
            "  volumeName: decoy\n",
        )),
    )?;
    let described = wait_for("VolumeMismatch on names-decoy", WAIT, || async {
        let out = c.kubectl(&["describe", "pvc", "names-decoy"])?;
        Ok(out.contains("VolumeMismatch").then_some(out))
    })
    .await?;
    ensure!(
        described.contains("Cannot bind to requested volume \"decoy\": requested PV is too small"),
        "{described}"
    );
    Ok(())
}

/// A claim of a `WaitForFirstConsumer` class waits (the volume of that class stays
/// Available); a claim of a class with an external provisioner waits for it; a Bound claim
/// whose volume is removed becomes Lost.
async fn classes_decide_how_claims_wait(c: &Cluster) -> Result<()> {
    let classes = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: ext\nprovisioner: example.com/nfs\n---\n";
    c.kubectl_stdin(&["apply", "-f", "-"], Some(classes))?;
    let mut objects = String::new();
    objects += &pv_yaml("local-pv", "1Gi", &["ReadWriteOnce"], "local", "");
    objects += &pvc_yaml(
        "later",
        "1Gi",
        &["ReadWriteOnce"],
        "  storageClassName: local\n",
    );
    objects += &pvc_yaml(
        "external",
        "1Gi",
        &["ReadWriteOnce"],
        "  storageClassName: ext\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&objects))?;
    let described = wait_for("WaitForFirstConsumer on later", WAIT, || async {
        let out = c.kubectl(&["describe", "pvc", "later"])?;
        Ok(out.contains("WaitForFirstConsumer").then_some(out))
    })
    .await?;
    ensure!(
        described.contains("waiting for first consumer to be created before binding"),
        "{described}"
    );
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    ensure!(phase_of(&volumes, "local-pv").await?.as_deref() == Some("Available"));
    let described = wait_for("ExternalProvisioning on external", WAIT, || async {
        let out = c.kubectl(&["describe", "pvc", "external"])?;
        Ok(out.contains("ExternalProvisioning").then_some(out))
    })
    .await?;
    ensure!(
        described.contains("Waiting for a volume to be created either by the external provisioner 'example.com/nfs'"),
        "{described}"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let external = claims.get("external").await?;
    ensure!(
        annotation(
            &external.metadata,
            "volume.kubernetes.io/storage-provisioner"
        ) == Some("example.com/nfs"),
        "{:?}",
        external.metadata.annotations
    );

    // A Bound claim loses its volume (finalizer taken off by hand): Lost, ClaimLost.
    let mut objects = pv_yaml("doomed", "1Gi", &["ReadWriteOnce"], "", "");
    objects += &pvc_yaml(
        "orphan",
        "1Gi",
        &["ReadWriteOnce"],
        "  volumeName: doomed\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&objects))?;
    wait_bound(c, "orphan", "doomed").await?;
    volumes.delete("doomed", &DeleteParams::default()).await?;
    let pv = volumes.get("doomed").await?;
    ensure!(
        pv.metadata.deletion_timestamp.is_some()
            && finalizers(&pv.metadata) == ["kubernetes.io/pv-protection"],
        "a Bound volume is protected: {:?}",
        pv.metadata
    );
    volumes
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    wait_for("orphan Lost", WAIT, || async {
        let pvc = claims.get("orphan").await?;
        Ok((pvc.status.and_then(|s| s.phase).as_deref() == Some("Lost")).then_some(()))
    })
    .await?;
    let described = c.kubectl(&["describe", "pvc", "orphan"])?;
    ensure!(
        described.contains("ClaimLost")
            && described
                .contains("Bound claim has lost its PersistentVolume. Data on the volume is lost!"),
        "{described}"
    );
    Ok(())
}

/// A claim a pod uses stays Terminating, finalizer and all, until the pod is gone; then
/// its volume is Released (Retain) and, no longer Bound, can be deleted.
async fn claims_in_use_and_bound_volumes_are_protected(c: &Cluster) -> Result<()> {
    c.wait_nodes_ready(1).await?;
    let mut objects = pv_yaml(
        "keep",
        "1Gi",
        &["ReadWriteOnce"],
        "",
        "  persistentVolumeReclaimPolicy: Retain\n",
    );
    objects += &pvc_yaml("used", "1Gi", &["ReadWriteOnce"], "");
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&objects))?;
    wait_bound(c, "used", "keep").await?;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: user\n  namespace: default\nspec:\n  containers:\n  - name: app\n    image: busybox\n    volumeMounts:\n    - name: data\n      mountPath: /data\n  volumes:\n  - name: data\n    persistentVolumeClaim:\n      claimName: used\n";
    c.kubectl_stdin(&["apply", "-f", "-"], Some(pod))?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    wait_for("the pod scheduled", WAIT, || async {
        let p = pods.get("user").await?;
        Ok(p.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty()))
    })
    .await?;

    c.kubectl(&["delete", "pvc", "used", "--wait=false"])?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    // Give the protection controller time to (wrongly) let it go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pvc = claims.get("used").await?;
    ensure!(
        pvc.metadata.deletion_timestamp.is_some()
            && finalizers(&pvc.metadata) == ["kubernetes.io/pvc-protection"],
        "{:?}",
        pvc.metadata
    );
    let got = c.kubectl(&["get", "pvc", "used", "--no-headers"])?;
    ensure!(
        got.split_whitespace().nth(1) == Some("Terminating"),
        "{got}"
    );
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    ensure!(phase_of(&volumes, "keep").await?.as_deref() == Some("Bound"));

    pods.delete("user", &DeleteParams::default().grace_period(0))
        .await?;
    wait_for("the claim gone after its pod", WAIT, || async {
        Ok(claims.get_opt("used").await?.is_none().then_some(()))
    })
    .await?;
    wait_for("keep Released", WAIT, || async {
        Ok((phase_of(&volumes, "keep").await?.as_deref() == Some("Released")).then_some(()))
    })
    .await?;
    let pv = volumes.get("keep").await?;
    ensure!(
        pv.spec
            .and_then(|s| s.claim_ref)
            .and_then(|r| r.name)
            .as_deref()
            == Some("used"),
        "a released volume keeps its claimRef"
    );
    // Released is not Bound: a delete goes through.
    volumes.delete("keep", &DeleteParams::default()).await?;
    wait_for("keep deleted", WAIT, || async {
        Ok(volumes.get_opt("keep").await?.is_none().then_some(()))
    })
    .await?;

    // A Bound volume stays Terminating until its claim goes.
    let mut objects = pv_yaml("held", "1Gi", &["ReadWriteOnce"], "", "");
    objects += &pvc_yaml("holder", "1Gi", &["ReadWriteOnce"], "  volumeName: held\n");
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&objects))?;
    wait_bound(c, "holder", "held").await?;
    c.kubectl(&["delete", "pv", "held", "--wait=false"])?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pv = volumes.get("held").await?;
    ensure!(
        pv.metadata.deletion_timestamp.is_some()
            && finalizers(&pv.metadata) == ["kubernetes.io/pv-protection"],
        "{:?}",
        pv.metadata
    );
    let got = c.kubectl(&["get", "pv", "held", "--no-headers"])?;
    ensure!(got.contains("Terminating"), "{got}");
    claims.delete("holder", &DeleteParams::default()).await?;
    wait_for("held gone after its claim", WAIT, || async {
        Ok(volumes.get_opt("held").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

/// Released volumes: `Delete` removes the PersistentVolume, `Recycle` fails as upstream
/// without a recycler, `Retain` keeps it Released (above).
async fn released_volumes_follow_their_reclaim_policy(c: &Cluster) -> Result<()> {
    let mut objects = pv_yaml(
        "gone-soon",
        "1Gi",
        &["ReadWriteOnce"],
        "",
        "  persistentVolumeReclaimPolicy: Delete\n",
    );
    objects += &pv_yaml(
        "recycled",
        "1Gi",
        &["ReadWriteOnce"],
        "",
        "  persistentVolumeReclaimPolicy: Recycle\n",
    );
    objects += &pvc_yaml("a", "1Gi", &["ReadWriteOnce"], "  volumeName: gone-soon\n");
    objects += &pvc_yaml("b", "1Gi", &["ReadWriteOnce"], "  volumeName: recycled\n");
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&objects))?;
    wait_bound(c, "a", "gone-soon").await?;
    wait_bound(c, "b", "recycled").await?;
    c.kubectl(&["delete", "pvc", "a", "b"])?;
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    wait_for("gone-soon deleted", WAIT, || async {
        Ok(volumes.get_opt("gone-soon").await?.is_none().then_some(()))
    })
    .await?;
    let pv = wait_for("recycled Failed", WAIT, || async {
        let pv = volumes.get("recycled").await?;
        let failed = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
        Ok(failed.then_some(pv))
    })
    .await?;
    ensure!(
        pv.status.and_then(|s| s.message).as_deref()
            == Some("No recycler plugin found for the volume!"),
        "the reason is upstream's"
    );
    let described = c.kubectl(&["describe", "pv", "recycled"])?;
    ensure!(described.contains("VolumeFailedRecycle"), "{described}");
    Ok(())
}

on_both_datastores!(nodes: 1;
    claims_bind_to_the_best_volume,
    pre_bound_volumes_and_claims_bind_to_each_other,
    classes_decide_how_claims_wait,
    claims_in_use_and_bound_volumes_are_protected,
    released_volumes_follow_their_reclaim_policy,
);
