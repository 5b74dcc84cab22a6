//! Control's handle on the running data plane: start-up (TUN, sockets,
//! shard threads), the queues in both directions, counters, shutdown.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proto::grant::SessionId;

use crate::config::{DataplaneConfig, PoolIndex};
use crate::counters::ShardCounters;
use crate::info::{DataplaneInfo, ShardInfo};
use crate::messages::{FromShard, ShardId, ToShard};
use crate::shard::{self, ShardContext, PACKET_AT, TAILROOM};
use crate::shared::{Doorbell, ShardShared};
use crate::sys::{self, TunOffloads, TunSteering};

/// Slots per provided-buffer group and shard, at most (per direction).
const MAX_BUFFERS: u32 = 4096;
/// TUN read slots per shard when reads may be 64 KiB super-packets: 16 MiB,
/// each read worth up to ~45 packets.
const MAX_SUPER_BUFFERS: u32 = 256;
/// Batch buffers of a shard's GSO sends (`shard::transmit`), with room.
const BATCH_TRANSMITS: u32 = 256;
/// Largest TUN read with TSO/USO: a 64 KiB IP packet behind its vnet header.
const SUPER_READ: usize = proto::offload::VNET_HDR_LEN + 65_535;
/// Smallest UDP payload a receive slot holds whole (a handshake flight or
/// an Ethernet-sized record always fits).
const MIN_UDP_PAYLOAD: usize = 2048;

/// The running data plane. Dropping it stops and joins the shards.
#[derive(Debug)]
pub struct Dataplane {
    shards: Arc<[Arc<ShardShared>]>,
    threads: Vec<JoinHandle<()>>,
    owners: Arc<[AtomicU16]>,
    control_bell: Arc<Doorbell>,
    stop: Arc<AtomicBool>,
    info: DataplaneInfo,
    /// When the data plane started: shards' loop turns are timed from it.
    epoch: Instant,
}

/// One shard's health, as [`Dataplane::health`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHealth {
    pub shard: ShardId,
    /// Its loop is running. A shard whose thread ended (a panic, or its
    /// engine failing for good) is down for the rest of the process.
    pub up: bool,
    /// How long ago its loop last turned (a turn happens at least once a
    /// second while up).
    pub since_last_turn: Duration,
}

/// Test-only fault hook, read once at start: the shard with this index
/// panics when it receives its first authorisation (a device's CONNECT).
pub const FAULT_ENV: &str = "CORRIDOR_TEST_SHARD_FAULT";

