//! Magnet links: find peers for an info-hash (the link's peers and trackers, the DHT), fetch
//! the info dictionary from them with `ut_metadata` (BEP 9 over BEP 10), check it against the
//! info-hash, and turn it into a [`Metainfo`] that is saved as a .torrent.
//!
//! The fetch runs before the torrent exists: connections made here only carry the metadata
//! exchange and are closed afterwards; the download then dials the same peers again.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use metainfo::{InfoHash, Magnet, Metainfo};
use sha1::{Digest, Sha1};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracker_proto::{AnnounceRequest, Event};
use wire::metadata::{MAX_METADATA_SIZE, metadata_piece_count, metadata_piece_len};
use wire::{Decoder, ExtendedHandshake, Message, MetadataMsg};

use super::Session;
use super::add::Added;
use crate::net::{handshake, transport};
use crate::progress::Ui;
use crate::settings::AddOptions;

/// The id we ask peers to send `ut_metadata` messages under.
const OUR_UT_METADATA: u8 = 2;
/// Metadata requests in flight to one peer.
const REQUEST_WINDOW: usize = 4;
/// Peers asked for the metadata at once.
const PARALLEL: usize = 8;
/// Addresses remembered while looking for the metadata.
const MAX_PEERS: usize = 2_000;
/// Time one peer gets to deliver the whole metadata.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// With no peer found at all for this long, give up.
const NO_PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// Between plain status lines when no bars are drawn.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// Between tracker announces (and DHT lookups) while still looking.
const RETRY: Duration = Duration::from_secs(30);

/// Where the .torrent of a magnet is kept under the output directory.
pub fn saved_torrent_path(out_dir: &Path, ih: &InfoHash) -> PathBuf {
    out_dir
        .join(".swarm")
        .join(format!("{}.torrent", ih.to_hex()))
}

/// Resolves `magnet` and starts its download as `opts` says: from an earlier run's saved
/// .torrent, else with the metadata fetched from peers (and then saved). Fails after a
/// minute without any peer, or at shutdown.
pub async fn resolve(
    session: &Arc<Session>,
    magnet: &Magnet,
    opts: AddOptions,
    ui: &Ui,
) -> Result<Added> {
    let saved = saved_torrent_path(&opts.out_dir, &magnet.info_hash);
    if let Ok(bytes) = std::fs::read(&saved) {
        match Metainfo::from_shared(bytes.into()) {
            Ok(meta) if meta.info_hash == magnet.info_hash => {
                let peers = crate::net::resolve(&magnet.peers).await;
                let a = session.add(meta, opts, ui).await?;
                a.discovery.add(peers);
                return Ok(a);
            }
            _ => tracing::warn!(file = %saved.display(), "ignoring a bad saved .torrent"),
        }
    }
    let shutdown = session.shutdown.clone();
    let (info, peers) = fetch_info(session, magnet, ui, &shutdown).await?;
    let meta = build_torrent(&info, &magnet.trackers)?;
    if meta.info_hash != magnet.info_hash {
        bail!("metadata does not match the magnet's info-hash");
    }
    storage::write_atomic(&saved, meta.as_bytes())
        .with_context(|| format!("{}", saved.display()))?;
    ui.println(format!(
        "metadata: {} ({} bytes) saved to {}",
        meta.info.name(),
        info.len(),
        saved.display()
    ));
    let a = session.add(meta, opts, ui).await?;
    a.discovery.add(peers);
    Ok(a)
}

/// A .torrent holding `info` (raw, already verified) and the magnet's trackers, one per tier.
pub fn build_torrent(info: &[u8], trackers: &[String]) -> Result<Metainfo> {
    use bencode::{put_dict_start, put_end, put_list_start, put_str};
    let mut out = Vec::with_capacity(info.len() + 256);
    put_dict_start(&mut out);
    if let Some(first) = trackers.first() {
        put_str(&mut out, "announce");
        put_str(&mut out, first);
        put_str(&mut out, "announce-list");
        put_list_start(&mut out);
        for t in trackers {
            put_list_start(&mut out);
            put_str(&mut out, t);
            put_end(&mut out);
        }
        put_end(&mut out);
    }
    put_str(&mut out, "info");
    out.extend_from_slice(info);
    put_end(&mut out);
    Metainfo::from_shared(out.into()).context("the fetched metadata is not a valid info dictionary")
}

