//! The session grant: everything a data-plane shard needs to move one
//! session's packets, as one owned value that crosses the control → shard
//! queue. After the hand-off exactly one shard owns it. Also the rule that
//! admits a device's packet into the network ([`Policy::admit`]), written
//! once for the shards (DTLS) and control (CSTP).

use std::net::{Ipv4Addr, SocketAddr};

use dtls::SessionKeys;

use crate::ip::{IpError, Ipv4Net, Ipv4Packet};

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
///
/// Two layers: the tunnel's own network — the gateway's addresses and the
/// other sessions' — is denied implicitly, whatever `allowed` says (a
/// full-tunnel `0.0.0.0/0` group included), unless `client_to_client`;
/// everything else must be in `allowed`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Destinations the device may reach (the group's allowed networks).
    /// Packets to anything else are dropped and counted.
    pub allowed: Vec<Ipv4Net>,
    /// The gateway's own addresses (its TUN address, the addresses it
    /// listens on), control's list: implicitly denied.
    pub gateway: Vec<Ipv4Addr>,
    /// The address pool: every address in it but the session's own is
    /// another session's (or will be), and implicitly denied.
    pub pool: Option<Ipv4Net>,
    /// Lifts the implicit deny: devices of this group may reach the
    /// gateway's addresses and other sessions (`[[group]] client_to_client`).
    /// `allowed` still applies.
    pub client_to_client: bool,
}

impl Policy {
    /// A policy of `allowed` alone, with no implicit deny (tests, benches,
    /// the load harness: control always fills in the tunnel's network).
    pub fn allowing(allowed: Vec<Ipv4Net>) -> Self {
        Self { allowed, ..Self::default() }
    }

    pub fn allows(&self, dst: Ipv4Addr) -> bool {
        self.allowed.iter().any(|n| n.contains(dst))
    }

    /// The implicit deny: `dst`, from the session at `address`, is the
    /// gateway itself or another session. The gateway's TUN address lies
    /// in the pool, so the gateway is checked first and named as such.
    pub fn implicitly_denies(&self, address: Ipv4Addr, dst: Ipv4Addr) -> Option<Refusal> {
        if self.client_to_client {
            return None;
        }
        if self.gateway.contains(&dst) {
            return Some(Refusal::ToGateway);
        }
        match self.pool {
            Some(pool) if pool.contains(dst) && dst != address => Some(Refusal::ClientToClient),
            _ => None,
        }
    }

    /// The admission rule every device packet passes before it reaches the
    /// organisation's network, whether it came over DTLS (a shard) or CSTP
    /// (control): a well-formed IPv4 packet whose source is `address`, the
    /// tunnel address assigned to the session, whose destination is not
    /// implicitly denied (the gateway, another session) and is allowed by
    /// this policy. Checks run in that order, so a refusal names the first
    /// rule broken. Allocates nothing and never panics.
    pub fn admit(&self, address: Ipv4Addr, packet: &[u8]) -> Result<Admitted, Refusal> {
        let ip = Ipv4Packet::new_checked(packet).map_err(|e| match e {
            IpError::NotIpv4 => Refusal::NotIpv4,
            IpError::Truncated | IpError::BadHeaderLength => Refusal::Malformed,
        })?;
        if ip.src() != address {
            return Err(Refusal::SpoofedSource);
        }
        let dst = ip.dst();
        if let Some(refusal) = self.implicitly_denies(address, dst) {
            return Err(refusal);
        }
        if !self.allows(dst) {
            return Err(Refusal::Denied);
        }
        Ok(Admitted { total_len: ip.total_len() })
    }
}

/// A device packet [`Policy::admit`] let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The packet's length by its IPv4 header, at most the buffer's: a
    /// link layer may pad the buffer (a short frame padded to a minimum
    /// size), and those trailing bytes must not reach the network.
    pub total_len: usize,
}

impl Admitted {
    /// The packet without the padding behind its total length.
    pub fn trim(self, packet: &[u8]) -> &[u8] {
        packet.get(..self.total_len).unwrap_or(packet)
    }
}

