//! UDP for the core: the devices' DTLS socket, read [`udp::BATCH`] at a
//! time and forwarded in runs, and one port per flow, read a GRO batch at
//! a time. The core says where a receive goes, once per receive; the bytes
//! stay in the driver's buffers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::UdpSocket;
use mio::Interest;

use super::{size_buffers, udp, FlowPort, Owner, Relay, FLOW_SOCKET_BUFFER};
use crate::core::{is_client_hello, DeviceDatagrams, FlowDatagrams, FlowId, Toward};

impl Relay {
    /// Devices' datagrams, [`udp::BATCH`] per receive; a device's run of
    /// same-sized datagrams is handled (and forwarded) as one GSO buffer.
    /// A ClientHello always goes alone: it may start a new flow.
    pub(super) fn on_dtls(&mut self, now: Instant) {
        loop {
            let Some(sock) = self.dtls.as_ref() else { return };
            let n = match self.batch.recv(sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            for i in 0..n {
                let Some((d, from)) = self.batch.get(i) else { break };
                let Some(from) = from else {
                    self.core.record_truncated();
                    continue;
                };
                let alone = is_client_hello(d);
                if !alone && self.runs.push(from, d) {
                    continue;
                }
                self.flush_run(now);
                let Some((d, _)) = self.batch.get(i) else { break };
                if alone || !self.runs.push(from, d) {
                    let d = d.to_vec();
                    self.on_device_datagrams(udp::Received { len: d.len(), from, segment: None }, &d, now);
                }
            }
            // Until the socket would block: mio reports edges only.
            self.flush_run(now);
        }
    }

    fn flush_run(&mut self, now: Instant) {
        let mut out = std::mem::take(&mut self.run_out);
        if let Some(r) = self.runs.take(&mut out) {
            self.on_device_datagrams(r, out.get(..r.len).unwrap_or_default(), now);
        }
        self.run_out = out;
    }

    /// Datagrams from one device: one, or a run of `r.segment` bytes each,
    /// forwarded the same way (one GSO send) where the core says.
    fn on_device_datagrams(&mut self, r: udp::Received, d: &[u8], now: Instant) {
        match self.core.handle_device_datagrams(r.from, d, r.segment, now) {
            DeviceDatagrams::Forward { flow, to } => {
                match self.flow_ports.get(&flow).map(|p| udp::send(&p.socket, d, r.segment, to)) {
                    Some(Ok(n)) => self.core.record_forwarded(Toward::Gateway, n, d.len()),
                    _ => self.core.record_send_failed(r.datagrams()),
                }
            }
            DeviceDatagrams::Taken => self.carry_out(now),
        }
    }

    /// What arrived on a flow's port: a gateway's GSO batch arrives whole
    /// (GRO) and leaves whole (GSO), one receive and one send per batch.
    pub(super) fn on_flow_port(&mut self, flow: FlowId, now: Instant) {
        loop {
            let Some(p) = self.flow_ports.get(&flow) else { return };
            let r = match udp::recv(&p.socket, &mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let d = self.buf.get(..r.len).unwrap_or_default();
            match self.core.handle_flow_datagrams(flow, r.from, d, r.segment, now) {
                FlowDatagrams::Forward { to } => match self.dtls.as_ref().map(|s| udp::send(s, d, r.segment, to)) {
                    Some(Ok(n)) => self.core.record_forwarded(Toward::Device, n, r.len),
                    _ => self.core.record_send_failed(r.datagrams()),
                },
                FlowDatagrams::Taken => self.carry_out(now),
            }
        }
    }

    /// Opens a flow's port on `ip` with GRO and large buffers, and tells the
    /// core its number.
    pub(super) fn open_flow_port(&mut self, flow: FlowId, ip: IpAddr, now: Instant) {
        let port = match UdpSocket::bind(SocketAddr::new(ip, 0)) {
            Ok(mut socket) => {
                size_buffers(&socket, FLOW_SOCKET_BUFFER);
                udp::enable_gro(&socket);
                let token = self.token();
                let port = socket.local_addr().map(|a| a.port()).ok();
                match (port, self.poll.registry().register(&mut socket, token, Interest::READABLE)) {
                    (Some(port), Ok(())) => {
                        self.owners.insert(token, Owner::Flow(flow));
                        self.flow_ports.insert(flow, FlowPort { token, socket });
                        Some(port)
                    }
                    _ => None,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not open a relay UDP port for a flow");
                None
            }
        };
        self.core.handle_flow_port(flow, port, now);
    }

    /// Sends what a flow held before its bind (or any datagram the core built).
    pub(super) fn send_from_flow(&mut self, flow: FlowId, to: SocketAddr, bytes: &[u8], segment: Option<usize>) {
        let datagrams = crate::core::datagrams_in(bytes.len(), segment);
        match self.flow_ports.get(&flow).map(|p| udp::send(&p.socket, bytes, segment, to)) {
            Some(Ok(n)) => self.core.record_forwarded(Toward::Gateway, n, bytes.len()),
            _ => self.core.record_send_failed(datagrams),
        }
    }

    pub(super) fn close_flow_port(&mut self, flow: FlowId) {
        let Some(mut p) = self.flow_ports.remove(&flow) else { return };
        let _ = self.poll.registry().deregister(&mut p.socket);
        self.owners.remove(&p.token);
    }
}
