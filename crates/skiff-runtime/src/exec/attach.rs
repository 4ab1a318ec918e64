//! Attach: the container's own stdio as its monitor holds it (containerd's
//! `container_attach.go` over the shim's FIFOs; here the monitor writes the CRI log and
//! holds a stdin FIFO).
//!
//! Output is the CRI log followed from its end when attaching: the message bytes only,
//! stdout records to stdout and stderr records to stderr, an `F` record with its newline,
//! a `P` record without. A log rotated away (the monitor reopens the path on SIGUSR1) is
//! followed into the new file. Input goes to the monitor's stdin FIFO (the container holds
//! it read-write, or the monitor copies it into the container's pipe or terminal; with
//! stdinOnce the monitor removes it when the first session's input ends). `exit` resolves
//! with the container's exit code once its monitor recorded it; the attach ends when the
//! caller drops the session (its `exit` receiver: the follower stops at once).
//!
//! A container with a terminal (`tty: true`) has one output stream, the terminal's raw
//! bytes (the monitor logs them as stdout, unfinished lines at once as `P` records), so the
//! session has no stderr; input goes to the terminal through the same FIFO, and resizes
//! are written as `1 <height> <width>` lines to the monitor's control FIFO, which applies
//! them with TIOCSWINSZ on the master it holds (conmon's ctl FIFO, containerd's ResizePty).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, DuplexStream};

use crate::container::logs::{parse_record, Stream};
use crate::container::monitor::{ContainerHandle, ContainerStatus};
use crate::cri::{self, CriError, StreamRequest, StreamSession, TerminalSize};

/// How often the log is polled for new records.
const POLL: Duration = Duration::from_millis(50);

/// Buffer between the follower and a slow reader.
const PIPE_BUFFER: usize = 64 * 1024;

/// Whether the container runs with a terminal its monitor holds.
fn has_terminal(container: &ContainerHandle) -> bool {
    container.config().is_some_and(|c| c.terminal)
}

/// Writes each size as a control line to the monitor's control FIFO until the session's
/// sender is dropped.
fn resizer(ctl: &Path) -> cri::Result<tokio::sync::mpsc::Sender<TerminalSize>> {
    let mut w = tokio::net::unix::pipe::OpenOptions::new()
        .open_sender(ctl)
        .map_err(|e| CriError::Other(format!("attach: {}: {e}", ctl.display())))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<TerminalSize>(8);
    tokio::spawn(async move {
        while let Some(size) = rx.recv().await {
            let line = control_line(size);
            if w.write_all(line.as_bytes()).await.is_err() {
                return; // the monitor is gone
            }
        }
    });
    Ok(tx)
}

/// conmon's resize message: `1 <height> <width>\n` (one write, shorter than PIPE_BUF, so
/// lines of concurrent sessions never interleave).
pub(super) fn control_line(size: TerminalSize) -> String {
    format!("1 {} {}\n", size.height, size.width)
}

/// The message bytes of the complete records in `bytes`, per stream; returns how many
/// bytes were consumed (an unfinished record stays for the next read).
pub(super) fn split_records(bytes: &[u8], out: &mut Vec<u8>, err: &mut Vec<u8>) -> usize {
    let mut consumed = 0;
    while let Some(i) = bytes[consumed..].iter().position(|b| *b == b'\n') {
        if let Some(r) = parse_record(&bytes[consumed..consumed + i]) {
            let to = match r.stream {
                Stream::Stdout => &mut *out,
                Stream::Stderr => &mut *err,
            };
            to.extend_from_slice(r.content);
            if !r.partial {
                to.push(b'\n');
            }
        }
        consumed += i + 1;
    }
    consumed
}

struct Follower {
    container: ContainerHandle,
    log_path: PathBuf,
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    exit: tokio::sync::oneshot::Sender<cri::Result<i32>>,
}

impl Follower {
    /// Writes `data` to `w`; a reader that left drops the stream.
    async fn send(w: &mut Option<DuplexStream>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(s) = w {
            if s.write_all(data).await.is_err() {
                *w = None;
            }
        }
    }

