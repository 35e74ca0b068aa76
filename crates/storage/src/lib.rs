//! Piece to file mapping, positioned I/O, verification and resume data.
