//! The announce response: encoded by the tracker straight into one buffer ([`AnnounceReply`]),
//! decoded by the client ([`AnnounceResponse`]). Peers go out compact (BEP 23, 6 bytes each, and
//! BEP 7 `peers6`, 18 bytes each) or as a list of `ip`/`port` dictionaries. The tracker stores no
//! peer ids, so dictionary peers never carry `peer id` (clients tolerate its absence).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use std::io::Write as _;

use bencode::{Limits, Value, put_bytes, put_uint};

use crate::error::ResponseError;

/// Most peers [`AnnounceResponse::decode`] keeps; later ones are dropped.
pub const MAX_DECODED_PEERS: usize = 2000;

/// How peers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerForm {
    /// `peers` as 6-byte entries and `peers6` as 18-byte entries.
    Compact,
    /// `peers` as a list of `{ip, port}` dictionaries, IPv4 then IPv6.
    Dicts,
}

/// A response being encoded by the tracker; borrows everything.
#[derive(Debug, Clone, Copy)]
pub struct AnnounceReply<'a> {
    /// Seconds the client should wait before re-announcing.
    pub interval: u32,
    /// Seconds the client must wait at least.
    pub min_interval: Option<u32>,
    /// Seeders in the swarm.
    pub complete: u64,
    /// Leechers in the swarm.
    pub incomplete: u64,
    /// Opaque id the client should echo as `trackerid`.
    pub tracker_id: Option<&'a [u8]>,
    /// A non-fatal message for the user.
    pub warning: Option<&'a str>,
    /// IPv4 peers.
    pub peers4: &'a [SocketAddrV4],
    /// IPv6 peers.
    pub peers6: &'a [SocketAddrV6],
}

/// Appends `d14:failure reason<len>:<reason>e`.
pub fn encode_failure(reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"d14:failure reason");
    put_bytes(out, reason.as_bytes());
    out.push(b'e');
}

/// Writes the `<len>:` head of a byte string whose bytes the caller appends.
fn put_len(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len}:");
}

fn put_peer_dict(out: &mut Vec<u8>, ip: IpAddr, port: u16) {
    out.extend_from_slice(b"d2:ip");
    put_bytes(out, ip.to_string().as_bytes());
    out.extend_from_slice(b"4:port");
    put_uint(out, u64::from(port));
    out.push(b'e');
}

impl AnnounceReply<'_> {
    /// Appends the bencoded response (keys in sorted order) to `out`.
    pub fn encode(&self, form: PeerForm, out: &mut Vec<u8>) {
        out.reserve(96 + 6 * self.peers4.len() + 18 * self.peers6.len());
        out.extend_from_slice(b"d8:complete");
        put_uint(out, self.complete);
        out.extend_from_slice(b"10:incomplete");
        put_uint(out, self.incomplete);
        out.extend_from_slice(b"8:interval");
        put_uint(out, u64::from(self.interval));
        if let Some(m) = self.min_interval {
            out.extend_from_slice(b"12:min interval");
            put_uint(out, u64::from(m));
        }
        match form {
            PeerForm::Compact => {
                out.extend_from_slice(b"5:peers");
                put_len(out, 6 * self.peers4.len());
                for p in self.peers4 {
                    out.extend_from_slice(&p.ip().octets());
                    out.extend_from_slice(&p.port().to_be_bytes());
                }
                if !self.peers6.is_empty() {
                    out.extend_from_slice(b"6:peers6");
                    put_len(out, 18 * self.peers6.len());
                    for p in self.peers6 {
                        out.extend_from_slice(&p.ip().octets());
                        out.extend_from_slice(&p.port().to_be_bytes());
                    }
                }
            }
            PeerForm::Dicts => {
                out.extend_from_slice(b"5:peersl");
                for p in self.peers4 {
                    put_peer_dict(out, IpAddr::V4(*p.ip()), p.port());
                }
                for p in self.peers6 {
                    put_peer_dict(out, IpAddr::V6(*p.ip()), p.port());
                }
                out.push(b'e');
            }
        }
        if let Some(id) = self.tracker_id {
            out.extend_from_slice(b"10:tracker id");
            put_bytes(out, id);
        }
        if let Some(w) = self.warning {
            out.extend_from_slice(b"15:warning message");
            put_bytes(out, w.as_bytes());
        }
        out.push(b'e');
    }
}

/// A decoded response, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// Seconds until the next announce, if the tracker said.
    pub interval: Option<u32>,
    /// Minimum seconds between announces, if the tracker said.
    pub min_interval: Option<u32>,
    /// Seeders, if the tracker said.
    pub complete: Option<u64>,
    /// Leechers, if the tracker said.
    pub incomplete: Option<u64>,
    /// The id to echo as `trackerid`.
    pub tracker_id: Option<Vec<u8>>,
    /// A non-fatal message (lossy UTF-8).
    pub warning: Option<String>,
    /// Peers from `peers` (either form) then `peers6`, at most [`MAX_DECODED_PEERS`].
    pub peers: Vec<SocketAddr>,
}

