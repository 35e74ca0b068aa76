//! The UDP tracker protocol (BEP 15) as bytes: connect, announce and scrape requests, their
//! responses, the error response, and BEP 41's URL data, both sides.
//!
//! A client sends a connect request, gets a connection id, then sends announces carrying it.
//! Every message starts with a 32-bit action and a 32-bit transaction id chosen by the client;
//! all integers are big-endian. Response decoders take the transaction id the client expects and
//! name a datagram that answers something else ([`UdpError::WrongTransaction`]) so the caller can
//! ignore it and keep waiting. No sockets, no clock, no retransmission: that is the caller's.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use metainfo::{InfoHash, PeerId};

use crate::announce_request::{AnnounceRequest, Event};
use crate::announce_response::{AnnounceResponse, MAX_DECODED_PEERS};
use crate::scrape::ScrapeStats;

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Bytes of a connect request and of a connect response.
pub const CONNECT_LEN: usize = 16;
/// Bytes of an announce request (without BEP 41 options).
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// Bytes of an announce response before its peers.
pub const ANNOUNCE_RESPONSE_HEADER: usize = 20;
/// Bytes of a scrape request before its info-hashes, and of a scrape response before its counts.
pub const SCRAPE_HEADER: usize = 16;
/// Most info-hashes one scrape request carries (BEP 15's figure, which keeps the response in one
/// small datagram).
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Most bytes of BEP 41 URL data kept from one announce request (a server reads no more).
pub const MAX_URL_DATA: usize = 1024;
/// Most bytes of a tracker's error message kept by [`decode_announce_response`] and
/// [`ConnectResponse::decode`].
pub const MAX_ERROR_MESSAGE: usize = 1024;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// BEP 41 option types after an announce request's 98 bytes.
const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_URL_DATA: u8 = 2;

/// Why a UDP tracker datagram could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// Fewer bytes than the message needs.
    #[error("datagram of {len} bytes is too short (need {need})")]
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes the message needs at least.
        need: usize,
    },
    /// The action is not the one expected (nor an error).
    #[error("unexpected action {0}")]
    WrongAction(u32),
    /// The transaction id is not the one of the request (a stray or late datagram).
    #[error("transaction id {0:#010x} is not ours")]
    WrongTransaction(u32),
    /// The peers after an announce response's header are not whole entries.
    #[error("peer list of {len} bytes is not a multiple of {size}")]
    BadPeerList {
        /// Bytes after the header.
        len: usize,
        /// Bytes per peer.
        size: usize,
    },
    /// The tracker answered with an error (action 3); lossy UTF-8, capped at
    /// [`MAX_ERROR_MESSAGE`] bytes.
    #[error("tracker says: {0}")]
    Tracker(String),
    /// A connect request without the protocol id (server side).
    #[error("not a BEP 15 connect request")]
    BadProtocolId,
    /// An announce event other than 0 to 3 (server side).
    #[error("unknown event {0}")]
    BadEvent(u32),
    /// A scrape request with no info-hash, or one with more than [`MAX_SCRAPE_HASHES`] to encode.
    #[error("a scrape carries 1 to {MAX_SCRAPE_HASHES} info-hashes, not {0}")]
    ScrapeCount(usize),
    /// A scrape response that does not hold whole 12-byte entries.
    #[error("scrape response of {0} bytes after its header is not whole entries")]
    BadScrapeList(usize),
    /// BEP 41 options that run past the datagram, or URL data past [`MAX_URL_DATA`].
    #[error("malformed BEP 41 options")]
    BadOptions,
}

/// The address family of the tracker, which decides the size of the peers it returns: 6 bytes
/// (IPv4 + port) from a tracker reached over IPv4, 18 bytes (IPv6 + port) over IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerFamily {
    /// 6-byte peers.
    V4,
    /// 18-byte peers.
    V6,
}

impl PeerFamily {
    /// Bytes per peer.
    pub fn peer_size(self) -> usize {
        match self {
            PeerFamily::V4 => 6,
            PeerFamily::V6 => 18,
        }
    }

