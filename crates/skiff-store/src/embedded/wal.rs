//! The write-ahead log in front of redb: what makes a write durable.
//!
//! A durable redb commit writes every B-tree page the commit touched (about ten 4 KiB pages
//! for one small write) and syncs them; on a slow disk that is 1 to 1.5 ms, and it was most
//! of the latency of a single write. So the writer commits each batch to redb *without*
//! syncing (`Durability::None`: visible to readers, gone after a power cut) and makes it
//! durable by appending the batch's records to this log and syncing that instead: one
//! sequential write of the bytes that changed. From time to time (a checkpoint) the writer
//! makes one durable redb commit, which persists every earlier non-durable one, and empties
//! the log. At open, the records the log holds past redb's last durable revision are
//! written into redb again.
//!
//! Format: a sequence of frames, one per committed batch,
//! `[u32 payload length][u32 CRC-32 of the payload][payload]` (little-endian), the payload
//! being the batch's records `[u64 revision][u32 n][n bytes: log header][u32 m][m bytes:
//! value]`. A crash while a frame is being written leaves a torn tail: a frame that is short
//! or fails its checksum. Such a frame was never acknowledged (the sync had not returned),
//! so it and everything after it is dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::Revision;

/// The file name of the log inside the store's directory.
pub const WAL_FILE: &str = "skiff.wal";

const FRAME_HEADER: usize = 8;

/// One write as the log keeps it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WalRecord {
    pub rev: Revision,
    /// The `log` table record of the write (see `Header`).
    pub header: Vec<u8>,
    /// The value a put stored (empty for a delete).
    pub value: Vec<u8>,
}

/// The log file, open for appending.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// Bytes in the file (all of them whole frames).
    len: u64,
    /// The frame being built by [`Wal::stage`], written by [`Wal::write_staged`].
    staged: Vec<u8>,
}

/// Why the log could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("a frame at offset {offset} passed its checksum but cannot be decoded")]
    Undecodable { offset: u64 },
}

impl Wal {
    /// Opens (or creates) the log in `dir` and returns it with the records of its whole
    /// frames, oldest first. A torn tail is cut off the file.
    pub fn open(dir: &Path) -> Result<(Self, Vec<WalRecord>), WalError> {
        let path = dir.join(WAL_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if created {
            // The file's directory entry must survive a power cut too.
            File::open(dir)?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, whole) = parse(&bytes)?;
        if whole < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - whole,
                "the write-ahead log ends in a torn frame (a crash during a write that was never acknowledged); dropping it"
            );
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(whole as u64))?;
        Ok((
            Self {
                file,
                path,
                len: whole as u64,
                staged: Vec::new(),
            },
            records,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the log holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds one write to the frame being built.
    pub fn stage(&mut self, rev: Revision, header: &[u8], value: &[u8]) {
        if self.staged.is_empty() {
            self.staged.extend_from_slice(&[0; FRAME_HEADER]);
        }
        self.staged.extend_from_slice(&rev.to_le_bytes());
        put_bytes(&mut self.staged, header);
        put_bytes(&mut self.staged, value);
    }

    /// Forgets the frame being built.
    pub fn discard_staged(&mut self) {
        self.staged.clear();
    }

    /// Appends the frame being built and syncs it: once this returns, its writes survive a
    /// crash. On an error the log's state on disk is unknown and the caller must stop.
    pub fn write_staged(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let payload_len = self.staged.len() - FRAME_HEADER;
        let len = u32::try_from(payload_len)
            .map_err(|_| io::Error::other("a batch too large for one log frame"))?;
        let crc = crc32fast::hash(&self.staged[FRAME_HEADER..]);
        self.staged[..4].copy_from_slice(&len.to_le_bytes());
        self.staged[4..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
        let result = self
            .file
            .write_all(&self.staged)
            .and_then(|()| self.file.sync_data());
        self.len += self.staged.len() as u64;
        // Keep a frame-sized buffer around, but not a huge one.
        if self.staged.capacity() > 4 << 20 {
            self.staged = Vec::new();
        } else {
            self.staged.clear();
        }
        result
    }

    /// Empties the log, once redb holds everything in it durably.
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        // No sync needed: frames left behind by a lost truncation are all at revisions redb
        // already holds, and replay skips those.
        self.len = 0;
        Ok(())
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are bounded far below 4 GiB (MAX_KEY_BYTES, MAX_VALUE_BYTES).
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads the whole frames at the start of `bytes`: their records, and how many bytes they
/// take (the rest is a torn tail).
fn parse(bytes: &[u8]) -> Result<(Vec<WalRecord>, usize), WalError> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        decode_payload(payload, &mut records).ok_or(WalError::Undecodable { offset: at as u64 })?;
        at += FRAME_HEADER + len;
    }
    Ok((records, at))
}

fn decode_payload(mut payload: &[u8], out: &mut Vec<WalRecord>) -> Option<()> {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (input.get(..n)?, input.get(n..)?);
        *input = rest;
        Some(head)
    }
    fn take_bytes(input: &mut &[u8]) -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(take(input, 4)?.try_into().ok()?) as usize;
        Some(take(input, n)?.to_vec())
    }
    while !payload.is_empty() {
        let rev = i64::from_le_bytes(take(&mut payload, 8)?.try_into().ok()?);
        let header = take_bytes(&mut payload)?;
        let value = take_bytes(&mut payload)?;
        out.push(WalRecord { rev, header, value });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(wal: &mut Wal, revs: std::ops::RangeInclusive<Revision>) {
        for rev in revs {
            wal.stage(
                rev,
                format!("h{rev}").as_bytes(),
                &vec![rev as u8; rev as usize],
            );
        }
        wal.write_staged().expect("write");
    }

    fn revs(records: &[WalRecord]) -> Vec<Revision> {
        records.iter().map(|r| r.rev).collect()
    }

    #[test]
    fn frames_are_read_back_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, records) = Wal::open(dir.path()).expect("open");
        assert!(records.is_empty() && wal.is_empty());
        frame(&mut wal, 1..=3);
        frame(&mut wal, 4..=4);
        let whole = wal.len();
        drop(wal);

        let (wal, records) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(revs(&records), vec![1, 2, 3, 4]);
        assert_eq!(records[2].header, b"h3");
        assert_eq!(records[2].value, vec![3u8; 3]);
        assert_eq!(wal.len(), whole);
        drop(wal);

        // Every way a crash can cut the last frame short, and a flipped bit in it.
        let path = dir.path().join(WAL_FILE);
        let bytes = std::fs::read(&path).expect("read");
        let first_frame = {
            let (mut wal, _) = Wal::open(tempfile::tempdir().expect("t").path()).expect("o");
            frame(&mut wal, 1..=3);
            wal.len() as usize
        };
        for cut in first_frame + 1..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let (wal, records) = Wal::open(dir.path()).expect("open torn");
            assert_eq!(revs(&records), vec![1, 2, 3], "cut at {cut}");
            assert_eq!(wal.len() as usize, first_frame);
            assert_eq!(
                std::fs::metadata(&path).expect("stat").len() as usize,
                first_frame
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).expect("write");
        let (_, records) = Wal::open(dir.path()).expect("open flipped");
        assert_eq!(revs(&records), vec![1, 2, 3]);
    }

    #[test]
    fn reset_empties_the_log_and_appending_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(dir.path()).expect("open");
        frame(&mut wal, 1..=2);
        wal.reset().expect("reset");
        assert!(wal.is_empty());
        frame(&mut wal, 3..=3);
        wal.stage(4, b"never written", b"");
        wal.discard_staged();
        drop(wal);
        let (_, records) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(revs(&records), vec![3]);
    }
}