/// Looks for peers and asks them for the info dictionary until one delivers a copy whose
/// SHA-1 is the info-hash; returns it with the peers learned (the one that sent it first).
async fn fetch_info(
    session: &Arc<Session>,
    magnet: &Magnet,
    ui: &Ui,
    shutdown: &CancellationToken,
) -> Result<(Vec<u8>, Vec<SocketAddr>)> {
    let ih = magnet.info_hash;
    let stop = shutdown.child_token();
    let _stop_guard = stop.clone().drop_guard();
    let (found_tx, mut found_rx) = mpsc::channel::<Vec<SocketAddr>>(64);
    // Sources: the link's own peers, its trackers, the DHT. Each sends batches of addresses.
    let direct = crate::net::resolve(&magnet.peers).await;
    if !direct.is_empty() {
        let _ = found_tx.send(direct).await;
    }
    if !magnet.trackers.is_empty() {
        tokio::spawn(announce_loop(
            session.clone(),
            ih,
            magnet.trackers.clone(),
            found_tx.clone(),
            stop.clone(),
        ));
    }
    if let Some(dht) = session.dht().cloned() {
        let tx = found_tx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            dht.wait_bootstrapped(Duration::from_secs(15)).await;
            loop {
                let mut rx = dht.lookup(ih, None).await;
                while let Some(batch) = rx.recv().await {
                    if tx.send(batch).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        });
    } else if magnet.trackers.is_empty() && magnet.peers.is_empty() {
        bail!("the magnet link names no tracker or peer, and the DHT is off (--no-dht)");
    }
    drop(found_tx);

    let name = magnet.display_name.clone().unwrap_or_else(|| ih.to_hex());
    let bar = ui.spinner(&format!("{name}: fetching metadata"));
    let started = Instant::now();
    let mut known: HashSet<SocketAddr> = HashSet::new();
    let mut queue: Vec<SocketAddr> = Vec::new();
    let mut failed: HashMap<SocketAddr, u32> = HashMap::new();
    let mut running: JoinSet<(SocketAddr, Result<Vec<u8>>)> = JoinSet::new();
    let mut sources_open = true;
    let mut last_line = Instant::now() - STATUS_EVERY;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        while running.len() < PARALLEL {
            let Some(a) = queue.pop() else { break };
            let s = session.clone();
            running.spawn(async move {
                let r = tokio::time::timeout(PEER_TIMEOUT, metadata_from_peer(&s, a, ih)).await;
                (a, r.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out"))))
            });
        }
        let status = format!(
            "{name}: fetching metadata ({} peers known, {} asking)",
            known.len(),
            running.len()
        );
        if !ui.bars() && last_line.elapsed() >= STATUS_EVERY {
            last_line = Instant::now();
            ui.println(&status);
        }
        bar.set_message(status);
        tokio::select! {
            _ = shutdown.cancelled() => break Err(anyhow::anyhow!("interrupted")),
            batch = found_rx.recv(), if sources_open => match batch {
                Some(addrs) => {
                    for a in addrs {
                        let a = SocketAddr::new(a.ip().to_canonical(), a.port());
                        if a.port() == 0 || session.own_addrs().contains(a) || known.len() >= MAX_PEERS {
                            continue;
                        }
                        if known.insert(a) {
                            queue.push(a);
                        }
                    }
                }
                None => sources_open = false,
            },
            Some(done) = running.join_next() => match done {
                Ok((from, Ok(info))) => {
                    let mut peers = vec![from];
                    peers.extend(known.iter().copied().filter(|a| *a != from));
                    break Ok((info, peers));
                }
                Ok((a, Err(e))) => {
                    tracing::debug!(peer = %a, error = %e, "no metadata from this peer");
                    let n = failed.entry(a).or_insert(0);
                    *n += 1;
                    // Try again later (it may have been starting up), a few times at most.
                    if *n < 3 {
                        let retry = queue.clone();
                        queue = vec![a];
                        queue.extend(retry);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "metadata task failed"),
            },
            _ = tick.tick() => {
                if known.is_empty() && started.elapsed() > NO_PEER_TIMEOUT {
                    break Err(anyhow::anyhow!(
                        "{name}: no peers found for the magnet link in {} s",
                        NO_PEER_TIMEOUT.as_secs()
                    ));
                }
                if running.is_empty() && queue.is_empty() && !sources_open {
                    break Err(anyhow::anyhow!("{name}: no peer sent the metadata"));
                }
            }
        }
    };
    bar.finish_and_clear();
    running.abort_all();
    result
}

/// Announces to the magnet's trackers now and every 30 s, sending what they return.
async fn announce_loop(
    session: Arc<Session>,
    ih: InfoHash,
    trackers: Vec<String>,
    found: mpsc::Sender<Vec<SocketAddr>>,
    stop: CancellationToken,
) {
    let http = crate::discovery::announce::http_client();
    let req = AnnounceRequest {
        info_hash: ih,
        peer_id: session.peer_id,
        port: session.port,
        uploaded: 0,
        downloaded: 0,
        // The size is not known yet; anything above zero marks us as a leecher.
        left: 1,
        event: Event::Started,
        compact: true,
        no_peer_id: true,
        numwant: Some(200),
        key: None,
        trackerid: None,
        ip: None,
    };
    loop {
        for url in &trackers {
            match crate::discovery::announce::announce_once(&http, url, &req).await {
                Ok(r) => {
                    if found.send(r.peers).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::info!(tracker = %url, error = %e, "announce failed"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Connects to `addr` and fetches the whole info dictionary with `ut_metadata`; checks its
/// SHA-1 against `ih`.
async fn metadata_from_peer(
    session: &Arc<Session>,
    addr: SocketAddr,
    ih: InfoHash,
) -> Result<Vec<u8>> {
    let stream = transport::connect_tcp(addr).await?;
    let peer = handshake::outgoing(stream, addr, ih, session.ours()).await?;
    let (reserved, mut stream) = (peer.reserved, peer.stream);
    if !reserved.extension_protocol() {
        bail!("peer does not speak the extension protocol");
    }
    let hs = ExtendedHandshake {
        m: vec![("ut_metadata".into(), OUR_UT_METADATA)],
        v: Some(metainfo::CLIENT_VERSION.into()),
        p: Some(session.port),
        ..ExtendedHandshake::default()
    };
    let mut out = BytesMut::new();
    if reserved.fast() {
        // BEP 6: the first message after the handshake says what we have.
        Message::HaveNone.encode(&mut out);
    }
    hs.to_message().encode(&mut out);
    tokio::io::AsyncWriteExt::write_all(&mut stream, &out).await?;

    let decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut fetch: Option<(Fetch, u8)> = None;
    loop {
        while let Some(m) = decoder.decode(&mut buf)? {
            match m {
                Message::Extended { id: 0, payload } => {
                    let theirs = ExtendedHandshake::decode(&payload)?;
                    let id = theirs
                        .id_of("ut_metadata")
                        .context("peer does not offer ut_metadata")?;
                    let size = theirs.metadata_size.context("peer has no metadata yet")?;
                    if size == 0 || size > MAX_METADATA_SIZE {
                        bail!("metadata size {size} out of bounds");
                    }
                    if fetch.is_none() {
                        let mut f = Fetch::new(size);
                        // A few requests in flight: peers queue only a handful (libtorrent
                        // and ours drop the excess).
                        let mut req = BytesMut::new();
                        while f.in_flight() < REQUEST_WINDOW {
                            let Some(piece) = f.next_request() else { break };
                            MetadataMsg::Request { piece }
                                .to_message(id)
                                .encode(&mut req);
                        }
                        tokio::io::AsyncWriteExt::write_all(&mut stream, &req).await?;
                        fetch = Some((f, id));
                    }
                }
                Message::Extended {
                    id: OUR_UT_METADATA,
                    payload,
                } => {
                    let Some((f, their_id)) = fetch.as_mut() else {
                        bail!("metadata before the extension handshake");
                    };
                    match MetadataMsg::decode(&payload)? {
                        Some(MetadataMsg::Data {
                            piece,
                            total_size,
                            data,
                        }) => {
                            if let Some(info) = f.add(piece, total_size, data)? {
                                if InfoHash(Sha1::digest(&info).into()) != ih {
                                    bail!("metadata does not hash to the info-hash");
                                }
                                return Ok(info);
                            }
                            if let Some(piece) = f.next_request() {
                                let mut req = BytesMut::new();
                                MetadataMsg::Request { piece }
                                    .to_message(*their_id)
                                    .encode(&mut req);
                                tokio::io::AsyncWriteExt::write_all(&mut stream, &req).await?;
                            }
                        }
                        Some(MetadataMsg::Reject { piece }) => {
                            bail!("peer rejected metadata piece {piece}")
                        }
                        Some(MetadataMsg::Request { .. }) | None => {}
                    }
                }
                // Bitfields, HAVEs, chokes: nothing to do before we have the metadata.
                _ => {}
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("peer closed the connection");
        }
    }
}

/// Metadata pieces received so far.
#[derive(Debug)]
struct Fetch {
    size: u32,
    pieces: Vec<Option<Bytes>>,
    have: usize,
    /// Pieces requested so far (in order).
    requested: u32,
}

impl Fetch {
    fn new(size: u32) -> Fetch {
        Fetch {
            size,
            pieces: vec![None; metadata_piece_count(size) as usize],
            have: 0,
            requested: 0,
        }
    }

    /// The next piece to request, if any is left.
    fn next_request(&mut self) -> Option<u32> {
        let p = self.requested;
        if p as usize >= self.pieces.len() {
            return None;
        }
        self.requested += 1;
        Some(p)
    }

    /// Requests not yet answered.
    fn in_flight(&self) -> usize {
        (self.requested as usize).saturating_sub(self.have)
    }

    /// Stores one piece; the whole dictionary once the last one is in.
    fn add(&mut self, piece: u32, total: u32, data: Bytes) -> Result<Option<Vec<u8>>> {
        if total != self.size {
            bail!("metadata size changed from {} to {total}", self.size);
        }
        let want = metadata_piece_len(self.size, piece).context("metadata piece out of range")?;
        if data.len() != want as usize {
            bail!(
                "metadata piece {piece} has {} bytes, not {want}",
                data.len()
            );
        }
        let slot = self
            .pieces
            .get_mut(piece as usize)
            .context("metadata piece out of range")?;
        if slot.is_none() {
            *slot = Some(data);
            self.have += 1;
        }
        if self.have < self.pieces.len() {
            return Ok(None);
        }
        let mut info = Vec::with_capacity(self.size as usize);
        for p in self.pieces.iter().flatten() {
            info.extend_from_slice(p);
        }
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_assemble_in_order_and_bad_ones_are_refused() {
        let size = 40_000u32;
        let mut f = Fetch::new(size);
        assert_eq!(
            (f.next_request(), f.next_request(), f.next_request()),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!((f.next_request(), f.in_flight()), (None, 3));
        let body: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let piece = |i: u32| {
            let s = (i * 16384) as usize;
            let e = (s + 16384).min(size as usize);
            Bytes::copy_from_slice(&body[s..e])
        };
        assert!(f.add(0, size + 1, piece(0)).is_err(), "size mismatch");
        assert!(f.add(3, size, piece(2)).is_err(), "out of range");
        assert!(f.add(1, size, piece(2)).is_err(), "wrong length");
        assert!(f.add(2, size, piece(2)).unwrap().is_none());
        assert!(f.add(0, size, piece(0)).unwrap().is_none());
        assert!(f.add(0, size, piece(0)).unwrap().is_none(), "duplicate");
        assert_eq!(f.add(1, size, piece(1)).unwrap().unwrap(), body);
    }

    #[test]
    fn built_torrent_keeps_the_info_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, vec![5u8; 40_000]).unwrap();
        let m = metainfo::TorrentBuilder::new(file)
            .piece_length(16384)
            .build(&|_| {})
            .unwrap();
        let info = m.info.raw_info();
        let again = build_torrent(info, &["http://x/announce".into()]).unwrap();
        assert_eq!(again.info_hash, m.info_hash);
        assert_eq!(
            again.trackers(),
            vec![vec!["http://x/announce".to_string()]]
        );
        let bare = build_torrent(info, &[]).unwrap();
        assert_eq!(bare.info_hash, m.info_hash);
        assert!(bare.trackers().is_empty());
        assert!(build_torrent(b"i3e", &[]).is_err());
    }
}
