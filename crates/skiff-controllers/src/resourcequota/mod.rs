//! The ResourceQuota controller, as upstream's pkg/controller/resourcequota: every quota's
//! `status.hard` follows its `spec.hard`, and `status.used` is measured from the objects of
//! its namespace (pods from the shared cache; Services, claims and object counts such as
//! `count/deployments.apps` by a list of the namespace), with the evaluators quota
//! admission uses (`skiff_api::quota`).
//!
//! A quota is recalculated when it is new or its `spec` changes (not on the `status.used`
//! writes of quota admission, as upstream, whose charges the controller would otherwise
//! race), when an object it may count is deleted or a pod ends (replenishment: the shared
//! informers of pods, Services, claims, ConfigMaps and Secrets, and a metadata watch of any
//! other kind a quota counts, started when a quota first names it), and every
//! [`RESYNC`] (upstream's `--resource-quota-sync-period`). The status is written with the
//! quota's resourceVersion, so a charge made meanwhile by admission makes the write fail
//! and the sync run again on fresh state.
//!
//! [`evaluators_for`] and [`plan`] are the pure decisions.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
};
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use skiff_api::quota::{self, Evaluator};

use crate::informers::Kind;
use crate::pods::key_of;
use crate::replicaset::backoff;
use crate::{Context, Error, Result, Task};

/// Upstream's `--resource-quota-sync-period` default.
pub const RESYNC: Duration = Duration::from_secs(300);

/// The evaluators a quota with these `spec.hard` names needs, each with the names it
/// measures (the pod, Service and claim evaluators first, then one object count per other
/// `count/<resource>.<group>` or legacy name). Names nothing measures are left out, so they
/// get no usage (as upstream).
pub fn evaluators_for(names: &[String]) -> Vec<(Evaluator, Vec<String>)> {
    let mut out: Vec<(Evaluator, Vec<String>)> = Vec::new();
    for e in [Evaluator::Pods, Evaluator::Services, Evaluator::Claims] {
        let m = e.matching_resources(names);
        if !m.is_empty() {
            out.push((e, m));
        }
    }
    for name in names {
        if out.iter().any(|(_, m)| m.contains(name)) {
            continue;
        }
        let target = match name.as_str() {
            "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas" => {
                Some((String::new(), name.clone()))
            }
            _ => Evaluator::for_count_name(name),
        };
        let Some((group, resource)) = target else {
            continue;
        };
        let Some(e) = Evaluator::for_resource(&group, &resource) else {
            continue;
        };
        let m = e.matching_resources(names);
        if !m.is_empty() {
            out.push((e, m));
        }
    }
    out
}

/// What one evaluator measured: the evaluator, the quota's names it measures, and the
/// objects it counted (`None`: the list failed).
pub type Measured = (Evaluator, Vec<String>, Option<Vec<Value>>);