    /// The family of a tracker's address.
    pub fn of(addr: &SocketAddr) -> PeerFamily {
        match addr {
            SocketAddr::V4(_) => PeerFamily::V4,
            SocketAddr::V6(_) => PeerFamily::V6,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    <[u8; 4]>::try_from(s).ok().map(u32::from_be_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    <[u8; 8]>::try_from(s).ok().map(u64::from_be_bytes)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    <[u8; 2]>::try_from(s).ok().map(u16::from_be_bytes)
}

fn arr20_at(b: &[u8], at: usize) -> Option<[u8; 20]> {
    let s = b.get(at..at.checked_add(20)?)?;
    <[u8; 20]>::try_from(s).ok()
}

fn short(b: &[u8], need: usize) -> Result<(), UdpError> {
    if b.len() < need {
        Err(UdpError::Short { len: b.len(), need })
    } else {
        Ok(())
    }
}

/// Checks a response's head: long enough for `need` bytes, our transaction id, the action
/// `want` or an error response (turned into [`UdpError::Tracker`]).
fn response_head(b: &[u8], want: u32, tid: u32, need: usize) -> Result<(), UdpError> {
    short(b, 8)?;
    let action = u32_at(b, 0).unwrap_or(u32::MAX);
    let got_tid = u32_at(b, 4).unwrap_or(0);
    if got_tid != tid {
        return Err(UdpError::WrongTransaction(got_tid));
    }
    if action == ACTION_ERROR && want != ACTION_ERROR {
        let msg = b.get(8..).unwrap_or_default();
        let msg = msg.get(..MAX_ERROR_MESSAGE).unwrap_or(msg);
        return Err(UdpError::Tracker(
            String::from_utf8_lossy(msg)
                .trim_end_matches('\0')
                .to_owned(),
        ));
    }
    if action != want {
        return Err(UdpError::WrongAction(action));
    }
    short(b, need)
}

/// A connect request (action 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRequest {
    /// The client's transaction id.
    pub transaction_id: u32,
}

impl ConnectRequest {
    /// The 16 bytes to send.
    pub fn encode(&self) -> [u8; CONNECT_LEN] {
        let mut out = [0u8; CONNECT_LEN];
        out[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
        out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
        out[12..].copy_from_slice(&self.transaction_id.to_be_bytes());
        out
    }

    /// Server side: reads a connect request (extra bytes are ignored).
    pub fn decode(b: &[u8]) -> Result<ConnectRequest, UdpError> {
        short(b, CONNECT_LEN)?;
        if u64_at(b, 0) != Some(PROTOCOL_ID) {
            return Err(UdpError::BadProtocolId);
        }
        let action = u32_at(b, 8).unwrap_or(u32::MAX);
        if action != ACTION_CONNECT {
            return Err(UdpError::WrongAction(action));
        }
        Ok(ConnectRequest {
            transaction_id: u32_at(b, 12).unwrap_or(0),
        })
    }
}

/// A connect response (action 0): the connection id to put in announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectResponse {
    /// The transaction id of the request answered.
    pub transaction_id: u32,
    /// The id the tracker gave this client (valid for about a minute).
    pub connection_id: u64,
}

impl ConnectResponse {
    /// Server side: the 16 bytes to send.
    pub fn encode(&self) -> [u8; CONNECT_LEN] {
        let mut out = [0u8; CONNECT_LEN];
        out[..4].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
        out[4..8].copy_from_slice(&self.transaction_id.to_be_bytes());
        out[8..].copy_from_slice(&self.connection_id.to_be_bytes());
        out
    }

    /// Reads the answer to the connect request with transaction id `tid`.
    pub fn decode(b: &[u8], tid: u32) -> Result<ConnectResponse, UdpError> {
        response_head(b, ACTION_CONNECT, tid, CONNECT_LEN)?;
        Ok(ConnectResponse {
            transaction_id: tid,
            connection_id: u64_at(b, 8).unwrap_or(0),
        })
    }
}

/// An announce request (action 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpAnnounce {
    /// From the connect response.
    pub connection_id: u64,
    /// The client's transaction id.
    pub transaction_id: u32,
    /// The torrent.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// What happened (BEP 15 has no `paused`: it is sent as none).
    pub event: Event,
    /// The address the client claims; 0 lets the tracker use the sender's.
    pub ip: u32,
    /// The client's key.
    pub key: u32,
    /// Peers wanted; -1 for the tracker's default.
    pub num_want: i32,
    /// The port the client listens on.
    pub port: u16,
}

fn event_code(e: Event) -> u32 {
    match e {
        Event::None | Event::Paused => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    }
}

fn event_of(code: u32) -> Result<Event, UdpError> {
    Ok(match code {
        0 => Event::None,
        1 => Event::Completed,
        2 => Event::Started,
        3 => Event::Stopped,
        c => return Err(UdpError::BadEvent(c)),
    })
}

impl UdpAnnounce {
    /// The UDP form of an HTTP-style request: `numwant` becomes `num_want` (-1 when absent,
    /// saturating), the IP is left to the tracker (0).
    pub fn from_request(
        req: &AnnounceRequest,
        connection_id: u64,
        transaction_id: u32,
        key: u32,
    ) -> UdpAnnounce {
        UdpAnnounce {
            connection_id,
            transaction_id,
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            downloaded: req.downloaded,
            left: req.left,
            uploaded: req.uploaded,
            event: req.event,
            ip: 0,
            key,
            num_want: req
                .numwant
                .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            port: req.port,
        }
    }

