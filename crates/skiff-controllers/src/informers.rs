//! Shared informers: one reflector (list, then watch) per kind for the whole controller
//! manager, read by every controller that needs the kind, as upstream's
//! `SharedInformerFactory` (k8s.io/client-go `informers/factory.go`).
//!
//! A controller asks for a kind's [`Store`] (to read) and a [`ReflectHandle`] (a stream of
//! changed objects, to wake its reconciler) while it is being set up; [`Informers::start`]
//! then starts one watch per kind asked for. Subscribers taken after the start would miss
//! the first list, so asking after it is refused. This module does not decide anything: it
//! only keeps caches of the cluster's objects current.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

/// How many changed objects a kind's fan-out holds for a slow subscriber before the watch
/// waits for it.
const BUFFER: usize = 1024;

type Starter = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

struct Entry<K: Resource + Clone + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    /// Until the start: subscribers are taken from it, then the watch owns it.
    writer: Arc<Mutex<Option<reflector::store::Writer<K>>>>,
}

/// The shared caches of one controller manager.
pub struct Informers {
    client: Client,
    kinds: Mutex<Kinds>,
}

#[derive(Default)]
struct Kinds {
    entries: HashMap<TypeId, Box<dyn Any + Send>>,
    starters: Vec<Starter>,
    started: bool,
}

/// Why an informer could not be handed out.
#[derive(Debug, thiserror::Error)]
pub enum InformerError {
    #[error("the informers of {0} were asked for after they started")]
    AfterStart(&'static str),
}

impl Informers {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            kinds: Mutex::new(Kinds::default()),
        }
    }

    /// The client the informers watch with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn with_entry<K, R>(&self, f: impl FnOnce(&Entry<K>, bool) -> R) -> R
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut guard = self.kinds.lock();
        let kinds = &mut *guard;
        let client = &self.client;
        let entry = kinds.entries.entry(TypeId::of::<K>()).or_insert_with(|| {
            let (store, writer) = reflector::store_shared::<K>(BUFFER);
            let writer = Arc::new(Mutex::new(Some(writer)));
            let taken = writer.clone();
            let starter: Starter = Box::new(move |client: Client| {
                let writer = taken.lock().take();
                Box::pin(async move {
                    if let Some(writer) = writer {
                        reflect::<K>(client, writer).await;
                    }
                })
            });
            if kinds.started {
                // A kind first read after the start (a store, never a subscription): its
                // watch starts now.
                tokio::spawn(starter(client.clone()));
            } else {
                kinds.starters.push(starter);
            }
            Box::new(Entry { store, writer })
        });
        let entry = entry
            .downcast_ref::<Entry<K>>()
            .unwrap_or_else(|| unreachable!("entries are keyed by their type"));
        f(entry, kinds.started)
    }

    /// The cache of every `K` in the cluster (ready once its first list is in).
    pub fn store<K>(&self) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.with_entry::<K, _>(|e, _| e.store.clone())
    }

    /// A stream of every `K` that changes (added, modified or deleted), from the first
    /// list on. Only before [`Informers::start`].
    pub fn subscribe<K>(&self) -> Result<ReflectHandle<K>, InformerError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.with_entry::<K, _>(|e, started| {
            if started {
                return Err(InformerError::AfterStart(std::any::type_name::<K>()));
            }
            e.writer
                .lock()
                .as_ref()
                .and_then(|w| w.subscribe())
                .ok_or(InformerError::AfterStart(std::any::type_name::<K>()))
        })
    }

    /// Starts one watch per kind asked for; each runs until the returned futures are
    /// dropped (the caller spawns them).
    pub fn start(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let starters = {
            let mut kinds = self.kinds.lock();
            kinds.started = true;
            std::mem::take(&mut kinds.starters)
        };
        starters
            .into_iter()
            .map(|s| s(self.client.clone()))
            .collect()
    }
}

/// Lists and watches every `K`, keeping `writer`'s store current and fanning out changes.
/// Errors (the API restarting, a watch expiring) back off and resume with a fresh list.
async fn reflect<K>(client: Client, writer: reflector::store::Writer<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<K> = Api::all(client);
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect_shared(writer)
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::debug!(kind = std::any::type_name::<K>(), error = %e, "watch failed; retrying");
            }
        })
        .await;
}
