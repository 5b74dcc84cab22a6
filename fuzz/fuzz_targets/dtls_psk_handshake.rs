//! The DTLS PSK handshake as a shard runs it (`dataplane::handshake::
//! Handshakes::on_datagram`, one App-ID authorised), with a real device
//! (`dtls::Connection::client`) beside the fuzzer so the cookie exchange
//! and the key schedule are passed. Ops, one byte each:
//! - `0`: the device's queued datagrams go to the shard, the answers back;
//! - `1`: `len(2) ‖ bytes` from one of four peers (bits 2–3; peer 0 is the
//!   device's address);
//! - `2`: `at(2) ‖ xor(1)`: the device's next datagram, changed at one byte;
//! - `3`: time moves on by (op >> 2) × 50 ms and both sides' timers run.
//!
//! A session is granted only to the device's address, for the authorised
//! session, with its address and MTU, and with keys a shard can install;
//! the handshakes in progress stay within the shard's bound.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::fastpath::DeviceSession;
use dataplane::handshake::{Authorization, Established, Handshakes, MAX_PENDING};
use dtls::{ClientConfig, Connection, Psk};
use proto::grant::{Policy, SessionId};

const APP_ID: [u8; 32] = [0xc0; 32];
const PSK: [u8; 32] = [1; 32];
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

fn peer(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1 + (i & 3)], 40_000))
}

struct Run {
    shard: Handshakes,
    device: Connection,
    now: Instant,
    granted: usize,
}

impl Run {
    /// One datagram from `from` into the shard; the answers to the device
    /// go to it, a grant is checked and its final flight delivered.
    fn deliver(&mut self, from: SocketAddr, datagram: &[u8]) {
        let mut answers = Vec::new();
        let done = self.shard.on_datagram(self.now, from, datagram, &mut |d| answers.push(d.to_vec()));
        if from == peer(0) {
            for a in &answers {
                self.device.handle_datagram(self.now, a);
            }
        }
        if let Some(e) = done {
            self.granted(from, e);
        }
        assert!(self.shard.pending() <= MAX_PENDING);
    }

    fn granted(&mut self, from: SocketAddr, e: Established) {
        let g = &e.grant;
        assert_eq!((g.peer, g.session, g.address, g.mtu), (from, SessionId(7), ADDRESS, 1400));
        assert_eq!(from, peer(0), "only the device knows the key");
        self.granted += 1;
        DeviceSession::new(e.grant, self.now).expect("a shard installs the grant");
        for d in &e.final_flight {
            self.device.handle_datagram(self.now, d);
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let Ok(mut shard) = Handshakes::new(now) else { return };
    shard.authorize(Authorization {
        session: SessionId(7),
        app_id: APP_ID.to_vec(),
        psk: Psk::new(PSK.to_vec()),
        address: ADDRESS,
        policy: Policy::default(),
        mtu: 1400,
    });
    let mut cfg = ClientConfig::new(b"psk", &PSK);
    cfg.session_id = APP_ID.to_vec();
    let Ok(device) = Connection::client(Arc::new(cfg), now) else { return };
    let mut run = Run { shard, device, now, granted: 0 };
    let mut buf = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op & 3 {
            0 => {
                let mut queued = Vec::new();
                while run.device.poll_transmit(&mut buf) {
                    queued.push(std::mem::take(&mut buf));
                }
                for d in queued {
                    run.deliver(peer(0), &d);
                }
            }
            1 => {
                let Some((len, tail)) = rest.split_first_chunk::<2>() else { break };
                let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
                let (d, tail) = tail.split_at(len);
                rest = tail;
                run.deliver(peer(op >> 2), d);
            }
            2 => {
                let Some((&[hi, lo, xor], tail)) = rest.split_first_chunk::<3>() else { break };
                rest = tail;
                if run.device.poll_transmit(&mut buf) {
                    let mut d = std::mem::take(&mut buf);
                    if !d.is_empty() {
                        let at = usize::from(u16::from_be_bytes([hi, lo])) % d.len();
                        d[at] ^= xor;
                    }
                    run.deliver(peer(0), &d);
                }
            }
            _ => {
                run.now += Duration::from_millis(50 * u64::from(op >> 2));
                let now = run.now;
                run.device.handle_timeout(now);
                let mut answers = Vec::new();
                run.shard.on_timeout(now, &mut |to, d| answers.push((to, d.to_vec())));
                for (to, d) in answers {
                    if to == peer(0) {
                        run.device.handle_datagram(now, &d);
                    }
                }
            }
        }
        while run.device.poll_event().is_some() {}
    }
});
