//! The `virtio_net_hdr` that prefixes every packet on a TUN opened with
//! `IFF_VNET_HDR` (Linux `include/uapi/linux/virtio_net.h`; virtio 1.2
//! §5.1.6).
//!
//! ```text
//! struct virtio_net_hdr {
//!     u8  flags;        // NEEDS_CSUM, DATA_VALID
//!     u8  gso_type;     // NONE, TCPV4, UDP, TCPV6, UDP_L4, | ECN
//!     u16 hdr_len;      // L2..L4 header bytes: a hint
//!     u16 gso_size;     // payload bytes per segment
//!     u16 csum_start;   // where the partial checksum's sum begins
//!     u16 csum_offset;  // where, from csum_start, the result goes
//! };
//! ```
//!
//! The 16-bit fields are **little-endian**: a TUN's vnet header is in the
//! host's byte order unless `TUNSETVNETBE` says otherwise, and corridor only
//! runs on little-endian hosts (x86-64, aarch64) and never sets it. Reading
//! them as little-endian explicitly, rather than as native, keeps that
//! assumption visible and the tests host-independent.

use core::fmt;

/// Bytes of `virtio_net_hdr` before every TUN packet (without the
/// `num_buffers` field that only mergeable-buffer virtio devices have, which
/// TUN uses only if `TUNSETVNETHDRSZ` asks for 12).
pub const VNET_HDR_LEN: usize = 10;

/// `virtio_net_hdr.flags`: a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetFlags(pub u8);

impl VnetFlags {
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum at
    /// `csum_start + csum_offset` holds only the folded pseudo-header sum;
    /// the sum over `csum_start..` must still be added, inverted and stored.
    pub const NEEDS_CSUM: Self = Self(1);
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
    pub const DATA_VALID: Self = Self(2);

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl fmt::Debug for VnetFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (bit, name) in [(Self::NEEDS_CSUM, "NEEDS_CSUM"), (Self::DATA_VALID, "DATA_VALID")] {
            if rest & bit.0 != 0 {
                f.write_str(if first { "" } else { "|" })?;
                f.write_str(name)?;
                rest &= !bit.0;
                first = false;
            }
        }
        match (first, rest) {
            (true, 0) => f.write_str("0"),
            (_, 0) => Ok(()),
            (true, r) => write!(f, "{r:#04x}"),
            (false, r) => write!(f, "|{r:#04x}"),
        }
    }
}

/// `virtio_net_hdr.gso_type`: what kind of super-packet follows, with the
/// [`GsoType::ECN`] bit on top. Unknown values round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct GsoType(pub u8);

impl GsoType {
    /// A plain packet, not to be segmented.
    pub const NONE: Self = Self(0);
    /// A TCP segment over IPv4 carrying many MSS of payload (TSO4).
    pub const TCPV4: Self = Self(1);
    /// Legacy UDP fragmentation offload (UFO): one datagram, IP fragments.
    pub const UDP: Self = Self(3);
    /// A TCP segment over IPv6 (TSO6).
    pub const TCPV6: Self = Self(4);
    /// A UDP datagram to be cut into `gso_size`-payload datagrams (USO).
    pub const UDP_L4: Self = Self(5);
    /// `VIRTIO_NET_HDR_GSO_ECN`: the sender set CWR on the first segment,
    /// which the segments keep (only on the first).
    pub const ECN: u8 = 0x80;

    /// The type with the ECN bit masked off: what to match on.
    pub fn kind(self) -> Self {
        Self(self.0 & !Self::ECN)
    }
}

impl fmt::Debug for GsoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Self::NONE => f.write_str("NONE")?,
            Self::TCPV4 => f.write_str("TCPV4")?,
            Self::UDP => f.write_str("UDP")?,
            Self::TCPV6 => f.write_str("TCPV6")?,
            Self::UDP_L4 => f.write_str("UDP_L4")?,
            Self(other) => write!(f, "GsoType({other})")?,
        }
        if self.0 & Self::ECN != 0 {
            f.write_str("|ECN")?;
        }
        Ok(())
    }
}

