//! The shard's steady state allocates nothing per packet: a counting global
//! allocator watches the shard thread while traffic flows both ways.
//!
//! Needs root; run inside a private network namespace:
//! `unshare --net -- bash -c 'ip link set lo up && cargo test -p corridor-dataplane --test allocations'`.
//!
//! The allocator sees Rust allocations only. C code that calls `malloc`
//! itself (aws-lc's `OPENSSL_malloc`) bypasses it.

// The global allocator is unsafe by nature; the test owns its packets.
#![allow(unsafe_code, clippy::indexing_slicing)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use dataplane::{FromShard, ShardCounters};
use dtls::CipherSuite;
use support::*;

/// Kernel thread id whose allocations are counted; 0 watches nobody.
static WATCHED_TID: AtomicI32 = AtomicI32::new(0);
/// Allocations (alloc, alloc_zeroed, realloc) the watched thread made.
static COUNT: AtomicU64 = AtomicU64::new(0);

/// `System`, counting the watched thread's allocations. It calls nothing
/// that may allocate or touch a thread-local: only atomics and `gettid`.
struct CountingAllocator;

impl CountingAllocator {
    fn count_if_watched() {
        let watched = WATCHED_TID.load(Ordering::Acquire);
        if watched == 0 {
            return;
        }
        // SAFETY: gettid takes no arguments, touches no memory and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        if tid == libc::c_long::from(watched) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count_if_watched();
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count_if_watched();
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count_if_watched();
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Counts the allocations of thread `tid` until dropped.
struct Watch;

impl Watch {
    fn arm(tid: i32) -> Watch {
        COUNT.store(0, Ordering::Relaxed);
        WATCHED_TID.store(tid, Ordering::Release);
        Watch
    }

    fn count(&self) -> u64 {
        COUNT.load(Ordering::Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        WATCHED_TID.store(0, Ordering::Release);
    }
}

/// The kernel thread id of the thread named `name` in this process.
fn thread_id(name: &str) -> i32 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let found: Vec<i32> = tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (comm.trim_end() == name).then(|| task.file_name().to_str()?.parse().ok())?
        })
        .collect();
    assert_eq!(found.len(), 1, "exactly one thread named {name}: {found:?}");
    found[0]
}

/// Inner IP packet sizes, cycled through: small, medium, near the MTU.
const SIZES: [usize; 3] = [64, 512, 1300];
/// IPv4 and UDP headers in front of each payload.
const HEADERS: usize = 28;
/// Packets sent each way before the socket's and the TUN's queues are
/// drained: well inside the 128 receive buffers per direction.
const BURST: usize = 64;
/// Measured packets each way, at least.
const MEASURED: u64 = 5000;
/// Packets each way before measuring.
const WARM_UP: u64 = 2000;
/// One UDP GSO send from the server: full segments, then a shorter one
/// (the shape of a USO super-packet the TUN hands over whole).
const USO_SEGMENT: usize = 1300 - HEADERS;
const USO_FULL: usize = 7;
const USO_LAST: usize = 500;

/// Prebuilt traffic between the device and the server.
struct Traffic {
    /// Inner packets the device sends, one per size.
    to_server: Vec<Vec<u8>>,
    /// UDP payloads the server sends, one per size.
    to_device: Vec<Vec<u8>>,
    device_inner: SocketAddr,
    /// A server socket that sends with UDP GSO, where the TUN takes USO
    /// super-packets (offloads on, Linux 6.2+).
    uso: Option<UdpSocket>,
    buf: Vec<u8>,
}

impl Traffic {
    fn new(h: &Harness) -> Traffic {
        let server_addr = h.server.local_addr().expect("addr");
        let device_inner = SocketAddr::from((h.addr.device(), 5555));
        let to_server = SIZES.iter().map(|&n| ipv4_udp(device_inner, server_addr, &vec![0xd5; n - HEADERS])).collect();
        let to_device = SIZES.iter().map(|&n| vec![0x5d; n - HEADERS]).collect();
        let uso_on = h.dp.info().shards.iter().all(|s| s.tun_offloads.is_some_and(|o| o.uso));
        let uso = uso_on.then(|| gso_socket(h.addr.gateway(), USO_SEGMENT));
        Traffic { to_server, to_device, device_inner, uso, buf: vec![0; 65536] }
    }