    /// The 98 bytes to send.
    pub fn encode(&self) -> [u8; ANNOUNCE_REQUEST_LEN] {
        let mut out = [0u8; ANNOUNCE_REQUEST_LEN];
        out[0..8].copy_from_slice(&self.connection_id.to_be_bytes());
        out[8..12].copy_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
        out[12..16].copy_from_slice(&self.transaction_id.to_be_bytes());
        out[16..36].copy_from_slice(self.info_hash.as_bytes());
        out[36..56].copy_from_slice(self.peer_id.as_bytes());
        out[56..64].copy_from_slice(&self.downloaded.to_be_bytes());
        out[64..72].copy_from_slice(&self.left.to_be_bytes());
        out[72..80].copy_from_slice(&self.uploaded.to_be_bytes());
        out[80..84].copy_from_slice(&event_code(self.event).to_be_bytes());
        out[84..88].copy_from_slice(&self.ip.to_be_bytes());
        out[88..92].copy_from_slice(&self.key.to_be_bytes());
        out[92..96].copy_from_slice(&self.num_want.to_be_bytes());
        out[96..98].copy_from_slice(&self.port.to_be_bytes());
        out
    }

    /// The bytes to send with BEP 41 URL data (the tracker URL's path and query, e.g.
    /// `/announce?passkey=x`) appended as options; empty `url_data` adds nothing. At most
    /// [`MAX_URL_DATA`] bytes are sent (a longer path is cut there: no tracker reads more).
    pub fn encode_with_url_data(&self, url_data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
        let data = url_data.get(..MAX_URL_DATA).unwrap_or(url_data);
        if data.is_empty() {
            return;
        }
        for chunk in data.chunks(255) {
            out.push(OPTION_URL_DATA);
            out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(chunk);
        }
        out.push(OPTION_END);
    }

    /// Server side: the BEP 41 URL data after an announce request's 98 bytes, concatenated
    /// (empty when there are no options). NOPs are skipped, END or the datagram's end stops;
    /// an option running past the datagram, an unknown option type, or more than
    /// [`MAX_URL_DATA`] bytes of URL data is [`UdpError::BadOptions`].
    pub fn url_data(b: &[u8]) -> Result<Vec<u8>, UdpError> {
        let mut opts = b.get(ANNOUNCE_REQUEST_LEN..).unwrap_or_default();
        let mut data = Vec::new();
        while let Some((&kind, rest)) = opts.split_first() {
            match kind {
                OPTION_END => break,
                OPTION_NOP => opts = rest,
                OPTION_URL_DATA => {
                    let (&len, rest) = rest.split_first().ok_or(UdpError::BadOptions)?;
                    let chunk = rest.get(..usize::from(len)).ok_or(UdpError::BadOptions)?;
                    if data.len() + chunk.len() > MAX_URL_DATA {
                        return Err(UdpError::BadOptions);
                    }
                    data.extend_from_slice(chunk);
                    opts = rest.get(usize::from(len)..).unwrap_or_default();
                }
                _ => return Err(UdpError::BadOptions),
            }
        }
        Ok(data)
    }

