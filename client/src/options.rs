//! Flags shared by the commands that join swarms (`seed`, `fetch`).

use std::net::SocketAddr;

use clap::Args;

use crate::session::SessionConfig;
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
        c.max_outgoing = c.max_outgoing.min(c.engine.max_peers);
        c
    }
}