    /// One burst of `BURST` packets each way, each received whole.
    fn burst(&mut self, h: &mut Harness) {
        for i in 0..BURST {
            h.device_send(TYPE_DATA, &self.to_server[i % SIZES.len()]);
        }
        for i in 0..BURST {
            let n = h.server.recv(&mut self.buf).expect("a packet through the TUN");
            assert_eq!(n, SIZES[i % SIZES.len()] - HEADERS, "packets arrive whole and in order");
        }
        for i in 0..BURST {
            h.server.send_to(&self.to_device[i % SIZES.len()], self.device_inner).expect("send into the TUN");
        }
        for i in 0..BURST {
            let (kind, inner) = h.device_recv();
            assert_eq!((kind, inner.len()), (TYPE_DATA, SIZES[i % SIZES.len()]), "records arrive whole and in order");
        }
    }

    /// One UDP GSO send from the server, received by the device as one
    /// record per segment. Returns the records it took (0 without USO).
    fn uso_send(&mut self, h: &mut Harness) -> u64 {
        let Some(uso) = &self.uso else { return 0 };
        let len = USO_SEGMENT * USO_FULL + USO_LAST;
        uso.send_to(&self.buf[..len], self.device_inner).expect("a GSO send into the TUN");
        for i in 0..=USO_FULL {
            let (kind, inner) = h.device_recv();
            let payload = if i < USO_FULL { USO_SEGMENT } else { USO_LAST };
            assert_eq!((kind, inner.len()), (TYPE_DATA, payload + HEADERS), "segment {i} of the super-packet");
        }
        USO_FULL as u64 + 1
    }

    /// A DPD request answered with its payload, then a keepalive.
    fn dpd_and_keepalive(&mut self, h: &mut Harness) {
        let probe = [0xa5u8; 200];
        h.device_send(TYPE_DPD_REQ, &probe);
        assert_eq!(h.device_recv(), (TYPE_DPD_RESP, probe.to_vec()));
        h.device_send(TYPE_KEEPALIVE, &[]);
    }
}

/// A UDP socket on `addr` whose sends are cut into `segment`-byte datagrams
/// by the kernel (`UDP_SEGMENT`).
fn gso_socket(addr: std::net::Ipv4Addr, segment: usize) -> UdpSocket {
    let socket = UdpSocket::bind((addr, 0)).expect("GSO server socket on the TUN address");
    let size = libc::c_int::try_from(segment).expect("segment size");
    // SAFETY: UDP_SEGMENT reads one c_int from the pointer, which points to
    // `size` for the length given; the fd is open for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            core::ptr::from_ref(&size).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
    socket
}

/// What the shard has counted so far of the traffic sent.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    /// Data packets each way, sent one by one.
    each_way: u64,
    /// Records the server's GSO sends became.
    segments: u64,
    dpds: u64,
}

/// Waits until the shard has counted the completions of everything sent
/// since `base` (sends and TUN writes complete after the peer already has
/// the bytes).
fn settled(h: &Harness, base: &ShardCounters, sent: Sent) -> ShardCounters {
    h.expect_counters("the shard to count every completion", |c| {
        // Coalesced packets share a write: count the packets the writes carried.
        let joined = (c.tun_super_segments - base.tun_super_segments) - (c.tun_super_writes - base.tun_super_writes);
        c.tun_writes - base.tun_writes + joined >= sent.each_way
            && c.tx_datagrams - base.tx_datagrams >= sent.each_way + sent.segments + sent.dpds
    })
}

/// Whether control's queue holds an activity report for a session that
/// had more than `after` records opened.
fn report_after(h: &Harness, after: u64, events: &mut Vec<FromShard>) -> bool {
    events.clear();
    h.dp.drain_events(events);
    events.iter().any(|e| matches!(e, FromShard::Activity { rx, .. } if rx.packets > after))
}

