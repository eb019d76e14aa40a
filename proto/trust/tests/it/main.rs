//! Integration tests of the trust crate: certificates and mutual TLS over
//! loopback.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod handshake;
mod http;
