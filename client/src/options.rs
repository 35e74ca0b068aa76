//! Flags shared by the commands that join swarms (`seed`, `fetch`).

use std::net::SocketAddr;

use clap::Args;

use crate::session::{DhtSettings, SessionConfig};
use crate::size::parse_size as parse_rate;

/// Network flags.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Address to accept peers on (repeatable; default: port 6881, or the next free one, on all
    /// interfaces).
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Upload cap for the whole process, bytes per second (K, M suffixes: 500K, 2M).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub upload_limit: Option<u64>,
    /// Download cap for the whole process, bytes per second (K, M suffixes).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub download_limit: Option<u64>,
    /// Most peers connected per torrent.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub max_peers: usize,
    /// No progress bars or status lines; errors only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not join the Mainline DHT (it is never used for private torrents).
    #[arg(long, env = "SWARM_NO_DHT", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_dht: bool,
    /// UDP port of the DHT node (default: the same port as --listen's).
    #[arg(long, value_name = "PORT")]
    pub dht_port: Option<u16>,
    /// DHT node to bootstrap from, HOST:PORT (repeatable; default: dht.libtorrent.org:25401,
    /// dht.transmissionbt.com:6881, router.bittorrent.com:6881).
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
}

impl NetArgs {
    /// The session settings these flags ask for.
    pub fn session_config(&self) -> SessionConfig {
        let mut c = SessionConfig {
            listen: self.listen.clone(),
            upload_limit: self.upload_limit,
            download_limit: self.download_limit,
            ..SessionConfig::default()
        };
        c.engine.max_peers = self.max_peers.max(1);
        if !self.no_dht {
            c.dht = Some(DhtSettings {
                port: self.dht_port,
                bootstrap: if self.bootstrap.is_empty() {
                    crate::dht::DEFAULT_BOOTSTRAP.map(String::from).to_vec()
                } else {
                    self.bootstrap.clone()
                },
                state_file: crate::dht::default_state_file(),
            });
        }
        c.max_outgoing = c.max_outgoing.min(c.engine.max_peers);
        c
    }
}
