//! The write-ahead log in front of redb: what makes a write durable.
//!
//! A durable redb commit writes every B-tree page the commit touched (about ten 4 KiB pages
//! for one small write) and syncs them; on a slow disk that is 1 to 1.5 ms, and it was most
//! of the latency of a single write. So the writer commits each batch to redb *without*
//! syncing (`Durability::None`: visible to readers, gone after a power cut) and makes it
//! durable by writing the batch's records to this log and syncing that instead: one
//! sequential write of the bytes that changed. From time to time (a checkpoint) the writer
//! makes one durable redb commit, which persists every earlier non-durable one, and empties
//! the log. At open, the records the log holds past redb's last durable revision are
//! written into redb again.
//!
//! The file is reused, never truncated: emptying the log starts a new *generation*, and the
//! next frames overwrite the old ones from the start. A sync then writes only data to blocks
//! the file already has (no size or block change for the filesystem's journal to commit),
//! about half the latency of a sync after an append on ext4; and a checkpoint has no
//! truncation to wait for. The file grows in zero-filled steps ([`GROW`]), never with holes,
//! up to the most a generation held (a checkpoint comes at 16 MiB at the latest).
//!
//! Format: a file header `[8 bytes "skiffwal"][u64 generation]`, then frames, one per
//! committed batch, `[u32 payload length][u32 CRC-32 of generation and payload][u64
//! generation][payload]` (little-endian), the payload being the batch's records `[u64
//! revision][u32 n][n bytes: log header][u32 m][m bytes: value]`. The log is the run of
//! frames after the header that carry the header's generation and pass their checksum; it
//! ends at the first that does not: a frame of an older generation (already in redb), the
//! zeros of unused space, or a torn frame (a crash while it was being written; it was never
//! acknowledged, the sync had not returned).
//!
//! Why generations cannot be mixed up: emptying the log writes the header with the next
//! generation without a sync; the first frame's sync persists both. A crash may leave the
//! header one generation behind frames the kernel wrote back on its own (never
//! acknowledged): the first emptying after an open therefore skips a generation and syncs
//! the header, so no frame on disk can carry the generation being written.
//!
//! A log written by skiff before generations (no file header: frames of `[u32 length][u32
//! CRC-32][payload]` from offset 0) is read the same way, and rewritten in this format when
//! first emptied.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::Revision;

/// The file name of the log inside the store's directory.
pub const WAL_FILE: &str = "skiff.wal";

const MAGIC: &[u8; 8] = b"skiffwal";
/// Bytes of the file header: the magic and the generation.
const FILE_HEADER: u64 = 16;
/// Bytes of a frame header: length, checksum, generation.
const FRAME_HEADER: usize = 16;
/// Bytes of a frame header in a log from before generations: length, checksum.
const LEGACY_FRAME_HEADER: usize = 8;
/// The file grows by at least this much at a time, written as zeros.
const GROW: u64 = 1 << 20;

/// One write as the log keeps it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WalRecord {
    pub rev: Revision,
    /// The `log` table record of the write (see `Header`).
    pub header: Vec<u8>,
    /// The value a put stored (empty for a delete).
    pub value: Vec<u8>,
}

