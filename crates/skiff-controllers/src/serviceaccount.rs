//! Two small per-namespace controllers of upstream's kube-controller-manager:
//!
//! - `serviceaccount`: a `default` ServiceAccount in every active namespace, made again if
//!   deleted (pkg/controller/serviceaccount/serviceaccounts_controller.go);
//! - `root-ca-certificate-publisher`: the `kube-root-ca.crt` ConfigMap in every active
//!   namespace with the cluster CA, put back if changed or deleted
//!   (pkg/controller/certificates/rootcacertpublisher/publisher.go).
//!
//! Both reconcile a namespace: what should exist is decided from the namespace and the
//! cached object alone ([`wanted_root_ca`]), then written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::{Context, Error, Result, Task};

/// The ConfigMap the publisher writes in every namespace.
pub const ROOT_CA_NAME: &str = "kube-root-ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

fn namespace_of<K: kube::Resource>(obj: Arc<K>) -> Option<ObjectRef<Namespace>> {
    obj.meta().namespace.as_deref().map(ObjectRef::new)
}

fn retry_soon<K>(_: Arc<K>, error: &Error, _: Arc<State>) -> Action {
    tracing::debug!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

struct State {
    ctx: Arc<Context>,
    service_accounts: Store<ServiceAccount>,
    config_maps: Store<ConfigMap>,
}

/// Sets up the `serviceaccount` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let state = Arc::new(State {
        ctx: ctx.clone(),
        service_accounts: informers.store(),
        config_maps: informers.store(),
    });
    let controller = Controller::for_shared_stream(
        informers.subscribe::<Namespace>(),
        informers.store::<Namespace>(),
    )
    .watches_shared_stream(
        informers.subscribe::<ServiceAccount>(),
        namespace_of::<ServiceAccount>,
    );
    Ok(Box::pin(
        controller
            .run(reconcile_service_account, retry_soon, state)
            .for_each(|_| async {}),
    ))
}

async fn reconcile_service_account(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action> {
    let name = ns.name_any();
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let key = ObjectRef::<ServiceAccount>::new("default").within(&name);
    if state.service_accounts.get(&key).is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(state.ctx.client.clone(), &name);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            namespace: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(Action::await_change()),
        // Already there (the cache lags), or the namespace began terminating.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Sets up the `root-ca-certificate-publisher` controller.
pub fn root_ca_controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let state = Arc::new(State {
        ctx: ctx.clone(),
        service_accounts: informers.store(),
        config_maps: informers.store(),
    });
    let controller = Controller::for_shared_stream(
        informers.subscribe::<Namespace>(),
        informers.store::<Namespace>(),
    )
    .watches_shared_stream(informers.subscribe::<ConfigMap>(), |cm: Arc<ConfigMap>| {
        if cm.metadata.name.as_deref() == Some(ROOT_CA_NAME) {
            namespace_of(cm)
        } else {
            None
        }
    });
    Ok(Box::pin(
        controller
            .run(reconcile_root_ca, retry_soon, state)
            .for_each(|_| async {}),
    ))
}

/// What the publisher does about one namespace's ConfigMap.
#[derive(Debug, PartialEq)]
pub enum RootCaAction {
    Nothing,
    Create(ConfigMap),
    /// Replace the data and the description of the ConfigMap (the rest is kept).
    Update(ConfigMap),
}

/// The decision of the publisher, from the namespace's current ConfigMap.
pub fn wanted_root_ca(namespace: &str, ca_pem: &str, current: Option<&ConfigMap>) -> RootCaAction {
    let data = BTreeMap::from([("ca.crt".to_owned(), ca_pem.to_owned())]);
    fn description(cm: &ConfigMap) -> Option<&str> {
        cm.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/description"))
            .map(String::as_str)
    }
    match current {
        None => RootCaAction::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_NAME.into()),
                namespace: Some(namespace.to_owned()),
                annotations: Some(BTreeMap::from([(
                    "kubernetes.io/description".to_owned(),
                    ROOT_CA_DESCRIPTION.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        }),
        Some(cm)
            if cm.data.as_ref() == Some(&data)
                && cm.binary_data.is_none()
                && description(cm) == Some(ROOT_CA_DESCRIPTION) =>
        {
            RootCaAction::Nothing
        }
        Some(cm) => {
            let mut new = cm.clone();
            new.data = Some(data);
            new.binary_data = None;
            new.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(
                    "kubernetes.io/description".to_owned(),
                    ROOT_CA_DESCRIPTION.to_owned(),
                );
            RootCaAction::Update(new)
        }
    }
}

async fn reconcile_root_ca(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action> {
    let name = ns.name_any();
    if !is_active(&ns) || state.ctx.config.root_ca_pem.is_empty() {
        return Ok(Action::await_change());
    }
    let key = ObjectRef::<ConfigMap>::new(ROOT_CA_NAME).within(&name);
    let current = state.config_maps.get(&key);
    let api: Api<ConfigMap> = Api::namespaced(state.ctx.client.clone(), &name);
    let result = match wanted_root_ca(&name, &state.ctx.config.root_ca_pem, current.as_deref()) {
        RootCaAction::Nothing => return Ok(Action::await_change()),
        RootCaAction::Create(cm) => api.create(&PostParams::default(), &cm).await,
        RootCaAction::Update(cm) => api.replace(ROOT_CA_NAME, &PostParams::default(), &cm).await,
    };
    match result {
        Ok(_) => Ok(Action::await_change()),
        // A create that lost to the cache, or a terminating namespace: the cache's next
        // event decides again.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => {
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_creates_keeps_and_repairs() {
        let RootCaAction::Create(cm) = wanted_root_ca("ns", "PEM", None) else {
            panic!("a missing ConfigMap is created");
        };
        assert_eq!(cm.metadata.name.as_deref(), Some(ROOT_CA_NAME));
        assert_eq!(
            cm.data
                .as_ref()
                .and_then(|d| d.get("ca.crt"))
                .map(String::as_str),
            Some("PEM")
        );
        assert_eq!(
            wanted_root_ca("ns", "PEM", Some(&cm)),
            RootCaAction::Nothing
        );
        let mut changed = cm.clone();
        changed.data = Some(BTreeMap::from([("ca.crt".into(), "OTHER".into())]));
        changed.metadata.labels = Some(BTreeMap::from([("kept".into(), "yes".into())]));
        let RootCaAction::Update(fixed) = wanted_root_ca("ns", "PEM", Some(&changed)) else {
            panic!("a changed ConfigMap is put back");
        };
        assert_eq!(fixed.data, cm.data);
        assert_eq!(fixed.metadata.labels, changed.metadata.labels);
    }
}
