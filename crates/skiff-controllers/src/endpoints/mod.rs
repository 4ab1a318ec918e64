//! The endpoints controller (upstream's pkg/controller/endpoint): one v1 `Endpoints` per
//! Service with a selector, named as the Service, with the Service's labels (plus
//! `service.kubernetes.io/headless` for a headless one), the subsets of [`subsets`], the
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation and, over 1000 addresses,
//! `endpoints.kubernetes.io/over-capacity: truncated`. The Endpoints of a deleted Service are
//! deleted (and, once at start, those left over without a Service). ExternalName Services
//! and Services without a selector are left alone.
//!
//! Pods are read through the [`index`] (by label), never by scanning the namespace; a pod's
//! change wakes only the Services it concerns. After an update, a cache still showing an
//! older version of the Endpoints is not trusted (upstream's `staleEndpointsTracker`).

pub mod index;
pub mod subsets;
pub mod util;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::events::Recorder;
use crate::owners::FIELD_MANAGER;
use crate::pods::key_of;
use crate::replicaset::backoff;
use crate::{Context, Error, Result, Task};

use index::{pod_fingerprint, selector_of, services_to_update, LabelIndex, ServiceIndex};
use util::{
    is_service_ip_set, rfc3339_nano, TriggerTimeTracker, HEADLESS, LAST_CHANGE_TRIGGER_TIME,
};

/// The leader-election record annotation: such Endpoints have no Service and are kept.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// The Endpoints to write for `svc`, or `None` when `current` is already right. `current`
/// is the cached Endpoints (none yet: create); the answer keeps its metadata otherwise.
pub fn desired_endpoints(
    svc: &Service,
    pods: &[Arc<Pod>],
    current: Option<&Endpoints>,
    trigger: Option<k8s_openapi::jiff::Timestamp>,
) -> Option<Endpoints> {
    let subsets = subsets::desired_subsets(svc, pods);
    let svc_labels = svc.metadata.labels.clone().unwrap_or_default();
    if let Some(cur) = current {
        let mut compare = cur.metadata.labels.clone().unwrap_or_default();
        compare.remove(HEADLESS);
        let cur_subsets = cur.subsets.clone().unwrap_or_default();
        if subsets::subsets_equal(&cur_subsets, &subsets)
            && compare == svc_labels
            && subsets::capacity_annotation_correct(cur.metadata.annotations.as_ref(), &cur_subsets)
        {
            return None;
        }
    }
    let mut new = current.cloned().unwrap_or_else(|| {
        let mut e = Endpoints::default();
        e.metadata.name = svc.metadata.name.clone();
        e.metadata.namespace = svc.metadata.namespace.clone();
        e
    });
    let mut subsets = subsets;
    let mut annotations = new.metadata.annotations.take().unwrap_or_default();
    match trigger {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), rfc3339_nano(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if subsets::truncate(&mut subsets) {
        annotations.insert(subsets::OVER_CAPACITY.into(), subsets::TRUNCATED.into());
    } else {
        annotations.remove(subsets::OVER_CAPACITY);
    }
    let mut labels: BTreeMap<String, String> = svc_labels;
    if is_service_ip_set(svc) {
        labels.remove(HEADLESS);
    } else {
        labels.insert(HEADLESS.into(), String::new());
    }
    new.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    new.metadata.labels = (!labels.is_empty()).then_some(labels);
    new.subsets = (!subsets.is_empty()).then_some(subsets);
    Some(new)
}

struct State {
    ctx: Arc<Context>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    pods: Arc<LabelIndex<Pod>>,
    service_index: Arc<ServiceIndex>,
    triggers: TriggerTimeTracker,
    /// The resourceVersion of the Endpoints this controller last wrote, by key.
    written: Mutex<HashMap<String, u64>>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

fn rv_of(e: &Endpoints) -> Option<u64> {
    e.metadata.resource_version.as_deref()?.parse().ok()
}

/// Sets up the `endpoint` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let services = informers.store::<Service>();
    let pods_store = informers.store::<Pod>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        services: services.clone(),
        endpoints: informers.store::<Endpoints>(),
        pods: LabelIndex::new(pods_store, None, pod_fingerprint),
        service_index: ServiceIndex::new(services.clone()),
        triggers: TriggerTimeTracker::default(),
        written: Mutex::new(HashMap::new()),
        recorder: Recorder::new(ctx.client.clone(), "endpoint-controller"),
        failures: Mutex::new(HashMap::new()),
    });
    let for_services = state.clone();
    let service_changes = informers.subscribe::<Service>().inspect(move |svc| {
        for_services.service_index.observe(svc);
        if for_services
            .services
            .get(&ObjectRef::from_obj(&**svc))
            .is_none()
        {
            let state = for_services.clone();
            let svc = svc.clone();
            tokio::spawn(async move { service_gone(&state, &svc).await });
        }
    });
    let for_pods = state.clone();
    let for_endpoints = state.clone();
    let controller = Controller::for_shared_stream(service_changes, services)
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            services_to_update(&for_pods.pods, &for_pods.service_index, &pod)
        })
        .watches_shared_stream(
            informers.subscribe::<Endpoints>(),
            move |ep: Arc<Endpoints>| {
                // Upstream wakes the Service when its Endpoints are deleted.
                for_endpoints
                    .endpoints
                    .get(&ObjectRef::from_obj(&*ep))
                    .is_none()
                    .then(|| {
                        ObjectRef::<Service>::new(&ep.name_any())
                            .within(&ep.namespace().unwrap_or_default())
                    })
            },
        );
    let synced = futures::future::join3(
        informers.synced::<Service>(),
        informers.synced::<Pod>(),
        informers.synced::<Endpoints>(),
    );
    Ok(Box::pin(async move {
        synced.await;
        let leftovers = state.clone();
        tokio::spawn(async move { delete_leftovers(&leftovers).await });
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

/// A Service gone from the cache: its Endpoints go too (upstream's `syncService` on
/// NotFound).
async fn service_gone(state: &State, svc: &Service) {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    if state
        .services
        .get(&ObjectRef::new(&name).within(&ns))
        .is_some()
    {
        return;
    }
    state.triggers.delete_service(&ns, &name);
    state.written.lock().remove(&format!("{ns}/{name}"));
    let api: Api<Endpoints> = Api::namespaced(state.ctx.client.clone(), &ns);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::debug!(%ns, %name, error = %e, "deleting the Endpoints of a deleted Service")
        }
    }
}

/// Upstream's `checkLeftoverEndpoints`: Endpoints whose Service is gone (not leader-election
/// records) are deleted once after the caches synced.
async fn delete_leftovers(state: &State) {
    for ep in state.endpoints.state() {
        if ep
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(LEADER_ANNOTATION))
        {
            continue;
        }
        let ns = ep.namespace().unwrap_or_default();
        let svc = Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(ep.name_any()),
                namespace: Some(ns),
                ..Default::default()
            },
            ..Default::default()
        };
        service_gone(state, &svc).await;
    }
}