fn non_negative<T: TryFrom<i64>>(v: &Value<'_>, field: &'static str) -> Result<T, ResponseError> {
    v.as_int()
        .and_then(|i| T::try_from(i).ok())
        .ok_or(ResponseError::BadField(field))
}

fn text(v: &Value<'_>, field: &'static str) -> Result<String, ResponseError> {
    let b = v.as_bytes().ok_or(ResponseError::BadField(field))?;
    Ok(String::from_utf8_lossy(b).into_owned())
}

fn push_capped(peers: &mut Vec<SocketAddr>, a: SocketAddr) {
    if peers.len() < MAX_DECODED_PEERS {
        peers.push(a);
    }
}

fn compact4(chunk: &[u8]) -> Option<SocketAddr> {
    let b: [u8; 6] = chunk.try_into().ok()?;
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    Some(SocketAddr::new(
        IpAddr::V4(ip),
        u16::from_be_bytes([b[4], b[5]]),
    ))
}

fn compact6(chunk: &[u8]) -> Option<SocketAddr> {
    let b: [u8; 18] = chunk.try_into().ok()?;
    let (ip, port) = b.split_at(16);
    let ip: [u8; 16] = ip.try_into().ok()?;
    let port: [u8; 2] = port.try_into().ok()?;
    Some(SocketAddr::new(
        IpAddr::V6(Ipv6Addr::from(ip)),
        u16::from_be_bytes(port),
    ))
}

/// One `{ip, port, ...}` dictionary; `None` for a peer whose `ip` is a host name.
fn peer_dict(v: &Value<'_>) -> Result<Option<SocketAddr>, ResponseError> {
    if v.as_dict().is_none() {
        return Err(ResponseError::BadField("peers"));
    }
    let port: u16 = non_negative(
        v.get(b"port").ok_or(ResponseError::BadField("port"))?,
        "port",
    )?;
    let ip = v
        .get(b"ip")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<IpAddr>().ok());
    Ok(ip.map(|ip| SocketAddr::new(ip, port)))
}

/// Appends the peers of a `peers` value in either form.
fn peers_value(v: &Value<'_>, out: &mut Vec<SocketAddr>) -> Result<(), ResponseError> {
    if let Some(list) = v.as_list() {
        for item in list {
            if let Some(a) = peer_dict(item)? {
                push_capped(out, a);
            }
        }
        return Ok(());
    }
    let raw = v.as_bytes().ok_or(ResponseError::BadField("peers"))?;
    if raw.len() % 6 != 0 {
        return Err(ResponseError::BadField("peers"));
    }
    raw.chunks_exact(6)
        .filter_map(compact4)
        .for_each(|a| push_capped(out, a));
    Ok(())
}

/// Decodes the top-level dictionary of a tracker response, turning `failure reason` into an
/// error.
pub(crate) fn top_dict(body: &[u8]) -> Result<Value<'_>, ResponseError> {
    let v = bencode::decode_with(body, &RESPONSE_LIMITS)?;
    if v.as_dict().is_none() {
        return Err(ResponseError::NotADict);
    }
    if let Some(f) = v.get(b"failure reason") {
        return Err(ResponseError::Failure(text(f, "failure reason")?));
    }
    Ok(v)
}

/// Caps on a response body: 8 MiB, shallow nesting, and enough values for a few thousand peers.
const RESPONSE_LIMITS: Limits = Limits {
    max_len: 8 << 20,
    max_depth: 8,
    max_items: 1 << 17,
};

impl AnnounceResponse {
    /// Decodes a response body; a `failure reason` becomes [`ResponseError::Failure`].
    pub fn decode(body: &[u8]) -> Result<AnnounceResponse, ResponseError> {
        let v = top_dict(body)?;
        let mut resp = AnnounceResponse::default();
        if let Some(w) = v.get(b"warning message") {
            resp.warning = Some(text(w, "warning message")?);
        }
        if let Some(i) = v.get(b"interval") {
            resp.interval = Some(non_negative(i, "interval")?);
        }
        if let Some(i) = v.get(b"min interval") {
            resp.min_interval = Some(non_negative(i, "min interval")?);
        }
        if let Some(c) = v.get(b"complete") {
            resp.complete = Some(non_negative(c, "complete")?);
        }
        if let Some(c) = v.get(b"incomplete") {
            resp.incomplete = Some(non_negative(c, "incomplete")?);
        }
        if let Some(t) = v.get(b"tracker id") {
            let id = t.as_bytes().ok_or(ResponseError::BadField("tracker id"))?;
            resp.tracker_id = Some(id.to_vec());
        }
        if let Some(p) = v.get(b"peers") {
            peers_value(p, &mut resp.peers)?;
        }
        if let Some(p6) = v.get(b"peers6") {
            let raw = p6.as_bytes().ok_or(ResponseError::BadField("peers6"))?;
            if raw.len() % 18 != 0 {
                return Err(ResponseError::BadField("peers6"));
            }
            raw.chunks_exact(18)
                .filter_map(compact6)
                .for_each(|a| push_capped(&mut resp.peers, a));
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reply<'a>(p4: &'a [SocketAddrV4], p6: &'a [SocketAddrV6]) -> AnnounceReply<'a> {
        AnnounceReply {
            interval: 1800,
            min_interval: Some(900),
            complete: 3,
            incomplete: 4,
            tracker_id: None,
            warning: None,
            peers4: p4,
            peers6: p6,
        }
    }

    #[test]
    fn compact_bytes_are_exact() {
        let p4 = [SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881)];
        let mut out = Vec::new();
        reply(&p4, &[]).encode(PeerForm::Compact, &mut out);
        assert_eq!(
            out,
            b"d8:completei3e10:incompletei4e8:intervali1800e12:min intervali900e5:peers6:\x0a\x00\x00\x01\x1a\xe1e"
        );
    }

    #[test]
    fn dict_form_lists_ip_and_port() {
        let p4 = [SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 80)];
        let p6 = [SocketAddrV6::new(Ipv6Addr::LOCALHOST, 81, 0, 0)];
        let mut out = Vec::new();
        reply(&p4, &p6).encode(PeerForm::Dicts, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("5:peersld2:ip7:1.2.3.44:porti80eed2:ip3:::14:porti81eee"));
        let back = AnnounceResponse::decode(&out).unwrap();
        assert_eq!(back.peers, vec![p4[0].into(), p6[0].into()]);
    }

