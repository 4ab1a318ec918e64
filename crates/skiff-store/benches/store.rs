//! The datastore benchmark: the embedded store and etcd (through the etcd backend) side by
//! side, in one run, on this machine, with the same operations:
//!
//! - durable puts/s (1 KiB values) with 1, 16 and 64 concurrent writers, p50/p99 latency;
//! - a range of 10,000 keys (1 KiB values);
//! - watch delivery latency with 100 watchers (from the start of a put to each watcher
//!   receiving it).
//!
//! `cargo bench -p skiff-store --bench store`. Environment: `SKIFF_BENCH_SECS` (seconds per
//! put phase, default 4), `SKIFF_BENCH_DIR` (where both keep their data, default /var/tmp: a
//! real disk, so fsync costs what it costs). Needs /usr/bin/etcd (Debian's etcd-server).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use skiff_store::testing::EtcdProcess;
use skiff_store::{EmbeddedConfig, EmbeddedStore, Store};

struct Puts {
    writers: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Report {
    puts: Vec<Puts>,
    range_ms: f64,
    watch_p50_ms: f64,
    watch_p99_ms: f64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn puts(store: Arc<dyn Store>, writers: usize, secs: f64, tag: &str) -> Result<Puts> {
    let value = Bytes::from(vec![b'v'; 1024]);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks = (0..writers).map(|w| {
        let (store, value, tag) = (store.clone(), value.clone(), tag.to_owned());
        tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                store
                    .create(&format!("/bench/{tag}/{w}/{i}"), value.clone())
                    .await?;
                h.record(t.elapsed().as_micros() as u64)?;
                i += 1;
            }
            Ok::<_, anyhow::Error>(h)
        })
    });
    let mut all = Histogram::<u64>::new(3)?;
    for h in futures::future::join_all(tasks).await {
        all.add(h??)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Puts {
        writers,
        per_sec: all.len() as f64 / elapsed,
        p50_ms: ms(&all, 0.5),
        p99_ms: ms(&all, 0.99),
    })
}

async fn range_10k(store: Arc<dyn Store>) -> Result<f64> {
    let value = Bytes::from(vec![b'r'; 1024]);
    let loads = (0..64).map(|w| {
        let (store, value) = (store.clone(), value.clone());
        tokio::spawn(async move {
            for i in (w..10_000).step_by(64) {
                store
                    .create(&format!("/range/{i:05}"), value.clone())
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        })
    });
    for r in futures::future::join_all(loads).await {
        r??;
    }
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let got = store.range("/range/", None, 0, None).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(got.kvs.len() == 10_000, "range returned {}", got.kvs.len());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

async fn watch_latency(store: Arc<dyn Store>) -> Result<(f64, f64)> {
    let from = store.current_revision().await?;
    let base = Instant::now();
    let puts = 300;
    let mut watchers = Vec::new();
    for _ in 0..100 {
        let mut w = store.watch("/watch/", from).await?;
        watchers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            for _ in 0..puts {
                let ev = w.next().await.context("watch ended")??;
                let sent: u64 = std::str::from_utf8(&ev.kv.value)?.parse()?;
                let now = base.elapsed().as_micros() as u64;
                h.record(now.saturating_sub(sent))?;
            }
            Ok::<_, anyhow::Error>(h)
        }));
    }
    for i in 0..puts {
        let sent = base.elapsed().as_micros() as u64;
        store
            .create(&format!("/watch/{i}"), Bytes::from(sent.to_string()))
            .await?;
        // A steady stream of writes, not a burst: latency, not backlog, is measured.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut all = Histogram::<u64>::new(3)?;
    for h in futures::future::join_all(watchers).await {
        all.add(h??)?;
    }
    Ok((ms(&all, 0.5), ms(&all, 0.99)))
}

