//! The swarm BitTorrent client: tokio shell and the swarm binary.
