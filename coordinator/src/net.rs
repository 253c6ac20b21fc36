//! Connections to the coordinator's two ports (gRPC and the dashboard),
//! guarded the same way: a connection that moves no byte either way for
//! the idle timeout is closed (one that stopped halfway through its
//! headers, an idle keep-alive connection, a client that went away without
//! a FIN), and the number open at once is bounded, in all and per peer
//! address, so that nobody can hold the port by opening connections.
//! Live clients are not idle: gRPC sends HTTP/2 pings that clients answer,
//! the dashboard's event stream a comment, each three times per idle
//! timeout ([`ConnectionLimits::keepalive`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// A connection moving no byte for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections open at once on one port.
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections open at once from one address on one port.
pub const MAX_CONNECTIONS_PER_PEER: usize = 1024;

/// The bounds a port's connections are held to.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_per_peer: usize,
}

impl ConnectionLimits {
    /// How often a live connection with nothing to say is made to move
    /// bytes (an HTTP/2 ping, an event-stream comment), and how long a
    /// ping's answer may take: a third of the idle timeout.
    pub fn keepalive(&self) -> Duration {
        self.idle_timeout / 3
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { idle_timeout: IDLE_TIMEOUT, max_connections: MAX_CONNECTIONS, max_per_peer: MAX_CONNECTIONS_PER_PEER }
    }
}

/// Open connections, in all and by peer address.
#[derive(Default)]
struct Census {
    total: usize,
    by_peer: HashMap<IpAddr, usize>,
}

/// Counts a port's open connections against its [`ConnectionLimits`].
#[derive(Clone)]
pub struct Gate {
    limits: ConnectionLimits,
    census: Arc<Mutex<Census>>,
}

/// One admitted connection's place; given back when the connection drops.
struct Admission {
    census: Arc<Mutex<Census>>,
    peer: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut census = lock(&self.census);
        census.total -= 1;
        if let Some(count) = census.by_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                census.by_peer.remove(&self.peer);
            }
        }
    }
}

fn lock(census: &Mutex<Census>) -> std::sync::MutexGuard<'_, Census> {
    census.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Gate {
    pub fn new(limits: ConnectionLimits) -> Self {
        Self { limits, census: Arc::default() }
    }

    /// Wraps `io` from `peer`, or `None` when the port or the peer holds
    /// all the connections it may (the caller drops `io`: the client sees
    /// its connection closed).
    pub fn admit<S>(&self, io: S, peer: SocketAddr) -> Option<Guarded<S>> {
        let mut census = lock(&self.census);
        let from_peer = census.by_peer.get(&peer.ip()).copied().unwrap_or(0);
        if census.total >= self.limits.max_connections || from_peer >= self.limits.max_per_peer {
            drop(census);
            tracing::warn!(%peer, "connection refused: too many open connections");
            return None;
        }
        census.total += 1;
        *census.by_peer.entry(peer.ip()).or_default() += 1;
        let admission = Admission { census: Arc::clone(&self.census), peer: peer.ip() };
        Some(Guarded::new(io, self.limits.idle_timeout, admission))
    }

    /// Connections open now (for tests).
    pub fn open(&self) -> usize {
        lock(&self.census).total
    }

    /// The listener's connections, admitted and guarded, as tonic takes them.
    pub fn incoming(self, listener: TcpListener) -> impl Stream<Item = io::Result<Guarded<TcpStream>>> {
        futures::stream::unfold((self, listener), |(gate, listener)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        // Without TCP_NODELAY a response written in two
                        // segments waits for the client's delayed ACK.
                        let _ = stream.set_nodelay(true);
                        if let Some(guarded) = gate.admit(stream, peer) {
                            return Some((Ok(guarded), (gate, listener)));
                        }
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: wait and go on.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }
}

/// A connection that errors with `TimedOut` once it has moved no byte
/// for its idle timeout, and gives its place back when dropped.
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _admission: Admission,
}

impl<S> Guarded<S> {
    fn new(inner: S, idle: Duration, admission: Admission) -> Self {
        Self { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)), _admission: admission }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// On an inner `Pending`: `TimedOut` once the deadline passed (the
    /// timer is registered with the task, so it wakes to see it).
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the connection was idle too long")),
            Poll::Pending => Poll::Pending,
        }
    }

    /// What a write of the inner connection came to, with the bytes it
    /// moved counted and its waiting checked against the deadline.
    fn wrote(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Guarded<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A dashboard listener whose connections are admitted and guarded.
pub struct GuardedListener<L> {
    inner: L,
    gate: Gate,
}

impl<L> GuardedListener<L> {
    pub fn new(inner: L, gate: Gate) -> Self {
        Self { inner, gate }
    }
}

impl<L> axum::serve::Listener for GuardedListener<L>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Io = Guarded<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, peer) = self.inner.accept().await;
            if let Some(guarded) = self.gate.admit(io, peer) {
                return (guarded, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(idle_ms: u64, max_connections: usize, max_per_peer: usize) -> ConnectionLimits {
        ConnectionLimits { idle_timeout: Duration::from_millis(idle_ms), max_connections, max_per_peer }
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_a_busy_one_does_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let gate = Gate::new(limits(200, 8, 8));
        let mut guarded = gate.admit(a, "127.0.0.1:1".parse().unwrap()).unwrap();
        // Bytes every 100 ms keep it open past its 200 ms timeout.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            guarded.read_exact(&mut byte).await.unwrap();
        }
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let error = guarded.read_to_end(&mut rest).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn connections_are_bounded_in_all_and_per_peer() {
        let gate = Gate::new(limits(60_000, 3, 2));
        let (one, two, three) = ("10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3");
        let first = gate.admit((), one.parse().unwrap()).unwrap();
        let _second = gate.admit((), two.parse().unwrap()).unwrap();
        assert!(gate.admit((), three.parse().unwrap()).is_none(), "a third from one peer");
        let other = gate.admit((), "10.0.0.2:1".parse().unwrap()).unwrap();
        assert!(gate.admit((), "10.0.0.3:1".parse().unwrap()).is_none(), "a fourth in all");
        assert_eq!(gate.open(), 3);
        drop((first, other));
        assert_eq!(gate.open(), 1);
        assert!(gate.admit((), three.parse().unwrap()).is_some(), "places come back");
    }
}
