//! Reading CRI-format container logs (what `kubectl logs` shows).
//!
//! Each record is `<RFC3339Nano> <stdout|stderr> <F|P> <content>`; `P` (partial) records are
//! joined with the following records of the same stream up to an `F`, into one line.
//! [`read`] selects lines by `since` and `tail` and prints them with or without timestamps;
//! [`follow`] then keeps printing what the monitor appends (the kubelet's `logs -f`) until
//! told to stop. Counterpart: the kubelet's `pkg/kubelet/kuberuntime/logs/logs.go`.
//!
//! Not done: rotated files (`<name>.log.1`, ...), `limitBytes`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One record as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: &'a str,
    pub time: DateTime<FixedOffset>,
    pub stream: Stream,
    pub partial: bool,
    pub content: &'a [u8],
}

/// A line after joining its partial records; `timestamp` is the first record's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub timestamp: String,
    pub time: DateTime<FixedOffset>,
    pub stream: Stream,
    pub content: Vec<u8>,
}

/// What to show.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only the last N lines (`--tail`).
    pub tail: Option<usize>,
    /// Only lines at or after this time (`--since`, `--since-time`).
    pub since: Option<DateTime<FixedOffset>>,
    /// Prefix each line with its timestamp (`--timestamps`).
    pub timestamps: bool,
    /// Only one stream (CRI allows it; kubectl shows both).
    pub stream: Option<Stream>,
}

/// Parses one record (without its newline); `None` for a malformed line, which readers
/// skip, as the kubelet does.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let time = DateTime::parse_from_rfc3339(ts).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        timestamp: ts,
        time,
        stream,
        partial,
        content: parts.next().unwrap_or(b""),
    })
}

/// Joins partial records into lines, a stream at a time.
#[derive(Debug, Default)]
pub struct Joiner {
    stdout: Option<Line>,
    stderr: Option<Line>,
}

impl Joiner {
    /// Feeds one record; returns the line it completes, if any.
    pub fn push(&mut self, r: &Record<'_>) -> Option<Line> {
        let slot = match r.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let line = slot.get_or_insert_with(|| Line {
            timestamp: r.timestamp.to_string(),
            time: r.time,
            stream: r.stream,
            content: Vec::new(),
        });
        line.content.extend_from_slice(r.content);
        if r.partial {
            None
        } else {
            slot.take()
        }
    }
}

/// Every complete line of `bytes` (a log file's content); a trailing unterminated record
/// or unfinished partial line is left out (the monitor is still writing it).
pub fn lines(bytes: &[u8]) -> Vec<Line> {
    let mut joiner = Joiner::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|b| *b == b'\n') {
        if let Some(line) = parse_record(&rest[..i]).and_then(|r| joiner.push(&r)) {
            out.push(line);
        }
        rest = &rest[i + 1..];
    }
    out
}

fn wanted(line: &Line, opts: &Options) -> bool {
    opts.since.is_none_or(|s| line.time >= s) && opts.stream.is_none_or(|s| s == line.stream)
}

/// `line` as `kubectl logs` prints it.
pub fn format(line: &Line, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(line.timestamp.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&line.content);
    out.push(b'\n');
}

/// The selected lines of `all`, formatted.
pub fn render(all: &[Line], opts: &Options) -> Vec<u8> {
    let selected: Vec<&Line> = all.iter().filter(|l| wanted(l, opts)).collect();
    let skip = opts.tail.map_or(0, |n| selected.len().saturating_sub(n));
    let mut out = Vec::new();
    for l in &selected[skip..] {
        format(l, opts.timestamps, &mut out);
    }
    out
}

/// Writes the selected lines of the log at `path` to `out`; returns the file offset read
/// up to (the end of the last complete record), for [`follow`].
pub fn read(path: &Path, opts: &Options, out: &mut dyn Write) -> std::io::Result<u64> {
    let bytes = std::fs::read(path)?;
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    // Bytes of an unfinished partial line are re-read by follow, so stop before them.
    let all = lines(&bytes[..end]);
    out.write_all(&render(&all, opts))?;
    Ok(complete_lines_end(&bytes[..end]) as u64)
}

/// The offset just after the last record that ended a line (an `F`), so that a partial line
/// not yet finished is read again, whole, when it is.
fn complete_lines_end(bytes: &[u8]) -> usize {
    let mut end = 0;
    let mut pos = 0;
    let mut open = [false, false];
    for chunk in bytes.split_inclusive(|b| *b == b'\n') {
        pos += chunk.len();
        if let Some(r) = parse_record(chunk.strip_suffix(b"\n").unwrap_or(chunk)) {
            let i = (r.stream == Stream::Stderr) as usize;
            open[i] = r.partial;
        }
        if !open[0] && !open[1] {
            end = pos;
        }
    }
    end
}

