//! Kernel-side queue steering for the multi-queue TUN: an eBPF program that
//! sends each packet to the TUN queue of the shard owning its destination.
//!
//! # Why
//!
//! Network → device packets leave the kernel through whichever TUN queue the
//! device's flow hash picks. When that queue belongs to a shard other than
//! the session's owner, the packet costs a copy across a shard-to-shard queue
//! (`cross_shard`) and a second wake-up. The owner table decides who owns a
//! pool offset; [`TunSteering`] mirrors it into a `BPF_MAP_TYPE_ARRAY` (pool
//! offset → queue index) that a `TUNSETSTEERINGEBPF` program consults, so the
//! kernel hands the packet to the owner's queue in the first place.
//!
//! Anything the program cannot place (not IPv4, destination outside the pool,
//! offset with no entry) goes to queue 0; the owner table still routes it, so
//! a stale or missing map entry costs a queue hop, never a wrong delivery.
//!
//! # When the kernel refuses
//!
//! `bpf()` needs CAP_BPF (or root): with `kernel.unprivileged_bpf_disabled`
//! set, or under a seccomp filter, [`TunSteering::load`] fails with the raw
//! `errno` (EPERM, ENOSYS, …) available through `io::Error::raw_os_error`.
//! The caller then keeps the kernel's flow hash, counts the hops, and says
//! why. A program the verifier rejects comes back with the errno's kind and
//! the tail of the verifier log in the message.
//!
//! The TUN holds its own reference to an attached program (and through it
//! the map): dropping a [`TunSteering`] leaves steering in place, frozen at
//! the last map contents, until the device goes away.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Size of the `bpf_attr` we pass. Every field we set lies in its first 64
/// bytes; the kernel zero-extends a shorter attr and requires a longer one's
/// tail to be zero, so a zeroed 128 bytes is accepted by old and new kernels.
const BPF_ATTR_SIZE: usize = 128;

// bpf() commands (enum bpf_cmd).
const BPF_MAP_CREATE: libc::c_long = 0;
#[cfg(test)]
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
/// The program only reads the map; user space writes it.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;
const BPF_ANY: u64 = 0;
/// `log_level` 1: the verifier's per-instruction trace, enough to see why it refused.
const BPF_LOG_LEVEL: u32 = 1;
const VERIFIER_LOG_SIZE: usize = 64 * 1024;
/// How much of the verifier log's tail goes into an error message: the
/// verdict is on the last lines.
const VERIFIER_LOG_TAIL: usize = 1024;

/// `_IOR('T', 224, int)` (linux/if_tun.h).
const TUNSETSTEERINGEBPF: libc::c_ulong = 0x8004_54e0;

/// Object names as `bpftool` shows them (≤ 15 bytes, `[A-Za-z0-9_.]`).
const OBJECT_NAME: &[u8] = b"corridor_steer";

/// `bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C, align(8))]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    tail: [u8; BPF_ATTR_SIZE - 44],
}

/// `bpf_attr` for `BPF_MAP_{LOOKUP,UPDATE}_ELEM`.
#[repr(C, align(8))]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
    tail: [u8; BPF_ATTR_SIZE - 32],
}

/// `bpf_attr` for `BPF_PROG_LOAD`.
#[repr(C, align(8))]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    tail: [u8; BPF_ATTR_SIZE - 64],
}

const _: () = assert!(size_of::<MapCreateAttr>() == BPF_ATTR_SIZE);
const _: () = assert!(size_of::<MapElemAttr>() == BPF_ATTR_SIZE);
const _: () = assert!(size_of::<ProgLoadAttr>() == BPF_ATTR_SIZE);

fn object_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    for (dst, src) in name.iter_mut().zip(OBJECT_NAME) {
        *dst = *src;
    }
    name
}

