//! The conformance suite every [`Store`] backend passes, written once against the trait
//! (after Kubernetes' `apiserver/pkg/storage/testing/store_tests.go`).
//!
//! Each `run_*` function takes a fresh, empty store. A backend's test file instantiates the
//! whole suite with [`conformance_tests!`](crate::conformance_tests), given an async factory
//! returning a [`TestStore`]. The tests assume nothing about absolute revision numbers, only
//! their order, so they hold for a backend whose counter is shared with other users.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use futures::StreamExt;

use crate::{Error, Event, EventKind, Revision, Store, WatchStream, MAX_VALUE_BYTES};

/// A store under test and whatever keeps it alive (temp dir, etcd process).
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Generates one `#[tokio::test]` per conformance case, each with a fresh store from
/// `$factory` (an `async fn() -> TestStore`).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@cases $factory;
            create_get, update_compare_and_swap, delete_compare_and_swap,
            revisions_strictly_increase, range_at_past_revision, range_prefix_is_exact,
            pagination_consistent_under_writes, count_keys, watch_from_revision,
            watch_live_events, watch_prefix_filters, concurrent_watchers_same_order,
            watch_after_compaction, watch_survives_heavy_load, compact_rules, bad_input);
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> ::anyhow::Result<()> {
                let t = $factory().await;
                $crate::conformance::$case(&*t.store).await
            }
        )*
    };
}

fn v(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next event of a watch, failing after a generous timeout (a stuck watch fails the test
/// instead of hanging it).
pub async fn next_event(w: &mut WatchStream) -> Result<Event> {
    match tokio::time::timeout(Duration::from_secs(30), w.next()).await {
        Ok(Some(Ok(ev))) => Ok(ev),
        Ok(Some(Err(e))) => bail!("watch failed: {e}"),
        Ok(None) => bail!("watch ended"),
        Err(_) => bail!("no watch event within 30 s"),
    }
}

/// Asserts that no event arrives within a short while.
async fn expect_quiet(w: &mut WatchStream) -> Result<()> {
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), w.next()).await {
        bail!("unexpected watch item: {ev:?}");
    }
    Ok(())
}

pub async fn create_get(s: &dyn Store) -> Result<()> {
    ensure!(s.get("/a").await?.is_none());
    let rev = s.create("/a", v("1")).await?;
    ensure!(rev > 0);
    let kv = s.get("/a").await?.context("created key missing")?;
    ensure!(kv.key == "/a" && kv.value == v("1"));
    ensure!(kv.create_revision == rev && kv.mod_revision == rev);
    ensure!(s.current_revision().await? >= rev);
    match s.create("/a", v("2")).await {
        Err(Error::KeyExists { key }) => ensure!(key == "/a"),
        other => bail!("create of an existing key: {other:?}"),
    }
    ensure!(
        s.get("/a").await?.context("key lost")?.value == v("1"),
        "failed create changed the value"
    );
    Ok(())
}

pub async fn update_compare_and_swap(s: &dyn Store) -> Result<()> {
    let r1 = s.create("/a", v("1")).await?;
    let r2 = s.update("/a", v("2"), r1).await?;
    ensure!(r2 > r1);
    let kv = s.get("/a").await?.context("missing")?;
    ensure!(kv.value == v("2") && kv.create_revision == r1 && kv.mod_revision == r2);
    match s.update("/a", v("3"), r1).await {
        Err(Error::Conflict {
            expected, actual, ..
        }) => ensure!(expected == r1 && actual == r2),
        other => bail!("stale update: {other:?}"),
    }
    ensure!(
        s.get("/a").await?.context("missing")?.value == v("2"),
        "conflicting update stored"
    );
    match s.update("/missing", v("x"), r1).await {
        Err(Error::NotFound { key }) => ensure!(key == "/missing"),
        other => bail!("update of a missing key: {other:?}"),
    }
    ensure!(s.get("/missing").await?.is_none());
    Ok(())
}

