//! A rate-limited work queue with client-go's semantics (`util/workqueue`): an item added
//! twice before it is taken is queued once; an item being processed is not handed to a
//! second worker (added meanwhile, it is queued again when the first calls [`WorkQueue::done`]);
//! [`WorkQueue::add_rate_limited`] adds after client-go's `DefaultControllerRateLimiter`
//! delay: the larger of a per-item exponential backoff (5 ms doubling to 1000 s, reset by
//! [`WorkQueue::forget`]) and a shared token bucket (10 per second, bursts of 100). So an
//! item that keeps failing is retried less and less often, never in a hot loop.
//!
//! Delayed items wait in the queue itself; [`WorkQueue::run_delays`] moves them in when due
//! (it runs as long as the queue is used, so nothing outlives the controller).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);
const BUCKET_RATE: f64 = 10.0;
const BUCKET_BURST: f64 = 100.0;

/// The exponential part of client-go's default limiter: `5ms * 2^failures`, at most 1000 s.
pub fn backoff(failures: u32) -> Duration {
    BASE_DELAY
        .checked_mul(2u32.saturating_pow(failures.min(31)))
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY)
}

/// The token bucket part: the delay of one more request at `now`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    fn reserve(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * BUCKET_RATE;
            self.tokens = (self.tokens + refill).min(BUCKET_BURST);
        }
        self.last = Some(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / BUCKET_RATE)
        }
    }
}

struct Inner<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    delayed: BTreeMap<(Instant, u64), T>,
    seq: u64,
    bucket: Bucket,
}

pub struct WorkQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Notify,
    delays_changed: Notify,
}

impl<T: Clone + Eq + Hash> Default for WorkQueue<T> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                delayed: BTreeMap::new(),
                seq: 0,
                bucket: Bucket {
                    tokens: BUCKET_BURST,
                    last: None,
                },
            }),
            ready: Notify::new(),
            delays_changed: Notify::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> WorkQueue<T> {
    /// Queues `item` unless it is queued already.
    pub fn add(&self, item: T) {
        let mut g = self.inner.lock();
        if !g.dirty.insert(item.clone()) {
            return;
        }
        if g.processing.contains(&item) {
            return; // queued again by `done`
        }
        g.queue.push_back(item);
        drop(g);
        self.ready.notify_one();
    }

    /// Queues `item` after `delay`.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let mut g = self.inner.lock();
        g.seq += 1;
        let key = (Instant::now() + delay, g.seq);
        g.delayed.insert(key, item);
        drop(g);
        self.delays_changed.notify_one();
    }

    /// Queues `item` after its rate-limited delay (one more failure).
    pub fn add_rate_limited(&self, item: T) {
        let delay = {
            let mut g = self.inner.lock();
            let failures = g.failures.entry(item.clone()).or_insert(0);
            let exp = backoff(*failures);
            *failures += 1;
            let bucket = g.bucket.reserve(Instant::now());
            exp.max(bucket)
        };
        self.add_after(item, delay);
    }

    /// Forgets `item`'s failures (it succeeded).
    pub fn forget(&self, item: &T) {
        self.inner.lock().failures.remove(item);
    }

    /// How many times `item` has failed since it was last forgotten.
    pub fn failures(&self, item: &T) -> u32 {
        self.inner.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// The next item; the caller owns it until [`WorkQueue::done`].
    pub async fn get(&self) -> T {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = self.inner.lock();
                if let Some(item) = g.queue.pop_front() {
                    g.dirty.remove(&item);
                    g.processing.insert(item.clone());
                    return item;
                }
            }
            notified.await;
        }
    }

    /// The caller is done with `item`; if it was added meanwhile, it is queued again.
    pub fn done(&self, item: &T) {
        let mut g = self.inner.lock();
        g.processing.remove(item);
        if g.dirty.contains(item) {
            g.queue.push_back(item.clone());
            drop(g);
            self.ready.notify_one();
        }
    }

    /// Moves delayed items into the queue as they fall due; runs until dropped.
    pub async fn run_delays(&self) {
        loop {
            let changed = self.delays_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next = {
                let mut g = self.inner.lock();
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some(entry) = g.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                let next = g.delayed.keys().next().map(|k| k.0);
                drop(g);
                for item in due {
                    self.add(item);
                }
                next
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Items queued and delayed (for tests and logs).
    pub fn len(&self) -> usize {
        let g = self.inner.lock();
        g.queue.len() + g.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
