//! The in-memory MVCC key index of the embedded store: for every key, the revisions at which
//! it was written or deleted (its versions), so that reads at the current or a past revision
//! and compaction are decided here without touching the disk. Values live on disk, keyed by
//! revision; this index only says which revision holds the value to read.
//!
//! Pure data structure: no I/O, no locking (the store wraps it in a lock).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::Revision;

/// One write of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// The revision of the write.
    pub rev: Revision,
    /// The revision at which the key was created (for a tombstone: that of the version it
    /// deleted).
    pub create_rev: Revision,
    /// Whether this write was a delete.
    pub tombstone: bool,
}

#[derive(Debug, Default)]
pub struct Index {
    keys: BTreeMap<String, Vec<Version>>,
}

impl Index {
    /// The live version of `key` now (none if absent or deleted).
    pub fn latest(&self, key: &str) -> Option<Version> {
        self.keys
            .get(key)
            .and_then(|versions| versions.last())
            .filter(|v| !v.tombstone)
            .copied()
    }

    /// The live version of `key` at revision `rev`.
    pub fn at(&self, key: &str, rev: Revision) -> Option<Version> {
        self.keys
            .get(key)
            .and_then(|versions| visible_at(versions, rev))
    }

    /// Live keys starting with `prefix` and sorting after `start_after`, as of `rev`, in key
    /// order, at most `limit` (0: all), and whether more follow.
    pub fn range(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        rev: Revision,
    ) -> (Vec<(String, Version)>, bool) {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        let live = self
            .keys
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, versions)| visible_at(versions, rev).map(|v| (k, v)));
        for (k, v) in live {
            if limit > 0 && out.len() == limit {
                return (out, true);
            }
            out.push((k.clone(), v));
        }
        (out, false)
    }

    /// How many keys starting with `prefix` are live now.
    pub fn count(&self, prefix: &str) -> u64 {
        self.keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, versions)| versions.last().is_some_and(|v| !v.tombstone))
            .count() as u64
    }

    /// Records a write. Revisions must arrive in increasing order.
    pub fn put(&mut self, key: &str, rev: Revision, create_rev: Revision) {
        self.push(
            key,
            Version {
                rev,
                create_rev,
                tombstone: false,
            },
        );
    }

    /// Records a delete of the key's live version.
    pub fn delete(&mut self, key: &str, rev: Revision, create_rev: Revision) {
        self.push(
            key,
            Version {
                rev,
                create_rev,
                tombstone: true,
            },
        );
    }

    fn push(&mut self, key: &str, version: Version) {
        match self.keys.get_mut(key) {
            Some(versions) => versions.push(version),
            None => {
                self.keys.insert(key.to_owned(), vec![version]);
            }
        }
    }

    /// Forgets the history before `rev` and returns the revisions no read at or after `rev`
    /// (nor any watch of events at or after it) can need, for the caller to delete.
    ///
    /// For every key, the version visible at `rev` is kept (and all later ones); a tombstone
    /// older than `rev` is dropped with everything before it. A tombstone at exactly `rev`
    /// stays: a watch from `rev - 1` must still deliver that delete.
    pub fn compact(&mut self, rev: Revision) -> Vec<Revision> {
        let mut dropped = Vec::new();
        self.keys.retain(|_, versions| {
            // Index of the first version to keep: the last one at or before `rev`.
            let at_or_before = versions.partition_point(|v| v.rev <= rev);
            if at_or_before == 0 {
                return true;
            }
            let mut keep_from = at_or_before - 1;
            let visible = versions[keep_from];
            if visible.tombstone && visible.rev < rev {
                keep_from += 1;
            }
            dropped.extend(versions.drain(..keep_from).map(|v| v.rev));
            !versions.is_empty()
        });
        dropped.sort_unstable();
        dropped
    }

    /// Number of keys with any version kept (live or tombstone).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn visible_at(versions: &[Version], rev: Revision) -> Option<Version> {
    let n = versions.partition_point(|v| v.rev <= rev);
    n.checked_sub(1)
        .map(|i| versions[i])
        .filter(|v| !v.tombstone)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a: put@1, put@3, del@5, put@7   b: put@2   c: put@4, del@6
    fn sample() -> Index {
        let mut ix = Index::default();
        ix.put("/a", 1, 1);
        ix.put("/b", 2, 2);
        ix.put("/a", 3, 1);
        ix.put("/c", 4, 4);
        ix.delete("/a", 5, 1);
        ix.delete("/c", 6, 4);
        ix.put("/a", 7, 7);
        ix
    }

    fn keys_at(ix: &Index, rev: Revision) -> Vec<(String, Revision)> {
        ix.range("/", None, 0, rev)
            .0
            .into_iter()
            .map(|(k, v)| (k, v.rev))
            .collect()
    }

    #[test]
    fn reads_see_the_version_of_their_revision() {
        let ix = sample();
        let k = |s: &str, r| (s.to_owned(), r);
        assert_eq!(keys_at(&ix, 1), vec![k("/a", 1)]);
        assert_eq!(keys_at(&ix, 4), vec![k("/a", 3), k("/b", 2), k("/c", 4)]);
        assert_eq!(keys_at(&ix, 5), vec![k("/b", 2), k("/c", 4)]);
        assert_eq!(keys_at(&ix, 6), vec![k("/b", 2)]);
        assert_eq!(keys_at(&ix, 7), vec![k("/a", 7), k("/b", 2)]);
        assert_eq!(ix.latest("/a").map(|v| (v.rev, v.create_rev)), Some((7, 7)));
        assert_eq!(ix.latest("/c"), None);
        assert_eq!(ix.at("/a", 4).map(|v| v.create_rev), Some(1));
        assert_eq!(ix.count("/"), 2);
    }

    #[test]
    fn range_pages_by_start_after_and_limit() {
        let ix = sample();
        let (page, more) = ix.range("/", None, 1, 4);
        assert_eq!((page[0].0.as_str(), more), ("/a", true));
        let (page, more) = ix.range("/", Some("/a"), 1, 4);
        assert_eq!((page[0].0.as_str(), more), ("/b", true));
        let (page, more) = ix.range("/", Some("/b"), 1, 4);
        assert_eq!((page[0].0.as_str(), more), ("/c", false));
        let (page, more) = ix.range("/", Some("/c"), 1, 4);
        assert!(page.is_empty() && !more);
        // A start_after before the prefix starts at the prefix.
        assert_eq!(ix.range("/b", Some("/a"), 0, 7).0.len(), 1);
        // A limit that fits exactly reports no more.
        assert!(!ix.range("/", None, 2, 7).1);
    }

    #[test]
    fn prefix_does_not_match_siblings() {
        let mut ix = Index::default();
        ix.put("/pods/a", 1, 1);
        ix.put("/podsx/b", 2, 2);
        ix.put("/pod", 3, 3);
        assert_eq!(ix.range("/pods/", None, 0, 3).0.len(), 1);
        assert_eq!(ix.count("/pods/"), 1);
    }

    #[test]
    fn compaction_keeps_what_reads_at_and_after_its_revision_need() {
        for rev in 1..=8 {
            let mut ix = sample();
            let before: Vec<_> = (rev..=8).map(|r| keys_at(&ix, r)).collect();
            let dropped = ix.compact(rev);
            let after: Vec<_> = (rev..=8).map(|r| keys_at(&ix, r)).collect();
            assert_eq!(
                before, after,
                "compact({rev}) changed a read at or after it"
            );
            assert!(
                dropped.iter().all(|r| *r < rev),
                "compact({rev}) dropped {dropped:?}"
            );
        }
    }

    #[test]
    fn compaction_drops_superseded_versions_and_old_tombstones() {
        let mut ix = sample();
        assert_eq!(ix.compact(6), vec![1, 3, 4, 5]);
        // /c's tombstone at exactly 6 stays: a watch from 5 delivers it.
        assert_eq!(ix.len(), 2 + 1);
        assert_eq!(ix.compact(7), vec![6]);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.compact(7), Vec::<Revision>::new());
    }
}
