//! Pausing a tunnel without logging out (`corridor connect` on the
//! trusted network) and resuming it with the cookie.

use std::time::Instant;

use proto::cstp::{self, PacketType};

use super::{DeviceSession, Event, Phase};
use crate::error::DisconnectReason;
use crate::reconnect::Backoff;

impl DeviceSession {
    /// Ends the tunnel for now without logging out: tells the gateway with
    /// a pause DISCONNECT carrying `reason` (a reason code such as
    /// `trusted_network`; the gateway keeps the session for its cookie
    /// grace), then detaches with no reconnect scheduled until
    /// [`resume`](Self::resume). Only while the tunnel is up; `false`
    /// otherwise. The caller drops the TCP connection after writing
    /// [`poll_tls`](Self::poll_tls).
    pub fn pause(&mut self, now: Instant, reason: &str) -> bool {
        if self.phase != Phase::Tunnel || self.cookie.is_none() {
            return false;
        }
        let mut payload = vec![cstp::DISCONNECT_PAUSE];
        payload.extend_from_slice(reason.as_bytes());
        self.write_frame(now, PacketType::DISCONNECT, &payload);
        self.paused = true;
        self.reconnect = Some(Backoff::new(now, self.config.reconnect_timeout, self.config.reconnect_interval));
        self.detach();
        self.events.push_back(Event::Disconnected(DisconnectReason::Paused(reason.to_owned())));
        true
    }

    /// Whether the session is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Brings a paused session back: a reconnect with the cookie is due at
    /// once ([`reconnect_at`](Self::reconnect_at)), with the usual schedule
    /// and timeout from `now`.
    pub fn resume(&mut self, now: Instant) {
        if self.paused {
            self.paused = false;
            self.reconnect = Some(Backoff::new(now, self.config.reconnect_timeout, self.config.reconnect_interval));
        }
    }
}
