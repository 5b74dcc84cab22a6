//! The session grant: everything a data-plane shard needs to move one
//! session's packets, as one owned value that crosses the control → shard
//! queue. After the hand-off exactly one shard owns it.

use std::net::{Ipv4Addr, SocketAddr};

use dtls::SessionKeys;

use crate::ip::Ipv4Net;

/// A session's identity across control and data plane. Also its slot in the
/// address pool: the shard finds a session from a packet's destination by
/// array index, not by hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl core::fmt::Display for SessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// What a session may send into the organisation's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Destinations the device may reach (the group's allowed networks).
    /// Packets to anything else are dropped and counted.
    pub allowed: Vec<Ipv4Net>,
}

impl Policy {
    pub fn allows(&self, dst: Ipv4Addr) -> bool {
        self.allowed.iter().any(|n| n.contains(dst))
    }
}

/// The DTLS side of a session handed to a shard.
#[derive(Debug)]
pub struct SessionGrant {
    pub session: SessionId,
    /// The device's UDP address (the DTLS peer).
    pub peer: SocketAddr,
    /// The tunnel address assigned to the device: inner source addresses
    /// must equal it.
    pub address: Ipv4Addr,
    pub policy: Policy,
    /// Record keys, epoch, sequence numbers and replay window.
    pub keys: SessionKeys,
    /// Largest inner packet the device was told (X-CSTP-MTU).
    pub mtu: u16,
}
