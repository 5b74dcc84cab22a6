//! Shared helpers for the `dtls` integration tests (`mod support;`).
// Each test binary uses only part of the helpers, and `pub` items of a
// private test module are unreachable by construction.
#![allow(dead_code, unreachable_pub)]

pub mod driver;
pub mod peers;