    /// Server side: reads an announce request (BEP 41 options after byte 98 are left to
    /// [`UdpAnnounce::url_data`]). The connection id is returned as sent; checking it is the
    /// tracker's business.
    pub fn decode(b: &[u8]) -> Result<UdpAnnounce, UdpError> {
        short(b, ANNOUNCE_REQUEST_LEN)?;
        let action = u32_at(b, 8).unwrap_or(u32::MAX);
        if action != ACTION_ANNOUNCE {
            return Err(UdpError::WrongAction(action));
        }
        let too_short = UdpError::Short {
            len: b.len(),
            need: ANNOUNCE_REQUEST_LEN,
        };
        let get = || -> Option<UdpAnnounce> {
            Some(UdpAnnounce {
                connection_id: u64_at(b, 0)?,
                transaction_id: u32_at(b, 12)?,
                info_hash: InfoHash(arr20_at(b, 16)?),
                peer_id: PeerId(arr20_at(b, 36)?),
                downloaded: u64_at(b, 56)?,
                left: u64_at(b, 64)?,
                uploaded: u64_at(b, 72)?,
                event: Event::None,
                ip: u32_at(b, 84)?,
                key: u32_at(b, 88)?,
                num_want: i32::from_be_bytes(u32_at(b, 92)?.to_be_bytes()),
                port: u16_at(b, 96)?,
            })
        };
        let mut a = get().ok_or(too_short)?;
        a.event = event_of(u32_at(b, 80).unwrap_or(u32::MAX))?;
        Ok(a)
    }
}

/// The peers of an announce response being encoded: one family per response.
#[derive(Debug, Clone, Copy)]
pub enum UdpPeers<'a> {
    /// 6-byte entries.
    V4(&'a [SocketAddrV4]),
    /// 18-byte entries.
    V6(&'a [SocketAddrV6]),
}

/// Server side: appends an announce response (action 1) to `out`.
pub fn encode_announce_response(
    transaction_id: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
    peers: UdpPeers<'_>,
    out: &mut Vec<u8>,
) {
    for v in [ACTION_ANNOUNCE, transaction_id, interval, leechers, seeders] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    match peers {
        UdpPeers::V4(ps) => {
            out.reserve(6 * ps.len());
            for p in ps {
                out.extend_from_slice(&p.ip().octets());
                out.extend_from_slice(&p.port().to_be_bytes());
            }
        }
        UdpPeers::V6(ps) => {
            out.reserve(18 * ps.len());
            for p in ps {
                out.extend_from_slice(&p.ip().octets());
                out.extend_from_slice(&p.port().to_be_bytes());
            }
        }
    }
}

/// Server side: appends an error response (action 3) with `message` to `out`.
pub fn encode_error(transaction_id: u32, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
}

/// Reads the answer to the announce with transaction id `tid` into the response the HTTP path
/// gives: `interval`, `complete` (seeders), `incomplete` (leechers) and the peers, whose size
/// `family` gives (the tracker's address family). At most [`MAX_DECODED_PEERS`] peers are kept.
pub fn decode_announce_response(
    b: &[u8],
    tid: u32,
    family: PeerFamily,
) -> Result<AnnounceResponse, UdpError> {
    response_head(b, ACTION_ANNOUNCE, tid, ANNOUNCE_RESPONSE_HEADER)?;
    let head = |at| u32_at(b, at).unwrap_or(0);
    let (interval, leechers, seeders) = (head(8), head(12), head(16));
    let list = b.get(ANNOUNCE_RESPONSE_HEADER..).unwrap_or_default();
    let size = family.peer_size();
    if list.len() % size != 0 {
        return Err(UdpError::BadPeerList {
            len: list.len(),
            size,
        });
    }
    let peers = list
        .chunks_exact(size)
        .take(MAX_DECODED_PEERS)
        .filter_map(|c| peer(c, family))
        .collect();
    Ok(AnnounceResponse {
        interval: Some(interval),
        min_interval: None,
        complete: Some(u64::from(seeders)),
        incomplete: Some(u64::from(leechers)),
        tracker_id: None,
        warning: None,
        peers,
    })
}

/// A scrape request (action 2): counts for up to [`MAX_SCRAPE_HASHES`] torrents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpScrape {
    /// From the connect response.
    pub connection_id: u64,
    /// The client's transaction id.
    pub transaction_id: u32,
    /// The torrents, in the order their counts come back.
    pub info_hashes: Vec<InfoHash>,
}

impl UdpScrape {
    /// Appends the request to `out`; 0 or more than [`MAX_SCRAPE_HASHES`] hashes is
    /// [`UdpError::ScrapeCount`] (the caller splits a longer list into several requests).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), UdpError> {
        let n = self.info_hashes.len();
        if n == 0 || n > MAX_SCRAPE_HASHES {
            return Err(UdpError::ScrapeCount(n));
        }
        out.extend_from_slice(&self.connection_id.to_be_bytes());
        out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.to_be_bytes());
        for h in &self.info_hashes {
            out.extend_from_slice(h.as_bytes());
        }
        Ok(())
    }

    /// Server side: reads a scrape request. Bytes after the last whole info-hash are ignored;
    /// hashes past [`MAX_SCRAPE_HASHES`] are not read; none at all is [`UdpError::ScrapeCount`].
    pub fn decode(b: &[u8]) -> Result<UdpScrape, UdpError> {
        short(b, SCRAPE_HEADER)?;
        let action = u32_at(b, 8).unwrap_or(u32::MAX);
        if action != ACTION_SCRAPE {
            return Err(UdpError::WrongAction(action));
        }
        let info_hashes: Vec<InfoHash> = b
            .get(SCRAPE_HEADER..)
            .unwrap_or_default()
            .chunks_exact(20)
            .take(MAX_SCRAPE_HASHES)
            .filter_map(|c| <[u8; 20]>::try_from(c).ok().map(InfoHash))
            .collect();
        if info_hashes.is_empty() {
            return Err(UdpError::ScrapeCount(0));
        }
        Ok(UdpScrape {
            connection_id: u64_at(b, 0).unwrap_or(0),
            transaction_id: u32_at(b, 12).unwrap_or(0),
            info_hashes,
        })
    }
}

/// Saturates a count into the 32 bits BEP 15 gives it.
fn count32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Server side: appends a scrape response (action 2) to `out`: for each torrent, in the
/// request's order, seeders, completed, leechers.
pub fn encode_scrape_response(
    transaction_id: u32,
    stats: impl IntoIterator<Item = ScrapeStats>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for s in stats {
        for v in [s.complete, s.downloaded, s.incomplete] {
            out.extend_from_slice(&count32(v).to_be_bytes());
        }
    }
}

