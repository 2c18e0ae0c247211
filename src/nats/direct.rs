//! Direct writes: the task that queued bytes for a client writes them to the client's socket
//! itself, without waking the client's writer task, when the socket can take them at once.
//!
//! Waking another task costs a thread hop on every message exchange (request, reply, each
//! delivery); nats-server avoids it the same way (its readers flush the clients they delivered
//! to). A write here never blocks: whatever the socket does not take at once stays queued and
//! the writer task is woken for it, so a slow client never slows the publisher down.
//! Only one writer uses a socket at a time: the direct writer and the writer task both take
//! the outbound queue's write lock ([`super::outbound::Outbound::try_lock_writer`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;

/// A TCP write half shared by the writer task and direct writers.
#[derive(Clone)]
pub struct SharedTcpWriter(pub Arc<OwnedWriteHalf>);

impl SharedTcpWriter {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
}

impl AsyncWrite for SharedTcpWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.as_ref().as_ref().poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The write side is shut down when the last handle is dropped (an `OwnedWriteHalf` does
    /// that on drop), which the connection arranges once it closes.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
