//! The only place a byte stream becomes a BitTorrent peer: the 68-byte handshake (BEP 3) in
//! both directions, with its deadline, and the caps on handshakes in progress.
//!
//! MSE/PE encryption is negotiated here too: an incoming stream that does not begin with
//! `19 "BitTorrent protocol"` is an MSE initiator ([`super::encryption::respond`]), and an
//! outgoing one may be wrapped in MSE ([`outgoing_encrypted`]), our handshake travelling as its
//! initial payload; the plain handshake then runs on the resulting stream. One deadline,
//! [`HANDSHAKE_TIMEOUT`], covers both.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHash, PeerId};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wire::{Handshake, Reserved};

use super::encryption::{self, Encryption, MseIoError};
use super::transport::BoxStream;

/// Finds the info-hash whose HASH('req2', info-hash) is given, among the torrents served.
pub type Req2Lookup<'a> = &'a (dyn Fn(&[u8; 20]) -> Option<[u8; 20]> + Sync);

/// How a plain handshake begins: its length byte and protocol string.
const PLAIN_START: &[u8; 20] = b"\x13BitTorrent protocol";

/// Time allowed for a whole handshake (connect excluded).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Incoming handshakes in progress at once; more connections are closed at once.
pub const MAX_HANDSHAKES: usize = 128;
/// Incoming handshakes in progress from one address, so one host cannot take every slot.
pub const MAX_HANDSHAKES_PER_IP: u32 = 8;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The TCP connection could not be opened (refused, unreachable, timed out): nothing was
    /// said, so trying another handshake on a new connection would fail the same way.
    #[error("cannot connect: {0}")]
    Unreachable(std::io::Error),
    /// A socket error or EOF.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Not finished within [`HANDSHAKE_TIMEOUT`].
    #[error("handshake timed out")]
    Timeout,
    /// Not a BitTorrent handshake.
    #[error("bad handshake: {0}")]
    Protocol(String),
    /// The peer answered for another torrent.
    #[error("wrong info-hash")]
    WrongInfoHash,
    /// We reached ourselves.
    #[error("connected to ourselves")]
    Ourselves,
    /// We do not serve this info-hash, or not to this peer now, or not this way (encrypted or
    /// not, as `--encryption` says).
    #[error("refused: {0}")]
    Refused(&'static str),
    /// The MSE/PE handshake failed on the peer's bytes.
    #[error("encryption: {0}")]
    Encryption(#[from] mse::MseError),
}

impl From<MseIoError> for HandshakeError {
    fn from(e: MseIoError) -> Self {
        match e {
            MseIoError::Io(e) => HandshakeError::Io(e),
            MseIoError::Mse(e) => HandshakeError::Encryption(e),
        }
    }
}

/// What we say in our handshake.
#[derive(Debug, Clone, Copy)]
pub struct Ours {
    /// Our reserved bits.
    pub reserved: Reserved,
    /// Our peer id.
    pub peer_id: PeerId,
}

/// A stream past the handshake: a BitTorrent peer of one torrent.
pub struct Handshaken {
    /// The stream, positioned after the peer's handshake.
    pub stream: BoxStream,
    /// The peer's address (IPv4-mapped addresses made plain).
    pub addr: SocketAddr,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer's reserved bits.
    pub reserved: Reserved,
    /// The peer's id.
    pub peer_id: PeerId,
    /// We dialed it (its address is where it listens).
    pub outgoing: bool,
}

impl std::fmt::Debug for Handshaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshaken")
            .field("addr", &self.addr)
            .field("info_hash", &self.info_hash)
            .field("outgoing", &self.outgoing)
            .finish_non_exhaustive()
    }
}

/// `a` with an IPv4-mapped IPv6 address made plain IPv4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, f)
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

