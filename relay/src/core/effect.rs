//! What the core and its driver say to each other: the names the core
//! gives the driver's sockets, the effects it asks the driver to carry
//! out, and its answers about datagrams the driver holds.

use std::net::{IpAddr, SocketAddr};

/// A TCP connection the driver holds, named by the driver when it accepts
/// it; the core never reuses one (the driver must not either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A device's DTLS flow, named by the core: the id its Allocate and its
/// gateway's Bind carry, and the name of the UDP port the driver opens for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Which listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Devices' TLS (relay.listen).
    Devices,
    /// Gateways' links and streams (relay.gateway_listen).
    Gateways,
}

/// How a connection ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The peer closed its side (a read returned 0).
    Eof,
    ReadFailed,
    /// A write failed, or the peer reads so little that its outbox
    /// outgrew [`service::link::MAX_OUTBOX`].
    WriteFailed,
    /// The link's TLS failed: a handshake error, or a record that did not
    /// authenticate (altered on the way).
    TlsFailed,
}

impl Ended {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Ended::Eof => "closed by the gateway",
            Ended::ReadFailed => "read failed",
            Ended::WriteFailed => "write failed",
            Ended::TlsFailed => "TLS failed",
        }
    }
}

/// Something the driver must do, in the order the core gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Queue `bytes` (link frames) on `conn` and write what the socket
    /// takes (sealed first, on a connection that runs TLS).
    Write { conn: ConnId, bytes: Vec<u8> },
    /// `conn` is a link starting TLS: serve the handshake with the link
    /// certificate, `initial` (what was read so far) first. From now on
    /// [`RelayCore::handle_read`](super::RelayCore::handle_read) gets its
    /// plaintext, and a failed TLS ends it with [`Ended::TlsFailed`].
    StartTls { conn: ConnId, initial: Vec<u8> },
    /// Close `conn` once what was queued on it was tried; the core has
    /// forgotten it.
    Close { conn: ConnId, reason: &'static str },
    /// Join a device's connection to the stream its gateway attached and
    /// move bytes both ways, `initial` (the device's ClientHello) to the
    /// gateway first; answer with [`RelayCore::handle_splice_end`](super::RelayCore::handle_splice_end).
    Splice { device: ConnId, gateway: ConnId, initial: Vec<u8> },
    /// Open a UDP port on `ip` for `flow`; answer with
    /// [`RelayCore::handle_flow_port`](super::RelayCore::handle_flow_port).
    OpenFlowPort { flow: FlowId, ip: IpAddr },
    /// Send `bytes` from `flow`'s port to `to`, as datagrams of `segment`
    /// bytes when given (a GRO buffer); answer with
    /// [`RelayCore::record_forwarded`](super::RelayCore::record_forwarded) or
    /// [`RelayCore::record_send_failed`](super::RelayCore::record_send_failed).
    SendDatagram { flow: FlowId, to: SocketAddr, bytes: Vec<u8>, segment: Option<usize> },
    /// Close `flow`'s port; the core has forgotten the flow.
    CloseFlowPort { flow: FlowId },
}

/// What to do with datagrams a device sent to the devices' socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDatagrams {
    /// Send them, as received, from `flow`'s port to its gateway at `to`.
    Forward { flow: FlowId, to: SocketAddr },
    /// The core took them: held for a flow not bound yet, the start of a
    /// new flow, or dropped and counted.
    Taken,
}

/// What to do with datagrams that arrived on a flow's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowDatagrams {
    /// Send them, as received, from the devices' socket to the device at `to`.
    Forward { to: SocketAddr },
    /// The core took them: the gateway's Bind, or a stranger's, counted.
    Taken,
}

/// Which way forwarded datagrams went, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    Gateway,
    Device,
}

/// How many datagrams a buffer of `len` bytes holds: one, or `len /
/// segment` rounded up when the kernel coalesced (GRO) or will split (GSO).
pub fn datagrams_in(len: usize, segment: Option<usize>) -> u64 {
    match segment {
        Some(s) if s > 0 => len.div_ceil(s) as u64,
        _ => 1,
    }
}
