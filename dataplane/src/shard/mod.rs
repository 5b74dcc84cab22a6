//! One shard: a thread that owns an I/O engine (io_uring or readiness), a
//! UDP socket of the reuseport group, a TUN queue and the sessions granted
//! to it. It never takes a lock and never blocks on control; it sleeps only
//! inside the engine's wait (`io_uring_enter` or `epoll_wait`).
//!
//! One loop turn: wait for completions (at most until the next activity
//! report is due) → handle them (each direction of the fast path in its own
//! module) → drain the control and cross-shard queues → end the turn
//! (coalesced TUN super-packets written, each peer's GSO batch sent) →
//! report activity → ring control's doorbell if events were queued →
//! publish counters.

pub mod fastpath;
mod from_device;
mod sessions;
mod to_device;
mod transmit;

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use dtls::RecordProtection;
use proto::grant::{SessionGrant, SessionId};
use proto::offload::Coalescer;

use crate::config::PoolIndex;
use crate::counters::ShardCounters;
use crate::handshake::Handshakes;
use crate::info::ShardInfo;
use crate::io::{Completion, EngineConfig, Io, SubmitError};
use crate::messages::{FromShard, ShardId, Tally, ToShard};
use crate::shared::{Doorbell, ShardShared};
use crate::sys::{RawSockAddr, TunOffloads, TunSteering};
use sessions::{Session, SessionTable};
pub(crate) use to_device::{PACKET_AT, TAILROOM};
use transmit::{Transmit, BATCH_BUFFERS};

/// How often per-session activity is reported.
const ACTIVITY_PERIOD: Duration = Duration::from_secs(1);
/// How often DTLS handshake timers are checked while handshakes are in
/// flight (their first retransmission waits 400 ms).
const HANDSHAKE_TICK: Duration = Duration::from_millis(50);
/// Control messages and cross-shard packets handled per loop turn, so that
/// neither starves the sockets.
const QUEUE_BATCH: usize = 1024;
/// Consecutive failed waits after which the shard gives up.
const MAX_WAIT_FAILURES: u32 = 100;
/// Device TCP flows coalesced at once per shard, and their buffers (each
/// ~64 KiB: the pending super-packets plus those in the kernel).
const COALESCE_FLOWS: usize = 16;
const COALESCE_BUFFERS: usize = 64;

/// Everything a shard thread starts with.
#[derive(Debug)]
pub(crate) struct ShardContext {
    pub(crate) index: u16,
    pub(crate) all: Arc<[Arc<ShardShared>]>,
    pub(crate) owners: Arc<[AtomicU16]>,
    pub(crate) pool: PoolIndex,
    pub(crate) control_bell: Arc<Doorbell>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) udp: UdpSocket,
    pub(crate) tun: OwnedFd,
    pub(crate) core: Option<core_affinity::CoreId>,
    pub(crate) ring_entries: u32,
    pub(crate) udp_buffers: u16,
    pub(crate) tun_buffers: u16,
    pub(crate) udp_payload: usize,
    /// Largest TUN read, vnet header included.
    pub(crate) tun_read: usize,
    /// Transmits the engine holds at once.
    pub(crate) transmits: u32,
    /// The TUN queue has a vnet header; these offloads are on.
    pub(crate) vnet: Option<TunOffloads>,
    /// The UDP socket has `UDP_GRO` on.
    pub(crate) udp_gro: bool,
    /// The TUN's steering map, when the program is attached.
    pub(crate) steering: Option<Arc<TunSteering>>,
    pub(crate) io: crate::config::IoBackend,
    pub(crate) batch_wait: Duration,
    /// The data plane's start: loop turns are published relative to it.
    pub(crate) epoch: Instant,
    /// Test-only fault hook: panic on the first authorisation received
    /// (`CORRIDOR_TEST_SHARD_FAULT`, see `Dataplane::start`).
    pub(crate) panic_on_authorize: bool,
}

/// Marks the shard down when its thread ends, however it ends (a panic
/// unwinds through here too), and wakes control to notice unless the data
/// plane is stopping.
struct DownOnExit {
    me: Arc<ShardShared>,
    control_bell: Arc<Doorbell>,
}