impl Dataplane {
    /// Creates the multi-queue TUN (one queue per shard), sets its address,
    /// prefix and MTU and brings it up; binds one UDP socket per shard in a
    /// `SO_REUSEPORT` group; starts the shard threads and waits until each
    /// has its io_uring running (or one failed, which stops the rest).
    pub fn start(config: DataplaneConfig) -> io::Result<Dataplane> {
        let pool = config.validate()?;
        if config.tun_name.contains('%') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "tun_name must be a fixed name, not a pattern"));
        }
        let count = match config.shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let shard_count = u16::try_from(count).map_err(|_| io::Error::other("too many shards"))?;

        let (tun_queues, offloads) = open_tun_queues(&config.tun_name, count, config.offloads)?;
        let steering = if count < 2 {
            Err("one shard: nothing to steer".to_owned())
        } else if !config.steering {
            Err("dataplane.steering = false".to_owned())
        } else {
            steer(&pool, &tun_queues)
        };
        sys::configure_interface(&config.tun_name, config.tun_address.addr, config.tun_address.prefix, config.tun_mtu)?;

        let first = sys::bind_reuseport(config.udp_listen)?;
        let udp_local = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..count {
            sockets.push(sys::bind_reuseport(udp_local)?);
        }
        // All or none: a socket with GRO on needs the 64 KiB receive slots.
        let mut udp_gro = offloads.is_some();
        for s in &sockets {
            udp_gro = udp_gro && sys::set_gro(s, true);
        }
        if !udp_gro {
            for s in &sockets {
                sys::set_gro(s, false);
            }
        }

        let shards: Arc<[Arc<ShardShared>]> =
            (0..count).map(|_| ShardShared::new().map(Arc::new)).collect::<io::Result<Vec<_>>>()?.into();
        let owners: Arc<[AtomicU16]> = (0..pool.len()).map(|_| AtomicU16::new(0)).collect();
        let control_bell = Arc::new(Doorbell::new()?);
        let stop = Arc::new(AtomicBool::new(false));
        let fault_shard = std::env::var(FAULT_ENV).ok().and_then(|v| v.parse::<u16>().ok());
        let cores = if config.pin_cores { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };

        let mut dataplane = Dataplane {
            shards,
            threads: Vec::with_capacity(count),
            owners,
            control_bell,
            stop,
            epoch: Instant::now(),
            info: DataplaneInfo {
                tun_name: config.tun_name.clone(),
                steering: steering.as_ref().map(|_| ()).map_err(Clone::clone),
                udp_local,
                shards: Vec::with_capacity(count),
            },
        };

        let (started_tx, started_rx) = mpsc::channel();
        let sizes = BufferSizes::for_config(&config, offloads, udp_gro);
        for (index, (udp, tun)) in (0..shard_count).zip(sockets.into_iter().zip(tun_queues)) {
            let ctx = ShardContext {
                index,
                all: dataplane.shards.clone(),
                owners: dataplane.owners.clone(),
                pool,
                control_bell: dataplane.control_bell.clone(),
                stop: dataplane.stop.clone(),
                udp,
                tun,
                core: (!cores.is_empty()).then(|| cores.get(usize::from(index) % cores.len()).copied()).flatten(),
                ring_entries: config.ring_entries,
                udp_buffers: sizes.udp_buffers,
                tun_buffers: sizes.tun_buffers,
                udp_payload: sizes.udp_payload,
                tun_read: sizes.tun_read,
                transmits: sizes.transmits,
                vnet: offloads,
                udp_gro,
                steering: steering.as_ref().ok().cloned(),
                io: config.io,
                batch_wait: config.batch_wait,
                epoch: dataplane.epoch,
                panic_on_authorize: fault_shard == Some(index),
            };
            let started = started_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("corridor-shard{index}"))
                .spawn(move || shard::run(ctx, &started))?;
            dataplane.threads.push(thread);
        }
        drop(started_tx);

        let mut infos: Vec<Option<ShardInfo>> = vec![None; count];
        for _ in 0..count {
            let (index, result) = started_rx.recv().map_err(|_| io::Error::other("a shard thread died starting"))?;
            // On error `dataplane` is dropped here, which stops and joins the others.
            let info = result?;
            if let Some(slot) = infos.get_mut(usize::from(index)) {
                *slot = Some(info);
            }
        }
        dataplane.info.shards = infos.into_iter().flatten().collect();
        Ok(dataplane)
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn info(&self) -> &DataplaneInfo {
        &self.info
    }

    /// The UDP address the shards listen on (useful with port 0).
    pub fn udp_local_addr(&self) -> SocketAddr {
        self.info.udp_local
    }

    /// Queues `msg` for `shard` and wakes it. Gives the message back if the
    /// shard does not exist or its queue is full; never blocks.
    pub fn send(&self, shard: ShardId, msg: ToShard) -> Result<(), ToShard> {
        let Some(s) = self.shards.get(usize::from(shard.0)) else { return Err(msg) };
        s.inbox.push(msg)?;
        s.doorbell.ring();
        Ok(())
    }

    /// Appends every queued shard event to `out`; never blocks.
    pub fn drain_events(&self, out: &mut Vec<FromShard>) {
        for s in self.shards.iter() {
            while let Some(e) = s.events.pop() {
                out.push(e);
            }
        }
    }

    /// Readable when a shard queued events since the last [`ack_events`](Self::ack_events).
    /// Register it with mio via `SourceFd` (edge- or level-triggered both work).
    pub fn event_fd(&self) -> RawFd {
        self.control_bell.raw_fd()
    }

    /// Resets [`event_fd`](Self::event_fd). Call it when the fd is readable,
    /// before or after [`drain_events`](Self::drain_events): if events are
    /// still queued after the reset, the fd is made readable again, so no
    /// event is left without a wake-up whichever order is used.
    pub fn ack_events(&self) {
        self.control_bell.acknowledge(|| self.shards.iter().any(|s| !s.events.is_empty()));
    }

    /// The shard that holds `session`'s grant, if any.
    pub fn owner_of(&self, session: SessionId) -> Option<ShardId> {
        let tag = self.owners.get(session.0 as usize)?.load(Ordering::Acquire);
        tag.checked_sub(1).map(ShardId)
    }

    /// Each shard's health, in shard order.
    pub fn health(&self) -> Vec<ShardHealth> {
        let now = self.epoch.elapsed();
        (0u16..)
            .zip(self.shards.iter())
            .map(|(i, s)| ShardHealth {
                shard: ShardId(i),
                up: s.up.load(Ordering::Acquire),
                since_last_turn: now.saturating_sub(Duration::from_nanos(s.last_turn_ns.load(Ordering::Relaxed))),
            })
            .collect()
    }

    /// The first shard whose thread ended while the data plane was not
    /// stopping: its sessions are dark. Cheap: control asks whenever the
    /// event fd wakes it (a dying shard rings it) and on its tick.
    pub fn dead_shard(&self) -> Option<ShardId> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        (0u16..).zip(self.shards.iter()).find(|(_, s)| !s.up.load(Ordering::Acquire)).map(|(i, _)| ShardId(i))
    }

    /// Each shard's loop-turn latency histogram, in shard order.
    pub fn latency(&self) -> Vec<crate::latency::TurnLatency> {
        self.shards.iter().map(|s| s.latency.snapshot()).collect()
    }

    /// Each shard's DTLS handshake durations, in shard order.
    pub fn handshake_latency(&self) -> Vec<crate::latency::HandshakeLatency> {
        self.shards.iter().map(|s| s.handshake_latency.snapshot()).collect()
    }

    /// The latest published counters of each shard, in shard order.
    pub fn counters(&self) -> Vec<ShardCounters> {
        self.shards.iter().map(|s| s.counters.snapshot()).collect()
    }

    /// Stops the shards (in-flight operations are cancelled) and joins them.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for s in self.shards.iter() {
            s.doorbell.ring();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Loads the steering program for `pool` and attaches it to the TUN, so