    async fn run(mut self, mut file: tokio::fs::File, mut ino: u64) {
        let mut pending = Vec::new();
        let mut exited_seen = false;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = self.exit.send(Err(CriError::Other(format!(
                        "attach: reading {}: {e}",
                        self.log_path.display()
                    ))));
                    return;
                }
            };
            if n > 0 {
                pending.extend_from_slice(&buf[..n]);
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let used = split_records(&pending, &mut out, &mut err);
                pending.drain(..used);
                Self::send(&mut self.stdout, &out).await;
                Self::send(&mut self.stderr, &err).await;
                continue;
            }
            // Nothing new. The container's end is final once the log was read after it.
            if exited_seen {
                let code = self.container.exited().map_or(255, |e| e.exit_code);
                let _ = self.exit.send(Ok(code));
                return;
            }
            if self.exit.is_closed() {
                return; // the caller dropped the session (or its `exit`)
            }
            if !matches!(self.container.status(), ContainerStatus::Running(_)) {
                exited_seen = true;
                continue; // read once more: the monitor writes the log before exit.json
            }
            // Rotated: the path is a new file; follow it from its start.
            if let Ok(m) = tokio::fs::metadata(&self.log_path).await {
                if m.ino() != ino {
                    if let Ok(f) = tokio::fs::File::open(&self.log_path).await {
                        file = f;
                        ino = m.ino();
                        pending.clear();
                        continue;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.exit.closed() => {}
            }
        }
    }
}

pub(super) async fn attach(
    container: &ContainerHandle,
    log_path: &Path,
    req: StreamRequest,
) -> cri::Result<StreamSession> {
    // The container decides: the kubelet's tty comes from the same pod spec.
    let terminal = has_terminal(container);
    if !matches!(container.status(), ContainerStatus::Running(_)) {
        return Err(CriError::Other(format!(
            "container {} is not running",
            container.id
        )));
    }
    let mut file = tokio::fs::File::open(log_path)
        .await
        .map_err(|e| CriError::Other(format!("attach: {}: {e}", log_path.display())))?;
    let ino = file
        .metadata()
        .await
        .map(|m| m.ino())
        .map_err(|e| CriError::Other(format!("attach: {}: {e}", log_path.display())))?;
    // From the end; a record being written now is skipped up to its newline by the
    // parser (a torn first line is malformed and dropped).
    file.seek(std::io::SeekFrom::End(0))
        .await
        .map_err(|e| CriError::Other(format!("attach: {}: {e}", log_path.display())))?;

    let stdin = match (req.stdin, container.stdin_path()) {
        (true, Some(fifo)) => {
            let w = tokio::net::unix::pipe::OpenOptions::new()
                .open_sender(&fifo)
                .map_err(|e| CriError::Other(format!("attach: {}: {e}", fifo.display())))?;
            Some(Box::pin(w) as cri::BoxWrite)
        }
        _ => None,
    };
    let pipe = |on: bool| {
        if on {
            let (a, b) = tokio::io::duplex(PIPE_BUFFER);
            (Some(a), Some(b))
        } else {
            (None, None)
        }
    };
    let (out_w, out_r) = pipe(req.stdout);
    let (err_w, err_r) = pipe(req.stderr && !terminal);
    let resize = match (terminal, container.control_path()) {
        (true, Some(ctl)) => Some(resizer(&ctl)?),
        _ => None,
    };
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    let follower = Follower {
        container: container.clone(),
        log_path: log_path.to_path_buf(),
        stdout: out_w,
        stderr: err_w,
        exit: exit_tx,
    };
    tokio::spawn(follower.run(file, ino));
    Ok(StreamSession {
        stdin,
        stdout: out_r.map(|r| Box::pin(r) as cri::BoxRead),
        stderr: err_r.map(|r| Box::pin(r) as cri::BoxRead),
        resize,
        exit: exit_rx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_to_their_stream_partials_without_newline() {
        let log = b"2026-01-01T00:00:01.000000000Z stdout F one\n\
2026-01-01T00:00:02.000000000Z stderr P tw\n\
garbage\n\
2026-01-01T00:00:03.000000000Z stderr F o\n\
2026-01-01T00:00:04.000000000Z stdout P par\n\
2026-01-01T00:00:05.000000000Z stdout F unfinis";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let used = split_records(log, &mut out, &mut err);
        assert_eq!(out, b"one\npar");
        assert_eq!(err, b"two\n");
        assert_eq!(
            &log[used..],
            b"2026-01-01T00:00:05.000000000Z stdout F unfinis"
        );
    }

    #[test]
    fn a_resize_is_conmons_control_line_height_first() {
        let line = control_line(TerminalSize {
            width: 120,
            height: 40,
        });
        assert_eq!(line, "1 40 120\n");
    }
}