/// [`read`] and then everything appended (since and stream still apply; tail only to what
/// was there), polling every `interval`, until `stop()` says so after a poll that found
/// nothing new. `stop` is how the caller ends it: the container exited, the client left.
pub fn follow(
    path: &Path,
    opts: &Options,
    out: &mut dyn Write,
    interval: Duration,
    stop: &mut dyn FnMut() -> bool,
) -> std::io::Result<()> {
    let offset = read(path, opts, out)?;
    out.flush()?;
    let rest_opts = Options {
        tail: None,
        ..opts.clone()
    };
    let mut file = File::open(path)?;
    let mut pending: Vec<u8> = Vec::new();
    let mut joiner = Joiner::default();
    file.seek(SeekFrom::Start(offset))?;
    loop {
        let mut buf = Vec::new();
        let n = file.read_to_end(&mut buf)?;
        if n == 0 {
            if stop() {
                return Ok(());
            }
            std::thread::sleep(interval);
            continue;
        }
        pending.extend_from_slice(&buf);
        let mut printed = Vec::new();
        let mut consumed = 0;
        while let Some(i) = pending[consumed..].iter().position(|b| *b == b'\n') {
            let rec = &pending[consumed..consumed + i];
            if let Some(line) = parse_record(rec).and_then(|r| joiner.push(&r)) {
                if wanted(&line, &rest_opts) {
                    format(&line, rest_opts.timestamps, &mut printed);
                }
            }
            consumed += i + 1;
        }
        pending.drain(..consumed);
        if !printed.is_empty() {
            out.write_all(&printed)?;
            out.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-01-01T00:00:01.000000000Z stdout F one
2026-01-01T00:00:02.000000000Z stderr P tw
2026-01-01T00:00:02.500000000Z stdout F three
2026-01-01T00:00:03.000000000Z stderr F o
garbage line
2026-01-01T00:00:04.000000000Z stdout F 
2026-01-01T00:00:05.000000000Z stdout F four with  spaces
2026-01-01T00:00:06.000000000Z stdout P unfinished";

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).expect("utf8")
    }

    #[test]
    fn partial_records_join_per_stream_and_bad_lines_are_skipped() {
        let all = lines(LOG.as_bytes());
        let got: Vec<(Stream, String)> = all
            .iter()
            .map(|l| (l.stream, String::from_utf8_lossy(&l.content).into_owned()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "one".into()),
                (Stream::Stdout, "three".into()),
                (Stream::Stderr, "two".into()),
                (Stream::Stdout, "".into()),
                (Stream::Stdout, "four with  spaces".into()),
            ]
        );
        assert_eq!(all[2].timestamp, "2026-01-01T00:00:02.000000000Z");
    }

    #[test]
    fn tail_since_timestamps_and_stream() {
        let all = lines(LOG.as_bytes());
        let tail2 = render(
            &all,
            &Options {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(text(tail2), "\nfour with  spaces\n");
        let since = render(
            &all,
            &Options {
                since: DateTime::parse_from_rfc3339("2026-01-01T00:00:02.5Z").ok(),
                timestamps: true,
                ..Default::default()
            },
        );
        assert_eq!(
            text(since),
            "2026-01-01T00:00:02.500000000Z three\n2026-01-01T00:00:04.000000000Z \n2026-01-01T00:00:05.000000000Z four with  spaces\n"
        );
        let stderr = render(
            &all,
            &Options {
                stream: Some(Stream::Stderr),
                ..Default::default()
            },
        );
        assert_eq!(text(stderr), "two\n");
        assert_eq!(
            text(render(
                &all,
                &Options {
                    tail: Some(0),
                    ..Default::default()
                }
            )),
            ""
        );
    }

    #[test]
    fn follow_prints_appended_lines_including_a_partial_line_finished_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        std::fs::write(
            &path,
            "2026-01-01T00:00:01Z stdout F a\n2026-01-01T00:00:02Z stdout P b1\n",
        )
        .expect("write");
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&writer_path)
                .expect("open");
            std::thread::sleep(Duration::from_millis(50));
            f.write_all(b"2026-01-01T00:00:03Z stdout F b2\n")
                .expect("write");
            std::thread::sleep(Duration::from_millis(50));
            f.write_all(b"2026-01-01T00:00:04Z stderr F c\n")
                .expect("write");
        });
        let mut out = Vec::new();
        let mut polls = 0;
        let mut seen_all = false;
        follow(
            &path,
            &Options {
                tail: Some(1),
                ..Default::default()
            },
            &mut out,
            Duration::from_millis(10),
            &mut || {
                polls += 1;
                // Stop once the writer is done and a poll found nothing new, or after ~5 s.
                let done = writer.is_finished();
                let stop = (done && seen_all) || polls > 500;
                seen_all = done;
                stop
            },
        )
        .expect("follow");
        assert_eq!(text(out), "a\nb1b2\nc\n");
    }
}
