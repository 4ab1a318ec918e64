//! The EndpointSlice controller (upstream's pkg/controller/endpointslice and
//! staging/src/k8s.io/endpointslice): for every Service with a selector, discovery.k8s.io/v1
//! EndpointSlices labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the
//! Service (the garbage collector removes them with it), named `<service>-<random>`, with at
//! most `--max-endpoints-per-slice` endpoints each, written as [`reconciler`] plans.
//!
//! Pods are read through the label index of [`crate::endpoints::index`], the Service's
//! slices through an index by service name. After a write, a cache still showing an older
//! version of a slice (or a deleted one) is not trusted and the sync is retried shortly
//! (upstream's `EndpointSliceTracker`); the cache catching up with this controller's own
//! write wakes nothing.

pub mod reconciler;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::endpoints::index::{
    pod_fingerprint, selector_of, services_to_update, LabelIndex, Labels, ServiceIndex,
};
use crate::endpoints::util::TriggerTimeTracker;
use crate::events::Recorder;
use crate::owners::FIELD_MANAGER;
use crate::pods::key_of;
use crate::replicaset::backoff;
use crate::{Context, Error, Result, Task};

use reconciler::{CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};

/// What this controller last did to each slice of a Service: the resourceVersion it wrote,
/// or `None` for a deletion.
type Written = HashMap<String, Option<u64>>;

struct State {
    ctx: Arc<Context>,
    services: Store<Service>,
    nodes: Store<Node>,
    pods: Arc<LabelIndex<Pod>>,
    slices: Arc<LabelIndex<EndpointSlice>>,
    service_index: Arc<ServiceIndex>,
    triggers: TriggerTimeTracker,
    written: Mutex<HashMap<String, Written>>,
    failures: Mutex<HashMap<String, u32>>,
    recorder: Recorder,
}

fn rv_of(s: &EndpointSlice) -> Option<u64> {
    s.metadata.resource_version.as_deref()?.parse().ok()
}

/// Upstream's `StaleSlices`: whether the cached `slices` of a Service miss one of this
/// controller's writes.
pub fn stale(written: &Written, slices: &[Arc<EndpointSlice>]) -> bool {
    for s in slices {
        match written.get(s.metadata.name.as_deref().unwrap_or("")) {
            Some(None) => return true,
            Some(Some(rv)) if rv_of(s).is_some_and(|have| have < *rv) => return true,
            _ => {}
        }
    }
    written.iter().any(|(name, rv)| {
        rv.is_some()
            && !slices
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(name.as_str()))
    })
}

fn managed(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|m| m == CONTROLLER_NAME)
}

/// Sets up the `endpointslice` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let services = informers.store::<Service>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        services: services.clone(),
        nodes: informers.store::<Node>(),
        pods: LabelIndex::new(informers.store::<Pod>(), None, pod_fingerprint),
        slices: LabelIndex::new(
            informers.store::<EndpointSlice>(),
            Some(LABEL_SERVICE_NAME),
            |_| 0,
        ),
        service_index: ServiceIndex::new(services.clone()),
        triggers: TriggerTimeTracker::default(),
        written: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        recorder: Recorder::new(ctx.client.clone(), "endpoint-slice-controller"),
    });
    let for_services = state.clone();
    let service_changes = informers.subscribe::<Service>().inspect(move |svc| {
        for_services.service_index.observe(svc);
        let key = ObjectRef::from_obj(&**svc);
        if for_services.services.get(&key).is_none() {
            let ns = svc.namespace().unwrap_or_default();
            for_services.triggers.delete_service(&ns, &svc.name_any());
            for_services
                .written
                .lock()
                .remove(&format!("{ns}/{}", svc.name_any()));
        }
    });
    let for_pods = state.clone();
    let for_slices = state.clone();
    let controller = Controller::for_shared_stream(service_changes, services)
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            services_to_update(&for_pods.pods, &for_pods.service_index, &pod)
        })
        .watches_shared_stream(
            informers.subscribe::<EndpointSlice>(),
            move |slice: Arc<EndpointSlice>| slice_changed(&for_slices, &slice),
        );
    let synced = futures::future::join4(
        informers.synced::<Service>(),
        informers.synced::<Pod>(),
        informers.synced::<EndpointSlice>(),
        informers.synced::<Node>(),
    );
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