impl Drop for DownOnExit {
    fn drop(&mut self) {
        self.me.up.store(false, Ordering::Release);
        self.control_bell.ring();
    }
}

/// Thread body: pin, build the ring, report how that went, then loop.
pub(crate) fn run(ctx: ShardContext, started: &mpsc::Sender<(u16, io::Result<ShardInfo>)>) {
    let index = ctx.index;
    match Shard::new(ctx) {
        Ok((mut shard, info)) => {
            let _down = DownOnExit { me: shard.me.clone(), control_bell: shard.control_bell.clone() };
            shard.me.up.store(true, Ordering::Release);
            if started.send((index, Ok(info))).is_ok() {
                shard.run();
            }
        }
        Err(e) => {
            let _ = started.send((index, Err(e)));
        }
    }
}

struct Shard {
    /// First field: dropped (quiesced) before the sockets it reads.
    engine: Io,
    id: ShardId,
    /// This shard's value in the owner table (index + 1).
    owner_tag: u16,
    sessions: SessionTable,
    /// DTLS handshakes of devices whose datagrams reach this shard, and
    /// the authorisations they are checked against.
    handshakes: Handshakes,
    next_handshake_tick: Instant,
    me: Arc<ShardShared>,
    all: Arc<[Arc<ShardShared>]>,
    owners: Arc<[AtomicU16]>,
    pool: PoolIndex,
    control_bell: Arc<Doorbell>,
    stop: Arc<AtomicBool>,
    counters: ShardCounters,
    latency: crate::latency::TurnLatency,
    events_queued: bool,
    next_report: Instant,
    /// TUN reads and writes carry a vnet header (offloads on).
    vnet: bool,
    /// Records sealed into per-peer GSO batches (with offloads).
    tx: Transmit,
    /// Device TCP segments (and, with USO, UDP datagrams) merged into TUN
    /// super-packets (with TSO).
    coalescer: Option<Coalescer>,
    /// Super-packets the coalescer finished, to be written.
    emitted: Vec<Vec<u8>>,
    steering: Option<Arc<TunSteering>>,
    epoch: Instant,
    panic_on_authorize: bool,
    _udp: UdpSocket,
    _tun: OwnedFd,
}

impl Shard {
    fn new(ctx: ShardContext) -> io::Result<(Self, ShardInfo)> {
        let pinned = ctx.core.filter(|c| core_affinity::set_for_current(*c)).map(|c| c.id);
        let (engine, io_fallback) = Io::new(
            &EngineConfig {
                entries: ctx.ring_entries,
                udp_fd: ctx.udp.as_raw_fd(),
                tun_fd: ctx.tun.as_raw_fd(),
                wake_fd: ctx.all.get(usize::from(ctx.index)).map_or(-1, |s| s.doorbell.raw_fd()),
                udp_buffers: ctx.udp_buffers,
                tun_buffers: ctx.tun_buffers,
                udp_payload: ctx.udp_payload,
                // The packet lands at PACKET_AT, its vnet header (if any) in front.
                tun_headroom: PACKET_AT - if ctx.vnet.is_some() { proto::offload::VNET_HDR_LEN } else { 0 },
                tun_packet: ctx.tun_read,
                tun_tailroom: TAILROOM,
                transmits: ctx.transmits,
                batch_wait: ctx.batch_wait,
            },
            ctx.io,
        )?;
        let me = ctx.all.get(usize::from(ctx.index)).cloned().ok_or_else(|| io::Error::other("shard index"))?;
        let info = ShardInfo {
            shard: ShardId(ctx.index),
            core: pinned,
            io: engine.describe(),
            io_fallback,
            ring_setup: engine.ring_setup(),
            fixed_files: engine.fixed_files(),
            fixed_buffers: engine.fixed_buffers(),
            tun_reads: engine.tun_style(),
            buffers: ctx.udp_buffers,
            tun_buffers: ctx.tun_buffers,
            tun_offloads: ctx.vnet,
            udp_gro: ctx.udp_gro,
            batching: engine.batching(),
        };
        let shard = Self {
            engine,
            id: ShardId(ctx.index),
            owner_tag: ctx.index + 1,
            sessions: SessionTable::new(ctx.pool.len()),
            handshakes: Handshakes::new(Instant::now())
                .map_err(|e| io::Error::other(format!("DTLS configuration: {e}")))?,
            next_handshake_tick: Instant::now(),
            me,
            all: ctx.all,
            owners: ctx.owners,
            pool: ctx.pool,
            control_bell: ctx.control_bell,
            stop: ctx.stop,
            counters: ShardCounters::default(),
            latency: crate::latency::TurnLatency::default(),
            events_queued: false,
            next_report: Instant::now() + ACTIVITY_PERIOD,
            vnet: ctx.vnet.is_some(),
            tx: Transmit::new(if ctx.vnet.is_some() { BATCH_BUFFERS } else { 0 }),
            // UDP joins only where the TUN takes UDP_L4 writes (USO).
            coalescer: ctx
                .vnet
                .filter(|o| o.tso)
                .map(|o| Coalescer::new(COALESCE_FLOWS, COALESCE_BUFFERS).with_udp(o.uso)),
            emitted: Vec::with_capacity(COALESCE_BUFFERS),
            steering: ctx.steering,
            epoch: ctx.epoch,
            panic_on_authorize: ctx.panic_on_authorize,
            _udp: ctx.udp,
            _tun: ctx.tun,
        };
        Ok((shard, info))
    }

