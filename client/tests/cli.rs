//! The `swarm` binary end to end: create then info, and clean one-line errors.

use std::path::Path;
use std::process::{Command, Output};

fn swarm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run swarm")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value after `key` on the line that starts with it.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} in:\n{out}"))
}

/// Exit code 1 and exactly one line on stderr, starting with `error: `, without a panic.
fn assert_one_line_error(o: &Output) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

#[test]
fn create_then_info_on_a_multi_file_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("album");
    std::fs::create_dir_all(root.join("cd1")).unwrap();
    std::fs::write(root.join("cd1/track01.flac"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("cover.jpg"), vec![1u8; 1234]).unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();

    let o = swarm(
        tmp.path(),
        &[
            "create",
            "album",
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--tracker",
            "udp://127.0.0.1:2",
            "--piece-size",
            "32K",
            "--comment",
            "test rip",
            "--private",
        ],
    );
    let out = text(&o.stdout);
    assert!(
        o.status.success(),
        "stdout: {out}\nstderr: {}",
        text(&o.stderr)
    );
    let hash = field(&out, "info-hash").to_owned();
    assert_eq!(hash.len(), 40);
    assert!(field(&out, "magnet").starts_with(&format!("magnet:?xt=urn:btih:{hash}&dn=album")));
    assert!(tmp.path().join("album.torrent").is_file());

    let o = swarm(tmp.path(), &["info", "album.torrent"]);
    let info = text(&o.stdout);
    assert!(o.status.success(), "{info}{}", text(&o.stderr));
    assert_eq!(field(&info, "name"), "album");
    assert_eq!(field(&info, "info-hash"), hash);
    assert_eq!(field(&info, "size"), "294.17 KiB (301234 bytes)");
    assert_eq!(field(&info, "pieces"), "10 x 32.00 KiB (last 6.17 KiB)");
    assert_eq!(field(&info, "private"), "yes");
    assert_eq!(field(&info, "comment"), "test rip");
    assert!(field(&info, "created by").starts_with("swarm "));
    assert_eq!(
        field(&info, "trackers"),
        "tier 1: http://127.0.0.1:1/announce"
    );
    assert!(info.contains("tier 2: udp://127.0.0.1:2"));
    assert_eq!(field(&info, "files"), "3");
    // The file list comes last, one indented line per file.
    let files: Vec<&str> = info
        .lines()
        .skip_while(|l| !l.starts_with("files"))
        .skip(1)
        .collect();
    assert_eq!(files.len(), 3, "{info}");
    assert!(files[0].ends_with("album/cd1/track01.flac"), "{info}");
    assert!(files[1].ends_with("album/cover.jpg"));
    assert!(files[2].trim_start().starts_with("0 B"));

    // The same torrent again: refused without --force, identical bytes with it.
    let first = std::fs::read(tmp.path().join("album.torrent")).unwrap();
    let o = swarm(tmp.path(), &["create", "album"]);
    let err = assert_one_line_error(&o);
    assert!(err.contains("already exists"), "{err}");
    let o = swarm(
        tmp.path(),
        &[
            "create",
            "album",
            "-f",
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--tracker",
            "udp://127.0.0.1:2",
            "--piece-size",
            "32768",
            "--comment",
            "test rip",
            "--private",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read(tmp.path().join("album.torrent")).unwrap(),
        first
    );
}

#[test]
fn create_single_file_to_an_explicit_output() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("data.bin"), vec![3u8; 70_000]).unwrap();
    let o = swarm(tmp.path(), &["create", "data.bin", "-o", "out/x.torrent"]);
    // The output directory does not exist: a clean error naming the file.
    let err = assert_one_line_error(&o);
    assert!(err.contains("out/x.torrent"), "{err}");
    let o = swarm(tmp.path(), &["create", "data.bin", "-o", "x.torrent"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = swarm(tmp.path(), &["info", "x.torrent"]);
    let info = text(&o.stdout);
    assert_eq!(field(&info, "pieces"), "1 x 256.00 KiB (last 68.36 KiB)");
    assert_eq!(field(&info, "trackers"), "none");
}

#[test]
fn missing_input_is_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let err = assert_one_line_error(&swarm(tmp.path(), &["info", "nope.torrent"]));
    assert!(err.contains("nope.torrent"), "{err}");
    let err = assert_one_line_error(&swarm(tmp.path(), &["create", "nope"]));
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn malformed_torrent_is_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.torrent"), b"d4:infod4:name1:xee").unwrap();
    let err = assert_one_line_error(&swarm(tmp.path(), &["info", "bad.torrent"]));
    assert!(
        err.contains("bad.torrent is not a valid torrent: info.piece length: missing"),
        "{err}"
    );
    std::fs::write(tmp.path().join("junk.torrent"), b"\x00\xffgarbage\n").unwrap();
    let err = assert_one_line_error(&swarm(tmp.path(), &["info", "junk.torrent"]));
    assert!(err.contains("unexpected byte 0x00 at byte 0"), "{err}");
}

#[test]
fn usage_errors_come_from_clap() {
    let tmp = tempfile::tempdir().unwrap();
    let o = swarm(tmp.path(), &["create", "x", "--piece-size", "1000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("power of two"));
}