/// Upstream's `syncResourceQuota`: the status `quota` should have, given the objects each
/// evaluator measures (`None`: where a list failed, that evaluator's names keep their last
/// usage), or `None` when it has it already.
pub fn plan(
    quota: &Value,
    measured: &[Measured],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Value> {
    let mut used = quota::ResourceList::new();
    for (evaluator, names, objects) in measured {
        if let Some(objects) = objects {
            let stats = quota::usage_stats(evaluator, quota, names, objects.iter(), now);
            used = quota::add(&used, &stats);
        }
    }
    quota::desired_status(quota, &used)
}

struct State {
    ctx: Arc<Context>,
    quotas: Store<ResourceQuota>,
    pods: Store<Pod>,
    /// Discovered list endpoints of object-count resources, by (group, resource).
    resources: Mutex<HashMap<(String, String), ApiResource>>,
    /// The object-count resources watched for deletions (upstream's quota monitors), and
    /// where their watches send the quotas to recalculate.
    monitored: Mutex<std::collections::HashSet<(String, String)>>,
    replenish: futures::channel::mpsc::UnboundedSender<ObjectRef<ResourceQuota>>,
    failures: Mutex<HashMap<String, u32>>,
}

/// The quotas of `ns`, to recalculate.
fn quotas_in(store: &Store<ResourceQuota>, ns: &str) -> Vec<ObjectRef<ResourceQuota>> {
    store
        .state()
        .iter()
        .filter(|q| q.namespace().as_deref() == Some(ns))
        .map(|q| ObjectRef::from_obj(&**q))
        .collect()
}

/// Wakes the quotas of an object's namespace when the object is gone from `store` (the
/// informers apply an event before they hand it on, so a deleted object is no longer there).
fn on_delete<K: Kind>(
    quotas: Store<ResourceQuota>,
    store: Store<K>,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static {
    move |obj: Arc<K>| {
        if store.get(&ObjectRef::from_obj(&*obj)).is_some() {
            return Vec::new();
        }
        quotas_in(&quotas, &obj.namespace().unwrap_or_default())
    }
}

/// Sets up the `resourcequota` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let quotas = informers.store::<ResourceQuota>();
    let pods = informers.store::<Pod>();
    let (replenish, replenished) = futures::channel::mpsc::unbounded();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        quotas: quotas.clone(),
        pods: pods.clone(),
        resources: Mutex::new(HashMap::new()),
        monitored: Mutex::new(std::collections::HashSet::new()),
        replenish,
        failures: Mutex::new(HashMap::new()),
    });
    // A quota wakes the controller when it is first seen or its spec changes, not for the
    // usage admission writes into its status.
    let mut seen: HashMap<String, Value> = HashMap::new();
    let for_specs = quotas.clone();
    let changed_specs =
        informers
            .subscribe::<ResourceQuota>()
            .filter(move |q: &Arc<ResourceQuota>| {
                let key = key_of(&q.metadata);
                if for_specs.get(&ObjectRef::from_obj(&**q)).is_none() {
                    // Deleted: nothing to do, and nothing to remember.
                    seen.remove(&key);
                    return futures::future::ready(false);
                }
                let spec = serde_json::to_value(&q.spec).unwrap_or(Value::Null);
                let changed = seen.get(&key) != Some(&spec);
                seen.insert(key, spec);
                futures::future::ready(changed)
            });
    let for_pods = (quotas.clone(), pods.clone());
    let controller = Controller::for_shared_stream(changed_specs, quotas.clone())
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            let (quotas, pods) = &for_pods;
            let gone = pods.get(&ObjectRef::from_obj(&*pod)).is_none();
            let ended = matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            if gone || ended {
                quotas_in(quotas, &pod.namespace().unwrap_or_default())
            } else {
                Vec::new()
            }
        })
        .watches_shared_stream(
            informers.subscribe::<Service>(),
            on_delete(quotas.clone(), informers.store::<Service>()),
        )
        .watches_shared_stream(
            informers.subscribe::<PersistentVolumeClaim>(),
            on_delete(quotas.clone(), informers.store::<PersistentVolumeClaim>()),
        )
        .watches_shared_stream(
            informers.subscribe::<ConfigMap>(),
            on_delete(quotas.clone(), informers.store::<ConfigMap>()),
        )
        .watches_shared_stream(
            informers.subscribe::<Secret>(),
            on_delete(quotas.clone(), informers.store::<Secret>()),
        )
        .reconcile_on(replenished);
    let synced = futures::future::join(
        informers.synced::<ResourceQuota>(),
        informers.synced::<Pod>(),
    );
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

fn error_policy(q: Arc<ResourceQuota>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&q.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "resource quota sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(q: Arc<ResourceQuota>, state: Arc<State>) -> Result<Action> {
    let result = sync(&q, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(&q.metadata));
    }
    result
}

fn values<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect()
}

