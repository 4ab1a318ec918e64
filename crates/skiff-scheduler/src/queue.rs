//! The scheduling queue (upstream's `PriorityQueue` of `pkg/scheduler/backend/queue`):
//!
//! - **active**: pods ready to be tried, highest priority first, then the longest waiting;
//! - **backoff**: pods that failed, waiting out their backoff (1 s doubling per attempt up
//!   to 10 s) before they go back to active;
//! - **unschedulable**: pods that fit nowhere, parked until a cluster event that may help
//!   (a node added or changed, a pod deleted, ...) moves them to backoff or active, or five
//!   minutes pass.
//!
//! A failure that raced a moving event (the event came while the pod was being tried) sends
//! the pod to backoff rather than unschedulable, as upstream's `moveRequestCycle` does, so
//! the event is not lost. Pure: time is passed in, nothing here touches the API.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::types::PodInfo;

/// Where a queued pod is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Popped, being scheduled.
    InFlight,
}

/// What the queue keeps per pod (upstream's `QueuedPodInfo`).
#[derive(Clone, Debug)]
pub struct Queued {
    pub info: Arc<PodInfo>,
    pub place: Place,
    /// When it was (re)queued: the active queue's tie-breaker and the start of its backoff.
    pub timestamp: Instant,
    /// When it was first queued (for latency).
    pub initial: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// The scheduling cycle it was last popped in.
    cycle: u64,
    /// Bumped at every move, so stale heap entries are skipped.
    generation: u64,
}

#[derive(PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    uid: String,
    generation: u64,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // A max-heap: higher priority first, then the earlier timestamp, then FIFO.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.timestamp.cmp(&self.timestamp))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Backoff and unschedulable timing (upstream's defaults: 1 s, 10 s, 5 min).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_unschedulable: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable: Duration::from_secs(300),
        }
    }
}

/// The queue.
pub struct Queue {
    timing: Timing,
    pods: HashMap<String, Queued>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String, u64)>>,
    seq: u64,
    cycle: u64,
    move_request_cycle: u64,
}