/// Our side of a handshake on a stream we opened to `addr` for `info_hash`.
pub async fn outgoing(
    mut stream: BoxStream,
    addr: SocketAddr,
    info_hash: InfoHash,
    ours: Ours,
) -> Result<Handshaken, HandshakeError> {
    timed(async move {
        stream.write_all(&our_handshake(info_hash, ours)).await?;
        finish_outgoing(stream, addr, info_hash, ours).await
    })
    .await
}

/// [`outgoing`] inside MSE/PE: offers `provide` (RC4, plaintext or both), our handshake as the
/// initial payload.
pub async fn outgoing_encrypted(
    stream: BoxStream,
    addr: SocketAddr,
    info_hash: InfoHash,
    ours: Ours,
    provide: mse::Methods,
) -> Result<Handshaken, HandshakeError> {
    timed(async move {
        let ia = our_handshake(info_hash, ours);
        let stream = encryption::initiate(stream, &info_hash, provide, &ia).await?;
        finish_outgoing(stream, addr, info_hash, ours).await
    })
    .await
}

/// Dials `addr` and shakes hands for `info_hash` as `policy` says: `off` plaintext, `require`
/// MSE with RC4 only; `allow` the way that worked last time (`memory`; plaintext when unknown)
/// and, when the peer resets or closes that attempt, once more the other way (a peer that
/// requires encryption closes a plaintext handshake; one that cannot decrypt, an MSE one).
pub async fn connect(
    addr: SocketAddr,
    info_hash: InfoHash,
    ours: Ours,
    policy: Encryption,
    memory: &encryption::CryptoMemory,
) -> Result<Handshaken, HandshakeError> {
    use encryption::Reached;
    let attempt = |how: Reached, provide: mse::Methods| async move {
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, super::transport::connect_tcp(addr))
            .await
            .map_err(|_| HandshakeError::Unreachable(std::io::ErrorKind::TimedOut.into()))?
            .map_err(HandshakeError::Unreachable)?;
        match how {
            Reached::Plaintext => outgoing(stream, addr, info_hash, ours).await,
            Reached::Encrypted => outgoing_encrypted(stream, addr, info_hash, ours, provide).await,
        }
    };
    match policy {
        Encryption::Off => attempt(Reached::Plaintext, mse::Methods::PLAINTEXT).await,
        Encryption::Require => attempt(Reached::Encrypted, mse::Methods::RC4).await,
        Encryption::Allow => {
            let first = memory.get(addr).unwrap_or(Reached::Plaintext);
            match attempt(first, mse::Methods::BOTH).await {
                Err(HandshakeError::Io(_) | HandshakeError::Encryption(_)) => {
                    let other = match first {
                        Reached::Plaintext => Reached::Encrypted,
                        Reached::Encrypted => Reached::Plaintext,
                    };
                    tracing::debug!(peer = %addr, ?other, "handshake refused; trying the other way");
                    attempt(other, mse::Methods::BOTH)
                        .await
                        .inspect(|_| memory.set(addr, other))
                }
                r => r.inspect(|_| memory.set(addr, first)),
            }
        }
    }
}

fn our_handshake(info_hash: InfoHash, ours: Ours) -> [u8; wire::HANDSHAKE_LEN] {
    Handshake {
        reserved: ours.reserved,
        info_hash,
        peer_id: ours.peer_id,
    }
    .encode()
}

/// Reads the peer's answer to the handshake we sent.
async fn finish_outgoing(
    mut stream: BoxStream,
    addr: SocketAddr,
    info_hash: InfoHash,
    ours: Ours,
) -> Result<Handshaken, HandshakeError> {
    let mut buf = [0u8; wire::HANDSHAKE_LEN];
    stream.read_exact(&mut buf).await?;
    let theirs = Handshake::parse(&buf)
        .map_err(|e| HandshakeError::Protocol(e.to_string()))?
        .ok_or_else(|| HandshakeError::Protocol("short handshake".into()))?;
    if theirs.info_hash != info_hash {
        return Err(HandshakeError::WrongInfoHash);
    }
    if theirs.peer_id == ours.peer_id {
        return Err(HandshakeError::Ourselves);
    }
    Ok(Handshaken {
        stream,
        addr: canonical(addr),
        info_hash,
        reserved: theirs.reserved,
        peer_id: theirs.peer_id,
        outgoing: true,
    })
}

