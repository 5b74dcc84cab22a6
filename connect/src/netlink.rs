//! Routes, through rtnetlink on a blocking netlink socket: the path the
//! kernel takes now to an address (`ip route get`), and routes added and
//! deleted in the main table. Requests are few (a handful when the tunnel
//! comes up, as many when it goes), so each waits for its answer.

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use proto::ip::Ipv4Net;

/// Where the kernel sends packets for a destination: out of interface
/// `oif`, to `gateway` when it is not on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub gateway: Option<Ipv4Addr>,
    pub oif: u32,
}

/// [`Netlink::path_to`]'s answer: the path and the source address the
/// kernel would give a new connection on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    pub path: Path,
    pub source: Option<Ipv4Addr>,
}

/// A route this client added, to delete as it was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Net,
    pub path: Path,
    /// The routing table; `None`: main.
    pub table: Option<u32>,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.path.gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " dev #{}", self.path.oif)?;
        if let Some(t) = self.table {
            write!(f, " table {t}")?;
        }
        Ok(())
    }
}

/// A NETLINK_ROUTE socket.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self { socket, seq: 0 })
    }

    /// The kernel's path to `destination` now (`ip route get`).
    pub fn path_to(&mut self, destination: Ipv4Addr) -> io::Result<Path> {
        self.lookup(destination).map(|l| l.path)
    }

    /// The path to `destination` and the source address it would take.
    pub fn lookup(&mut self, destination: Ipv4Addr) -> io::Result<Lookup> {
        let mut msg = route_message(Ipv4Net { addr: destination, prefix: 32 });
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        let answer = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST)?;
        let Some(RouteNetlinkMessage::NewRoute(r)) = answer else {
            return Err(io::Error::other(format!("no route to {destination}")));
        };
        let mut path = Path { gateway: None, oif: 0 };
        let mut source = None;
        for a in r.attributes {
            match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => path.gateway = Some(g),
                RouteAttribute::Oif(i) => path.oif = i,
                RouteAttribute::PrefSource(RouteAddress::Inet(s)) => source = Some(s),
                _ => {}
            }
        }
        if path.oif == 0 {
            return Err(io::Error::other(format!("the route to {destination} names no interface")));
        }
        Ok(Lookup { path, source })
    }

    /// Adds `route` to the main table; an existing equal route is an error
    /// (EEXIST), so what this client deletes later is what it added.
    pub fn add(&mut self, route: Route) -> io::Result<()> {
        let msg = route_with_path(route);
        self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    pub fn delete(&mut self, route: Route) -> io::Result<()> {
        let msg = route_with_path(route);
        self.request(RouteNetlinkMessage::DelRoute(msg), NLM_F_REQUEST | NLM_F_ACK).map(drop)
    }

    /// `ip rule add fwmark MARK lookup TABLE priority PRIORITY` (IPv4).
    pub fn add_rule(&mut self, mark: u32, table: u32, priority: u32) -> io::Result<()> {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        self.request(RouteNetlinkMessage::NewRule(rule_message(mark, table, priority)), flags).map(drop)
    }

    pub fn delete_rule(&mut self, mark: u32, table: u32, priority: u32) -> io::Result<()> {
        self.request(RouteNetlinkMessage::DelRule(rule_message(mark, table, priority)), NLM_F_REQUEST | NLM_F_ACK)
            .map(drop)
    }

    /// Sends one request and reads until its answer: the message asked
    /// for, or the acknowledgement (None), or the kernel's error.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<Option<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        self.socket.send(&out, 0)?;
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut at = 0;
            while let Some(bytes) = buf.get(at..n).filter(|b| !b.is_empty()) {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}")))?;
                let len = m.header.length as usize;
                if len == 0 {
                    break;
                }
                at += len.next_multiple_of(4);
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(None),
                    NetlinkPayload::InnerMessage(inner) => return Ok(Some(inner)),
                    _ => {}
                }
            }
        }
    }
}

/// A netlink socket that hears of every IPv4 address, route and link
/// change (the rtnetlink multicast groups), non-blocking: the client wakes
/// on it and checks whether its way to the gateway changed.
#[derive(Debug)]
pub struct Monitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl Monitor {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for group in [libc::RTNLGRP_LINK, libc::RTNLGRP_IPV4_IFADDR, libc::RTNLGRP_IPV4_ROUTE] {
            socket.add_membership(group)?;
        }
        socket.set_non_blocking(true)?;
        Ok(Self { socket, buf: vec![0; 16 * 1024] })
    }

    /// Reads every queued notification; whether there were any. What they
    /// say is not needed: the client asks the kernel afresh.
    pub fn drain(&mut self) -> bool {
        let mut any = false;
        loop {
            match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(_) => any = true,
                // Notifications were lost (the queue overran): a change too.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                // WouldBlock: nothing more now.
                Err(_) => return any,
            }
        }
    }
}

impl std::os::fd::AsRawFd for Monitor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// An IPv4 unicast route message for `destination` in the main table.
fn route_message(destination: Ipv4Net) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = destination.prefix;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(destination.network())));
    msg
}

fn rule_message(mark: u32, table: u32, priority: u32) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.action = RuleAction::ToTable;
    msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
    msg.attributes = vec![RuleAttribute::FwMark(mark), RuleAttribute::Table(table), RuleAttribute::Priority(priority)];
    msg
}

fn route_with_path(route: Route) -> RouteMessage {
    let mut msg = route_message(route.destination);
    if let Some(t) = route.table {
        // Tables above 255 only fit the attribute.
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.attributes.push(RouteAttribute::Table(t));
    }
    match route.path.gateway {
        Some(g) => msg.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(g))),
        // Straight out of the interface: a link-scope route.
        None => msg.header.scope = RouteScope::Link,
    }
    msg.attributes.push(RouteAttribute::Oif(route.path.oif));
    msg
}
