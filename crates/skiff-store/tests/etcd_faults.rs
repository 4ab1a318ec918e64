//! The etcd backend when etcd goes away: requests fail with retryable errors, and a watch
//! reconnects by itself after etcd restarts, resuming after the last revision it delivered.

use std::time::Duration;

use anyhow::{ensure, Result};
use bytes::Bytes;
use skiff_store::conformance::next_event;
use skiff_store::testing::EtcdProcess;
use skiff_store::{EtcdStore, Store};

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