/// A slice changed: the Service it belongs to, unless the change is this controller's own
/// write coming back (upstream's `ShouldSync`).
fn slice_changed(state: &State, slice: &EndpointSlice) -> Option<ObjectRef<Service>> {
    state.slices.observe(slice);
    if !managed(slice) {
        return None;
    }
    let service = slice.labels().get(LABEL_SERVICE_NAME)?.clone();
    let ns = slice.namespace().unwrap_or_default();
    let name = slice.name_any();
    let key = format!("{ns}/{service}");
    let gone = state
        .slices
        .store()
        .get(&ObjectRef::from_obj(slice))
        .is_none();
    let mut written = state.written.lock();
    if let Some(w) = written.get_mut(&key) {
        if gone {
            // Upstream's `HandleDeletion`.
            w.remove(&name);
        } else if let Some(Some(rv)) = w.get(&name) {
            if rv_of(slice) == Some(*rv) {
                return None;
            }
        }
    }
    Some(ObjectRef::new(&service).within(&ns))
}

fn error_policy(svc: Arc<Service>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&svc.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "endpointslice sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let result = sync(&svc, &state).await;
    match &result {
        Ok(_) => {
            state.failures.lock().remove(&key_of(&svc.metadata));
        }
        Err(e) => {
            let note = format!(
                "Error updating Endpoint Slices for Service {}: {e}",
                key_of(&svc.metadata)
            );
            let recorder = state.recorder.clone();
            let svc = svc.clone();
            tokio::spawn(async move {
                recorder
                    .warning(&*svc, "FailedToUpdateEndpointSlices", note)
                    .await
            });
        }
    }
    result
}

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

async fn sync(svc: &Arc<Service>, state: &State) -> Result<Action> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let key = format!("{ns}/{name}");
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Ok(Action::await_change());
    }
    let Some(selector) = selector_of(svc) else {
        return Ok(Action::await_change());
    };
    let pods = state.pods.matching(&ns, selector);
    let by_name: Labels = [(LABEL_SERVICE_NAME.to_owned(), name.clone())].into();
    let slices: Vec<Arc<EndpointSlice>> = state
        .slices
        .matching(&ns, &by_name)
        .into_iter()
        .filter(|s| managed(s))
        .collect();
    if let Some(w) = state.written.lock().get(&key) {
        if stale(w, &slices) {
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
    }
    let trigger = state.triggers.compute(svc, &pods);
    let nodes = &state.nodes;
    let lookup = |n: &str| nodes.get(&ObjectRef::new(n));
    let plan = reconciler::reconcile(
        svc,
        &pods,
        &slices,
        &lookup,
        state.ctx.config.max_endpoints_per_slice,
    );
    let api: Api<EndpointSlice> = Api::namespaced(state.ctx.client.clone(), &ns);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let record = |slice: &str, rv: Option<u64>| {
        state
            .written
            .lock()
            .entry(key.clone())
            .or_default()
            .insert(slice.to_owned(), rv);
    };
    // Not while the Service is being deleted: the garbage collector is removing them.
    if svc.metadata.deletion_timestamp.is_none() {
        for mut slice in plan.create {
            reconciler::set_trigger_time(&mut slice, trigger);
            match api.create(&params, &slice).await {
                Ok(created) => record(&created.name_any(), rv_of(&created)),
                Err(e) if namespace_terminating(&e) => return Ok(Action::await_change()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    for mut slice in plan.update {
        reconciler::set_trigger_time(&mut slice, trigger);
        let slice_name = slice.name_any();
        let updated = api.replace(&slice_name, &params, &slice).await?;
        record(&slice_name, rv_of(&updated));
    }
    for slice in plan.delete {
        let slice_name = slice.name_any();
        match api.delete(&slice_name, &DeleteParams::default()).await {
            Ok(_) => record(&slice_name, None),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !plan.errors.is_empty() {
        return Err(Error::Invalid(plan.errors.join("; ")));
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
