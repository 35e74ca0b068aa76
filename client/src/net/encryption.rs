//! MSE/PE on a peer stream: the policy (`--encryption`), the handshake driven over a real
//! stream ([`initiate`], [`respond`] around the sans-IO `mse` crate), the encrypted stream that
//! results ([`EncryptedStream`]), and what we remember of which peers wanted encryption
//! ([`CryptoMemory`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use metainfo::InfoHash;
use mse::{Cipher, Established, Initiator, Methods, MseError, Responder, Secrets};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::transport::{BoxStream, PeerStream, ReadHalf, WriteHalf};

/// What `--encryption` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Never encrypt; incoming MSE handshakes are refused.
    Off,
    /// Plaintext first, MSE when a peer wants it (libtorrent's default).
    #[default]
    Allow,
    /// MSE with RC4 only, both ways; incoming plaintext handshakes are refused.
    Require,
}

impl Encryption {
    /// What we select among, answering an MSE initiator.
    pub fn accepted(self) -> Methods {
        match self {
            Encryption::Require => Methods::RC4,
            _ => Methods::BOTH,
        }
    }

    /// The tracker parameter that says so (BEP 3 extensions of other clients), if any.
    pub fn announce_param(self) -> &'static str {
        match self {
            Encryption::Off => "",
            Encryption::Allow => "&supportcrypto=1",
            Encryption::Require => "&requirecrypto=1&supportcrypto=1",
        }
    }
}

/// Bytes read from the socket at a time during an MSE handshake (what the handshake buffers
/// is at most its sync window plus one read).
const HANDSHAKE_READ: usize = 4096;
/// Encrypted bytes accepted from the writer and not yet written to the socket.
pub const MAX_PENDING: usize = 64 * 1024;
/// Peers whose preference (plaintext or encrypted) is remembered, process-wide.
pub const MEMORY_CAP: usize = 4096;

fn random_secrets() -> Secrets {
    Secrets::random(&mut rand::thread_rng())
}

/// Runs the initiator's side of MSE on `stream` for `skey`, sending `ia` (our BitTorrent
/// handshake) as the initial payload. No deadline here: the caller's handshake deadline
/// covers it.
pub async fn initiate(
    mut stream: BoxStream,
    skey: &InfoHash,
    provide: Methods,
    ia: &[u8],
) -> Result<BoxStream, MseIoError> {
    let mut hs = Initiator::new(skey.0, provide, ia, random_secrets());
    let mut buf = vec![0u8; HANDSHAKE_READ];
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(hs.handle_eof().into());
        }
        if let Some(done) = hs.feed(&buf[..n])? {
            return Ok(EncryptedStream::boxed(stream, done));
        }
    }
}

/// Runs the responder's side on `stream`, of which `first` was read already; `lookup` finds the
/// torrent by HASH('req2', info-hash). Hands back the stream (positioned at the initiator's
/// initial payload) and the info-hash.
pub async fn respond(
    mut stream: BoxStream,
    first: &[u8],
    accepted: Methods,
    lookup: &(dyn Fn(&[u8; 20]) -> Option<[u8; 20]> + Sync),
) -> Result<(BoxStream, InfoHash), MseIoError> {
    // Offered both, select plaintext, as libtorrent does: our own swarms keep their speed.
    let mut hs = Responder::new(accepted, true, random_secrets());
    let mut buf = vec![0u8; HANDSHAKE_READ];
    let mut done = hs.feed(first, lookup)?;
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        if let Some(done) = done {
            let skey = InfoHash(done.skey);
            return Ok((EncryptedStream::boxed(stream, done), skey));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(hs.handle_eof().into());
        }
        done = hs.feed(&buf[..n], lookup)?;
    }
}

/// A failed MSE handshake on a stream.
#[derive(Debug, thiserror::Error)]
pub enum MseIoError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The peer's bytes.
    #[error("{0}")]
    Mse(#[from] MseError),
}

/// A stream after an MSE handshake: what the handshake read past its end first, then the
/// socket, RC4-decrypted when the handshake chose RC4 (and RC4-encrypted the other way).
pub struct EncryptedStream {
    inner: BoxStream,
    read: ReadState,
    write: WriteState,
}

impl std::fmt::Debug for EncryptedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStream")
            .field("rc4", &self.read.cipher.is_some())
            .finish_non_exhaustive()
    }
}

impl EncryptedStream {
    /// Wraps `inner` after the handshake `done`.
    pub fn boxed(inner: BoxStream, done: Established) -> BoxStream {
        let (enc, dec) = match done.ciphers {
            Some((e, d)) => (Some(e), Some(d)),
            None => (None, None),
        };
        Box::new(EncryptedStream {
            inner,
            read: ReadState {
                prefix: done.received,
                at: 0,
                cipher: dec,
            },
            write: WriteState {
                cipher: enc,
                pending: Vec::new(),
                at: 0,
            },
        })
    }
}

/// The receiving direction: bytes already read (plaintext), then the socket.
struct ReadState {
    prefix: Vec<u8>,
    at: usize,
    cipher: Option<Cipher>,
}

