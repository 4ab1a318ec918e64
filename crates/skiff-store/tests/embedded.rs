//! What only the embedded backend promises: restarts keep everything, a slow watcher is cut
//! off rather than silently skipped, a damaged file is refused at open, and the file stays
//! bounded under churn because compaction's space is reused.

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use skiff_store::conformance::next_event;
use skiff_store::embedded::{DB_FILE, WAL_FILE};
use skiff_store::{EmbeddedConfig, EmbeddedStore, Error, EventKind, Store};

fn config(dir: &std::path::Path) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir);
    config.compaction_interval = None;
    config
}

fn v(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_revision_and_history() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (snapshot, current, compacted, before) = {
        let s = EmbeddedStore::open(config(dir.path()))?;
        for i in 0..200 {
            s.create(&format!("/k/{i:03}"), Bytes::from(vec![b'a'; 300 + i]))
                .await?;
        }
        for i in (0..200).step_by(3) {
            let key = format!("/k/{i:03}");
            let kv = s.get(&key).await?.context("missing")?;
            s.update(&key, v(&format!("updated {i}")), kv.mod_revision)
                .await?;
        }
        let compacted = s.current_revision().await?;
        for i in (0..200).step_by(5) {
            s.delete(&format!("/k/{i:03}"), None).await?;
        }
        let snapshot = s.current_revision().await?;
        s.create("/k/new", v("new")).await?;
        // A large compaction, dropped right away: its disk work may be cut short, and the
        // next open must finish it.
        s.compact(compacted).await?;
        let before = s.range("/", None, 0, None).await?;
        (snapshot, s.current_revision().await?, compacted, before)
    };
    let s = EmbeddedStore::open(config(dir.path()))?;
    ensure!(
        s.current_revision().await? == current,
        "revision counter lost"
    );
    ensure!(s.compacted_revision().await? == compacted);
    ensure!(
        s.range("/", None, 0, None).await? == before,
        "data changed across restart"
    );
    let at = s.range("/k/", None, 0, Some(snapshot)).await?;
    ensure!(at.kvs.len() == 200 - 40);
    // History after the compacted revision is still watchable.
    let mut w = s.watch("/k/", snapshot).await?;
    let ev = next_event(&mut w).await?;
    ensure!(ev.kv.key == "/k/new" && ev.revision() == current);
    ensure!(matches!(
        s.watch("/k/", compacted - 2).await,
        Err(Error::Compacted { .. })
    ));
    // The counter goes on where it stopped.
    ensure!(s.create("/after", v("x")).await? == current + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_cut_off_not_skipped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = config(dir.path());
    cfg.watch_buffer = 8;
    let s = EmbeddedStore::open(cfg)?;
    let from = s.current_revision().await?;
    let mut slow = s.watch("/", from).await?;
    let mut fast = s.watch("/", from).await?;
    let mut fast_seen = Vec::new();
    for i in 0..50 {
        s.create(&format!("/k{i}"), v("x")).await?;
        fast_seen.push(next_event(&mut fast).await?.revision());
    }
    ensure!(
        fast_seen.len() == 50,
        "a watcher that keeps up sees everything"
    );
    let mut delivered = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await? {
            Some(Ok(ev)) => delivered.push(ev.revision()),
            Some(Err(Error::WatcherTooSlow { buffer })) => {
                ensure!(buffer == 8);
                break;
            }
            other => bail!("slow watcher: {other:?}"),
        }
    }
    // What it got before the cut is a gapless prefix of the history.
    ensure!(
        delivered == fast_seen[..delivered.len()],
        "slow watcher skipped events"
    );
    ensure!(delivered.len() <= 8);
    ensure!(
        slow.next().await.is_none(),
        "stream goes on after the error"
    );
    // Watching again from the last revision seen resumes without loss.
    let mut again = s
        .watch("/", delivered.last().copied().unwrap_or(from))
        .await?;
    ensure!(next_event(&mut again).await?.revision() == fast_seen[delivered.len()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_long_history_then_goes_live() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = EmbeddedStore::open(config(dir.path()))?;
    let from = s.current_revision().await?;
    // More than one replay chunk of history.
    for i in 0..3000 {
        s.create(&format!("/h/{i}"), v("x")).await?;
    }
    let mut w = s.watch("/h/", from).await?;
    let live = s.create("/h/live", v("live")).await?;
    for i in 0..3000 {
        let ev = next_event(&mut w).await?;
        ensure!(ev.revision() == from + 1 + i && ev.kind == EventKind::Put);
    }
    ensure!(next_event(&mut w).await?.revision() == live);
    Ok(())
}

/// A power cut takes from redb's file every write after its last durable commit (the
/// writer commits batches to redb without syncing), but not from the write-ahead log, which
/// is synced before each write is acknowledged: the next open writes them back. Simulated by
/// putting back redb's file as it was at a checkpoint, beside the log as it was synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_the_last_checkpoint_are_replayed_from_the_log() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db_path, wal_path) = (dir.path().join(DB_FILE), dir.path().join(WAL_FILE));
    let mut cfg = config(dir.path());
    cfg.checkpoint_interval = None;
    drop(EmbeddedStore::open(cfg.clone())?);
    let empty_db = std::fs::read(&db_path)?;
    // Durable in redb itself: closing makes a checkpoint.
    let checkpointed = {
        let s = EmbeddedStore::open(cfg.clone())?;
        for i in 0..50 {
            s.create(&format!("/a/{i:02}"), v(&format!("a{i}"))).await?;
        }
        s.current_revision().await?
    };
    ensure!(
        skiff_store::embedded::wal_records_in(dir.path())? == 0,
        "the log outlived a checkpoint"
    );
    let durable_db = std::fs::read(&db_path)?;
    // Acknowledged, and held only by the log until the store closes.
    let (wal, before, current) = {
        let s = EmbeddedStore::open(cfg.clone())?;
        for i in 0..50 {
            s.create(&format!("/b/{i:02}"), Bytes::from(vec![b'b'; 100 + 40 * i]))
                .await?;
        }
        for i in (0..50).step_by(4) {
            let key = format!("/a/{i:02}");
            let kv = s.get(&key).await?.context("missing")?;
            s.update(&key, v(&format!("a{i} again")), kv.mod_revision)
                .await?;
        }
        for i in (1..50).step_by(7) {
            s.delete(&format!("/a/{i:02}"), None).await?;
        }
        ensure!(
            skiff_store::embedded::wal_records_in(dir.path())? > 0,
            "the log holds nothing before a checkpoint"
        );
        let wal = std::fs::read(&wal_path)?;
        (
            wal,
            s.range("/", None, 0, None).await?,
            s.current_revision().await?,
        )
    };

    // The power cut, and bytes past the log's zero-filled space (torn frames at the log's
    // end are the unit tests' in wal.rs).
    std::fs::write(&db_path, &durable_db)?;
    let mut torn = wal.clone();
    torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
    std::fs::write(&wal_path, &torn)?;
    {
        let s = EmbeddedStore::open(cfg.clone())?;
        ensure!(
            s.current_revision().await? == current,
            "revision counter lost"
        );
        ensure!(
            s.range("/", None, 0, None).await? == before,
            "acknowledged writes lost"
        );
        // Their history is there too, with previous values.
        let mut w = s.watch("/a/", checkpointed).await?;
        let ev = next_event(&mut w).await?;
        ensure!(ev.kv.key == "/a/00" && ev.kv.value == v("a0 again"));
        ensure!(ev.prev_kv.context("prev")?.value == v("a0"));
        ensure!(s.create("/after", v("x")).await? == current + 1);
    }
    // A log that does not follow on from redb's file is refused, naming the log.
    std::fs::write(&db_path, &empty_db)?;
    std::fs::write(&wal_path, &wal)?;
    match open_error(dir.path())? {
        Error::Corrupted { path, detail } => {
            ensure!(path.contains(WAL_FILE), "{path}: {detail}")
        }
        other => bail!("expected Corrupted, got {other}"),
    }
    Ok(())
}

async fn write_some(dir: &std::path::Path) -> Result<()> {
    let s = EmbeddedStore::open(config(dir))?;
    for i in 0..400 {
        s.create(&format!("/k/{i}"), Bytes::from(vec![b'z'; 2000]))
            .await?;
    }
    Ok(())
}

fn open_error(dir: &std::path::Path) -> Result<Error> {
    match EmbeddedStore::open(config(dir)) {
        Ok(_) => bail!("a damaged file opened"),
        Err(e) => Ok(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_file_is_refused_at_open_naming_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_some(dir.path()).await?;
    let path = dir.path().join(DB_FILE);
    let len = std::fs::metadata(&path)?.len();
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
        // Scribble over every page past the header: whatever redb reads is damaged.
        let mut offset = 8192;
        while offset + 64 < len {
            f.seek(SeekFrom::Start(offset))?;
            f.write_all(&[0x5a; 64])?;
            offset += 4096;
        }
        f.sync_all()?;
    }
    match open_error(dir.path())? {
        Error::Corrupted { path: named, .. } => ensure!(named.contains(DB_FILE), "{named}"),
        other => bail!("expected Corrupted, got {other}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_file_is_refused_at_open_naming_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_some(dir.path()).await?;
    let path = dir.path().join(DB_FILE);
    let len = std::fs::metadata(&path)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(len / 2)?;
    let e = open_error(dir.path())?;
    ensure!(
        matches!(&e, Error::Corrupted { path, .. } if path.contains(DB_FILE)),
        "expected Corrupted naming the file, got {e}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_file_is_refused_at_open() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(DB_FILE), vec![b'#'; 100_000])?;
    let e = open_error(dir.path())?;
    ensure!(
        matches!(&e, Error::Corrupted { .. }),
        "expected Corrupted, got {e}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_is_refused_while_in_use() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let first = EmbeddedStore::open(config(dir.path()))?;
    match EmbeddedStore::open(config(dir.path())) {
        Err(Error::Locked { path }) => ensure!(path.contains(DB_FILE)),
        Err(e) => bail!("expected Locked, got {e}"),
        Ok(_) => bail!("opened twice"),
    }
    drop(first);
    EmbeddedStore::open(config(dir.path()))?;
    Ok(())
}

/// Under steady churn with automatic compaction, the file stops growing: compaction frees
/// pages and later writes reuse them (k3s#10619, kine#607 are the counterexample).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_size_stays_bounded_under_churn() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = EmbeddedConfig::new(dir.path());
    cfg.min_history = 1000;
    cfg.min_history_age = Duration::ZERO;
    cfg.compaction_interval = Some(Duration::from_millis(20));
    let s = EmbeddedStore::open(cfg)?;
    let path = dir.path().join(DB_FILE);
    let keys = 100;
    let value = Bytes::from(vec![b'c'; 4096]);
    let mut revs = vec![0; keys];
    let mut sizes = Vec::new();
    for round in 0..120 {
        // Each round's writes go in together (one group commit).
        let writes = revs.iter().enumerate().map(|(k, rev)| {
            let (s, value, key) = (&s, value.clone(), format!("/churn/{k}"));
            async move {
                if round == 0 {
                    s.create(&key, value).await
                } else {
                    s.update(&key, value, *rev).await
                }
            }
        });
        revs = futures::future::try_join_all(writes).await?;
        // Let automatic compaction catch up (bounded wait) before measuring.
        let target = s.current_revision().await? - 1000 - keys as i64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.compacted_revision().await? < target {
            ensure!(
                Instant::now() < deadline,
                "automatic compaction did not run"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sizes.push(std::fs::metadata(&path)?.len());
    }
    let written = 120 * keys as u64 * value.len() as u64;
    let at_30 = sizes[29];
    let last = *sizes.last().context("no sizes")?;
    eprintln!("file size after 30 rounds: {at_30}, after 120: {last}, bytes written: {written}");
    ensure!(
        last <= at_30 + at_30 / 2,
        "file kept growing: {at_30} -> {last}"
    );
    // Without compaction the file would hold everything written (and more).
    ensure!(
        last < written / 2,
        "file holds most of what was written: {last} of {written}"
    );
    ensure!(s.range("/churn/", None, 0, None).await?.kvs.len() == keys);
    Ok(())
}
