//! Integration: the garbage collector (skiff-controllers' `garbagecollector`, a client of the
//! API) on the in-process server, both datastores: background deletion down a chain of
//! owners, a dependent with a second owner kept (its dangling reference removed); foreground
//! deletion waiting for the dependents with `blockOwnerDeletion` (a dependent with
//! dependents of its own deleted in the foreground in turn); orphaning; dependents of owners
//! that never existed (or exist with another uid) collected, of an owner of a kind the
//! server does not serve kept; a cluster-scoped owner.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(30);

on_both_datastores!(nodes: 0;
    background_deletion_follows_the_chain,
    foreground_deletion_waits_for_blocking_dependents,
    orphaned_dependents_lose_the_reference,
    dependents_of_absent_owners_are_collected,
    a_cluster_scoped_owner,
);

fn owner_of<K: Resource<DynamicType = ()>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

fn config_map(name: &str, owners: Vec<OwnerReference>, finalizers: &[&str]) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
        "data": {"k": "v"},
    }))?)
}

async fn create(api: &Api<ConfigMap>, cm: ConfigMap) -> Result<ConfigMap> {
    Ok(api.create(&PostParams::default(), &cm).await?)
}

async fn wait_gone(api: &Api<ConfigMap>, name: &str) -> Result<()> {
    wait_for(&format!("configmap {name} gone"), WAIT, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

/// Stays for a few seconds (the collector has had time to act).
async fn stays(api: &Api<ConfigMap>, name: &str) -> Result<ConfigMap> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(api.get(name).await?)
}

async fn background_deletion_follows_the_chain(c: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let root = create(&cms, config_map("root", vec![], &[])?).await?;
    let child = create(&cms, config_map("child", vec![owner_of(&root, true)], &[])?).await?;
    create(
        &cms,
        config_map("grandchild", vec![owner_of(&child, false)], &[])?,
    )
    .await?;
    let other = create(&cms, config_map("other-owner", vec![], &[])?).await?;
    create(
        &cms,
        config_map(
            "shared",
            vec![owner_of(&root, false), owner_of(&other, false)],
            &[],
        )?,
    )
    .await?;
    cms.delete("root", &DeleteParams::background()).await?;
    wait_gone(&cms, "child").await?;
    wait_gone(&cms, "grandchild").await?;
    // An owner is left: kept, without the reference to the one that went.
    let shared = wait_for("the dangling reference removed", WAIT, || async {
        let s = cms.get("shared").await?;
        Ok((s.owner_references().len() == 1).then_some(s))
    })
    .await?;
    ensure!(shared.owner_references()[0].uid == other.uid().unwrap_or_default());
    // The collector's reads are metadata-only, as upstream's metadata informers' are.
    let partial = cms.get_metadata("shared").await?;
    ensure!(
        partial.types.as_ref().map(|t| t.kind.as_str()) == Some("PartialObjectMetadata"),
        "{:?}",
        partial.types
    );
    let list = cms.list_metadata(&Default::default()).await?;
    ensure!(
        list.types.kind == "PartialObjectMetadataList"
            && list.items.iter().any(|o| o.name_any() == "shared"),
        "{:?}",
        list.types
    );
    Ok(())
}

async fn foreground_deletion_waits_for_blocking_dependents(c: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = create(&cms, config_map("fg", vec![], &[])?).await?;
    // A blocking dependent held by a finalizer of its own, with a dependent of its own.
    let blocker = create(
        &cms,
        config_map(
            "blocker",
            vec![owner_of(&owner, true)],
            &["example.com/hold"],
        )?,
    )
    .await?;
    create(
        &cms,
        config_map("leaf", vec![owner_of(&blocker, true)], &[])?,
    )
    .await?;
    create(
        &cms,
        config_map("free", vec![owner_of(&owner, false)], &[])?,
    )
    .await?;
    cms.delete("fg", &DeleteParams::foreground()).await?;
    // Every dependent is deleted; the non-blocking one and the leaf go.
    wait_gone(&cms, "free").await?;
    wait_gone(&cms, "leaf").await?;
    // The blocker was deleted in the foreground (it had a dependent); once the leaf went,
    // the collector removed its foregroundDeletion finalizer; its own finalizer holds it.
    let held = wait_for("the blocker waiting on its own finalizer", WAIT, || async {
        let b = cms.get("blocker").await?;
        Ok(
            (b.meta().deletion_timestamp.is_some() && b.finalizers() == ["example.com/hold"])
                .then_some(b),
        )
    })
    .await?;
    ensure!(held.uid() == blocker.uid());
    let waiting = stays(&cms, "fg").await?;
    ensure!(
        waiting.meta().deletion_timestamp.is_some()
            && waiting.finalizers() == ["foregroundDeletion"],
        "the owner waits for its blocking dependent: {:?}",
        waiting.metadata
    );
    // The blocker's finalizer goes: it goes, then the owner.
    cms.patch(
        "blocker",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    wait_gone(&cms, "blocker").await?;
    wait_gone(&cms, "fg").await?;
    Ok(())
}

async fn orphaned_dependents_lose_the_reference(c: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = create(&cms, config_map("parent", vec![], &[])?).await?;
    let keeper = create(&cms, config_map("keeper", vec![], &[])?).await?;
    create(&cms, config_map("a", vec![owner_of(&owner, true)], &[])?).await?;
    create(
        &cms,
        config_map(
            "b",
            vec![owner_of(&owner, false), owner_of(&keeper, false)],
            &[],
        )?,
    )
    .await?;
    cms.delete("parent", &DeleteParams::orphan()).await?;
    wait_gone(&cms, "parent").await?;
    let a = cms.get("a").await?;
    ensure!(a.owner_references().is_empty(), "{:?}", a.metadata);
    let b = cms.get("b").await?;
    ensure!(
        b.owner_references().len() == 1
            && b.owner_references()[0].uid == keeper.uid().unwrap_or_default(),
        "{:?}",
        b.metadata
    );
    // The collector's write is tracked: no manager still owns the removed reference.
    let managed = serde_json::to_string(&a.metadata.managed_fields)?;
    let owner_uid = owner.uid().unwrap_or_default();
    ensure!(
        managed.contains("f:ownerReferences") && !managed.contains(&owner_uid),
        "{managed}"
    );
    stays(&cms, "a").await?;
    Ok(())
}

async fn dependents_of_absent_owners_are_collected(c: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let ghost = |api_version: &str, kind: &str, name: &str, uid: &str| OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    // An owner that never existed.
    create(
        &cms,
        config_map(
            "never",
            vec![ghost(
                "apps/v1",
                "Deployment",
                "nobody",
                "0e9d2b7c-0000-4000-8000-000000000001",
            )],
            &[],
        )?,
    )
    .await?;
    // An owner by that name exists, with another uid: absent too.
    let real = create(&cms, config_map("real", vec![], &[])?).await?;
    create(
        &cms,
        config_map(
            "mismatch",
            vec![ghost(
                "v1",
                "ConfigMap",
                "real",
                "0e9d2b7c-0000-4000-8000-000000000002",
            )],
            &[],
        )?,
    )
    .await?;
    // The owner is there: kept.
    create(&cms, config_map("owned", vec![owner_of(&real, true)], &[])?).await?;
    // A kind the server does not serve: never taken for absent.
    create(
        &cms,
        config_map(
            "unknown-kind",
            vec![ghost(
                "example.com/v1",
                "Widget",
                "w",
                "0e9d2b7c-0000-4000-8000-000000000003",
            )],
            &[],
        )?,
    )
    .await?;
    wait_gone(&cms, "never").await?;
    wait_gone(&cms, "mismatch").await?;
    stays(&cms, "owned").await?;
    let kept = cms.get("unknown-kind").await?;
    ensure!(kept.owner_references().len() == 1);
    ensure!(cms.get("real").await?.uid() == real.uid());
    Ok(())
}

async fn a_cluster_scoped_owner(c: &Cluster) -> Result<()> {
    let pcs: Api<PriorityClass> = Api::all(c.client.clone());
    let pc: PriorityClass =
        serde_json::from_value(json!({"metadata": {"name": "gc-owner"}, "value": 1000}))?;
    let pc = pcs.create(&PostParams::default(), &pc).await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "kube-public");
    create(
        &cms,
        config_map("owned-by-cluster", vec![owner_of(&pc, false)], &[])?,
    )
    .await?;
    stays(&cms, "owned-by-cluster").await?;
    pcs.delete("gc-owner", &DeleteParams::background()).await?;
    wait_gone(&cms, "owned-by-cluster").await?;
    Ok(())
}
