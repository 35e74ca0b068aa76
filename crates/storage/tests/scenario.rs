//! Storage on a real directory: a multi-file torrent with a short last piece, a zero-length file,
//! a padding file and a piece straddling three files; symlinks; reopening; resume data.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use metainfo::{Bitfield, InfoHash};
use sha1::{Digest, Sha1};
use storage::{
    FileSpec, HandlePool, Layout, LayoutError, Mode, OpenOptions, ResumeData, Storage,
    StorageError, trusted_pieces,
};

const PIECE: u64 = 32 * 1024;

/// (path, length, pad). Torrent offsets: a [0,40000), empty at 40000, pad [40000,50000),
/// b [50000,80000), c [80000,101000). Pieces of 32 KiB: 0 = a; 1 = a + empty + pad + b
/// (straddles three files with data); 2 = b + c; 3 = c, 2696 bytes (short last piece).
const FILES: &[(&[&str], u64, bool)] = &[
    (&["t", "a.bin"], 40_000, false),
    (&["t", "empty"], 0, false),
    (&["t", ".pad", "10000"], 10_000, true),
    (&["t", "sub", "b.bin"], 30_000, false),
    (&["t", "sub", "deep", "c.bin"], 21_000, false),
];

/// Deterministic bytes for file `i` (padding: zeros).
fn file_bytes(i: usize) -> Vec<u8> {
    let (_, len, pad) = FILES[i];
    if pad {
        return vec![0; len as usize];
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn stream() -> Vec<u8> {
    (0..FILES.len()).flat_map(file_bytes).collect()
}

fn layout() -> Layout {
    let specs = FILES
        .iter()
        .map(|(p, len, pad)| FileSpec {
            path: p.iter().map(|s| s.to_string()).collect(),
            length: *len,
            pad: *pad,
        })
        .collect();
    let hashes: Vec<[u8; 20]> = stream()
        .chunks(PIECE as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    Layout::new(PIECE, specs, hashes).expect("scenario layout is valid")
}

fn piece_data(s: &Storage, i: u32) -> Vec<u8> {
    let g = s.layout().geometry();
    let p = g.piece(i).expect("scenario piece");
    let off = g.piece_offset(p) as usize;
    stream()[off..off + g.piece_len(p) as usize].to_vec()
}

fn write_pieces(s: &Storage, pieces: &[u32]) {
    for &i in pieces {
        let p = s.layout().geometry().piece(i).expect("scenario piece");
        s.write_piece(p, &piece_data(s, i)).expect("write_piece");
    }
}

/// Every regular file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("dir entry");
            let t = e.file_type().expect("file_type");
            if t.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn ones(b: &Bitfield) -> Vec<u32> {
    b.iter_ones().collect()
}

#[test]
fn geometry_is_what_the_scenario_claims() {
    let l = layout();
    let g = l.geometry();
    assert_eq!(g.piece_count(), 4);
    assert_eq!(g.last_piece_len(), 2696);
    let touched: Vec<usize> = l.piece_files(g.piece(1).unwrap()).collect();
    assert_eq!(touched, vec![0, 2, 3]);
}

#[test]
fn write_every_piece_read_every_block_bytes_on_disk_match() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
    // Sparse, full-size files exist before any write; the padding file never does.
    assert_eq!(
        fs::metadata(dir.path().join("t/sub/b.bin")).unwrap().len(),
        30_000
    );
    write_pieces(&s, &[3, 1, 0, 2]);
    s.flush().unwrap();

    let g = *s.layout().geometry();
    let all = stream();
    for p in g.pieces() {
        for b in g.blocks(p) {
            let mut buf = vec![0xaa; b.len() as usize];
            s.read(p, b.begin(), &mut buf).unwrap();
            let off = (g.piece_offset(p) + u64::from(b.begin())) as usize;
            assert_eq!(
                buf,
                &all[off..off + buf.len()],
                "piece {} block {}",
                p.get(),
                b.begin()
            );
        }
        assert!(s.verify_piece(p).unwrap());
    }
    // Unaligned range across a, empty, pad and b.
    let p1 = g.piece(1).unwrap();
    let mut buf = vec![0xaa; 20_000];
    s.read(p1, 5_000, &mut buf).unwrap();
    let off = (PIECE + 5_000) as usize;
    assert_eq!(buf, &all[off..off + 20_000]);

    for (i, (path, _, pad)) in FILES.iter().enumerate() {
        let on_disk = dir.path().join(path.join("/"));
        if *pad {
            assert!(!on_disk.exists(), "padding file created");
        } else {
            assert_eq!(
                fs::read(&on_disk).unwrap(),
                file_bytes(i),
                "{}",
                on_disk.display()
            );
        }
    }
    assert_eq!(
        files_under(dir.path()),
        ["t/a.bin", "t/empty", "t/sub/b.bin", "t/sub/deep/c.bin"].map(PathBuf::from)
    );
    let mut paths = s.file_paths();
    paths.sort();
    assert_eq!(paths.len(), 4);
    assert!(paths.iter().all(|p| p.starts_with(s.root())));
    assert!(ones(&s.verify_all(2, &|_| {}).unwrap()).len() == 4);
}

#[test]
fn verify_all_finds_exactly_the_written_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
    write_pieces(&s, &[1, 3]);
    let g = *s.layout().geometry();
    // Piece 2 written with one wrong byte.
    let mut bad = piece_data(&s, 2);
    bad[100] ^= 1;
    s.write_piece(g.piece(2).unwrap(), &bad).unwrap();
    assert_eq!(ones(&s.verify_all(2, &|_| {}).unwrap()), vec![1, 3]);
    assert!(!s.verify_piece(g.piece(2).unwrap()).unwrap());
    assert!(!s.verify_piece(g.piece(0).unwrap()).unwrap());
}

#[test]
fn concurrent_writers_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let pool = HandlePool::new(2);
    let opts = OpenOptions {
        pool: Some(pool.clone()),
        ..OpenOptions::default()
    };
    let s = Storage::new(layout(), dir.path(), opts).unwrap();
    let g = *s.layout().geometry();
    std::thread::scope(|sc| {
        for p in g.pieces() {
            let s = &s;
            sc.spawn(move || {
                // Block by block, as the network delivers them.
                let data = piece_data(s, p.get());
                for b in g.blocks(p) {
                    let r = b.begin() as usize..(b.begin() + b.len()) as usize;
                    s.write(p, b.begin(), &data[r]).unwrap();
                }
            });
        }
    });
    assert!(pool.len() <= 2);
    s.flush().unwrap();
    assert!(s.verify_all(3, &|_| {}).unwrap().is_full());
    assert!(pool.len() <= 2);
}

