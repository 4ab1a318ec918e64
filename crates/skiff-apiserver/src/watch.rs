//! The watch cache (upstream's `cacher`): ONE datastore watch for the whole API, whose events
//! are routed by key to the resource they belong to. A resource that has been listed or
//! watched keeps, in memory, every object it has (as the JSON the API answers, with its
//! metadata decoded for selectors) and a ring of its recent events, fanned out to every API
//! watcher of it. So LIST and WATCH are served from memory, many watchers cost nothing more
//! at the datastore, and a consistent LIST (no resourceVersion) only waits until the cache
//! has applied the datastore's current revision (asking the datastore watch for a progress
//! report, which covers writes the cache never sees, such as another program's in a shared
//! etcd).
//!
//! A cache is per datastore prefix, so the versions of a kind that share one storage
//! (autoscaling/v1 and v2 HPAs, core and events.k8s.io events) share one: it carries objects
//! as stored, and each subscription converts them to its own version; lists of a kind served
//! in another version than its storage one read the datastore (which converts).
//!
//! What it does not do: answer reads at an exact past revision or continue a paginated list
//! (both go to the datastore, which keeps history), or keep resources nobody asked for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use skiff_store::{
    Error as StoreError, Event, EventKind, ProgressRequests, ProgressWatchStream, Revision, Store,
    WatchItem, WatchStream,
};
use tokio::sync::{broadcast, watch};

use crate::objects::{decode, encode_continue, splice_resource_version, store_error, view};

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

/// One change of one object. A put the cache took in carries the object's JSON and its
/// metadata, and is decoded only for a watcher that needs more (a selector, a conversion, a
/// Table): a watcher of everything sends the JSON as it is.
#[derive(Debug)]
pub struct ObjectEvent {
    pub change: Change,
    pub rev: Revision,
    /// `obj`'s JSON as the API answers it (resourceVersion set), when the cache made it
    /// anyway: then every watcher sends these bytes instead of encoding the object again.
    pub json: Option<Bytes>,
    /// `obj`'s metadata without `managedFields`, when the cache decoded it.
    metadata: Option<Arc<Value>>,
    /// The object after the change (for a delete: its last state, at the delete's revision);
    /// decoded from `json` on first use when not given.
    obj: OnceLock<Arc<Value>>,
    /// The object before the change: given, or decoded on first use from its stored bytes.
    prev: OnceLock<Option<Arc<Value>>>,
    prev_stored: Option<(Bytes, Revision)>,
}

impl ObjectEvent {
    /// An event of decoded objects.
    pub fn decoded(
        change: Change,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
        rev: Revision,
    ) -> Self {
        Self {
            change,
            rev,
            json: None,
            metadata: None,
            obj: OnceLock::from(obj),
            prev: OnceLock::from(prev),
            prev_stored: None,
        }
    }

    /// The object after the change.
    pub fn obj(&self) -> &Arc<Value> {
        self.obj
            .get_or_init(|| Arc::new(decode_json(self.json.as_deref().unwrap_or_default(), None)))
    }

    /// The object before the change.
    pub fn prev(&self) -> Option<&Arc<Value>> {
        self.prev
            .get_or_init(|| {
                let (bytes, rev) = self.prev_stored.as_ref()?;
                Some(Arc::new(decode_json(bytes, Some(*rev))))
            })
            .as_ref()
    }

    /// The object's namespace (from its metadata alone, when the cache decoded that).
    pub fn namespace(&self) -> &str {
        match &self.metadata {
            Some(m) => m.get("namespace").and_then(Value::as_str).unwrap_or(""),
            None => skiff_api::meta::namespace(self.obj()),
        }
    }
}

/// An object's JSON decoded, its resourceVersion set to `rev` when given. JSON the cache
/// took in has been parsed once already (for its metadata), so it decodes; should it not,
/// the event carries `null` and says so in the log.
fn decode_json(bytes: &[u8], rev: Option<Revision>) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut obj) => {
            if let Some(rev) = rev {
                skiff_api::meta::set_resource_version(&mut obj, rev);
            }
            obj
        }
        Err(e) => {
            tracing::error!(error = %e, "watch cache: an event's object cannot be decoded");
            Value::Null
        }
    }
}