impl Queue {
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            pods: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            seq: 0,
            cycle: 0,
            move_request_cycle: 0,
        }
    }

    /// Pods in the queue, in flight included.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn get(&self, uid: &str) -> Option<&Queued> {
        self.pods.get(uid)
    }

    /// How many pods are in each place: (active, backoff, unschedulable, in flight).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for q in self.pods.values() {
            match q.place {
                Place::Active => c.0 += 1,
                Place::Backoff => c.1 += 1,
                Place::Unschedulable => c.2 += 1,
                Place::InFlight => c.3 += 1,
            }
        }
        c
    }

    fn push_active(&mut self, uid: &str, now: Instant) {
        let Some(q) = self.pods.get_mut(uid) else {
            return;
        };
        q.place = Place::Active;
        q.generation += 1;
        self.seq += 1;
        self.active.push(ActiveKey {
            priority: q.info.priority,
            timestamp: q.timestamp.min(now),
            seq: self.seq,
            uid: uid.to_owned(),
            generation: q.generation,
        });
    }

    fn push_backoff(&mut self, uid: &str) {
        let expiry = match self.pods.get(uid) {
            Some(q) => self.backoff_expiry(q),
            None => return,
        };
        let Some(q) = self.pods.get_mut(uid) else {
            return;
        };
        q.place = Place::Backoff;
        q.generation += 1;
        self.seq += 1;
        self.backoff
            .push(Reverse((expiry, self.seq, uid.to_owned(), q.generation)));
    }

    /// Upstream's `calculateBackoffDuration`: the initial backoff doubled per attempt after
    /// the first, at most the maximum.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.timing.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d > self.timing.max_backoff {
                return self.timing.max_backoff;
            }
        }
        d.min(self.timing.max_backoff)
    }

    fn backoff_expiry(&self, q: &Queued) -> Instant {
        q.timestamp + self.backoff_duration(q.attempts)
    }

    /// A new pending pod, or a change to a queued one. A pod parked as unschedulable whose
    /// spec or labels changed (`changed`) is moved, since the change may make it fit.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>, changed: bool, now: Instant) {
        let uid = info.uid.clone();
        match self.pods.get_mut(&uid) {
            None => {
                self.pods.insert(
                    uid.clone(),
                    Queued {
                        info,
                        place: Place::Active,
                        timestamp: now,
                        initial: now,
                        attempts: 0,
                        cycle: 0,
                        generation: 0,
                    },
                );
                self.push_active(&uid, now);
            }
            Some(q) => {
                let priority_changed = q.info.priority != info.priority;
                q.info = info;
                match q.place {
                    Place::Unschedulable if changed => self.move_one(&uid, now),
                    // The heap key holds the priority.
                    Place::Active if priority_changed => self.push_active(&uid, now),
                    _ => {}
                }
            }
        }
    }

    /// The pod left the queue's concern (deleted, bound by someone, terminal).
    pub fn remove(&mut self, uid: &str) -> Option<Queued> {
        self.pods.remove(uid)
    }

    /// Keeps only the pods whose uid `keep` accepts (after a relist).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.pods.retain(|uid, _| keep(uid));
    }

    /// Backoffs that are over go to active.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((expiry, _, uid, generation))) = self.backoff.peek() {
            if *expiry > now {
                break;
            }
            let (uid, generation) = (uid.clone(), *generation);
            self.backoff.pop();
            let live = self
                .pods
                .get(&uid)
                .is_some_and(|q| q.place == Place::Backoff && q.generation == generation);
            if live {
                self.push_active(&uid, now);
            }
        }
    }

    /// Pods parked longer than the maximum are moved (upstream's
    /// `flushUnschedulablePodsLeftover`).
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let max = self.timing.max_unschedulable;
        let old: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| {
                q.place == Place::Unschedulable && now.saturating_duration_since(q.timestamp) >= max
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in old {
            self.move_one(&uid, now);
        }
    }

    /// Moves one parked pod to backoff, or to active when its backoff is already over.
    fn move_one(&mut self, uid: &str, now: Instant) {
        let Some(q) = self.pods.get(uid) else {
            return;
        };
        if self.backoff_expiry(q) > now {
            self.push_backoff(uid);
        } else {
            self.push_active(uid, now);
        }
    }

    /// A cluster event that may help the parked pods `which` selects (upstream's
    /// `MoveAllToActiveOrBackoffQueue`); failures of pods in flight then go to backoff.
    pub fn move_unschedulable(&mut self, which: impl Fn(&PodInfo) -> bool, now: Instant) {
        let uids: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| q.place == Place::Unschedulable && which(&q.info))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in uids {
            self.move_one(&uid, now);
        }
        self.move_request_cycle = self.cycle;
    }

    /// The next pod to try, if any is active (backoffs over at `now` are flushed first).
    pub fn pop(&mut self, now: Instant) -> Option<Queued> {
        self.flush_backoff(now);
        while let Some(key) = self.active.pop() {
            let Some(q) = self.pods.get_mut(&key.uid) else {
                continue;
            };
            if q.place != Place::Active || q.generation != key.generation {
                continue;
            }
            self.cycle += 1;
            q.place = Place::InFlight;
            q.attempts += 1;
            q.cycle = self.cycle;
            return Some(q.clone());
        }
        None
    }

    /// The pod in flight fit nowhere: parked as unschedulable, or sent to backoff when an
    /// event came during its attempt, or when `error` (not a fit failure: retried after
    /// backoff whatever happens).
    pub fn failed(&mut self, uid: &str, error: bool, now: Instant) {
        let Some(q) = self.pods.get_mut(uid) else {
            return;
        };
        if q.place != Place::InFlight {
            return;
        }
        q.timestamp = now;
        if error || self.move_request_cycle >= q.cycle {
            self.push_backoff(uid);
        } else {
            q.place = Place::Unschedulable;
            q.generation += 1;
        }
    }

    /// A pod whose binding failed goes back through backoff, keeping its attempts.
    pub fn requeue_after_error(&mut self, info: Arc<PodInfo>, attempts: u32, now: Instant) {
        let uid = info.uid.clone();
        let initial = self.pods.get(&uid).map(|q| q.initial).unwrap_or(now);
        self.pods.insert(
            uid.clone(),
            Queued {
                info,
                place: Place::Backoff,
                timestamp: now,
                initial,
                attempts,
                cycle: self.cycle,
                generation: 0,
            },
        );
        self.push_backoff(&uid);
    }

    /// When the queue next has something to do without an event: the earliest backoff.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.iter().map(|Reverse((t, ..))| *t).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;
    use serde_json::json;

    fn prio(name: &str, p: i32) -> Arc<PodInfo> {
        pod(name, json!({"priority": p, "containers": [{"name": "c"}]}))
    }

    fn names(q: &mut Queue, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(p) = q.pop(now) {
            out.push(p.info.name.clone());
        }
        out
    }

    #[test]
    fn active_is_by_priority_then_age() {
        let t0 = Instant::now();
        let mut q = Queue::new(Timing::default());
        q.add_or_update(prio("a", 1), false, t0);
        q.add_or_update(prio("b", 10), false, t0 + Duration::from_millis(1));
        q.add_or_update(prio("c", 1), false, t0 + Duration::from_millis(2));
        q.add_or_update(prio("d", 10), false, t0 + Duration::from_millis(3));
        assert_eq!(names(&mut q, t0), ["b", "d", "a", "c"]);
        assert_eq!(q.counts(), (0, 0, 0, 4));
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_then_back_off() {
        let t0 = Instant::now();
        let mut q = Queue::new(Timing::default());
        q.add_or_update(prio("a", 0), false, t0);
        let a = q.pop(t0).unwrap();
        q.failed(&a.info.uid, false, t0);
        assert_eq!(q.get(&a.info.uid).unwrap().place, Place::Unschedulable);
        assert!(q.pop(t0 + Duration::from_secs(60)).is_none());
        // An event 500 ms later: the first backoff (1 s) is not over, so backoff.
        q.move_unschedulable(|_| true, t0 + Duration::from_millis(500));
        assert_eq!(q.get(&a.info.uid).unwrap().place, Place::Backoff);
        assert!(q.pop(t0 + Duration::from_millis(900)).is_none());
        assert_eq!(q.pop(t0 + Duration::from_secs(1)).unwrap().info.name, "a");
        // Second failure, event after the 2 s backoff: straight to active.
        let t1 = t0 + Duration::from_secs(2);
        q.failed(&a.info.uid, false, t1);
        q.move_unschedulable(|_| true, t1 + Duration::from_secs(3));
        assert_eq!(q.get(&a.info.uid).unwrap().place, Place::Active);
    }

    #[test]
    fn an_event_during_the_attempt_is_not_lost() {
        let t0 = Instant::now();
        let mut q = Queue::new(Timing::default());
        q.add_or_update(prio("a", 0), false, t0);
        let a = q.pop(t0).unwrap();
        q.move_unschedulable(|_| true, t0);
        q.failed(&a.info.uid, false, t0);
        assert_eq!(q.get(&a.info.uid).unwrap().place, Place::Backoff);
        // The next attempt starts a new cycle: a failure without event parks it.
        let a = q.pop(t0 + Duration::from_secs(1)).unwrap();
        q.failed(&a.info.uid, false, t0 + Duration::from_secs(1));
        assert_eq!(q.get(&a.info.uid).unwrap().place, Place::Unschedulable);
    }

    #[test]
    fn backoff_doubles_to_the_maximum() {
        let q = Queue::new(Timing::default());
        let secs: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn leftovers_and_updates_move_parked_pods() {
        let t0 = Instant::now();
        let mut q = Queue::new(Timing::default());
        q.add_or_update(prio("a", 0), false, t0);
        q.add_or_update(prio("b", 0), false, t0);
        for _ in 0..2 {
            let p = q.pop(t0).unwrap();
            q.failed(&p.info.uid, false, t0);
        }
        let (a, b) = (prio("a", 0), prio("b", 0));
        // A status-only update leaves it parked; a spec change moves it.
        q.add_or_update(a.clone(), false, t0 + Duration::from_secs(5));
        assert_eq!(q.get(&a.uid).unwrap().place, Place::Unschedulable);
        q.add_or_update(a.clone(), true, t0 + Duration::from_secs(5));
        assert_eq!(q.get(&a.uid).unwrap().place, Place::Active);
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(299));
        assert_eq!(q.get(&b.uid).unwrap().place, Place::Unschedulable);
        q.flush_unschedulable_leftover(t0 + Duration::from_secs(300));
        assert_eq!(q.get(&b.uid).unwrap().place, Place::Active);
        // Only the pods the event selects move.
        let mut q = Queue::new(Timing::default());
        q.add_or_update(prio("x", 0), false, t0);
        let x = q.pop(t0).unwrap();
        q.failed(&x.info.uid, false, t0);
        q.move_unschedulable(|p| p.name == "y", t0 + Duration::from_secs(5));
        assert_eq!(q.get(&x.info.uid).unwrap().place, Place::Unschedulable);
        // Errors always back off; removed pods are gone.
        q.add_or_update(prio("e", 0), false, t0);
        let e = q.pop(t0).unwrap();
        q.failed(&e.info.uid, true, t0);
        assert_eq!(q.get(&e.info.uid).unwrap().place, Place::Backoff);
        q.remove(&e.info.uid);
        assert!(q.pop(t0 + Duration::from_secs(20)).is_none());
    }
}
