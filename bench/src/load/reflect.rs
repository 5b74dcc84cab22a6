//! `corridor bench reflect`: the far end of the generated traffic, run in
//! the org namespace (see [`packet`](super::packet) for the payloads).
//! Probes are echoed to where they came from; bulk datagrams are counted,
//! per run; a query is answered with that run's count; a send request
//! (`bulk-down`) starts a sender thread that pours bulk datagrams of that
//! run at the device that asked, paced, in UDP GSO sends.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::packet::{SendRequest, BULK_HEADER, BULK_MAGIC, IP_UDP_HEADERS, QUERY_MAGIC, REPLY_MAGIC};
use super::sockets::{send_segments, socket_buffers, GSO_MAX_BYTES, GSO_MAX_SEGMENTS};

/// What arrived of one bulk run.
#[derive(Debug, Clone, Copy)]
struct Tally {
    run: u32,
    packets: u64,
    /// IP bytes (payload plus the IPv4 and UDP headers it came with).
    ip_bytes: u64,
    first: Instant,
    last: Instant,
    /// Datagrams whose sequence number was below one already seen.
    reordered: u64,
    highest_seq: u64,
    cpu_at_first: f64,
}

/// Echoes and counts on `listen` until an I/O error; prints `reflecting on
/// ADDR` once bound so scripts can wait for it.
pub fn reflect(listen: SocketAddr) -> std::io::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    super::sockets::socket_buffers(&socket, 8 << 20);
    println!("reflecting on {}", socket.local_addr()?);
    let mut buf = vec![0u8; 65_536];
    let mut tally: Option<Tally> = None;
    // Per run: each asking device's sender and what it has sent so far.
    let mut senders: HashMap<u32, HashMap<SocketAddr, Arc<AtomicU64>>> = HashMap::new();
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let payload = buf.get(..n).unwrap_or_default();
        if let Some(rest) = payload.strip_prefix(BULK_MAGIC.as_slice()) {
            count(&mut tally, rest, n);
        } else if let Some(request) = SendRequest::parse(payload) {
            // Senders of earlier runs are done or finishing: forget them.
            senders.retain(|run, _| *run == request.run);
            let of_run = senders.entry(request.run).or_default();
            // A device repeats its request until data comes: start once.
            if let std::collections::hash_map::Entry::Vacant(slot) = of_run.entry(from) {
                let sent = Arc::new(AtomicU64::new(0));
                let local = SocketAddr::new(listen.ip(), 0);
                let counter = sent.clone();
                let spawned = std::thread::Builder::new()
                    .name("reflect-send".into())
                    .spawn(move || send_down(local, from, request, &counter));
                if spawned.is_ok() {
                    slot.insert(sent);
                }
            }
        } else if let Some(rest) = payload.strip_prefix(QUERY_MAGIC.as_slice()) {
            let run = rest.get(..4).and_then(|r| r.try_into().ok()).map_or(0, u32::from_be_bytes);
            let sent_down: u64 = senders.get(&run).map_or(0, |m| m.values().map(|c| c.load(Ordering::Relaxed)).sum());
            let reply = answer(tally.filter(|t| t.run == run), run, sent_down);
            // A lost answer is asked again; a send error must not stop the reflector.
            let _ = socket.send_to(&reply, from);
        } else {
            let _ = socket.send_to(payload, from);
        }
    }
}

fn count(tally: &mut Option<Tally>, rest: &[u8], payload_len: usize) {
    if payload_len < BULK_HEADER {
        return;
    }
    let run = rest.get(..4).and_then(|r| r.try_into().ok()).map_or(0, u32::from_be_bytes);
    let seq = rest.get(4..12).and_then(|r| r.try_into().ok()).map_or(0, u64::from_be_bytes);
    let now = Instant::now();
    let t = match tally {
        Some(t) if t.run == run => t,
        // A new run starts from zero; the reflector serves one run at a time.
        _ => tally.insert(Tally {
            run,
            packets: 0,
            ip_bytes: 0,
            first: now,
            last: now,
            reordered: 0,
            highest_seq: 0,
            cpu_at_first: super::report::cpu_seconds(),
        }),
    };
    t.packets += 1;
    t.ip_bytes += (payload_len + IP_UDP_HEADERS) as u64;
    t.last = now;
    if seq < t.highest_seq {
        t.reordered += 1;
    }
    t.highest_seq = t.highest_seq.max(seq);
}