/// Both tests look up the thread named `corridor-shard0` and watch it
/// through one global: one data plane at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Warms a one-shard data plane up, then counts the shard's allocations
/// over a measured batch of traffic each way.
fn allocates_nothing_per_packet(tun: &str, net: u8, offloads: bool) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut h = Harness::start_with(tun, net, 1, offloads);
    h.grant_device(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256);
    let shard_tid = thread_id("corridor-shard0");
    let mut traffic = Traffic::new(&h);
    let mut events = Vec::with_capacity(1024);

    // Warm-up: every table, queue, batch and scratch vector of the shard
    // grows to its working size, and at least one activity report goes out.
    let start = h.totals();
    let mut warm = Sent::default();
    while warm.each_way < WARM_UP {
        traffic.burst(&mut h);
        warm.each_way += BURST as u64;
        warm.segments += traffic.uso_send(&mut h);
    }
    traffic.dpd_and_keepalive(&mut h);
    warm.dpds += 1;
    wait_for("an activity report after the warm-up traffic", || {
        report_after(&h, start.rx_records, &mut events).then_some(())
    });
    let before = settled(&h, &start, warm);

    // Measured: at least `MEASURED` packets each way, and until the shard
    // has sent an activity report from inside the window, so the once a
    // second report is always measured, never by the luck of the timing.
    let watch = Watch::arm(shard_tid);
    let (mut sent, mut reported) = (Sent::default(), false);
    let deadline = Instant::now() + 4 * PATIENCE;
    while sent.each_way < MEASURED || !reported {
        traffic.burst(&mut h);
        sent.each_way += BURST as u64;
        sent.segments += traffic.uso_send(&mut h);
        if sent.each_way % (BURST as u64 * 16) == 0 {
            traffic.dpd_and_keepalive(&mut h);
            sent.dpds += 1;
        }
        reported = reported || report_after(&h, before.rx_records, &mut events);
        assert!(Instant::now() < deadline, "no activity report while traffic flowed");
    }
    let after = settled(&h, &before, sent);
    let allocations = watch.count();
    drop(watch);

    let c = after;
    let (rx_records, tun_reads) = (c.rx_records - before.rx_records, c.tun_reads - before.tun_reads);
    assert!(rx_records >= sent.each_way && tun_reads >= sent.each_way, "packets moved both ways: {c:?}");
    if traffic.uso.is_some() {
        assert!(c.tun_super_packets > before.tun_super_packets, "USO super-packets were segmented: {c:?}");
        assert!(c.tun_super_writes > before.tun_super_writes, "device UDP datagrams were coalesced: {c:?}");
    }
    assert_eq!(c.io_errors + c.queue_full + c.seal_errors + c.drop_bad_mac + c.drop_replay, 0, "{c:?}");
    assert_eq!(
        allocations,
        0,
        "the shard ({} engine, offloads {}) allocated {allocations} times over {} packets each way \
         ({rx_records} records opened, {tun_reads} TUN reads, {} GSO segments, {} DPD exchanges)",
        h.dp.info().shards[0].io,
        if offloads { "on" } else { "off" },
        sent.each_way,
        sent.segments,
        sent.dpds,
    );

    // The watch is pointed at the right thread: a stranger's ClientHello is
    // parsed on the shard (its App-ID looked up), which allocates.
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let mut config = dtls::ClientConfig::new(b"psk", &[1; 32]);
    config.session_id = vec![0x99; 32];
    let mut hello = Vec::new();
    let mut client = dtls::Connection::client(std::sync::Arc::new(config), Instant::now()).expect("client");
    assert!(client.poll_transmit(&mut hello));
    let watch = Watch::arm(shard_tid);
    stranger.send_to(&hello, h.gateway_udp).expect("send");
    h.expect_counters("the stranger's ClientHello dropped", |c| {
        c.handshakes_unknown_app_id > before.handshakes_unknown_app_id
    });
    assert!(watch.count() > 0, "the watch saw the shard parse a handshake datagram");
}

/// As the gateway runs by default: vnet-header TUN, USO super-packets
/// segmented in the shard, records leaving in UDP GSO batches.
#[test]
fn the_shard_allocates_nothing_per_packet_in_steady_state() {
    allocates_nothing_per_packet("cdp-alloc", 12, true);
}

/// The A/B baseline: one TUN read or write and one datagram per packet.
#[test]
fn the_shard_without_offloads_allocates_nothing_per_packet() {
    allocates_nothing_per_packet("cdp-alloc-ab", 13, false);
}