    #[test]
    fn failure_becomes_an_error() {
        let mut out = Vec::new();
        encode_failure("missing info_hash", &mut out);
        assert_eq!(out, b"d14:failure reason17:missing info_hashe");
        assert_eq!(
            AnnounceResponse::decode(&out),
            Err(ResponseError::Failure("missing info_hash".into()))
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            AnnounceResponse::decode(b"le"),
            Err(ResponseError::NotADict)
        );
        assert_eq!(
            AnnounceResponse::decode(b"d5:peers5:abcdee"),
            Err(ResponseError::BadField("peers"))
        );
        assert_eq!(
            AnnounceResponse::decode(b"d8:intervali-1ee"),
            Err(ResponseError::BadField("interval"))
        );
        assert!(matches!(
            AnnounceResponse::decode(b"dexx"),
            Err(ResponseError::Bencode(_))
        ));
        let deep = format!("d1:x{}{}e", "l".repeat(50), "e".repeat(50));
        assert!(matches!(
            AnnounceResponse::decode(deep.as_bytes()),
            Err(ResponseError::Bencode(_))
        ));
        assert!(AnnounceResponse::decode(b"d8:interval").is_err());
    }

    #[test]
    fn skips_unknown_keys_and_host_names() {
        let body = b"d3:fooli1ed1:xi2eee5:peersld2:ip9:host.name4:porti1eeee";
        let r = AnnounceResponse::decode(body).unwrap();
        assert!(r.peers.is_empty());
    }

    #[test]
    fn caps_decoded_peers() {
        let p4: Vec<_> = (0..MAX_DECODED_PEERS as u32 + 10)
            .map(|i| SocketAddrV4::new(Ipv4Addr::from(i), 1))
            .collect();
        let mut out = Vec::new();
        reply(&p4, &[]).encode(PeerForm::Compact, &mut out);
        let r = AnnounceResponse::decode(&out).unwrap();
        assert_eq!(r.peers.len(), MAX_DECODED_PEERS);
    }

    fn v4() -> impl Strategy<Value = SocketAddrV4> {
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(ip.into(), port))
    }

    fn v6() -> impl Strategy<Value = SocketAddrV6> {
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(
            interval in any::<u32>(), min_interval in proptest::option::of(any::<u32>()),
            complete in any::<u64>().prop_map(|v| v >> 1), incomplete in any::<u64>().prop_map(|v| v >> 1),
            tracker_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
            warning in proptest::option::of(".{0,40}"),
            p4 in proptest::collection::vec(v4(), 0..60),
            p6 in proptest::collection::vec(v6(), 0..60),
            compact in any::<bool>(),
        ) {
            let r = AnnounceReply {
                interval, min_interval, complete, incomplete,
                tracker_id: tracker_id.as_deref(), warning: warning.as_deref(),
                peers4: &p4, peers6: &p6,
            };
            let mut out = Vec::new();
            r.encode(if compact { PeerForm::Compact } else { PeerForm::Dicts }, &mut out);
            let back = AnnounceResponse::decode(&out).unwrap();
            let want: Vec<SocketAddr> = p4.iter().map(|&a| a.into())
                .chain(p6.iter().map(|&a| a.into())).collect();
            prop_assert_eq!(back, AnnounceResponse {
                interval: Some(interval), min_interval, complete: Some(complete),
                incomplete: Some(incomplete), tracker_id, warning, peers: want,
            });
        }

        #[test]
        fn failure_round_trips(reason in ".{0,80}") {
            let mut out = Vec::new();
            encode_failure(&reason, &mut out);
            prop_assert_eq!(AnnounceResponse::decode(&out), Err(ResponseError::Failure(reason)));
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = AnnounceResponse::decode(&raw);
        }
    }
}
