//! Namespace deletion, as upstream's namespace controller
//! (pkg/controller/namespace/deletion/namespaced_resources_deleter.go): a namespace marked
//! for deletion (the API server sets its phase `Terminating`) is emptied through the API:
//! every namespaced resource that discovery lists as deletable is deleted by collection
//! (background propagation); while content is left, the namespace's `status.conditions` say
//! what content and which finalizers hold it up, in upstream's words; once it is empty, the
//! `kubernetes` finalizer is removed through `namespaces/<name>/finalize`, and the server
//! removes the namespace.
//!
//! [`deletion_conditions`] is the pure part: what is left -> the conditions upstream writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::{Context, Error, Result, Task};

/// How long a discovery of the deletable resources is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// The namespace-scoped resources that can be listed and deleted.
#[derive(Clone)]
struct Deletable {
    resource: ApiResource,
    collection: bool,
}

struct State {
    ctx: Arc<Context>,
    discovered: Mutex<Option<(Instant, Arc<Vec<Deletable>>)>>,
}

impl State {
    async fn deletable(&self) -> Result<Arc<Vec<Deletable>>> {
        if let Some((at, found)) = &*self.discovered.lock() {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(found.clone());
            }
        }
        let discovery = Discovery::new(self.ctx.client.clone()).run().await?;
        let mut found = Vec::new();
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                if caps.scope == Scope::Namespaced
                    && caps.supports_operation("list")
                    && caps.supports_operation("delete")
                {
                    found.push(Deletable {
                        resource,
                        collection: caps.supports_operation("deletecollection"),
                    });
                }
            }
        }
        tracing::debug!(
            resources = found.len(),
            "discovered the deletable namespaced resources"
        );
        let found = Arc::new(found);
        *self.discovered.lock() = Some((Instant::now(), found.clone()));
        Ok(found)
    }
}

/// Sets up the `namespace` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let state = Arc::new(State {
        ctx: ctx.clone(),
        discovered: Mutex::new(None),
    });
    let controller = Controller::for_shared_stream(
        ctx.informers.subscribe::<Namespace>(),
        ctx.informers.store::<Namespace>(),
    );
    Ok(Box::pin(
        controller
            .run(
                reconcile,
                |_, e: &Error, _| {
                    tracing::debug!(error = %e, "namespace deletion failed; retrying");
                    Action::requeue(Duration::from_secs(2))
                },
                state,
            )
            .for_each(|_| async {}),
    ))
}

/// What is left in a namespace after a deletion pass: `{resource}.{group}` -> objects, and
/// finalizer -> objects holding it.
#[derive(Debug, Default, PartialEq)]
pub struct Remaining {
    pub content: BTreeMap<String, usize>,
    pub finalizers: BTreeMap<String, usize>,
}

/// The deletion conditions upstream's namespace controller writes for what is left
/// (`type`, `status`, `reason`, `message`), in its order.
pub fn deletion_conditions(
    left: &Remaining,
) -> Vec<(&'static str, &'static str, &'static str, String)> {
    let listed = |counts: &BTreeMap<String, usize>, each: &dyn Fn(&str, usize) -> String| {
        let mut items: Vec<String> = counts.iter().map(|(k, n)| each(k, *n)).collect();
        items.sort();
        items.join(", ")
    };
    let content = listed(&left.content, &|r, n| {
        format!("{r} has {n} resource instances")
    });
    let held = listed(&left.finalizers, &|f, n| {
        format!("{f} in {n} resource instances")
    });
    vec![
        (
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".to_owned(),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".to_owned(),
        ),
        (
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".to_owned(),
        ),
        if left.content.is_empty() {
            (
                "NamespaceContentRemaining",
                "False",
                "ContentRemoved",
                "All content successfully removed".to_owned(),
            )
        } else {
            (
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                format!("Some resources are remaining: {content}"),
            )
        },
        if left.finalizers.is_empty() {
            (
                "NamespaceFinalizersRemaining",
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".to_owned(),
            )
        } else {
            (
                "NamespaceFinalizersRemaining",
                "True",
                "SomeFinalizersRemain",
                format!("Some content in the namespace has finalizers remaining: {held}"),
            )
        },
    ]
}

