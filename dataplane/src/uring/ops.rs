//! The typed operation table: every SQE's `user_data` is an index here, and
//! the slot owns whatever the kernel reads or writes for that operation
//! (the transmit buffer, the `msghdr`, its iovec and the destination
//! address) from submission until the completion is reaped. The table is
//! allocated once and never grows, so those addresses stay put.

use crate::sys::RawSockAddr;

/// Memory an outgoing operation reads from.
#[derive(Debug)]
pub(crate) enum TxBuf {
    /// A UDP receive slot (e.g. a decrypted packet written to the TUN, or a
    /// DPD reply sealed where the request was).
    Udp(u16),
    /// A TUN read slot (a packet sealed in place for a device).
    Tun(u16),
    /// A heap buffer (a CSTP packet from control, a cross-shard frame).
    Owned(Vec<u8>),
}

/// What an in-flight operation is.
#[derive(Debug)]
pub(super) enum Op {
    /// Multishot `recvmsg` on the UDP socket into the UDP buffer group.
    UdpRecv,
    /// Multishot read on the TUN queue into the TUN buffer group.
    TunReadMulti,
    /// One-shot read on the TUN queue with a buffer picked from the group.
    TunRead,
    /// Read of the shard's doorbell eventfd.
    Wake,
    UdpSend(TxBuf),
    TunWrite(TxBuf),
}

/// Cheap discriminant of [`Op`], for dispatch without moving the buffer out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    UdpRecv,
    TunReadMulti,
    TunRead,
    Wake,
    UdpSend,
    TunWrite,
}

/// Bytes of control data for one `UDP_SEGMENT` cmsg: `CMSG_SPACE(2)`, a
/// 16-byte `cmsghdr` and the u16 padded to 8.
const SEGMENT_CMSG_SPACE: usize = 24;
/// `msg_controllen` for one `UDP_SEGMENT` cmsg.
pub(super) const SEGMENT_CMSG_LEN: usize = SEGMENT_CMSG_SPACE;

pub(super) struct OpSlot {
    op: Option<Op>,
    /// Kernel-visible parts of a `sendmsg`; pointers into this same slot.
    pub(super) msg: libc::msghdr,
    pub(super) iov: libc::iovec,
    pub(super) peer: Option<RawSockAddr>,
    /// Control data (`cmsghdr`-aligned): the GSO segment size of a send.
    pub(super) cmsg: [u64; SEGMENT_CMSG_SPACE / 8],
    /// Datagrams a send puts on the wire (segments of a GSO send).
    pub(super) datagrams: u16,
}

impl OpSlot {
    /// Fills `cmsg` with one `SOL_UDP`/`UDP_SEGMENT` message carrying `size`.
    pub(super) fn set_segment_size(&mut self, size: u16) {
        let header = libc::cmsghdr {
            // CMSG_LEN(2): the header plus the data, unpadded.
            cmsg_len: core::mem::size_of::<libc::cmsghdr>() + 2,
            cmsg_level: libc::SOL_UDP,
            cmsg_type: libc::UDP_SEGMENT,
        };
        let mut bytes = [0u8; SEGMENT_CMSG_SPACE];
        let (head, data) = bytes.split_at_mut(core::mem::size_of::<libc::cmsghdr>());
        // SAFETY: cmsghdr is plain data (integers) of exactly head's size;
        // copying its bytes out is a plain read of a live value.
        let raw = unsafe {
            core::slice::from_raw_parts(
                core::ptr::from_ref(&header).cast::<u8>(),
                core::mem::size_of::<libc::cmsghdr>(),
            )
        };
        head.copy_from_slice(raw);
        if let Some(d) = data.get_mut(..2) {
            d.copy_from_slice(&size.to_ne_bytes());
        }
        for (word, chunk) in self.cmsg.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
    }
}

impl core::fmt::Debug for OpSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpSlot").field("op", &self.op).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub(super) struct OpTable {
    slots: Box<[OpSlot]>,
    free: Vec<u32>,
}

impl OpTable {
    pub(super) fn with_capacity(capacity: u32) -> Self {
        let slots = (0..capacity)
            .map(|_| OpSlot {
                op: None,
                msg: empty_msghdr(),
                iov: libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 },
                peer: None,
                cmsg: [0; SEGMENT_CMSG_SPACE / 8],
                datagrams: 0,
            })
            .collect();
        Self { slots, free: (0..capacity).rev().collect() }
    }

    /// Operations submitted (or queued) and not yet completed.
    pub(super) fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub(super) fn insert(&mut self, op: Op) -> Result<u32, Op> {
        let Some(index) = self.free.pop() else { return Err(op) };
        match self.slots.get_mut(index as usize) {
            Some(slot) => {
                slot.op = Some(op);
                Ok(index)
            }
            None => Err(op),
        }
    }

    pub(super) fn kind(&self, index: u32) -> Option<OpKind> {
        Some(match self.slots.get(index as usize)?.op.as_ref()? {
            Op::UdpRecv => OpKind::UdpRecv,
            Op::TunReadMulti => OpKind::TunReadMulti,
            Op::TunRead => OpKind::TunRead,
            Op::Wake => OpKind::Wake,
            Op::UdpSend(_) => OpKind::UdpSend,
            Op::TunWrite(_) => OpKind::TunWrite,
        })
    }

    pub(super) fn slot(&self, index: u32) -> Option<&OpSlot> {
        self.slots.get(index as usize)
    }

    pub(super) fn slot_mut(&mut self, index: u32) -> Option<&mut OpSlot> {
        self.slots.get_mut(index as usize)
    }

    /// Ends the operation: its slot is free for reuse.
    pub(super) fn remove(&mut self, index: u32) -> Option<Op> {
        let op = self.slots.get_mut(index as usize)?.op.take()?;
        self.free.push(index);
        Some(op)
    }
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain data (pointers and integers); all-zero is a
    // valid, empty message header.
    unsafe { core::mem::zeroed() }
}

/// Control data a receive makes room for: one `UDP_GRO` cmsg (an int),
/// `CMSG_SPACE(4)`.
pub(super) const RECV_CMSG_SPACE: usize = 24;

/// A `msghdr` with room for a source address and `control_len` bytes of
/// control data, as the multishot `recvmsg` template (the kernel lays both
/// out in each provided buffer, in front of the payload).
pub(super) fn recv_template(name_len: usize, control_len: usize) -> libc::msghdr {
    let mut m = empty_msghdr();
    m.msg_namelen = name_len as libc::socklen_t;
    m.msg_controllen = control_len;
    m
}

/// The segment size of a `UDP_GRO` cmsg in `control`, if there is one: the
/// payload is then several datagrams of that size, the last possibly shorter.
pub(super) fn gro_segment(control: &[u8]) -> Option<u16> {
    let header = core::mem::size_of::<libc::cmsghdr>();
    let mut at = 0usize;
    while let Some(h) = control.get(at..at + header) {
        // cmsghdr: len (usize), level (i32), type (i32), native endian.
        let len = usize::from_ne_bytes(h.get(..8)?.try_into().ok()?);
        let level = i32::from_ne_bytes(h.get(8..12)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(h.get(12..16)?.try_into().ok()?);
        if len < header {
            return None;
        }
        if level == libc::SOL_UDP && kind == libc::UDP_GRO {
            let v = i32::from_ne_bytes(control.get(at + header..at + header + 4)?.try_into().ok()?);
            return u16::try_from(v).ok().filter(|&v| v > 0);
        }
        at += len.div_ceil(8) * 8;
    }
    None
}
