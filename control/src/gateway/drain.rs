//! Drain: the gateway stops taking devices and hands the ones it has to
//! the other gateways of its name. `corridor ctl drain` drains and keeps
//! running (so an operator can watch its sessions move, then stop it);
//! SIGTERM drains before stopping when the gateway has relays or a cluster
//! (its devices have somewhere to go), and ends sessions with DISCONNECT
//! otherwise (a lone gateway's devices should stop, not retry).
//!
//! Draining tells every relay link ([`RelayLinks::drain`]): the relay sends
//! this gateway no new device, and a device it had goes to another gateway
//! of the name on its next connection. Then every session ends *without*
//! DISCONNECT ([`Core::drain`]): openconnect reconnects with its cookie,
//! the relay routes it to a peer, and the peer adopts the session from the
//! cluster cookie with the same address. Cookies are not revoked.
//!
//! [`RelayLinks::drain`]: crate::relay_link::RelayLinks::drain
//! [`Core::drain`]: crate::core::Core::drain

use std::time::Instant;

use super::Gateway;

impl Gateway {
    /// Drains (see the module docs); the sessions it ended.
    pub fn drain(&mut self, now: Instant) -> usize {
        self.relays.drain();
        let ended = self.core.drain();
        tracing::warn!(
            sessions = ended,
            "draining: no new logins; sessions closed without DISCONNECT to reconnect elsewhere"
        );
        self.carry_out(now);
        ended
    }

    /// Whether stopping drains first: there is somewhere for devices to go.
    pub(super) fn drains_on_stop(&self) -> bool {
        let c = self.core.config();
        !c.relays.is_empty() || c.cluster.is_some()
    }
}
