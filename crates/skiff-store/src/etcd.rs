//! The etcd backend: the [`Store`] trait over the etcd v3 API, for clusters of several
//! servers. Keys live under a prefix (default `/registry`, as Kubernetes does); revisions
//! are etcd's own; compare-and-swap is an etcd transaction on the key's mod revision.
//!
//! A connection failure or an etcd that is down answers [`Error::Unavailable`] (retryable).
//! A watch survives an etcd restart: it reconnects by itself and resumes after the last
//! revision it delivered, so no event is lost or repeated; it gives up with `Unavailable`
//! only when etcd stays unreachable for longer than [`EtcdConfig::watch_retry_for`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};

use crate::{
    prefix_end, validate_key, validate_value, watch_stream, Error, Event, EventKind, EventSource,
    KeyValue, ProgressRequests, ProgressWatchStream, RangeResult, Result, Revision, Store,
    WatchItem, WatchStream,
};

/// Settings of the etcd backend.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// etcd client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Every key is stored under this prefix.
    pub prefix: String,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// How long a watch keeps trying to reconnect before it ends with `Unavailable`.
    pub watch_retry_for: Duration,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: "/registry".into(),
            request_timeout: Duration::from_secs(10),
            watch_retry_for: Duration::from_secs(60),
        }
    }
}

/// The etcd backend. Cloning shares the connection.
#[derive(Clone)]
pub struct EtcdStore {
    /// The connection watches use: a connection of their own (see [`EtcdStore::connect`]).
    watches: Client,
    /// The kv client, with room for large range answers (cloned per call: cheap).
    kv: KvClient,
    config: EtcdConfig,
    /// Whether every member answers progress requests only after the watch has sent every
    /// event up to the revision it reports ([`progress_is_ordered`]).
    ordered_progress: bool,
}

/// The largest answer read from etcd (a full list of a big resource, unpaginated).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

