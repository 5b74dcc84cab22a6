//! The MTU numbers of a CONNECT response (protocol reference §7.2, §7.4).
//!
//! The client takes the largest `X-CSTP-MTU` as its tunnel MTU and, after a
//! DTLS-PSK handshake, lowers it to what fits one DTLS record on the path
//! `X-CSTP-Base-MTU`; then it probes that size with DPD and falls to 576 if
//! no probe is echoed (§7.3). Advertising exactly what a DTLS record on the
//! link can carry — ocserv's arithmetic — keeps the first probe successful
//! and the inner packets unfragmented.

/// IPv4 header (20) plus UDP header (8) around each DTLS record.
pub const IPV4_UDP_OVERHEAD: u16 = 20 + 8;

/// DTLS 1.2 record overhead with AES-GCM: 13-byte header, 8-byte explicit
/// nonce, 16-byte tag (§7.2: 1472 − 37 − 1 = 1434).
pub const DTLS_AES_GCM_OVERHEAD: u16 = 13 + 8 + 16;

/// DTLS 1.2 record overhead with ChaCha20-Poly1305: 13-byte header and
/// 16-byte tag; the nonce is implicit (RFC 7905).
pub const DTLS_CHACHA_OVERHEAD: u16 = 13 + 16;

/// The packet-type byte in front of every DTLS payload (§5.1).
pub const DTLS_TYPE_BYTE: u16 = 1;

/// The client never reports a base MTU below this (§7.1); smaller values
/// are treated as this.
pub const MIN_BASE_MTU: u16 = 1280;

/// The smallest IPv4 datagram every host must accept (RFC 791), and the
/// client's own floor after failed probing (§7.3). The tunnel MTU never
/// goes below it.
pub const MIN_TUNNEL_MTU: u16 = 576;

/// `(X-CSTP-Base-MTU, X-CSTP-MTU)` for a tunnel with DTLS over IPv4 (§7.4).
///
/// `base = min(link_mtu, client's Base-MTU)`, the client's value raised to
/// [`MIN_BASE_MTU`] (it floors its own estimate there); `mtu = base − 28 −
/// dtls_overhead − 1`, floored at [`MIN_TUNNEL_MTU`]. A 1500-byte link
/// with AES-GCM gives `(1500, 1434)`, as ocserv and the client compute.
pub fn tunnel_mtu(link_mtu: u16, client_base_mtu: Option<u16>, dtls_overhead: u16) -> (u16, u16) {
    let base = base_mtu(link_mtu, client_base_mtu);
    let mtu = base.saturating_sub(IPV4_UDP_OVERHEAD).saturating_sub(dtls_overhead).saturating_sub(DTLS_TYPE_BYTE);
    (base, mtu.max(MIN_TUNNEL_MTU))
}

/// `(X-CSTP-Base-MTU, X-CSTP-MTU)` for a CSTP-only tunnel: ocserv subtracts
/// only IPv4 + UDP, 1500 → 1472 (§7.4, Appendix A.3).
pub fn cstp_only(link_mtu: u16, client_base_mtu: Option<u16>) -> (u16, u16) {
    let base = base_mtu(link_mtu, client_base_mtu);
    (base, base.saturating_sub(IPV4_UDP_OVERHEAD).max(MIN_TUNNEL_MTU))
}

fn base_mtu(link_mtu: u16, client_base_mtu: Option<u16>) -> u16 {
    client_base_mtu.map_or(link_mtu, |client| link_mtu.min(client.max(MIN_BASE_MTU)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_values() {
        assert_eq!(tunnel_mtu(1500, Some(1500), DTLS_AES_GCM_OVERHEAD), (1500, 1434));
        assert_eq!(tunnel_mtu(1500, None, DTLS_AES_GCM_OVERHEAD), (1500, 1434));
        assert_eq!(cstp_only(1500, Some(1500)), (1500, 1472));
        assert_eq!(tunnel_mtu(1500, None, DTLS_CHACHA_OVERHEAD), (1500, 1442));
    }

    #[test]
    fn smaller_side_wins() {
        assert_eq!(tunnel_mtu(1500, Some(1400), DTLS_AES_GCM_OVERHEAD), (1400, 1334));
        assert_eq!(tunnel_mtu(1400, Some(9000), DTLS_AES_GCM_OVERHEAD), (1400, 1334));
        assert_eq!(cstp_only(9000, Some(1406)), (1406, 1378));
    }

    #[test]
    fn floors() {
        // A client claim below its own floor is raised to it.
        assert_eq!(tunnel_mtu(1500, Some(100), DTLS_AES_GCM_OVERHEAD), (1280, 1214));
        // Our own small link is respected, the tunnel MTU is not.
        assert_eq!(tunnel_mtu(600, Some(1500), DTLS_AES_GCM_OVERHEAD), (600, MIN_TUNNEL_MTU));
        assert_eq!(tunnel_mtu(0, None, u16::MAX), (0, MIN_TUNNEL_MTU));
        assert_eq!(cstp_only(0, Some(0)), (0, MIN_TUNNEL_MTU));
    }
}
