//! The watch cache: one datastore watch per resource, whose events are decoded once and fanned
//! out to every API watcher of that resource (upstream's `cacher`). Recent events stay in a
//! ring so a watcher starting from a recent resourceVersion is served from memory; one that
//! starts further back gets its own datastore watch, which answers 410 once that history is
//! compacted.
//!
//! A feed is per datastore prefix, so the versions of a kind that share one storage
//! (autoscaling/v1 and v2 HPAs, core and events.k8s.io events) share one feed: it carries
//! objects as stored, and each subscription converts them to its own version.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use skiff_store::{Error as StoreError, EventKind, Revision, Store, WatchStream};
use tokio::sync::broadcast;

use crate::objects::{decode, store_error, view};

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change of one object, decoded.
#[derive(Clone, Debug)]
pub struct ObjectEvent {
    pub change: Change,
    /// The object after the change (for a delete: its last state, at the delete's revision).
    pub obj: Arc<Value>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
    pub rev: Revision,
}

const RING: usize = 1024;
const FANOUT_BUFFER: usize = 8192;

struct Feed {
    state: Mutex<FeedState>,
    tx: broadcast::Sender<Arc<ObjectEvent>>,
}

struct FeedState {
    /// Events after this revision are all in `ring`.
    start: Revision,
    ring: VecDeque<Arc<ObjectEvent>>,
}

/// Where a subscription's events come from.
pub enum Subscription {
    /// From the cache: the backlog, then live events, converted to `info`'s version.
    Cached {
        info: Box<ResourceInfo>,
        backlog: Vec<Arc<ObjectEvent>>,
        rx: broadcast::Receiver<Arc<ObjectEvent>>,
        after: Revision,
    },
    /// From a datastore watch of its own.
    Direct {
        info: Box<ResourceInfo>,
        stream: WatchStream,
    },
}

impl Subscription {
    /// The next event, `None` when the watch must end (the client then watches again).
    pub async fn next(&mut self) -> Option<Result<Arc<ObjectEvent>, ApiError>> {
        match self {
            Subscription::Cached {
                info,
                backlog,
                rx,
                after,
            } => {
                if !backlog.is_empty() {
                    return Some(in_version(info, backlog.remove(0)));
                }
                loop {
                    match rx.recv().await {
                        Ok(ev) if ev.rev <= *after => continue,
                        Ok(ev) => {
                            *after = ev.rev;
                            return Some(in_version(info, ev));
                        }
                        // Fell behind the fan-out, or the feed stopped: end this watch; the
                        // client resumes from the last resourceVersion it saw.
                        Err(_) => return None,
                    }
                }
            }
            Subscription::Direct { info, stream } => match stream.next().await? {
                Ok(ev) => {
                    Some(to_object_event(info, ev).and_then(|ev| in_version(info, Arc::new(ev))))
                }
                Err(StoreError::Compacted {
                    requested,
                    compacted,
                }) => Some(Err(ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                )))),
                Err(e) => Some(Err(store_error(info, "", e))),
            },
        }
    }
}

/// A stored event as a watcher of `info` sees it: shared as it is when no conversion is
/// needed, else with its objects converted (for this watcher alone).
fn in_version(info: &ResourceInfo, ev: Arc<ObjectEvent>) -> Result<Arc<ObjectEvent>, ApiError> {
    if skiff_api::conversion::is_identity(info) {
        return Ok(ev);
    }
    let convert = |o: &Arc<Value>| view(info, (**o).clone()).map(Arc::new);
    Ok(Arc::new(ObjectEvent {
        change: ev.change,
        obj: convert(&ev.obj)?,
        prev: ev.prev.as_ref().map(convert).transpose()?,
        rev: ev.rev,
    }))
}

