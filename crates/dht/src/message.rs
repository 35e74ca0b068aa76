//! KRPC messages (BEP 5): queries, responses and errors, their bencode encoding and a strict,
//! non-panicking decoder.
//!
//! The decoder ignores keys it does not know (`nodes6`, `want`, extension keys), reads `v`
//! (client version) and `ro` (BEP 43 read-only) when well-formed and ignores them otherwise, and
//! is strict on sizes: ids and hashes are 20 bytes, `nodes` a multiple of 26, each `values`
//! item 6, `t` 1..=[`MAX_TID_LEN`] bytes, `token` 1..=[`MAX_TOKEN_LEN`] bytes.

use std::net::SocketAddrV4;

use bencode::{
    Limits, Value, put_bytes, put_dict_start, put_end, put_int, put_list_start, put_str,
};

use crate::compact::{NodeInfo, nodes_from_bytes, peer_from_bytes, put_nodes, put_peer};
use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::id::NodeId;
use metainfo::InfoHash;

/// Longest transaction id accepted.
pub const MAX_TID_LEN: usize = 16;
/// Longest announce token accepted.
pub const MAX_TOKEN_LEN: usize = 64;
/// Longest `v` (client version) kept; longer ones are ignored.
pub const MAX_VERSION_LEN: usize = 16;
/// Longest error message kept (longer ones are cut).
pub const MAX_ERROR_MESSAGE: usize = 256;
/// Largest packet decoded.
pub const MAX_PACKET: usize = 8192;

/// Error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// Error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// Error code 203: protocol error (malformed packet, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// Error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `t`: the transaction id, echoed in the reply.
    pub tid: Vec<u8>,
    /// `v`: the sender's client version, if it sent a well-formed one.
    pub version: Option<Vec<u8>>,
    /// `ro`: the sender is read-only (BEP 43) and must not be put in routing tables.
    pub read_only: bool,
    /// What the message says.
    pub body: Body,
}

/// The three kinds of KRPC message (`y` = `q`, `r`, `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query.
    Query(Query),
    /// A response; its meaning depends on the query it answers.
    Response(Response),
    /// An error reply.
    Error(KrpcError),
}

