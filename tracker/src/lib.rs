//! The swarm HTTP tracker service (axum), a library first.