const RING: usize = 1024;
/// Events a live watcher may fall behind the fan-out before its watch ends (it resumes from
/// its last resourceVersion: the ring, or the datastore's history). Tokio's broadcast
/// allocates every slot up front, about 40 bytes each, for every resource that has been
/// watched once: at 8192 the controller manager's watches of all 48 resources cost the
/// server 18 MB at rest; at 1024 about 2 MB.
const FANOUT_BUFFER: usize = 1024;
/// How long a consistent read waits for the cache to reach the datastore's revision (or for
/// a progress report saying it has) before it reads the datastore instead.
const FRESH_WAIT: Duration = Duration::from_millis(250);
/// For a datastore watch that gives no progress reports: after a consistent read gave up
/// waiting, how long the next ones do not wait at all when the cache is behind (writes it
/// never sees keep coming, so it would not catch up).
const UNSEEN_WRITES_BACKOFF: Duration = Duration::from_secs(10);
/// Objects read per datastore request while a resource's cache is filled.
const LOAD_PAGE: usize = 5000;

/// An object as the cache keeps it.
#[derive(Clone)]
struct Entry {
    /// The object's JSON as the API answers it (resourceVersion set).
    json: Bytes,
    /// Its metadata without `managedFields`, decoded (label and metadata field selectors
    /// need nothing else).
    metadata: Arc<Value>,
}

/// One resource's cached state.
struct ResourceCache {
    state: Mutex<ResourceState>,
    tx: broadcast::Sender<Arc<ObjectEvent>>,
}

impl ResourceCache {
    /// A cache not filled yet.
    fn empty() -> Self {
        let (tx, _) = broadcast::channel(FANOUT_BUFFER);
        Self {
            state: Mutex::new(ResourceState {
                ready: false,
                pending: Vec::new(),
                rev: 0,
                start: 0,
                ring: VecDeque::new(),
                objects: BTreeMap::new(),
            }),
            tx,
        }
    }
}

struct ResourceState {
    /// Filled: `objects` is the datastore's content of the resource as of `rev`.
    ready: bool,
    /// While filling: events that arrived meanwhile, applied once the fill is done.
    pending: Vec<Event>,
    /// The revision of the last event applied (or of the fill).
    rev: Revision,
    /// Events after this revision are all in `ring`.
    start: Revision,
    ring: VecDeque<Arc<ObjectEvent>>,
    objects: BTreeMap<String, Entry>,
}

