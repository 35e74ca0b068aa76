//! Per-torrent sans-IO state machine: piece picker, choker, request pipeline.
