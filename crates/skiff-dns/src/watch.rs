//! The watches that keep the index current: Services, EndpointSlices and Namespaces in all
//! namespaces, each a kube-runtime watcher with backoff (an API server restart pauses
//! updates, then a relist brings the index back in line). Events go straight into the
//! index, which keeps only what answers need: no object is cached here.

use std::collections::HashSet;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};

use crate::{Index, SharedIndex};

/// How each kind goes into the index.
trait Indexed: Resource + Clone + std::fmt::Debug + Send + Sync + 'static {
    const KIND: &'static str;
    fn apply(index: &mut Index, obj: &Self);
    fn delete(index: &mut Index, obj: &Self);
    /// Drops what a relist did not return (`seen`: lowercase namespace, name).
    fn retain(index: &mut Index, seen: &HashSet<(String, String)>);
}

impl Indexed for Service {
    const KIND: &'static str = "services";
    fn apply(index: &mut Index, obj: &Self) {
        index.apply_service(obj);
    }
    fn delete(index: &mut Index, obj: &Self) {
        index.delete_service(&obj.namespace().unwrap_or_default(), &obj.name_any());
    }
    fn retain(index: &mut Index, seen: &HashSet<(String, String)>) {
        for (ns, name) in index.service_keys() {
            if !seen.contains(&(ns.clone(), name.clone())) {
                index.delete_service(&ns, &name);
            }
        }
    }
}

impl Indexed for EndpointSlice {
    const KIND: &'static str = "endpointslices";
    fn apply(index: &mut Index, obj: &Self) {
        index.apply_slice(obj);
    }
    fn delete(index: &mut Index, obj: &Self) {
        index.delete_slice(&obj.namespace().unwrap_or_default(), &obj.name_any());
    }
    fn retain(index: &mut Index, seen: &HashSet<(String, String)>) {
        for (ns, name) in index.slice_keys() {
            if !seen.contains(&(ns.clone(), name.clone())) {
                index.delete_slice(&ns, &name);
            }
        }
    }
}

impl Indexed for Namespace {
    const KIND: &'static str = "namespaces";
    fn apply(index: &mut Index, obj: &Self) {
        index.apply_namespace(&obj.name_any());
    }
    fn delete(index: &mut Index, obj: &Self) {
        index.delete_namespace(&obj.name_any());
    }
    fn retain(index: &mut Index, seen: &HashSet<(String, String)>) {
        let names = seen.iter().map(|(_, name)| name.clone()).collect();
        index.retain_namespaces(&names);
    }
}

/// Runs the three watches until dropped; marks the index synced once each listed.
pub(crate) async fn run(client: kube::Client, index: SharedIndex) {
    let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel::<&'static str>(3);
    let services = watch::<Service>(Api::all(client.clone()), index.clone(), synced_tx.clone());
    let slices = watch::<EndpointSlice>(Api::all(client.clone()), index.clone(), synced_tx.clone());
    let namespaces = watch::<Namespace>(Api::all(client), index.clone(), synced_tx);
    let mark = async {
        let mut kinds = HashSet::new();
        while let Some(kind) = synced_rx.recv().await {
            kinds.insert(kind);
            if kinds.len() == 3 {
                index.write().set_synced(true);
                tracing::info!("cluster DNS: the index is synced");
                break;
            }
        }
        std::future::pending::<()>().await
    };
    tokio::join!(services, slices, namespaces, mark);
}

async fn watch<K>(api: Api<K>, index: SharedIndex, synced: tokio::sync::mpsc::Sender<&'static str>)
where
    K: Indexed + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen: Option<HashSet<(String, String)>> = None;
    let mut told = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(kind = K::KIND, error = %e, "cluster DNS watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => seen = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(seen) = &mut seen {
                    seen.insert(lower_key(&obj));
                }
                K::apply(&mut index.write(), &obj);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = seen.take() {
                    K::retain(&mut index.write(), &seen);
                }
                if !told {
                    told = true;
                    let _ = synced.send(K::KIND).await;
                }
            }
            watcher::Event::Apply(obj) => K::apply(&mut index.write(), &obj),
            watcher::Event::Delete(obj) => K::delete(&mut index.write(), &obj),
        }
    }
}

fn lower_key<K: Resource>(obj: &K) -> (String, String) {
    let meta = obj.meta();
    (
        meta.namespace.as_deref().unwrap_or("").to_ascii_lowercase(),
        meta.name.as_deref().unwrap_or("").to_ascii_lowercase(),
    )
}
