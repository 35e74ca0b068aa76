//! Magnet links: the swarm starts before its torrent exists. Peers come from the link's
//! `x.pe` addresses, its trackers and the DHT through the swarm's discovery, as for any
//! torrent; connections are driven by [`MagnetShared`], a [`Driver`] over the engine's
//! sans-IO `ut_metadata` client (`engine::MetadataFetch`, BEP 9). Once the info dictionary is
//! complete (its SHA-1 is the info-hash) it is saved as a .torrent, the torrent joins the
//! running swarm, and every live connection is handed over to it: a peer that gave us the
//! metadata keeps its connection for the download.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use engine::{FetchEvent, MetadataFetch, PeerError, PeerKey, Upload};
use metainfo::{InfoHash, Magnet, Metainfo};
use parking_lot::Mutex;
use storage::Storage;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use wire::Message;

use super::Session;
use super::add::{Added, Swarm};
use crate::dht::DhtHandle;
use crate::discovery::Discovery;
use crate::net::encryption::CryptoMemory;
use crate::peer::timer::{self, TimerAt};
use crate::peer::{Driver, Link, Links, PeerInfo, PeerSink, Transfer};
use crate::progress::Ui;
use crate::settings::AddOptions;
use crate::torrent::TorrentShared;

/// With no peer connected at all for this long, give up.
const NO_PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// Between plain status lines when no bars are drawn.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Where the .torrent of a magnet is kept under the output directory.
pub fn saved_torrent_path(out_dir: &Path, ih: &InfoHash) -> PathBuf {
    out_dir
        .join(".swarm")
        .join(format!("{}.torrent", ih.to_hex()))
}

/// Resolves `magnet` and starts its download as `opts` says: from an earlier run's saved
/// .torrent, else with the metadata fetched from peers (then saved), keeping the connections
/// that gave it. Fails after a minute without any peer, or at shutdown.
pub async fn resolve(
    session: &Arc<Session>,
    magnet: &Magnet,
    opts: AddOptions,
    ui: &Ui,
) -> Result<Added> {
    let ih = magnet.info_hash;
    let saved = saved_torrent_path(&opts.out_dir, &ih);
    let direct = crate::net::resolve(&magnet.peers).await;
    if let Ok(bytes) = std::fs::read(&saved) {
        match Metainfo::from_shared(bytes.into()) {
            Ok(meta) if meta.info_hash == ih => {
                let a = session.add(meta, opts, ui).await?;
                a.discovery.add(direct);
                return Ok(a);
            }
            _ => tracing::warn!(file = %saved.display(), "ignoring a bad saved .torrent"),
        }
    }
    if session.dht().is_none() && magnet.trackers.is_empty() && direct.is_empty() {
        bail!("the magnet link names no tracker or peer, and the DHT is off (--no-dht)");
    }
    let cancel = session.shutdown.child_token();
    let (discovery, inbox) = Discovery::new();
    let config = session.settings().engine_for(
        false,
        session.port(),
        session.dht().map(|d| d.local.port()),
        session.peer_id(),
    );
    let m = Arc::new(MagnetShared {
        fetch: Mutex::new(FetchCell {
            fetch: MetadataFetch::new(ih, &config, rand::random(), Instant::now()),
            timer_at: TimerAt::default(),
        }),
        max_peers: config.max_peers,
        links: Links::default(),
        timer: Notify::new(),
        complete: Notify::new(),
        cancel: cancel.clone(),
        phase: cancel.child_token(),
        next: Mutex::new(None),
        peers_found: discovery.sink(),
        dht: session.dht().cloned(),
        crypto: session.crypto_memory().clone(),
        done: watch::channel(false).0,
    });
    session.spawn(m.clone().run_timer());
    let driver: Arc<dyn Driver> = m.clone();
    let (tx, rx) = watch::channel(driver.clone());
    session.register(ih, driver);
    let tiers = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
    let discovery = session.start_swarm(ih, (discovery, inbox), tiers, false, rx, &cancel);
    discovery.add(direct);

    let name = magnet.display_name.clone().unwrap_or_else(|| ih.to_hex());
    let info = match wait_for_metadata(&m, &name, ui, &session.shutdown).await {
        Ok(info) => info,
        Err(e) => {
            cancel.cancel();
            return Err(e);
        }
    };
    let meta = build_torrent(&info, &magnet.trackers)?;
    if meta.info_hash != ih {
        cancel.cancel();
        bail!("metadata does not match the magnet's info-hash");
    }
    let (path, bytes) = (saved.clone(), meta.as_bytes().to_vec());
    tokio::task::spawn_blocking(move || storage::write_atomic(&path, &bytes))
        .await
        .context("saving the .torrent")?
        .with_context(|| format!("{}", saved.display()))?;
    ui.println(format!(
        "metadata: {} ({} bytes) saved to {}",
        meta.info.name(),
        info.len(),
        saved.display()
    ));
    let swarm = Swarm {
        cancel: cancel.clone(),
        discovery,
        driver: tx,
    };
    let a = match session.add_to(meta, opts, ui, Some(swarm)).await {
        Ok(a) => a,
        Err(e) => {
            cancel.cancel();
            return Err(e);
        }
    };
    m.hand_over_to(a.torrent.clone());
    Ok(a)
}

