//! Resume files: `ResumeData::decode` against a small fixed torrent layout.
//!
//! A SHA-1 checksum guards the format, so random bytes rarely get past it. The first byte of the
//! input therefore picks a mode: bit 0 sizes the rest to the layout's length and appends a correct
//! checksum; bit 1 also writes a correct header (magic, version, info-hash, counts), leaving the
//! bitfield and file stamps to the fuzzer. What decodes must re-encode to the very same bytes,
//! and `trusted_pieces` must stay within the saved pieces.

use metainfo::InfoHash;
use sha1::{Digest, Sha1};
use storage::{FileSpec, Layout, ResumeData, encoded_len, trusted_pieces};

const PIECE_LEN: u64 = 16 * 1024;
const INFO_HASH: InfoHash = InfoHash([7; 20]);

/// Four files (one a padding file, one empty), 11 pieces, the last one short.
fn layout() -> Layout {
    let file = |name: &str, length: u64, pad: bool| FileSpec {
        path: if pad {
            Vec::new()
        } else {
            vec!["t".to_owned(), name.to_owned()]
        },
        length,
        pad,
    };
    let files = vec![
        file("a", 3 * PIECE_LEN + 100, false),
        file("", PIECE_LEN - 100, true),
        file("empty", 0, false),
        file("b", 6 * PIECE_LEN + 1, false),
    ];
    Layout::new(PIECE_LEN, files, vec![[0; 20]; 11]).expect("the fixed layout is valid")
}

/// Decodes `data` (after its mode byte) as resume data for the fixed layout.
pub fn run(data: &[u8]) {
    let layout = layout();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let len = usize::try_from(encoded_len(&layout)).expect("small layout");
        let mut b = rest.to_vec();
        b.resize(len - 20, 0);
        if mode & 2 != 0 {
            let mut header = Vec::with_capacity(40);
            header.extend_from_slice(b"swarmRD\0");
            header.extend_from_slice(&1u32.to_le_bytes());
            header.extend_from_slice(&INFO_HASH.0);
            header.extend_from_slice(&layout.geometry().piece_count().to_le_bytes());
            header.extend_from_slice(&(layout.files().len() as u32).to_le_bytes());
            if let Some(dst) = b.get_mut(..header.len()) {
                dst.copy_from_slice(&header);
            }
        }
        let sum = Sha1::digest(&b);
        b.extend_from_slice(&sum);
        b
    };
    let Ok(saved) = ResumeData::decode(&bytes, INFO_HASH, &layout) else {
        return;
    };
    assert_eq!(
        saved.encode(),
        bytes,
        "resume data does not re-encode to its bytes"
    );
    assert_eq!(saved.have.len(), layout.geometry().piece_count());
    for now in [saved.files.clone(), Vec::new()] {
        let t = trusted_pieces(&layout, &saved, &now);
        for i in t.have.iter_ones() {
            assert!(
                saved.have.get(i),
                "piece {i} trusted but not saved as present"
            );
        }
    }
}
