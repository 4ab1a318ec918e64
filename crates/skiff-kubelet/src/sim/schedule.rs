//! When things happen: one timer queue for every node and pod of the process (no task or
//! timer per object), and the slots that spread periodic work (Lease renewals, status
//! reports) evenly over its interval, so 5,000 nodes renewing every 10 s make a steady 500
//! requests a second instead of a burst.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::ops::Add;
use std::time::Duration;

/// One pending time per key; setting a key again moves it. Stale heap entries are skipped
/// lazily when they come up.
#[derive(Debug)]
pub struct Timers<T, K> {
    heap: BinaryHeap<Reverse<(T, u64, K)>>,
    due: HashMap<K, (T, u64)>,
    seq: u64,
}

impl<T: Ord + Copy, K: Ord + Hash + Clone> Default for Timers<T, K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            due: HashMap::new(),
            seq: 0,
        }
    }
}

impl<T: Ord + Copy, K: Ord + Hash + Clone> Timers<T, K> {
    /// `key` fires at `at` (and not at any time it was set to before).
    pub fn set(&mut self, key: K, at: T) {
        self.seq += 1;
        self.due.insert(key.clone(), (at, self.seq));
        self.heap.push(Reverse((at, self.seq, key)));
    }

    /// `key` fires at `at` unless it is already due earlier.
    pub fn set_earliest(&mut self, key: K, at: T) {
        match self.due.get(&key) {
            Some((current, _)) if *current <= at => {}
            _ => self.set(key, at),
        }
    }

    /// `key` does not fire.
    pub fn cancel(&mut self, key: &K) {
        self.due.remove(key);
    }

    /// When `key` fires, if it is set.
    pub fn get(&self, key: &K) -> Option<T> {
        self.due.get(key).map(|(t, _)| *t)
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((_, seq, key))) = self.heap.peek() {
            if self.due.get(key).is_some_and(|(_, s)| s == seq) {
                break;
            }
            self.heap.pop();
        }
    }

    /// The earliest time a key fires.
    pub fn next_due(&mut self) -> Option<T> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Removes and returns the keys due at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: T) -> Vec<K> {
        let mut out = Vec::new();
        loop {
            self.drop_stale();
            match self.heap.peek() {
                Some(Reverse((t, _, _))) if *t <= now => {}
                _ => break,
            }
            if let Some(Reverse((_, seq, key))) = self.heap.pop() {
                if let Entry::Occupied(e) = self.due.entry(key.clone()) {
                    if e.get().1 == seq {
                        e.remove();
                        out.push(key);
                    }
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

/// Where in every `interval` the `index`-th of `count` objects does its periodic work.
pub fn slot_offset(index: usize, count: usize, interval: Duration) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    let nanos = interval.as_nanos() * index as u128 / count as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The first time strictly after `after` that is `epoch + offset + k * interval` (k >= 0).
pub fn next_slot<T>(epoch: T, offset: Duration, interval: Duration, after: T) -> T
where
    T: Ord + Copy + Add<Duration, Output = T> + Since,
{
    let first = epoch + offset;
    if first > after || interval.is_zero() {
        return first.max(after);
    }
    let elapsed = after.since(first).as_nanos();
    let period = interval.as_nanos();
    let k = elapsed / period + 1;
    let nanos = u64::try_from(k * period).unwrap_or(u64::MAX);
    first + Duration::from_nanos(nanos)
}

/// How long after `earlier` a time is (zero if it is not later).
pub trait Since {
    fn since(&self, earlier: Self) -> Duration;
}

impl Since for std::time::Instant {
    fn since(&self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl Since for tokio::time::Instant {
    fn since(&self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// The wait before the `failures`-th retry: 200 ms doubling to `max` (upstream's node lease
/// controller retries a failed renewal 200 ms after, doubling up to 7 s).
pub fn retry_delay(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(200);
    base.checked_mul(1u32 << failures.saturating_sub(1).min(16))
        .unwrap_or(max)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn timers_fire_in_order_once_and_moved_keys_fire_at_their_new_time() {
        let mut t: Timers<u64, &str> = Timers::default();
        t.set("a", 30);
        t.set("b", 10);
        t.set("c", 20);
        t.set("a", 5); // moved earlier
        t.set("c", 40); // moved later
        assert_eq!(t.next_due(), Some(5));
        assert_eq!(t.pop_due(15), vec!["a", "b"]);
        assert_eq!(t.pop_due(15), Vec::<&str>::new());
        assert_eq!(t.next_due(), Some(40));
        t.set_earliest("c", 50);
        assert_eq!(t.get(&"c"), Some(40));
        t.set_earliest("c", 35);
        assert_eq!(t.get(&"c"), Some(35));
        t.cancel(&"c");
        assert_eq!(t.next_due(), None);
        assert!(t.pop_due(100).is_empty());
        assert!(t.is_empty());
    }

    /// 4 nodes over 10 s renew at 0, 2.5, 5 and 7.5 s past each period's start.
    #[test]
    fn slots_spread_objects_over_the_interval() {
        let interval = Duration::from_secs(10);
        let offsets: Vec<_> = (0..4).map(|i| slot_offset(i, 4, interval)).collect();
        assert_eq!(
            offsets,
            [0, 2500, 5000, 7500].map(Duration::from_millis).to_vec()
        );
        assert_eq!(slot_offset(0, 0, interval), Duration::ZERO);
        let five_thousand: Vec<_> = (0..5000).map(|i| slot_offset(i, 5000, interval)).collect();
        assert!(five_thousand
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::from_millis(2)));
    }

    #[test]
    fn the_next_slot_is_the_first_one_after_now() {
        let epoch = Instant::now();
        let s = Duration::from_secs;
        let offset = Duration::from_millis(2500);
        // Before the first slot: the first slot.
        assert_eq!(next_slot(epoch, offset, s(10), epoch), epoch + offset);
        // Exactly on a slot: the next one.
        assert_eq!(
            next_slot(epoch, offset, s(10), epoch + offset),
            epoch + offset + s(10)
        );
        // Between slots.
        assert_eq!(
            next_slot(epoch, offset, s(10), epoch + s(31)),
            epoch + offset + s(30)
        );
        // The renewals that follow are one interval apart.
        let mut at = epoch;
        let mut times = Vec::new();
        for _ in 0..3 {
            at = next_slot(epoch, offset, s(10), at);
            times.push(at - epoch);
        }
        assert_eq!(
            times,
            [2500, 12500, 22500].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        let max = Duration::from_secs(7);
        let delays: Vec<_> = (1..=8).map(|n| retry_delay(n, max).as_millis()).collect();
        assert_eq!(delays, vec![200, 400, 800, 1600, 3200, 6400, 7000, 7000]);
        assert_eq!(retry_delay(100, max), max);
    }
}