impl EtcdStore {
    /// Connects to etcd and checks that it answers.
    ///
    /// Requests and watches go over two connections. On one HTTP/2 connection a watch
    /// shares the connection's flow-control window and etcd's writer with every range
    /// answer, and etcd has been seen to starve a watch stream for tens of seconds under
    /// large concurrent reads (etcd-io/etcd#15402: "does not occur when the watch is created
    /// on a separate client/connection"); a watch whose reader is slow can likewise hold
    /// the shared window from requests. Keep-alive as kube-apiserver's etcd client: a ping
    /// every 30 s, the connection given up when one is unanswered for 10 s.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let options = || {
            ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(config.request_timeout)
                .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
        };
        let requests = Client::connect(&config.endpoints, Some(options()))
            .await
            .map_err(map_err)?;
        let watches = Client::connect(&config.endpoints, Some(options()))
            .await
            .map_err(map_err)?;
        let kv = requests
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let mut store = Self {
            watches,
            kv,
            config,
            ordered_progress: false,
        };
        store.current_revision().await?;
        store.ordered_progress = store.members_order_progress().await;
        if !store.ordered_progress {
            tracing::info!(
                "etcd is older than 3.4.31 / 3.5.13 (or a member did not say its version): \
                 its progress reports can run ahead of watch events, so the watch cache \
                 does not ask for them (consistent lists it cannot answer read etcd)"
            );
        }
        Ok(store)
    }

    /// Whether watches of this store report progress ([`Store::watch_with_progress`]): only
    /// when every etcd member is a version whose progress reports are ordered with events.
    pub fn reports_progress(&self) -> bool {
        self.ordered_progress
    }

    /// Asks each endpoint its version; true when all answer and every one orders progress.
    async fn members_order_progress(&self) -> bool {
        for endpoint in &self.config.endpoints {
            let options = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(2));
            let status = async {
                let mut client = Client::connect([endpoint], Some(options)).await?;
                client.status().await
            };
            match tokio::time::timeout(Duration::from_secs(3), status).await {
                Ok(Ok(status)) if progress_is_ordered(status.version()) => {}
                Ok(Ok(status)) => {
                    tracing::debug!(endpoint, version = status.version(), "etcd member version");
                    return false;
                }
                _ => return false,
            }
        }
        true
    }

    /// `call`, given up with `Unavailable` after the request timeout. tonic's own timeout
    /// ends when the answer's headers arrive; its body can still wait for flow-control
    /// window without end, and no request may hang for ever.
    async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        let limit = self.config.request_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(answer) => answer.map_err(map_err),
            Err(_) => Err(Error::Unavailable(format!(
                "etcd did not answer within {limit:?}"
            ))),
        }
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.config.prefix.len() + key.len());
        full.extend_from_slice(self.config.prefix.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    fn convert(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.config.prefix.as_bytes())
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or_else(|| Error::Backend(format!("etcd returned a foreign key {:?}", kv.key())))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// Runs a transaction "if `compare` then `then` else get the key" and returns the
    /// response, with the key's current version when the comparison failed.
    async fn cas(
        &self,
        key: &str,
        compare: Compare,
        then: TxnOp,
    ) -> Result<std::result::Result<etcd_client::TxnResponse, Option<KeyValue>>> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([compare])
            .and_then([then])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.timed(self.kv.clone().txn(txn)).await?;
        if resp.succeeded() {
            return Ok(Ok(resp));
        }
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        Ok(Err(current.map(|kv| self.convert(&kv)).transpose()?))
    }

    /// The compacted revision: the oldest revision etcd still answers a read at, found by a
    /// binary search of count-only reads (etcd has no call that tells it).
    async fn find_compacted(&self, current: Revision) -> Result<Revision> {
        let readable = |rev: Revision| async move {
            let opts = GetOptions::new().with_count_only().with_revision(rev);
            match self
                .timed(self.kv.clone().get(self.config.prefix.clone(), Some(opts)))
                .await
            {
                Ok(_) => Ok(true),
                Err(Error::Compacted { .. }) => Ok(false),
                Err(other) => Err(other),
            }
        };
        if current <= 1 || readable(1).await? {
            return Ok(0);
        }
        let (mut lo, mut hi) = (1, current); // lo: not readable; hi: readable
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if readable(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    async fn compacted_error(&self, requested: Revision) -> Error {
        let compacted = match self.current_revision().await {
            Ok(current) => self.find_compacted(current).await.unwrap_or(0),
            Err(_) => 0,
        };
        Error::Compacted {
            requested,
            compacted,
        }
    }
}

/// Whether an etcd of `version` sends a requested progress report only after every event up
/// to its revision: etcd-io/etcd#15220 (a report could overtake events still queued for the
/// stream; fixed by #15237) and #17507 (no report for a new watch; #17557) are fixed from
/// 3.4.31 and 3.5.13, the versions upstream's apiserver requires before it asks for progress
/// (`storage/etcd3/feature`). A watch that believed an early report skipped the events it
/// overtook.
fn progress_is_ordered(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor)), patch) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let patch = patch.flatten().unwrap_or(0);
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m > 5,
        (m, _) => m > 3,
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Backend("etcd response without a header".into()))
}

/// Maps etcd's errors: connection trouble is retryable; etcd's own answers become the
/// store's errors.
fn map_err(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                Error::Compacted {
                    requested: 0,
                    compacted: 0,
                }
            } else if message.contains("request is too large") {
                Error::InvalidValue {
                    key: String::new(),
                    reason: format!("etcd refused the request as too large ({message}); raise its --max-request-bytes"),
                }
            } else if message.contains("required revision is a future revision") {
                Error::FutureRevision {
                    requested: 0,
                    current: 0,
                }
            } else {
                match status.code() {
                    tonic_code::Unavailable
                    | tonic_code::DeadlineExceeded
                    | tonic_code::Cancelled
                    | tonic_code::Aborted
                    | tonic_code::Unknown => Error::Unavailable(format!("etcd: {message}")),
                    _ => Error::Backend(format!("etcd: {message}")),
                }
            }
        }
        E::TransportError(e) => Error::Unavailable(format!("etcd unreachable: {e}")),
        E::IoError(e) => Error::Unavailable(format!("etcd unreachable: {e}")),
        E::WatchError(e) => Error::Unavailable(format!("etcd watch: {e}")),
        other => Error::Backend(format!("etcd: {other}")),
    }
}

