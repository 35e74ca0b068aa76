//! One peer connection after its handshake: a reader feeding the engine and a writer draining it.
//!
//! The reader decodes every whole frame in its buffer and hands the batch to the engine under
//! one lock. The writer sleeps on a `Notify` until the engine queues something for this peer;
//! uploads are read a batch at a time into one buffer laid out as header, block, header,
//! block... and written with one call: straight from the page cache when all of it is cached
//! (`Storage::read_cached`), else from disk off the async threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use engine::{PeerError, PeerKey, Upload};
use metainfo::PeerId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use wire::{Decoder, PIECE_HEADER_LEN, Reserved, piece_header};

use crate::session::Session;
use crate::torrent::{Conn, TorrentShared};

/// Most frames handled under one engine lock.
const BATCH: usize = 256;
/// Most blocks read from disk per upload batch.
const UPLOAD_BATCH: usize = 16;
/// Read buffer growth step.
const READ_CHUNK: usize = 256 * 1024;
/// Upload buffers kept for reuse by the whole process (each up to a batch of blocks with
/// their headers, ~257 KiB): a seeder serving at full speed took a fresh zeroed buffer for
/// every batch, and zeroing them was 7% of its CPU (perf).
const SPARE_UPLOAD_BUFFERS: usize = 8;

static SPARE_UPLOADS: parking_lot::Mutex<Vec<Vec<u8>>> = parking_lot::Mutex::new(Vec::new());

/// A buffer of exactly `len` bytes for a batch of PIECE messages: a spare one if there is one
/// (its old bytes are all overwritten by the batch), else a new zeroed one.
fn upload_buffer(len: usize) -> Vec<u8> {
    match SPARE_UPLOADS.lock().pop() {
        Some(mut buf) => {
            buf.resize(len, 0);
            buf
        }
        None => vec![0; len],
    }
}

