//! The one place flags become settings: what a session, its torrents and their storage run
//! with, derived from the parsed command line ([`crate::cli`]). Nothing else reads flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use storage::Mode;

use crate::cli::{EncryptionArg, FetchArgs, NetArgs, SeedArgs};
use crate::discovery::udp_tracker::UdpTrackerConfig;
use crate::net::encryption::Encryption;

/// Peers dialed per torrent unless `--max-peers` is lower.
const MAX_OUTGOING: usize = 50;

/// What a session runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Addresses to listen on; empty = the default port on every interface.
    pub listen: Vec<SocketAddr>,
    /// Upload cap in bytes/s for the whole process.
    pub upload_limit: Option<u64>,
    /// Download cap in bytes/s for the whole process.
    pub download_limit: Option<u64>,
    /// Peers to dial out to per torrent.
    pub max_outgoing: usize,
    /// Engine settings every torrent starts from (see [`Settings::engine_for`]).
    pub engine: engine::Config,
    /// The DHT node to run (`None`: no DHT).
    pub dht: Option<DhtSettings>,
    /// Local Service Discovery (BEP 14) on the interfaces we listen on.
    pub lsd: bool,
    /// No progress bars or status lines.
    pub quiet: bool,
    /// MSE/PE: never, when a peer wants it, or always.
    pub encryption: Encryption,
    /// UDP trackers (BEP 15): the retransmit schedule, the bound of one announce, the
    /// connection ids kept.
    pub udp_trackers: UdpTrackerConfig,
}

/// What the DHT node of a session should do.
#[derive(Debug, Clone)]
pub struct DhtSettings {
    /// UDP port (`None`: the same port as the TCP listener).
    pub port: Option<u16>,
    /// `host:port` names to bootstrap from.
    pub bootstrap: Vec<String>,
    /// Where the routing table is saved between runs.
    pub state_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: Vec::new(),
            upload_limit: None,
            download_limit: None,
            max_outgoing: MAX_OUTGOING,
            engine: engine::Config::default(),
            dht: None,
            lsd: false,
            quiet: false,
            encryption: Encryption::default(),
            udp_trackers: UdpTrackerConfig::default(),
        }
    }
}

impl Settings {
    /// The settings `swarm fetch` and `swarm seed` share.
    pub fn from_net(net: &NetArgs) -> Settings {
        let mut s = Settings {
            listen: net.listen.clone(),
            upload_limit: net.upload_limit,
            download_limit: net.download_limit,
            quiet: net.quiet,
            lsd: !net.no_lsd,
            encryption: match net.encryption {
                EncryptionArg::Off => Encryption::Off,
                EncryptionArg::Allow => Encryption::Allow,
                EncryptionArg::Require => Encryption::Require,
            },
            ..Settings::default()
        };
        s.engine.max_peers = net.max_peers.max(1);
        if !net.no_dht {
            s.dht = Some(DhtSettings {
                port: net.dht_port,
                bootstrap: if net.bootstrap.is_empty() {
                    crate::dht::DEFAULT_BOOTSTRAP.map(String::from).to_vec()
                } else {
                    net.bootstrap.clone()
                },
                state_file: crate::dht::default_state_file(),
            });
        }
        s.max_outgoing = s.max_outgoing.min(s.engine.max_peers);
        s
    }

    /// `swarm seed`: super-seeds unless `--no-super-seed`.
    pub fn for_seed(args: &SeedArgs) -> Settings {
        let mut s = Settings::from_net(&args.net);
        s.engine.super_seed = !args.no_super_seed;
        s
    }

    /// `swarm fetch`.
    pub fn for_fetch(args: &FetchArgs) -> Settings {
        Settings::from_net(&args.net)
    }

