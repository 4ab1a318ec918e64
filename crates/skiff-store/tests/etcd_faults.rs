//! The etcd backend when etcd goes away: requests fail with retryable errors, and a watch
//! reconnects by itself after etcd restarts, resuming after the last revision it delivered.
//! And when another program shares the etcd: a watch reports its progress past writes it
//! does not see. And watches nobody reads do not hold up requests (their own connection).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use skiff_store::conformance::next_event;
use skiff_store::testing::EtcdProcess;
use skiff_store::{EmbeddedConfig, EmbeddedStore, EtcdStore, Store, WatchItem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_etcd_restart() -> Result<()> {
    let mut etcd = EtcdProcess::start().await?;
    let store = etcd.store("/registry").await?;
    let from = store.current_revision().await?;
    let mut w = store.watch("/w/", from).await?;
    let mut written = Vec::new();
    for i in 0..10 {
        written.push(
            store
                .create(&format!("/w/{i}"), Bytes::from("before"))
                .await?,
        );
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(next_event(&mut w).await?.revision());
    }
    etcd.kill();
    // While etcd is down, requests fail with a retryable error.
    let down = store.get("/w/0").await;
    ensure!(
        matches!(&down, Err(e) if e.is_retryable()),
        "while down: {down:?}"
    );
    etcd.restart().await?;
    for i in 10..20 {
        written.push(
            store
                .create(&format!("/w/{i}"), Bytes::from("after"))
                .await?,
        );
    }
    for _ in 0..10 {
        seen.push(next_event(&mut w).await?.revision());
    }
    ensure!(
        seen == written,
        "events lost or repeated across the restart: {seen:?} vs {written:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_down_etcd_is_retryable() -> Result<()> {
    let mut etcd = EtcdProcess::start().await?;
    let mut config = etcd.config("/registry");
    etcd.kill();
    config.request_timeout = Duration::from_secs(2);
    match EtcdStore::connect(config).await {
        Err(e) => ensure!(e.is_retryable(), "not retryable: {e}"),
        Ok(_) => anyhow::bail!("connected to a stopped etcd"),
    }
    Ok(())
}

async fn next_item(items: &mut skiff_store::ProgressWatchStream) -> Result<WatchItem> {
    let item = tokio::time::timeout(Duration::from_secs(10), items.next())
        .await
        .context("no watch item within 10 s")?
        .context("the watch ended")??;
    Ok(item)
}

/// Another program's writes to the same etcd move its revision past every event a watch of
/// skiff's keys sees; on request, the watch says how far it has caught up anyway (etcd's
/// progress notification), which is what lets a consistent read be served from a cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_progress_past_writes_it_does_not_see() -> Result<()> {
    // The embedded store's watch of "/" sees every write, so it takes no requests.
    let dir = tempfile::tempdir()?;
    let embedded = EmbeddedStore::open(EmbeddedConfig::new(dir.path()))?;
    let (_, requests) = embedded.watch_with_progress("/", 0).await?;
    ensure!(!requests.request());

    let etcd = EtcdProcess::start().await?;
    let store = etcd.store("/registry").await?;
    let other = etcd.store("/other").await?;
    let from = store.current_revision().await?;
    let (mut items, progress) = store.watch_with_progress("/w/", from).await?;
    let mine = store.create("/w/a", Bytes::from("x")).await?;
    let mut foreign = 0;
    for i in 0..5 {
        foreign = other.create(&format!("/x/{i}"), Bytes::from("y")).await?;
    }
    ensure!(store.current_revision().await? >= foreign);
    let first = next_item(&mut items).await?;
    ensure!(
        matches!(&first, WatchItem::Event(ev) if ev.revision() == mine),
        "{first:?}"
    );
    if !store.reports_progress() {
        // An etcd whose reports can overtake events (see the next test): no requests.
        ensure!(
            !progress.request(),
            "progress asked of an etcd that misorders it"
        );
        return Ok(());
    }
    ensure!(progress.request(), "the etcd watch takes progress requests");
    let item = next_item(&mut items).await?;
    ensure!(
        matches!(item, WatchItem::Progress(r) if r >= foreign),
        "expected progress to at least {foreign}, got {item:?}"
    );
    // Events go on after a progress report, and a report never goes backwards.
    let later = store.create("/w/b", Bytes::from("x")).await?;
    let item = next_item(&mut items).await?;
    ensure!(
        matches!(&item, WatchItem::Event(ev) if ev.revision() == later),
        "{item:?}"
    );
    ensure!(progress.request());
    let item = next_item(&mut items).await?;
    ensure!(
        matches!(item, WatchItem::Progress(r) if r >= later),
        "{item:?}"
    );

    Ok(())
}

/// Watches whose readers stop reading hold only their own connection: requests keep being
/// answered while unread watch events pile up (watches and requests share no HTTP/2
/// flow-control window; on one connection four unread watches of 3 MB each fill the
/// connection's window and every request waits behind them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_watches_do_not_hold_up_requests() -> Result<()> {
    let etcd = EtcdProcess::start().await?;
    let mut config = etcd.config("/registry");
    config.request_timeout = Duration::from_secs(5);
    let store = EtcdStore::connect(config).await?;
    let from = store.current_revision().await?;
    let mut unread = Vec::new();
    for _ in 0..4 {
        unread.push(store.watch("/big/", from).await?);
    }
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..12 {
            store.create(&format!("/big/{i}"), value.clone()).await?;
        }
        anyhow::Ok(())
    })
    .await
    .context("writes hung behind unread watches")??;
    // 48 MB of events wait unread; a request is still answered. (On a shared connection
    // the writes above already hang: the answers' bodies wait for window that the unread
    // watches hold, and a request timeout does not cover a body. Bounded, so that such a
    // regression fails rather than hangs.)
    tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..12 {
            let got = store.get(&format!("/big/{i}")).await?;
            ensure!(got.is_some_and(|kv| kv.value.len() == 1 << 20), "/big/{i}");
        }
        Ok(())
    })
    .await
    .context("requests hung behind unread watches")??;
    drop(unread);
    Ok(())
}

