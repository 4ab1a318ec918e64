//! A pty pair for terminal exec: the slave is runc's stdio (its host console), the master
//! is the session's stdin and stdout, non-blocking under tokio's [`AsyncFd`].

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustix::fs::OFlags;
use rustix::pty::OpenptFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::cri::{self, CriError, TerminalSize};

fn pty_error(what: &str) -> impl FnOnce(rustix::io::Errno) -> CriError + '_ {
    move |e| CriError::Other(format!("exec: {what}: {e}"))
}

pub(super) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    pub(super) fn open() -> cri::Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .map_err(pty_error("opening a pty"))?;
        rustix::pty::grantpt(&master).map_err(pty_error("grantpt"))?;
        rustix::pty::unlockpt(&master).map_err(pty_error("unlockpt"))?;
        let name = rustix::pty::ptsname(&master, Vec::new()).map_err(pty_error("ptsname"))?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(pty_error("opening the pty slave"))?;
        Ok(Pty { master, slave })
    }

    /// A copy of the slave for one of runc's stdio.
    pub(super) fn slave(&self) -> cri::Result<Stdio> {
        let fd = self
            .slave
            .try_clone()
            .map_err(|e| CriError::Other(format!("exec: pty slave: {e}")))?;
        Ok(Stdio::from(fd))
    }

    /// The master's read and write halves (the slave is closed here: runc holds it).
    pub(super) fn into_halves(self) -> cri::Result<(PtyReader, PtyWriter)> {
        drop(self.slave);
        rustix::fs::fcntl_setfl(&self.master, OFlags::RDWR | OFlags::NONBLOCK)
            .map_err(pty_error("pty non-blocking"))?;
        // `AsyncFd::new` is deprecated for fds whose owner could close them under tokio;
        // this one is an OwnedFd moved in (its replacement, `register`, is unsafe, which
        // the workspace forbids).
        #[allow(deprecated)]
        let registered = AsyncFd::new(self.master);
        let fd = Arc::new(
            registered.map_err(|e| CriError::Other(format!("exec: registering the pty: {e}")))?,
        );
        Ok((PtyReader(fd.clone()), PtyWriter(fd)))
    }
}

/// The terminal's output. EIO (every slave closed: the process and runc are gone) is EOF.
pub(super) struct PtyReader(Arc<AsyncFd<OwnedFd>>);

/// The terminal's input, and its size. Dropping it does not close the terminal (a terminal
/// has no half-close; the process sees its end when it exits or reads an EOF character).
#[derive(Clone)]
pub(super) struct PtyWriter(Arc<AsyncFd<OwnedFd>>);

impl PtyWriter {
    pub(super) fn resize(&self, size: TerminalSize) -> io::Result<()> {
        let ws = rustix::termios::Winsize {
            ws_row: size.height,
            ws_col: size.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(self.0.get_ref().as_fd(), ws).map_err(io::Error::from)
    }
}

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref().as_fd(), &mut *unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard
                .try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