/// The peer's side first on a stream it opened: a plain handshake, or (if `policy` allows)
/// an MSE/PE one around it, the torrent found by `lookup`; reads its info-hash, asks `accept`
/// whether we serve it to this peer (and with which handshake), answers, then reads its peer
/// id. `require` refuses a plain handshake, `off` an encrypted one.
pub async fn incoming(
    mut stream: BoxStream,
    addr: SocketAddr,
    policy: Encryption,
    lookup: Req2Lookup<'_>,
    accept: impl FnOnce(&InfoHash, IpAddr) -> Result<Ours, HandshakeError>,
) -> Result<Handshaken, HandshakeError> {
    let addr = canonical(addr);
    timed(async move {
        let mut first = [0u8; PLAIN_START.len()];
        stream.read_exact(&mut first).await?;
        if &first == PLAIN_START {
            if policy == Encryption::Require {
                return Err(HandshakeError::Refused("plaintext (encryption required)"));
            }
            return finish_incoming(stream, &first, addr, None, accept).await;
        }
        if policy == Encryption::Off {
            return Err(HandshakeError::Refused("encrypted (encryption off)"));
        }
        let (stream, skey) = encryption::respond(stream, &first, policy.accepted(), lookup).await?;
        finish_incoming(stream, &[], addr, Some(skey), accept).await
    })
    .await
}

/// The plain handshake of an incoming stream, of which `first` was read already; `skey`: the
/// info-hash an MSE handshake was for (the plain one must agree).
async fn finish_incoming(
    mut stream: BoxStream,
    first: &[u8],
    addr: SocketAddr,
    skey: Option<InfoHash>,
    accept: impl FnOnce(&InfoHash, IpAddr) -> Result<Ours, HandshakeError>,
) -> Result<Handshaken, HandshakeError> {
    let mut buf = [0u8; wire::HANDSHAKE_LEN];
    let prefix = wire::HANDSHAKE_PREFIX_LEN;
    buf[..first.len()].copy_from_slice(first);
    stream.read_exact(&mut buf[first.len()..prefix]).await?;
    let (reserved, info_hash) = Handshake::parse_prefix(&buf[..prefix])
        .map_err(|e| HandshakeError::Protocol(e.to_string()))?
        .ok_or_else(|| HandshakeError::Protocol("short handshake".into()))?;
    if skey.is_some_and(|k| k != info_hash) {
        return Err(HandshakeError::WrongInfoHash);
    }
    let ours = accept(&info_hash, addr.ip())?;
    stream.write_all(&our_handshake(info_hash, ours)).await?;
    stream.read_exact(&mut buf[prefix..]).await?;
    let peer_id = Handshake::parse_peer_id(&buf)
        .ok_or_else(|| HandshakeError::Protocol("short handshake".into()))?;
    if peer_id == ours.peer_id {
        return Err(HandshakeError::Ourselves);
    }
    Ok(Handshaken {
        stream,
        addr,
        info_hash,
        reserved,
        peer_id,
        outgoing: false,
    })
}

/// The caps on incoming handshakes in progress: [`MAX_HANDSHAKES`] in all,
/// [`MAX_HANDSHAKES_PER_IP`] from one address.
#[derive(Debug, Clone)]
pub struct HandshakeSlots {
    all: Arc<Semaphore>,
    /// Handshakes in progress per address (entries only while a slot is held: at most
    /// `MAX_HANDSHAKES` of them).
    per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Default for HandshakeSlots {
    fn default() -> Self {
        HandshakeSlots {
            all: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            per_ip: Arc::default(),
        }
    }
}

impl HandshakeSlots {
    /// A slot for one incoming handshake from `ip`, if both caps allow it.
    pub fn take(&self, ip: IpAddr) -> Option<Slot> {
        let permit = self.all.clone().try_acquire_owned().ok()?;
        {
            let mut per_ip = self.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= MAX_HANDSHAKES_PER_IP {
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            _permit: permit,
            per_ip: self.per_ip.clone(),
            ip,
        })
    }
}

/// One incoming handshake in progress; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::transport::{accepted_tcp, connect_tcp};