    fn run(&mut self) {
        let mut completions = Vec::with_capacity(1024);
        let mut failures = 0u32;
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let timeout = if self.me.inbox.is_empty() && self.me.cross.is_empty() {
                let until = match self.handshakes.pending() {
                    0 => self.next_report,
                    _ => self.next_report.min(self.next_handshake_tick),
                };
                until.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match self.engine.wait(timeout, &mut completions) {
                Ok(batched) => {
                    failures = 0;
                    self.counters.batched_waits += u64::from(batched);
                }
                Err(_) => {
                    self.counters.io_errors += 1;
                    failures += 1;
                    if failures >= MAX_WAIT_FAILURES {
                        break;
                    }
                }
            }
            let now = Instant::now();
            let since_start = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
            self.me.last_turn_ns.store(since_start, Ordering::Relaxed);
            let worked = !completions.is_empty();
            let before = (self.counters.rx_datagrams, self.counters.tun_reads, self.counters.tx_records);
            // Control's messages first: an authorisation was queued before
            // control answered the CONNECT, so before the device could send
            // the ClientHello that may be among these completions. (The
            // doorbell is cleared by the Wake completion below; what arrives
            // meanwhile is taken by the second drain.)
            self.drain_inbox(now);
            for c in completions.drain(..) {
                self.on_completion(c, now);
            }
            self.drain_inbox(now);
            self.drain_cross();
            if now >= self.next_handshake_tick {
                self.handshake_timers(now);
                self.next_handshake_tick = now + HANDSHAKE_TICK;
            }
            self.end_turn();
            // Packets either way: datagrams received, and TUN packets or,
            // with offloads, the records sealed from them (a super-packet
            // read is one TUN read of many segments).
            let c = &self.counters;
            let packets = (c.rx_datagrams - before.0) + (c.tun_reads - before.1).max(c.tx_records - before.2);
            self.engine.observe_turn(u32::try_from(packets).unwrap_or(u32::MAX));
            if worked {
                self.counters.loop_turns += 1;
                // The latency sample path: one clock read per turn.
                let ns = u64::try_from(now.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.latency.record(ns);
            }
            if now >= self.next_report {
                self.report_activity();
                self.next_report = now + ACTIVITY_PERIOD;
            }
            if self.events_queued {
                self.events_queued = false;
                self.control_bell.ring();
            }
            self.publish_counters();
            self.me.latency.publish(&self.latency);
        }
        self.publish_counters();
        self.me.latency.publish(&self.latency);
    }

    /// Publishes the counters, the handshakes' with them.
    fn publish_counters(&mut self) {
        self.me.handshake_latency.publish(&self.handshakes.latency);
        let h = self.handshakes.counters;
        let c = &mut self.counters;
        c.handshakes_established = h.established;
        c.handshakes_failed = h.failed;
        c.handshakes_refused = h.refused;
        c.hello_verify_requests = h.hello_verify_requests;
        c.handshakes_unknown_app_id = h.unknown_app_id;
        c.handshakes_not_client_hello = h.not_client_hello;
        c.handshakes_overloaded = h.overloaded;
        c.handshakes_rate_limited = h.rate_limited;
        self.me.counters.publish(&self.counters);
    }

    fn on_completion(&mut self, c: Completion, now: Instant) {
        match c {
            Completion::Datagram { bid, peer, payload, truncated, segment } => {
                self.on_datagram(bid, peer, payload, truncated, segment, now);
            }
            Completion::TunPacket { bid, len } => self.on_tun_packet(bid, len),
            // Clear before draining (see `shared`): later messages ring again.
            Completion::Wake => self.me.doorbell.clear(),
            Completion::Sent { result, datagrams, owned } => {
                match result.map_err(|e| e.raw_os_error()) {
                    Ok(sent) => {
                        self.counters.tx_datagrams += u64::from(datagrams);
                        self.counters.tx_bytes += sent as u64;
                    }
                    Err(Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP)) if datagrams > 1 && self.tx.gso() => {
                        // The route's device cannot segment UDP (or checksum
                        // it): one record per send from now on.
                        self.tx.without_gso();
                        self.counters.offload_refused += 1;
                        self.counters.io_errors += 1;
                    }
                    Err(_) => self.counters.io_errors += 1,
                }
                if let Some(buf) = owned {
                    self.tx.buffers.give(buf);
                }
            }
            Completion::TunWritten { result, owned } => {
                if let Ok(written) = result {
                    self.counters.tun_writes += 1;
                    self.counters.tun_write_bytes += written as u64;
                } else {
                    self.counters.io_errors += 1;
                }
                if let (Some(buf), Some(c)) = (owned, self.coalescer.as_mut()) {
                    c.recycle(buf);
                }
            }
            Completion::ReceiveFailed => self.counters.io_errors += 1,
        }
    }

