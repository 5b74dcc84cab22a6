//! The readiness engine's receives: datagrams by `recvmmsg` and TUN
//! packets by `read`, into free slots, each bounded per turn so that one
//! busy fd cannot starve the others.

use std::io;

use super::{is_interrupted, is_would_block, ReadinessEngine, TUN_TURN_LIMIT, UDP_TURN_LIMIT};
use crate::io::Completion;
use crate::sys::{read_fd, MMSG_BATCH};

impl ReadinessEngine {
    /// `recvmmsg` into free UDP slots, a batch at a time, while full batches
    /// come back, slots remain and the turn's bound is not reached.
    pub(super) fn receive_udp(&mut self, out: &mut Vec<Completion>) {
        let mut taken = 0usize;
        while taken < UDP_TURN_LIMIT {
            let want = MMSG_BATCH.min(UDP_TURN_LIMIT - taken).min(self.udp.free_count());
            if want == 0 {
                return;
            }
            self.rx_bids.clear();
            while self.rx_bids.len() < want {
                let Some(bid) = self.udp.take_free() else { break };
                self.rx_bids.push(bid);
            }
            let (slot_len, fill) = (self.udp.slot_len, self.udp.fill.clone());
            let regions = self.rx_bids.iter().map(|&bid| {
                let base = usize::from(bid) * slot_len;
                base + fill.start..base + fill.end
            });
            let received = match self.rx.recv(self.udp_fd, &mut self.udp.memory, regions) {
                Ok(n) => n,
                Err(e) if is_interrupted(&e) => {
                    self.give_back_from(0);
                    continue;
                }
                Err(e) => {
                    self.give_back_from(0);
                    if !is_would_block(&e) {
                        out.push(Completion::ReceiveFailed);
                    }
                    return;
                }
            };
            for (i, &bid) in self.rx_bids.iter().enumerate().take(received) {
                match self.rx.received(i) {
                    Some(msg) => {
                        self.udp.hand_out(bid);
                        let len = msg.len.min(fill.end - fill.start);
                        out.push(Completion::Datagram {
                            bid,
                            peer: msg.peer,
                            payload: fill.start..fill.start + len,
                            truncated: msg.truncated,
                            segment: msg.gro_segment,
                        });
                    }
                    None => self.udp.give_back(bid),
                }
            }
            self.give_back_from(received);
            taken += received;
            if received < want {
                // The socket is drained; another call would only say EAGAIN.
                return;
            }
        }
    }

    /// Returns the slots of `rx_bids[from..]`, which received nothing, in
    /// the order that restores the free list's top.
    fn give_back_from(&mut self, from: usize) {
        for &bid in self.rx_bids.iter().skip(from).rev() {
            self.udp.give_back(bid);
        }
    }

    /// Reads TUN packets into free TUN slots until the queue is empty, the
    /// slots run out or the turn's bound is reached.
    pub(super) fn read_tun(&mut self, out: &mut Vec<Completion>) {
        let mut reads = 0usize;
        while reads < TUN_TURN_LIMIT {
            let Some(bid) = self.tun.take_free() else { return };
            let result = match self.tun.fill_mut(bid) {
                Some(buf) => read_fd(self.tun_fd, buf),
                None => Err(io::Error::from_raw_os_error(libc::EFAULT)),
            };
            match result {
                Ok(len) if len > 0 => {
                    self.tun.hand_out(bid);
                    out.push(Completion::TunPacket { bid, len });
                    reads += 1;
                }
                Ok(_) => {
                    self.tun.give_back(bid);
                    return;
                }
                Err(e) if is_interrupted(&e) => self.tun.give_back(bid),
                Err(e) => {
                    self.tun.give_back(bid);
                    if !is_would_block(&e) {
                        out.push(Completion::ReceiveFailed);
                    }
                    return;
                }
            }
        }
    }
}
