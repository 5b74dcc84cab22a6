//! What the driver tells operators: the start-up line and the `/metrics`
//! page (rendered on the control thread, served by the admin thread).

use std::time::Instant;

use dataplane::Dataplane;

use super::Gateway;
use crate::config::Config;

/// The start-up line: where the gateway listens, what the kernel granted
/// and whether its TLS runs in FIPS mode ([`crate::tls::fips`]).
pub(super) fn log_start(config: &Config, dataplane: &Dataplane, fips: bool) {
    tracing::info!(
        listen = %config.listen,
        dtls_port = ?config.dtls_port,
        tun = %config.tun_name,
        pool = %config.pool,
        shards = dataplane.shard_count(),
        offloads = %describe_offloads(dataplane.info(), config.offloads),
        io = %describe_io(dataplane.info()),
        steering = %describe_steering(dataplane.info()),
        fips,
        relays = ?config.relays.iter().map(|r| format!("{}@{}", r.name, r.address)).collect::<Vec<_>>(),
        "gateway started"
    );
    if dtls::crypto::NULL_AEAD {
        tracing::warn!(
            "this is a null-aead build: DTLS records are NOT encrypted (a measurement build, never for traffic)"
        );
    }
}

impl Gateway {
    /// The Prometheus page of `GET /metrics`.
    pub(super) fn metrics(&self) -> String {
        let mut m = crate::admin::Metrics::default();
        m.build_info("corridor_build_info", crate::tls::fips(&self.tls));
        m.counter_set(self.core.counters(), "");
        m.counter_set(&self.relays.counters, "");
        m.gauge("corridor_relay_links", "relay links up", self.relays.up() as u64);
        // The shards run the DTLS handshakes: their outcomes are shard counters.
        let shards = self.core.port().counters();
        for (i, s) in shards.iter().enumerate() {
            m.counter_set(s, &format!("shard=\"{i}\""));
        }
        for h in self.core.port().health() {
            let shard = format!("shard=\"{}\"", h.shard.0);
            m.gauge_series(
                "corridor_shard_up",
                "1 while the shard's loop runs, 0 once its thread ended",
                &shard,
                u8::from(h.up),
            );
            m.gauge_series(
                "corridor_shard_last_turn_seconds",
                "seconds since the shard's loop last turned (at least once a second while up)",
                &shard,
                h.since_last_turn.as_secs_f64(),
            );
        }
        for (i, l) in self.core.port().latency().iter().enumerate() {
            histogram(
                &mut m,
                "corridor_shard_turn_seconds",
                "time from harvesting a shard loop turn's completions to submitting all it produced: an upper bound \
                 on each of its packets' time inside the shard",
                i,
                l,
            );
        }
        for (i, l) in self.core.port().handshake_latency().iter().enumerate() {
            histogram(
                &mut m,
                "corridor_shard_dtls_handshake_seconds",
                "DTLS handshakes the shard established, by how long they took from the ClientHello that passed the \
                 cookie round to the device's Finished",
                i,
                l,
            );
        }
        sessions(&mut m, self.core.sessions());
        m.gauge(
            "corridor_banned_sources",
            "sources (IPv4 addresses, IPv6 /64s) refused at accept for their ban score",
            self.core.banned_sources(Instant::now()) as u64,
        );
        m.gauge(
            "corridor_preauth_connections",
            "connections not yet carrying a tunnel (limits.max_preauth)",
            self.core.preauth_count() as u64,
        );
        m.gauge("corridor_pool_addresses_in_use", "client addresses handed out", self.core.addresses_in_use() as u64);
        m.gauge(
            "corridor_revocations",
            "cluster cookies refused until they expire: revoked here or at a peer",
            self.core.revocations_held() as u64,
        );
        m.gauge(
            "corridor_password_checks_pending",
            "password checks queued or running on the verifier threads",
            self.verifiers.as_ref().map_or(0, crate::verifier::Verifiers::in_flight) as u64,
        );
        m.into_string()
    }
}

/// One shard's log₂ histogram, in seconds.
fn histogram<const FIRST_NS: u64>(
    m: &mut crate::admin::Metrics,
    name: &str,
    help: &str,
    shard: usize,
    l: &dataplane::latency::Log2Histogram<FIRST_NS>,
) {
    let cumulative: Vec<(Option<f64>, u64)> =
        l.cumulative().iter().map(|(b, n)| (b.map(|ns| ns as f64 / 1e9), *n)).collect();
    m.histogram(name, help, &format!("shard=\"{shard}\""), &cumulative, l.sum_ns as f64 / 1e9);
}