/// that the kernel picks the owner shard's queue for each packet.
fn steer(pool: &PoolIndex, queues: &[std::os::fd::OwnedFd]) -> Result<Arc<TunSteering>, String> {
    let len = u32::try_from(pool.len()).map_err(|_| "pool too large".to_owned())?;
    let steering = TunSteering::load(pool.base(), len).map_err(|e| format!("bpf() refused: {e}"))?;
    let first = queues.first().ok_or_else(|| "no TUN queue".to_owned())?;
    steering.attach(std::os::fd::AsFd::as_fd(first)).map_err(|e| format!("TUNSETSTEERINGEBPF refused: {e}"))?;
    Ok(Arc::new(steering))
}

/// Opens one TUN queue per shard. With `offloads`, asks for a vnet header
/// and the checksum/TSO/USO offloads; a kernel refusing the vnet header
/// gets plain queues (reported as `None`).
fn open_tun_queues(
    name: &str,
    count: usize,
    offloads: bool,
) -> io::Result<(Vec<std::os::fd::OwnedFd>, Option<TunOffloads>)> {
    let first = if offloads { sys::open_tun_queue(name, true).ok() } else { None };
    let Some(first) = first else {
        let queues = (0..count).map(|_| sys::open_tun_queue(name, false)).collect::<io::Result<Vec<_>>>()?;
        return Ok((queues, None));
    };
    let accepted = sys::set_offloads(&first);
    let mut queues = vec![first];
    for _ in 1..count {
        queues.push(sys::open_tun_queue(name, true)?);
    }
    Ok((queues, Some(accepted)))
}

/// Buffer sizes derived from the configuration.
struct BufferSizes {
    udp_buffers: u16,
    tun_buffers: u16,
    udp_payload: usize,
    tun_read: usize,
    transmits: u32,
}

impl BufferSizes {
    fn for_config(config: &DataplaneConfig, offloads: Option<TunOffloads>, udp_gro: bool) -> Self {
        let buffers = (config.ring_entries * 2).next_power_of_two().clamp(64, MAX_BUFFERS);
        let mtu = usize::from(config.tun_mtu);
        // A full-MTU DATA record: header, nonce, type byte, packet, tag.
        let record = PACKET_AT + mtu + TAILROOM;
        let (tun_buffers, tun_read) = match offloads {
            Some(o) if o.tso || o.uso => (buffers.min(MAX_SUPER_BUFFERS), SUPER_READ),
            Some(_) => (buffers, proto::offload::VNET_HDR_LEN + mtu),
            None => (buffers, mtu),
        };
        // A GRO receive holds up to 64 KiB of datagrams.
        let (udp_buffers, udp_payload) =
            if udp_gro { (buffers.min(MAX_SUPER_BUFFERS), 65_535) } else { (buffers, record.max(MIN_UDP_PAYLOAD)) };
        // Every record of every held receive may become a transmit (a TUN
        // write or a DPD reply) before the turn ends: a GRO receive holds up
        // to 64 datagrams. A TUN read becomes at most one send (offloads
        // batch its segments); each batch buffer is one more.
        let per_udp_slot = if udp_gro { 64 } else { 4 };
        let transmits = udp_buffers * per_udp_slot + tun_buffers * 2 + BATCH_TRANSMITS;
        Self {
            udp_buffers: u16::try_from(udp_buffers).unwrap_or(4096),
            tun_buffers: u16::try_from(tun_buffers).unwrap_or(256),
            udp_payload,
            tun_read,
            transmits,
        }
    }
}

// Control keeps the handle in its own thread and may share it.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Dataplane>();
};