/// Reads the answer to the scrape with transaction id `tid`: one count triple per torrent, in
/// the order asked, at most `asked` of them (extra entries are ignored; fewer is what the
/// tracker chose to answer).
pub fn decode_scrape_response(
    b: &[u8],
    tid: u32,
    asked: usize,
) -> Result<Vec<ScrapeStats>, UdpError> {
    response_head(b, ACTION_SCRAPE, tid, 8)?;
    let list = b.get(8..).unwrap_or_default();
    if list.len() % 12 != 0 {
        return Err(UdpError::BadScrapeList(list.len()));
    }
    Ok(list
        .chunks_exact(12)
        .take(asked.min(MAX_SCRAPE_HASHES))
        .map(|c| {
            let at = |i| u64::from(u32_at(c, i).unwrap_or(0));
            ScrapeStats {
                complete: at(0),
                downloaded: at(4),
                incomplete: at(8),
            }
        })
        .collect())
}

/// A request as a server reads it: the action decides the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRequest {
    /// Action 0 with the protocol id.
    Connect(ConnectRequest),
    /// Action 1.
    Announce(UdpAnnounce),
    /// Action 2.
    Scrape(UdpScrape),
}

impl UdpRequest {
    /// Server side: reads any request; an unknown action is [`UdpError::WrongAction`].
    pub fn decode(b: &[u8]) -> Result<UdpRequest, UdpError> {
        short(b, CONNECT_LEN)?;
        match u32_at(b, 8).unwrap_or(u32::MAX) {
            ACTION_CONNECT => ConnectRequest::decode(b).map(UdpRequest::Connect),
            ACTION_ANNOUNCE => UdpAnnounce::decode(b).map(UdpRequest::Announce),
            ACTION_SCRAPE => UdpScrape::decode(b).map(UdpRequest::Scrape),
            other => Err(UdpError::WrongAction(other)),
        }
    }

    /// The transaction id of any request, even one that fails to decode, so a server can
    /// address its error response (None under 16 bytes).
    pub fn transaction_id(b: &[u8]) -> Option<u32> {
        u32_at(b, 12)
    }
}

