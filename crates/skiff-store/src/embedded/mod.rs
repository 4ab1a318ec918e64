//! The embedded backend: a durable, single-process store in two files of the data dir, a
//! redb database (`skiff.redb`) and its write-ahead log (`skiff.wal`).
//!
//! Layout: a redb database with two tables keyed by revision, `log` (what each write did:
//! put or delete, the key, its create revision, the revision it replaced) and `values` (the
//! bytes each put stored), plus `meta` (the compacted revision). Both tables grow at their
//! right edge, so a write is an append. The per-key MVCC index ([`index::Index`]) is kept in
//! memory and rebuilt from `log` at open; values stay on disk.
//!
//! Writes go through one writer thread that takes every request queued while the previous
//! commit was syncing and commits them together with one sync (group commit): throughput
//! rises with the number of concurrent writers while every write is durable before it is
//! acknowledged. The sync is the write-ahead log's (`wal.rs`): redb commits each batch
//! without syncing, and a checkpoint makes them durable in redb's file from time to time.
//! Reads take the index lock, open a redb read snapshot and read values from it, never
//! blocking the writer. Watches replay history from disk, then receive live events
//! from the writer through a bounded channel; a watcher that falls behind is cut off with
//! [`Error::WatcherTooSlow`].
//!
//! Compaction runs on the writer thread: it keeps at least `min_history` revisions and
//! `min_history_age` of history, and deletes the rest in bounded chunks so writes are never
//! held up for long. redb reuses the pages freed, so the file stays bounded under churn.

pub mod index;
mod wal;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use self::index::{Index, Version};
#[cfg(any(test, feature = "testing"))]
pub use self::wal::records_in as wal_records_in;
pub use self::wal::WAL_FILE;
use self::wal::{Wal, WalRecord};
use crate::{
    validate_key, validate_value, watch_stream, Error, Event, EventKind, EventSource, KeyValue,
    RangeResult, Result, Revision, Store, WatchStream,
};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const VALUES: TableDefinition<u64, &[u8]> = TableDefinition::new("values");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_COMPACTED: &str = "compacted";
const META_FORMAT: &str = "format";
const FORMAT_VERSION: u64 = 1;

/// The file name of the database inside the store's directory.
pub const DB_FILE: &str = "skiff.redb";

/// How often the writer thread considers automatic compaction when idle.
const TICK: Duration = Duration::from_millis(500);
/// A checkpoint (one durable redb commit, after which the write-ahead log is emptied) is
/// made once the log holds this much, whatever `checkpoint_interval` says...
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// ...or after this many commits: redb reuses the pages a commit frees only once a durable
/// commit follows, so each non-durable commit (about ten new pages) grows the file until then.
const CHECKPOINT_COMMITS: u32 = 256;
/// The most revisions deleted by one compaction commit.
const COMPACT_CHUNK: usize = 4096;
/// The most revisions one replay step of a watch reads.
const REPLAY_CHUNK: u64 = 1024;

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The directory that holds the database file (created if missing).
    pub dir: PathBuf,
    /// Automatic compaction keeps at least this many revisions of history...
    pub min_history: i64,
    /// ...and at least this much time of history.
    pub min_history_age: Duration,
    /// How often automatic compaction runs; `None` turns it off.
    pub compaction_interval: Option<Duration>,
    /// Events a watcher may have pending before it is cut off.
    pub watch_buffer: usize,
    /// The most writes committed together by one sync.
    pub max_batch: usize,
    /// Memory redb may use to cache pages.
    pub cache_bytes: usize,
    /// Verify the checksum of every page at open (detects a damaged file before use).
    pub verify_on_open: bool,
    /// How often, at most, the writes of the write-ahead log are made durable in redb's
    /// file and the log emptied (a checkpoint); it also happens when the writer is idle, at
    /// close, and when the log grows large. `None`: only when large and at close.
    pub checkpoint_interval: Option<Duration>,
}