pub async fn delete_compare_and_swap(s: &dyn Store) -> Result<()> {
    ensure!(matches!(
        s.delete("/a", None).await,
        Err(Error::NotFound { .. })
    ));
    let r1 = s.create("/a", v("1")).await?;
    ensure!(
        matches!(s.delete("/a", Some(r1 + 1000)).await, Err(Error::Conflict { actual, .. }) if actual == r1)
    );
    ensure!(s.get("/a").await?.is_some(), "conflicting delete deleted");
    let (rd, prev) = s.delete("/a", Some(r1)).await?;
    ensure!(rd > r1 && prev.value == v("1") && prev.mod_revision == r1);
    ensure!(s.get("/a").await?.is_none());
    ensure!(matches!(
        s.delete("/a", None).await,
        Err(Error::NotFound { .. })
    ));
    // Recreating starts a new life with a new create revision.
    let r3 = s.create("/a", v("again")).await?;
    let kv = s.get("/a").await?.context("missing")?;
    ensure!(kv.create_revision == r3 && r3 > rd);
    let (_, prev) = s.delete("/a", None).await?;
    ensure!(prev.value == v("again"));
    Ok(())
}

pub async fn revisions_strictly_increase(s: &dyn Store) -> Result<()> {
    let start = s.current_revision().await?;
    let mut tasks = Vec::new();
    let s: Arc<&dyn Store> = Arc::new(s);
    for t in 0..8 {
        let s = s.clone();
        tasks.push(async move {
            let mut revs = Vec::new();
            let mut last = 0;
            for i in 0..40 {
                let key = format!("/k/{t}/{i}");
                let r = s.create(&key, v("x")).await?;
                ensure!(r > last, "a writer saw its revisions go backwards");
                last = r;
                revs.push(r);
                let r = s.update(&key, v("y"), r).await?;
                ensure!(r > last);
                last = r;
                revs.push(r);
            }
            Ok::<_, anyhow::Error>(revs)
        });
    }
    let mut all = Vec::new();
    for revs in futures::future::join_all(tasks).await {
        all.extend(revs?);
    }
    let unique: BTreeSet<_> = all.iter().copied().collect();
    ensure!(
        unique.len() == all.len(),
        "two writes got the same revision"
    );
    ensure!(*unique.first().context("no revisions")? > start);
    ensure!(s.current_revision().await? >= *unique.last().context("no revisions")?);
    Ok(())
}

pub async fn range_at_past_revision(s: &dyn Store) -> Result<()> {
    s.create("/r/a", v("a1")).await?;
    s.create("/r/b", v("b1")).await?;
    let rc = s.create("/r/c", v("c1")).await?;
    let snapshot = s.current_revision().await?;
    let a = s.get("/r/a").await?.context("missing")?;
    s.update("/r/a", v("a2"), a.mod_revision).await?;
    s.delete("/r/b", None).await?;
    s.create("/r/d", v("d1")).await?;

    let then = s.range("/r/", None, 0, Some(snapshot)).await?;
    let got: Vec<_> = then
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    ensure!(
        got == vec![("/r/a", v("a1")), ("/r/b", v("b1")), ("/r/c", v("c1"))],
        "at snapshot: {got:?}"
    );
    ensure!(then.revision == snapshot && !then.more);
    ensure!(then.kvs[2].mod_revision == rc);

    let now = s.range("/r/", None, 0, None).await?;
    let got: Vec<_> = now
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    ensure!(
        got == vec![("/r/a", v("a2")), ("/r/c", v("c1")), ("/r/d", v("d1"))],
        "now: {got:?}"
    );
    ensure!(now.revision == s.current_revision().await?);

    let future = now.revision + 100;
    ensure!(matches!(
        s.range("/r/", None, 0, Some(future)).await,
        Err(Error::FutureRevision { .. })
    ));
    Ok(())
}

