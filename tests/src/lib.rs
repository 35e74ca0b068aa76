//! End-to-end and interop scenarios on loopback.
