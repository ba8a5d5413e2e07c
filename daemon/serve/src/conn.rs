//! Connection limits shared by the listeners: a cap on how many
//! connections a listener serves at once, and an idle timeout that closes
//! a connection whose peer neither sends nor reads for too long.
//!
//! The cap is taken *before* `accept`: connections past it wait in the
//! kernel's accept queue, where they hold no file descriptor of the
//! daemon. So a flood of idle connections on one port (the HTTP API, say)
//! can use at most that listener's `max_connections` descriptors, and the
//! milter and LMTP listeners keep theirs: the sum of the caps is the
//! reserve each listener is guaranteed (`LimitNOFILE` in the unit is far
//! above it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::config::Connections;

/// An axum listener that accepts only while fewer than `max` of its
/// connections are open, and wraps each in an [`Idle`] timeout.
pub struct Capped<L> {
    inner: L,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl<L> Capped<L> {
    /// Caps `inner` by `limits`.
    pub fn new(inner: L, limits: Connections) -> Capped<L> {
        Capped {
            inner,
            permits: Arc::new(Semaphore::new(limits.max)),
            idle_timeout: limits.idle_timeout,
        }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for Capped<L> {
    type Io = Idle<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let (io, addr) = self.inner.accept().await;
        (Idle::new(io, self.idle_timeout, permit), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails with `TimedOut` once neither a read nor a write
/// has made progress for its idle timeout: a peer that sends nothing (not
/// even a request's headers) or stops reading what it is sent. It holds
/// its listener's permit until dropped.
pub struct Idle<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<T> Idle<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, timeout: Duration, permit: Option<OwnedSemaphorePermit>) -> Idle<T> {
        Idle {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            _permit: permit,
        }
    }

    fn progressed(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    /// `Pending` from the peer: an error once the deadline has passed.
    fn waiting<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer was idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.waiting(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.waiting(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_peer_times_out_and_an_active_one_does_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Idle::new(server, Duration::from_millis(200), None);
        let mut client = client;
        let mut byte = [0u8; 1];
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            client.write_all(b"x").await.unwrap();
            server
                .read_exact(&mut byte)
                .await
                .expect("active: no timeout");
        }
        let silent = server.read_exact(&mut byte).await;
        assert_eq!(silent.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_out() {
        let (_client, server) = tokio::io::duplex(16);
        let mut server = Idle::new(server, Duration::from_millis(200), None);
        let write = server.write_all(&[0u8; 1024]).await;
        assert_eq!(write.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