/// Runs one `bpf()` command on a fully initialised attr of `BPF_ATTR_SIZE` bytes.
fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    const { assert!(size_of::<A>() == BPF_ATTR_SIZE) };
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` bpf_attr
    // layout of exactly BPF_ATTR_SIZE bytes with no padding holes; every
    // pointer stored in it (key, value, insns, license, log buffer) is
    // borrowed by the caller for the duration of this call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, core::ptr::from_mut(attr), BPF_ATTR_SIZE) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a descriptor a `bpf()` command returned.
fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::other("bpf() returned an out-of-range fd"))?;
    // SAFETY: the kernel just created `fd` for us and nobody else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // An open descriptor is never negative.
    fd.as_raw_fd().unsigned_abs()
}

// eBPF instruction encoding (linux/bpf_common.h, linux/bpf.h).
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_B: u8 = 0x10;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_ABS: u8 = 0x20;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_ADD: u8 = 0x00;
const BPF_SUB: u8 = 0x10;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JGE: u8 = 0x30;
const BPF_JNE: u8 = 0x50;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a `BPF_LD_IMM64` whose immediate is a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R6: u8 = 6;
const R10: u8 = 10;

/// One `struct bpf_insn`: opcode, `dst_reg` in the low and `src_reg` in the
/// high nibble of `regs`, offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self { code, regs: (src << 4) | (dst & 0x0f), off, imm }
    }
    const fn mov64_reg(dst: u8, src: u8) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
    }
    const fn mov64_imm(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
    }
    const fn add64_imm(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm)
    }
    /// 32-bit subtract: wraps modulo 2³² and zero-extends into the register.
    const fn sub32_imm(dst: u8, imm: u32) -> Self {
        Self::new(BPF_ALU | BPF_SUB | BPF_K, dst, 0, 0, imm as i32)
    }
    const fn rsh32_imm(dst: u8, imm: i32) -> Self {
        Self::new(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
    }
    /// `r0 = ntohl(*(u32 *)(skb->data + off))`, the skb taken from r6; a
    /// packet too short ends the program with 0.
    const fn ld_abs_w(off: i32) -> Self {
        Self::new(BPF_LD | BPF_ABS | BPF_W, 0, 0, 0, off)
    }
    const fn ld_abs_b(off: i32) -> Self {
        Self::new(BPF_LD | BPF_ABS | BPF_B, 0, 0, 0, off)
    }
    const fn ldx_w(dst: u8, src: u8, off: i16) -> Self {
        Self::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
    }
    const fn stx_w(dst: u8, off: i16, src: u8) -> Self {
        Self::new(BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0)
    }
    /// `BPF_LD_IMM64` of a map fd: two slots, the second carrying the
    /// (zero) upper half.
    const fn ld_map_fd(dst: u8, fd: u32) -> [Self; 2] {
        [Self::new(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd as i32), Self::new(0, 0, 0, 0, 0)]
    }
    const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm)
    }
    const fn jne_imm(dst: u8, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
    }
    /// Unsigned `>=` on the low 32 bits against the immediate read as u32
    /// (a 64-bit JGE would sign-extend it).
    const fn jge32_imm(dst: u8, imm: u32, off: i16) -> Self {
        Self::new(BPF_JMP32 | BPF_JGE | BPF_K, dst, 0, off, imm as i32)
    }
    const fn call(helper: i32) -> Self {
        Self::new(BPF_JMP | BPF_CALL, 0, 0, 0, helper)
    }
    const fn exit() -> Self {
        Self::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}

/// Index of the shared "return queue 0" tail; jump offsets count from the
/// instruction after the jump.
const RET_ZERO: i16 = 16;

/// The steering program. TUN runs it on the skb with `data` at the IPv4
/// header (TUN has no link header, and a vnet header is only added on
/// read), and uses `(u16)r0 % numqueues` as the queue.
fn steering_program(pool_base: Ipv4Addr, pool_len: u32, map_fd: u32) -> [Insn; 18] {
    let [map_lo, map_hi] = Insn::ld_map_fd(R1, map_fd);
    [
        /* 0 */ Insn::mov64_reg(R6, R1), // LD_ABS takes the skb from r6
        /* 1 */ Insn::ld_abs_b(0), // r0 = version | IHL
        /* 2 */ Insn::rsh32_imm(R0, 4), // r0 = IP version
        /* 3 */ Insn::jne_imm(R0, 4, RET_ZERO - 4), // not IPv4: queue 0
        /* 4 */ Insn::ld_abs_w(16), // r0 = destination address, host order
        /* 5 */ Insn::sub32_imm(R0, u32::from(pool_base)), // r0 = pool offset (wraps below the base)
        /* 6 */ Insn::jge32_imm(R0, pool_len, RET_ZERO - 7), // outside the pool: queue 0
        /* 7 */ Insn::stx_w(R10, -4, R0), // key on the stack
        /* 8 */ Insn::mov64_reg(R2, R10), // r2 = &key ...
        /* 9 */ Insn::add64_imm(R2, -4), // ... = fp - 4
        /* 10 */ map_lo, // r1 = the map
        /* 11 */ map_hi,
        /* 12 */ Insn::call(BPF_FUNC_MAP_LOOKUP_ELEM), // r0 = &map[key] or NULL
        /* 13 */ Insn::jeq_imm(R0, 0, RET_ZERO - 14), // NULL: queue 0
        /* 14 */ Insn::ldx_w(R0, R0, 0), // r0 = queue index
        /* 15 */ Insn::exit(),
        /* 16 */ Insn::mov64_imm(R0, 0), // RET_ZERO
        /* 17 */ Insn::exit(),
    ]
}

/// The last `VERIFIER_LOG_TAIL` characters of a NUL-terminated verifier
/// log, on one line (lines joined with " | ") so it fits a log record.
fn log_tail(log: &[u8]) -> String {
    let len = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(log.get(..len).unwrap_or_default());
    let text = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" | ");
    match text.char_indices().rev().nth(VERIFIER_LOG_TAIL) {
        Some((cut, _)) => format!("…{}", text.get(cut..).unwrap_or_default()),
        None => text,
    }
}

/// The TUN steering program and its pool-offset → queue map.
///
/// Built once per device with [`TunSteering::load`], attached through any one
/// queue with [`TunSteering::attach`] (it applies to the whole device), then
/// kept in step with the owner table: a shard calls [`TunSteering::set`] when
/// it installs a grant and [`TunSteering::clear`] when it revokes one. Both
/// are one `bpf()` syscall and take `&self`; the type only holds descriptors,
/// so it is `Send + Sync` and can sit in an `Arc` shared by the shards.
pub(crate) struct TunSteering {
    map: OwnedFd,
    prog: OwnedFd,
    pool_base: Ipv4Addr,
    pool_len: u32,
}

impl TunSteering {
    /// Creates the map (`pool_len` entries, all queue 0) and loads the
    /// program for the pool `pool_base .. pool_base + pool_len`.
    ///
    /// Errors: `InvalidInput` for an empty pool or one that runs past
    /// 255.255.255.255; the raw `errno` of a refused `bpf()` (EPERM when
    /// unprivileged bpf is disabled or seccomp denies it); a verifier
    /// rejection carries the errno's kind and the log's tail in its message.
    pub(crate) fn load(pool_base: Ipv4Addr, pool_len: u32) -> io::Result<Self> {
        if pool_len == 0 || u32::from(pool_base).checked_add(pool_len - 1).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("steering pool {pool_base} + {pool_len} addresses is empty or runs past 255.255.255.255"),
            ));
        }
        let mut attr = MapCreateAttr {
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: pool_len,
            map_flags: BPF_F_RDONLY_PROG,
            inner_map_fd: 0,
            numa_node: 0,
            map_name: object_name(),
            tail: [0; BPF_ATTR_SIZE - 44],
        };
        let map = owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)?;
        let prog = load_program(&steering_program(pool_base, pool_len, fd_u32(map.as_fd())))?;
        Ok(Self { map, prog, pool_base, pool_len })
    }

    /// Makes the program the TUN device's queue selector
    /// (`TUNSETSTEERINGEBPF` on one of its queues; the setting is the device's).
    pub(crate) fn attach(&self, tun_queue: BorrowedFd<'_>) -> io::Result<()> {
        let prog_fd: libc::c_int = self.prog.as_raw_fd();
        // SAFETY: TUNSETSTEERINGEBPF reads one int (the program fd) through
        // the pointer, which points at a live local for the whole call.
        let ret = unsafe { libc::ioctl(tun_queue.as_raw_fd(), TUNSETSTEERINGEBPF, core::ptr::from_ref(&prog_fd)) };
        super::check(ret).map(drop)
    }

    /// Steers the pool offset `offset` to TUN queue `queue` (the kernel takes
    /// it modulo the device's queue count).
    pub(crate) fn set(&self, offset: u32, queue: u16) -> io::Result<()> {
        self.update(offset, u32::from(queue))
    }

    /// Returns the pool offset `offset` to queue 0, the default.
    pub(crate) fn clear(&self, offset: u32) -> io::Result<()> {
        self.update(offset, 0)
    }

    fn check_offset(&self, offset: u32) -> io::Result<()> {
        if offset < self.pool_len {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("steering offset {offset} is outside the pool of {}", self.pool_len),
            ))
        }
    }

    fn update(&self, offset: u32, queue: u32) -> io::Result<()> {
        self.check_offset(offset)?;
        let mut attr = MapElemAttr {
            map_fd: fd_u32(self.map.as_fd()),
            pad: 0,
            key: core::ptr::from_ref(&offset) as u64,
            value: core::ptr::from_ref(&queue) as u64,
            flags: BPF_ANY,
            tail: [0; BPF_ATTR_SIZE - 32],
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// Reads the queue the map holds for `offset`.
    #[cfg(test)]
    fn get(&self, offset: u32) -> io::Result<u32> {
        self.check_offset(offset)?;
        let mut queue = u32::MAX;
        let mut attr = MapElemAttr {
            map_fd: fd_u32(self.map.as_fd()),
            pad: 0,
            key: core::ptr::from_ref(&offset) as u64,
            value: core::ptr::from_mut(&mut queue) as u64,
            flags: 0,
            tail: [0; BPF_ATTR_SIZE - 32],
        };
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
        Ok(queue)
    }
}

/// `BPF_PROG_LOAD` of a socket filter. A refusal is retried once with a log
/// buffer, so the common case pays no verifier trace.
fn load_program(insns: &[Insn]) -> io::Result<OwnedFd> {
    let load = |log: Option<&mut [u8]>| {
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (BPF_LOG_LEVEL, u32::try_from(buf.len()).unwrap_or(u32::MAX), buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
            insn_cnt: u32::try_from(insns.len()).unwrap_or(u32::MAX),
            insns: insns.as_ptr() as u64,
            // No GPL-only helper is called, so the licence is the project's.
            license: c"MIT OR Apache-2.0".as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: 0,
            prog_flags: 0,
            prog_name: object_name(),
            tail: [0; BPF_ATTR_SIZE - 64],
        };
        bpf(BPF_PROG_LOAD, &mut attr).and_then(owned_fd)
    };
    let refused = match load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    // A retry that succeeds after all is taken; one that fails with an
    // empty log (EPERM, say) leaves the first errno untouched.
    let retry = load(Some(&mut log));
    let tail = log_tail(&log);
    match retry {
        Ok(fd) => Ok(fd),
        Err(_) if tail.is_empty() => Err(refused),
        Err(_) => Err(io::Error::new(refused.kind(), format!("BPF_PROG_LOAD: {refused}; verifier log: {tail}"))),
    }
}

impl fmt::Debug for TunSteering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunSteering")
            .field("pool_base", &self.pool_base)
            .field("pool_len", &self.pool_len)
            .field("map_fd", &self.map.as_raw_fd())
            .field("prog_fd", &self.prog.as_raw_fd())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::io::Read;
    use std::net::UdpSocket;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::{Duration, Instant};

    /// `TUNSETIFF` by hand rather than through `open_tun_queue`, so the
    /// vnet-header variant can be tested too.
    fn open_queue(name: &str, vnet_hdr: bool) -> File {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun");
        // SAFETY: ifreq is plain old data; all-zero bytes are a valid value.
        let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = *src as libc::c_char;
        }
        let vnet = if vnet_hdr { libc::IFF_VNET_HDR } else { 0 };
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | vnet) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, live across the call.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, core::ptr::from_mut(&mut ifr)) };
        assert_eq!(ret, 0, "TUNSETIFF {name}: {}", io::Error::last_os_error());
        file
    }

    /// Pool offset of every IPv4/UDP packet waiting on `queue` whose
    /// destination is in the /24 at `pool`.
    fn drain(queue: &mut File, vnet_hdr: bool, pool: Ipv4Addr, seen: &mut Vec<u32>) {
        let skip = if vnet_hdr { 10 } else { 0 };
        let mut buf = vec![0u8; 65_600];
        loop {
            match queue.read(&mut buf) {
                Ok(n) => {
                    let ip = &buf[skip..n];
                    if ip.len() >= 28 && ip[0] >> 4 == 4 && ip[9] == 17 {
                        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                        let off = u32::from(dst).wrapping_sub(u32::from(pool));
                        if off < 256 {
                            seen.push(off);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("TUN read: {e}"),
            }
        }
    }

    /// Sends one datagram to each pool offset and returns, per offset, the
    /// queues it arrived on.
    fn send_and_collect(
        queues: &mut [File; 2],
        vnet_hdr: bool,
        pool: Ipv4Addr,
        offsets: &[u32],
    ) -> BTreeMap<u32, Vec<usize>> {
        let mut stale = Vec::new();
        for q in queues.iter_mut() {
            drain(q, vnet_hdr, pool, &mut stale);
        }
        let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
        for &off in offsets {
            sock.send_to(b"steer me", (Ipv4Addr::from(u32::from(pool) + off), 9)).expect("send_to");
        }
        let mut arrived: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while arrived.values().map(Vec::len).sum::<usize>() < offsets.len() && Instant::now() < deadline {
            for (index, q) in queues.iter_mut().enumerate() {
                let mut seen = Vec::new();
                drain(q, vnet_hdr, pool, &mut seen);
                for off in seen {
                    arrived.entry(off).or_default().push(index);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        arrived
    }

    fn steer_end_to_end(name: &str, pool: Ipv4Addr, vnet_hdr: bool) {
        let mut queues = [open_queue(name, vnet_hdr), open_queue(name, vnet_hdr)];
        crate::sys::configure_interface(name, Ipv4Addr::from(u32::from(pool) + 1), 24, 1400).expect("configure");
        let steering = TunSteering::load(pool, 256).expect("load");
        steering.attach(queues[0].as_fd()).expect("attach");

        let offsets: Vec<u32> = (2..34).collect();
        for even_queue in [1u16, 0] {
            let queue_of = |off: u32| if off % 2 == 0 { even_queue } else { 1 - even_queue };
            for &off in &offsets {
                steering.set(off, queue_of(off)).expect("set");
            }
            let arrived = send_and_collect(&mut queues, vnet_hdr, pool, &offsets);
            for &off in &offsets {
                let want = vec![usize::from(queue_of(off))];
                assert_eq!(arrived.get(&off), Some(&want), "offset {off} (even → queue {even_queue}): {arrived:?}");
            }
        }

        // A cleared offset falls back to queue 0.
        for &off in &offsets {
            steering.clear(off).expect("clear");
        }
        let arrived = send_and_collect(&mut queues, vnet_hdr, pool, &offsets);
        for &off in &offsets {
            assert_eq!(arrived.get(&off), Some(&vec![0]), "cleared offset {off}: {arrived:?}");
        }
    }

    #[test]
    fn steering_loads_and_map_round_trips() {
        let steering = TunSteering::load(Ipv4Addr::new(10, 213, 9, 0), 256).expect("load");
        assert_eq!(steering.get(7).expect("get"), 0);
        steering.set(7, 3).expect("set");
        steering.set(255, u16::MAX).expect("set");
        assert_eq!(steering.get(7).expect("get"), 3);
        assert_eq!(steering.get(255).expect("get"), u32::from(u16::MAX));
        steering.clear(7).expect("clear");
        assert_eq!(steering.get(7).expect("get"), 0);
        assert!(format!("{steering:?}").contains("pool_len: 256"));
    }

    #[test]
    fn steering_moves_packets_between_queues() {
        steer_end_to_end("cst-steer", Ipv4Addr::new(10, 213, 0, 0), false);
    }

    #[test]
    fn steering_moves_packets_between_vnet_hdr_queues() {
        steer_end_to_end("cst-steer-vh", Ipv4Addr::new(10, 213, 1, 0), true);
    }

    #[test]
    fn steering_rejects_bad_input() {
        let err = TunSteering::load(Ipv4Addr::new(10, 213, 2, 0), 0).expect_err("empty pool");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = TunSteering::load(Ipv4Addr::new(255, 255, 255, 0), 512).expect_err("wrapping pool");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let steering = TunSteering::load(Ipv4Addr::new(10, 213, 2, 0), 256).expect("load");
        assert_eq!(steering.set(256, 1).expect_err("offset = len").kind(), io::ErrorKind::InvalidInput);
        assert_eq!(steering.set(u32::MAX, 1).expect_err("offset max").kind(), io::ErrorKind::InvalidInput);
        assert_eq!(steering.clear(256).expect_err("clear offset = len").kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn verifier_rejection_carries_the_log() {
        // `exit` with r0 never written: the verifier says "R0 !read_ok".
        let err = load_program(&[Insn::exit()]).expect_err("verifier must refuse");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("verifier log: ") && msg.contains("R0 !read_ok") && !msg.contains('\n'), "{msg}");
    }

    #[test]
    fn program_jumps_land_on_the_zero_tail() {
        let prog = steering_program(Ipv4Addr::new(10, 213, 0, 0), 256, 42);
        let tail = usize::try_from(RET_ZERO).expect("index");
        assert_eq!(prog[tail], Insn::mov64_imm(R0, 0));
        assert_eq!(prog[tail + 1], Insn::exit());
        for (pc, insn) in prog.iter().enumerate() {
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            if (class == BPF_JMP || class == BPF_JMP32) && op != BPF_CALL && op != BPF_EXIT {
                let target = pc as isize + 1 + isize::from(insn.off);
                assert_eq!(target, tail as isize, "jump at {pc}");
            }
        }
        // ld_imm64 of the map: dst r1 in the low nibble, BPF_PSEUDO_MAP_FD in the high one.
        assert_eq!(prog[10], Insn { code: 0x18, regs: 0x11, off: 0, imm: 42 });
    }
}