/// A decoded `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: VnetFlags,
    pub gso_type: GsoType,
    /// Bytes of headers before the payload; a hint only (the kernel fills it
    /// in on reads, but it is not trusted here: lengths come from the packet).
    pub hdr_len: u16,
    /// Payload bytes per segment for GSO types; zero otherwise.
    pub gso_size: u16,
    /// Offset into the packet (after this header) where the checksum sum
    /// starts, when [`VnetFlags::NEEDS_CSUM`] is set.
    pub csum_start: u16,
    /// Offset from `csum_start` of the 16-bit checksum field.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// A plain packet with a complete checksum: all fields zero.
    pub const NONE: Self =
        Self { flags: VnetFlags(0), gso_type: GsoType::NONE, hdr_len: 0, gso_size: 0, csum_start: 0, csum_offset: 0 };

    /// Splits a TUN read into its vnet header and the packet after it;
    /// `None` if shorter than [`VNET_HDR_LEN`].
    pub fn parse(bytes: &[u8]) -> Option<(Self, &[u8])> {
        let (h, rest) = bytes.split_first_chunk::<VNET_HDR_LEN>()?;
        let [flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1] = *h;
        let hdr = Self {
            flags: VnetFlags(flags),
            gso_type: GsoType(gso_type),
            hdr_len: u16::from_le_bytes([h0, h1]),
            gso_size: u16::from_le_bytes([g0, g1]),
            csum_start: u16::from_le_bytes([s0, s1]),
            csum_offset: u16::from_le_bytes([o0, o1]),
        };
        Some((hdr, rest))
    }

    /// The header's wire form, ready to precede a packet in a TUN write.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let [h0, h1] = self.hdr_len.to_le_bytes();
        let [g0, g1] = self.gso_size.to_le_bytes();
        let [s0, s1] = self.csum_start.to_le_bytes();
        let [o0, o1] = self.csum_offset.to_le_bytes();
        [self.flags.0, self.gso_type.0, h0, h1, g0, g1, s0, s1, o0, o1]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn fields_are_little_endian() {
        let wire = [1, 0x81, 0x42, 0x00, 0xa8, 0x05, 0x14, 0x00, 0x10, 0x00, 0xde, 0xad];
        let (h, rest) = VnetHdr::parse(&wire).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                flags: VnetFlags::NEEDS_CSUM,
                gso_type: GsoType(0x81),
                hdr_len: 0x42,
                gso_size: 1448,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        assert_eq!(h.gso_type.kind(), GsoType::TCPV4);
        assert_eq!(rest, &[0xde, 0xad]);
        assert_eq!(h.to_bytes(), wire[..VNET_HDR_LEN]);
    }

    #[test]
    fn short_input_is_none_and_none_is_zero() {
        for n in 0..VNET_HDR_LEN {
            assert_eq!(VnetHdr::parse(&[0u8; VNET_HDR_LEN][..n]), None);
        }
        assert_eq!(VnetHdr::NONE.to_bytes(), [0; VNET_HDR_LEN]);
        assert_eq!(VnetHdr::parse(&[0; VNET_HDR_LEN]), Some((VnetHdr::NONE, &[][..])));
    }

    #[test]
    fn debug_names_code_points() {
        assert_eq!(format!("{:?}", GsoType(0x81)), "TCPV4|ECN");
        assert_eq!(format!("{:?}", GsoType(9)), "GsoType(9)");
        assert_eq!(format!("{:?}", VnetFlags(3)), "NEEDS_CSUM|DATA_VALID");
        assert_eq!(format!("{:?}", VnetFlags(0x21)), "NEEDS_CSUM|0x20");
        assert_eq!(format!("{:?}", VnetFlags(0)), "0");
        assert!(VnetFlags(3).contains(VnetFlags::DATA_VALID));
        assert!(!VnetFlags(2).contains(VnetFlags::NEEDS_CSUM));
    }
}
