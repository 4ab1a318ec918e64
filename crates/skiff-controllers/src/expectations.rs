//! Expectations: what a controller has asked the API to create or delete and its caches
//! have not shown yet, so that a reconcile that runs before the cache catches up does not
//! create (or delete) the same pods again. Upstream's `ControllerExpectations`
//! (pkg/controller/controller_utils.go), derived from the cache rather than counted from
//! events: a pending creation is done once the cache has the object's name, a pending
//! deletion once the cache no longer has its UID (or shows it terminating). Entries older
//! than five minutes are dropped, as upstream's TTL, so a lost watch event cannot stall a
//! controller for ever.
//!
//! Pure bookkeeping: it never reads the cache itself; callers pass what the cache says.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Upstream's `ExpectationsTimeout`.
pub const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Default, Clone)]
struct Pending {
    /// Names (within the owner's namespace) of objects created and not yet seen.
    creations: HashSet<String>,
    /// UIDs of objects deleted and still seen.
    deletions: HashSet<String>,
    since: Option<Instant>,
}

/// Per owner key (`namespace/name` of the controller object).
#[derive(Debug, Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `name` was created for `owner`.
    pub fn created(&self, owner: &str, name: &str, now: Instant) {
        let mut map = self.by_owner.lock();
        let p = map.entry(owner.to_owned()).or_default();
        p.creations.insert(name.to_owned());
        p.since.get_or_insert(now);
    }

    /// Records that the object with `uid` was deleted for `owner`.
    pub fn deleted(&self, owner: &str, uid: &str, now: Instant) {
        let mut map = self.by_owner.lock();
        let p = map.entry(owner.to_owned()).or_default();
        p.deletions.insert(uid.to_owned());
        p.since.get_or_insert(now);
    }

    /// A create that failed will never be seen: forget it.
    pub fn creation_failed(&self, owner: &str, name: &str) {
        if let Some(p) = self.by_owner.lock().get_mut(owner) {
            p.creations.remove(name);
        }
    }

    /// A delete that failed (other than not found): forget it.
    pub fn deletion_failed(&self, owner: &str, uid: &str) {
        if let Some(p) = self.by_owner.lock().get_mut(owner) {
            p.deletions.remove(uid);
        }
    }

    /// Whether `owner`'s earlier creations and deletions all show in the cache: `seen_name`
    /// answers whether the cache has an object of that name, `gone_uid` whether the object
    /// of that UID is gone (or terminating) there. Settled entries are dropped.
    pub fn satisfied(
        &self,
        owner: &str,
        now: Instant,
        seen_name: impl Fn(&str) -> bool,
        gone_uid: impl Fn(&str) -> bool,
    ) -> bool {
        let mut map = self.by_owner.lock();
        let Some(p) = map.get_mut(owner) else {
            return true;
        };
        p.creations.retain(|n| !seen_name(n));
        p.deletions.retain(|u| !gone_uid(u));
        let expired = p
            .since
            .is_some_and(|since| now.saturating_duration_since(since) >= TIMEOUT);
        if expired || (p.creations.is_empty() && p.deletions.is_empty()) {
            map.remove(owner);
            return true;
        }
        false
    }

    /// The owner is gone: forget what it waited for.
    pub fn forget(&self, owner: &str) {
        self.by_owner.lock().remove(owner);
    }

    /// How many creations and deletions `owner` still waits for (for tests and logs).
    pub fn outstanding(&self, owner: &str) -> (usize, usize) {
        self.by_owner
            .lock()
            .get(owner)
            .map_or((0, 0), |p| (p.creations.len(), p.deletions.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_are_satisfied_once_the_cache_has_them() {
        let e = Expectations::new();
        let t0 = Instant::now();
        assert!(e.satisfied("ns/rs", t0, |_| false, |_| false));
        e.created("ns/rs", "rs-a", t0);
        e.created("ns/rs", "rs-b", t0);
        assert!(!e.satisfied("ns/rs", t0, |n| n == "rs-a", |_| false));
        assert_eq!(e.outstanding("ns/rs"), (1, 0));
        assert!(e.satisfied("ns/rs", t0, |n| n == "rs-b", |_| false));
        assert_eq!(e.outstanding("ns/rs"), (0, 0));
    }

    #[test]
    fn deletions_are_satisfied_once_the_uid_is_gone() {
        let e = Expectations::new();
        let t0 = Instant::now();
        e.deleted("ns/rs", "uid-1", t0);
        assert!(!e.satisfied("ns/rs", t0, |_| true, |_| false));
        assert!(e.satisfied("ns/rs", t0, |_| true, |u| u == "uid-1"));
    }

    #[test]
    fn failed_writes_and_the_timeout_release_the_owner() {
        let e = Expectations::new();
        let t0 = Instant::now();
        e.created("a", "x", t0);
        e.creation_failed("a", "x");
        assert!(e.satisfied("a", t0, |_| false, |_| false));
        e.created("b", "y", t0);
        assert!(!e.satisfied("b", t0 + Duration::from_secs(60), |_| false, |_| false));
        assert!(e.satisfied("b", t0 + TIMEOUT, |_| false, |_| false));
    }
}