#[test]
fn storages_sharing_a_pool_stay_under_its_cap_and_release_on_drop() {
    let pool = HandlePool::new(3);
    let opts = OpenOptions {
        pool: Some(pool.clone()),
        ..OpenOptions::default()
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Storage::new(layout(), dirs[0].path(), opts.clone()).unwrap();
    let b = Storage::new(layout(), dirs[1].path(), opts).unwrap();
    write_pieces(&a, &[0, 1, 2, 3]);
    write_pieces(&b, &[0, 1, 2, 3]);
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(pool.len(), 3);
    assert_eq!(a.open_handles() + b.open_handles(), 3);
    assert!(a.verify_all(2, &|_| {}).unwrap().is_full());
    assert!(b.verify_all(2, &|_| {}).unwrap().is_full());
    assert!(pool.len() <= 3);
    drop(a);
    assert_eq!(pool.len(), b.open_handles());
    drop(b);
    assert!(pool.is_empty());
}

#[test]
fn reopen_keeps_data_and_read_only_treats_missing_or_short_files_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
        write_pieces(&s, &[0, 1, 2, 3]);
        s.flush().unwrap();
    }
    let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
    assert!(
        s.verify_all(2, &|_| {}).unwrap().is_full(),
        "reopen lost data"
    );
    drop(s);

    // A longer file is cut to length on a read-write open.
    let c = dir.path().join("t/sub/deep/c.bin");
    fs::OpenOptions::new()
        .append(true)
        .open(&c)
        .unwrap()
        .set_len(30_000)
        .unwrap();
    let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(fs::metadata(&c).unwrap().len(), 21_000);
    assert!(s.verify_all(1, &|_| {}).unwrap().is_full());
    drop(s);

    let ro = Storage::new(layout(), dir.path(), OpenOptions::read_only()).unwrap();
    assert_eq!(ro.mode(), Mode::ReadOnly);
    assert!(ro.verify_all(2, &|_| {}).unwrap().is_full());
    let g = *ro.layout().geometry();
    let p0 = g.piece(0).unwrap();
    assert!(matches!(
        ro.write_piece(p0, &piece_data(&ro, 0)),
        Err(StorageError::ReadOnly)
    ));

    // c.bin gone: pieces 2 and 3 absent; b.bin short: piece 1 absent too (and 2).
    fs::remove_file(&c).unwrap();
    assert_eq!(ones(&ro.verify_all(2, &|_| {}).unwrap()), vec![0, 1]);
    // (A handle cached before the delete still reads the unlinked data; a fresh open does not.)
    let ro = Storage::new(layout(), dir.path(), OpenOptions::read_only()).unwrap();
    let mut buf = vec![0; 100];
    let err = ro.read(g.piece(3).unwrap(), 0, &mut buf).unwrap_err();
    assert!(err.is_absent(), "{err}");
    assert!(!ro.verify_piece(g.piece(3).unwrap()).unwrap());
    assert!(!c.exists(), "read-only storage created a file");
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("t/sub/b.bin"))
        .unwrap()
        .set_len(10_000)
        .unwrap();
    assert_eq!(ones(&ro.verify_all(2, &|_| {}).unwrap()), vec![0]);
    // A fresh read-only open of a half-present tree creates nothing.
    let ro = Storage::new(layout(), dir.path(), OpenOptions::read_only()).unwrap();
    assert_eq!(ones(&ro.verify_all(2, &|_| {}).unwrap()), vec![0]);
    assert!(!c.exists());
}