    /// What a loop turn leaves until all its completions are handled:
    /// coalesced super-packets are written, sealed batches sent.
    fn end_turn(&mut self) {
        if let Some(c) = self.coalescer.as_mut() {
            let emitted = &mut self.emitted;
            c.flush(&mut |v| emitted.push(v));
            self.write_emitted();
        }
        self.send_batches();
    }

    /// Counts a transmit the engine refused (the packet is dropped).
    fn count_refused(&mut self, submitted: Result<(), SubmitError>) {
        match submitted {
            Ok(()) => {}
            Err(SubmitError::OpTableFull) => self.counters.queue_full += 1,
            // A buffer or range the engine does not recognise: a bug, not load.
            Err(SubmitError::BadBuffer) => self.counters.io_errors += 1,
        }
    }

    /// Queues an event for control; counted and dropped if its queue is full.
    fn emit(&mut self, event: FromShard) {
        if self.me.events.push(event).is_err() {
            self.counters.queue_full += 1;
        } else {
            self.events_queued = true;
        }
    }

    fn drain_inbox(&mut self, now: Instant) {
        for _ in 0..QUEUE_BATCH {
            let Some(msg) = self.me.inbox.pop() else { break };
            match msg {
                ToShard::Authorize(a) => {
                    // The test-only fault hook (CORRIDOR_TEST_SHARD_FAULT).
                    #[allow(clippy::panic)]
                    if self.panic_on_authorize {
                        panic!("{}: fault injected by CORRIDOR_TEST_SHARD_FAULT", self.id);
                    }
                    self.handshakes.authorize(*a);
                }
                ToShard::Deauthorize(id) => {
                    self.handshakes.deauthorize(id);
                    self.on_revoke(id);
                }
                ToShard::Grant(grant) => self.on_grant(*grant, now),
                ToShard::Revoke(id) => self.on_revoke(id),
                ToShard::SendDatagram { to, datagram } => self.send_owned(datagram, &RawSockAddr::new(to)),
                ToShard::TunWrite { frame, .. } => self.on_cstp_packet(frame),
                ToShard::Repolicy { session, policy } => {
                    self.handshakes.repolicy(session, &policy);
                    if let Some(s) =
                        self.sessions.slot_by_offset(session.0).and_then(|slot| self.sessions.get_mut(slot))
                    {
                        s.policy = *policy;
                    }
                }
            }
        }
    }

