//! The command line as parsed: global flags and one subcommand per action, each with its
//! flags. What the flags mean for a session is derived in one place, `settings.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::size::{parse_piece_size, parse_size as parse_rate};

/// Port of the embedded tracker unless `--tracker-port` says otherwise.
pub const DEFAULT_TRACKER_PORT: u16 = 6969;

/// swarm: a BitTorrent client.
#[derive(Debug, Parser)]
#[command(name = "swarm", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a .torrent file for a file or directory.
    Create(CreateArgs),
    /// Show what a .torrent file contains.
    Info(InfoArgs),
    /// Hash files into torrents and seed them (with a built-in tracker unless --tracker).
    Seed(SeedArgs),
    /// Download torrents, verifying every piece.
    Fetch(FetchArgs),
}

/// Flags of `swarm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or directory to share.
    pub path: PathBuf,
    /// Where to write the torrent [default: NAME.torrent in the current directory].
    #[arg(short, long, value_name = "OUT.torrent")]
    pub output: Option<PathBuf>,
    /// Tracker announce URL; repeat for backup trackers (each URL is its own tier, tried in
    /// order).
    #[arg(short, long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece size: a power of two from 16K to 64M, e.g. 256K, 1M or 262144.
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_piece_size)]
    pub piece_size: u32,
    /// Mark the torrent private (BEP 27: peers only from its trackers).
    #[arg(long)]
    pub private: bool,
    /// A comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Overwrite the output file if it already exists.
    #[arg(short, long)]
    pub force: bool,
}

/// Flags of `swarm info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The .torrent file to show.
    #[arg(value_name = "FILE.torrent")]
    pub torrent: PathBuf,
    /// Also ask each tracker how many seeders, leechers and completed downloads it counts
    /// (HTTP trackers by their scrape URL, UDP trackers by BEP 15's scrape).
    #[arg(long)]
    pub scrape: bool,
}

/// `swarm seed PATH... [--tracker URL]... [--piece-size SIZE] [--torrent OUT] [--data PATH]`
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Files or directories to seed (each becomes its own torrent), or a .torrent with --data.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Tracker announce URL to put in new torrents (repeatable). Without one, a tracker runs in
    /// this process.
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece size for new torrents (power of two, at least 16K).
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_piece_size)]
    pub piece_size: u32,
    /// Where to write the new .torrent (default: PATH.torrent beside PATH); one PATH only.
    #[arg(long, value_name = "OUT")]
    pub torrent: Option<PathBuf>,
    /// The data of an existing .torrent given as PATH: the file (single-file torrent) or the
    /// top directory (multi-file). It is verified before seeding.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// No tracker at all: peers find this torrent through the DHT (and its magnet link).
    #[arg(long, conflicts_with = "trackers")]
    pub no_tracker: bool,
    /// Port of the embedded tracker.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_TRACKER_PORT)]
    pub tracker_port: u16,
    /// Host name or address other machines reach this one by, for the embedded tracker's URL
    /// (default: this machine's outward-facing address).
    #[arg(long, value_name = "HOST")]
    pub announce_host: Option<String>,
    /// Reveal every piece to every peer at once, as an ordinary seed does, instead of
    /// super-seeding (BEP 16: each peer is shown a few pieces at a time, so that each piece
    /// goes out about once and the leechers trade the rest among themselves).
    #[arg(long)]
    pub no_super_seed: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// `swarm fetch TORRENT... [--output DIR] [--seed]`
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// .torrent files or magnet links to download.
    #[arg(required = true, value_name = "TORRENT|MAGNET")]
    pub torrents: Vec<String>,
    /// Directory to download into.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Keep seeding after the download completes (until Ctrl-C).
    #[arg(long)]
    pub seed: bool,
    /// Command to run (with `sh -c`) when a torrent completes; it gets SWARM_NAME,
    /// SWARM_INFO_HASH and SWARM_PATH in its environment.
    #[arg(long, value_name = "CMD")]
    pub on_complete: Option<String>,
    /// Write verified pieces through the page cache. By default they go around it (O_DIRECT),
    /// in runs of consecutive pieces, where the file system and the disk allow: that saves
    /// copying every byte into the cache; a file system that refuses, or a disk found slow at
    /// it (spinning), gets page-cache writes anyway.
    #[arg(long)]
    pub buffered_writes: bool,
    /// Leave the files sparse instead of reserving their space when the download starts
    /// (reserving shows a full disk at once and lays each file out in few extents).
    #[arg(long)]
    pub sparse: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

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
    /// Do not announce torrents on the local network or take peers from such announces
    /// (Local Service Discovery, BEP 14: UDP multicast on port 6771; never for private
    /// torrents).
    #[arg(long, env = "SWARM_NO_LSD", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_lsd: bool,
    /// UDP port of the DHT node (default: the same port as --listen's).
    #[arg(long, value_name = "PORT")]
    pub dht_port: Option<u16>,
    /// Message stream encryption (MSE/PE) with peers: `off` never (encrypted peers are
    /// refused), `allow` plaintext first and encrypted when a peer wants it, `require` RC4
    /// always (plaintext peers are refused).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = EncryptionArg::Allow)]
    pub encryption: EncryptionArg,
    /// DHT node to bootstrap from, HOST:PORT (repeatable; default: dht.libtorrent.org:25401,
    /// dht.transmissionbt.com:6881, router.bittorrent.com:6881).
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
}

/// Values of `--encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncryptionArg {
    /// Never encrypt; refuse encrypted peers.
    Off,
    /// Plaintext first, encrypted when a peer wants it.
    Allow,
    /// Always RC4; refuse plaintext peers.
    Require,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_create_flags() {
        let cli = Cli::try_parse_from([
            "swarm",
            "-vv",
            "create",
            "dir",
            "-o",
            "x.torrent",
            "--tracker",
            "http://a/announce",
            "--tracker",
            "http://b/announce",
            "--piece-size",
            "1M",
            "--private",
            "--comment",
            "hi",
            "--force",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 2);
        let Command::Create(a) = cli.command else {
            panic!("not create")
        };
        assert_eq!(a.trackers.len(), 2);
        assert_eq!(a.piece_size, 1 << 20);
        assert!(a.private && a.force);
        assert_eq!(a.comment.as_deref(), Some("hi"));
        assert!(Cli::try_parse_from(["swarm", "create", "d", "--piece-size", "3K"]).is_err());
    }
}
