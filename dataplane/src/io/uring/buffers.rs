//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): slots the kernel
//! fills on its own (multishot receive and read pick one per completion),
//! and the ownership bookkeeping that says when our code may touch a slot.
//!
//! A slot is in one of two states:
//!
//! * **Kernel** — its entry is in the ring; the kernel may write it at any
//!   moment. Nothing here hands out a reference to it.
//! * **Held** — a completion named it. The shard may read and write it
//!   until the batch ends (the next [`Engine::wait`](super::Engine::wait)),
//!   and may attach operations (a send, a TUN write) that read from it. It
//!   goes back to the ring when the batch has ended *and* its last attached
//!   operation completed.
//!
//! While an attached operation may be running in the kernel, the slot is
//! read-only to us: [`ProvidedBuffers::slot`] refuses once the ring was
//! entered after the first attach (the kernel only starts SQEs inside
//! `io_uring_enter`; this ring has no SQ polling thread).

use std::io;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// Where in each slot the kernel writes, and how much.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotLayout {
    /// Bytes per slot (a multiple of 64).
    pub(crate) slot_len: usize,
    /// Offset of the kernel's fill area in the slot: room in front for
    /// headers we add in place.
    pub(crate) fill_at: usize,
    /// Bytes the kernel may fill.
    pub(crate) fill_len: u32,
}

#[derive(Debug, Clone, Copy)]
enum BufState {
    Kernel,
    Held {
        /// Operations (sends, writes) still reading from the slot.
        ops: u32,
        /// `Engine` epoch when `ops` last went from 0 to 1.
        first_op_epoch: u64,
        /// The batch that received it has ended.
        released: bool,
    },
}

/// Anonymous, private, page-aligned memory.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn anonymous(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `anonymous` mapped. Callers drop a
        // Mapping only when no kernel operation can still reach it (see
        // `Engine`'s Drop, which leaks instead when unsure).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[derive(Debug)]
pub(super) struct ProvidedBuffers {
    /// The entry ring shared with the kernel (16 bytes per entry).
    ring: Mapping,
    /// The slots themselves.
    data: Mapping,
    layout: SlotLayout,
    count: u16,
    /// Our producer index; the kernel sees it after `publish`.
    tail: u16,
    published: u16,
    states: Box<[BufState]>,
    in_kernel: usize,
    /// Slots handed to the shard in the current batch.
    handed_out: Vec<u16>,
}

