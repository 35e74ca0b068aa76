//! The server side of a [`Dht`]: answering ping, find_node, get_peers and announce_peer, with
//! tokens, the peer store and per-IP rate limits; error replies for malformed queries.

use std::net::SocketAddrV4;
use std::time::Instant;

use tracing::trace;

use crate::compact::NodeInfo;
use crate::dht::Dht;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::id::NodeId;
use crate::message::{
    Body, ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, ERROR_SERVER, KrpcError, Message, Query, Response,
};
use crate::routing::Heard;

impl Dht {
    /// Answers a query from `from` (dropped past the sender's rate limit).
    pub(crate) fn on_query(
        &mut self,
        from: SocketAddrV4,
        tid: Vec<u8>,
        read_only: bool,
        q: Query,
        now: Instant,
    ) {
        if !self.limiter.allow(*from.ip(), now) {
            trace!(%from, "query over the rate limit, dropped");
            return;
        }
        let sender = NodeInfo {
            id: q.sender(),
            addr: from,
        };
        if !read_only && let Some(p) = self.table.heard(sender, Heard::Query, now) {
            self.ping(p, now);
        }
        let k = self.config.k;
        let body = match q {
            Query::Ping { .. } => Body::Response(Response::id_only(self.id)),
            Query::FindNode { target, .. } => Body::Response(Response {
                nodes: self.table.closest(&target, k, now),
                ..Response::id_only(self.id)
            }),
            Query::GetPeers { info_hash, .. } => {
                let max = self.config.max_values_per_reply;
                Body::Response(Response {
                    id: self.id,
                    nodes: self.table.closest(&NodeId::from(info_hash), k, now),
                    values: self.store.peers(&info_hash, max, now, &mut self.rng),
                    token: Some(self.tokens.token(*from.ip()).to_vec()),
                })
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.verify(*from.ip(), &token) {
                    error_body(ERROR_PROTOCOL, "bad token")
                } else if port == 0 {
                    error_body(ERROR_PROTOCOL, "bad port")
                } else {
                    let peer = SocketAddrV4::new(*from.ip(), port);
                    match self.store.announce(info_hash, peer, now) {
                        Ok(()) => Body::Response(Response::id_only(self.id)),
                        Err(_) => error_body(ERROR_SERVER, "peer store full"),
                    }
                }
            }
        };
        self.reply(from, tid, body);
    }

    /// A packet that did not decode: a query with a readable `t` gets an error reply.
    pub(crate) fn on_malformed(&mut self, from: SocketAddrV4, e: DecodeError, now: Instant) {
        trace!(%from, error = %e, "malformed packet");
        let Some(tid) = e.query_tid else {
            return;
        };
        if !self.limiter.allow(*from.ip(), now) {
            return;
        }
        let body = match e.kind {
            DecodeErrorKind::UnknownMethod => error_body(ERROR_METHOD_UNKNOWN, "Method Unknown"),
            _ => error_body(ERROR_PROTOCOL, "Protocol Error"),
        };
        self.reply(from, tid, body);
    }

    fn reply(&mut self, to: SocketAddrV4, tid: Vec<u8>, body: Body) {
        let msg = Message {
            tid,
            version: self.config.version.map(|v| v.to_vec()),
            read_only: false,
            body,
        };
        self.push_transmit(to, &msg);
    }
}

fn error_body(code: i64, message: &str) -> Body {
    Body::Error(KrpcError {
        code,
        message: message.to_owned(),
    })
}