fn peer(c: &[u8], family: PeerFamily) -> Option<SocketAddr> {
    Some(match family {
        PeerFamily::V4 => {
            let ip: [u8; 4] = c.get(..4)?.try_into().ok()?;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), u16_at(c, 4)?))
        }
        PeerFamily::V6 => {
            let ip: [u8; 16] = c.get(..16)?.try_into().ok()?;
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), u16_at(c, 16)?, 0, 0))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_request_bytes() {
        let b = ConnectRequest {
            transaction_id: 0xdead_beef,
        }
        .encode();
        assert_eq!(
            b,
            [
                0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef
            ]
        );
        assert_eq!(
            ConnectRequest::decode(&b),
            Ok(ConnectRequest {
                transaction_id: 0xdead_beef
            })
        );
        let mut bad = b;
        bad[0] = 1;
        assert_eq!(ConnectRequest::decode(&bad), Err(UdpError::BadProtocolId));
        let mut bad = b;
        bad[11] = 1;
        assert_eq!(ConnectRequest::decode(&bad), Err(UdpError::WrongAction(1)));
        assert_eq!(
            ConnectRequest::decode(&b[..15]),
            Err(UdpError::Short { len: 15, need: 16 })
        );
    }

    #[test]
    fn connect_response_checks_tid_action_and_length() {
        let r = ConnectResponse {
            transaction_id: 7,
            connection_id: 0x0102_0304_0506_0708,
        };
        let b = r.encode();
        assert_eq!(&b[..8], &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(ConnectResponse::decode(&b, 7), Ok(r));
        assert_eq!(
            ConnectResponse::decode(&b, 8),
            Err(UdpError::WrongTransaction(7))
        );
        assert_eq!(
            ConnectResponse::decode(&b[..15], 7),
            Err(UdpError::Short { len: 15, need: 16 })
        );
        assert_eq!(
            ConnectResponse::decode(&b[..3], 7),
            Err(UdpError::Short { len: 3, need: 8 })
        );
        let mut other = b;
        other[3] = 1;
        assert_eq!(
            ConnectResponse::decode(&other, 7),
            Err(UdpError::WrongAction(1))
        );
    }

    #[test]
    fn error_response_is_the_trackers_message() {
        let mut b = Vec::new();
        encode_error(9, "torrent not whitelisted", &mut b);
        assert_eq!(
            ConnectResponse::decode(&b, 9),
            Err(UdpError::Tracker("torrent not whitelisted".into()))
        );
        assert_eq!(
            decode_announce_response(&b, 9, PeerFamily::V4),
            Err(UdpError::Tracker("torrent not whitelisted".into()))
        );
        // Someone else's error is ignored like any stray datagram.
        assert_eq!(
            decode_announce_response(&b, 10, PeerFamily::V4),
            Err(UdpError::WrongTransaction(9))
        );
        let mut long = Vec::new();
        encode_error(9, &"x".repeat(5000), &mut long);
        match ConnectResponse::decode(&long, 9) {
            Err(UdpError::Tracker(m)) => assert_eq!(m.len(), MAX_ERROR_MESSAGE),
            other => panic!("{other:?}"),
        }
    }

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([0xab; 20]),
            peer_id: PeerId(*b"-SW0001-abcdefghijkl"),
            port: 6881,
            uploaded: 3,
            downloaded: 2,
            left: 1,
            event: Event::Started,
            compact: true,
            no_peer_id: true,
            numwant: Some(50),
            key: None,
            trackerid: None,
            ip: None,
        }
    }

    #[test]
    fn announce_request_layout() {
        let a = UdpAnnounce::from_request(&request(), 0x1122_3344_5566_7788, 5, 0xcafe);
        let b = a.encode();
        assert_eq!(&b[..8], &0x1122_3344_5566_7788u64.to_be_bytes());
        assert_eq!(&b[8..16], &[0, 0, 0, 1, 0, 0, 0, 5]);
        assert_eq!(&b[16..36], &[0xab; 20]);
        assert_eq!(&b[36..56], b"-SW0001-abcdefghijkl");
        assert_eq!(&b[56..64], &2u64.to_be_bytes());
        assert_eq!(&b[64..72], &1u64.to_be_bytes());
        assert_eq!(&b[72..80], &3u64.to_be_bytes());
        assert_eq!(&b[80..84], &2u32.to_be_bytes(), "started is 2");
        assert_eq!(&b[84..88], &[0; 4]);
        assert_eq!(&b[88..92], &0xcafeu32.to_be_bytes());
        assert_eq!(&b[92..96], &50i32.to_be_bytes());
        assert_eq!(&b[96..98], &6881u16.to_be_bytes());
        assert_eq!(UdpAnnounce::decode(&b), Ok(a));
        assert_eq!(
            UdpAnnounce::decode(&b[..97]),
            Err(UdpError::Short { len: 97, need: 98 })
        );
        let mut bad = b;
        bad[83] = 4;
        assert_eq!(UdpAnnounce::decode(&bad), Err(UdpError::BadEvent(4)));
    }

    #[test]
    fn num_want_and_events_map() {
        let mut r = request();
        r.numwant = None;
        assert_eq!(UdpAnnounce::from_request(&r, 0, 0, 0).num_want, -1);
        r.numwant = Some(u32::MAX);
        assert_eq!(UdpAnnounce::from_request(&r, 0, 0, 0).num_want, i32::MAX);
        let codes = [
            (Event::None, 0),
            (Event::Completed, 1),
            (Event::Started, 2),
            (Event::Stopped, 3),
            (Event::Paused, 0),
        ];
        for (e, code) in codes {
            r.event = e;
            let b = UdpAnnounce::from_request(&r, 0, 0, 0).encode();
            assert_eq!(&b[80..84], &u32::to_be_bytes(code), "{e:?}");
        }
    }

    #[test]
    fn announce_response_v4_and_v6() {
        let p4 = [
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881),
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 1),
        ];
        let mut b = Vec::new();
        encode_announce_response(4, 1800, 2, 1, UdpPeers::V4(&p4), &mut b);
        assert_eq!(b.len(), 20 + 12);
        let r = decode_announce_response(&b, 4, PeerFamily::V4).unwrap();
        assert_eq!(r.interval, Some(1800));
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(2)));
        assert_eq!(r.peers, p4.map(SocketAddr::from).to_vec());
        // The same 12 bytes are no whole 18-byte peer.
        assert_eq!(
            decode_announce_response(&b, 4, PeerFamily::V6),
            Err(UdpError::BadPeerList { len: 12, size: 18 })
        );
        assert_eq!(
            decode_announce_response(&b[..b.len() - 1], 4, PeerFamily::V4),
            Err(UdpError::BadPeerList { len: 11, size: 6 })
        );
        assert_eq!(
            decode_announce_response(&b[..19], 4, PeerFamily::V4),
            Err(UdpError::Short { len: 19, need: 20 })
        );
        let p6 = [SocketAddrV6::new(Ipv6Addr::LOCALHOST, 51413, 0, 0)];
        let mut b = Vec::new();
        encode_announce_response(4, 60, 0, 0, UdpPeers::V6(&p6), &mut b);
        let r = decode_announce_response(&b, 4, PeerFamily::V6).unwrap();
        assert_eq!(r.peers, vec![SocketAddr::from(p6[0])]);
        // A connect response is not an announce response.
        let c = ConnectResponse {
            transaction_id: 4,
            connection_id: 1,
        }
        .encode();
        assert_eq!(
            decode_announce_response(&c, 4, PeerFamily::V4),
            Err(UdpError::WrongAction(0))
        );
    }

    #[test]
    fn caps_decoded_peers() {
        let p4: Vec<_> = (0..MAX_DECODED_PEERS as u32 + 10)
            .map(|i| SocketAddrV4::new(Ipv4Addr::from(i), 1))
            .collect();
        let mut b = Vec::new();
        encode_announce_response(1, 1, 1, 1, UdpPeers::V4(&p4), &mut b);
        let r = decode_announce_response(&b, 1, PeerFamily::V4).unwrap();
        assert_eq!(r.peers.len(), MAX_DECODED_PEERS);
    }

    #[test]
    fn scrape_request_and_response() {
        let req = UdpScrape {
            connection_id: 0x0102_0304_0506_0708,
            transaction_id: 9,
            info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
        };
        let mut b = Vec::new();
        req.encode(&mut b).unwrap();
        assert_eq!(b.len(), SCRAPE_HEADER + 40);
        assert_eq!(&b[8..12], &[0, 0, 0, 2]);
        assert_eq!(UdpScrape::decode(&b), Ok(req.clone()));
        assert_eq!(UdpRequest::decode(&b), Ok(UdpRequest::Scrape(req)));
        // A trailing partial hash is ignored, none at all refused.
        b.extend_from_slice(&[7; 5]);
        assert_eq!(UdpScrape::decode(&b).unwrap().info_hashes.len(), 2);
        assert_eq!(
            UdpScrape::decode(&b[..SCRAPE_HEADER + 19]),
            Err(UdpError::ScrapeCount(0))
        );
        let many = UdpScrape {
            connection_id: 1,
            transaction_id: 1,
            info_hashes: vec![InfoHash([3; 20]); MAX_SCRAPE_HASHES + 1],
        };
        assert_eq!(
            many.encode(&mut Vec::new()),
            Err(UdpError::ScrapeCount(MAX_SCRAPE_HASHES + 1))
        );

        let stats = [
            ScrapeStats {
                complete: 5,
                downloaded: 7,
                incomplete: 3,
            },
            ScrapeStats {
                complete: u64::MAX,
                downloaded: 0,
                incomplete: 1,
            },
        ];
        let mut r = Vec::new();
        encode_scrape_response(9, stats, &mut r);
        assert_eq!(r.len(), 8 + 24);
        let got = decode_scrape_response(&r, 9, 2).unwrap();
        assert_eq!(got[0], stats[0]);
        assert_eq!(got[1].complete, u64::from(u32::MAX), "saturated");
        assert_eq!(decode_scrape_response(&r, 9, 1).unwrap().len(), 1);
        assert_eq!(
            decode_scrape_response(&r, 8, 2),
            Err(UdpError::WrongTransaction(9))
        );
        assert_eq!(
            decode_scrape_response(&r[..r.len() - 1], 9, 2),
            Err(UdpError::BadScrapeList(23))
        );
        let mut e = Vec::new();
        encode_error(9, "not here", &mut e);
        assert_eq!(
            decode_scrape_response(&e, 9, 2),
            Err(UdpError::Tracker("not here".into()))
        );
    }

    #[test]
    fn url_data_options_round_trip_and_bounds() {
        let a = UdpAnnounce::from_request(&request(), 1, 2, 3);
        let mut plain = Vec::new();
        a.encode_with_url_data(b"", &mut plain);
        assert_eq!(plain.len(), ANNOUNCE_REQUEST_LEN, "no options without data");
        assert_eq!(UdpAnnounce::url_data(&plain), Ok(Vec::new()));

        let long: Vec<u8> = (0..600u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut b = Vec::new();
        a.encode_with_url_data(&long, &mut b);
        // 600 bytes = 255 + 255 + 90, each with a 2-byte option head, then END.
        assert_eq!(b.len(), ANNOUNCE_REQUEST_LEN + 600 + 3 * 2 + 1);
        assert_eq!(UdpAnnounce::url_data(&b), Ok(long));
        assert_eq!(UdpAnnounce::decode(&b), Ok(a));
        assert_eq!(UdpRequest::decode(&b), Ok(UdpRequest::Announce(a)));

        // NOPs are skipped; the datagram's end ends the options too.
        let mut n = plain.clone();
        n.extend_from_slice(&[1, 1, 2, 3, b'/', b'a', b'b']);
        assert_eq!(UdpAnnounce::url_data(&n), Ok(b"/ab".to_vec()));
        // An option running past the end, or an unknown type, is refused.
        let mut cut = plain.clone();
        cut.extend_from_slice(&[2, 9, b'/']);
        assert_eq!(UdpAnnounce::url_data(&cut), Err(UdpError::BadOptions));
        let mut unknown = plain.clone();
        unknown.push(7);
        assert_eq!(UdpAnnounce::url_data(&unknown), Err(UdpError::BadOptions));
        // More than MAX_URL_DATA in all is refused; the encoder never sends that much.
        let mut big = plain;
        for _ in 0..5 {
            big.push(2);
            big.push(255);
            big.extend_from_slice(&[b'x'; 255]);
        }
        assert_eq!(UdpAnnounce::url_data(&big), Err(UdpError::BadOptions));
        let mut capped = Vec::new();
        a.encode_with_url_data(&[b'y'; 2000], &mut capped);
        assert_eq!(UdpAnnounce::url_data(&capped).unwrap().len(), MAX_URL_DATA);
    }

    #[test]
    fn request_dispatch_names_unknown_actions() {
        let c = ConnectRequest { transaction_id: 4 }.encode();
        assert_eq!(
            UdpRequest::decode(&c),
            Ok(UdpRequest::Connect(ConnectRequest { transaction_id: 4 }))
        );
        let mut odd = c;
        odd[11] = 9;
        assert_eq!(UdpRequest::decode(&odd), Err(UdpError::WrongAction(9)));
        assert_eq!(UdpRequest::transaction_id(&odd), Some(4));
        assert_eq!(UdpRequest::transaction_id(&odd[..15]), None);
        assert!(matches!(
            UdpRequest::decode(&c[..15]),
            Err(UdpError::Short { .. })
        ));
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::None),
            Just(Event::Completed),
            Just(Event::Started),
            Just(Event::Stopped),
        ]
    }

    proptest! {
        #[test]
        fn announce_request_round_trips(
            connection_id in any::<u64>(), transaction_id in any::<u32>(),
            ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>(),
            downloaded in any::<u64>(), left in any::<u64>(), uploaded in any::<u64>(),
            event in event(), ip in any::<u32>(), key in any::<u32>(),
            num_want in any::<i32>(), port in any::<u16>(),
        ) {
            let a = UdpAnnounce {
                connection_id, transaction_id, info_hash: InfoHash(ih), peer_id: PeerId(pid),
                downloaded, left, uploaded, event, ip, key, num_want, port,
            };
            prop_assert_eq!(UdpAnnounce::decode(&a.encode()), Ok(a));
        }

        #[test]
        fn connect_round_trips(tid in any::<u32>(), cid in any::<u64>()) {
            let req = ConnectRequest { transaction_id: tid };
            prop_assert_eq!(ConnectRequest::decode(&req.encode()), Ok(req));
            let resp = ConnectResponse { transaction_id: tid, connection_id: cid };
            prop_assert_eq!(ConnectResponse::decode(&resp.encode(), tid), Ok(resp));
        }

        #[test]
        fn announce_response_round_trips(
            tid in any::<u32>(), interval in any::<u32>(),
            leechers in any::<u32>(), seeders in any::<u32>(),
            p4 in proptest::collection::vec(
                (any::<u32>(), any::<u16>()).prop_map(|(i, p)| SocketAddrV4::new(i.into(), p)),
                0..100),
            p6 in proptest::collection::vec(
                (any::<u128>(), any::<u16>())
                    .prop_map(|(i, p)| SocketAddrV6::new(Ipv6Addr::from(i), p, 0, 0)),
                0..50),
        ) {
            let mut b = Vec::new();
            encode_announce_response(tid, interval, leechers, seeders, UdpPeers::V4(&p4), &mut b);
            let r = decode_announce_response(&b, tid, PeerFamily::V4).unwrap();
            prop_assert_eq!(r.interval, Some(interval));
            prop_assert_eq!(r.complete, Some(u64::from(seeders)));
            prop_assert_eq!(r.incomplete, Some(u64::from(leechers)));
            prop_assert_eq!(r.peers, p4.iter().map(|&a| a.into()).collect::<Vec<SocketAddr>>());
            let mut b = Vec::new();
            encode_announce_response(tid, interval, leechers, seeders, UdpPeers::V6(&p6), &mut b);
            let r = decode_announce_response(&b, tid, PeerFamily::V6).unwrap();
            prop_assert_eq!(r.peers, p6.iter().map(|&a| a.into()).collect::<Vec<SocketAddr>>());
        }

        #[test]
        fn error_round_trips(tid in any::<u32>(), msg in "[^\0]{0,100}") {
            let mut b = Vec::new();
            encode_error(tid, &msg, &mut b);
            prop_assert_eq!(ConnectResponse::decode(&b, tid), Err(UdpError::Tracker(msg)));
        }

        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300),
                                tid in any::<u32>()) {
            let _ = ConnectRequest::decode(&raw);
            let _ = ConnectResponse::decode(&raw, tid);
            let _ = UdpAnnounce::decode(&raw);
            let _ = decode_announce_response(&raw, tid, PeerFamily::V4);
            let _ = decode_announce_response(&raw, tid, PeerFamily::V6);
            let _ = UdpRequest::decode(&raw);
            let _ = UdpRequest::transaction_id(&raw);
            let _ = UdpAnnounce::url_data(&raw);
            let _ = decode_scrape_response(&raw, tid, 74);
        }

        #[test]
        fn garbage_with_our_tid_never_panics(
            action in 0u32..5, tid in any::<u32>(),
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut b = Vec::new();
            b.extend_from_slice(&action.to_be_bytes());
            b.extend_from_slice(&tid.to_be_bytes());
            b.extend_from_slice(&rest);
            let _ = ConnectResponse::decode(&b, tid);
            let _ = decode_announce_response(&b, tid, PeerFamily::V4);
            let _ = decode_announce_response(&b, tid, PeerFamily::V6);
            let _ = decode_scrape_response(&b, tid, usize::MAX);
        }
    }
}
