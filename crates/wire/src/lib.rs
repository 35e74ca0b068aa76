//! Peer wire protocol: handshake, messages, extension protocol; sans-IO.
