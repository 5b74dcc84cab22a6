//! Handshake messages, their reassembly from fragments.

pub mod msg;
pub(crate) mod reassembly;