pub async fn range_prefix_is_exact(s: &dyn Store) -> Result<()> {
    for key in ["/p", "/p/", "/p/a", "/p/b/c", "/pa", "/p0", "/o"] {
        s.create(key, v(key)).await?;
    }
    let keys: Vec<_> = s
        .range("/p/", None, 0, None)
        .await?
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    ensure!(keys == vec!["/p/", "/p/a", "/p/b/c"], "{keys:?}");
    ensure!(s.range("/q/", None, 0, None).await?.kvs.is_empty());
    let keys: Vec<_> = s
        .range("/p/", Some("/p/a"), 0, None)
        .await?
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    ensure!(keys == vec!["/p/b/c"], "{keys:?}");
    Ok(())
}

pub async fn pagination_consistent_under_writes(s: &dyn Store) -> Result<()> {
    let mut expected = BTreeMap::new();
    for i in 0..120 {
        let key = format!("/page/{i:04}");
        s.create(&key, v(&format!("v{i}"))).await?;
        expected.insert(key, v(&format!("v{i}")));
    }
    let first = s.range("/page/", None, 7, None).await?;
    let snapshot = first.revision;
    ensure!(first.kvs.len() == 7 && first.more);
    let mut seen: Vec<(String, Bytes)> = first
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let mut last = seen.last().context("empty page")?.0.clone();
    let mut pages = 1;
    loop {
        // Writes between pages: the pages must not see them.
        let i = pages * 3;
        let key = format!("/page/{i:04}");
        if let Some(kv) = s.get(&key).await? {
            s.update(&key, v("changed"), kv.mod_revision).await?;
        }
        s.delete(&format!("/page/{:04}", i + 1), None).await.ok();
        s.create(&format!("/page/{i:04}x"), v("new")).await?;
        let page = s.range("/page/", Some(&last), 7, Some(snapshot)).await?;
        ensure!(page.revision == snapshot);
        pages += 1;
        if let Some(kv) = page.kvs.last() {
            last = kv.key.clone();
        }
        seen.extend(page.kvs.into_iter().map(|kv| (kv.key, kv.value)));
        if !page.more {
            break;
        }
        ensure!(pages < 100, "pagination does not end");
    }
    let want: Vec<_> = expected.into_iter().collect();
    ensure!(
        seen == want,
        "pages differ from the snapshot ({} keys seen, {} expected)",
        seen.len(),
        want.len()
    );
    Ok(())
}

pub async fn count_keys(s: &dyn Store) -> Result<()> {
    ensure!(s.count("/c/").await? == 0);
    for i in 0..10 {
        s.create(&format!("/c/{i}"), v("x")).await?;
    }
    s.create("/cx", v("x")).await?;
    s.delete("/c/3", None).await?;
    ensure!(s.count("/c/").await? == 9);
    Ok(())
}

fn summary(ev: &Event) -> (EventKind, String, Bytes, Option<Bytes>) {
    (
        ev.kind,
        ev.kv.key.clone(),
        ev.kv.value.clone(),
        ev.prev_kv.as_ref().map(|p| p.value.clone()),
    )
}

pub async fn watch_from_revision(s: &dyn Store) -> Result<()> {
    s.create("/w/before", v("0")).await?;
    let from = s.current_revision().await?;
    let r1 = s.create("/w/a", v("1")).await?;
    let r2 = s.update("/w/a", v("2"), r1).await?;
    let (r3, _) = s.delete("/w/a", Some(r2)).await?;
    let r4 = s.create("/w/b", v("b")).await?;

    let mut w = s.watch("/w/", from).await?;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(&mut w).await?);
    }
    let revs: Vec<_> = got.iter().map(Event::revision).collect();
    ensure!(revs == vec![r1, r2, r3, r4], "revisions {revs:?}");
    let summaries: Vec<_> = got.iter().map(summary).collect();
    ensure!(
        summaries
            == vec![
                (EventKind::Put, "/w/a".into(), v("1"), None),
                (EventKind::Put, "/w/a".into(), v("2"), Some(v("1"))),
                (EventKind::Delete, "/w/a".into(), Bytes::new(), Some(v("2"))),
                (EventKind::Put, "/w/b".into(), v("b"), None),
            ],
        "{summaries:?}"
    );
    ensure!(
        got[1].kv.create_revision == r1
            && got[1].prev_kv.as_ref().map(|p| p.mod_revision) == Some(r1)
    );
    ensure!(got[2].kv.create_revision == r1);
    expect_quiet(&mut w).await?;

    // From the middle: exactly the events after it.
    let mut w = s.watch("/w/", r2).await?;
    ensure!(next_event(&mut w).await?.revision() == r3);
    ensure!(next_event(&mut w).await?.revision() == r4);
    expect_quiet(&mut w).await?;
    Ok(())
}

