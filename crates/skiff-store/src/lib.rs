//! skiff's cluster datastore: a revisioned key-value store with the semantics Kubernetes
//! needs from etcd, behind one trait ([`Store`]), with two backends:
//!
//! - [`embedded::EmbeddedStore`]: the default for `skiff server`, a durable single-process
//!   store in the data dir (redb underneath, group commit, automatic compaction);
//! - [`etcd::EtcdStore`]: the etcd v3 API, for clusters of several servers.
//!
//! Every backend passes the same conformance suite (`conformance`, behind the `testing`
//! feature). This crate knows nothing about Kubernetes objects: it stores bytes under
//! string keys.
//!
//! Revisions follow etcd: one cluster-wide counter, incremented by every write; compacting
//! at revision `C` keeps revision `C` readable and forgets the history before it.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub mod embedded;
pub mod etcd;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod testing;

pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use etcd::{EtcdConfig, EtcdStore};

/// The largest value accepted: etcd's default request limit (1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;
/// The longest key accepted. Kubernetes keys are a few hundred bytes at most.
pub const MAX_KEY_BYTES: usize = 4096;

/// A revision of the store. Every write increments it by one; the first write is revision 1.
pub type Revision = i64;

/// One version of a key, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision at which this key was (last) created.
    pub create_revision: Revision,
    /// The revision of the write that produced this version.
    pub mod_revision: Revision,
}

/// The answer of [`Store::range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResult {
    /// The keys found, in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys follow the last one returned (the limit cut the page).
    pub more: bool,
    /// The revision this page was read at: pass it as `at_revision` for the next page to
    /// get a consistent snapshot across pages.
    pub revision: Revision,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as delivered by [`Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put, the new version; for a delete, the key with an empty value and
    /// `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
    /// The version this write replaced (always present for a delete and an update).
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision of the write this event reports.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A stream of watch events in revision order. It ends with an error when the watch cannot
/// go on (the watcher fell too far behind, the history was compacted, the backend failed);
/// the caller then watches again from the last revision it saw.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// One item of a watch that reports progress ([`Store::watch_with_progress`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    Event(Event),
    /// Every change under the prefix up to this revision has been delivered: the datastore's
    /// revision may run ahead of the last event seen (writes outside the prefix, say by
    /// another program sharing an etcd), and this says how far the watch has caught up.
    Progress(Revision),
}

/// A stream of [`WatchItem`]s, in revision order, ending as a [`WatchStream`] does.
pub type ProgressWatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem>> + Send>>;

/// Asks a watch from [`Store::watch_with_progress`] to report its progress as soon as it can.
#[derive(Clone, Debug, Default)]
pub struct ProgressRequests(Option<tokio::sync::mpsc::Sender<()>>);

impl ProgressRequests {
    /// Requests a [`WatchItem::Progress`]. Answers false if the watch never reports progress
    /// (its backend delivers every write to it, or it has ended).
    pub fn request(&self) -> bool {
        match &self.0 {
            // A request already queued will answer this one too.
            Some(tx) => !matches!(
                tx.try_send(()),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_))
            ),
            None => false,
        }
    }

    pub(crate) fn channel() -> (Self, tokio::sync::mpsc::Receiver<()>) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        (Self(Some(tx)), rx)
    }
}

/// A backend's watch in progress: yields the next event, or the error that ends the watch,
/// or `None` once ended.
pub(crate) trait EventSource: Send + 'static {
    fn next_event(&mut self) -> impl std::future::Future<Output = Option<Result<Event>>> + Send;
}

/// Turns a backend's watch into the stream the trait returns.
pub(crate) fn watch_stream(source: impl EventSource) -> WatchStream {
    Box::pin(futures::stream::unfold(source, |mut source| async move {
        let item = source.next_event().await?;
        Some((item, source))
    }))
}

