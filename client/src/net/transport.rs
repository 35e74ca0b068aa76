//! The transport seam: a peer stream is something that reads and writes bytes.
//!
//! TCP is the one transport today. A uTP stream, or an MSE/PE-encrypted stream wrapped around
//! either, plugs in by implementing [`PeerStream`]: the handshake and the connection loop only
//! ever see a [`BoxStream`], so neither changes when a transport is added.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The read half of a peer stream.
pub type ReadHalf = Box<dyn AsyncRead + Unpin + Send>;
/// The write half of a peer stream.
pub type WriteHalf = Box<dyn AsyncWrite + Unpin + Send>;
/// A peer stream of any transport.
pub type BoxStream = Box<dyn PeerStream>;

/// A byte stream to one peer.
pub trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Splits the stream into halves that two futures can drive at once (the connection's
    /// reader and writer).
    fn into_halves(self: Box<Self>) -> (ReadHalf, WriteHalf);
}

impl PeerStream for TcpStream {
    fn into_halves(self: Box<Self>) -> (ReadHalf, WriteHalf) {
        // TCP splits without a lock between the halves.
        let (r, w) = (*self).into_split();
        (Box::new(r), Box::new(w))
    }
}

/// Opens a TCP connection to `addr`, Nagle off (requests and blocks go out at once).
pub async fn connect_tcp(addr: SocketAddr) -> std::io::Result<BoxStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(Box::new(s))
}

/// Wraps an accepted TCP connection, Nagle off.
pub fn accepted_tcp(s: TcpStream) -> std::io::Result<BoxStream> {
    s.set_nodelay(true)?;
    Ok(Box::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn tcp_halves_carry_bytes_both_ways() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(connect_tcp(addr), l.accept());
        let (mut r1, mut w1) = dialed.unwrap().into_halves();
        let (mut r2, mut w2) = accepted_tcp(accepted.unwrap().0).unwrap().into_halves();
        w1.write_all(b"ping").await.unwrap();
        w2.write_all(b"pong").await.unwrap();
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        r2.read_exact(&mut a).await.unwrap();
        r1.read_exact(&mut b).await.unwrap();
        assert_eq!((&a, &b), (b"ping", b"pong"));
    }
}