/// One `bulk-down` sender: datagrams of `request.ip_len` bytes (IP
/// headers included) to `to` for `request.millis`, at `request.rate` per
/// second (0: as fast as the socket takes them), in GSO sends of up to 64;
/// `sent` counts what the kernel took.
fn send_down(local: SocketAddr, to: SocketAddr, request: SendRequest, sent: &AtomicU64) {
    let Ok(socket) = UdpSocket::bind(local) else { return };
    if socket.connect(to).is_err() {
        return;
    }
    socket_buffers(&socket, 8 << 20);
    let payload_len = (request.ip_len as usize).saturating_sub(IP_UDP_HEADERS).max(BULK_HEADER);
    let burst_max = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / payload_len).max(1);
    let mut burst = Vec::with_capacity(burst_max * payload_len);
    let mut payload = Vec::with_capacity(payload_len);
    let epoch = Instant::now();
    let end = epoch + Duration::from_millis(u64::from(request.millis));
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        let mut n = burst_max;
        if request.rate > 0 {
            let due = (now.duration_since(epoch).as_secs_f64() * request.rate as f64) as u64;
            n = n.min(usize::try_from(due.saturating_sub(seq)).unwrap_or(usize::MAX));
            if n == 0 {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
        }
        burst.clear();
        for i in 0..n as u64 {
            super::packet::bulk(request.run, seq + i, request.ip_len as usize, &mut payload);
            burst.extend_from_slice(&payload);
        }
        match send_segments(&socket, &burst, payload_len) {
            Ok(_) => {
                seq += n as u64;
                sent.store(seq, Ordering::Relaxed);
            }
            // A full queue (ENOBUFS) or the device gone: give it a moment.
            Err(_) => std::thread::sleep(Duration::from_micros(100)),
        }
    }
}

fn answer(tally: Option<Tally>, run: u32, sent_down: u64) -> Vec<u8> {
    let json = match tally {
        Some(t) => serde_json::json!({
            "run": run,
            "packets": t.packets,
            "ip_bytes": t.ip_bytes,
            "span_s": t.last.duration_since(t.first).as_secs_f64(),
            "reordered": t.reordered,
            "reflector_cpu_s": super::report::cpu_seconds() - t.cpu_at_first,
            "sent_down": sent_down,
        }),
        None => serde_json::json!({ "run": run, "packets": 0, "ip_bytes": 0, "span_s": 0.0, "sent_down": sent_down }),
    };
    let mut reply = REPLY_MAGIC.to_vec();
    reply.extend_from_slice(json.to_string().as_bytes());
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::packet;

    #[test]
    fn a_tally_counts_one_run_and_restarts_on_the_next() {
        let mut tally = None;
        let mut payload = Vec::new();
        for seq in [0u64, 1, 3, 2] {
            packet::bulk(5, seq, 512, &mut payload);
            count(&mut tally, payload.get(4..).unwrap_or_default(), payload.len());
        }
        let t = tally.expect("counting");
        assert_eq!((t.run, t.packets, t.ip_bytes, t.reordered), (5, 4, 4 * 512, 1));
        packet::bulk(6, 0, 64, &mut payload);
        count(&mut tally, payload.get(4..).unwrap_or_default(), payload.len());
        let t = tally.expect("counting");
        assert_eq!((t.run, t.packets, t.ip_bytes), (6, 1, 64));
    }

    #[test]
    fn a_query_for_another_run_is_answered_with_nothing() {
        let reply = answer(None, 9, 0);
        let json: serde_json::Value = serde_json::from_slice(reply.get(4..).unwrap_or_default()).expect("JSON");
        assert_eq!(json.get("packets").and_then(serde_json::Value::as_u64), Some(0));
        assert_eq!(json.get("run").and_then(serde_json::Value::as_u64), Some(9));
    }
}