pub async fn watch_live_events(s: &dyn Store) -> Result<()> {
    let from = s.current_revision().await?;
    let mut w = s.watch("/live/", from).await?;
    expect_quiet(&mut w).await?;
    let r1 = s.create("/live/a", v("1")).await?;
    let ev = next_event(&mut w).await?;
    ensure!(ev.revision() == r1 && ev.kind == EventKind::Put);
    let r2 = s.update("/live/a", v("2"), r1).await?;
    let ev = next_event(&mut w).await?;
    ensure!(ev.revision() == r2 && ev.prev_kv.map(|p| p.value) == Some(v("1")));
    // A watch from a revision not reached yet starts there.
    let now = s.current_revision().await?;
    let mut later = s.watch("/live/", now + 1).await?;
    let r3 = s.create("/live/b", v("b")).await?;
    let r4 = s.create("/live/c", v("c")).await?;
    ensure!(r3 == now + 1, "another writer interfered");
    ensure!(next_event(&mut later).await?.revision() == r4);
    Ok(())
}

pub async fn watch_prefix_filters(s: &dyn Store) -> Result<()> {
    let from = s.current_revision().await?;
    let mut w = s.watch("/f/", from).await?;
    s.create("/f", v("x")).await?;
    s.create("/fx/a", v("x")).await?;
    let r = s.create("/f/a", v("x")).await?;
    ensure!(next_event(&mut w).await?.revision() == r);
    expect_quiet(&mut w).await?;
    Ok(())
}

