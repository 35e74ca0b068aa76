//! The one connection loop: a reader feeding the driver and a writer draining it, for as long
//! as the peer stays, across a hand-over from the metadata fetch to the torrent.
//!
//! The reader decodes every whole frame in its buffer and hands the batch to the driver at
//! once (one engine lock per batch). The writer sleeps until the driver wakes it, writes what
//! is queued, and sends requested blocks a batch at a time (see `upload.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use engine::{PeerKey, Upload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::Decoder;

use super::upload::{read_blocks, recycle};
use super::{ConnError, Driver, Link, PeerInfo};
use crate::net::handshake::Handshaken;
use crate::net::limit::Limits;
use crate::net::transport::{ReadHalf, WriteHalf};

/// Most frames handled under one engine lock.
const BATCH: usize = 256;
/// Most blocks read from disk per upload batch.
const UPLOAD_BATCH: usize = 16;
/// Read buffer growth step.
const READ_CHUNK: usize = 256 * 1024;

/// How one stretch of the loop ended.
enum Stretch {
    /// The connection is over.
    End,
    /// The driver asked to hand the connection over.
    HandOver,
}

/// Runs a connection past its handshake until either side ends it. Returns how long it
/// lasted, or `None` if the driver refused the peer.
pub async fn run(
    mut driver: Arc<dyn Driver>,
    peer: Handshaken,
    limits: Arc<Limits>,
) -> Option<Duration> {
    let info = PeerInfo {
        addr: peer.addr,
        reserved: peer.reserved,
        peer_id: peer.peer_id,
        outgoing: peer.outgoing,
    };
    let (mut key, mut link) = match driver.admit(&info) {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(peer = %info.addr, error = %e, "peer refused");
            return None;
        }
    };
    let started = Instant::now();
    let (mut rd, mut wr) = peer.stream.into_halves();
    // Bytes read and not yet decoded stay here across a hand-over.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        // The driver queued our opening messages before the link was known to this task.
        link.wake();
        let stretch = tokio::select! {
            r = read_loop(&*driver, key, &mut rd, &mut buf, &limits) => r.map(|()| Stretch::End),
            // Only the writer ends a stretch for a hand-over, between two writes: a write cut
            // in half would corrupt the stream.
            r = write_loop(&*driver, key, &mut wr, &link, &limits) => r,
            _ = link.cancelled() => Ok(Stretch::End),
        };
        match stretch {
            Ok(Stretch::HandOver) => match driver.hand_over(key) {
                Some((next, k, l)) => {
                    tracing::debug!(peer = %info.addr, "connection handed over");
                    (driver, key, link) = (next, k, l);
                    continue;
                }
                None => return Some(started.elapsed()),
            },
            Ok(Stretch::End) => {}
            Err(e) => tracing::debug!(peer = %info.addr, error = %e, "connection closed"),
        }
        driver.remove(key);
        return Some(started.elapsed());
    }
}

async fn read_loop(
    driver: &dyn Driver,
    key: PeerKey,
    rd: &mut ReadHalf,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<(), ConnError> {
    let decoder = Decoder::default();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        while batch.len() < BATCH {
            match decoder.decode(buf)? {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        if !batch.is_empty() {
            // Handled before the next await: dropping this future at the read below loses
            // nothing decoded.
            driver.handle(key, &mut batch)?;
            continue;
        }
        if buf.capacity() - buf.len() < 32 * 1024 {
            buf.reserve(READ_CHUNK);
        }
        let n = rd.read_buf(buf).await?;
        if n == 0 {
            return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        limits.download.consume(n).await;
    }
}

async fn write_loop(
    driver: &dyn Driver,
    key: PeerKey,
    wr: &mut WriteHalf,
    link: &Link,
    limits: &Limits,
) -> Result<Stretch, ConnError> {
    let mut uploads: Vec<Upload> = Vec::with_capacity(UPLOAD_BATCH);
    loop {
        link.woken().await;
        loop {
            let leaving = link.hand_over_requested();
            let out = driver.take(key, &mut uploads)?;
            if let Some(bytes) = &out {
                wr.write_all(bytes).await?;
            }
            if leaving {
                return Ok(Stretch::HandOver);
            }
            if uploads.is_empty() {
                if out.is_none() {
                    break;
                }
                continue;
            }
            let Some(st) = driver.storage() else {
                return Err(ConnError::Storage(
                    "blocks requested with no storage".into(),
                ));
            };
            let payload: usize = uploads.iter().map(|u| u.len as usize).sum();
            limits.upload.consume(payload).await;
            let buf = read_blocks(&st, &uploads).await?;
            wr.write_all(&buf).await?;
            recycle(buf);
            driver.uploaded(key, payload as u64);
        }
    }
}
