//! The machine's ceiling for one BitTorrent-like stream, for `bench/`: one thread reads a file
//! and sends it over a loopback TCP connection; another receives it a piece at a time and hands
//! each piece to a third, which SHA-1s it and writes it at its offset in a new file (receiving
//! overlaps hashing and writing, as in a client with a disk thread). No protocol, no peers, no
//! choking: what is left is the work every client must do for one stream (read, copy through the
//! kernel twice, hash, write).
//!
//! Usage: `ceiling SOURCE DEST [PIECE_BYTES]` (default 262144). Prints one line:
//! `ceiling <bytes> bytes <seconds> s <MB/s> MB/s` (MB = 10^6 bytes), start to last write.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha1::{Digest, Sha1};

/// Default piece size: 256 KiB, as in the benchmark's torrents.
const DEFAULT_PIECE: usize = 256 << 10;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(src), Some(dst)) = (args.next(), args.next()) else {
        bail!("usage: ceiling SOURCE DEST [PIECE_BYTES]");
    };
    let piece = match args.next() {
        Some(p) => p
            .to_str()
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|p| *p > 0)
            .context("PIECE_BYTES must be a positive integer")?,
        None => DEFAULT_PIECE,
    };
    let (src, dst) = (PathBuf::from(src), PathBuf::from(dst));
    let len = std::fs::metadata(&src)
        .with_context(|| format!("{}", src.display()))?
        .len();

    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let sender = std::thread::spawn(move || send(&src, addr, piece));
    let (conn, _) = listener.accept().context("accept")?;
    let digest = receive(conn, &dst, len, piece)?;
    let secs = start.elapsed().as_secs_f64();
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    println!(
        "ceiling {len} bytes {secs:.3} s {:.0} MB/s (last piece sha1 {})",
        len as f64 / secs / 1e6,
        hex(&digest)
    );
    Ok(())
}

/// Reads `src` a piece at a time and writes it to a connection to `addr`.
fn send(src: &PathBuf, addr: std::net::SocketAddr, piece: usize) -> Result<()> {
    let file = File::open(src).with_context(|| format!("{}", src.display()))?;
    let mut conn = TcpStream::connect(addr).context("connect")?;
    let mut buf = vec![0u8; piece];
    let mut at = 0u64;
    loop {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(buf.get(..n).context("short buffer")?)?;
        at += n as u64;
    }
}

/// Pieces received but not yet hashed and written: enough to keep both threads busy.
const QUEUE: usize = 4;

/// Receives `len` bytes a piece at a time; a second thread hashes each piece and writes it at its
/// offset in `dst`. Returns the last piece's SHA-1 (printed, so the hashing cannot be optimised
/// away).
fn receive(mut conn: TcpStream, dst: &PathBuf, len: u64, piece: usize) -> Result<[u8; 20]> {
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .with_context(|| format!("{}", dst.display()))?;
    let (full_tx, full_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(QUEUE);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE + 1);
    for _ in 0..=QUEUE {
        empty_tx.send(vec![0u8; piece])?;
    }
    let writer = std::thread::spawn(move || -> Result<[u8; 20]> {
        let mut digest = [0u8; 20];
        for (at, buf) in full_rx {
            digest = Sha1::digest(&buf).into();
            out.write_all_at(&buf, at)?;
            // The receiver may already be gone (it stops after the last piece).
            let _ = empty_tx.send(buf);
        }
        Ok(digest)
    });
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from((len - at).min(piece as u64))?;
        let mut buf = empty_rx.recv().context("the writing thread stopped")?;
        buf.resize(n, 0);
        conn.read_exact(&mut buf)
            .context("the stream ended early")?;
        full_tx
            .send((at, buf))
            .context("the writing thread stopped")?;
        at += n as u64;
    }
    drop(full_tx);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writing thread panicked"))?
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