/// The four BEP 5 queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping {
        /// The querying node.
        id: NodeId,
    },
    /// `find_node`.
    FindNode {
        /// The querying node.
        id: NodeId,
        /// The id sought.
        target: NodeId,
    },
    /// `get_peers`.
    GetPeers {
        /// The querying node.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The querying node.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's port (ignored when `implied_port`).
        port: u16,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` reply.
        token: Vec<u8>,
    },
}

/// A response (`r`): every field but `id` is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The responding node.
    pub id: NodeId,
    /// `nodes`: compact node infos.
    pub nodes: Vec<NodeInfo>,
    /// `values`: compact peers (get_peers).
    pub values: Vec<SocketAddrV4>,
    /// `token` (get_peers).
    pub token: Option<Vec<u8>>,
}

/// An error reply (`e`): a code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrpcError {
    /// 201..=204 in BEP 5.
    pub code: i64,
    /// Human-readable text.
    pub message: String,
}

impl Query {
    /// The querying node's id.
    pub fn sender(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. } => *id,
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Query::Ping { .. } => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

impl Response {
    /// A response carrying only the responder's id (ping, announce_peer).
    pub fn id_only(id: NodeId) -> Self {
        Response {
            id,
            nodes: Vec::new(),
            values: Vec::new(),
            token: None,
        }
    }
}

impl Message {
    /// Appends the bencoding (keys in sorted order at every level).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_dict_start(out);
        match &self.body {
            Body::Query(q) => {
                put_str(out, "a");
                encode_args(out, q);
            }
            Body::Error(e) => {
                put_str(out, "e");
                put_list_start(out);
                put_int(out, e.code);
                put_str(out, &e.message);
                put_end(out);
            }
            Body::Response(_) => {}
        }
        if let Body::Query(q) = &self.body {
            put_str(out, "q");
            put_str(out, q.method());
        }
        if let Body::Response(r) = &self.body {
            put_str(out, "r");
            encode_response(out, r);
        }
        if self.read_only {
            put_str(out, "ro");
            put_int(out, 1);
        }
        put_str(out, "t");
        put_bytes(out, &self.tid);
        if let Some(v) = &self.version {
            put_str(out, "v");
            put_bytes(out, v);
        }
        put_str(out, "y");
        put_str(
            out,
            match self.body {
                Body::Query(_) => "q",
                Body::Response(_) => "r",
                Body::Error(_) => "e",
            },
        );
        put_end(out);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode(&mut out);
        out
    }

    /// Decodes one packet. Never panics; see the module docs for what is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let limits = Limits {
            max_len: MAX_PACKET,
            max_depth: 4,
            max_items: 1024,
        };
        let v = bencode::decode_with(bytes, &limits).map_err(K::Bencode)?;
        if v.as_dict().is_none() {
            return Err(K::NotDict.into());
        }
        let tid = bytes_of(&v, "t")?;
        if tid.is_empty() || tid.len() > MAX_TID_LEN {
            return Err(K::BadLength {
                key: "t",
                len: tid.len(),
            }
            .into());
        }
        let version = v
            .get(b"v")
            .and_then(Value::as_bytes)
            .filter(|b| b.len() <= MAX_VERSION_LEN)
            .map(<[u8]>::to_vec);
        let read_only = v.get(b"ro").and_then(Value::as_int).is_some_and(|n| n == 1);
        let body = match bytes_of(&v, "y")? {
            b"q" => decode_query(&v).map_err(|kind| DecodeError {
                kind,
                query_tid: Some(tid.to_vec()),
            })?,
            b"r" => Body::Response(decode_response(&v)?),
            b"e" => Body::Error(decode_error(&v)?),
            _ => return Err(K::UnknownType.into()),
        };
        Ok(Message {
            tid: tid.to_vec(),
            version,
            read_only,
            body,
        })
    }
}

fn encode_args(out: &mut Vec<u8>, q: &Query) {
    put_dict_start(out);
    put_str(out, "id");
    put_bytes(out, q.sender().as_bytes());
    match q {
        Query::Ping { .. } => {}
        Query::FindNode { target, .. } => {
            put_str(out, "target");
            put_bytes(out, target.as_bytes());
        }
        Query::GetPeers { info_hash, .. } => {
            put_str(out, "info_hash");
            put_bytes(out, info_hash.as_bytes());
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            ..
        } => {
            if *implied_port {
                put_str(out, "implied_port");
                put_int(out, 1);
            }
            put_str(out, "info_hash");
            put_bytes(out, info_hash.as_bytes());
            put_str(out, "port");
            put_int(out, i64::from(*port));
            put_str(out, "token");
            put_bytes(out, token);
        }
    }
    put_end(out);
}

fn encode_response(out: &mut Vec<u8>, r: &Response) {
    put_dict_start(out);
    put_str(out, "id");
    put_bytes(out, r.id.as_bytes());
    if !r.nodes.is_empty() {
        put_str(out, "nodes");
        let mut raw = Vec::with_capacity(r.nodes.len() * 26);
        put_nodes(&mut raw, &r.nodes);
        put_bytes(out, &raw);
    }
    if let Some(t) = &r.token {
        put_str(out, "token");
        put_bytes(out, t);
    }
    if !r.values.is_empty() {
        put_str(out, "values");
        put_list_start(out);
        let mut raw = Vec::with_capacity(6);
        for p in &r.values {
            raw.clear();
            put_peer(&mut raw, p);
            put_bytes(out, &raw);
        }
        put_end(out);
    }
    put_end(out);
}

fn get<'v, 'a>(d: &'v Value<'a>, key: &'static str) -> Result<&'v Value<'a>, K> {
    d.get(key.as_bytes()).ok_or(K::Missing(key))
}

fn bytes_of<'a>(d: &Value<'a>, key: &'static str) -> Result<&'a [u8], K> {
    get(d, key)?.as_bytes().ok_or(K::WrongType(key))
}

fn id_of(d: &Value<'_>, key: &'static str) -> Result<[u8; 20], K> {
    let b = bytes_of(d, key)?;
    <[u8; 20]>::try_from(b).map_err(|_| K::BadLength { key, len: b.len() })
}

fn token_of(b: &[u8]) -> Result<Vec<u8>, K> {
    if b.is_empty() || b.len() > MAX_TOKEN_LEN {
        return Err(K::BadLength {
            key: "token",
            len: b.len(),
        });
    }
    Ok(b.to_vec())
}

fn decode_query(v: &Value<'_>) -> Result<Body, K> {
    let method = bytes_of(v, "q")?;
    let a = get(v, "a")?;
    if a.as_dict().is_none() {
        return Err(K::NotDict);
    }
    let id = NodeId(id_of(a, "id")?);
    let q = match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: NodeId(id_of(a, "target")?),
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: InfoHash(id_of(a, "info_hash")?),
        },
        b"announce_peer" => {
            let implied_port = match a.get(b"implied_port") {
                None => false,
                Some(x) => x.as_int().ok_or(K::WrongType("implied_port"))? != 0,
            };
            let port = match a.get(b"port") {
                None if implied_port => 0,
                None => return Err(K::Missing("port")),
                Some(x) => {
                    let n = x.as_int().ok_or(K::WrongType("port"))?;
                    u16::try_from(n).map_err(|_| K::OutOfRange("port"))?
                }
            };
            Query::AnnouncePeer {
                id,
                info_hash: InfoHash(id_of(a, "info_hash")?),
                port,
                implied_port,
                token: token_of(bytes_of(a, "token")?)?,
            }
        }
        _ => return Err(K::UnknownMethod),
    };
    Ok(Body::Query(q))
}

fn decode_response(v: &Value<'_>) -> Result<Response, K> {
    let r = get(v, "r")?;
    if r.as_dict().is_none() {
        return Err(K::NotDict);
    }
    let id = NodeId(id_of(r, "id")?);
    let nodes = match r.get(b"nodes") {
        None => Vec::new(),
        Some(x) => {
            let b = x.as_bytes().ok_or(K::WrongType("nodes"))?;
            nodes_from_bytes(b).ok_or(K::BadLength {
                key: "nodes",
                len: b.len(),
            })?
        }
    };
    let values = match r.get(b"values") {
        None => Vec::new(),
        Some(x) => x
            .as_list()
            .ok_or(K::WrongType("values"))?
            .iter()
            .map(|p| {
                let b = p.as_bytes().ok_or(K::WrongType("values"))?;
                peer_from_bytes(b).ok_or(K::BadLength {
                    key: "values",
                    len: b.len(),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let token = match r.get(b"token") {
        None => None,
        Some(x) => Some(token_of(x.as_bytes().ok_or(K::WrongType("token"))?)?),
    };
    Ok(Response {
        id,
        nodes,
        values,
        token,
    })
}

fn decode_error(v: &Value<'_>) -> Result<KrpcError, K> {
    let list = get(v, "e")?.as_list().ok_or(K::WrongType("e"))?;
    let code = list
        .first()
        .and_then(Value::as_int)
        .ok_or(K::WrongType("e"))?;
    if i32::try_from(code).is_err() {
        return Err(K::OutOfRange("e"));
    }
    let text = list.get(1).and_then(Value::as_bytes).unwrap_or_default();
    let mut message = String::from_utf8_lossy(text).into_owned();
    if message.len() > MAX_ERROR_MESSAGE {
        let mut cut = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Ok(KrpcError { code, message })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
