//! Creates a torrent for a path and prints its info-hash: a way to time hashing on its own.
//!
//! `cargo run --release -p metainfo --example create_torrent -- PATH [PIECE_LENGTH] [OUT]`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: create_torrent PATH [PIECE_LENGTH] [OUT]");
        return ExitCode::from(2);
    };
    let piece_length = match args.next().map(|s| s.parse::<u32>()) {
        None => metainfo::DEFAULT_PIECE_LENGTH,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("bad piece length: {e}");
            return ExitCode::from(2);
        }
    };
    let out = args.next();
    match metainfo::TorrentBuilder::new(path)
        .piece_length(piece_length)
        .build(&|_| {})
    {
        Ok(m) => {
            println!("{}", m.info_hash);
            if let Some(out) = out
                && let Err(e) = std::fs::write(&out, m.as_bytes())
            {
                eprintln!("{out}: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