/// The errors of every backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("key {key:?} already exists")]
    KeyExists { key: String },
    #[error("key {key:?} not found")]
    NotFound { key: String },
    #[error("key {key:?} was modified: expected mod revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest kept: {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("revision {requested} is in the future (current: {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid value for key {key:?}: {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("watcher fell behind by more than {buffer} events and was cut off")]
    WatcherTooSlow { buffer: usize },
    #[error("datastore unavailable (retry): {0}")]
    Unavailable(String),
    #[error("datastore file {path} is corrupted: {detail}")]
    Corrupted { path: String, detail: String },
    #[error("datastore file {path} is in use by another process")]
    Locked { path: String },
    #[error("datastore is closed")]
    Closed,
    #[error("datastore i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("datastore backend error: {0}")]
    Backend(String),
}

impl Error {
    /// Whether the same call may succeed if retried later (a backend that is down or
    /// restarting), as opposed to an answer about the data (conflict, not found, ...).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::WatcherTooSlow { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The datastore: what the API server needs from etcd, and nothing more.
///
/// Keys are UTF-8 strings; prefixes are plain string prefixes (`"/pods/"` ranges every key
/// that starts with it). All writes are durable when they return `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key`; fails with [`Error::KeyExists`] if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replaces `key` if its mod revision is `expected_mod_revision`; [`Error::Conflict`] if
    /// it is another, [`Error::NotFound`] if the key does not exist. Returns the new revision.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<Revision>;

    /// Deletes `key`, if its mod revision is `expected_mod_revision` when one is given.
    /// Returns the revision of the delete and the version deleted.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<(Revision, KeyValue)>;

    /// The current version of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Up to `limit` keys (0: no limit) starting with `prefix` and sorting after
    /// `start_after` (when given), as they were at `at_revision` (when given; else now).
    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<RangeResult>;

    /// How many keys start with `prefix` now.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Every change to a key starting with `prefix` whose revision is greater than
    /// `from_revision`, in revision order: first the history, then live changes.
    /// [`Error::Compacted`] if part of that history is no longer kept.
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream>;

    /// [`Store::watch`], with progress reports on request. The default never reports
    /// progress, which is right for a backend whose revisions only count writes a watch of
    /// `"/"` sees (the embedded store).
    async fn watch_with_progress(
        &self,
        prefix: &str,
        from_revision: Revision,
    ) -> Result<(ProgressWatchStream, ProgressRequests)> {
        use futures::StreamExt;
        let events = self.watch(prefix, from_revision).await?;
        Ok((
            Box::pin(events.map(|item| item.map(WatchItem::Event))),
            ProgressRequests::default(),
        ))
    }

    /// Forgets the history before `revision` (which stays readable).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the latest write (0 for a store never written).
    async fn current_revision(&self) -> Result<Revision>;

    /// The oldest revision still readable (0 or 1 when nothing was ever compacted).
    async fn compacted_revision(&self) -> Result<Revision>;
}

/// Checks a key against the limits every backend shares.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey("key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey(format!(
            "key is {} bytes, more than the limit of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a value against the limits every backend shares.
pub fn validate_value(key: &str, value: &[u8]) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidValue {
            key: key.to_owned(),
            reason: "value must not be empty".into(),
        });
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::InvalidValue {
            key: key.to_owned(),
            reason: format!(
                "value is {} bytes, more than the limit of {MAX_VALUE_BYTES}",
                value.len()
            ),
        });
    }
    Ok(())
}

/// The smallest string greater than every string starting with `prefix`, as etcd's
/// `range_end` for a prefix; `None` when there is none (an empty or all-0xff prefix).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/pods/"), Some(b"/pods0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn limits_are_checked() {
        assert!(matches!(validate_key(""), Err(Error::InvalidKey(_))));
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(matches!(
            validate_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            validate_value("k", b""),
            Err(Error::InvalidValue { .. })
        ));
        assert!(validate_value("k", &vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(matches!(
            validate_value("k", &vec![0; MAX_VALUE_BYTES + 1]),
            Err(Error::InvalidValue { .. })
        ));
    }
}
