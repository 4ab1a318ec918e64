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

    // The embedded store's watch of "/" sees every write, so it takes no requests.
    let dir = tempfile::tempdir()?;
    let embedded = EmbeddedStore::open(EmbeddedConfig::new(dir.path()))?;
    let (_, requests) = embedded.watch_with_progress("/", 0).await?;
    ensure!(!requests.request());
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