/// Waits until the fetch has the whole info dictionary; a status line (or spinner) meanwhile.
async fn wait_for_metadata(
    m: &MagnetShared,
    name: &str,
    ui: &Ui,
    shutdown: &CancellationToken,
) -> Result<bytes::Bytes> {
    let bar = ui.spinner(&format!("{name}: fetching metadata"));
    let started = Instant::now();
    let mut ever_connected = false;
    let mut last_line: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let r = loop {
        if let Some(info) = m.peek(|f| f.metadata()) {
            break Ok(info);
        }
        let st = m.peek(|f| f.status());
        ever_connected |= st.peers > 0;
        let peers = if st.peers == 1 { "peer" } else { "peers" };
        let status = format!(
            "{name}: fetching metadata ({} {peers}, {}/{} pieces)",
            st.peers,
            st.pieces_received,
            st.pieces.max(1)
        );
        if !ui.bars() && last_line.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
            last_line = Some(Instant::now());
            ui.println(&status);
        }
        bar.set_message(status);
        if !ever_connected && started.elapsed() > NO_PEER_TIMEOUT {
            break Err(anyhow::anyhow!(
                "{name}: no peers found for the magnet link in {} s",
                NO_PEER_TIMEOUT.as_secs()
            ));
        }
        tokio::select! {
            _ = shutdown.cancelled() => break Err(anyhow::anyhow!("interrupted")),
            _ = m.complete.notified() => {}
            _ = tick.tick() => {}
        }
    };
    bar.finish_and_clear();
    r
}

/// The fetch and when its timer task will next call it.
struct FetchCell {
    fetch: MetadataFetch,
    timer_at: TimerAt,
}

/// A magnet link's swarm before its torrent exists: the metadata fetch and its connections.
pub(crate) struct MagnetShared {
    fetch: Mutex<FetchCell>,
    max_peers: usize,
    links: Links,
    /// Wakes the timer task when a call moved the fetch's next deadline earlier.
    timer: Notify,
    /// Woken when the metadata is complete.
    complete: Notify,
    /// The swarm's token: connections end with it.
    cancel: CancellationToken,
    /// Ends the fetch's own timer once its connections are handed over.
    phase: CancellationToken,
    /// The torrent the connections move to, once it exists.
    next: Mutex<Option<Arc<TorrentShared>>>,
    peers_found: PeerSink,
    dht: Option<DhtHandle>,
    /// How the session's dialer reaches peers (peer exchange's encryption flag goes here).
    crypto: Arc<CryptoMemory>,
    /// Never true: a fetch completes nothing a tracker counts.
    done: watch::Sender<bool>,
}

