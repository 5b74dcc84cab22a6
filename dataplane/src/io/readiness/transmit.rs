//! The readiness engine's transmit queue: `send_to` and `write_tun` queue
//! and pin; `wait` flushes, UDP in `sendmmsg` batches, TUN one `write`
//! each, and a full socket or device leaves the rest queued in order.

use std::io;
use std::ops::Range;

use super::slots::SlotPool;
use super::{is_interrupted, is_would_block, ReadinessEngine};
use crate::io::{Completion, SubmitError, TxBuf};
use crate::sys::{write_fd, Outgoing, RawSockAddr, MMSG_BATCH};

/// A queued `send_to`.
#[derive(Debug)]
pub(super) struct UdpTransmit {
    buf: TxBuf,
    range: Range<usize>,
    peer: RawSockAddr,
    segment: Option<u16>,
    datagrams: u16,
}

/// A queued `write_tun`.
#[derive(Debug)]
pub(super) struct TunTransmit {
    buf: TxBuf,
    range: Range<usize>,
}

/// The bytes a queued transmit reads.
fn transmit_bytes<'a>(udp: &'a SlotPool, tun: &'a SlotPool, buf: &'a TxBuf, range: &Range<usize>) -> Option<&'a [u8]> {
    match buf {
        TxBuf::Udp(bid) => udp.bytes(*bid, range),
        TxBuf::Tun(bid) => tun.bytes(*bid, range),
        TxBuf::Owned(v) => v.get(range.clone()),
    }
}

impl ReadinessEngine {
    /// Sends queued datagrams, [`MMSG_BATCH`] per `sendmmsg`, until the
    /// queue is empty or the socket is full (see the module doc).
    pub(super) fn flush_udp(&mut self, out: &mut Vec<Completion>) {
        loop {
            if self.udp_queue.is_empty() {
                self.udp_blocked = false;
                return;
            }
            let Self { tx, udp_queue, udp, tun, udp_fd, .. } = self;
            let messages = udp_queue.iter().take(MMSG_BATCH).map_while(|t| {
                Some(Outgoing { data: transmit_bytes(udp, tun, &t.buf, &t.range)?, peer: &t.peer, segment: t.segment })
            });
            match tx.send(*udp_fd, messages) {
                // The head's bytes are gone, which pinning at submit rules out.
                Ok(0) => self.complete_udp(Err(io::Error::from_raw_os_error(libc::EFAULT)), out),
                Ok(sent) => {
                    for i in 0..sent {
                        let bytes = self.tx.sent_len(i).unwrap_or(0);
                        self.complete_udp(Ok(bytes), out);
                    }
                }
                Err(e) if is_would_block(&e) => {
                    self.udp_blocked = true;
                    return;
                }
                Err(e) if is_interrupted(&e) => {}
                Err(e) => self.complete_udp(Err(e), out),
            }
        }
    }

    /// Ends the UDP queue's head with `result`.
    fn complete_udp(&mut self, result: io::Result<usize>, out: &mut Vec<Completion>) {
        if let Some(t) = self.udp_queue.pop_front() {
            let owned = self.release(t.buf);
            out.push(Completion::Sent { result, datagrams: t.datagrams, owned });
        }
    }

    /// Writes queued TUN packets, one `write` each (a TUN queue has no
    /// batch write), until the queue is empty or the device is full.
    pub(super) fn flush_tun(&mut self, out: &mut Vec<Completion>) {
        while let Some(t) = self.tun_queue.front() {
            let result = match transmit_bytes(&self.udp, &self.tun, &t.buf, &t.range) {
                Some(bytes) => write_fd(self.tun_fd, bytes),
                None => Err(io::Error::from_raw_os_error(libc::EFAULT)),
            };
            match &result {
                Err(e) if is_would_block(e) => {
                    self.tun_blocked = true;
                    return;
                }
                Err(e) if is_interrupted(e) => continue,
                _ => {}
            }
            if let Some(t) = self.tun_queue.pop_front() {
                let owned = self.release(t.buf);
                out.push(Completion::TunWritten { result, owned });
            }
        }
        self.tun_blocked = false;
    }

    /// Ends a transmit's hold on its memory; an owned buffer is handed back.
    fn release(&mut self, buf: TxBuf) -> Option<Vec<u8>> {
        match buf {
            TxBuf::Udp(bid) => self.udp.unpin(bid),
            TxBuf::Tun(bid) => self.tun.unpin(bid),
            TxBuf::Owned(v) => return Some(v),
        }
        None
    }

    fn queued(&self) -> usize {
        self.udp_queue.len() + self.tun_queue.len()
    }

    /// Checks `range` of `buf` and pins a slot buffer until its transmit is done.
    fn pin(&mut self, buf: &TxBuf, range: &Range<usize>) -> Result<(), SubmitError> {
        let ok = match buf {
            TxBuf::Udp(bid) => self.udp.pin(*bid, range),
            TxBuf::Tun(bid) => self.tun.pin(*bid, range),
            TxBuf::Owned(v) => v.get(range.clone()).is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(SubmitError::BadBuffer)
        }
    }

    /// Queues `range` of `buf` for `peer`: one datagram, or with `segment`
    /// (UDP GSO) one datagram per `segment` bytes, the last possibly
    /// shorter. Sent in the next [`wait`](Self::wait).
    pub(crate) fn send_to(
        &mut self,
        buf: TxBuf,
        range: Range<usize>,
        peer: &RawSockAddr,
        segment: Option<u16>,
    ) -> Result<(), SubmitError> {
        self.pin(&buf, &range)?;
        if self.queued() >= self.queue_capacity {
            self.release(buf);
            return Err(SubmitError::OpTableFull);
        }
        let datagrams = crate::io::datagrams(range.end - range.start, segment);
        self.udp_queue.push_back(UdpTransmit { buf, range, peer: *peer, segment, datagrams });
        Ok(())
    }

    /// Queues `range` of `buf` as one packet for the TUN queue; written in
    /// the next [`wait`](Self::wait).
    pub(crate) fn write_tun(&mut self, buf: TxBuf, range: Range<usize>) -> Result<(), SubmitError> {
        self.pin(&buf, &range)?;
        if self.queued() >= self.queue_capacity {
            self.release(buf);
            return Err(SubmitError::OpTableFull);
        }
        self.tun_queue.push_back(TunTransmit { buf, range });
        Ok(())
    }
}
