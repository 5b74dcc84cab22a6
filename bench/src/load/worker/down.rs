//! `bulk-down`: the reflector sends, the devices count. Each device asks
//! the reflector (a [`SendRequest`]) for bulk datagrams at its share of the
//! rate; the request is repeated until the first datagram arrives (it may
//! be lost like any datagram), and the reflector starts one sender per
//! device and run however often it is asked.

use std::time::{Duration, Instant};

use super::super::packet::{self, SendRequest};
use super::{Worker, SOURCE_PORT};
use crate::load::fleet::Happening;
use crate::load::{PacketSize, Params};

/// How often a device that has heard nothing repeats its request.
const ASK_AGAIN: Duration = Duration::from_millis(250);
/// How long after the senders stop the devices keep counting.
const DRAIN: Duration = Duration::from_millis(500);

impl Worker<'_> {
    pub(super) fn bulk_down(&mut self, params: &Params, rate: u64, run_id: u32) -> Result<(), String> {
        let live = self.live();
        if live.is_empty() {
            return Ok(());
        }
        let PacketSize::Fixed(size) = params.size else {
            return Err("bulk-down sends one packet size: give --size a number, not imix".into());
        };
        for &(device, _) in &live {
            let mtu = usize::from(self.fleet.mtu(device));
            if size > mtu {
                return Err(format!("--size: a {size}-byte packet does not fit the tunnel MTU of {mtu}"));
            }
        }
        let reflector = *params.reflector.ip();
        let port = params.reflector.port();
        let millis = u32::try_from(params.seconds.saturating_mul(1000)).unwrap_or(u32::MAX);
        let ip_len = u32::try_from(size).unwrap_or(u32::MAX);
        let share = |i: usize| {
            let n = live.len() as u64;
            rate / n + u64::from((i as u64) < rate % n)
        };
        let mut heard = vec![false; live.len()];
        let mut packet = Vec::with_capacity(64);
        let start = Instant::now();
        let end = start + Duration::from_secs(params.seconds) + DRAIN;
        let mut next_ask = start;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if now >= next_ask && now < end - DRAIN {
                for (i, &(device, src)) in live.iter().enumerate() {
                    if heard.get(i).copied().unwrap_or(true) {
                        continue;
                    }
                    let request = SendRequest { run: run_id, rate: share(i), ip_len, millis };
                    packet::ipv4_udp(src, SOURCE_PORT, reflector, port, &request.encode(), &mut packet);
                    self.fleet.send(device, now, &packet);
                }
                next_ask = now + ASK_AGAIN;
            }
            self.turn(end.min(now + Duration::from_millis(10)))?;
            // A turn's packets all carry the time it began, and under a
            // flood one turn may read for long: the last arrival is when
            // the turn that read it ended.
            let turn_end = Instant::now();
            for h in std::mem::take(&mut self.happenings) {
                let Happening::Packet { packet, at, device } = h else { continue };
                let Some((run, bytes)) = packet::parse_bulk(&packet, reflector, SOURCE_PORT) else { continue };
                if run != run_id {
                    continue;
                }
                if let Some(i) = live.iter().position(|&(d, _)| d == device) {
                    if let Some(h) = heard.get_mut(i) {
                        *h = true;
                    }
                }
                self.o.received += 1;
                self.o.received_ip_bytes += bytes as u64;
                let first = self.o.receiving.map_or(at, |(f, _)| f);
                self.o.receiving = Some((first, turn_end));
            }
        }
        if heard.iter().any(|h| !h) {
            return Err(format!(
                "bulk-down: {} of {} devices got nothing from the reflector at {}",
                heard.iter().filter(|h| !**h).count(),
                live.len(),
                params.reflector
            ));
        }
        Ok(())
    }
}