/// Gives an upload buffer back once it has been written.
fn recycle_upload(buf: Vec<u8>) {
    let mut spare = SPARE_UPLOADS.lock();
    if spare.len() < SPARE_UPLOAD_BUFFERS {
        spare.push(buf);
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A socket error or EOF.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bad framing.
    #[error("wire: {0}")]
    Wire(#[from] wire::WireError),
    /// The engine refused the peer or its messages.
    #[error("{0}")]
    Peer(#[from] PeerError),
    /// Reading blocks to upload failed.
    #[error("storage: {0}")]
    Storage(String),
}

/// Runs a connection whose handshake is done until either side ends it (`outgoing`: we dialed
/// `addr`). Returns how long it lasted, or `None` if the engine refused the peer.
pub async fn run(
    t: Arc<TorrentShared>,
    session: Arc<Session>,
    stream: TcpStream,
    addr: SocketAddr,
    reserved: Reserved,
    peer_id: PeerId,
    outgoing: bool,
) -> Option<Duration> {
    let added = t.with_engine(|e, now| {
        if outgoing {
            e.add_peer_outgoing(addr, reserved, peer_id, now)
        } else {
            e.add_peer(addr, reserved, peer_id, now)
        }
    });
    let key = match added {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(peer = %addr, error = %e, "peer refused");
            return None;
        }
    };
    let started = Instant::now();
    let notify = Arc::new(Notify::new());
    let cancel = t.cancel.child_token();
    t.conns.lock().insert(
        key,
        Conn {
            notify: notify.clone(),
            cancel: cancel.clone(),
            addr,
        },
    );
    // The engine queued our opening messages before the connection was registered.
    notify.notify_one();
    let (rd, wr) = stream.into_split();
    let result = tokio::select! {
        r = read_loop(&t, &session, key, rd) => r,
        r = write_loop(&t, &session, key, wr, &notify) => r,
        _ = cancel.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        tracing::debug!(peer = %addr, error = %e, "connection closed");
    }
    t.conns.lock().remove(&key);
    t.with_engine(|e, _| e.remove_peer(key));
    Some(started.elapsed())
}

async fn read_loop(
    t: &Arc<TorrentShared>,
    session: &Session,
    key: PeerKey,
    mut rd: OwnedReadHalf,
) -> Result<(), ConnError> {
    let decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        while batch.len() < BATCH {
            match decoder.decode(&mut buf)? {
                Some(m) => batch.push(m),
                None => break,
            }
        }
        if !batch.is_empty() {
            t.with_engine(|e, now| -> Result<(), PeerError> {
                for m in batch.drain(..) {
                    e.handle_message(key, m, now)?;
                }
                Ok(())
            })?;
            continue;
        }
        if buf.capacity() - buf.len() < 32 * 1024 {
            buf.reserve(READ_CHUNK);
        }
        let n = rd.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        session.download_limit.consume(n).await;
    }
}

async fn write_loop(
    t: &Arc<TorrentShared>,
    session: &Session,
    key: PeerKey,
    mut wr: OwnedWriteHalf,
    notify: &Notify,
) -> Result<(), ConnError> {
    let mut uploads: Vec<Upload> = Vec::with_capacity(UPLOAD_BATCH);
    loop {
        notify.notified().await;
        loop {
            let out = t.with_engine(|e, now| -> Result<_, PeerError> {
                let out = e.take_outgoing(key, now)?;
                uploads.clear();
                while uploads.len() < UPLOAD_BATCH {
                    match e.next_upload(key) {
                        Some(u) => uploads.push(u),
                        None => break,
                    }
                }
                Ok(out)
            })?;
            if out.is_none() && uploads.is_empty() {
                break;
            }
            if let Some(bytes) = out {
                wr.write_all(&bytes).await?;
            }
            if !uploads.is_empty() {
                let payload: usize = uploads.iter().map(|u| u.len as usize).sum();
                session.upload_limit.consume(payload).await;
                let buf = read_blocks(t, &uploads).await?;
                wr.write_all(&buf).await?;
                recycle_upload(buf);
                t.with_engine(|e, now| e.on_uploaded(key, payload as u64, now));
            }
        }
    }
}

/// Reads `uploads` into one buffer of PIECE messages: on this thread when every block is in
/// the page cache (the common case for a seeder of a popular file), else off the async threads.
async fn read_blocks(t: &Arc<TorrentShared>, uploads: &[Upload]) -> Result<Vec<u8>, ConnError> {
    let st = t.storage.clone();
    if let Some(buf) = fill_batch(
        uploads,
        |u, data| Ok(st.read_cached(u.piece, u.begin, data)),
    )? {
        return Ok(buf);
    }
    let ups = uploads.to_vec();
    tokio::task::spawn_blocking(move || {
        let read = |u: &Upload, data: &mut [u8]| {
            st.read(u.piece, u.begin, data)
                .map(|()| true)
                .map_err(|e| ConnError::Storage(e.to_string()))
        };
        fill_batch(&ups, read)?.ok_or_else(|| ConnError::Storage("upload read refused".into()))
    })
    .await
    .map_err(|e| ConnError::Storage(e.to_string()))?
}

/// Lays `uploads` out as header, block, header, block... in one buffer, each block filled by
/// `read`; `None` (the buffer given back) as soon as `read` declines a block.
fn fill_batch(
    uploads: &[Upload],
    read: impl Fn(&Upload, &mut [u8]) -> Result<bool, ConnError>,
) -> Result<Option<Vec<u8>>, ConnError> {
    let total: usize = uploads
        .iter()
        .map(|u| PIECE_HEADER_LEN + u.len as usize)
        .sum();
    let mut buf = upload_buffer(total);
    let mut at = 0;
    for u in uploads {
        let hdr = piece_header(u.piece.get(), u.begin, u.len);
        let end = at + PIECE_HEADER_LEN + u.len as usize;
        let Some(slot) = buf.get_mut(at..end) else {
            return Err(ConnError::Storage("upload buffer size".into()));
        };
        let (h, data) = slot.split_at_mut(PIECE_HEADER_LEN);
        h.copy_from_slice(&hdr);
        if !read(u, data)? {
            recycle_upload(buf);
            return Ok(None);
        }
        at = end;
    }
    Ok(Some(buf))
}

/// Sends our handshake on a fresh outgoing connection and reads the peer's.
pub async fn handshake_out(
    stream: &mut TcpStream,
    ours: &wire::Handshake,
) -> Result<(Reserved, PeerId), ConnError> {
    stream.write_all(&ours.encode()).await?;
    let mut buf = [0u8; wire::HANDSHAKE_LEN];
    stream.read_exact(&mut buf).await?;
    let theirs = wire::Handshake::parse(&buf)
        .map_err(|e| ConnError::Peer(PeerError::Protocol(e.to_string())))?
        .ok_or_else(|| ConnError::Peer(PeerError::Protocol("short handshake".into())))?;
    if theirs.info_hash != ours.info_hash {
        return Err(ConnError::Peer(PeerError::Protocol(
            "wrong info-hash".into(),
        )));
    }
    Ok((theirs.reserved, theirs.peer_id))
}