    fn ours(tag: u8) -> Ours {
        Ours {
            reserved: Reserved::default(),
            peer_id: PeerId([tag; 20]),
        }
    }

    #[tokio::test]
    async fn both_sides_meet_and_a_stranger_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let ih = InfoHash([7; 20]);
        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(
                accepted_tcp(s).unwrap(),
                from,
                Encryption::Allow,
                &|_| None,
                |got, _| {
                    if *got == ih {
                        Ok(ours(2))
                    } else {
                        Err(HandshakeError::Refused("unknown info-hash"))
                    }
                },
            )
            .await
        };
        let client = async { outgoing(connect_tcp(addr).await.unwrap(), addr, ih, ours(1)).await };
        let (s, c) = tokio::join!(server, client);
        let (s, c) = (s.unwrap(), c.unwrap());
        assert_eq!((s.peer_id, c.peer_id), (PeerId([1; 20]), PeerId([2; 20])));
        assert!(c.outgoing && !s.outgoing);

        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(
                accepted_tcp(s).unwrap(),
                from,
                Encryption::Allow,
                &|_| None,
                |_, _| Err(HandshakeError::Refused("unknown info-hash")),
            )
            .await
        };
        let client = async {
            outgoing(
                connect_tcp(addr).await.unwrap(),
                addr,
                InfoHash([8; 20]),
                ours(1),
            )
            .await
        };
        let (s, c) = tokio::join!(server, client);
        assert!(matches!(s, Err(HandshakeError::Refused(_))));
        assert!(c.is_err());
    }

    #[tokio::test]
    async fn garbage_is_an_encryption_error_and_ourselves_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(
                accepted_tcp(s).unwrap(),
                from,
                Encryption::Allow,
                &|_| None,
                |_, _| Ok(ours(1)),
            )
            .await
        };
        let client = async {
            let mut s = connect_tcp(addr).await.unwrap();
            s.write_all(&[b'x'; wire::HANDSHAKE_LEN]).await.unwrap();
        };
        let (s, ()) = tokio::join!(server, client);
        // Not `19 "BitTorrent protocol"`: taken for an MSE initiator, which ends too soon.
        assert!(
            matches!(s, Err(HandshakeError::Encryption(mse::MseError::Truncated))),
            "{s:?}"
        );

        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(
                accepted_tcp(s).unwrap(),
                from,
                Encryption::Allow,
                &|_| None,
                |_, _| Ok(ours(1)),
            )
            .await
        };
        let client = async {
            outgoing(
                connect_tcp(addr).await.unwrap(),
                addr,
                InfoHash([7; 20]),
                ours(1),
            )
            .await
        };
        let (s, c) = tokio::join!(server, client);
        assert!(matches!(s, Err(HandshakeError::Ourselves)), "{s:?}");
        assert!(c.is_err());
    }

    #[test]
    fn slots_cap_all_and_per_address() {
        let slots = HandshakeSlots::default();
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        let held: Vec<Slot> = (0..MAX_HANDSHAKES_PER_IP)
            .map(|_| slots.take(ip).unwrap())
            .collect();
        assert!(slots.take(ip).is_none(), "per-address cap");
        assert!(slots.take("127.0.0.6".parse().unwrap()).is_some());
        drop(held);
        assert!(slots.take(ip).is_some(), "freed on drop");
        assert!(slots.per_ip.lock().is_empty());
    }
}
