//! A whole .torrent file (BEP 3): the info dictionary plus trackers (BEP 12 tiers), web seeds
//! (`url-list`, BEP 19), comment, creator and creation date.
//!
//! Only `info` is strict. The other top-level keys are advisory, so a value of the wrong type
//! is ignored rather than refused (torrents in the wild are sloppy there); unknown keys are
//! ignored. Duplicate top-level keys are refused so two readers cannot disagree on `info`.

use bencode::Value;
use bytes::Bytes;

use crate::error::MetainfoError;
use crate::fields::Dict;
use crate::hash::InfoHash;
use crate::info::{self, Info};
use crate::pieces::shared_slice;

/// Most tracker URLs (over all tiers) and web seeds kept from one torrent; extra ones are dropped.
pub const MAX_TRACKERS: usize = 256;

/// A parsed .torrent file.
///
/// It keeps the file's bytes once: [`Info::raw_info`] and the piece hashes are views into them.
#[derive(Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the raw `info` dictionary (same as `info.info_hash()`).
    pub info_hash: InfoHash,
    /// The info dictionary.
    pub info: Info,
    /// The `announce` URL, if any.
    pub announce: Option<String>,
    /// BEP 12 `announce-list` tiers (empty tiers and non-string entries dropped).
    pub announce_list: Vec<Vec<String>>,
    /// BEP 19 web seeds (`url-list`, a string or a list of strings).
    pub url_list: Vec<String>,
    /// Free-text comment.
    pub comment: Option<String>,
    /// The program that made the torrent.
    pub created_by: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    raw: Bytes,
}

impl std::fmt::Debug for Metainfo {
    /// Everything but the raw bytes (which can be megabytes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metainfo")
            .field("info_hash", &self.info_hash)
            .field("info", &self.info)
            .field("announce", &self.announce)
            .field("announce_list", &self.announce_list)
            .field("url_list", &self.url_list)
            .field("comment", &self.comment)
            .field("created_by", &self.created_by)
            .field("creation_date", &self.creation_date)
            .finish_non_exhaustive()
    }
}

impl Metainfo {
    /// Parses and checks a .torrent file.
    pub fn from_bytes(buf: &[u8]) -> Result<Metainfo, MetainfoError> {
        info::check_size(buf)?;
        Metainfo::from_shared(Bytes::copy_from_slice(buf))
    }

    /// Like [`from_bytes`](Metainfo::from_bytes), but keeps `buf` itself (no copy): the result,
    /// its info dictionary and piece hashes share its bytes.
    pub fn from_shared(raw: Bytes) -> Result<Metainfo, MetainfoError> {
        info::check_size(&raw)?;
        let buf: &[u8] = &raw;
        let limits = info::limits();
        let bad = |error| MetainfoError::Bencode {
            field: "torrent",
            error,
        };
        // Validate everything (depth, items, strictness) once, without building a tree.
        let len = bencode::value_len_with(buf, &limits).map_err(bad)?;
        if len != buf.len() {
            return Err(bad(bencode::Error::new(
                len,
                bencode::ErrorKind::TrailingBytes,
            )));
        }
        let entries = bencode::raw_dict(buf, &limits).map_err(bad)?;

        let mut top: Vec<(&[u8], Value<'_>)> = Vec::with_capacity(entries.len());
        let mut raw_info = None;
        for e in &entries {
            if e.key == b"info" {
                raw_info.get_or_insert(e.raw);
                // A placeholder keeps the key for the duplicate check without decoding twice.
                top.push((e.key, Value::Int(0)));
            } else {
                top.push((e.key, bencode::decode_with(e.raw, &limits).map_err(bad)?));
            }
        }
        let dict_value = Value::Dict(top);
        let d = Dict::new("", &dict_value)?;
        d.unique_keys().map_err(|e| match e {
            MetainfoError::Field { problem, .. } => MetainfoError::field("torrent", problem),
            other => other,
        })?;
        let raw_info =
            raw_info.ok_or_else(|| MetainfoError::field("info", crate::error::Problem::Missing))?;
        let raw_info = shared_slice(&raw, raw_info)
            .ok_or_else(|| MetainfoError::invalid("info", "not inside the torrent bytes"))?;
        let info = Info::from_shared(raw_info)?;

        Ok(Metainfo {
            info_hash: info.info_hash(),
            announce: d.lenient_str("announce").filter(|s| !s.is_empty()),
            announce_list: parse_announce_list(d.get("announce-list")),
            url_list: parse_url_list(d.get("url-list")),
            comment: d.lenient_str("comment"),
            created_by: d.lenient_str("created by"),
            creation_date: d.lenient_int("creation date"),
            info,
            raw,
        })
    }

    /// The exact bytes this was parsed from (or written by the torrent builder).
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// A copy of the raw torrent bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.raw.to_vec()
    }

