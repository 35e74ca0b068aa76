//! Reading a batch of requested blocks into one buffer of PIECE messages (header, block,
//! header, block...), written to the peer with one call: straight from the page cache on the
//! network thread when all of it is cached (`Storage::read_cached`), else from disk off the
//! async threads. Buffers are reused across batches.

use std::sync::Arc;

use engine::Upload;
use storage::Storage;
use wire::{PIECE_HEADER_LEN, piece_header};

use super::ConnError;

/// Upload buffers kept for reuse by the whole process (each up to a batch of blocks with
/// their headers, ~257 KiB): a seeder serving at full speed would otherwise zero a fresh
/// buffer for every batch, a visible share of its CPU (BENCHMARKS.md).
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
pub(super) fn recycle(buf: Vec<u8>) {
    let mut spare = SPARE_UPLOADS.lock();
    if spare.len() < SPARE_UPLOAD_BUFFERS {
        spare.push(buf);
    }
}

/// Reads `uploads` into one buffer of PIECE messages: on this thread when every block is in
/// the page cache (the common case for a seeder of a popular file), else off the async threads.
pub(super) async fn read_blocks(
    st: &Arc<Storage>,
    uploads: &[Upload],
) -> Result<Vec<u8>, ConnError> {
    if let Some(buf) = fill_batch(
        uploads,
        |u, data| Ok(st.read_cached(u.piece, u.begin, data)),
    )? {
        return Ok(buf);
    }
    let st = st.clone();
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
            recycle(buf);
            return Ok(None);
        }
        at = end;
    }
    Ok(Some(buf))
}
