//! The announce request (BEP 3, 23, 21): parsed from a raw query on the tracker, built into a
//! query on the client.
//!
//! Parsing policy: `info_hash`, `peer_id`, `port` and `left` are required; `uploaded` and
//! `downloaded` default to 0; `compact` defaults to 1. Unknown parameters are ignored (clients send
//! many). A known parameter given twice is refused ([`QueryError::Duplicate`]) rather than one
//! copy silently winning. `+` is a literal byte, not a space. Values are decoded into fixed
//! buffers, so parsing does not touch the heap.

use metainfo::{InfoHash, PeerId};

use crate::error::QueryError;
use crate::query::{
    decoded_len, name_is, params, parse_u64, percent_decode_into, percent_encode_into,
};

/// What an announce reports (BEP 3 events, plus BEP 21 `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    /// A regular re-announce (no `event`, or `event=empty`).
    #[default]
    None,
    /// The first announce of a download.
    Started,
    /// The download just finished.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
    /// BEP 21: a partial seed that is not downloading.
    Paused,
}

impl Event {
    /// The query value, or `None` for [`Event::None`].
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
            Event::Paused => Some("paused"),
        }
    }

    fn from_bytes(b: &[u8]) -> Option<Event> {
        Some(match b {
            b"" | b"empty" => Event::None,
            b"started" => Event::Started,
            b"completed" => Event::Completed,
            b"stopped" => Event::Stopped,
            b"paused" => Event::Paused,
            _ => return None,
        })
    }
}

/// Capacity of a [`ParamBytes`].
pub const PARAM_BYTES_MAX: usize = 64;

/// A short raw byte string (`key`, `trackerid`, `ip`) held inline, at most [`PARAM_BYTES_MAX`].
#[derive(Clone, Copy)]
pub struct ParamBytes {
    len: u8,
    buf: [u8; PARAM_BYTES_MAX],
}

impl ParamBytes {
    /// Copies `b`, or `None` when it is longer than [`PARAM_BYTES_MAX`].
    pub fn new(b: &[u8]) -> Option<ParamBytes> {
        let mut buf = [0u8; PARAM_BYTES_MAX];
        buf.get_mut(..b.len())?.copy_from_slice(b);
        Some(ParamBytes {
            len: u8::try_from(b.len()).ok()?,
            buf,
        })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn decode(param: &'static str, encoded: &[u8]) -> Result<ParamBytes, QueryError> {
        let mut buf = [0u8; PARAM_BYTES_MAX];
        let n = percent_decode_into(encoded, &mut buf).map_err(|e| e.into_error(param))?;
        let len = u8::try_from(n).map_err(|_| QueryError::TooLong(param))?;
        Ok(ParamBytes { len, buf })
    }
}

impl PartialEq for ParamBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ParamBytes {}

impl std::fmt::Debug for ParamBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One announce: who the peer is, how far it got, and what it wants back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The announcing peer's id.
    pub peer_id: PeerId,
    /// The port the peer listens on (never 0).
    pub port: u16,
    /// Bytes uploaded since `started`.
    pub uploaded: u64,
    /// Bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes still missing; 0 means a seeder.
    pub left: u64,
    /// What happened.
    pub event: Event,
    /// BEP 23 compact peer lists wanted.
    pub compact: bool,
    /// Leave `peer id` out of dictionary-form peers.
    pub no_peer_id: bool,
    /// How many peers the client wants, if it said.
    pub numwant: Option<u32>,
    /// The client's private key for recognising it across IP changes.
    pub key: Option<ParamBytes>,
    /// The `tracker id` a previous response gave.
    pub trackerid: Option<ParamBytes>,
    /// The address the client claims (trackers normally ignore it).
    pub ip: Option<ParamBytes>,
}

fn set_once<T>(slot: &mut Option<T>, param: &'static str, v: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Duplicate(param));
    }
    *slot = Some(v);
    Ok(())
}

