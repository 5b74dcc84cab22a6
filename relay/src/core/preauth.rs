//! Gateway-port connections not yet authenticated: those that have not
//! said what they are, and links between their Hello and their Welcome.
//! Anyone can open them, so they are capped in total and per source
//! address (`limits.max_unauthenticated`, `…_per_source`) and live at most
//! `limits.auth_timeout`; a flood from one address then costs the others
//! nothing, and nothing it sends is answered but the handshake.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Limits;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Total,
    PerSource,
}

/// How many unauthenticated connections there are, in all and per source.
#[derive(Debug, Default)]
pub(super) struct PreAuth {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

impl PreAuth {
    /// Counts a new connection from `ip`, unless it is one too many.
    pub(super) fn admit(&mut self, ip: IpAddr, limits: &Limits) -> Result<(), Refusal> {
        if self.total >= limits.max_unauthenticated {
            return Err(Refusal::Total);
        }
        let held = self.per_source.entry(ip).or_insert(0);
        if *held >= limits.max_unauthenticated_per_source {
            return Err(Refusal::PerSource);
        }
        *held += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` authenticated, attached or closed.
    pub(super) fn release(&mut self, ip: IpAddr) {
        if let Some(held) = self.per_source.get_mut(&ip) {
            *held -= 1;
            self.total -= 1;
            if *held == 0 {
                self.per_source.remove(&ip);
            }
        }
    }

    pub(super) fn total(&self) -> usize {
        self.total
    }
}
