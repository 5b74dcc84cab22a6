//! Which link of a name a device's new stream goes to: the gateway the
//! device had, while that link lives and does not drain (its login,
//! CONNECT and reconnects must reach the gateway that holds its cookie),
//! else the live link with the fewest active streams that does not drain.
//! A draining gateway's devices thus reconnect to another gateway of the
//! name, which adopts their sessions from their cluster cookies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::links::Link;
use super::{late, ConnId};

/// How long a device stays with the gateway it was given, after its last
/// stream was opened.
pub(super) const AFFINITY: Duration = Duration::from_secs(600);

/// The route each device (name, IP) was last given, and when.
#[derive(Debug, Default)]
pub(super) struct Affinity {
    by_device: HashMap<(String, IpAddr), (u32, Instant)>,
}

impl Affinity {
    /// The link for a new stream of device `ip` to `name`, remembered for
    /// the device's next stream.
    pub(super) fn choose(
        &mut self,
        name: &str,
        ip: IpAddr,
        now: Instant,
        routes: &HashMap<u32, ConnId>,
        links: &HashMap<ConnId, Link>,
    ) -> Option<ConnId> {
        let key = (name.to_owned(), ip);
        if let Some((route, _)) = self.by_device.get(&key) {
            let live = routes.get(route).copied().filter(|c| links.get(c).is_some_and(|l| !l.draining));
            if let Some(conn) = live {
                self.by_device.insert(key, (*route, now));
                return Some(conn);
            }
        }
        // Ties go to the link that opened fewer streams, then the older.
        let (conn, route) = links
            .iter()
            .filter(|(_, l)| l.name == name && !l.draining)
            .filter_map(|(c, l)| Some((l.active_streams, l.streams_opened, *c, l.route()?)))
            .min()
            .map(|(_, _, c, r)| (c, r))?;
        self.by_device.insert(key, (route, now));
        Some(conn)
    }

    pub(super) fn expire(&mut self, now: Instant) {
        self.by_device.retain(|_, (_, at)| !late(now, *at, AFFINITY));
    }
}
