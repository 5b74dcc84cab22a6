//! What the admin endpoint shows of the core: `GET /metrics` (every
//! counter and the gauges) and `GET /links` (one line per gateway link).

use service::Metrics;

use super::RelayCore;

impl RelayCore {
    /// The Prometheus page.
    pub fn metrics_page(&self) -> String {
        let mut m = Metrics::default();
        m.build_info("corridor_relay_build_info", service::fips::enabled());
        m.counter_set(&self.counters, "");
        let spliced = self.devices.values().filter(|d| d.is_spliced()).count();
        m.gauge("corridor_relay_links", "gateway links up", self.routes.len() as u64);
        m.gauge("corridor_relay_streams", "device streams spliced to a gateway", spliced as u64);
        m.gauge(
            "corridor_relay_streams_pending",
            "device streams waiting for their ClientHello or their gateway",
            (self.devices.len() - spliced) as u64,
        );
        m.gauge(
            "corridor_relay_unauthenticated",
            "gateway-port connections not yet attached or authenticated",
            self.preauth.total() as u64,
        );
        m.gauge("corridor_relay_flows", "DTLS flows (relay UDP ports)", self.flows.len() as u64);
        m.gauge(
            "corridor_relay_flows_pending",
            "DTLS flows not yet bound by their gateway",
            self.flows.pending() as u64,
        );
        m.gauge(
            "corridor_relay_revocations",
            "cookie revocations held, over every name",
            self.revocations.len() as u64,
        );
        m.into_string()
    }

    /// One line per link, sorted: name, peer, route, streams, flows.
    pub fn links_page(&self) -> String {
        let mut lines: Vec<String> = self
            .links
            .values()
            .map(|l| {
                format!(
                    "{} peer={} route={} streams_opened={} streams_active={} flows={}{}\n",
                    l.name,
                    l.peer,
                    l.route().map_or("-".to_owned(), |r| format!("{r:08x}")),
                    l.streams_opened,
                    l.active_streams,
                    l.route().map_or(0, |r| self.flows.on_route(r)),
                    if l.draining { " draining" } else { "" },
                )
            })
            .collect();
        lines.sort();
        lines.concat()
    }

    /// Gateway links up.
    pub fn links_up(&self) -> usize {
        self.routes.len()
    }

    /// DTLS flows, bound or not.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }
}