fn error_policy(svc: Arc<Service>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&svc.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "endpoints sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let result = sync(&svc, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(&svc.metadata));
    }
    result
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
    let current = state.endpoints.get(&ObjectRef::new(&name).within(&ns));
    if let (Some(cur), Some(written)) = (&current, state.written.lock().get(&key)) {
        if rv_of(cur).is_some_and(|rv| rv < *written) {
            // The cache has not seen our last write yet. Checked before the trigger time is
            // computed (as the endpointslice controller does), so the retry still exports
            // the changes this sync saw.
            tracing::debug!(%key, "endpoints cache behind our last write; retrying");
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
    }
    let trigger = state.triggers.compute(svc, &pods);
    let Some(new) = desired_endpoints(svc, &pods, current.as_deref(), trigger) else {
        return Ok(Action::await_change());
    };
    let api: Api<Endpoints> = Api::namespaced(state.ctx.client.clone(), &ns);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let result = if current.is_some() {
        api.replace(&name, &params, &new).await
    } else {
        api.create(&params, &new).await
    };
    match result {
        Ok(written) => {
            if let Some(rv) = rv_of(&written) {
                state.written.lock().insert(key, rv);
            }
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s))
            if current.is_none()
                && s.details.as_ref().is_some_and(|d| {
                    d.causes.iter().any(|c| c.reason == "NamespaceTerminating")
                }) =>
        {
            Ok(Action::await_change())
        }
        Err(e) => {
            let message = match &e {
                kube::Error::Api(s) => s.message.clone(),
                other => other.to_string(),
            };
            let (reason, note) = if current.is_some() {
                (
                    "FailedToUpdateEndpoint",
                    format!("Failed to update endpoint {ns}/{name}: {message}"),
                )
            } else {
                (
                    "FailedToCreateEndpoint",
                    format!("Failed to create endpoint for service {ns}/{name}: {message}"),
                )
            };
            let recorder = state.recorder.clone();
            tokio::spawn(async move { recorder.warning(&new, reason, note).await });
            Err(e.into())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