/// Why [`Policy::admit`] refused a packet. Each is a counted drop, never
/// an error of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not IPv4 (IPv6 is not carried yet; clients still send router
    /// solicitations).
    NotIpv4,
    /// An IPv4 header that is truncated, or whose header or total length
    /// is impossible.
    Malformed,
    /// The source is not the session's assigned address.
    SpoofedSource,
    /// The destination is one of the gateway's own addresses (implicit
    /// deny; the group lacks `client_to_client`).
    ToGateway,
    /// The destination is another session's pool address (implicit deny;
    /// the group lacks `client_to_client`).
    ClientToClient,
    /// The session's policy does not allow the destination.
    Denied,
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

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

    fn policy() -> Policy {
        Policy::allowing(vec![
            Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), 16).expect("prefix"),
            "192.0.2.7".parse().expect("net"),
        ])
    }

    const GATEWAY_TUN: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
    const GATEWAY_LISTEN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
    const OTHER_SESSION: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 77);

    /// A full-tunnel group (`0.0.0.0/0`) in pool 10.9.0.0/24, as control builds it.
    fn full_tunnel(client_to_client: bool) -> Policy {
        Policy {
            allowed: vec!["0.0.0.0/0".parse().expect("net")],
            gateway: vec![GATEWAY_TUN, GATEWAY_LISTEN],
            pool: Some("10.9.0.0/24".parse().expect("net")),
            client_to_client,
        }
    }

    /// A `total_len`-byte IPv4 packet (header only, no options) in a buffer of `buf_len` bytes.
    fn packet(src: Ipv4Addr, dst: Ipv4Addr, total_len: u16, buf_len: usize) -> Vec<u8> {
        let mut p = vec![0u8; buf_len];
        let [l0, l1] = total_len.to_be_bytes();
        let [s0, s1, s2, s3] = src.octets();
        let [d0, d1, d2, d3] = dst.octets();
        let header = [0x45, 0, l0, l1, 0, 0, 0x40, 0, 64, 17, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3];
        for (b, h) in p.iter_mut().zip(header) {
            *b = h;
        }
        p
    }

    #[test]
    fn packets_from_the_session_to_allowed_destinations_are_admitted() {
        for dst in [Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 255, 255), Ipv4Addr::new(192, 0, 2, 7)] {
            let p = packet(ADDRESS, dst, 48, 48);
            assert_eq!(policy().admit(ADDRESS, &p), Ok(Admitted { total_len: 48 }), "{dst}");
        }
    }

    #[test]
    fn padding_behind_the_total_length_is_trimmed() {
        let p = packet(ADDRESS, Ipv4Addr::new(10, 1, 2, 3), 28, 64);
        let admitted = policy().admit(ADDRESS, &p).expect("admitted");
        assert_eq!(admitted.total_len, 28);
        assert_eq!(admitted.trim(&p), &p[..28]);
    }

    #[test]
    fn each_broken_rule_is_named() {
        let allowed = Ipv4Addr::new(10, 1, 2, 3);
        let mut ipv6 = packet(ADDRESS, allowed, 40, 40);
        ipv6[0] = 0x60;
        assert_eq!(policy().admit(ADDRESS, &ipv6), Err(Refusal::NotIpv4));
        assert_eq!(policy().admit(ADDRESS, &[]), Err(Refusal::Malformed));
        assert_eq!(policy().admit(ADDRESS, &packet(ADDRESS, allowed, 60, 40)), Err(Refusal::Malformed), "cut short");
        assert_eq!(policy().admit(ADDRESS, &packet(ADDRESS, allowed, 12, 40)), Err(Refusal::Malformed), "total < IHL");
        let mut short_ihl = packet(ADDRESS, allowed, 40, 40);
        short_ihl[0] = 0x44;
        assert_eq!(policy().admit(ADDRESS, &short_ihl), Err(Refusal::Malformed));
        let spoofed = packet(Ipv4Addr::new(10, 9, 0, 3), allowed, 40, 40);
        assert_eq!(policy().admit(ADDRESS, &spoofed), Err(Refusal::SpoofedSource));
        let elsewhere = packet(ADDRESS, Ipv4Addr::new(10, 2, 0, 1), 40, 40);
        assert_eq!(policy().admit(ADDRESS, &elsewhere), Err(Refusal::Denied));
        assert_eq!(Policy::default().admit(ADDRESS, &packet(ADDRESS, allowed, 40, 40)), Err(Refusal::Denied));
    }

    #[test]
    fn a_spoofed_source_is_named_before_a_denied_destination() {
        let p = packet(Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(8, 8, 8, 8), 40, 40);
        assert_eq!(policy().admit(ADDRESS, &p), Err(Refusal::SpoofedSource));
    }

    #[test]
    fn the_gateways_tun_address_is_denied_even_to_a_full_tunnel_group() {
        let p = packet(ADDRESS, GATEWAY_TUN, 40, 40);
        assert_eq!(full_tunnel(false).admit(ADDRESS, &p), Err(Refusal::ToGateway));
    }

    #[test]
    fn the_address_the_gateway_listens_on_is_denied() {
        let p = packet(ADDRESS, GATEWAY_LISTEN, 40, 40);
        assert_eq!(full_tunnel(false).admit(ADDRESS, &p), Err(Refusal::ToGateway));
    }

    #[test]
    fn other_sessions_are_denied_the_whole_pool_through() {
        for dst in [OTHER_SESSION, Ipv4Addr::new(10, 9, 0, 0), Ipv4Addr::new(10, 9, 0, 255)] {
            let p = packet(ADDRESS, dst, 40, 40);
            assert_eq!(full_tunnel(false).admit(ADDRESS, &p), Err(Refusal::ClientToClient), "{dst}");
        }
    }

    #[test]
    fn a_session_may_reach_its_own_address_and_beyond_the_pool() {
        for dst in [ADDRESS, Ipv4Addr::new(10, 9, 1, 1), Ipv4Addr::new(8, 8, 8, 8)] {
            let p = packet(ADDRESS, dst, 40, 40);
            assert_eq!(full_tunnel(false).admit(ADDRESS, &p), Ok(Admitted { total_len: 40 }), "{dst}");
        }
    }

    #[test]
    fn client_to_client_lifts_the_implicit_deny() {
        for dst in [GATEWAY_TUN, GATEWAY_LISTEN, OTHER_SESSION] {
            let p = packet(ADDRESS, dst, 40, 40);
            assert_eq!(full_tunnel(true).admit(ADDRESS, &p), Ok(Admitted { total_len: 40 }), "{dst}");
        }
    }

    #[test]
    fn client_to_client_does_not_widen_allowed() {
        let narrow = Policy { allowed: vec!["10.1.0.0/16".parse().expect("net")], ..full_tunnel(true) };
        let p = packet(ADDRESS, OTHER_SESSION, 40, 40);
        assert_eq!(narrow.admit(ADDRESS, &p), Err(Refusal::Denied));
    }

    #[test]
    fn a_spoofed_source_is_named_before_the_implicit_deny() {
        let p = packet(OTHER_SESSION, GATEWAY_TUN, 40, 40);
        assert_eq!(full_tunnel(false).admit(ADDRESS, &p), Err(Refusal::SpoofedSource));
    }
}
