//! The typed operation table: every SQE's `user_data` is an index here, and
//! the slot owns whatever the kernel reads or writes for that operation
//! (the transmit buffer, the `msghdr`, its iovec and the destination
//! address) from submission until the completion is reaped. The table is
//! allocated once and never grows, so those addresses stay put.

use crate::io::TxBuf;
use crate::sys::{RawSockAddr, SegmentCmsg};

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

pub(super) struct OpSlot {
    op: Option<Op>,
    /// Kernel-visible parts of a `sendmsg`; pointers into this same slot.
    pub(super) msg: libc::msghdr,
    pub(super) iov: libc::iovec,
    pub(super) peer: Option<RawSockAddr>,
    /// Control data: the GSO segment size of a send.
    pub(super) cmsg: SegmentCmsg,
    /// Datagrams a send puts on the wire (segments of a GSO send).
    pub(super) datagrams: u16,
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
                cmsg: SegmentCmsg::new(0),
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

/// A `msghdr` with room for a source address and `control_len` bytes of
/// control data, as the multishot `recvmsg` template (the kernel lays both
/// out in each provided buffer, in front of the payload).
pub(super) fn recv_template(name_len: usize, control_len: usize) -> libc::msghdr {
    let mut m = empty_msghdr();
    m.msg_namelen = name_len as libc::socklen_t;
    m.msg_controllen = control_len;
    m
}