/// The log file.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// The generation of the frames being written (the file header's).
    generation: u64,
    /// Where the next frame goes: the end of the log.
    end: u64,
    /// Bytes the file has, all written (frames, old frames or zeros; no holes).
    allocated: u64,
    /// What the next emptying must do beyond starting a generation.
    next_reset: Reset,
    /// The frame being built by [`Wal::stage`], written by [`Wal::write_staged`].
    staged: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reset {
    /// The next generation, header written without a sync.
    Next,
    /// The first emptying after an open: skip a generation and sync the header.
    AfterOpen,
    /// A log from before generations (or a new file): rewrite the file with a header.
    Rewrite,
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
    /// Opens (or creates) the log in `dir` and returns it with the records of its frames,
    /// oldest first. Nothing on disk changes until [`Wal::reset`], which the caller makes
    /// once the records are durable in redb.
    pub fn open(dir: &Path) -> Result<(Self, Vec<WalRecord>), WalError> {
        let path = dir.join(WAL_FILE);
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if created {
            // The file's directory entry must survive a power cut too.
            File::open(dir)?.sync_all()?;
        }
        let allocated = file.metadata()?.len();
        let mut header = [0u8; FILE_HEADER as usize];
        let has_header = file.read_exact_at(&mut header, 0).is_ok() && &header[..8] == MAGIC;
        let (generation, records, end, next_reset) = if has_header {
            let generation = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
            let (records, end) = read_frames(&file, FILE_HEADER, allocated, Some(generation))?;
            (generation, records, end, Reset::AfterOpen)
        } else {
            // A new file, or a log from before generations.
            let (records, end) = read_frames(&file, 0, allocated, None)?;
            (0, records, end, Reset::Rewrite)
        };
        Ok((
            Self {
                file,
                path,
                generation,
                end,
                allocated,
                next_reset,
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
        self.end.saturating_sub(FILE_HEADER)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Writes the frame being built at the end of the log and syncs it: once this returns,
    /// its writes survive a crash. On an error the log's state on disk is unknown and the
    /// caller must stop.
    pub fn write_staged(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        if self.next_reset == Reset::Rewrite {
            // Only a log being replayed may be in the old format; it is emptied first.
            return Err(io::Error::other(
                "the write-ahead log must be emptied before it is written",
            ));
        }
        let payload_len = self.staged.len() - FRAME_HEADER;
        let len = u32::try_from(payload_len)
            .map_err(|_| io::Error::other("a batch too large for one log frame"))?;
        let generation = self.generation.to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&generation);
        crc.update(&self.staged[FRAME_HEADER..]);
        self.staged[..4].copy_from_slice(&len.to_le_bytes());
        self.staged[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        self.staged[8..FRAME_HEADER].copy_from_slice(&generation);
        let frame_end = self.end + self.staged.len() as u64;
        let result = self
            .file
            .write_all_at(&self.staged, self.end)
            .and_then(|()| self.grow_to(frame_end))
            .and_then(|()| self.file.sync_data());
        self.end = frame_end;
        // Keep a frame-sized buffer around, but not a huge one.
        if self.staged.capacity() > 4 << 20 {
            self.staged = Vec::new();
        } else {
            self.staged.clear();
        }
        result
    }

    /// Zero-fills the file past `written` (the end of what was just written) when that went
    /// beyond what the file had: later frames overwrite blocks that exist.
    fn grow_to(&mut self, written: u64) -> io::Result<()> {
        if written <= self.allocated {
            return Ok(());
        }
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let target = written + GROW;
        let mut at = written;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        self.allocated = target;
        Ok(())
    }

    /// Empties the log, once redb holds everything in it durably: a new generation starts.
    pub fn reset(&mut self) -> io::Result<()> {
        let mut sync = true;
        match self.next_reset {
            Reset::Next => {
                self.generation = self.generation.wrapping_add(1);
                // No sync: the next frame's sync persists the header with it, and until
                // then the old frames are all at revisions redb holds (replay skips those).
                sync = false;
            }
            Reset::AfterOpen => self.generation = self.generation.wrapping_add(2),
            Reset::Rewrite => {
                self.file.set_len(0)?;
                self.allocated = 0;
                self.generation = 1;
            }
        }
        let mut header = [0u8; FILE_HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&self.generation.to_le_bytes());
        self.file.write_all_at(&header, 0)?;
        self.allocated = self.allocated.max(FILE_HEADER);
        if sync {
            self.file.sync_data()?;
        }
        self.end = FILE_HEADER;
        self.next_reset = Reset::Next;
        Ok(())
    }
}

/// How many records the log in `dir` holds: for tests that look at what a store left.
#[cfg(any(test, feature = "testing"))]
pub fn records_in(dir: &Path) -> io::Result<usize> {
    match Wal::open(dir) {
        Ok((_, records)) => Ok(records.len()),
        Err(WalError::Io(e)) => Err(e),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are bounded far below 4 GiB (MAX_KEY_BYTES, MAX_VALUE_BYTES).
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads the frames from `start` of a file of `len` bytes: frames of `generation`, or frames
/// without one (a log from before generations) if `None`. Returns their records and where
/// the log ends (the first frame that is not one of them).
fn read_frames(
    file: &File,
    start: u64,
    len: u64,
    generation: Option<u64>,
) -> Result<(Vec<WalRecord>, u64), WalError> {
    let header_len = if generation.is_some() {
        FRAME_HEADER
    } else {
        LEGACY_FRAME_HEADER
    };
    let mut reader = BufReader::with_capacity(256 << 10, file);
    io::copy(&mut (&mut reader).take(start), &mut io::sink())?;
    let mut records = Vec::new();
    let mut at = start;
    let mut header = [0u8; FRAME_HEADER];
    let mut payload = Vec::new();
    loop {
        if reader.read_exact(&mut header[..header_len]).is_err() {
            break;
        }
        let n = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut hasher = crc32fast::Hasher::new();
        if let Some(want) = generation {
            let got = &header[8..FRAME_HEADER];
            if u64::from_le_bytes(got.try_into().unwrap_or_default()) != want {
                break; // an older frame, or unused space
            }
            hasher.update(got);
        }
        let frame_end = at + header_len as u64 + n;
        if n == 0 || frame_end > len {
            if n > 0 {
                tracing::warn!(offset = at, "the write-ahead log ends in a torn frame (a crash during a write that was never acknowledged); ignoring it");
            }
            break;
        }
        payload.resize(n as usize, 0);
        if reader.read_exact(&mut payload).is_err() {
            break;
        }
        hasher.update(&payload);
        if hasher.finalize() != crc {
            tracing::warn!(offset = at, "the write-ahead log ends in a torn frame (a crash during a write that was never acknowledged); ignoring it");
            break;
        }
        decode_payload(&payload, &mut records).ok_or(WalError::Undecodable { offset: at })?;
        at = frame_end;
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

    /// Opens the log in `dir` and empties it, as the store does once it has replayed it.
    fn open_empty(dir: &Path) -> Wal {
        let (mut wal, _) = Wal::open(dir).expect("open");
        wal.reset().expect("reset");
        wal
    }

    fn read(dir: &Path) -> Vec<Revision> {
        revs(&Wal::open(dir).expect("open").1)
    }

    #[test]
    fn frames_are_read_back_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, records) = Wal::open(dir.path()).expect("open");
        assert!(records.is_empty() && wal.is_empty());
        drop(wal);
        let mut wal = open_empty(dir.path());
        frame(&mut wal, 1..=3);
        let first_end = wal.end as usize;
        frame(&mut wal, 4..=4);
        let (whole, end) = (wal.len(), wal.end as usize);
        drop(wal);

        let (wal, records) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(revs(&records), vec![1, 2, 3, 4]);
        assert_eq!(records[2].header, b"h3");
        assert_eq!(records[2].value, vec![3u8; 3]);
        assert_eq!(wal.len(), whole);
        drop(wal);

        // Every way a crash can cut the last frame short (what follows it is old bytes: the
        // zeros of unused space here), and a flipped bit in it or in its generation.
        let path = dir.path().join(WAL_FILE);
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            bytes[end..].iter().all(|b| *b == 0),
            "space past the log is zeros"
        );
        for cut in first_end + 1..end {
            let mut torn = bytes.clone();
            torn[cut..end].fill(0);
            std::fs::write(&path, &torn).expect("write");
            assert_eq!(read(dir.path()), vec![1, 2, 3], "cut at {cut}");
            // The file as a crash leaves it, shorter.
            std::fs::write(&path, &bytes[..cut]).expect("write");
            assert_eq!(read(dir.path()), vec![1, 2, 3], "file cut at {cut}");
        }
        for at in [end - 1, first_end + 4, first_end + 8] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1;
            std::fs::write(&path, &flipped).expect("write");
            assert_eq!(read(dir.path()), vec![1, 2, 3], "bit flipped at {at}");
        }
    }

    #[test]
    fn an_emptied_log_is_overwritten_in_place_and_old_frames_are_never_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        let mut wal = open_empty(dir.path());
        frame(&mut wal, 1..=40);
        frame(&mut wal, 41..=80);
        let size = std::fs::metadata(&path).expect("stat").len();
        wal.reset().expect("reset");
        assert!(wal.is_empty());
        frame(&mut wal, 81..=81);
        wal.stage(82, b"never written", b"");
        wal.discard_staged();
        drop(wal);
        assert_eq!(read(dir.path()), vec![81]);
        // The file was reused, not truncated or grown.
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), size);

        // Emptied with nothing written since: the old frames are at revisions redb holds.
        let mut wal = open_empty(dir.path());
        frame(&mut wal, 82..=83);
        wal.reset().expect("reset");
        drop(wal);
        assert_eq!(read(dir.path()), Vec::<Revision>::new());
    }

    /// The header of an emptying is written without a sync; a crash may leave it one
    /// generation behind frames the kernel wrote back on its own (never acknowledged). The
    /// first emptying after the open skips that generation, so those frames are never read
    /// as part of the log that follows.
    #[test]
    fn a_header_a_generation_behind_its_frames_is_harmless() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        let mut wal = open_empty(dir.path());
        frame(&mut wal, 1..=2);
        wal.reset().expect("reset");
        let generation = wal.generation;
        // Never acknowledged: the crash came before the syncs returned.
        frame(&mut wal, 3..=3);
        frame(&mut wal, 4..=30);
        drop(wal);
        // The crash: the header still has the generation before.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[8..16].copy_from_slice(&(generation - 1).to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read(dir.path()), Vec::<Revision>::new());

        // After the open (redb is at revision 2), the log goes on with a frame the size of
        // the first unacknowledged one: the second one follows it in the file.
        let mut wal = open_empty(dir.path());
        assert_eq!(wal.generation, generation + 1);
        frame(&mut wal, 3..=3);
        drop(wal);
        assert_eq!(read(dir.path()), vec![3]);
    }

    #[test]
    fn a_log_from_before_generations_is_read_then_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        // Two frames of the old format: [u32 length][u32 CRC-32][payload].
        let mut old = Vec::new();
        for revs in [1..=2, 3..=3] {
            let mut payload = Vec::new();
            for rev in revs {
                payload.extend_from_slice(&(rev as Revision).to_le_bytes());
                put_bytes(&mut payload, format!("h{rev}").as_bytes());
                put_bytes(&mut payload, b"v");
            }
            old.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            old.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            old.extend_from_slice(&payload);
        }
        std::fs::write(&path, &old).expect("write");
        let (mut wal, records) = Wal::open(dir.path()).expect("open");
        assert_eq!(revs(&records), vec![1, 2, 3]);
        assert_eq!(records[0].header, b"h1");
        assert_eq!(records[2].value, b"v");
        wal.reset().expect("reset");
        frame(&mut wal, 4..=4);
        drop(wal);
        assert_eq!(&std::fs::read(&path).expect("read")[..8], MAGIC);
        assert_eq!(read(dir.path()), vec![4]);
    }
}