#[test]
fn read_only_open_of_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        Storage::new(layout(), &dir.path().join("nope"), OpenOptions::read_only()).unwrap_err();
    assert!(err.to_string().starts_with("open "), "{err}");
    assert!(!dir.path().join("nope").exists());
}

#[test]
fn symlinked_directory_inside_out_dir_is_refused_and_nothing_written_outside() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("t")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("t/sub")).unwrap();
    let err = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("t/sub"), "{err}");
    assert!(files_under(outside.path()).is_empty());
}

#[test]
fn symlinked_file_inside_out_dir_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    fs::create_dir_all(dir.path().join("t")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("t/a.bin")).unwrap();
    let err = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("is a symlink"), "{err}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");

    // Read-only: reads refuse it; verify does not read through it (the pieces are absent).
    let ro = Storage::new(layout(), dir.path(), OpenOptions::read_only()).unwrap();
    let mut buf = vec![0; 8];
    let p0 = ro.layout().geometry().piece(0).unwrap();
    let err = ro.read(p0, 0, &mut buf).unwrap_err();
    assert!(matches!(err, StorageError::UnsafePath { .. }), "{err}");
    assert!(ro.verify_all(1, &|_| {}).unwrap().is_none());
}

#[test]
fn symlink_planted_after_open_does_not_redirect_writes() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let opts = OpenOptions {
        pool: Some(HandlePool::new(1)),
        ..OpenOptions::default()
    };
    let s = Storage::new(layout(), dir.path(), opts).unwrap();
    // Swap the directory for a symlink to a look-alike tree outside.
    let deep = dir.path().join("t/sub/deep");
    fs::remove_dir_all(&deep).unwrap();
    fs::write(outside.path().join("c.bin"), b"").unwrap();
    std::os::unix::fs::symlink(outside.path(), &deep).unwrap();
    let p3 = s.layout().geometry().piece(3).unwrap();
    let err = s.write_piece(p3, &piece_data(&s, 3)).unwrap_err();
    assert!(matches!(err, StorageError::UnsafePath { .. }), "{err}");
    assert_eq!(fs::metadata(outside.path().join("c.bin")).unwrap().len(), 0);
}