pub(crate) fn decode20(param: &'static str, encoded: &[u8]) -> Result<[u8; 20], QueryError> {
    let mut buf = [0u8; 20];
    let n = match percent_decode_into(encoded, &mut buf) {
        Ok(n) => n,
        // Too long: report the real length (a hex info-hash decodes to 40 bytes, a common slip).
        Err(crate::query::DecodeFail::TooLong) => {
            decoded_len(encoded).map_err(|e| e.into_error(param))?
        }
        Err(e) => return Err(e.into_error(param)),
    };
    buf.get(..n)
        .and_then(|b| <[u8; 20]>::try_from(b).ok())
        .ok_or(QueryError::WrongLength { param, len: n })
}

fn decode_flag(param: &'static str, encoded: &[u8]) -> Result<bool, QueryError> {
    match encoded {
        b"1" | b"%31" => Ok(true),
        b"0" | b"%30" => Ok(false),
        _ => Err(QueryError::BadFlag(param)),
    }
}

impl AnnounceRequest {
    /// Parses the raw (still percent-encoded) query string of `GET /announce?...`.
    pub fn parse_query(raw_query: &[u8]) -> Result<AnnounceRequest, QueryError> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let mut uploaded = None;
        let mut downloaded = None;
        let mut left = None;
        let mut event = None;
        let mut compact = None;
        let mut no_peer_id = None;
        let mut numwant = None;
        let mut key = None;
        let mut trackerid = None;
        let mut ip = None;
        for p in params(raw_query) {
            let (n, v) = (p.name, p.value);
            if name_is(n, "info_hash") {
                set_once(&mut info_hash, "info_hash", decode20("info_hash", v)?)?;
            } else if name_is(n, "peer_id") {
                set_once(&mut peer_id, "peer_id", decode20("peer_id", v)?)?;
            } else if name_is(n, "port") {
                let raw = parse_u64("port", v).map_err(|e| match e {
                    QueryError::NumberTooLarge(_) => QueryError::PortTooLarge,
                    e => e,
                })?;
                let port_num = match u16::try_from(raw) {
                    Ok(0) => return Err(QueryError::PortZero),
                    Ok(p) => p,
                    Err(_) => return Err(QueryError::PortTooLarge),
                };
                set_once(&mut port, "port", port_num)?;
            } else if name_is(n, "uploaded") {
                set_once(&mut uploaded, "uploaded", parse_u64("uploaded", v)?)?;
            } else if name_is(n, "downloaded") {
                set_once(&mut downloaded, "downloaded", parse_u64("downloaded", v)?)?;
            } else if name_is(n, "left") {
                set_once(&mut left, "left", parse_u64("left", v)?)?;
            } else if name_is(n, "event") {
                let mut buf = [0u8; 16];
                let len = percent_decode_into(v, &mut buf).map_err(|_| QueryError::UnknownEvent)?;
                let e = buf
                    .get(..len)
                    .and_then(Event::from_bytes)
                    .ok_or(QueryError::UnknownEvent)?;
                set_once(&mut event, "event", e)?;
            } else if name_is(n, "compact") {
                set_once(&mut compact, "compact", decode_flag("compact", v)?)?;
            } else if name_is(n, "no_peer_id") {
                set_once(&mut no_peer_id, "no_peer_id", decode_flag("no_peer_id", v)?)?;
            } else if name_is(n, "numwant") {
                let raw = parse_u64("numwant", v)?;
                let nw = u32::try_from(raw).map_err(|_| QueryError::NumberTooLarge("numwant"))?;
                set_once(&mut numwant, "numwant", nw)?;
            } else if name_is(n, "key") {
                set_once(&mut key, "key", ParamBytes::decode("key", v)?)?;
            } else if name_is(n, "trackerid") {
                set_once(
                    &mut trackerid,
                    "trackerid",
                    ParamBytes::decode("trackerid", v)?,
                )?;
            } else if name_is(n, "ip") {
                set_once(&mut ip, "ip", ParamBytes::decode("ip", v)?)?;
            }
        }
        Ok(AnnounceRequest {
            info_hash: InfoHash(info_hash.ok_or(QueryError::Missing("info_hash"))?),
            peer_id: PeerId(peer_id.ok_or(QueryError::Missing("peer_id"))?),
            port: port.ok_or(QueryError::Missing("port"))?,
            uploaded: uploaded.unwrap_or(0),
            downloaded: downloaded.unwrap_or(0),
            left: left.ok_or(QueryError::Missing("left"))?,
            event: event.unwrap_or_default(),
            compact: compact.unwrap_or(true),
            no_peer_id: no_peer_id.unwrap_or(false),
            numwant,
            key,
            trackerid,
            ip,
        })
    }

    /// The query string (without `?`) a client appends to the announce URL.
    pub fn to_query(&self) -> String {
        let mut q = String::with_capacity(200);
        q.push_str("info_hash=");
        percent_encode_into(self.info_hash.as_bytes(), &mut q);
        q.push_str("&peer_id=");
        percent_encode_into(self.peer_id.as_bytes(), &mut q);
        let nums = [
            ("&port=", u64::from(self.port)),
            ("&uploaded=", self.uploaded),
            ("&downloaded=", self.downloaded),
            ("&left=", self.left),
        ];
        for (name, v) in nums {
            q.push_str(name);
            q.push_str(&v.to_string());
        }
        q.push_str(if self.compact {
            "&compact=1"
        } else {
            "&compact=0"
        });
        if self.no_peer_id {
            q.push_str("&no_peer_id=1");
        }
        if let Some(e) = self.event.as_str() {
            q.push_str("&event=");
            q.push_str(e);
        }
        if let Some(n) = self.numwant {
            q.push_str("&numwant=");
            q.push_str(&n.to_string());
        }
        let opt = [
            ("&key=", &self.key),
            ("&trackerid=", &self.trackerid),
            ("&ip=", &self.ip),
        ];
        for (name, v) in opt {
            if let Some(v) = v {
                q.push_str(name);
                percent_encode_into(v.as_bytes(), &mut q);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IH: &str = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
    const PID: &str = "-SW0001-abcdefghijkl";

    fn q(extra: &str) -> String {
        format!("info_hash={IH}&peer_id={PID}&port=6881&left=10{extra}")
    }

    #[test]
    fn parses_a_typical_announce() {
        let r = AnnounceRequest::parse_query(
            q("&uploaded=1&downloaded=2&event=started&compact=1&numwant=80&key=ab%20c&supportcrypto=1")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.info_hash.as_bytes()[..4], [0x12, 0x34, 0x56, 0x78]);
        assert_eq!(r.peer_id.as_bytes(), PID.as_bytes());
        assert_eq!((r.port, r.uploaded, r.downloaded, r.left), (6881, 1, 2, 10));
        assert_eq!(r.event, Event::Started);
        assert!(r.compact && !r.no_peer_id);
        assert_eq!(r.numwant, Some(80));
        assert_eq!(r.key.unwrap().as_bytes(), b"ab c");
        assert_eq!(r.ip, None);
    }

    #[test]
    fn defaults_for_optional_parameters() {
        let r = AnnounceRequest::parse_query(q("").as_bytes()).unwrap();
        assert_eq!((r.uploaded, r.downloaded), (0, 0));
        assert_eq!(r.event, Event::None);
        assert!(r.compact);
        assert_eq!(r.numwant, None);
    }

    fn err(query: &str) -> QueryError {
        AnnounceRequest::parse_query(query.as_bytes()).unwrap_err()
    }

    #[test]
    fn names_each_problem() {
        assert_eq!(
            err(&format!("peer_id={PID}&port=1&left=0")),
            QueryError::Missing("info_hash")
        );
        assert_eq!(
            err(&format!("info_hash=abc&peer_id={PID}&port=1&left=0")),
            QueryError::WrongLength {
                param: "info_hash",
                len: 3
            }
        );
        assert_eq!(
            err(&format!("info_hash={IH}x&peer_id={PID}&port=1&left=0")),
            QueryError::WrongLength {
                param: "info_hash",
                len: 21
            }
        );
        assert_eq!(
            err(&format!(
                "info_hash={}&peer_id={PID}&port=1&left=0",
                "ab".repeat(20)
            )),
            QueryError::WrongLength {
                param: "info_hash",
                len: 40
            }
        );
        assert_eq!(
            err(&format!("info_hash={IH}&peer_id={PID}&port=0&left=0")),
            QueryError::PortZero
        );
        assert_eq!(
            err(&format!("info_hash={IH}&peer_id={PID}&port=65536&left=0")),
            QueryError::PortTooLarge
        );
        assert_eq!(
            err(&format!(
                "info_hash={IH}&peer_id={PID}&port=99999999999999999999999&left=0"
            )),
            QueryError::PortTooLarge
        );
        assert_eq!(
            err(&format!("info_hash={IH}&peer_id={PID}&port=http&left=0")),
            QueryError::NotANumber("port")
        );
        assert_eq!(
            err(&format!("info_hash={IH}&peer_id={PID}&port=1&left=-1")),
            QueryError::Negative("left")
        );
        assert_eq!(
            err(&format!("info_hash={IH}&peer_id={PID}&port=1&left=ten")),
            QueryError::NotANumber("left")
        );
        assert_eq!(
            err(&format!("info_hash=%zz{IH}&peer_id={PID}&port=1&left=0")),
            QueryError::BadPercentEncoding("info_hash")
        );
        assert_eq!(err(&q("&port=2")), QueryError::Duplicate("port"));
        assert_eq!(err(&q("&event=bogus")), QueryError::UnknownEvent);
        assert_eq!(err(&q("&compact=yes")), QueryError::BadFlag("compact"));
        assert_eq!(
            err(&q(&format!("&key={}", "k".repeat(65)))),
            QueryError::TooLong("key")
        );
        assert_eq!(
            err(&q("&numwant=4294967296")),
            QueryError::NumberTooLarge("numwant")
        );
        assert_eq!(
            err(&format!("info_hash={IH}&peer_id={PID}&port=1")),
            QueryError::Missing("left")
        );
    }

    #[test]
    fn failure_messages_read_well() {
        assert_eq!(
            err(&format!("info_hash=abc&peer_id={PID}&port=1&left=0")).to_string(),
            "info_hash must be 20 bytes, got 3"
        );
        assert_eq!(err(&q("&left=1")).to_string(), "duplicate parameter left");
    }

    fn arb_param() -> impl Strategy<Value = Option<ParamBytes>> {
        proptest::option::of(
            proptest::collection::vec(any::<u8>(), 0..=PARAM_BYTES_MAX)
                .prop_map(|v| ParamBytes::new(&v).unwrap()),
        )
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::None),
            Just(Event::Started),
            Just(Event::Completed),
            Just(Event::Stopped),
            Just(Event::Paused),
        ]
    }

    prop_compose! {
        fn arb_request()(
            ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>(), port in 1u16..,
            uploaded in any::<u64>(), downloaded in any::<u64>(), left in any::<u64>(),
            event in arb_event(), compact in any::<bool>(), no_peer_id in any::<bool>(),
            numwant in proptest::option::of(any::<u32>()),
            key in arb_param(), trackerid in arb_param(), ip in arb_param(),
        ) -> AnnounceRequest {
            AnnounceRequest {
                info_hash: InfoHash(ih), peer_id: PeerId(pid), port, uploaded, downloaded, left,
                event, compact, no_peer_id, numwant, key, trackerid, ip,
            }
        }
    }

    proptest! {
        #[test]
        fn query_round_trips(req in arb_request()) {
            let q = req.to_query();
            prop_assert_eq!(AnnounceRequest::parse_query(q.as_bytes()), Ok(req));
        }

        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = AnnounceRequest::parse_query(&raw);
        }

        #[test]
        fn parse_never_panics_on_near_valid_queries(
            req in arb_request(), cut in any::<prop::sample::Index>(), junk in any::<u8>()
        ) {
            let mut q = req.to_query().into_bytes();
            let i = cut.index(q.len());
            q.insert(i, junk);
            let _ = AnnounceRequest::parse_query(&q);
        }
    }
}
