//! The owned values that cross between control and the shards.

use std::net::SocketAddr;
use std::time::Instant;

use proto::grant::{SessionGrant, SessionId};

/// A shard's index, `0..shard_count()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl core::fmt::Display for ShardId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "shard{}", self.0)
    }
}

/// Control → shard.
#[derive(Debug)]
pub enum ToShard {
    /// Hand a session to this shard. A grant for a session id the shard
    /// already holds replaces it; a grant whose peer address another local
    /// session uses replaces that session.
    Grant(Box<SessionGrant>),
    /// Forget the session (its keys are wiped on drop).
    Revoke(SessionId),
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
    /// A datagram from a peer with no session on `shard`, or the rest of a
    /// datagram from a known peer starting at an epoch-0 record (a client
    /// retransmitting its final flight). Grant the resulting session to
    /// `shard`: that is where the peer's datagrams arrive.
    Handshake { shard: ShardId, peer: SocketAddr, datagram: Vec<u8> },
    /// A TUN packet for a pool address with no DTLS session: send it over CSTP.
    CstpPacket { session: SessionId, packet: Vec<u8> },
    /// `shard` installed the grant of `session` for `peer`: records from
    /// `peer` are opened there from now on. Control holds back the last
    /// handshake flight until then, because the device starts sending data
    /// the moment it reads it. One per accepted grant; a refused grant
    /// (counted as `grants_rejected`) sends none.
    Granted { shard: ShardId, session: SessionId, peer: SocketAddr },
    /// The device sent DISCONNECT over DTLS.
    Disconnect { session: SessionId },
    /// At most once per second per session that moved packets since the
    /// last report. Counts are totals since the grant.
    Activity { session: SessionId, last_rx: Instant, rx_packets: u64, tx_packets: u64 },
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