impl EmbeddedConfig {
    /// The defaults: 10,000 revisions and 5 minutes of history, compaction every minute.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            min_history: 10_000,
            min_history_age: Duration::from_secs(300),
            compaction_interval: Some(Duration::from_secs(60)),
            watch_buffer: 10_000,
            max_batch: 2048,
            cache_bytes: 64 << 20,
            verify_on_open: true,
            checkpoint_interval: Some(Duration::from_secs(1)),
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc`; dropping it stops the writer thread
/// and closes the file (watch streams still open then end with [`Error::Closed`]).
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    requests: Option<std_mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    db: Database,
    path: PathBuf,
    state: RwLock<State>,
    watchers: Mutex<Watchers>,
    watch_buffer: usize,
    /// Set when a commit failed: the file's state is then unknown, so the store refuses
    /// further writes until it is reopened.
    failed: AtomicBool,
}

struct State {
    index: Index,
    current: Revision,
    compacted: Revision,
}

#[derive(Default)]
struct Watchers {
    /// The revision of the last event handed to watchers.
    published: Revision,
    list: Vec<WatcherSlot>,
}

struct WatcherSlot {
    prefix: String,
    tx: mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
}

enum Request {
    Write(WriteOp, oneshot::Sender<Result<WriteOutcome>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
}

enum WriteOp {
    Create(String, Bytes),
    Update(String, Bytes, Revision),
    Delete(String, Option<Revision>),
}

struct WriteOutcome {
    rev: Revision,
    prev: Option<KeyValue>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `config.dir`, verifying the file and rebuilding the
    /// index. Fails with [`Error::Corrupted`] naming the file if it is damaged, and with
    /// [`Error::Locked`] if another process has it open.
    pub fn open(config: EmbeddedConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let t0 = Instant::now();
        let path = config.dir.join(DB_FILE);
        // Whether redb walked the whole file: its integrity check (every open, with
        // `verify_on_open`) or, without it, its repair after an unclean stop. The check runs
        // the repair's walk and calls the same callback, so only then does a call mean a crash.
        let checked = Arc::new(AtomicBool::new(false));
        let checking = checked.clone();
        let verify = config.verify_on_open;
        let shown = path.display().to_string();
        let db = redb::Builder::new()
            .set_cache_size(config.cache_bytes)
            .set_check_integrity_on_open(verify)
            .set_repair_callback(move |_| {
                if !checking.swap(true, Ordering::Relaxed) {
                    if verify {
                        tracing::debug!(path = %shown, "checking the datastore's file");
                    } else {
                        tracing::info!(path = %shown, "the last stop was not clean: checking the datastore's file");
                    }
                }
            })
            .create(&path)
            .map_err(|e| map_redb(&path, e.into()))?;
        let t_redb = t0.elapsed();
        prepare(&db, &path)?;
        let (mut wal, records) = Wal::open(&config.dir).map_err(|e| match e {
            wal::WalError::Io(io) => Error::Io(io),
            other => Error::Corrupted {
                path: config.dir.join(WAL_FILE).display().to_string(),
                detail: other.to_string(),
            },
        })?;
        let replayed = records.len();
        if !records.is_empty() {
            replay_wal(&db, &path, wal.path(), records)?;
        }
        wal.reset()?;
        let t_replayed = t0.elapsed();
        let (state, pending_drops) = load(&db, &path)?;
        // The check of the file (a walk of every tree) and the index, rebuilt from every
        // revision kept, both grow with the data.
        tracing::info!(
            path = %path.display(),
            revision = state.current,
            replayed = replayed,
            checked = checked.load(Ordering::Relaxed),
            redb_ms = t_redb.as_millis() as u64,
            index_ms = (t0.elapsed() - t_replayed).as_millis() as u64,
            "datastore opened in {} ms",
            t0.elapsed().as_millis()
        );
        let published = state.current;
        let shared = Arc::new(Shared {
            db,
            path,
            state: RwLock::new(state),
            watchers: Mutex::new(Watchers {
                published,
                list: Vec::new(),
            }),
            watch_buffer: config.watch_buffer.max(1),
            failed: AtomicBool::new(false),
        });
        let (tx, rx) = std_mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            rx,
            wal,
            checkpoint_interval: config.checkpoint_interval,
            last_checkpoint: Instant::now(),
            commits_since_checkpoint: 0,
            max_batch: config.max_batch.max(1),
            pending_drops: pending_drops.into(),
            compaction: config.compaction_interval.map(|interval| AutoCompaction {
                interval,
                min_history: config.min_history.max(0),
                min_history_age: config.min_history_age,
                samples: VecDeque::new(),
                last_run: Instant::now(),
            }),
        };
        let handle = std::thread::Builder::new()
            .name("skiff-store-writer".into())
            .spawn(move || writer.run())?;
        Ok(Self {
            shared,
            requests: Some(tx),
            writer: Some(handle),
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Hands a request to the writer thread and waits for its answer.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or(Error::Closed)?
            .send(make(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        self.request(|tx| Request::Write(op, tx)).await
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the datastore writer thread panicked");
            }
        }
        // Live watchers end with `Closed` once their senders are gone.
        self.shared.watchers.lock().list.clear();
    }
}

/// Creates the tables (and records the format) on first open; checks the format after.
fn prepare(db: &Database, path: &Path) -> Result<()> {
    let map = |e: redb::Error| map_redb(path, e);
    let txn = db.begin_write().map_err(|e| map(e.into()))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| map(e.into()))?;
        let format = meta
            .get(META_FORMAT)
            .map_err(|e| map(e.into()))?
            .map(|g| g.value());
        match format {
            None => {
                meta.insert(META_FORMAT, FORMAT_VERSION)
                    .map_err(|e| map(e.into()))?;
            }
            Some(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(Error::Corrupted {
                    path: path.display().to_string(),
                    detail: format!(
                        "unknown format version {other} (this skiff reads {FORMAT_VERSION})"
                    ),
                })
            }
        }
        txn.open_table(LOG).map_err(|e| map(e.into()))?;
        txn.open_table(VALUES).map_err(|e| map(e.into()))?;
    }
    txn.commit().map_err(|e| map(e.into()))
}

/// Writes into redb, durably, the records of the write-ahead log past redb's last durable
/// revision: the writes acknowledged after the last checkpoint, which a crash may have
/// taken from redb's file.
fn replay_wal(db: &Database, path: &Path, wal_path: &Path, records: Vec<WalRecord>) -> Result<()> {
    let map = |e: redb::Error| map_redb(path, e);
    let corrupted = |detail: String| Error::Corrupted {
        path: wal_path.display().to_string(),
        detail,
    };
    let txn = db.begin_write().map_err(|e| map(e.into()))?;
    let mut replayed = 0;
    {
        let meta = txn.open_table(META).map_err(|e| map(e.into()))?;
        let compacted = meta
            .get(META_COMPACTED)
            .map_err(|e| map(e.into()))?
            .map_or(0, |g| g.value());
        let mut log = txn.open_table(LOG).map_err(|e| map(e.into()))?;
        let mut values = txn.open_table(VALUES).map_err(|e| map(e.into()))?;
        let last = log
            .last()
            .map_err(|e| map(e.into()))?
            .map_or(0, |(rev, _)| rev.value());
        let mut current = last.max(compacted) as Revision;
        for record in records {
            if record.rev <= current {
                continue; // redb has it already
            }
            if record.rev != current + 1 {
                return Err(corrupted(format!(
                    "the log goes from revision {current} to {}",
                    record.rev
                )));
            }
            let header = Header::decode(&record.header).ok_or_else(|| {
                corrupted(format!(
                    "the record of revision {} cannot be decoded",
                    record.rev
                ))
            })?;
            log.insert(record.rev as u64, record.header.as_slice())
                .map_err(|e| map(e.into()))?;
            if header.kind == EventKind::Put {
                values
                    .insert(record.rev as u64, record.value.as_slice())
                    .map_err(|e| map(e.into()))?;
            }
            current = record.rev;
            replayed += 1;
        }
    }
    txn.commit().map_err(|e| map(e.into()))?;
    if replayed > 0 {
        tracing::info!(path = %wal_path.display(), writes = replayed, "replayed the write-ahead log");
    }
    Ok(())
}

/// Reads the meta table and the log into a fresh index.
fn load(db: &Database, path: &Path) -> Result<(State, Vec<Revision>)> {
    let map = |e: redb::Error| map_redb(path, e);
    let txn = db.begin_read().map_err(|e| map(e.into()))?;
    let compacted = txn
        .open_table(META)
        .and_then(|t| Ok(t.get(META_COMPACTED)?.map(|g| g.value()).unwrap_or(0)))
        .map_err(|e| map(e.into()))? as Revision;
    let log = txn.open_table(LOG).map_err(|e| map(e.into()))?;
    let mut index = Index::default();
    let mut current: Revision = 0;
    for entry in log.iter().map_err(|e| map(e.into()))? {
        let (rev, header) = entry.map_err(|e| map(e.into()))?;
        let rev = rev.value() as Revision;
        let record = Header::decode(header.value()).ok_or_else(|| Error::Corrupted {
            path: path.display().to_string(),
            detail: format!("log record at revision {rev} cannot be decoded"),
        })?;
        match record.kind {
            EventKind::Put => index.put(&record.key, rev, record.create_rev),
            EventKind::Delete => index.delete(&record.key, rev, record.create_rev),
        }
        current = rev;
    }
    let current = current.max(compacted);
    // Finish a compaction cut short by a crash: the meta table is written first.
    let pending = index.compact(compacted);
    Ok((
        State {
            index,
            current,
            compacted,
        },
        pending,
    ))
}

/// Maps redb's errors to the store's, naming the file where the file is at fault.
fn map_redb(path: &Path, e: redb::Error) -> Error {
    let path = path.display().to_string();
    match e {
        redb::Error::DatabaseAlreadyOpen => Error::Locked { path },
        redb::Error::Corrupted(detail) => Error::Corrupted { path, detail },
        redb::Error::UpgradeRequired(v) => Error::Corrupted {
            path,
            detail: format!("file format {v} is not supported"),
        },
        // redb reports a file that is not one of its own as invalid data.
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Error::Corrupted {
            path,
            detail: io.to_string(),
        },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::Corrupted {
            path,
            detail: format!("file is truncated: {io}"),
        },
        redb::Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), format!("{path}: {io}"))),
        other => Error::Backend(format!("{path}: {other}")),
    }
}

/// What the `log` table stores for each revision.
struct Header {
    kind: EventKind,
    create_rev: Revision,
    /// The revision of the version this write replaced (0: none).
    prev_rev: Revision,
    key: String,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + self.key.len());
        out.push(match self.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        out.extend_from_slice(&self.create_rev.to_le_bytes());
        out.extend_from_slice(&self.prev_rev.to_le_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let kind = match *bytes.first()? {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            _ => return None,
        };
        let create_rev = i64::from_le_bytes(bytes.get(1..9)?.try_into().ok()?);
        let prev_rev = i64::from_le_bytes(bytes.get(9..17)?.try_into().ok()?);
        let key = std::str::from_utf8(bytes.get(17..)?).ok()?.to_owned();
        Some(Self {
            kind,
            create_rev,
            prev_rev,
            key,
        })
    }
}

impl Shared {
    fn err(&self, e: impl Into<redb::Error>) -> Error {
        map_redb(&self.path, e.into())
    }

    fn missing(&self, rev: Revision) -> Error {
        Error::Corrupted {
            path: self.path.display().to_string(),
            detail: format!("the value of revision {rev} is missing"),
        }
    }

    /// Reads the values of `versions` (found in the index under the same snapshot).
    fn read_values(
        &self,
        txn: &redb::ReadTransaction,
        versions: Vec<(String, Version)>,
    ) -> Result<Vec<KeyValue>> {
        let values = txn.open_table(VALUES).map_err(|e| self.err(e))?;
        versions
            .into_iter()
            .map(|(key, v)| {
                let value = values
                    .get(v.rev as u64)
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| self.missing(v.rev))?;
                Ok(KeyValue {
                    key,
                    value: Bytes::copy_from_slice(value.value()),
                    create_revision: v.create_rev,
                    mod_revision: v.rev,
                })
            })
            .collect()
    }

    /// Reads every event with a revision in `from..=to` under `prefix`, with prev values.
    fn replay(&self, prefix: &str, from: Revision, to: Revision) -> Result<Vec<Event>> {
        let txn = {
            let state = self.state.read();
            if from < state.compacted {
                return Err(Error::Compacted {
                    requested: from,
                    compacted: state.compacted,
                });
            }
            // Under the lock: compaction first updates the index and then deletes, so a
            // snapshot taken now holds everything at or after `state.compacted`.
            self.db.begin_read().map_err(|e| self.err(e))?
        };
        let log = txn.open_table(LOG).map_err(|e| self.err(e))?;
        let values = txn.open_table(VALUES).map_err(|e| self.err(e))?;
        let value_at = |rev: Revision| -> Result<Bytes> {
            let v = values
                .get(rev as u64)
                .map_err(|e| self.err(e))?
                .ok_or_else(|| self.missing(rev))?;
            Ok(Bytes::copy_from_slice(v.value()))
        };
        let mut events = Vec::new();
        for entry in log
            .range(from as u64..=to as u64)
            .map_err(|e| self.err(e))?
        {
            let (rev, header) = entry.map_err(|e| self.err(e))?;
            let rev = rev.value() as Revision;
            let header = Header::decode(header.value()).ok_or_else(|| Error::Corrupted {
                path: self.path.display().to_string(),
                detail: format!("log record at revision {rev} cannot be decoded"),
            })?;
            if !header.key.starts_with(prefix) {
                continue;
            }
            let prev_kv = if header.prev_rev > 0 {
                Some(KeyValue {
                    key: header.key.clone(),
                    value: value_at(header.prev_rev)?,
                    create_revision: header.create_rev,
                    mod_revision: header.prev_rev,
                })
            } else {
                None
            };
            let value = match header.kind {
                EventKind::Put => value_at(rev)?,
                EventKind::Delete => Bytes::new(),
            };
            events.push(Event {
                kind: header.kind,
                kv: KeyValue {
                    key: header.key,
                    value,
                    create_revision: header.create_rev,
                    mod_revision: rev,
                },
                prev_kv,
            });
        }
        Ok(events)
    }

    /// Hands a committed batch's events to the live watchers, cutting off the ones whose
    /// buffer is full.
    fn publish(&self, events: &[Event], rev: Revision) {
        let mut watchers = self.watchers.lock();
        watchers.published = rev;
        if events.is_empty() {
            return;
        }
        watchers.list.retain(|w| {
            for ev in events.iter().filter(|ev| ev.kv.key.starts_with(&w.prefix)) {
                match w.tx.try_send(ev.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        w.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }
}

/// The writer thread: group commit of writes, and compaction.
struct Writer {
    shared: Arc<Shared>,
    rx: std_mpsc::Receiver<Request>,
    /// What makes each batch durable; emptied at each checkpoint.
    wal: Wal,
    checkpoint_interval: Option<Duration>,
    last_checkpoint: Instant,
    /// Non-durable commits since the last checkpoint.
    commits_since_checkpoint: u32,
    max_batch: usize,
    pending_drops: VecDeque<Revision>,
    compaction: Option<AutoCompaction>,
}

struct AutoCompaction {
    interval: Duration,
    min_history: i64,
    min_history_age: Duration,
    /// (when, current revision then), oldest first: what revision was current how long ago.
    samples: VecDeque<(Instant, Revision)>,
    last_run: Instant,
}

impl AutoCompaction {
    /// The revision to compact to now, if any: the newest that leaves `min_history`
    /// revisions and `min_history_age` of history.
    fn target(&mut self, now: Instant, current: Revision) -> Option<Revision> {
        self.samples.push_back((now, current));
        let cutoff = now.checked_sub(self.min_history_age)?;
        // Keep one sample at or before the cutoff: it tells the revision current then.
        while self.samples.len() >= 2 && self.samples[1].0 <= cutoff {
            self.samples.pop_front();
        }
        let (when, rev_then) = *self.samples.front()?;
        if when > cutoff {
            return None;
        }
        let target = rev_then.min(current - self.min_history);
        (target > 0).then_some(target)
    }
}

impl Writer {
    fn run(mut self) {
        loop {
            let wait = if self.pending_drops.is_empty() {
                TICK
            } else {
                Duration::ZERO
            };
            match self.rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut writes = Vec::new();
                    let mut compactions = Vec::new();
                    let mut next = Some(first);
                    while let Some(req) = next {
                        match req {
                            Request::Write(op, reply) => writes.push((op, reply)),
                            Request::Compact(rev, reply) => compactions.push((rev, reply)),
                        }
                        next = if writes.len() < self.max_batch {
                            self.rx.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    if !writes.is_empty() {
                        self.commit_writes(writes);
                    }
                    for (rev, reply) in compactions {
                        let _ = reply.send(self.start_compaction(rev));
                    }
                    let due = self
                        .checkpoint_interval
                        .is_some_and(|every| self.last_checkpoint.elapsed() >= every);
                    if due
                        || self.wal.len() >= CHECKPOINT_BYTES
                        || self.commits_since_checkpoint >= CHECKPOINT_COMMITS
                    {
                        self.checkpoint();
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    if self.checkpoint_interval.is_some() {
                        self.checkpoint();
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    self.checkpoint();
                    break;
                }
            }
            self.auto_compact();
            self.drop_compacted_chunk();
        }
    }

    /// Makes every write so far durable in redb itself and empties the log.
    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if self.wal.is_empty() || self.shared.failed.load(Ordering::Acquire) {
            return;
        }
        let shared = self.shared.clone();
        // An empty durable commit persists every non-durable commit before it.
        let result = (|| -> Result<(), redb::Error> {
            shared.db.begin_write()?.commit()?;
            Ok(())
        })()
        .map_err(|e| shared.err(e));
        match result {
            Ok(()) => self.durable_commit_done(),
            Err(e) => self.fail("checkpoint", &e),
        }
    }

    /// After any durable redb commit: everything before it is in redb's file for good.
    fn durable_commit_done(&mut self) {
        self.commits_since_checkpoint = 0;
        if let Err(e) = self.wal.reset() {
            self.fail("emptying the write-ahead log", &e.into());
        }
    }

    fn fail(&self, what: &str, e: &Error) {
        tracing::error!(path = %self.shared.path.display(), error = %e, "{what} failed; the datastore refuses writes until restarted");
        self.shared.failed.store(true, Ordering::Release);
    }

    fn commit_writes(&mut self, writes: Vec<(WriteOp, oneshot::Sender<Result<WriteOutcome>>)>) {
        if self.shared.failed.load(Ordering::Acquire) {
            for (_, reply) in writes {
                let _ = reply.send(Err(Error::Unavailable(
                    "a previous commit failed; restart the server".into(),
                )));
            }
            return;
        }
        let shared = self.shared.clone();
        let mut replies = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        let mut applied: Vec<(String, Version)> = Vec::with_capacity(writes.len());
        let wal = &mut self.wal;
        let commits = &mut self.commits_since_checkpoint;
        let result = (|| -> Result<Revision> {
            let mut txn = shared.db.begin_write().map_err(|e| shared.err(e))?;
            // Durable through the write-ahead log, synced below before the commit.
            txn.set_durability(Durability::None)
                .map_err(|e| Error::Backend(e.to_string()))?;
            wal.discard_staged();
            let mut rev = shared.state.read().current;
            {
                let mut log = txn.open_table(LOG).map_err(|e| shared.err(e))?;
                let mut values = txn.open_table(VALUES).map_err(|e| shared.err(e))?;
                // Keys written earlier in this batch: (version, value).
                let mut batch: HashMap<String, (Version, Bytes)> = HashMap::new();
                let state = shared.state.read();
                for (op, reply) in writes {
                    let key = match &op {
                        WriteOp::Create(k, _)
                        | WriteOp::Update(k, _, _)
                        | WriteOp::Delete(k, _) => k.clone(),
                    };
                    let live = match batch.get(&key) {
                        Some((v, value)) => (!v.tombstone).then(|| (*v, Some(value.clone()))),
                        None => state.index.latest(&key).map(|v| (v, None)),
                    };
                    let prev = |v: Version, cached: Option<Bytes>| -> Result<KeyValue> {
                        let value = match cached {
                            Some(value) => value,
                            None => {
                                let g = values_get(&values, v.rev).map_err(|e| shared.err(e))?;
                                g.ok_or_else(|| shared.missing(v.rev))?
                            }
                        };
                        Ok(KeyValue {
                            key: key.clone(),
                            value,
                            create_revision: v.create_rev,
                            mod_revision: v.rev,
                        })
                    };
                    let check = |expected: Option<Revision>| -> Result<(Version, Option<Bytes>)> {
                        match &live {
                            None => Err(Error::NotFound { key: key.clone() }),
                            Some((v, _)) if expected.is_some_and(|e| e != v.rev) => {
                                Err(Error::Conflict {
                                    key: key.clone(),
                                    expected: expected.unwrap_or_default(),
                                    actual: v.rev,
                                })
                            }
                            Some((v, cached)) => Ok((*v, cached.clone())),
                        }
                    };
                    let outcome = match op {
                        WriteOp::Create(_, value) if live.is_none() => {
                            rev += 1;
                            Ok((
                                Header {
                                    kind: EventKind::Put,
                                    create_rev: rev,
                                    prev_rev: 0,
                                    key: key.clone(),
                                },
                                value,
                                None,
                            ))
                        }
                        WriteOp::Create(..) => Err(Error::KeyExists { key: key.clone() }),
                        WriteOp::Update(_, value, expected) => {
                            check(Some(expected)).and_then(|(v, cached)| {
                                let prev_kv = prev(v, cached)?;
                                rev += 1;
                                Ok((
                                    Header {
                                        kind: EventKind::Put,
                                        create_rev: v.create_rev,
                                        prev_rev: v.rev,
                                        key: key.clone(),
                                    },
                                    value,
                                    Some(prev_kv),
                                ))
                            })
                        }
                        WriteOp::Delete(_, expected) => check(expected).and_then(|(v, cached)| {
                            let prev_kv = prev(v, cached)?;
                            rev += 1;
                            Ok((
                                Header {
                                    kind: EventKind::Delete,
                                    create_rev: v.create_rev,
                                    prev_rev: v.rev,
                                    key: key.clone(),
                                },
                                Bytes::new(),
                                Some(prev_kv),
                            ))
                        }),
                    };
                    let (header, value, prev_kv) = match outcome {
                        Ok(o) => o,
                        Err(e @ Error::Corrupted { .. }) => return Err(e),
                        Err(e) => {
                            replies.push((reply, Err(e)));
                            continue;
                        }
                    };
                    let encoded = header.encode();
                    wal.stage(rev, &encoded, &value);
                    log.insert(rev as u64, encoded.as_slice())
                        .map_err(|e| shared.err(e))?;
                    if header.kind == EventKind::Put {
                        values
                            .insert(rev as u64, value.as_ref())
                            .map_err(|e| shared.err(e))?;
                    }
                    let version = Version {
                        rev,
                        create_rev: header.create_rev,
                        tombstone: header.kind == EventKind::Delete,
                    };
                    batch.insert(key.clone(), (version, value.clone()));
                    applied.push((key.clone(), version));
                    events.push(Event {
                        kind: header.kind,
                        kv: KeyValue {
                            key,
                            value,
                            create_revision: header.create_rev,
                            mod_revision: rev,
                        },
                        prev_kv: prev_kv.clone(),
                    });
                    replies.push((reply, Ok(WriteOutcome { rev, prev: prev_kv })));
                }
            }
            if applied.is_empty() {
                txn.abort().map_err(|e| shared.err(e))?;
            } else {
                // Durable first, then visible: a write readers can see is never lost.
                wal.write_staged()?;
                txn.commit().map_err(|e| shared.err(e))?;
                *commits += 1;
            }
            Ok(rev)
        })();

        match result {
            Ok(rev) => {
                if !applied.is_empty() {
                    let mut state = shared.state.write();
                    for (key, v) in &applied {
                        if v.tombstone {
                            state.index.delete(key, v.rev, v.create_rev);
                        } else {
                            state.index.put(key, v.rev, v.create_rev);
                        }
                    }
                    state.current = rev;
                }
                shared.publish(&events, rev);
                for (reply, outcome) in replies {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                self.fail("commit", &e);
                for (reply, outcome) in replies {
                    let _ = reply.send(match outcome {
                        Ok(_) => Err(Error::Unavailable(format!("commit failed: {e}"))),
                        Err(answer) => Err(answer),
                    });
                }
                // Requests not yet answered were dropped with the closure: their callers see
                // `Closed`, which is retryable at their level.
            }
        }
    }

    /// Moves the compacted revision to `rev`: the index forgets the history at once, the
    /// meta table records it, and the disk records are deleted in chunks afterwards.
    fn start_compaction(&mut self, rev: Revision) -> Result<()> {
        let shared = self.shared.clone();
        {
            let state = shared.state.read();
            if rev > state.current {
                return Err(Error::FutureRevision {
                    requested: rev,
                    current: state.current,
                });
            }
            if rev <= state.compacted {
                return Ok(());
            }
        }
        let drops = {
            let mut state = shared.state.write();
            state.compacted = rev;
            state.index.compact(rev)
        };
        let txn = shared.db.begin_write().map_err(|e| shared.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| shared.err(e))?;
            meta.insert(META_COMPACTED, rev as u64)
                .map_err(|e| shared.err(e))?;
        }
        txn.commit().map_err(|e| shared.err(e))?;
        self.durable_commit_done();
        tracing::debug!(revision = rev, dropped = drops.len(), "compacted");
        self.pending_drops.extend(drops);
        Ok(())
    }

    fn auto_compact(&mut self) {
        let Some(auto) = self.compaction.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(auto.last_run) < auto.interval {
            return;
        }
        auto.last_run = now;
        let (current, compacted) = {
            let state = self.shared.state.read();
            (state.current, state.compacted)
        };
        if let Some(target) = auto.target(now, current).filter(|t| *t > compacted) {
            if let Err(e) = self.start_compaction(target) {
                tracing::warn!(error = %e, "automatic compaction failed");
            }
        }
    }

    fn drop_compacted_chunk(&mut self) {
        if self.pending_drops.is_empty() || self.shared.failed.load(Ordering::Acquire) {
            return;
        }
        let n = self.pending_drops.len().min(COMPACT_CHUNK);
        let shared = self.shared.clone();
        let result = (|| -> Result<()> {
            let txn = shared.db.begin_write().map_err(|e| shared.err(e))?;
            {
                let mut log = txn.open_table(LOG).map_err(|e| shared.err(e))?;
                let mut values = txn.open_table(VALUES).map_err(|e| shared.err(e))?;
                for rev in self.pending_drops.iter().take(n) {
                    log.remove(*rev as u64).map_err(|e| shared.err(e))?;
                    values.remove(*rev as u64).map_err(|e| shared.err(e))?;
                }
            }
            txn.commit().map_err(|e| shared.err(e))
        })();
        match result {
            Ok(()) => {
                self.pending_drops.drain(..n);
                self.durable_commit_done();
            }
            Err(e) => self.fail("compaction", &e),
        }
    }
}

fn values_get(
    values: &redb::Table<u64, &[u8]>,
    rev: Revision,
) -> Result<Option<Bytes>, redb::StorageError> {
    Ok(values
        .get(rev as u64)?
        .map(|g| Bytes::copy_from_slice(g.value())))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        validate_key(key)?;
        validate_value(key, &value)?;
        Ok(self
            .write(WriteOp::Create(key.to_owned(), value))
            .await?
            .rev)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        validate_key(key)?;
        validate_value(key, &value)?;
        Ok(self
            .write(WriteOp::Update(key.to_owned(), value, expected))
            .await?
            .rev)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        validate_key(key)?;
        let outcome = self
            .write(WriteOp::Delete(key.to_owned(), expected))
            .await?;
        let prev = outcome
            .prev
            .ok_or_else(|| Error::Backend("delete without a previous version".into()))?;
        Ok((outcome.rev, prev))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let shared = &self.shared;
        let (version, txn) = {
            let state = shared.state.read();
            let Some(version) = state.index.latest(key) else {
                return Ok(None);
            };
            (version, shared.db.begin_read().map_err(|e| shared.err(e))?)
        };
        Ok(shared
            .read_values(&txn, vec![(key.to_owned(), version)])?
            .pop())
    }

    async fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        at_revision: Option<Revision>,
    ) -> Result<RangeResult> {
        let shared = self.shared.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        run_blocking(move || {
            let (versions, more, revision, txn) = {
                let state = shared.state.read();
                let revision = at_revision.unwrap_or(state.current);
                if revision < state.compacted {
                    return Err(Error::Compacted {
                        requested: revision,
                        compacted: state.compacted,
                    });
                }
                if revision > state.current {
                    return Err(Error::FutureRevision {
                        requested: revision,
                        current: state.current,
                    });
                }
                let (versions, more) =
                    state
                        .index
                        .range(&prefix, start_after.as_deref(), limit, revision);
                (
                    versions,
                    more,
                    revision,
                    shared.db.begin_read().map_err(|e| shared.err(e))?,
                )
            };
            let kvs = shared.read_values(&txn, versions)?;
            Ok(RangeResult {
                kvs,
                more,
                revision,
            })
        })
        .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        Ok(self.shared.state.read().index.count(prefix))
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream> {
        let from = from_revision.max(0);
        let lagged = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(self.shared.watch_buffer);
        let published = {
            // A compaction that starts after this check is caught by `replay`, which checks
            // again under the index lock before reading each chunk.
            let mut watchers = self.shared.watchers.lock();
            let compacted = self.shared.state.read().compacted;
            if from + 1 < compacted {
                return Err(Error::Compacted {
                    requested: from + 1,
                    compacted,
                });
            }
            watchers.list.push(WatcherSlot {
                prefix: prefix.to_owned(),
                tx,
                lagged: lagged.clone(),
            });
            watchers.published
        };
        let cursor = WatchCursor {
            shared: Arc::downgrade(&self.shared),
            prefix: prefix.to_owned(),
            next: from + 1,
            replay_until: published,
            buffered: VecDeque::new(),
            rx,
            lagged,
            buffer: self.shared.watch_buffer,
            done: false,
        };
        Ok(watch_stream(cursor))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.request(|tx| Request::Compact(revision, tx)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.state.read().current)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.shared.state.read().compacted)
    }
}

/// Where a watch stands: replaying history from disk, then reading live events.
struct WatchCursor {
    shared: Weak<Shared>,
    prefix: String,
    /// The revision of the next event to deliver (events below it were delivered or skipped).
    next: Revision,
    /// Live events start after this revision; history up to it is replayed from disk.
    replay_until: Revision,
    buffered: VecDeque<Event>,
    rx: mpsc::Receiver<Event>,
    lagged: Arc<AtomicBool>,
    buffer: usize,
    done: bool,
}

impl EventSource for WatchCursor {
    async fn next_event(&mut self) -> Option<Result<Event>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(ev) = self.buffered.pop_front() {
                return Some(Ok(ev));
            }
            if self.next <= self.replay_until {
                let Some(shared) = self.shared.upgrade() else {
                    return self.end(Error::Closed);
                };
                let (from, to) = (
                    self.next,
                    self.replay_until.min(self.next + REPLAY_CHUNK as i64 - 1),
                );
                let prefix = self.prefix.clone();
                match run_blocking(move || shared.replay(&prefix, from, to)).await {
                    Ok(events) => {
                        self.buffered.extend(events);
                        self.next = to + 1;
                        continue;
                    }
                    Err(e) => return self.end(e),
                }
            }
            match self.rx.recv().await {
                Some(ev) if ev.revision() < self.next => continue,
                Some(ev) => {
                    self.next = ev.revision() + 1;
                    return Some(Ok(ev));
                }
                None if self.lagged.load(Ordering::Acquire) => {
                    return self.end(Error::WatcherTooSlow {
                        buffer: self.buffer,
                    })
                }
                None => return self.end(Error::Closed),
            }
        }
    }
}

impl WatchCursor {
    fn end(&mut self, e: Error) -> Option<Result<Event>> {
        self.done = true;
        Some(Err(e))
    }
}

/// Runs blocking disk work off the async threads.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        if e.is_cancelled() {
            // The runtime is shutting down, and the store with it.
            Error::Closed
        } else {
            Error::Backend(format!("datastore task failed: {e}"))
        }
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(min_history: i64, age_secs: u64) -> AutoCompaction {
        AutoCompaction {
            interval: Duration::from_secs(1),
            min_history,
            min_history_age: Duration::from_secs(age_secs),
            samples: VecDeque::new(),
            last_run: Instant::now(),
        }
    }

    #[test]
    fn auto_compaction_keeps_both_revisions_and_age() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut a = auto(100, 300);
        // Nothing is old enough yet.
        assert_eq!(a.target(at(0), 1_000), None);
        assert_eq!(a.target(at(200), 50_000), None);
        // At 300 s the revision current at 0 s (1,000) may go.
        assert_eq!(a.target(at(300), 60_000), Some(1_000));
        // At 500 s: the revision of 200 s ago (50,000).
        assert_eq!(a.target(at(500), 70_000), Some(50_000));
        // Few writes: the revision count is what holds compaction back.
        let mut a = auto(100, 0);
        assert_eq!(a.target(at(0), 50), None);
        assert_eq!(a.target(at(1), 150), Some(50));
    }
}
