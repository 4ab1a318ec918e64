//! Crash safety of the embedded store: a writer process is killed with SIGKILL in the middle
//! of a concurrent load, three times over on the same data dir. After each kill the store
//! reopens, every write that was acknowledged is there at the revision it was acknowledged
//! with, every stored value is whole (its checksum matches), and the revisions have no gaps.
//!
//! The writer is this test binary run again with `SKIFF_CRASH_CHILD_DIR` set: it then runs
//! `crash_child`, which writes until killed and prints one `ACK` line per acknowledged write.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use skiff_store::conformance::next_event;
use skiff_store::{EmbeddedConfig, EmbeddedStore, Store};

const CHILD_ENV: &str = "SKIFF_CRASH_CHILD_DIR";
const WRITERS: usize = 16;
const KEYS_PER_WRITER: usize = 40;

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// A value that proves itself whole: `key|seq|padding|checksum-of-the-rest`.
fn make_value(key: &str, seq: u64) -> Bytes {
    let pad = 64 + (seq as usize * 131) % 3000;
    let body = format!("{key}|{seq}|{}", "p".repeat(pad));
    let sum = checksum(body.as_bytes());
    Bytes::from(format!("{body}|{sum:016x}"))
}

fn value_is_whole(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    let Some((body, sum)) = text.rsplit_once('|') else {
        return false;
    };
    u64::from_str_radix(sum, 16).ok() == Some(checksum(body.as_bytes()))
}

fn child_config(dir: &str) -> EmbeddedConfig {
    let mut config = EmbeddedConfig::new(dir);
    config.compaction_interval = None; // every revision stays checkable
    config
}

/// The writer process. Does nothing unless run by `writes_survive_kill_9`.
#[test]
fn crash_child() -> Result<()> {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = std::sync::Arc::new(EmbeddedStore::open(child_config(&dir))?);
        let tasks = (0..WRITERS).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seq = 0u64;
                loop {
                    seq += 1;
                    let key = format!("/crash/{w:02}/{:03}", seq as usize % KEYS_PER_WRITER);
                    let value = make_value(&key, seq);
                    let rev = match store.get(&key).await? {
                        Some(kv) if seq.is_multiple_of(7) => {
                            store.delete(&key, Some(kv.mod_revision)).await?.0
                        }
                        Some(kv) => store.update(&key, value.clone(), kv.mod_revision).await?,
                        None => store.create(&key, value.clone()).await?,
                    };
                    let line = format!("ACK {key} {rev} {:016x}\n", checksum(&value));
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes())?;
                    out.flush()?;
                }
                #[allow(unreachable_code)]
                Ok::<(), anyhow::Error>(())
            })
        });
        for t in futures::future::join_all(tasks).await {
            t??;
        }
        Ok(())
    })
}

struct Ack {
    key: String,
    rev: i64,
    sum: u64,
    deleted: bool,
}

/// Runs the writer until it has acknowledged `acks` writes (or 20 s passed), then SIGKILLs it.
fn run_and_kill(dir: &str, acks: usize) -> Result<Vec<Ack>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines.len() < acks && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.starts_with("ACK ") => lines.push(line),
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    let _ = reader.join();
    // Lines already written before the kill are acknowledgements too.
    lines.extend(rx.try_iter().filter(|l| l.starts_with("ACK ")));
    ensure!(!lines.is_empty(), "the writer acknowledged nothing");
    lines
        .iter()
        .map(|line| {
            let parts: Vec<_> = line.split(' ').collect();
            ensure!(parts.len() == 4, "bad line {line:?}");
            Ok(Ack {
                key: parts[1].to_owned(),
                rev: parts[2].parse()?,
                sum: u64::from_str_radix(parts[3], 16)?,
                deleted: false,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir_s = dir.path().to_str().context("path")?.to_owned();
    let mut total_acks = 0;
    for round in 0..3 {
        let mut acks = run_and_kill(&dir_s, 1500)?;
        total_acks += acks.len();
        let store = EmbeddedStore::open(child_config(&dir_s))?;
        let current = store.current_revision().await?;

        // Every revision from 1 to current is present, in order, and every value is whole.
        let mut w = store.watch("/", 0).await?;
        let mut history: HashMap<i64, (String, Option<Bytes>)> = HashMap::new();
        for expected in 1..=current {
            let ev = next_event(&mut w).await?;
            ensure!(
                ev.revision() == expected,
                "round {round}: revision {expected} missing"
            );
            let value = match ev.kind {
                skiff_store::EventKind::Put => {
                    ensure!(
                        value_is_whole(&ev.kv.value),
                        "round {round}: revision {expected} is half-written"
                    );
                    Some(ev.kv.value)
                }
                skiff_store::EventKind::Delete => None,
            };
            history.insert(expected, (ev.kv.key, value));
        }

        // Every acknowledged write is there, at its revision, with its value.
        for ack in acks.iter_mut() {
            let Some((key, value)) = history.get(&ack.rev) else {
                bail!(
                    "round {round}: acknowledged revision {} of {} is lost (current {current})",
                    ack.rev,
                    ack.key
                );
            };
            ensure!(
                *key == ack.key,
                "round {round}: revision {} holds {key}, not {}",
                ack.rev,
                ack.key
            );
            match value {
                Some(value) => ensure!(
                    checksum(value) == ack.sum,
                    "round {round}: revision {} has another value",
                    ack.rev
                ),
                None => ack.deleted = true,
            }
        }
        // And the current state of every key is whole.
        for kv in store.range("/crash/", None, 0, None).await?.kvs {
            ensure!(
                value_is_whole(&kv.value),
                "round {round}: {} is half-written",
                kv.key
            );
        }
        eprintln!(
            "round {round}: {} acknowledged ({} deletes), store at revision {current}",
            acks.len(),
            acks.iter().filter(|a| a.deleted).count()
        );
    }
    ensure!(total_acks >= 3);
    Ok(())
}
