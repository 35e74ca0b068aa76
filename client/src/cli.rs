//! The command line: global flags and one subcommand per action.

use clap::{ArgAction, Parser, Subcommand};

use crate::create::CreateArgs;
use crate::fetch::FetchArgs;
use crate::info::InfoArgs;
use crate::seed::SeedArgs;

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
