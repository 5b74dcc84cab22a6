//! The owned values that cross between control and the shards.

use std::net::SocketAddr;
use std::time::Instant;

use dtls::CipherSuite;
use proto::grant::{Policy, SessionGrant, SessionId};

use crate::handshake::Authorization;

/// A shard's index, `0..shard_count()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl core::fmt::Display for ShardId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "shard{}", self.0)
    }
}

/// Control → shard. The hand-off runs this way only: control authorises a
/// session's DTLS handshake on every shard, and the shard that the device's
/// datagrams reach runs it and installs the session itself
/// ([`crate::handshake`]).
#[derive(Debug)]
pub enum ToShard {
    /// Accept this session's DTLS handshake (its App-ID and key), replacing
    /// what it was authorised with before. Sent to every shard at CONNECT.
    Authorize(Box<Authorization>),
    /// The session ended: forget its authorisation and, if installed here,
    /// the session (its keys are wiped on drop).
    Deauthorize(SessionId),
    /// Install a session directly, without a handshake (tests and the load
    /// harness that hold keys already). A grant for a session id the shard
    /// already holds replaces it; a grant whose peer address another local
    /// session uses replaces that session.
    Grant(Box<SessionGrant>),
    /// Uninstall the session's DTLS channel (the device fell back to CSTP);
    /// its authorisation stays, so a new handshake may bring it back.
    Revoke(SessionId),
    /// Send `datagram` to `to` from the shards' UDP port (a relay flow's
    /// bind, which must leave from the port the relay will answer).
    SendDatagram { to: SocketAddr, datagram: Vec<u8> },
    /// A device packet that arrived over CSTP for `session`, to be written
    /// to the TUN. Control admitted it with the rule a shard applies to a
    /// DTLS DATA record, [`Policy::admit`](proto::grant::Policy::admit) with
    /// the session's address and policy, and trimmed it to its total length
    /// ([`Admitted::trim`](proto::grant::Admitted::trim)). The shard checks
    /// it no further and writes it as given, whether or not it holds the
    /// session's grant: one check per packet, and the one with the
    /// session's policy at hand. Failed writes count as `io_errors`.
    ///
    /// The packet is `frame[TUN_WRITE_HEADROOM..]`; the bytes in front are
    /// room for the TUN's virtio header, so the packet is written from the
    /// buffer it came in (control copies it out of the TLS stream once,
    /// already with that room: [`proto::cstp::Deframer::next_frame_with_headroom`]).
    TunWrite { session: SessionId, frame: Vec<u8> },
    /// The session's group changed its policy (a configuration reload):
    /// its installed session, and its authorisation for a later handshake,
    /// admit by `policy` from the next packet on. Unknown sessions are
    /// ignored.
    Repolicy { session: SessionId, policy: Box<Policy> },
}

/// Bytes in front of the packet in [`ToShard::TunWrite`]'s frame.
pub const TUN_WRITE_HEADROOM: usize = proto::offload::VNET_HDR_LEN;

impl ToShard {
    /// A [`ToShard::TunWrite`] of `packet`, copied behind the headroom.
    pub fn tun_write(session: SessionId, packet: &[u8]) -> Self {
        let mut frame = Vec::with_capacity(TUN_WRITE_HEADROOM + packet.len());
        frame.resize(TUN_WRITE_HEADROOM, 0);
        frame.extend_from_slice(packet);
        ToShard::TunWrite { session, frame }
    }
}

/// Shard → control.
#[derive(Debug)]
pub enum FromShard {
    /// A TUN packet for a pool address with no DTLS session: send it over CSTP.
    CstpPacket { session: SessionId, packet: Vec<u8> },
    /// `shard` completed `session`'s DTLS handshake with `peer` and installed
    /// it: records from `peer` are opened there from now on. A session
    /// installed on another shard before (the device's address changed) is
    /// control's to revoke there.
    Established { shard: ShardId, session: SessionId, peer: SocketAddr, suite: CipherSuite },
    /// The device sent DISCONNECT over DTLS.
    Disconnect { session: SessionId },
    /// At most once per second per session that moved packets since the
    /// last report. Counts are totals since `shard` installed the session
    /// (each grant counts from zero).
    Activity { session: SessionId, shard: ShardId, last_rx: Instant, rx: Tally, tx: Tally },
}

/// What a session carried one way: its DATA packets and their bytes (the
/// inner IP packets, as they entered or left the tunnel). DPD, keepalives
/// and alerts are not traffic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub packets: u64,
    pub bytes: u64,
}

impl Tally {
    /// One record carrying `bytes` of IP packet.
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

impl core::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally { packets: self.packets + o.packets, bytes: self.bytes + o.bytes }
    }
}

/// A network → device packet that reached a shard not owning its session.
/// `frame` already has the record headroom in front and tailroom behind, so
/// the owner seals it in place.
#[derive(Debug)]
pub(crate) struct CrossPacket {
    /// The packet's destination: the session's pool address.
    pub(crate) dst: std::net::Ipv4Addr,
    pub(crate) frame: Vec<u8>,
    /// Bytes of IP packet at `frame[PACKET_AT..]`.
    pub(crate) len: usize,
    /// The TUN's offload header for it (`NONE` without offloads): the
    /// owner segments and checksums it.
    pub(crate) hdr: proto::offload::VnetHdr,
}