pub async fn concurrent_watchers_same_order(s: &dyn Store) -> Result<()> {
    let from = s.current_revision().await?;
    let mut watchers = Vec::new();
    for _ in 0..10 {
        watchers.push(s.watch("/cw/", from).await?);
    }
    let s = Arc::new(s);
    let writers = (0..4).map(|t| {
        let s = s.clone();
        async move {
            for i in 0..50 {
                let key = format!("/cw/{}", i % 7);
                match s.get(&key).await? {
                    Some(kv) if i % 3 == 0 => {
                        s.delete(&key, Some(kv.mod_revision)).await.ok();
                    }
                    Some(kv) => {
                        s.update(&key, v(&format!("{t}-{i}")), kv.mod_revision)
                            .await
                            .ok();
                    }
                    None => {
                        s.create(&key, v(&format!("{t}-{i}"))).await.ok();
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    for r in futures::future::join_all(writers).await {
        r?;
    }
    let end = s.current_revision().await?;
    let mut orders = Vec::new();
    for w in watchers.iter_mut() {
        let mut revs = Vec::new();
        while revs.last().copied().unwrap_or(from) < end {
            revs.push(next_event(w).await?.revision());
        }
        ensure!(revs.windows(2).all(|p| p[0] < p[1]), "events out of order");
        orders.push(revs);
    }
    ensure!(
        orders.windows(2).all(|p| p[0] == p[1]),
        "watchers saw different orders"
    );
    ensure!(!orders[0].is_empty());
    Ok(())
}

pub async fn watch_after_compaction(s: &dyn Store) -> Result<()> {
    let r1 = s.create("/cp/a", v("1")).await?;
    let r2 = s.update("/cp/a", v("2"), r1).await?;
    let r3 = s.update("/cp/a", v("3"), r2).await?;
    let r4 = s.create("/cp/b", v("b")).await?;
    s.compact(r3).await?;
    ensure!(s.compacted_revision().await? >= r3);
    // Watching from r3 - 1 needs the event at r3, which is kept.
    let mut w = s.watch("/cp/", r3 - 1).await?;
    ensure!(next_event(&mut w).await?.revision() == r3);
    ensure!(next_event(&mut w).await?.revision() == r4);
    // Watching from before that needs history that is gone.
    match s.watch("/cp/", r1).await {
        Err(Error::Compacted { .. }) => {}
        Ok(mut w) => match w.next().await {
            Some(Err(Error::Compacted { .. })) => {}
            other => bail!("watch from a compacted revision: {other:?}"),
        },
        Err(e) => bail!("watch from a compacted revision: {e}"),
    }
    match s.range("/cp/", None, 0, Some(r2)).await {
        Err(Error::Compacted { .. }) => {}
        other => bail!("range at a compacted revision: {other:?}"),
    }
    let at = s.range("/cp/", None, 0, Some(r3)).await?;
    ensure!(
        at.kvs.len() == 1 && at.kvs[0].value == v("3"),
        "range at the compacted revision: {:?}",
        at.kvs
    );
    ensure!(s.get("/cp/a").await?.context("missing")?.value == v("3"));
    Ok(())
}

pub async fn watch_survives_heavy_load(s: &dyn Store) -> Result<()> {
    let from = s.current_revision().await?;
    let mut w = s.watch("/load/", from).await?;
    let s = Arc::new(s);
    let writers = (0..16).map(|t| {
        let s = s.clone();
        async move {
            let mut revs = Vec::new();
            for i in 0..150 {
                revs.push(
                    s.create(&format!("/load/{t}/{i}"), Bytes::from(vec![b'x'; 512]))
                        .await?,
                );
            }
            Ok::<_, anyhow::Error>(revs)
        }
    });
    let consumer = async {
        let mut got = Vec::new();
        while got.len() < 16 * 150 {
            got.push(next_event(&mut w).await?.revision());
        }
        Ok::<_, anyhow::Error>(got)
    };
    let (written, got) = tokio::join!(futures::future::join_all(writers), consumer);
    let mut want = Vec::new();
    for revs in written {
        want.extend(revs?);
    }
    want.sort_unstable();
    ensure!(
        got? == want,
        "the watcher lost, repeated or reordered events"
    );
    Ok(())
}

pub async fn compact_rules(s: &dyn Store) -> Result<()> {
    let r = s.create("/x", v("1")).await?;
    ensure!(matches!(
        s.compact(r + 10).await,
        Err(Error::FutureRevision { .. })
    ));
    s.compact(r).await?;
    // Compacting again, or to an older revision, changes nothing.
    s.compact(r).await?;
    s.compact(r - 1).await?;
    ensure!(s.get("/x").await?.is_some());
    ensure!(s.compacted_revision().await? >= r);
    Ok(())
}

pub async fn bad_input(s: &dyn Store) -> Result<()> {
    let before = s.current_revision().await?;
    ensure!(matches!(
        s.create("", v("x")).await,
        Err(Error::InvalidKey(_))
    ));
    ensure!(matches!(
        s.create("/e", Bytes::new()).await,
        Err(Error::InvalidValue { .. })
    ));
    let big = Bytes::from(vec![0u8; MAX_VALUE_BYTES + 1]);
    ensure!(matches!(
        s.create("/big", big.clone()).await,
        Err(Error::InvalidValue { .. })
    ));
    let r = s.create("/ok", v("x")).await?;
    ensure!(matches!(
        s.update("/ok", big, r).await,
        Err(Error::InvalidValue { .. })
    ));
    ensure!(matches!(s.get("").await, Err(Error::InvalidKey(_))));
    ensure!(
        s.current_revision().await? == before + 1,
        "a refused write changed the revision"
    );
    // The largest value allowed round-trips.
    let max = Bytes::from(vec![7u8; MAX_VALUE_BYTES]);
    s.create("/max", max.clone()).await?;
    ensure!(s.get("/max").await?.context("missing")?.value == max);
    Ok(())
}

/// The revisions of `events`, for messages.
pub fn revisions(events: &[Event]) -> Vec<Revision> {
    events.iter().map(Event::revision).collect()
}