/// The namespace's conditions with `wanted` merged in; a condition's time moves only when
/// it changes. `None` when nothing changes.
fn merged_conditions(
    current: &[NamespaceCondition],
    wanted: &[(&str, &str, &str, String)],
    now: Timestamp,
) -> Option<Vec<NamespaceCondition>> {
    let mut conditions = current.to_vec();
    let mut changed = false;
    for (kind, status, reason, message) in wanted {
        let fresh = NamespaceCondition {
            type_: (*kind).to_owned(),
            status: (*status).to_owned(),
            reason: Some((*reason).to_owned()),
            message: Some(message.clone()),
            last_transition_time: Some(Time(now)),
        };
        match conditions.iter_mut().find(|c| c.type_ == *kind) {
            None => conditions.push(fresh),
            Some(c)
                if c.status == *status
                    && c.reason.as_deref() == Some(*reason)
                    && c.message.as_deref() == Some(message.as_str()) =>
            {
                continue
            }
            Some(c) => *c = fresh,
        }
        changed = true;
    }
    changed.then_some(conditions)
}

/// Deletes what is left of the namespace's content; answers what is still there.
async fn delete_content(state: &State, ns: &str) -> Result<Remaining> {
    let mut left = Remaining::default();
    let background = DeleteParams::background();
    for d in state.deletable().await?.iter() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(state.ctx.client.clone(), ns, &d.resource);
        let items = api.list_metadata(&ListParams::default()).await?.items;
        if items.is_empty() {
            continue;
        }
        if d.collection
            && items
                .iter()
                .any(|o| o.metadata.deletion_timestamp.is_none())
        {
            match api
                .delete_collection(&background, &ListParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                Err(e) => return Err(e.into()),
            }
        } else if !d.collection {
            for obj in items
                .iter()
                .filter(|o| o.metadata.deletion_timestamp.is_none())
            {
                match api.delete(&obj.name_any(), &background).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // What the deletes left: objects waiting on finalizers or a grace period.
        let still = api.list_metadata(&ListParams::default()).await?.items;
        if still.is_empty() {
            continue;
        }
        let key = format!("{}.{}", d.resource.plural, d.resource.group);
        *left.content.entry(key).or_default() += still.len();
        for obj in &still {
            for f in obj.metadata.finalizers.iter().flatten() {
                *left.finalizers.entry(f.clone()).or_default() += 1;
            }
        }
    }
    Ok(left)
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<Namespace> = Api::all(state.ctx.client.clone());
    let left = delete_content(&state, &name).await?;
    tracing::debug!(namespace = %name, left = ?left, "namespace deletion pass");
    let current = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(conditions) =
        merged_conditions(&current, &deletion_conditions(&left), Timestamp::now())
    {
        let patch = json!({"status": {"conditions": conditions}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if !left.content.is_empty() {
        // Objects waiting on finalizers or kubelets: look again soon.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Empty: remove the `kubernetes` finalizer; the server then removes the namespace.
    let mut finalized = (*ns).clone();
    let spec = finalized.spec.get_or_insert_with(Default::default);
    let finalizers = spec.finalizers.take().unwrap_or_default();
    if !finalizers.iter().any(|f| f == "kubernetes") {
        return Ok(Action::await_change());
    }
    spec.finalizers = Some(
        finalizers
            .into_iter()
            .filter(|f| f != "kubernetes")
            .collect(),
    );
    tracing::debug!(namespace = %name, "namespace empty: finalizing");
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_say_what_content_and_finalizers_are_left() {
        let left = Remaining {
            content: BTreeMap::from([("pods.".to_owned(), 2), ("configmaps.".to_owned(), 1)]),
            finalizers: BTreeMap::from([("example.com/hold".to_owned(), 1)]),
        };
        let wanted = deletion_conditions(&left);
        let (kind, status, reason, message) = &wanted[3];
        assert_eq!(
            (*kind, *status, *reason),
            ("NamespaceContentRemaining", "True", "SomeResourcesRemain")
        );
        assert_eq!(message, "Some resources are remaining: configmaps. has 1 resource instances, pods. has 2 resource instances");
        assert_eq!(wanted[4].3, "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances");
        let t0 = Timestamp::now();
        let first = merged_conditions(&[], &wanted, t0).expect("all new");
        assert_eq!(first.len(), 5);
        assert_eq!(
            merged_conditions(
                &first,
                &wanted,
                t0 + k8s_openapi::jiff::SignedDuration::from_secs(5)
            ),
            None,
            "unchanged: times kept"
        );
        let empty = deletion_conditions(&Remaining::default());
        let later = t0 + k8s_openapi::jiff::SignedDuration::from_secs(9);
        let next = merged_conditions(&first, &empty, later).expect("changed");
        let content = next
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .expect("kept");
        assert_eq!(
            (
                content.status.as_str(),
                content.last_transition_time.clone()
            ),
            ("False", Some(Time(later)))
        );
        let discovery = next
            .iter()
            .find(|c| c.type_ == "NamespaceDeletionDiscoveryFailure")
            .expect("kept");
        assert_eq!(discovery.last_transition_time, Some(Time(t0)));
    }
}