    /// The engine settings of one torrent: this session's, with what the torrent and the
    /// running session add (a private torrent speaks no PEX or DHT; our ports and peer id).
    pub fn engine_for(
        &self,
        private: bool,
        listen_port: u16,
        dht_port: Option<u16>,
        peer_id: metainfo::PeerId,
    ) -> engine::Config {
        let mut c = self.engine.clone();
        c.private = private;
        c.listen_port = Some(listen_port);
        c.dht_port = dht_port.filter(|_| !private);
        c.peer_id = Some(peer_id);
        c
    }
}

/// What `swarm info --scrape` asks UDP trackers with: BEP 15's schedule cut at 20 s (one
/// retransmission), so the whole report is bounded.
pub fn scrape_trackers() -> UdpTrackerConfig {
    UdpTrackerConfig {
        timeout: std::time::Duration::from_secs(20),
        ..UdpTrackerConfig::default()
    }
}

/// Where a torrent's data is and how far to trust it.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// The directory the torrent's paths are relative to.
    pub out_dir: PathBuf,
    /// Use this name instead of the torrent's for the file (single-file) or top directory.
    pub rename_root: Option<String>,
    /// Read-only (seeding existing data) or read-write (downloading).
    pub mode: Mode,
    /// We just hashed these files ourselves: every piece is present.
    pub trusted_complete: bool,
    /// Keep resume data under `out_dir/.swarm/`.
    pub resume: bool,
    /// Write verified pieces around the page cache where the storage allows it
    /// ([`storage::OpenOptions::direct_writes`]).
    pub direct_writes: bool,
    /// Reserve the files' blocks when creating them ([`storage::OpenOptions::preallocate`]).
    pub preallocate: bool,
}

impl AddOptions {
    /// A download into `out_dir` as `swarm fetch`'s flags ask.
    pub fn download(args: &FetchArgs, out_dir: PathBuf) -> AddOptions {
        AddOptions {
            out_dir,
            rename_root: None,
            mode: Mode::ReadWrite,
            trusted_complete: false,
            resume: true,
            direct_writes: !args.buffered_writes,
            preallocate: !args.sparse,
        }
    }

    /// Seeding data in `out_dir` (renamed to `rename_root`): we just hashed it
    /// (`trusted_complete`), or it is checked first.
    pub fn seeding(out_dir: PathBuf, rename_root: Option<String>, trusted_complete: bool) -> Self {
        AddOptions {
            out_dir,
            rename_root,
            mode: Mode::ReadOnly,
            trusted_complete,
            resume: false,
            direct_writes: false,
            preallocate: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn flags_become_settings() {
        let cli = Cli::try_parse_from([
            "swarm",
            "seed",
            "f",
            "--max-peers",
            "20",
            "--no-super-seed",
            "--no-dht",
            "--upload-limit",
            "2M",
            "--encryption",
            "require",
        ])
        .unwrap();
        let Command::Seed(a) = cli.command else {
            panic!("not seed")
        };
        let s = Settings::for_seed(&a);
        assert_eq!(s.engine.max_peers, 20);
        assert_eq!(s.max_outgoing, 20, "never more dials than peers allowed");
        assert!(!s.engine.super_seed && s.dht.is_none());
        assert!(s.lsd, "LSD is on unless --no-lsd");
        assert_eq!(s.upload_limit, Some(2 << 20));
        assert_eq!(s.encryption, Encryption::Require);
        let e = s.engine_for(true, 6881, Some(6881), metainfo::PeerId([1; 20]));
        assert!(
            e.private && e.dht_port.is_none(),
            "a private torrent has no DHT port"
        );
        assert_eq!(e.listen_port, Some(6881));
    }

    #[test]
    fn no_lsd_turns_local_discovery_off() {
        let cli = Cli::try_parse_from(["swarm", "fetch", "x.torrent", "--no-lsd"]).unwrap();
        let Command::Fetch(a) = cli.command else {
            panic!("not fetch")
        };
        assert!(!Settings::for_fetch(&a).lsd);
        assert!(!Settings::default().lsd, "in-process sessions opt in");
    }
}
