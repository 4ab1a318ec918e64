//! Shared informers: one reflector (list, then watch) per kind for the whole controller
//! manager, read by every controller that needs the kind, as upstream's
//! `SharedInformerFactory` (k8s.io/client-go `informers/factory.go`).
//!
//! A controller asks for a kind's [`Store`] (to read) and a subscription (a stream of the
//! objects that changed, to wake its reconciler). Unlike kube-runtime's own shared streams,
//! a subscription also gets the last state of every object that was DELETED (and of every
//! object a re-list found gone), as upstream's informers hand deletes to their handlers: a
//! ReplicaSet must hear that one of its pods is gone. Every event is applied to the store
//! before it is sent, so a reconciler woken by it reads at least that state.
//!
//! [`Informers::start`] starts one watch per kind asked for before it; a kind first asked for
//! later starts at once, and a subscription taken later first gets every cached object.
//! This module decides nothing: it only keeps caches of the cluster's objects current.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::StreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

/// The objects that changed, as a subscription yields them.
pub type Changes<K> = mpsc::UnboundedReceiver<Arc<K>>;

type Starter = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What a kind's watch shares with the subscribers.
struct Shared<K: Resource + Clone + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>,
    /// True from the first complete list on.
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K: Resource + Clone + 'static> Shared<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn send(&self, obj: &Arc<K>) {
        self.subscribers
            .lock()
            .retain(|s| s.unbounded_send(obj.clone()).is_ok());
    }
}

/// The shared caches of one controller manager.
pub struct Informers {
    client: Client,
    kinds: Mutex<Kinds>,
}

#[derive(Default)]
struct Kinds {
    entries: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    starters: Vec<Starter>,
    started: bool,
}

/// The bounds of a kind the informers can watch.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
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

    fn shared<K: Kind>(&self) -> Arc<Shared<K>> {
        let mut guard = self.kinds.lock();
        let kinds = &mut *guard;
        let client = &self.client;
        let entry = kinds.entries.entry(TypeId::of::<K>()).or_insert_with(|| {
            let writer = Writer::<K>::new(());
            let shared = Arc::new(Shared {
                store: writer.as_reader(),
                subscribers: Mutex::new(Vec::new()),
                synced: tokio::sync::watch::Sender::new(false),
            });
            let for_watch = shared.clone();
            let starter: Starter =
                Box::new(move |client: Client| Box::pin(reflect::<K>(client, writer, for_watch)));
            if kinds.started {
                // A kind first asked for after the start: its watch starts now.
                tokio::spawn(starter(client.clone()));
            } else {
                kinds.starters.push(starter);
            }
            Box::new(shared)
        });
        entry
            .downcast_ref::<Arc<Shared<K>>>()
            .unwrap_or_else(|| unreachable!("entries are keyed by their type"))
            .clone()
    }

    /// The cache of every `K` in the cluster (ready once its first list is in).
    pub fn store<K: Kind>(&self) -> Store<K> {
        self.shared::<K>().store.clone()
    }

    /// Waits until the cache of `K` holds a complete list. Use this, not
    /// `Store::wait_until_ready`: kube-runtime's readiness wakes only the last of several
    /// concurrent waiters (it is one oneshot receiver), so a second waiter can sleep for ever.
    pub fn synced<K: Kind>(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shared::<K>().synced.subscribe();
        async move {
            let _ = rx.wait_for(|synced| *synced).await;
        }
    }

    /// Every `K` that changes (added, modified, deleted), from the first list on. Taken
    /// after the first list, it starts with every cached object.
    pub fn subscribe<K: Kind>(&self) -> Changes<K> {
        let shared = self.shared::<K>();
        let (tx, rx) = mpsc::unbounded();
        let mut subscribers = shared.subscribers.lock();
        for obj in shared.store.state() {
            let _ = tx.unbounded_send(obj);
        }
        subscribers.push(tx);
        rx
    }

    /// Starts one watch per kind asked for so far; each runs until its future is dropped
    /// (the caller spawns them).
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

/// Lists and watches every `K`, keeping the store current and telling the subscribers.
/// Errors (the API restarting, a watch expiring) back off and resume with a fresh list,
/// after which the objects the list no longer has are sent as deleted.
async fn reflect<K: Kind>(client: Client, mut writer: Writer<K>, shared: Arc<Shared<K>>) {
    let api: Api<K> = Api::all(client);
    let mut before_relist: Option<HashMap<ObjectRef<K>, Arc<K>>> = None;
    // Without managed fields, as upstream's informers keep objects
    // (`TransformStripManagedFields`): no controller reads them, and at 30,000 pods they
    // were most of every cached pod. (A write of a cached object without them keeps the
    // stored ones, as upstream's field manager does.)
    let events = watcher(api, watcher::Config::default())
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .default_backoff();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(kind = std::any::type_name::<K>(), error = %e, "watch failed; retrying");
                continue;
            }
        };
        match &event {
            watcher::Event::Init => {
                before_relist = Some(
                    shared
                        .store
                        .state()
                        .into_iter()
                        .map(|o| (ObjectRef::from_obj(&*o), o))
                        .collect(),
                );
                writer.apply_watcher_event(&event);
            }
            watcher::Event::InitApply(_) => writer.apply_watcher_event(&event),
            watcher::Event::InitDone => {
                tracing::trace!(kind = std::any::type_name::<K>(), "listed");
                writer.apply_watcher_event(&event);
                shared.synced.send_replace(true);
                let now = shared.store.state();
                let mut gone = before_relist.take().unwrap_or_default();
                for obj in &now {
                    gone.remove(&ObjectRef::from_obj(&**obj));
                    shared.send(obj);
                }
                for obj in gone.values() {
                    shared.send(obj);
                }
            }
            watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => {
                writer.apply_watcher_event(&event);
                shared.send(&Arc::new(obj.clone()));
            }
        }
    }
}