/// tonic's status codes, as etcd-client re-exports tonic.
mod tonic_code {
    pub use tonic::Code::*;
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        validate_key(key)?;
        validate_value(key, &value)?;
        let full = self.full_key(key);
        let compare = Compare::create_revision(full.clone(), CompareOp::Equal, 0);
        match self
            .cas(key, compare, TxnOp::put(full, value.to_vec(), None))
            .await?
        {
            Ok(resp) => header_revision(resp.header()),
            Err(_) => Err(Error::KeyExists {
                key: key.to_owned(),
            }),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        validate_key(key)?;
        validate_value(key, &value)?;
        let full = self.full_key(key);
        let compare = Compare::mod_revision(full.clone(), CompareOp::Equal, expected);
        match self
            .cas(key, compare, TxnOp::put(full, value.to_vec(), None))
            .await?
        {
            Ok(resp) => header_revision(resp.header()),
            Err(None) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            Err(Some(current)) => Err(Error::Conflict {
                key: key.to_owned(),
                expected,
                actual: current.mod_revision,
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        validate_key(key)?;
        let full = self.full_key(key);
        // Without an expected revision: delete whatever version is there (mod revision > 0,
        // i.e. the key exists).
        let compare = match expected {
            Some(rev) => Compare::mod_revision(full.clone(), CompareOp::Equal, rev),
            None => Compare::mod_revision(full.clone(), CompareOp::Greater, 0),
        };
        let op = TxnOp::delete(
            full,
            Some(etcd_client::DeleteOptions::new().with_prev_key()),
        );
        match self.cas(key, compare, op).await? {
            Ok(resp) => {
                let rev = header_revision(resp.header())?;
                let prev = resp
                    .op_responses()
                    .into_iter()
                    .find_map(|op| match op {
                        TxnOpResponse::Delete(d) => d.prev_kvs().first().cloned(),
                        _ => None,
                    })
                    .ok_or_else(|| Error::NotFound {
                        key: key.to_owned(),
                    })?;
                Ok((rev, self.convert(&prev)?))
            }
            Err(None) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            Err(Some(current)) => Err(Error::Conflict {
                key: key.to_owned(),
                expected: expected.unwrap_or_default(),
                actual: current.mod_revision,
            }),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let resp = self
            .timed(self.kv.clone().get(self.full_key(key), None))
            .await?;
        resp.kvs().first().map(|kv| self.convert(kv)).transpose()
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<RangeResult> {
        let full_prefix = self.full_key(prefix);
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let start = match start_after {
            Some(after) if after >= prefix => {
                let mut start = self.full_key(after);
                start.push(0);
                start
            }
            _ => full_prefix,
        };
        let mut opts = GetOptions::new().with_range(end).with_limit(limit as i64);
        if let Some(rev) = at_revision {
            opts = opts.with_revision(rev);
        }
        let resp = match self.timed(self.kv.clone().get(start, Some(opts))).await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(match e {
                    Error::Compacted { .. } => self.compacted_error(at_revision.unwrap_or(0)).await,
                    Error::FutureRevision { .. } => Error::FutureRevision {
                        requested: at_revision.unwrap_or(0),
                        current: self.current_revision().await.unwrap_or(0),
                    },
                    other => other,
                })
            }
        };
        let kvs = resp
            .kvs()
            .iter()
            .map(|kv| self.convert(kv))
            .collect::<Result<_>>()?;
        let revision = at_revision.unwrap_or(header_revision(resp.header())?);
        Ok(RangeResult {
            kvs,
            more: resp.more(),
            revision,
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let opts = GetOptions::new().with_prefix().with_count_only();
        let resp = self
            .timed(self.kv.clone().get(self.full_key(prefix), Some(opts)))
            .await?;
        Ok(resp.count().max(0) as u64)
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let watch = self.open_watch(prefix, from_revision, None).await?;
        Ok(watch_stream(watch))
    }

    /// Progress comes from etcd's `WatchProgressRequest`: etcd answers, once the watch has
    /// sent everything, with its current revision (what upstream's watch cache uses for
    /// consistent reads from the cache). On an etcd whose answer can overtake events
    /// ([`EtcdStore::reports_progress`] false), the watch takes no requests.
    async fn watch_with_progress(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<(ProgressWatchStream, ProgressRequests)> {
        if !self.ordered_progress {
            use futures::StreamExt;
            let events = self.watch(prefix, from_revision).await?;
            return Ok((
                Box::pin(events.map(|item| item.map(WatchItem::Event))),
                ProgressRequests::default(),
            ));
        }
        let (requests, rx) = ProgressRequests::channel();
        let watch = self.open_watch(prefix, from_revision, Some(rx)).await?;
        let items = futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next_item().await?;
            Some((item, watch))
        });
        Ok((Box::pin(items), requests))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let current = self.current_revision().await?;
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        match self.timed(self.kv.clone().compact(revision, None)).await {
            // etcd refuses to compact to or before its compacted revision: nothing to do.
            Ok(_) | Err(Error::Compacted { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .timed(self.kv.clone().get(self.config.prefix.clone(), Some(opts)))
            .await?;
        header_revision(resp.header())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let current = self.current_revision().await?;
        self.find_compacted(current).await
    }
}

impl EtcdStore {
    async fn open_watch(
        &self,
        prefix: &str,
        from_revision: Revision,
        progress: Option<tokio::sync::mpsc::Receiver<()>>,
    ) -> Result<EtcdWatch> {
        let mut watch = EtcdWatch {
            store: self.clone(),
            prefix: self.full_key(prefix),
            next: from_revision.max(0) + 1,
            stream: None,
            buffered: VecDeque::new(),
            progress,
            done: false,
        };
        // Open the first connection now, so a compacted start is reported by this call.
        watch.connect().await?;
        Ok(watch)
    }
}

/// A watch that reconnects after etcd goes away, resuming at `next`.
struct EtcdWatch {
    store: EtcdStore,
    prefix: Vec<u8>,
    /// The revision of the next event to deliver.
    next: Revision,
    stream: Option<etcd_client::WatchStream>,
    buffered: VecDeque<WatchItem>,
    /// Progress requests, for a watch that reports progress.
    progress: Option<tokio::sync::mpsc::Receiver<()>>,
    done: bool,
}

impl EtcdWatch {
    async fn connect(&mut self) -> Result<()> {
        let end = prefix_end(&self.prefix).unwrap_or_else(|| vec![0]);
        let opts = WatchOptions::new()
            .with_range(end)
            .with_start_revision(self.next)
            .with_prev_key();
        let mut client = self
            .store
            .watches
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let mut stream = self
            .store
            .timed(client.watch(self.prefix.clone(), Some(opts)))
            .await?;
        // The first answer says whether the watch was created or refused (compacted).
        match self.store.timed(stream.message()).await? {
            Some(resp) if resp.canceled() => return Err(self.canceled(&resp)),
            Some(resp) => self.take(&resp)?,
            None => return Err(Error::Unavailable("etcd closed the watch".into())),
        }
        self.stream = Some(stream);
        Ok(())
    }

    fn canceled(&self, resp: &etcd_client::WatchResponse) -> Error {
        if resp.compact_revision() > 0 {
            Error::Compacted {
                requested: self.next,
                compacted: resp.compact_revision(),
            }
        } else {
            Error::Backend(format!("etcd canceled the watch: {}", resp.cancel_reason()))
        }
    }

    fn take(&mut self, resp: &etcd_client::WatchResponse) -> Result<()> {
        if resp.events().is_empty() && !resp.created() {
            // A progress notification: every event up to the header's revision was sent.
            // (A report never goes back past an event already delivered.)
            self.next = self.next.max(header_revision(resp.header())? + 1);
            self.buffered.push_back(WatchItem::Progress(self.next - 1));
            return Ok(());
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let mut kv = self.store.convert(kv)?;
            if kv.mod_revision < self.next {
                continue;
            }
            let prev_kv = ev.prev_kv().map(|p| self.store.convert(p)).transpose()?;
            let kind = match ev.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => {
                    // etcd reports a delete with create revision 0; report the deleted
                    // version's, as the embedded store does.
                    kv.create_revision = prev_kv.as_ref().map_or(0, |p| p.create_revision);
                    EventKind::Delete
                }
            };
            self.next = kv.mod_revision + 1;
            self.buffered
                .push_back(WatchItem::Event(Event { kind, kv, prev_kv }));
        }
        Ok(())
    }
}

impl EventSource for EtcdWatch {
    async fn next_event(&mut self) -> Option<Result<Event>> {
        loop {
            match self.next_item().await? {
                Ok(WatchItem::Event(ev)) => return Some(Ok(ev)),
                Ok(WatchItem::Progress(_)) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl EtcdWatch {
    /// The next event or progress report, reconnecting as needed.
    async fn next_item(&mut self) -> Option<Result<WatchItem>> {
        let mut down_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.done {
                return None;
            }
            if let Some(ev) = self.buffered.pop_front() {
                return Some(Ok(ev));
            }
            let failure = match self.stream.as_mut() {
                Some(stream) => match next_message(stream, self.progress.as_mut()).await {
                    Ok(Some(resp)) if resp.canceled() => {
                        self.done = true;
                        return Some(Err(self.canceled(&resp)));
                    }
                    Ok(Some(resp)) => match self.take(&resp) {
                        Ok(()) => continue,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    },
                    Ok(None) => Error::Unavailable("etcd closed the watch".into()),
                    Err(e) => map_err(e),
                },
                None => match self.connect().await {
                    Ok(()) => {
                        down_since = None;
                        backoff = Duration::from_millis(50);
                        continue;
                    }
                    Err(e) => e,
                },
            };
            self.stream = None;
            if !failure.is_retryable() {
                self.done = true;
                return Some(Err(failure));
            }
            let since = *down_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.store.config.watch_retry_for {
                self.done = true;
                return Some(Err(failure));
            }
            tracing::debug!(error = %failure, next = self.next, "etcd watch interrupted; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// The next message of `stream`; a progress request that arrives meanwhile is sent on, and
/// the wait goes on (etcd answers it as a message).
async fn next_message(
    stream: &mut etcd_client::WatchStream,
    mut progress: Option<&mut tokio::sync::mpsc::Receiver<()>>,
) -> Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    loop {
        let request = async {
            match progress.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = stream.message() => return message,
            asked = request => match asked {
                Some(()) => stream.request_progress().await?,
                // Nobody can ask any more.
                None => progress = None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::progress_is_ordered;

    #[test]
    fn progress_is_trusted_only_from_fixed_etcd_versions() {
        for old in [
            "3.4.23", "3.4.30", "3.5.0", "3.5.12", "3.3.27", "2.3.8", "", "x.y",
        ] {
            assert!(!progress_is_ordered(old), "{old}");
        }
        for fixed in [
            "3.4.31", "3.4.37", "3.5.13", "3.5.21", "3.6.0", "3.6.4", "4.0.0",
        ] {
            assert!(progress_is_ordered(fixed), "{fixed}");
        }
    }
}
