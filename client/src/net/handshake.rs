//! The only place a byte stream becomes a BitTorrent peer: the 68-byte handshake (BEP 3) in
//! both directions, with its deadline, and the caps on handshakes in progress.
//!
//! This is where MSE/PE encryption will be negotiated: an incoming stream that does not begin
//! with `19 "BitTorrent protocol"` will be handed to it, an outgoing one wrapped in it, before
//! the plain handshake below runs on the resulting stream.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHash, PeerId};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wire::{Handshake, Reserved};

use super::transport::BoxStream;

/// Time allowed for a whole handshake (connect excluded).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Incoming handshakes in progress at once; more connections are closed at once.
pub const MAX_HANDSHAKES: usize = 128;
/// Incoming handshakes in progress from one address, so one host cannot take every slot.
pub const MAX_HANDSHAKES_PER_IP: u32 = 8;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
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
    /// We do not serve this info-hash, or not to this peer now.
    #[error("refused: {0}")]
    Refused(&'static str),
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
        let hs = Handshake {
            reserved: ours.reserved,
            info_hash,
            peer_id: ours.peer_id,
        };
        stream.write_all(&hs.encode()).await?;
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
    })
    .await
}

/// The peer's side first on a stream it opened: reads its info-hash, asks `accept` whether
/// we serve it to this peer (and with which handshake), answers, then reads its peer id.
pub async fn incoming(
    mut stream: BoxStream,
    addr: SocketAddr,
    accept: impl FnOnce(&InfoHash, IpAddr) -> Result<Ours, HandshakeError>,
) -> Result<Handshaken, HandshakeError> {
    let addr = canonical(addr);
    timed(async move {
        let mut buf = [0u8; wire::HANDSHAKE_LEN];
        let prefix = wire::HANDSHAKE_PREFIX_LEN;
        stream.read_exact(&mut buf[..prefix]).await?;
        let (reserved, info_hash) = Handshake::parse_prefix(&buf[..prefix])
            .map_err(|e| HandshakeError::Protocol(e.to_string()))?
            .ok_or_else(|| HandshakeError::Protocol("short handshake".into()))?;
        let ours = accept(&info_hash, addr.ip())?;
        let hs = Handshake {
            reserved: ours.reserved,
            info_hash,
            peer_id: ours.peer_id,
        };
        stream.write_all(&hs.encode()).await?;
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
    })
    .await
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
            incoming(accepted_tcp(s).unwrap(), from, |got, _| {
                if *got == ih {
                    Ok(ours(2))
                } else {
                    Err(HandshakeError::Refused("unknown info-hash"))
                }
            })
            .await
        };
        let client = async { outgoing(connect_tcp(addr).await.unwrap(), addr, ih, ours(1)).await };
        let (s, c) = tokio::join!(server, client);
        let (s, c) = (s.unwrap(), c.unwrap());
        assert_eq!((s.peer_id, c.peer_id), (PeerId([1; 20]), PeerId([2; 20])));
        assert!(c.outgoing && !s.outgoing);

        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(accepted_tcp(s).unwrap(), from, |_, _| {
                Err(HandshakeError::Refused("unknown info-hash"))
            })
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
    async fn garbage_is_a_protocol_error_and_ourselves_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(accepted_tcp(s).unwrap(), from, |_, _| Ok(ours(1))).await
        };
        let client = async {
            let mut s = connect_tcp(addr).await.unwrap();
            s.write_all(&[b'x'; wire::HANDSHAKE_LEN]).await.unwrap();
        };
        let (s, ()) = tokio::join!(server, client);
        assert!(matches!(s, Err(HandshakeError::Protocol(_))), "{s:?}");

        let server = async {
            let (s, from) = l.accept().await.unwrap();
            incoming(accepted_tcp(s).unwrap(), from, |_, _| Ok(ours(1))).await
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