    /// Tracker tiers to use: `announce-list` when present (BEP 12 says `announce` is then
    /// ignored), else the single `announce` URL, else none.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else {
            self.announce.iter().map(|a| vec![a.clone()]).collect()
        }
    }
}

fn lossy_nonempty(v: &Value<'_>) -> Option<String> {
    v.as_bytes()
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn parse_announce_list(v: Option<&Value<'_>>) -> Vec<Vec<String>> {
    let mut budget = MAX_TRACKERS;
    let mut tiers = Vec::new();
    for tier in v.and_then(Value::as_list).unwrap_or_default() {
        let urls: Vec<String> = tier
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(lossy_nonempty)
            .take(budget)
            .collect();
        budget -= urls.len();
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    tiers
}

fn parse_url_list(v: Option<&Value<'_>>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(lossy_nonempty)
            .take(MAX_TRACKERS)
            .collect(),
        Some(single) => lossy_nonempty(single).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathProblem;
    use bencode::{put_bytes, put_int, put_str};
    use sha1::{Digest, Sha1};

    /// `d<entries>e` from (key, already-encoded value) pairs, in the order given.
    fn dict(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"d".to_vec();
        for (k, v) in entries {
            put_str(&mut out, k);
            out.extend_from_slice(v);
        }
        out.push(b'e');
        out
    }
    fn int(n: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, n);
        out
    }
    fn bytes(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, b);
        out
    }
    fn list(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"l".to_vec();
        for i in items {
            out.extend_from_slice(i);
        }
        out.push(b'e');
        out
    }
    fn strs(items: &[&str]) -> Vec<u8> {
        list(
            &items
                .iter()
                .map(|s| bytes(s.as_bytes()))
                .collect::<Vec<_>>(),
        )
    }
    fn file(len: i64, path: &[&str]) -> Vec<u8> {
        dict(&[("length", int(len)), ("path", strs(path))])
    }
    fn pieces(n: usize) -> Vec<u8> {
        bytes(&(0..n * 20).map(|i| i as u8).collect::<Vec<_>>())
    }
    fn torrent(info: &[u8]) -> Vec<u8> {
        dict(&[
            ("announce", bytes(b"http://t.example/announce")),
            ("info", info.to_vec()),
        ])
    }
    fn multi(files: &[Vec<u8>], piece_len: i64, n_pieces: usize) -> Vec<u8> {
        dict(&[
            ("files", list(files)),
            ("name", bytes(b"top")),
            ("piece length", int(piece_len)),
            ("pieces", pieces(n_pieces)),
        ])
    }
    fn err(buf: &[u8]) -> String {
        Metainfo::from_bytes(buf).unwrap_err().to_string()
    }

    #[test]
    fn single_file_torrent() {
        let info = dict(&[
            ("length", int(40_000)),
            ("name", bytes(b"a.bin")),
            ("piece length", int(32_768)),
            ("pieces", pieces(2)),
        ]);
        let buf = dict(&[
            ("announce", bytes(b"http://t.example/announce")),
            ("comment", bytes(b"hello")),
            ("created by", bytes(b"hand")),
            ("creation date", int(1_700_000_000)),
            ("info", info.clone()),
        ]);
        let m = Metainfo::from_bytes(&buf).unwrap();
        assert_eq!(m.info_hash, InfoHash(Sha1::digest(&info).into()));
        assert_eq!(m.info.raw_info(), &info[..]);
        assert_eq!(m.announce.as_deref(), Some("http://t.example/announce"));
        assert_eq!(m.trackers(), [["http://t.example/announce"]]);
        assert_eq!(m.comment.as_deref(), Some("hello"));
        assert_eq!(m.created_by.as_deref(), Some("hand"));
        assert_eq!(m.creation_date, Some(1_700_000_000));
        assert_eq!(m.as_bytes(), &buf[..]);
        let i = &m.info;
        assert!(!i.is_multi_file() && !i.is_private());
        assert_eq!(
            (i.name(), i.piece_length(), i.total_length()),
            ("a.bin", 32_768, 40_000)
        );
        assert_eq!(i.files().len(), 1);
        assert_eq!(i.files()[0].path, ["a.bin"]);
        assert_eq!(i.geometry().piece_count(), 2);
        assert_eq!(i.pieces().get(1).map(|h| h[0]), Some(20));
        let p1 = i.geometry().piece(1).unwrap();
        assert_eq!(i.piece_hash(p1).map(|h| h[19]), Some(39));
        assert_eq!(Info::from_bytes(&info).unwrap(), m.info);
        // One copy: the info dictionary and the piece hashes are views into the torrent's bytes.
        let whole = m.as_bytes().as_ptr_range();
        let inner = m.info.raw_info().as_ptr_range();
        let hashes = i.pieces().in_memory().unwrap().as_ptr_range();
        assert!(whole.start <= inner.start && inner.end <= whole.end);
        assert!(inner.start <= hashes.start && hashes.end <= inner.end);
        assert_eq!(
            i.pieces().in_memory().unwrap(),
            &(0..40).collect::<Vec<u8>>()[..]
        );
        // Stored in a file: the same dictionary and hashes, read from there.
        let (stored, from_file) = i.store_in(tempfile::tempfile().unwrap()).unwrap();
        assert!(!stored.is_in_memory() && !from_file.is_in_memory());
        assert_eq!(stored.read(0, stored.len()).unwrap(), m.info.raw_info());
        assert_eq!(&from_file, i.pieces());
        assert_eq!(from_file.get(1).map(|h| h[19]), Some(39));
        // Debug output names the torrent but does not dump its bytes.
        let dbg = format!("{m:?}");
        assert!(dbg.contains("a.bin") && dbg.contains(&m.info_hash.to_hex()));
        assert!(dbg.len() < 600, "{dbg}");
    }

    #[test]
    fn multi_file_torrent_with_padding_and_extras() {
        let pad = dict(&[
            ("attr", bytes(b"p")),
            ("length", int(16_384 - 100)),
            ("path", strs(&[".pad", "16284"])),
        ]);
        let files = [
            file(100, &["a.txt"]),
            pad,
            file(0, &["empty"]),
            file(20_000, &["sub", "b.bin"]),
        ];
        let mut info = multi(&files, 16_384, 3);
        // Add private and source inside the info dict (before its final 'e').
        info.pop();
        info.extend_from_slice(b"7:privatei1e6:source3:XYZe");
        let buf = dict(&[
            ("announce", bytes(b"http://a/announce")),
            (
                "announce-list",
                list(&[
                    strs(&["http://a/announce", "http://b/announce"]),
                    list(&[]),
                    strs(&["udp://c:1"]),
                ]),
            ),
            ("info", info),
            ("url-list", bytes(b"http://seed/")),
            ("zzz-unknown", list(&[int(1)])),
        ]);
        let m = Metainfo::from_bytes(&buf).unwrap();
        assert_eq!(
            m.trackers(),
            vec![
                vec![
                    "http://a/announce".to_owned(),
                    "http://b/announce".to_owned()
                ],
                vec!["udp://c:1".to_owned()]
            ]
        );
        assert_eq!(m.url_list, ["http://seed/"]);
        let i = &m.info;
        assert!(i.is_multi_file() && i.is_private());
        assert_eq!(i.source(), Some("XYZ"));
        let f = i.files();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].path, ["top", "a.txt"]);
        assert!(f[1].pad && !f[0].pad);
        assert_eq!((f[2].offset, f[2].length), (16_384, 0));
        assert_eq!(f[3].path, ["top", "sub", "b.bin"]);
        assert_eq!(f[3].offset, 16_384);
        assert_eq!(i.total_length(), 36_384);
        // Piece 0 = a.txt + padding; piece 1 and 2 are in b.bin; the empty file yields nothing.
        let g = i.geometry();
        let spans: Vec<_> = i.file_spans(g.piece(0).unwrap()).collect();
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].file, spans[0].len), (0, 100));
        assert_eq!(
            (spans[1].file, spans[1].file_offset, spans[1].len),
            (1, 0, 16_284)
        );
        let last: Vec<_> = i.file_spans(g.piece(2).unwrap()).collect();
        assert_eq!(last.len(), 1);
        assert_eq!(
            (last[0].file, last[0].file_offset, last[0].len),
            (3, 16_384, 20_000 - 16_384)
        );
        assert_eq!(
            i.safe_join(std::path::Path::new("/out"), &f[3]),
            std::path::PathBuf::from("/out/top/sub/b.bin")
        );
    }

    #[test]
    fn url_list_as_list_and_wrong_typed_extras_are_tolerated() {
        let info = multi(&[file(10, &["x"])], 16_384, 1);
        let buf = dict(&[
            ("announce", int(5)),
            ("announce-list", bytes(b"nope")),
            ("comment", list(&[])),
            ("info", info),
            ("url-list", strs(&["http://a/", "", "http://b/"])),
        ]);
        let m = Metainfo::from_bytes(&buf).unwrap();
        assert_eq!(m.announce, None);
        assert!(m.announce_list.is_empty() && m.trackers().is_empty());
        assert_eq!(m.comment, None);
        assert_eq!(m.url_list, ["http://a/", "http://b/"]);
    }

    #[test]
    fn info_hash_is_over_the_exact_bytes_of_unsorted_info() {
        // Keys out of order plus an unknown key: a re-encoding would sort them and drop nothing,
        // giving a different hash. Ours must hash the bytes as they stand.
        let info = dict(&[
            ("pieces", pieces(1)),
            ("name", bytes(b"x.bin")),
            ("zz unknown", dict(&[("b", int(1)), ("a", int(2))])),
            ("piece length", int(16_384)),
            ("length", int(5)),
        ]);
        let m = Metainfo::from_bytes(&torrent(&info)).unwrap();
        assert_eq!(m.info_hash, InfoHash(Sha1::digest(&info).into()));
        let resorted = bencode::decode(&info).unwrap().to_vec();
        assert_ne!(resorted, info);
        assert_ne!(m.info_hash, InfoHash(Sha1::digest(&resorted).into()));
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let no_pl = dict(&[
            ("length", int(5)),
            ("name", bytes(b"x")),
            ("pieces", pieces(1)),
        ]);
        assert_eq!(err(&torrent(&no_pl)), "info.piece length: missing");
        let pl_str = dict(&[
            ("length", int(5)),
            ("name", bytes(b"x")),
            ("piece length", bytes(b"16384")),
            ("pieces", pieces(1)),
        ]);
        assert_eq!(
            err(&torrent(&pl_str)),
            "info.piece length: expected integer, found byte string"
        );
        let odd = dict(&[
            ("length", int(5)),
            ("name", bytes(b"x")),
            ("piece length", int(16_384)),
            ("pieces", bytes(&[0; 41])),
        ]);
        assert_eq!(
            err(&torrent(&odd)),
            "info.pieces: length 41 is not a multiple of 20"
        );
        assert_eq!(err(&dict(&[("announce", bytes(b"x"))])), "info: missing");
        assert_eq!(
            err(&dict(&[("info", int(1))])),
            "info: expected dictionary, found integer"
        );
        let no_len = dict(&[
            ("name", bytes(b"x")),
            ("piece length", int(16_384)),
            ("pieces", pieces(1)),
        ]);
        assert_eq!(err(&torrent(&no_len)), "info.length: missing");
        let no_name = dict(&[
            ("length", int(5)),
            ("piece length", int(16_384)),
            ("pieces", pieces(1)),
        ]);
        assert_eq!(err(&torrent(&no_name)), "info.name: missing");
    }

    #[test]
    fn piece_length_policy() {
        let with_pl = |pl: i64| {
            let total = 3 * 16_384;
            let n = (total as u64).div_ceil(pl.max(1) as u64) as usize;
            torrent(&dict(&[
                ("length", int(total)),
                ("name", bytes(b"x")),
                ("piece length", int(pl)),
                ("pieces", pieces(n)),
            ]))
        };
        assert!(Metainfo::from_bytes(&with_pl(16_384)).is_ok());
        assert!(Metainfo::from_bytes(&with_pl(1 << 20)).is_ok());
        // A non-power-of-two multiple of 16 KiB (old torrents) is tolerated.
        assert!(Metainfo::from_bytes(&with_pl(3 * 16_384)).is_ok());
        assert_eq!(
            err(&with_pl(1000)),
            "info.piece length: 1000 is not a multiple of 16384 (16 KiB)"
        );
        assert_eq!(
            err(&with_pl(8192)),
            "info.piece length: 8192 is not a multiple of 16384 (16 KiB)"
        );
        assert_eq!(err(&with_pl(0)), "info.piece length: 0 is not positive");
        assert_eq!(
            err(&with_pl(1 << 27)),
            "info.piece length: 134217728 is over the 67108864-byte limit"
        );
    }

    #[test]
    fn piece_count_must_match_length() {
        let info = dict(&[
            ("length", int(100_000)),
            ("name", bytes(b"x")),
            ("piece length", int(16_384)),
            ("pieces", pieces(10)),
        ]);
        assert_eq!(
            err(&torrent(&info)),
            "piece count 10 does not match total length 100000 with piece length 16384 (7 pieces expected)"
        );
    }

    #[test]
    fn bad_files_are_named_by_index() {
        let files = [
            file(1, &["a"]),
            file(1, &["b"]),
            file(1, &["c"]),
            file(1, &[]),
        ];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 1))),
            "info.files[3].path: empty"
        );
        let files = [file(1, &["a"]), file(1, &["sub", "..", "x"])];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 1))),
            "info.files[1].path: component \"..\" is not allowed"
        );
        let files = [file(1, &["a"]), file(-1, &["b"])];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 1))),
            "info.files[1].length: -1 is negative"
        );
        let files = [file(1, &["a", "b"]), file(1, &["a", "b"])];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 1))),
            "info.files[1].path: same path as info.files[0]"
        );
        let files = [file(1, &["a"]), file(1, &["a", "b"])];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 1))),
            "info.files[1].path: its directory is the file info.files[0]"
        );
        assert_eq!(err(&torrent(&multi(&[], 16_384, 0))), "info.files: empty");
        let files = [dict(&[("length", int(1)), ("path", list(&[int(3)]))])];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 1))),
            "info.files[0].path[0]: expected byte string, found integer"
        );
        let files = [file(0, &["a"]), file(0, &["b"])];
        assert_eq!(
            err(&torrent(&multi(&files, 16_384, 0))),
            "info: total length is zero"
        );
    }

    #[test]
    fn padding_files_may_share_a_path() {
        let pad = |len| {
            dict(&[
                ("attr", bytes(b"p")),
                ("length", int(len)),
                ("path", strs(&[".pad", "0"])),
            ])
        };
        let files = [
            file(1, &["a"]),
            pad(16_383),
            file(1, &["b"]),
            pad(16_383),
            file(1, &["c"]),
        ];
        assert!(Metainfo::from_bytes(&torrent(&multi(&files, 16_384, 3))).is_ok());
    }

    #[test]
    fn hostile_names_are_refused() {
        for (name, want) in [
            (&b".."[..], PathProblem::ParentDir),
            (b"", PathProblem::EmptyComponent),
            (b"/etc", PathProblem::Separator),
            (b"C:", PathProblem::DrivePrefix),
        ] {
            let info = dict(&[
                ("length", int(5)),
                ("name", bytes(name)),
                ("piece length", int(16_384)),
                ("pieces", pieces(1)),
            ]);
            match Metainfo::from_bytes(&torrent(&info)) {
                Err(MetainfoError::Path(e)) => {
                    assert_eq!((e.field.as_str(), e.problem), ("info.name", want));
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn utf8_variants_are_preferred_and_invalid_utf8_replaced() {
        let info = dict(&[
            ("length", int(5)),
            ("name", bytes(b"caf\xe9")),
            ("piece length", int(16_384)),
            ("pieces", pieces(1)),
        ]);
        let m = Metainfo::from_bytes(&torrent(&info)).unwrap();
        assert_eq!(m.info.name(), "caf\u{fffd}");
        let info = dict(&[
            ("length", int(5)),
            ("name", bytes(b"caf\xe9")),
            ("name.utf-8", bytes("café".as_bytes())),
            ("piece length", int(16_384)),
            ("pieces", pieces(1)),
        ]);
        assert_eq!(
            Metainfo::from_bytes(&torrent(&info)).unwrap().info.name(),
            "café"
        );
        let f = dict(&[
            ("length", int(1)),
            ("path", strs(&["x\u{1}"])),
            ("path.utf-8", strs(&["ü"])),
        ]);
        let m = Metainfo::from_bytes(&torrent(&multi(&[f], 16_384, 1))).unwrap();
        assert_eq!(m.info.files()[0].path, ["top", "ü"]);
    }

    #[test]
    fn structural_problems() {
        let info = multi(&[file(1, &["a"])], 16_384, 1);
        let mut t = torrent(&info);
        t.push(b'\n');
        assert_eq!(
            err(&t),
            format!(
                "torrent: bencode: trailing bytes after the value at byte {}",
                t.len() - 1
            )
        );
        let twice = dict(&[("info", info.clone()), ("info", info.clone())]);
        assert_eq!(err(&twice), "torrent: duplicate key \"info\"");
        let mut both = info.clone();
        both.pop();
        both.extend_from_slice(b"6:lengthi1ee");
        assert_eq!(
            err(&torrent(&both)),
            "info: has both length (single file) and files (multi-file)"
        );
        let dup_in_info = dict(&[("name", bytes(b"a")), ("name", bytes(b"b"))]);
        assert_eq!(err(&torrent(&dup_in_info)), "info: duplicate key \"name\"");
        let deep = [vec![b'l'; 100], vec![b'e'; 100]].concat();
        // The top dict is level 1, so the 32nd `l` is one too many.
        let at = 1 + "4:info".len() + info.len() + "1:x".len() + 31;
        let nested = dict(&[("info", info), ("x", deep)]);
        assert_eq!(
            err(&nested),
            format!("torrent: bencode: nesting deeper than 32 at byte {at}")
        );
        assert_eq!(
            err(b"i1e"),
            "torrent: bencode: unexpected byte 'i' at byte 0"
        );
        assert_eq!(
            err(b""),
            "torrent: bencode: input ends inside a value at byte 0"
        );
        assert!(matches!(
            Metainfo::from_bytes(&vec![b'd'; crate::MAX_TORRENT_BYTES + 1]),
            Err(MetainfoError::TooLarge { .. })
        ));
    }
}