/// A datastore event, decoded (objects as stored).
fn to_object_event(info: &ResourceInfo, ev: skiff_store::Event) -> Result<ObjectEvent, ApiError> {
    let rev = ev.revision();
    let prev = match &ev.prev_kv {
        Some(p) => Some(Arc::new(decode(info, &p.value, p.mod_revision)?)),
        None => None,
    };
    let (change, obj) = match ev.kind {
        EventKind::Put => {
            let obj = Arc::new(decode(info, &ev.kv.value, rev)?);
            (
                if prev.is_some() {
                    Change::Modified
                } else {
                    Change::Added
                },
                obj,
            )
        }
        EventKind::Delete => {
            let p = ev
                .prev_kv
                .as_ref()
                .ok_or_else(|| ApiError::internal("delete event without the deleted object"))?;
            (Change::Deleted, Arc::new(decode(info, &p.value, rev)?))
        }
    };
    Ok(ObjectEvent {
        change,
        obj,
        prev,
        rev,
    })
}

/// All feeds, one per resource, started on first use.
pub struct Hub {
    store: Arc<dyn Store>,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            feeds: Mutex::new(HashMap::new()),
        })
    }

    /// Events of `info` after revision `after`.
    pub async fn subscribe(
        self: &Arc<Self>,
        info: &ResourceInfo,
        after: Revision,
    ) -> Result<Subscription, ApiError> {
        let feed = self.feed(info).await?;
        {
            let state = feed.state.lock();
            if after >= state.start {
                let backlog = state
                    .ring
                    .iter()
                    .filter(|e| e.rev > after)
                    .cloned()
                    .collect();
                return Ok(Subscription::Cached {
                    info: Box::new(info.clone()),
                    backlog,
                    rx: feed.tx.subscribe(),
                    after,
                });
            }
        }
        let stream = self
            .store
            .watch(&info.key_prefix(), after)
            .await
            .map_err(|e| match e {
                StoreError::Compacted {
                    requested,
                    compacted,
                } => ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                )),
                other => store_error(info, "", other),
            })?;
        Ok(Subscription::Direct {
            info: Box::new(info.clone()),
            stream,
        })
    }

    async fn feed(self: &Arc<Self>, info: &ResourceInfo) -> Result<Arc<Feed>, ApiError> {
        let prefix = info.key_prefix();
        if let Some(feed) = self.feeds.lock().get(&prefix) {
            return Ok(feed.clone());
        }
        let start = self
            .store
            .current_revision()
            .await
            .map_err(|e| store_error(info, "", e))?;
        let stream = self
            .store
            .watch(&prefix, start)
            .await
            .map_err(|e| store_error(info, "", e))?;
        let mut feeds = self.feeds.lock();
        if let Some(feed) = feeds.get(&prefix) {
            return Ok(feed.clone());
        }
        let (tx, _) = broadcast::channel(FANOUT_BUFFER);
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState {
                start,
                ring: VecDeque::new(),
            }),
            tx,
        });
        feeds.insert(prefix.clone(), feed.clone());
        tokio::spawn(run_feed(
            Arc::downgrade(self),
            info.clone(),
            prefix,
            feed.clone(),
            stream,
        ));
        Ok(feed)
    }
}

async fn run_feed(
    hub: std::sync::Weak<Hub>,
    info: ResourceInfo,
    prefix: String,
    feed: Arc<Feed>,
    mut stream: WatchStream,
) {
    loop {
        let item = stream.next().await;
        let Some(hub) = hub.upgrade() else { return };
        match item {
            Some(Ok(ev)) => match to_object_event(&info, ev) {
                Ok(ev) => {
                    let ev = Arc::new(ev);
                    let mut state = feed.state.lock();
                    state.ring.push_back(ev.clone());
                    while state.ring.len() > RING {
                        if let Some(old) = state.ring.pop_front() {
                            state.start = old.rev;
                        }
                    }
                    // Sent under the lock, so a subscriber sees each event exactly once:
                    // either in its backlog or from the channel.
                    let _ = feed.tx.send(ev);
                }
                Err(e) => {
                    tracing::error!(resource = %info.plural, error = %e, "watch cache: undecodable event")
                }
            },
            Some(Err(e)) => {
                // The datastore watch ended (a slow feed, or the backend failed): drop this
                // feed; its watchers end and re-watch, and the next one starts a new feed.
                tracing::warn!(resource = %info.plural, error = %e, "watch cache feed stopped");
                hub.feeds.lock().remove(&prefix);
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            None => {
                hub.feeds.lock().remove(&prefix);
                return;
            }
        }
    }
}