/// `corridor_sessions{state,via}`: every combination, zeros included, so
/// that a dashboard's series do not come and go.
fn sessions(m: &mut crate::admin::Metrics, sessions: &crate::session::Sessions) {
    const STATES: [&str; 3] = ["tunnel", "detached", "connecting"];
    let mut counts = [[0u64; 2]; STATES.len()];
    for s in sessions.iter() {
        // A TLS connection carries it; it had one and lost it (waiting for
        // a reconnect within cookie_grace); or its CONNECT has yet to come.
        let state = match (s.conn.is_some(), s.connected) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        if let Some(n) = counts.get_mut(state).and_then(|v| v.get_mut(usize::from(s.via.is_some()))) {
            *n += 1;
        }
    }
    for (state, by_via) in STATES.iter().zip(counts) {
        for (via, n) in ["direct", "relay"].iter().zip(by_via) {
            m.gauge_series(
                "corridor_sessions",
                "live sessions by state (tunnel: a TLS connection carries it; detached: it lost it and may \
                 reconnect; connecting: logged in, CONNECT yet to come) and by how the device reached the gateway",
                &format!("state=\"{state}\",via=\"{via}\""),
                n,
            );
        }
    }
}

/// What the start-up log says of the data plane's offloads, and why.
pub(super) fn describe_offloads(info: &dataplane::DataplaneInfo, asked: bool) -> String {
    match info.shards.first().and_then(|s| s.tun_offloads) {
        None if !asked => "off (dataplane.offloads = false)".to_owned(),
        None => "off (the kernel refused IFF_VNET_HDR on the TUN)".to_owned(),
        Some(o) => {
            let on: Vec<&str> = [(o.csum, "csum"), (o.tso, "tso"), (o.uso, "uso")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
            let tun = if on.is_empty() { "none (TUNSETOFFLOAD refused)".to_owned() } else { on.join("+") };
            let gro = if info.shards.first().is_some_and(|s| s.udp_gro) { "+gro" } else { "" };
            format!("tun:{tun} udp:gso{gro}")
        }
    }
}

/// The I/O engine of the shards, why it was chosen, its set-up.
pub(super) fn describe_io(info: &dataplane::DataplaneInfo) -> String {
    let Some(s) = info.shards.first() else { return "no shards".to_owned() };
    let setup = match s.ring_setup {
        Some(r) => {
            let fixed = match (s.fixed_files, s.fixed_buffers) {
                (true, true) => ", fixed files+buffers",
                (true, false) => ", fixed files",
                (false, true) => ", fixed buffers",
                (false, false) => "",
            };
            let batch = if s.batching { ", batch-forming waits" } else { "" };
            format!("{r:?}{fixed}, tun reads {:?}{batch}", s.tun_reads)
        }
        None => "one read per TUN packet".to_owned(),
    };
    let why = s.io_fallback.as_ref().map(|w| format!(" (fallback: {w})")).unwrap_or_default();
    format!("{}{why}; {setup}; {}+{} buffers", s.io, s.buffers, s.tun_buffers)
}

/// How TUN reads find their shard.
pub(super) fn describe_steering(info: &dataplane::DataplaneInfo) -> String {
    match &info.steering {
        Ok(()) => "ebpf (TUN reads go to the owner shard's queue)".to_owned(),
        Err(why) => format!("flow hash ({why})"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use proto::grant::SessionId;

    use super::sessions;
    use crate::core::{ConnId, RelayRoute};
    use crate::session::{Session, Sessions};

    #[test]
    fn sessions_are_counted_by_state_and_via_with_every_combination_shown() {
        let now = Instant::now();
        let mut all = Sessions::default();
        let session = |id: u32| {
            let address = Ipv4Addr::new(10, 0, 0, id as u8);
            Session::new(SessionId(id), "u".into(), "g".into(), format!("cookie{id}"), address, now, now)
        };
        all.insert(session(1));
        let mut tunnel = session(2);
        (tunnel.conn, tunnel.connected) = (Some(ConnId(7)), true);
        tunnel.via = Some(RelayRoute { link: 0, route: 1, dtls_port: 0 });
        all.insert(tunnel);
        let mut detached = session(3);
        detached.connected = true;
        all.insert(detached);
        let mut m = crate::admin::Metrics::default();
        sessions(&mut m, &all);
        let page = m.into_string();
        for (labels, n) in [
            ("state=\"tunnel\",via=\"relay\"", 1),
            ("state=\"tunnel\",via=\"direct\"", 0),
            ("state=\"detached\",via=\"direct\"", 1),
            ("state=\"connecting\",via=\"direct\"", 1),
            ("state=\"connecting\",via=\"relay\"", 0),
        ] {
            assert!(page.contains(&format!("corridor_sessions{{{labels}}} {n}\n")), "{labels}: {page}");
        }
        assert_eq!(page.lines().filter(|l| l.starts_with("corridor_sessions{")).count(), 6, "{page}");
    }
}
