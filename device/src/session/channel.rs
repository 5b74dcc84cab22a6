//! The DTLS channel of a [`DeviceSession`]: the PSK-NEGOTIATE handshake
//! (§5.3), its records, and falling back to CSTP when it goes down.

use std::sync::Arc;
use std::time::Instant;

use proto::cstp::{self, PacketType};
use zeroize::Zeroizing;

use super::{DeviceSession, Dtls, Event, Phase, PSK_IDENTITY, PSK_LABEL};
use crate::error::{Channel, DeviceError, DisconnectReason};
use crate::liveness::Liveness;

impl DeviceSession {
    /// A fresh PSK-NEGOTIATE handshake (§5.3): the key from the TLS
    /// exporter, identity `psk`, the App-ID as session_id, no EMS offered.
    pub(super) fn start_dtls(&mut self, now: Instant) {
        let Some((app_id, base_mtu)) = self
            .tunnel
            .as_ref()
            .and_then(|t| Some((t.dtls.as_ref()?.app_id.clone(), t.base_mtu.unwrap_or(self.config.base_mtu))))
        else {
            self.dtls = Dtls::Off;
            return;
        };
        let psk = match self.tls.export_keying_material(Zeroizing::new([0u8; 32]), PSK_LABEL, None) {
            Ok(k) => k,
            Err(e) => return self.fail(DeviceError::Exporter(e)),
        };
        let mut c = dtls::ClientConfig::new(PSK_IDENTITY, psk.as_slice());
        c.session_id = app_id;
        c.offer_extended_master_secret = false;
        // IPv4 + UDP headers off the link MTU.
        c.common.max_datagram_size = usize::from(base_mtu).saturating_sub(28).max(dtls::config::MIN_DATAGRAM_SIZE);
        match dtls::Connection::client(Arc::new(c), now) {
            Ok(conn) => {
                self.stats.dtls_handshakes += 1;
                self.dtls = Dtls::Handshaking(Box::new(conn));
            }
            Err(e) => self.fail(DeviceError::DtlsConfig(e)),
        }
    }

    pub(super) fn dtls_down(&mut self, now: Instant) {
        if let Dtls::Handshaking(conn) | Dtls::Up { conn, .. } = &mut self.dtls {
            conn.close();
        }
        self.dtls = Dtls::Retry { at: now + self.config.dtls_retry };
        self.events.push_back(Event::DtlsDown);
    }

    pub(super) fn drain_dtls(&mut self, now: Instant) {
        loop {
            let event = match &mut self.dtls {
                Dtls::Handshaking(conn) | Dtls::Up { conn, .. } => conn.poll_event(),
                Dtls::Off | Dtls::Retry { .. } => None,
            };
            let Some(event) = event else { return };
            match event {
                dtls::Event::Connected(info) => {
                    let (dpd, keepalive) = self
                        .tunnel
                        .as_ref()
                        .and_then(|t| t.dtls.as_ref())
                        .map_or((0, 0), |d| (d.dpd_secs, d.keepalive_secs));
                    if let Dtls::Handshaking(conn) = std::mem::replace(&mut self.dtls, Dtls::Off) {
                        self.dtls = Dtls::Up { conn, liveness: Liveness::new(now, dpd, keepalive) };
                    }
                    self.events.push_back(Event::DtlsUp { suite: info.suite });
                }
                dtls::Event::ApplicationData(record) => self.on_dtls_record(now, &record),
                dtls::Event::Alert { .. } => {}
                dtls::Event::Closed(_) => {
                    if self.phase == Phase::Closed {
                        self.dtls = Dtls::Off;
                        return;
                    }
                    self.dtls_down(now);
                }
            }
        }
    }

    pub(super) fn on_dtls_record(&mut self, now: Instant, record: &[u8]) {
        self.stats.dtls_records_in += 1;
        let Dtls::Up { conn, liveness } = &mut self.dtls else { return };
        liveness.received(now);
        let Some((t, payload)) = cstp::dtls_type(record) else {
            self.stats.dropped_unknown += 1;
            return;
        };
        match t {
            PacketType::DATA => {
                self.stats.dtls_packets_in += 1;
                self.events.push_back(Event::Packet(payload.to_vec()));
            }
            // Echo the whole record, length included (§5, §7.3).
            PacketType::DPD_REQ => {
                let mut reply = record.to_vec();
                if let Some(first) = reply.first_mut() {
                    *first = PacketType::DPD_RESP.0;
                }
                if conn.send(&reply).is_ok() {
                    liveness.sent(now);
                }
            }
            PacketType::DPD_RESP => self.events.push_back(Event::DpdResponse(Channel::Dtls)),
            PacketType::KEEPALIVE => {}
            PacketType::DISCONNECT | PacketType::TERMINATE => {
                let text = String::from_utf8_lossy(payload).into_owned();
                self.close(DisconnectReason::ByGateway(text));
            }
            _ => self.stats.dropped_unknown += 1,
        }
    }
}
