//! Zero-copy bencode validation and span scanning, depth-limited.