impl ProvidedBuffers {
    /// `count` must be a power of two (≤ 32768), as the kernel requires.
    pub(super) fn new(count: u16, layout: SlotLayout) -> io::Result<Self> {
        if !count.is_power_of_two() || count > 1 << 15 || layout.slot_len % 64 != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "buffer count or slot size"));
        }
        let fill_end = layout.fill_at + layout.fill_len as usize;
        if fill_end > layout.slot_len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "fill area beyond slot"));
        }
        let ring = Mapping::anonymous(usize::from(count) * core::mem::size_of::<BufRingEntry>())?;
        let data = Mapping::anonymous(usize::from(count) * layout.slot_len)?;
        let mut pool = Self {
            ring,
            data,
            layout,
            count,
            tail: 0,
            published: 0,
            states: vec![BufState::Kernel; usize::from(count)].into_boxed_slice(),
            in_kernel: usize::from(count),
            handed_out: Vec::with_capacity(usize::from(count)),
        };
        for bid in 0..count {
            pool.push_entry(bid);
        }
        pool.publish();
        Ok(pool)
    }

    pub(super) fn layout(&self) -> SlotLayout {
        self.layout
    }

    /// Tells the kernel about the ring under buffer group `group`.
    pub(super) fn register(&self, submitter: &Submitter<'_>, group: u16) -> io::Result<()> {
        // SAFETY: the ring mapping holds `count` entries, is page-aligned
        // (mmap), and outlives the registration: Engine unregisters the group
        // or closes the ring before this pool is dropped, or leaks the pool.
        unsafe { submitter.register_buf_ring_with_flags(self.ring.ptr.as_ptr() as u64, self.count, group, 0) }
    }

    /// The slots' memory as one region, for `io_uring_register_buffers`.
    pub(super) fn region(&self) -> libc::iovec {
        libc::iovec { iov_base: self.data.ptr.as_ptr().cast(), iov_len: self.data.len }
    }

    /// Slots the kernel can fill right now.
    pub(super) fn in_kernel(&self) -> usize {
        self.in_kernel
    }

    fn slot_addr(&self, bid: u16) -> *mut u8 {
        // In bounds: bid < count and the mapping holds count * slot_len bytes.
        self.data.ptr.as_ptr().wrapping_add(usize::from(bid) * self.layout.slot_len)
    }

    /// Writes `bid`'s entry at our tail (not yet visible to the kernel).
    fn push_entry(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let entry = self.ring.ptr.as_ptr().cast::<BufRingEntry>().wrapping_add(index);
        let addr = self.slot_addr(bid).wrapping_add(self.layout.fill_at) as u64;
        // SAFETY: `entry` is inside the ring mapping (index < count). The
        // kernel reads entries only between its head and the published
        // tail; this one is at or past the published tail, so nothing reads
        // it now. The setters leave the `resv` field alone, which in entry 0
        // is the tail the kernel reads.
        unsafe {
            (*entry).set_addr(addr);
            (*entry).set_len(self.layout.fill_len);
            (*entry).set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every entry pushed so far visible to the kernel.
    pub(super) fn publish(&mut self) {
        if self.tail == self.published {
            return;
        }
        let base = self.ring.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: `base` is the ring's first entry, whose `resv` field the
        // kernel ABI defines as the 16-bit tail; AtomicU16 has u16's layout,
        // and the release store orders the entry writes before it.
        unsafe {
            let tail = BufRingEntry::tail(base).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
        self.published = self.tail;
    }

    /// A completion says the kernel filled `bid`: it is ours for this batch.
    /// False for a bid the kernel did not have (ignore that completion).
    pub(super) fn on_filled(&mut self, bid: u16) -> bool {
        match self.states.get_mut(usize::from(bid)) {
            Some(s @ BufState::Kernel) => {
                *s = BufState::Held { ops: 0, first_op_epoch: 0, released: false };
                self.in_kernel -= 1;
                self.handed_out.push(bid);
                true
            }
            _ => false,
        }
    }

    /// The whole slot, while it is held in this batch and no attached
    /// operation can be running in the kernel.
    pub(super) fn slot(&mut self, bid: u16, epoch: u64) -> Option<&mut [u8]> {
        match *self.states.get(usize::from(bid))? {
            BufState::Held { ops, first_op_epoch, released: false } if ops == 0 || first_op_epoch == epoch => {
                // SAFETY: the slot is inside the data mapping; it is Held, so
                // the kernel will not fill it, and no attached operation has
                // been submitted since (no enter in this epoch). The returned
                // borrow ties up `self`, so no second view can exist and no
                // operation can be attached while it lives.
                Some(unsafe { core::slice::from_raw_parts_mut(self.slot_addr(bid), self.layout.slot_len) })
            }
            _ => None,
        }
    }

    /// Pins `bid` for an operation that reads `range` of the slot; returns
    /// the address of `range.start`.
    pub(super) fn attach(&mut self, bid: u16, epoch: u64, range: &Range<usize>) -> Option<*const u8> {
        if range.start > range.end || range.end > self.layout.slot_len {
            return None;
        }
        let addr = self.slot_addr(bid).wrapping_add(range.start);
        match self.states.get_mut(usize::from(bid))? {
            BufState::Held { ops, first_op_epoch, released: false } => {
                if *ops == 0 {
                    *first_op_epoch = epoch;
                }
                *ops += 1;
                Some(addr.cast_const())
            }
            _ => None,
        }
    }

    /// An operation reading from `bid` completed.
    pub(super) fn detach(&mut self, bid: u16) {
        let recycle = match self.states.get_mut(usize::from(bid)) {
            Some(BufState::Held { ops, released, .. }) => {
                *ops = ops.saturating_sub(1);
                *ops == 0 && *released
            }
            _ => false,
        };
        if recycle {
            self.recycle(bid);
        }
    }

    /// The batch ended: slots without attached operations go back to the ring.
    pub(super) fn end_batch(&mut self) {
        let mut handed_out = core::mem::take(&mut self.handed_out);
        for bid in handed_out.drain(..) {
            let recycle = match self.states.get_mut(usize::from(bid)) {
                Some(BufState::Held { ops, released, .. }) => {
                    *released = true;
                    *ops == 0
                }
                _ => false,
            };
            if recycle {
                self.recycle(bid);
            }
        }
        self.handed_out = handed_out;
    }

    fn recycle(&mut self, bid: u16) {
        if let Some(s) = self.states.get_mut(usize::from(bid)) {
            *s = BufState::Kernel;
            self.in_kernel += 1;
            self.push_entry(bid);
        }
    }
}