/// Where a subscription's events come from.
pub enum Subscription {
    /// From the cache: the backlog, then live events, converted to `info`'s version.
    Cached {
        info: Box<ResourceInfo>,
        backlog: VecDeque<Arc<ObjectEvent>>,
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
                if let Some(ev) = backlog.pop_front() {
                    return Some(in_version(info, ev));
                }
                loop {
                    match rx.recv().await {
                        Ok(ev) if ev.rev <= *after => continue,
                        Ok(ev) => {
                            *after = ev.rev;
                            return Some(in_version(info, ev));
                        }
                        // Fell behind the fan-out, or the cache was dropped: end this watch;
                        // the client resumes from the last resourceVersion it saw.
                        Err(_) => return None,
                    }
                }
            }
            Subscription::Direct { info, stream } => match stream.next().await? {
                Ok(ev) => {
                    Some(to_object_event(info, &ev).and_then(|ev| in_version(info, Arc::new(ev))))
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
    Ok(Arc::new(ObjectEvent::decoded(
        ev.change,
        convert(ev.obj())?,
        ev.prev().map(convert).transpose()?,
        ev.rev,
    )))
}

/// A put of a key that had a value is MODIFIED, of one that had none ADDED.
fn put_change(ev: &Event) -> Change {
    if ev.prev_kv.is_some() {
        Change::Modified
    } else {
        Change::Added
    }
}

/// A datastore event, decoded (objects as stored).
fn to_object_event(info: &ResourceInfo, ev: &Event) -> Result<ObjectEvent, ApiError> {
    let rev = ev.revision();
    let prev = match &ev.prev_kv {
        Some(p) => Some(Arc::new(decode(info, &p.value, p.mod_revision)?)),
        None => None,
    };
    let (change, obj) = match ev.kind {
        EventKind::Put => {
            let obj = Arc::new(decode(info, &ev.kv.value, rev)?);
            (put_change(ev), obj)
        }
        EventKind::Delete => {
            let p = ev
                .prev_kv
                .as_ref()
                .ok_or_else(|| ApiError::internal("delete event without the deleted object"))?;
            (Change::Deleted, Arc::new(decode(info, &p.value, rev)?))
        }
    };
    Ok(ObjectEvent::decoded(change, obj, prev, rev))
}

/// An event decoded for a resource's cache, before it is applied: the decoding is the
/// expensive part, done outside every lock.
struct Prepared {
    /// The new entry of a put (an error: the object cannot be decoded).
    entry: Option<Result<Entry, ApiError>>,
    event: Result<ObjectEvent, ApiError>,
}

fn prepare(info: &ResourceInfo, ev: &Event) -> Prepared {
    let entry = (ev.kind == EventKind::Put).then(|| entry(info, &ev.kv.value, ev.revision()));
    let event = match &entry {
        // A put's entry is its object's JSON at the event's revision and its metadata: what
        // its watchers send and what a namespace check reads, with nothing more decoded.
        Some(Ok(e)) => Ok(ObjectEvent {
            change: put_change(ev),
            rev: ev.revision(),
            json: Some(e.json.clone()),
            metadata: Some(e.metadata.clone()),
            obj: OnceLock::new(),
            prev: OnceLock::new(),
            prev_stored: ev
                .prev_kv
                .as_ref()
                .map(|p| (p.value.clone(), p.mod_revision)),
        }),
        _ => to_object_event(info, ev),
    };
    Prepared { entry, event }
}

/// Applies one datastore event to a filled resource: the object map, the ring, the watchers.
/// Answers the events that left the ring, for the caller to free outside the lock.
fn apply(
    info: &ResourceInfo,
    cache: &ResourceCache,
    state: &mut ResourceState,
    ev: &Event,
) -> Vec<Arc<ObjectEvent>> {
    if ev.revision() <= state.rev {
        return Vec::new();
    }
    commit(info, cache, state, ev, prepare(info, ev))
}

/// [`apply`] of an event decoded beforehand.
fn commit(
    info: &ResourceInfo,
    cache: &ResourceCache,
    state: &mut ResourceState,
    ev: &Event,
    prepared: Prepared,
) -> Vec<Arc<ObjectEvent>> {
    let rev = ev.revision();
    let mut gone = Vec::new();
    if rev <= state.rev {
        return gone;
    }
    state.rev = rev;
    match prepared.entry {
        Some(Ok(e)) => {
            state.objects.insert(ev.kv.key.clone(), e);
        }
        Some(Err(e)) => {
            tracing::error!(resource = %info.plural, key = %ev.kv.key, error = %e, "watch cache: undecodable object");
            state.objects.remove(&ev.kv.key);
        }
        None => {
            state.objects.remove(&ev.kv.key);
        }
    }
    match prepared.event {
        Ok(oe) => {
            let oe = Arc::new(oe);
            state.ring.push_back(oe.clone());
            while state.ring.len() > RING {
                if let Some(old) = state.ring.pop_front() {
                    state.start = old.rev;
                    gone.push(old);
                }
            }
            // Sent under the lock, so a subscriber sees each event exactly once: either in
            // its backlog or from the channel.
            let _ = cache.tx.send(oe);
        }
        Err(e) => {
            tracing::error!(resource = %info.plural, error = %e, "watch cache: undecodable event")
        }
    }
    gone
}

fn entry(info: &ResourceInfo, bytes: &[u8], rev: Revision) -> Result<Entry, ApiError> {
    let (json, mut metadata) = splice_resource_version(info, bytes, rev)?;
    // No selector reads the managed fields, and decoded they are most of the metadata's
    // memory (a tree of small maps): keep them in the JSON only.
    if let Some(m) = metadata.as_object_mut() {
        m.remove("managedFields");
    }
    Ok(Entry {
        json: Bytes::from(json),
        metadata: Arc::new(metadata),
    })
}

/// The one datastore watch, started on first use, and the resources it keeps.
struct Feed {
    /// Every event up to this revision has been routed.
    applied: watch::Sender<Revision>,
    resources: HashMap<String, (ResourceInfo, Arc<ResourceCache>)>,
    /// Asks the datastore watch how far it has caught up (etcd's progress notification):
    /// past writes it never sees, such as another program's in a shared etcd.
    progress: ProgressRequests,
}

/// The watch cache of every resource.
pub struct Hub {
    store: Arc<dyn Store>,
    feed: Mutex<Option<Feed>>,
    /// Until when consistent reads skip waiting (see [`UNSEEN_WRITES_BACKOFF`]).
    no_wait_until: Mutex<Option<tokio::time::Instant>>,
    /// Serialises starting the feed.
    starting: tokio::sync::Mutex<()>,
}

/// How a list read from the cache was selected.
pub enum Selection<'a> {
    /// On metadata only: `keep` gets `{"metadata": ...}`.
    Metadata(&'a (dyn Fn(&Value) -> Result<bool, ApiError> + Send + Sync)),
    /// On the whole object.
    Object(&'a (dyn Fn(&Value) -> Result<bool, ApiError> + Send + Sync)),
}

/// A cached list: the objects as JSON, and the revision they are the state of.
pub struct CachedList {
    pub items: Vec<Bytes>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            store,
            feed: Mutex::new(None),
            no_wait_until: Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts the datastore watch if it is not running; answers the revision it has applied.
    async fn running(self: &Arc<Self>) -> Result<watch::Receiver<Revision>, StoreError> {
        if let Some(feed) = self.feed.lock().as_ref() {
            return Ok(feed.applied.subscribe());
        }
        let _guard = self.starting.lock().await;
        if let Some(feed) = self.feed.lock().as_ref() {
            return Ok(feed.applied.subscribe());
        }
        let start = self.store.current_revision().await?;
        let (stream, progress) = self.store.watch_with_progress("/", start).await?;
        let (applied, rx) = watch::channel(start);
        *self.feed.lock() = Some(Feed {
            applied,
            resources: HashMap::new(),
            progress,
        });
        tokio::spawn(run_feed(Arc::downgrade(self), stream));
        Ok(rx)
    }

    /// The cache of `info`, filled from the datastore on first use.
    async fn resource(
        self: &Arc<Self>,
        info: &ResourceInfo,
    ) -> Result<Arc<ResourceCache>, ApiError> {
        let applied = self.running().await.map_err(|e| store_error(info, "", e))?;
        let prefix = info.key_prefix();
        let cache = {
            let mut feed = self.feed.lock();
            let feed = feed
                .as_mut()
                .ok_or_else(|| ApiError::service_unavailable("the watch cache restarted"))?;
            if let Some((_, cache)) = feed.resources.get(&prefix) {
                cache.clone()
            } else {
                let cache = Arc::new(ResourceCache::empty());
                feed.resources
                    .insert(prefix.clone(), (info.clone(), cache.clone()));
                // Filled from here on: every event routed after this point is kept in
                // `pending` until the fill is done.
                let hub = self.clone();
                let (info, filling) = (info.clone(), cache.clone());
                let at = *applied.borrow();
                tokio::spawn(async move { hub.fill(info, filling, at).await });
                cache
            }
        };
        // Wait for the fill (it is normally quick; a failed fill drops the cache).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if cache.state.lock().ready {
                return Ok(cache);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ApiError::timeout(format!(
                    "the watch cache of {} is not ready",
                    info.plural
                )));
            }
            if self.is_dropped(&prefix, &cache) {
                return Err(ApiError::service_unavailable(format!(
                    "the watch cache of {} could not be filled",
                    info.plural
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn is_dropped(&self, prefix: &str, cache: &Arc<ResourceCache>) -> bool {
        self.feed.lock().as_ref().is_none_or(|f| {
            f.resources
                .get(prefix)
                .is_none_or(|(_, c)| !Arc::ptr_eq(c, cache))
        })
    }

    /// Reads the resource at revision `at` (every event after it is pending or still to
    /// come), then applies what arrived meanwhile.
    async fn fill(self: Arc<Self>, info: ResourceInfo, cache: Arc<ResourceCache>, at: Revision) {
        let prefix = info.key_prefix();
        let mut objects = BTreeMap::new();
        let mut start: Option<String> = None;
        let result: Result<(), ApiError> = async {
            loop {
                let page = self
                    .store
                    .range(&prefix, start.as_deref(), LOAD_PAGE, Some(at))
                    .await
                    .map_err(|e| store_error(&info, "", e))?;
                for kv in &page.kvs {
                    objects.insert(kv.key.clone(), entry(&info, &kv.value, kv.mod_revision)?);
                }
                start = page.kvs.last().map(|kv| kv.key.clone());
                if !page.more || start.is_none() {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(resource = %info.plural, error = %e, "watch cache: fill failed");
            if let Some(feed) = self.feed.lock().as_mut() {
                feed.resources.remove(&prefix);
            }
            return;
        }
        let mut state = cache.state.lock();
        state.objects = objects;
        state.rev = at;
        state.start = at;
        let mut gone = Vec::new();
        for ev in std::mem::take(&mut state.pending) {
            gone.extend(apply(&info, &cache, &mut state, &ev));
        }
        state.ready = true;
        drop(state);
        drop(gone);
    }

    /// Events of `info` after revision `after`.
    pub async fn subscribe(
        self: &Arc<Self>,
        info: &ResourceInfo,
        after: Revision,
    ) -> Result<Subscription, ApiError> {
        // A cache that cannot be had (an outage) leaves the datastore's own watch.
        if let Ok(cache) = self.resource(info).await {
            let state = cache.state.lock();
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
                    rx: cache.tx.subscribe(),
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

    /// The cached metadata (without managed fields) of the object at `key`, or `None` if
    /// the cache does not hold it or cannot be had. The cache may lag the datastore: an
    /// answer is what was true a moment ago, and `None` is no proof of absence (read the
    /// datastore then). Upstream's admission plugins read their informers the same way.
    pub async fn cached_metadata(
        self: &Arc<Self>,
        info: &ResourceInfo,
        key: &str,
    ) -> Option<Arc<Value>> {
        let cache = self.resource(info).await.ok()?;
        let state = cache.state.lock();
        state.objects.get(key).map(|e| e.metadata.clone())
    }

    /// A list from memory, as of a revision no older than `min_rev` (the datastore's current
    /// revision for a consistent read; `None`: whatever the cache has, upstream's
    /// `resourceVersion=0`). `None` when the cache cannot answer in time: read the
    /// datastore then. A page of `limit` items ends with a continue token that the
    /// datastore serves (at the page's revision).
    pub async fn list(
        self: &Arc<Self>,
        info: &ResourceInfo,
        ns: Option<&str>,
        limit: usize,
        min_rev: Option<Revision>,
        selection: Selection<'_>,
    ) -> Result<Option<CachedList>, ApiError> {
        if !skiff_api::conversion::is_identity(info) {
            return Ok(None);
        }
        let Ok(cache) = self.resource(info).await else {
            return Ok(None);
        };
        let Ok(mut applied) = self.running().await else {
            return Ok(None);
        };
        if let Some(min) = min_rev.filter(|min| *applied.borrow() < *min) {
            // Behind: writes on their way, or writes the feed never sees; a progress
            // report answers both.
            let asked = self
                .feed
                .lock()
                .as_ref()
                .is_some_and(|feed| feed.progress.request());
            let now = tokio::time::Instant::now();
            let wait = match *self.no_wait_until.lock() {
                Some(until) if now < until && !asked => Duration::ZERO,
                _ => FRESH_WAIT,
            };
            let fresh = tokio::time::timeout(wait, applied.wait_for(|a| *a >= min)).await;
            if !matches!(fresh, Ok(Ok(_))) {
                if wait > Duration::ZERO && !asked {
                    // Another program writes where this server does not watch (a shared
                    // etcd): read the datastore for a while rather than wait each time.
                    *self.no_wait_until.lock() = Some(now + UNSEEN_WRITES_BACKOFF);
                }
                return Ok(None);
            }
        }
        // Read `applied` before the resource's lock: every event of the resource up to it
        // is in the map; events after it that the map already holds are covered by the
        // resource's own revision.
        let global = *applied.borrow();
        let (candidates, revision) = {
            let state = cache.state.lock();
            let prefix = info.list_prefix(ns);
            let candidates: Vec<(String, Entry)> = state
                .objects
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect();
            (candidates, global.max(state.rev))
        };
        select(info, candidates, limit, revision, selection).map(Some)
    }
}

/// Filters a resource's cached objects (in key order), keeping the first `limit` (all for
/// 0); a page that leaves objects behind ends with a continue token at `revision`.
fn select(
    info: &ResourceInfo,
    candidates: Vec<(String, Entry)>,
    limit: usize,
    revision: Revision,
    selection: Selection<'_>,
) -> Result<CachedList, ApiError> {
    let mut items = Vec::new();
    let total = candidates.len();
    for (i, (key, e)) in candidates.into_iter().enumerate() {
        let keep = match &selection {
            Selection::Metadata(keep) => {
                keep(&serde_json::json!({ "metadata": e.metadata.as_ref() }))?
            }
            Selection::Object(keep) => keep(&serde_json::from_slice(&e.json).map_err(|err| {
                ApiError::internal(format!("cached {} cannot be decoded: {err}", info.plural))
            })?)?,
        };
        if keep {
            items.push(e.json);
            if limit > 0 && items.len() >= limit && i + 1 < total {
                return Ok(CachedList {
                    items,
                    revision,
                    continue_token: Some(encode_continue(revision, &key)),
                });
            }
        }
    }
    Ok(CachedList {
        items,
        revision,
        continue_token: None,
    })
}

/// Moves the applied revision forward to `rev` (never back).
fn advance(applied: &watch::Sender<Revision>, rev: Revision) {
    applied.send_if_modified(|at| {
        let newer = rev > *at;
        if newer {
            *at = rev;
        }
        newer
    });
}

/// Routes the datastore's events to the caches, in revision order.
async fn run_feed(hub: std::sync::Weak<Hub>, mut stream: ProgressWatchStream) {
    loop {
        let item = stream.next().await;
        let Some(hub) = hub.upgrade() else { return };
        match item {
            Some(Ok(WatchItem::Progress(rev))) => {
                if let Some(feed) = hub.feed.lock().as_ref() {
                    advance(&feed.applied, rev);
                }
            }
            Some(Ok(WatchItem::Event(ev))) => {
                let rev = ev.revision();
                // Routed under the feed's lock, decoded outside it: every create looks a
                // cache up (the namespace check), and must not wait behind a decode.
                let routed = {
                    let mut feed = hub.feed.lock();
                    let Some(feed) = feed.as_mut() else { return };
                    match resource_of(&feed.resources, &ev.kv.key) {
                        Some((info, cache)) => Some((info.clone(), cache.clone())),
                        None => {
                            advance(&feed.applied, rev);
                            None
                        }
                    }
                };
                let Some((info, cache)) = routed else {
                    continue;
                };
                let ready = cache.state.lock().ready;
                let prepared = ready.then(|| prepare(&info, &ev));
                let gone = {
                    let mut state = cache.state.lock();
                    match prepared {
                        Some(p) => commit(&info, &cache, &mut state, &ev, p),
                        None if state.ready => apply(&info, &cache, &mut state, &ev),
                        None => {
                            state.pending.push(ev.clone());
                            Vec::new()
                        }
                    }
                };
                drop(gone);
                let mut feed = hub.feed.lock();
                let Some(feed) = feed.as_mut() else { return };
                // A cache made for the prefix meanwhile (after a failed fill) starts at the
                // revision published before this event: it gets the event too.
                if let Some((info, now)) = resource_of(&feed.resources, &ev.kv.key) {
                    if !Arc::ptr_eq(now, &cache) {
                        let mut state = now.state.lock();
                        if state.ready {
                            drop(apply(info, now, &mut state, &ev));
                        } else {
                            state.pending.push(ev);
                        }
                    }
                }
                advance(&feed.applied, rev);
            }
            other => {
                // The datastore watch ended (this feed fell behind, or the backend failed):
                // drop every cache; their watchers end and re-watch, lists read the
                // datastore, and the next use starts a new feed.
                match other {
                    Some(Err(e)) => tracing::warn!(error = %e, "watch cache feed stopped"),
                    _ => tracing::warn!("watch cache feed ended"),
                }
                *hub.feed.lock() = None;
                return;
            }
        }
    }
}

/// The cache a key belongs to: `/pods/ns/name` -> `/pods/`, `/apps/deployments/ns/name` ->
/// `/apps/deployments/`.
fn resource_of<'a>(
    resources: &'a HashMap<String, (ResourceInfo, Arc<ResourceCache>)>,
    key: &str,
) -> Option<&'a (ResourceInfo, Arc<ResourceCache>)> {
    if resources.is_empty() {
        return None;
    }
    let mut ends = key.match_indices('/').map(|(i, _)| i).skip(1);
    let first = ends.next()?;
    if let Some(r) = resources.get(&key[..=first]) {
        return Some(r);
    }
    let second = ends.next()?;
    resources.get(&key[..=second])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_route_to_their_resource() {
        let reg = skiff_api::registry::Registry::builtin();
        let mut resources = HashMap::new();
        for (g, p) in [("", "pods"), ("apps", "deployments")] {
            let info = reg.get(g, "v1", p).unwrap().clone();
            let cache = Arc::new(ResourceCache::empty());
            resources.insert(info.key_prefix(), (info, cache));
        }
        let plural = |k: &str| resource_of(&resources, k).map(|(i, _)| i.plural);
        assert_eq!(plural("/pods/default/web"), Some("pods"));
        assert_eq!(plural("/apps/deployments/default/web"), Some("deployments"));
        assert_eq!(plural("/apps/replicasets/default/web"), None);
        assert_eq!(plural("/configmaps/default/web"), None);
        assert_eq!(plural("/"), None);
        assert_eq!(plural(""), None);
    }

    /// A hub over a fresh embedded store, with ConfigMaps `cm-000`.. in `default`.
    async fn hub_with(n: usize) -> (tempfile::TempDir, Arc<dyn Store>, Arc<Hub>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            skiff_store::EmbeddedStore::open(skiff_store::EmbeddedConfig::new(dir.path())).unwrap(),
        );
        for i in 0..n {
            put(&store, &format!("cm-{i:03}"), "0").await;
        }
        let hub = Hub::new(store.clone());
        (dir, store, hub)
    }

    async fn put(store: &Arc<dyn Store>, name: &str, v: &str) -> Revision {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {"v": v}}});
        let key = format!("/configmaps/default/{name}");
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        match store.get(&key).await.unwrap() {
            Some(kv) => store.update(&key, bytes, kv.mod_revision).await.unwrap(),
            None => store.create(&key, bytes).await.unwrap(),
        }
    }

    fn names(list: &CachedList) -> Vec<String> {
        list.items
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_slice(b).unwrap();
                v["metadata"]["name"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn configmaps() -> ResourceInfo {
        skiff_api::registry::Registry::builtin()
            .get("", "v1", "configmaps")
            .unwrap()
            .clone()
    }

    const ALL: &(dyn Fn(&Value) -> Result<bool, ApiError> + Send + Sync) = &|_| Ok(true);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consistent_list_waits_out_writes_it_never_sees_on_a_shared_etcd() {
        // Another program writes to the same etcd, outside skiff's prefix: etcd's revision
        // runs past every event the cache gets. A progress report tells the cache it has
        // caught up, so consistent lists are still served from memory (without it, each
        // timed out and read the datastore).
        let etcd = skiff_store::testing::EtcdProcess::start().await.unwrap();
        let etcd_store = etcd.store("/registry").await.unwrap();
        // An etcd whose progress reports can overtake events is not asked for them: its
        // consistent lists read the datastore, and answer rightly all the same.
        let reports_progress = etcd_store.reports_progress();
        let store: Arc<dyn Store> = Arc::new(etcd_store);
        let other = etcd.store("/other").await.unwrap();
        put(&store, "cm-a", "0").await;
        let hub = Hub::new(store.clone());
        let info = configmaps();
        // Start the feed and fill the cache first: it starts at etcd's revision then.
        hub.list(&info, None, 0, None, Selection::Object(ALL))
            .await
            .unwrap()
            .expect("the cache answers");
        let mut from_cache = 0;
        for round in 0..3 {
            for i in 0..5 {
                other
                    .create(&format!("/x/{round}-{i}"), Bytes::from("y"))
                    .await
                    .unwrap();
            }
            let current = store.current_revision().await.unwrap();
            let list = hub
                .list(
                    &info,
                    Some("default"),
                    0,
                    Some(current),
                    Selection::Object(ALL),
                )
                .await
                .unwrap();
            if let Some(list) = list {
                assert_eq!(names(&list), ["cm-a"]);
                assert!(list.revision >= current);
                from_cache += 1;
            }
        }
        // Each progress report arrives in a few milliseconds; one slower than the wait
        // (250 ms, on a loaded machine) sends that list to the datastore.
        assert!(
            !reports_progress || from_cache >= 2,
            "{from_cache} of 3 consistent lists were served from the cache"
        );
    }

    #[tokio::test]
    async fn a_consistent_list_from_memory_sees_every_acknowledged_write() {
        let (_dir, store, hub) = hub_with(3).await;
        let info = configmaps();
        let current = store.current_revision().await.unwrap();
        let list = hub
            .list(
                &info,
                Some("default"),
                0,
                Some(current),
                Selection::Object(ALL),
            )
            .await
            .unwrap()
            .expect("the cache answers");
        assert_eq!(names(&list), ["cm-000", "cm-001", "cm-002"]);
        assert_eq!(list.revision, current);
        // Writes after the fill are in the next consistent list, at once.
        for round in 0..20 {
            let rev = put(&store, &format!("cm-new-{round:02}"), "1").await;
            let list = hub
                .list(&info, Some("default"), 0, Some(rev), Selection::Object(ALL))
                .await
                .unwrap()
                .expect("the cache answers");
            assert!(list.revision >= rev);
            assert_eq!(list.items.len(), 4 + round);
            let v: Value = serde_json::from_slice(list.items.last().unwrap()).unwrap();
            assert_eq!(v["metadata"]["resourceVersion"], rev.to_string());
        }
        // Deletes too.
        let (rev, _) = store
            .delete("/configmaps/default/cm-001", None)
            .await
            .unwrap();
        let list = hub
            .list(&info, None, 0, Some(rev), Selection::Object(ALL))
            .await
            .unwrap()
            .unwrap();
        assert!(!names(&list).contains(&"cm-001".to_owned()));
    }

    #[tokio::test]
    async fn selections_and_pages_match_the_datastore() {
        let (_dir, store, hub) = hub_with(10).await;
        let info = configmaps();
        put(&store, "cm-004", "1").await;
        put(&store, "cm-007", "1").await;
        let labelled: &(dyn Fn(&Value) -> Result<bool, ApiError> + Send + Sync) =
            &|o| Ok(o.pointer("/metadata/labels/v") == Some(&Value::from("1")));
        let current = store.current_revision().await.unwrap();
        for selection in [Selection::Metadata(labelled), Selection::Object(labelled)] {
            let list = hub
                .list(&info, Some("default"), 0, Some(current), selection)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(names(&list), ["cm-004", "cm-007"]);
        }
        // A page of 4 from memory; the rest from the datastore at the page's revision, even
        // though writes happened in between: no gap, no duplicate.
        let page = hub
            .list(
                &info,
                Some("default"),
                4,
                Some(current),
                Selection::Object(ALL),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(names(&page), ["cm-000", "cm-001", "cm-002", "cm-003"]);
        let token = page.continue_token.clone().expect("a continue token");
        let added = put(&store, "cm-000a", "0").await;
        let objects = crate::objects::Objects {
            store: store.clone(),
            services: None,
        };
        let rest = objects
            .list_raw(&info, Some("default"), 0, Some(&token), None, ALL)
            .await
            .unwrap();
        assert_eq!(rest.revision, page.revision);
        assert_eq!(rest.items.len(), 6, "the rest, as of the first page");
        // A page that holds everything (as of the write above) has no token.
        let tail = hub
            .list(
                &info,
                Some("default"),
                11,
                Some(added),
                Selection::Object(ALL),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(tail.continue_token.is_none() && tail.items.len() == 11);
    }

    #[tokio::test]
    async fn watchers_get_each_event_once_from_the_cache() {
        let (_dir, store, hub) = hub_with(2).await;
        let info = configmaps();
        let from = store.current_revision().await.unwrap();
        let mut sub = hub.subscribe(&info, from).await.unwrap();
        assert!(matches!(sub, Subscription::Cached { .. }));
        let mut revs = Vec::new();
        for i in 0..50 {
            revs.push(put(&store, &format!("w-{i}"), "0").await);
        }
        for want in revs {
            let ev = tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(ev.rev, want);
            assert_eq!(ev.change, Change::Added);
            let json = ev.json.as_ref().expect("a put's event carries its JSON");
            assert_eq!(serde_json::from_slice::<Value>(json).unwrap(), **ev.obj());
        }
        // An update carries its new state's JSON; a delete carries none (it is encoded).
        let rev = put(&store, "w-0", "1").await;
        let ev = sub.next().await.unwrap().unwrap();
        assert_eq!((ev.rev, ev.change), (rev, Change::Modified));
        let json: Value = serde_json::from_slice(ev.json.as_ref().unwrap()).unwrap();
        assert_eq!(json, **ev.obj());
        assert_eq!(json["metadata"]["labels"]["v"], "1");
        assert_eq!(json["metadata"]["resourceVersion"], rev.to_string());
        let (rev, _) = store.delete("/configmaps/default/w-0", None).await.unwrap();
        let ev = sub.next().await.unwrap().unwrap();
        assert_eq!(
            (ev.rev, ev.change, ev.json.is_none()),
            (rev, Change::Deleted, true)
        );
        // A watch from before the cache's start reads the datastore's history.
        let sub = hub.subscribe(&info, 1).await.unwrap();
        assert!(matches!(sub, Subscription::Direct { .. }));
    }
}