impl ReadState {
    fn poll_read<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        inner: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            buf.put_slice(&self.prefix[self.at..self.at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(inner).poll_read(cx, buf))?;
        if let Some(c) = &mut self.cipher {
            c.apply(&mut buf.filled_mut()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

/// The sending direction: each byte is encrypted once, when it is accepted, into `pending`
/// (at most [`MAX_PENDING`]), and written from there.
struct WriteState {
    cipher: Option<Cipher>,
    pending: Vec<u8>,
    at: usize,
}

impl WriteState {
    /// Writes pending bytes until none are left (or the socket is not ready).
    fn poll_drain<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.at < self.pending.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.pending[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.at += n;
        }
        self.pending.clear();
        self.at = 0;
        Poll::Ready(Ok(()))
    }

    fn poll_write<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.cipher.is_none() {
            ready!(self.poll_drain(inner, cx))?;
            return Pin::new(inner).poll_write(cx, buf);
        }
        if self.pending.len() >= MAX_PENDING {
            ready!(self.poll_drain(inner, cx))?;
        }
        let n = buf.len().min(MAX_PENDING - self.pending.len());
        let start = self.pending.len();
        self.pending.extend_from_slice(&buf[..n]);
        if let Some(cipher) = &mut self.cipher {
            cipher.apply(&mut self.pending[start..]);
        }
        // Accepted (and encrypted) now; written here if the socket takes it, else by the next
        // write or flush.
        if let Poll::Ready(Err(e)) = self.poll_drain(inner, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncRead for EncryptedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        me.read.poll_read(&mut me.inner, cx, buf)
    }
}

impl AsyncWrite for EncryptedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        me.write.poll_write(&mut me.inner, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        ready!(me.write.poll_drain(&mut me.inner, cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        ready!(me.write.poll_drain(&mut me.inner, cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

impl PeerStream for EncryptedStream {
    fn into_halves(self: Box<Self>) -> (ReadHalf, WriteHalf) {
        let EncryptedStream { inner, read, write } = *self;
        let (r, w) = inner.into_halves();
        (
            Box::new(EncryptedRead { inner: r, read }),
            Box::new(EncryptedWrite { inner: w, write }),
        )
    }
}

/// The read half, with its own RC4 state.
struct EncryptedRead {
    inner: ReadHalf,
    read: ReadState,
}

impl AsyncRead for EncryptedRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        me.read.poll_read(&mut me.inner, cx, buf)
    }
}

/// The write half, with its own RC4 state and pending bytes.
struct EncryptedWrite {
    inner: WriteHalf,
    write: WriteState,
}

impl AsyncWrite for EncryptedWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        me.write.poll_write(&mut me.inner, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        ready!(me.write.poll_drain(&mut me.inner, cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        ready!(me.write.poll_drain(&mut me.inner, cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

/// How to reach a peer that answered before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// A plaintext handshake worked.
    Plaintext,
    /// An MSE handshake worked, or the peer says it prefers one (PEX flag 0x01).
    Encrypted,
}

/// Which way each peer was last reached, for at most [`MEMORY_CAP`] addresses (the oldest
/// entry is forgotten first). Process-wide: shared by every swarm's dialer.
#[derive(Debug, Default)]
pub struct CryptoMemory {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    map: HashMap<SocketAddr, Reached>,
    order: VecDeque<SocketAddr>,
}

impl CryptoMemory {
    /// What worked for `addr` last, if known.
    pub fn get(&self, addr: SocketAddr) -> Option<Reached> {
        self.inner.lock().map.get(&addr).copied()
    }

    /// Remembers how `addr` was reached.
    pub fn set(&self, addr: SocketAddr, how: Reached) {
        let mut m = self.inner.lock();
        if m.map.insert(addr, how).is_none() {
            m.order.push_back(addr);
            while m.order.len() > MEMORY_CAP {
                if let Some(old) = m.order.pop_front() {
                    m.map.remove(&old);
                }
            }
        }
    }

    /// Peers that say they prefer encryption (PEX), unless we reached them already.
    pub fn prefer_encrypted(&self, addrs: &[SocketAddr]) {
        for &a in addrs {
            if self.get(a).is_none() {
                self.set(a, Reached::Encrypted);
            }
        }
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::handshake::{self, HandshakeError, Ours};
    use crate::net::transport::{accepted_tcp, connect_tcp};
    use metainfo::PeerId;
    use wire::Reserved;

    const IH: InfoHash = InfoHash([9; 20]);

    fn ours(tag: u8) -> Ours {
        Ours {
            reserved: Reserved::default(),
            peer_id: PeerId([tag; 20]),
        }
    }

    fn lookup(h: &[u8; 20]) -> Option<[u8; 20]> {
        (*h == mse::req2(&IH.0)).then_some(IH.0)
    }

    /// One connection: the listener answers with `policy`, the dialer offers `provide` (None:
    /// plaintext).
    async fn pair(
        policy: Encryption,
        provide: Option<Methods>,
    ) -> (
        Result<handshake::Handshaken, HandshakeError>,
        Result<handshake::Handshaken, HandshakeError>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = async {
            let (s, from) = l.accept().await.unwrap();
            handshake::incoming(accepted_tcp(s).unwrap(), from, policy, &lookup, |ih, _| {
                assert_eq!(*ih, IH);
                Ok(ours(2))
            })
            .await
        };
        let client = async {
            let s = connect_tcp(addr).await.unwrap();
            match provide {
                Some(p) => handshake::outgoing_encrypted(s, addr, IH, ours(1), p).await,
                None => handshake::outgoing(s, addr, IH, ours(1)).await,
            }
        };
        tokio::join!(server, client)
    }

    async fn send(w: &mut WriteHalf, m: &[u8]) {
        for chunk in m.chunks(7919) {
            w.write_all(chunk).await.unwrap();
        }
        w.flush().await.unwrap();
    }

    async fn recv(r: &mut ReadHalf) -> Vec<u8> {
        let mut got = vec![0u8; 300_000];
        r.read_exact(&mut got).await.unwrap();
        got
    }

    /// Sends a large message each way over the halves, in odd-sized writes.
    async fn carry(a: handshake::Handshaken, b: handshake::Handshaken) {
        let (mut ar, mut aw) = a.stream.into_halves();
        let (mut br, mut bw) = b.stream.into_halves();
        let msg: Vec<u8> = (0..300_000u32).map(|i| (i * 131 % 251) as u8).collect();
        let (_, _, got_b, got_a) = tokio::join!(
            send(&mut aw, &msg),
            send(&mut bw, &msg),
            recv(&mut br),
            recv(&mut ar)
        );
        assert!(got_a == msg && got_b == msg);
    }

    #[tokio::test]
    async fn rc4_and_plaintext_selection_carry_bytes_both_ways() {
        for (policy, provide) in [
            (Encryption::Require, Methods::RC4),
            (Encryption::Allow, Methods::BOTH),
            (Encryption::Allow, Methods::RC4),
        ] {
            let (s, c) = pair(policy, Some(provide)).await;
            let (s, c) = (s.unwrap(), c.unwrap());
            assert_eq!((s.peer_id, c.peer_id), (PeerId([1; 20]), PeerId([2; 20])));
            carry(c, s).await;
        }
        let (s, c) = pair(Encryption::Allow, None).await;
        carry(c.unwrap(), s.unwrap()).await;
    }

    #[tokio::test]
    async fn policies_refuse_what_they_must() {
        let (s, c) = pair(Encryption::Require, None).await;
        assert!(matches!(s, Err(HandshakeError::Refused(_))), "{s:?}");
        assert!(c.is_err());
        let (s, c) = pair(Encryption::Off, Some(Methods::BOTH)).await;
        assert!(matches!(s, Err(HandshakeError::Refused(_))), "{s:?}");
        assert!(c.is_err());
        let (s, c) = pair(Encryption::Require, Some(Methods::PLAINTEXT)).await;
        assert!(
            matches!(
                s,
                Err(HandshakeError::Encryption(MseError::NoCommonMethod(1)))
            ),
            "{s:?}"
        );
        assert!(c.is_err());
    }

    #[tokio::test]
    async fn allow_falls_back_to_mse_and_remembers() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let memory = CryptoMemory::default();
        // A peer that requires encryption: the plaintext attempt is refused, the MSE one works.
        let server = async {
            for _ in 0..2 {
                let (s, from) = l.accept().await.unwrap();
                let r = handshake::incoming(
                    accepted_tcp(s).unwrap(),
                    from,
                    Encryption::Require,
                    &lookup,
                    |_, _| Ok(ours(2)),
                )
                .await;
                if let Ok(peer) = r {
                    return peer;
                }
            }
            panic!("no handshake got through");
        };
        let client = handshake::connect(addr, IH, ours(1), Encryption::Allow, &memory);
        let (s, c) = tokio::join!(server, client);
        carry(c.unwrap(), s).await;
        assert_eq!(memory.get(addr), Some(Reached::Encrypted));
    }

    #[tokio::test]
    async fn allow_does_not_dial_twice_where_nothing_listens() {
        // A port that was just ours and is closed now: the connect is refused.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let memory = CryptoMemory::default();
        let r = handshake::connect(addr, IH, ours(1), Encryption::Allow, &memory).await;
        assert!(matches!(r, Err(HandshakeError::Unreachable(_))), "{r:?}");
        assert_eq!(
            memory.get(addr),
            None,
            "nothing learned from a refused connect"
        );
    }

    #[test]
    fn memory_is_bounded_and_pex_does_not_override() {
        let m = CryptoMemory::default();
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        m.set(a(1), Reached::Plaintext);
        m.prefer_encrypted(&[a(1), a(2)]);
        assert_eq!(m.get(a(1)), Some(Reached::Plaintext));
        assert_eq!(m.get(a(2)), Some(Reached::Encrypted));
        for p in 3..=(MEMORY_CAP as u16 + 10) {
            m.set(a(p), Reached::Plaintext);
        }
        assert_eq!(m.len(), MEMORY_CAP);
        assert_eq!(m.get(a(1)), None, "the oldest is forgotten first");
    }
}