#[test]
fn dot_dot_paths_cannot_reach_storage() {
    let specs = vec![FileSpec {
        path: vec!["t".into(), "..".into(), "..".into(), "escape".into()],
        length: 10,
        pad: false,
    }];
    let err = Layout::new(PIECE, specs, vec![[0; 20]]).unwrap_err();
    assert!(
        matches!(err, LayoutError::UnsafeComponent { file: 0, .. }),
        "{err}"
    );
}

#[test]
fn resume_round_trip_and_touched_file_is_rechecked() {
    let dir = tempfile::tempdir().unwrap();
    let resume = dir.path().join("t.resume");
    let out = dir.path().join("out");
    let hash = InfoHash([7; 20]);
    let s = Storage::new(layout(), &out, OpenOptions::default()).unwrap();
    write_pieces(&s, &[0, 2, 3]);
    s.flush().unwrap();
    let have = s.verify_all(2, &|_| {}).unwrap();
    let saved = ResumeData {
        info_hash: hash,
        have: have.clone(),
        files: s.stamps(),
    };
    saved.save_atomic(&resume).unwrap();
    drop(s);

    let s = Storage::new(layout(), &out, OpenOptions::default()).unwrap();
    let loaded = ResumeData::load(&resume, hash, s.layout()).unwrap();
    assert_eq!(loaded, saved);
    let t = trusted_pieces(s.layout(), &loaded, &s.stamps());
    assert_eq!(t.have, have);
    assert!(t.recheck.is_none());

    // c.bin's mtime changes behind our back: pieces 2 and 3 (on c) must be re-verified.
    let c = out.join("t/sub/deep/c.bin");
    let f = fs::OpenOptions::new().write(true).open(&c).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);
    let t = trusted_pieces(s.layout(), &loaded, &s.stamps());
    assert_eq!(ones(&t.have), vec![0]);
    assert_eq!(ones(&t.recheck), vec![2, 3]);
    // Only the data's time changed: re-verifying the recheck set finds both pieces intact.
    let rechecked = s.verify_set(&t.recheck, 2, &|_| {}).unwrap();
    assert_eq!(ones(&rechecked), vec![2, 3]);

    // Corrupted resume data is rejected.
    let mut bytes = fs::read(&resume).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&resume, &bytes).unwrap();
    assert!(ResumeData::load(&resume, hash, s.layout()).is_err());
}

/// A bencoded info dictionary for the scenario torrent (keys sorted, padding as `attr p`).
fn info_bytes() -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!("{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    }
    let mut d = b"d5:filesl".to_vec();
    for (path, len, pad) in FILES {
        d.push(b'd');
        if *pad {
            d.extend_from_slice(b"4:attr1:p");
        }
        d.extend_from_slice(format!("6:lengthi{len}e4:pathl").as_bytes());
        for c in &path[1..] {
            bytes(&mut d, c.as_bytes());
        }
        d.extend_from_slice(b"ee");
    }
    d.extend_from_slice(b"e4:name1:t12:piece lengthi");
    d.extend_from_slice(format!("{PIECE}e6:pieces").as_bytes());
    let hashes: Vec<u8> = stream()
        .chunks(PIECE as usize)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    bytes(&mut d, &hashes);
    d.push(b'e');
    d
}

#[test]
fn opens_a_parsed_torrent() {
    let info = metainfo::Info::from_bytes(&info_bytes()).unwrap();
    assert_eq!(Layout::from_info(&info).unwrap().files(), layout().files());
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(&info, dir.path(), OpenOptions::default()).unwrap();
    write_pieces(&s, &[0, 1, 2, 3]);
    assert!(s.verify_all(2, &|_| {}).unwrap().is_full());
    assert_eq!(
        fs::read(dir.path().join("t/sub/b.bin")).unwrap(),
        file_bytes(3)
    );
    assert!(!dir.path().join("t/.pad").exists());
}