/// A watch asked for progress again and again while writes pour in still delivers every
/// write exactly once. etcd before 3.4.31 / 3.5.13 answers a progress request with its
/// current revision out of band, possibly before events at or below it reach the stream
/// (etcd-io/etcd#15220, #17507); a watch that believed such a report skipped those events
/// (the API server's cache then never saw a Node or Namespace a test had just created).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_requests_never_lose_an_event() -> Result<()> {
    let etcd = EtcdProcess::start().await?;
    let store = etcd.store("/registry").await?;
    let from = store.current_revision().await?;
    let (mut items, progress) = store.watch_with_progress("/w/", from).await?;
    const WRITERS: usize = 4;
    const EACH: usize = 300;
    // The reader reads slowly at first, so events queue up inside etcd, while progress is
    // asked for all along.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < WRITERS * EACH {
            if seen.len() < 200 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            progress.request();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, items.next()).await {
                Ok(Some(Ok(WatchItem::Event(ev)))) => seen.push(ev.revision()),
                Ok(Some(Ok(WatchItem::Progress(_)))) => {}
                Ok(Some(Err(e))) => anyhow::bail!("the watch ended: {e}"),
                Ok(None) => anyhow::bail!("the watch ended"),
                Err(_) => break,
            }
        }
        anyhow::Ok(seen)
    });
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..EACH {
                let value = Bytes::from(vec![b'x'; 4096]);
                revs.push(store.create(&format!("/w/{w}-{i}"), value).await?);
            }
            anyhow::Ok(revs)
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await??);
    }
    written.sort_unstable();
    let seen = reader.await??;
    let missing: Vec<_> = written.iter().filter(|r| !seen.contains(r)).collect();
    ensure!(
        missing.is_empty() && seen.len() == written.len(),
        "{} of {} writes never arrived (first: {:?}); {} events seen",
        missing.len(),
        written.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        seen.len()
    );
    ensure!(seen.windows(2).all(|w| w[0] < w[1]), "events out of order");
    Ok(())
}