impl MagnetShared {
    /// Runs `f` on the fetch under its lock, then acts on its events after releasing it.
    fn with_fetch<R>(&self, f: impl FnOnce(&mut MetadataFetch, Instant) -> R) -> R {
        let mut events = Vec::new();
        let (r, earlier) = {
            let mut cell = self.fetch.lock();
            let r = f(&mut cell.fetch, Instant::now());
            while let Some(ev) = cell.fetch.poll_event() {
                events.push(ev);
            }
            let next = cell.fetch.poll_timeout();
            (r, cell.timer_at.moved_earlier(next))
        };
        if earlier {
            self.timer.notify_one();
        }
        for ev in events {
            match ev {
                FetchEvent::Wake(k) => self.links.wake(k),
                FetchEvent::Disconnect(k, why) => self.links.close(k, &why),
                FetchEvent::Complete => self.complete.notify_one(),
                FetchEvent::Peers(addrs) => {
                    let _ = self.peers_found.try_send(addrs);
                }
                FetchEvent::PrefersEncryption(addrs) => self.crypto.prefer_encrypted(&addrs),
                FetchEvent::DhtNode(a) => {
                    if let Some(d) = &self.dht {
                        d.add_node(a);
                    }
                }
            }
        }
        r
    }

    /// A read-only look at the fetch.
    fn peek<R>(&self, f: impl FnOnce(&MetadataFetch) -> R) -> R {
        f(&self.fetch.lock().fetch)
    }

    /// Moves every connection to `t` (each as soon as its writer is between writes).
    fn hand_over_to(&self, t: Arc<TorrentShared>) {
        *self.next.lock() = Some(t);
        self.links.hand_over_all();
        self.phase.cancel();
    }

    /// Calls the fetch's timers when due, until its connections are handed over.
    async fn run_timer(self: Arc<Self>) {
        timer::run(
            &self.phase,
            &self.timer,
            || {
                let mut cell = self.fetch.lock();
                let at = cell.fetch.poll_timeout();
                cell.timer_at.sleeping_until(at)
            },
            || self.with_fetch(|f, now| f.handle_timeout(now)),
        )
        .await;
    }
}

impl Driver for MagnetShared {
    fn admit(&self, peer: &PeerInfo) -> Result<(PeerKey, Link), PeerError> {
        let key = self.with_fetch(|f, now| {
            f.add_peer(peer.addr, peer.reserved, peer.peer_id, peer.outgoing, now)
        })?;
        let link = Link::new(peer.addr, self.cancel.child_token());
        self.links.insert(key, link.clone());
        if self.next.lock().is_some() {
            // Admitted just as the torrent took over: follow the others.
            link.hand_over();
        }
        Ok((key, link))
    }

    fn handle(&self, key: PeerKey, batch: &mut Vec<Message>) -> Result<(), PeerError> {
        self.with_fetch(|f, now| {
            for m in batch.drain(..) {
                f.handle_message(key, m, now)?;
            }
            Ok(())
        })
    }

    fn take(&self, key: PeerKey, uploads: &mut Vec<Upload>) -> Result<Option<BytesMut>, PeerError> {
        uploads.clear();
        self.with_fetch(|f, now| f.take_outgoing(key, now))
    }

    fn storage(&self) -> Option<Arc<Storage>> {
        None
    }

    fn uploaded(&self, _key: PeerKey, _bytes: u64) {}

    fn remove(&self, key: PeerKey) {
        self.links.remove(key);
        self.with_fetch(|f, _| f.remove_peer(key));
    }

    fn accepts(&self, ip: IpAddr) -> bool {
        self.peek(|f| !f.is_banned(ip) && f.peer_count() < self.max_peers)
    }

    fn connected(&self) -> Vec<SocketAddr> {
        self.peek(|f| f.peers().map(|(_, a)| a).collect())
    }

    fn transfer(&self) -> Transfer {
        // The size is not known yet; anything above zero marks us as a leecher.
        Transfer {
            uploaded: 0,
            downloaded: 0,
            left: 1,
        }
    }

    fn done(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }

    fn hand_over(&self, key: PeerKey) -> Option<(Arc<dyn Driver>, PeerKey, Link)> {
        self.links.remove(key);
        let t = self.next.lock().clone()?;
        let Some(h) = self.with_fetch(|f, _| f.take_peer(key)) else {
            self.with_fetch(|f, _| f.remove_peer(key));
            return None;
        };
        match t.adopt(h) {
            Ok((k, link)) => Some((t, k, link)),
            Err(e) => {
                tracing::debug!(error = %e, "the torrent did not take the connection");
                None
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