async fn run(store: Arc<dyn Store>, secs: f64, name: &str) -> Result<Report> {
    let mut report = Report {
        puts: Vec::new(),
        range_ms: 0.0,
        watch_p50_ms: 0.0,
        watch_p99_ms: 0.0,
    };
    for writers in [1, 16, 64] {
        let p = puts(store.clone(), writers, secs, &format!("{writers}")).await?;
        eprintln!(
            "{name}: {writers} writers: {:.0} puts/s, p50 {:.2} ms, p99 {:.2} ms",
            p.per_sec, p.p50_ms, p.p99_ms
        );
        report.puts.push(p);
    }
    report.range_ms = range_10k(store.clone()).await?;
    eprintln!("{name}: range of 10,000 keys: {:.1} ms", report.range_ms);
    (report.watch_p50_ms, report.watch_p99_ms) = watch_latency(store.clone()).await?;
    eprintln!(
        "{name}: watch delivery, 100 watchers: p50 {:.2} ms, p99 {:.2} ms",
        report.watch_p50_ms, report.watch_p99_ms
    );
    Ok(report)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too: only run
    // when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let secs: f64 = std::env::var("SKIFF_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let parent =
        PathBuf::from(std::env::var("SKIFF_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::Builder::new().prefix("skiff-bench-").tempdir_in(&parent)?;
        let mut config = EmbeddedConfig::new(dir.path());
        config.compaction_interval = None;
        let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config.clone())?);
        let e = run(embedded, secs, "embedded").await?;
        // Reopen: verifies every page's checksum and rebuilds the index from the log.
        let t = Instant::now();
        let reopened = EmbeddedStore::open(config.clone())?;
        let reopen_ms = t.elapsed().as_secs_f64() * 1000.0;
        let revisions = reopened.current_revision().await?;
        let file_mb = std::fs::metadata(reopened.path())?.len() as f64 / 1e6;
        drop(reopened);
        // The same without the page verification: what rebuilding the index costs.
        let t = Instant::now();
        drop(EmbeddedStore::open(EmbeddedConfig { verify_on_open: false, ..config.clone() })?);
        let index_ms = t.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "embedded: reopen with {revisions} revisions ({file_mb:.0} MB): {reopen_ms:.0} ms, \
             {index_ms:.0} ms without page verification"
        );

        let etcd_proc = EtcdProcess::start_in(Some(&parent)).await?;
        let etcd: Arc<dyn Store> = Arc::new(etcd_proc.store("/registry").await?);
        let x = run(etcd, secs, "etcd").await?;

        println!("| operation | embedded | etcd 3.4 | embedded / etcd |");
        println!("|---|---|---|---|");
        for (a, b) in e.puts.iter().zip(&x.puts) {
            println!(
                "| durable puts/s, {} writers | {:.0} | {:.0} | {:.2}x |",
                a.writers, a.per_sec, b.per_sec, a.per_sec / b.per_sec
            );
            println!(
                "| put latency p50 / p99, {} writers (ms) | {:.2} / {:.2} | {:.2} / {:.2} | p99 {:.2}x |",
                a.writers, a.p50_ms, a.p99_ms, b.p50_ms, b.p99_ms, a.p99_ms / b.p99_ms
            );
        }
        println!(
            "| range of 10,000 keys, median (ms) | {:.1} | {:.1} | {:.2}x |",
            e.range_ms, x.range_ms, e.range_ms / x.range_ms
        );
        println!("| embedded reopen, {revisions} revisions, {file_mb:.0} MB: verify + index / index only (ms) | {reopen_ms:.0} / {index_ms:.0} | | |");
        println!(
            "| watch delivery p50 / p99, 100 watchers (ms) | {:.2} / {:.2} | {:.2} / {:.2} | p99 {:.2}x |",
            e.watch_p50_ms, e.watch_p99_ms, x.watch_p50_ms, x.watch_p99_ms, e.watch_p99_ms / x.watch_p99_ms
        );
        Ok(())
    })
}
