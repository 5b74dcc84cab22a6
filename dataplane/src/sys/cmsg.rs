//! Control messages the data plane reads and writes: the `UDP_GRO` segment
//! size of a coalesced receive and the `UDP_SEGMENT` size of a GSO send,
//! shared by the io_uring and readiness engines.

/// A `cmsghdr` copied out of control bytes, if they hold a whole one.
fn cmsg_header(bytes: &[u8]) -> Option<libc::cmsghdr> {
    let b = bytes.get(..core::mem::size_of::<libc::cmsghdr>())?;
    // SAFETY: `b` is exactly size_of::<cmsghdr>() initialised bytes, and
    // cmsghdr is integers only (every bit pattern is a value);
    // read_unaligned needs no alignment.
    Some(unsafe { b.as_ptr().cast::<libc::cmsghdr>().read_unaligned() })
}

/// `CMSG_ALIGN`: control messages start at multiples of `size_t`.
fn cmsg_align(n: usize) -> usize {
    n.div_ceil(core::mem::size_of::<usize>()) * core::mem::size_of::<usize>()
}

/// The segment size of a `SOL_UDP`/`UDP_GRO` cmsg in `control`, if any.
pub(crate) fn gro_segment(control: &[u8]) -> Option<u16> {
    let header = core::mem::size_of::<libc::cmsghdr>();
    let mut at = 0usize;
    while let Some(h) = control.get(at..).and_then(cmsg_header) {
        let len = h.cmsg_len;
        if len < header {
            return None;
        }
        if h.cmsg_level == libc::SOL_UDP && h.cmsg_type == libc::UDP_GRO {
            let data = control.get(at + cmsg_align(header)..at + len)?;
            let v = libc::c_int::from_ne_bytes(data.get(..4)?.try_into().ok()?);
            return u16::try_from(v).ok().filter(|&v| v > 0);
        }
        at += cmsg_align(len);
    }
    None
}

/// One `SOL_UDP`/`UDP_SEGMENT` cmsg: the header, then the u16 at
/// `CMSG_DATA`, which is right behind a Linux `cmsghdr` (its size is a
/// multiple of `size_t`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct SegmentCmsg {
    header: libc::cmsghdr,
    size: u16,
}

impl SegmentCmsg {
    pub(crate) fn new(size: u16) -> Self {
        Self {
            header: libc::cmsghdr {
                cmsg_len: SEGMENT_LEN as _,
                cmsg_level: libc::SOL_UDP,
                cmsg_type: libc::UDP_SEGMENT,
            },
            size,
        }
    }
}

// SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic on their argument; no memory is touched.
pub(crate) const SEGMENT_SPACE: usize = unsafe { libc::CMSG_SPACE(2) } as usize;
// SAFETY: as above.
const SEGMENT_LEN: usize = unsafe { libc::CMSG_LEN(2) } as usize;
const _: () = assert!(core::mem::size_of::<SegmentCmsg>() >= SEGMENT_SPACE);

/// Control bytes a receive makes room for: one `UDP_GRO` cmsg (an int),
/// `CMSG_SPACE(4)`.
// SAFETY: CMSG_SPACE is arithmetic on its argument; no memory is touched.
pub(crate) const GRO_SPACE: usize = unsafe { libc::CMSG_SPACE(4) } as usize;

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    fn cmsg_bytes(level: libc::c_int, kind: libc::c_int, data: &[u8]) -> Vec<u8> {
        let header = core::mem::size_of::<libc::cmsghdr>();
        let mut v = vec![0u8; cmsg_align(header + data.len())];
        v[..8].copy_from_slice(&(header + data.len()).to_ne_bytes());
        v[8..12].copy_from_slice(&level.to_ne_bytes());
        v[12..16].copy_from_slice(&kind.to_ne_bytes());
        v[header..header + data.len()].copy_from_slice(data);
        v
    }

    #[test]
    fn gro_segment_is_found_behind_another_cmsg() {
        let mut control = cmsg_bytes(libc::SOL_IP, libc::IP_TOS, &[0x10]);
        control.extend(cmsg_bytes(libc::SOL_UDP, libc::UDP_GRO, &1400i32.to_ne_bytes()));
        assert_eq!(gro_segment(&control), Some(1400));
        assert_eq!(gro_segment(&control[..20]), None);
        assert_eq!(gro_segment(&[]), None);
        // A zero length must not loop forever.
        assert_eq!(gro_segment(&[0u8; 32]), None);
    }

    #[test]
    fn segment_cmsg_matches_the_kernel_layout() {
        let c = &SegmentCmsg::new(1400);
        let (start, data) = (core::ptr::from_ref(c) as usize, core::ptr::from_ref(&c.size) as usize);
        // CMSG_DATA: the size sits right behind the header.
        assert_eq!(data - start, SEGMENT_LEN - 2);
        assert_eq!(c.header.cmsg_len, SEGMENT_LEN);
    }
}