    fn drain_cross(&mut self) {
        for _ in 0..QUEUE_BATCH {
            let Some(p) = self.me.cross.pop() else { break };
            self.on_cross_packet(p);
        }
    }

    /// Records this shard as the session's owner, in the owner table and
    /// in the kernel's steering map (its TUN reads then come to this
    /// shard's queue).
    fn set_owner(&mut self, id: SessionId) {
        if let Some(o) = self.owners.get(id.0 as usize) {
            o.store(self.owner_tag, Ordering::Release);
        }
        if let Some(steering) = &self.steering {
            if steering.set(id.0, self.id.0).is_err() {
                self.counters.steering_errors += 1;
            }
        }
    }

    /// Clears the owner entry unless another shard took the session since.
    fn clear_owner(&mut self, id: SessionId) {
        let Some(o) = self.owners.get(id.0 as usize) else { return };
        if o.compare_exchange(self.owner_tag, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            if let Some(steering) = &self.steering {
                if steering.clear(id.0).is_err() {
                    self.counters.steering_errors += 1;
                }
            }
        }
    }

    fn on_grant(&mut self, grant: SessionGrant, now: Instant) {
        // `grant.mtu` is not needed until GSO segmentation sizes by it.
        let (session, peer, address) = (grant.session, grant.peer, grant.address);
        if self.pool.address_of(session) != Some(address) {
            self.counters.grants_rejected += 1;
            return;
        }
        let policy = grant.policy;
        let Ok(record) = RecordProtection::new(grant.keys) else {
            self.counters.grants_rejected += 1;
            return;
        };
        // Sessions this grant displaces lose their unsent records' buffers
        // otherwise: send those first.
        for slot in [self.sessions.slot_by_offset(session.0), self.sessions.slot_by_peer(&peer)].into_iter().flatten() {
            if let Some(old) = self.sessions.get_mut(slot) {
                self.tx.close(old);
            }
        }
        let displaced = self.sessions.insert(Session {
            id: session,
            peer,
            peer_raw: RawSockAddr::new(peer),
            address,
            policy,
            record,
            rx: Tally::default(),
            tx: Tally::default(),
            last_rx: now,
            active: false,
            batch: None,
        });
        for id in displaced.into_iter().filter(|d| *d != session) {
            self.clear_owner(id);
        }
        self.set_owner(session);
        self.counters.grants += 1;
    }

    fn on_revoke(&mut self, id: SessionId) {
        // Records already sealed for it still leave (in order, before any
        // later session's on the same peer).
        if let Some(session) = self.sessions.slot_by_offset(id.0).and_then(|s| self.sessions.get_mut(s)) {
            self.tx.close(session);
        }
        if self.sessions.remove(id).is_some() {
            self.clear_owner(id);
            self.counters.revokes += 1;
        }
    }

    fn report_activity(&mut self) {
        let mut slots = core::mem::take(&mut self.sessions.newly_active);
        let mut retry = Vec::new();
        for slot in slots.drain(..) {
            let Some(s) = self.sessions.get_mut(slot) else { continue };
            if !s.active {
                continue;
            }
            let event = FromShard::Activity { session: s.id, shard: self.id, last_rx: s.last_rx, rx: s.rx, tx: s.tx };
            if self.me.events.push(event).is_ok() {
                s.active = false;
                self.events_queued = true;
            } else {
                self.counters.queue_full += 1;
                retry.push(slot);
            }
        }
        slots.extend(retry);
        self.sessions.newly_active = slots;
    }
}