/// The list endpoint of `resource` in `group` (discovered once).
async fn api_resource(state: &State, group: &str, resource: &str) -> Result<Option<ApiResource>> {
    let key = (group.to_owned(), resource.to_owned());
    if let Some(r) = state.resources.lock().get(&key) {
        return Ok(Some(r.clone()));
    }
    let found = match kube::discovery::group(&state.ctx.client, group).await {
        Ok(g) => g
            .recommended_resources()
            .into_iter()
            .map(|(r, _)| r)
            .find(|r| r.plural == resource),
        Err(kube::Error::Discovery(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &found {
        state.resources.lock().insert(key, r.clone());
    }
    Ok(found)
}

/// Kinds whose deletions the shared informers already report.
fn informed(group: &str, resource: &str) -> bool {
    group.is_empty()
        && matches!(
            resource,
            "pods" | "services" | "persistentvolumeclaims" | "configmaps" | "secrets"
        )
}

/// Starts watching `ar`'s objects for deletions, once per resource: each deletion wakes the
/// quotas of its namespace (upstream's quota monitor for a resource a quota counts).
fn monitor(state: &State, group: &str, resource: &str, ar: &ApiResource) {
    if informed(group, resource)
        || !state
            .monitored
            .lock()
            .insert((group.to_owned(), resource.to_owned()))
    {
        return;
    }
    let api: Api<kube::core::PartialObjectMeta<DynamicObject>> =
        Api::all_with(state.ctx.client.clone(), ar);
    let quotas = state.quotas.clone();
    let tx = state.replenish.clone();
    tokio::spawn(async move {
        let events = kube::runtime::watcher(api, kube::runtime::watcher::Config::default());
        let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(events));
        while let Some(event) = events.next().await {
            if let Ok(kube::runtime::watcher::Event::Delete(obj)) = event {
                for q in quotas_in(&quotas, &obj.namespace().unwrap_or_default()) {
                    if tx.unbounded_send(q).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// The objects `evaluator` measures in `ns` (`None` when they cannot be had now).
async fn objects(state: &State, evaluator: &Evaluator, ns: &str) -> Result<Option<Vec<Value>>> {
    let client = state.ctx.client.clone();
    let lp = ListParams::default();
    Ok(Some(match evaluator {
        Evaluator::Pods => values(
            state
                .pods
                .state()
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(ns))
                .map(|p| &**p),
        ),
        Evaluator::Services => values(
            Api::<Service>::namespaced(client, ns)
                .list(&lp)
                .await?
                .items,
        ),
        Evaluator::Claims => values(
            Api::<PersistentVolumeClaim>::namespaced(client, ns)
                .list(&lp)
                .await?
                .items,
        ),
        Evaluator::ObjectCount {
            group, resource, ..
        } => {
            let Some(ar) = api_resource(state, group, resource).await? else {
                tracing::debug!(%group, %resource, "quota names a resource that is not served");
                return Ok(None);
            };
            monitor(state, group, resource, &ar);
            let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
            api.list_metadata(&lp)
                .await?
                .items
                .into_iter()
                .map(|o| json!({"metadata": {"name": o.name_any()}}))
                .collect()
        }
    }))
}

async fn sync(q: &Arc<ResourceQuota>, state: &State) -> Result<Action> {
    // The cached object may be older than the one that woke us: read the cache again.
    let Some(current) = state.quotas.get(&ObjectRef::from_obj(&**q)) else {
        return Ok(Action::await_change());
    };
    let ns = current.namespace().unwrap_or_default();
    let name = current.name_any();
    let quota_json = serde_json::to_value(&*current).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut measured = Vec::new();
    for (evaluator, names) in evaluators_for(&quota::hard_names(&quota_json)) {
        let objs = objects(state, &evaluator, &ns).await?;
        measured.push((evaluator, names, objs));
    }
    if let Some(status) = plan(&quota_json, &measured, chrono::Utc::now()) {
        let mut body = quota_json.clone();
        body["status"] = status;
        let api: Api<ResourceQuota> = Api::namespaced(state.ctx.client.clone(), &ns);
        let updated: ResourceQuota =
            serde_json::from_value(body).map_err(|e| Error::Invalid(e.to_string()))?;
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(RESYNC))
}
