//! Connection guards: a listener that caps open connections, and a stream wrapper that bounds
//! each request in time and size so slow or endless clients cannot pin memory or tasks.
//!
//! The rule the wrapper enforces is simple because a tracker answers every request at once: a
//! connection must deliver a whole request within `request_timeout` of opening or of our previous
//! response, may send at most `max_request_bytes` before getting that response, and must accept
//! our response within `request_timeout`. Breaking any of these is an I/O error, on which hyper
//! drops the connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep, sleep};
use tracing::{debug, warn};

/// Per-connection bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Bytes a client may send before it is answered.
    pub max_request_bytes: usize,
    /// Time allowed for each request, and for reading each response.
    pub request_timeout: Duration,
}

/// A TCP listener that holds at most `max_connections` connections open.
#[derive(Debug)]
pub(crate) struct GuardedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnLimits,
}

impl GuardedListener {
    /// Wraps `inner`.
    pub(crate) fn new(inner: TcpListener, max_connections: usize, limits: ConnLimits) -> Self {
        GuardedListener {
            inner,
            permits: Arc::new(Semaphore::new(max_connections)),
            limits,
        }
    }
}

impl Listener for GuardedListener {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedIo, SocketAddr) {
        loop {
            // The semaphore is never closed; waiting here leaves new clients in the backlog.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                std::future::pending::<()>().await;
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(%addr, error = %e, "set_nodelay failed");
                    }
                    return (GuardedIo::new(stream, permit, self.limits), addr);
                }
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off briefly.
                    warn!(error = %e, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The remote address of a connection, as seen by handlers (`ConnectInfo<ClientAddr>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, GuardedListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A TCP stream with a request deadline and a request byte budget.
#[derive(Debug)]
pub(crate) struct GuardedIo {
    stream: TcpStream,
    deadline: Pin<Box<Sleep>>,
    unanswered: usize,
    limits: ConnLimits,
    _permit: OwnedSemaphorePermit,
}

impl GuardedIo {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, limits: ConnLimits) -> Self {
        GuardedIo {
            stream,
            deadline: Box::pin(sleep(limits.request_timeout)),
            unanswered: 0,
            limits,
            _permit: permit,
        }
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    fn answered(&mut self, written: usize) {
        if written > 0 {
            self.unanswered = 0;
            let next = Instant::now() + self.limits.request_timeout;
            self.deadline.as_mut().reset(next);
        }
    }
}

fn timeout_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "request timeout")
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timed_out(cx) {
            return Poll::Ready(Err(timeout_error()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        this.unanswered += buf.filled().len() - before;
        if this.unanswered > this.limits.max_request_bytes {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            )));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.answered(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.timed_out(cx) => Poll::Ready(Err(timeout_error())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.answered(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.timed_out(cx) => Poll::Ready(Err(timeout_error())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
