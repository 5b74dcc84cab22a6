//! What the relay counts: every drop has a counter of its own, so an
//! operator can tell a scan from a misconfigured gateway from load.

service::counters! {
    /// The relay's counters (monotonic).
    pub struct Counters {
        metric_prefix: "corridor_relay_",
        families: {
            "corridor_relay_connections_refused_total": "TCP connections closed at accept, by the limit that refused them",
            "corridor_relay_drops_total": "streams, links, flows and datagrams the relay dropped, by reason (docs/metrics.md)",
            "corridor_relay_stream_bytes_total": "bytes carried over finished device streams, by direction",
            "corridor_relay_udp_datagrams_total": "DTLS datagrams the relay took in or forwarded, by direction",
            "corridor_relay_udp_bytes_total": "DTLS bytes the relay forwarded, by direction",
        },
        /// device TCP connections accepted
        device_connections,
        /// device connections closed at accept: relay limits.max_connections
        refused_max_connections => "corridor_relay_connections_refused_total" { reason: "max_connections" },
        /// device connections closed at accept: limits.max_connections_per_source
        refused_per_source => "corridor_relay_connections_refused_total" { reason: "per_source" },
        /// gateway-port connections closed at accept: limits.max_unauthenticated
        refused_unauthenticated => "corridor_relay_connections_refused_total" { reason: "unauthenticated" },
        /// gateway-port connections closed at accept: limits.max_unauthenticated_per_source
        refused_unauthenticated_per_source => "corridor_relay_connections_refused_total" { reason: "unauthenticated_per_source" },
        /// gateway-port connections that neither attached nor authenticated within limits.auth_timeout
        drop_auth_timeout => "corridor_relay_drops_total" { reason: "auth_timeout" },
        /// links closed, unanswered, for a frame other than Auth before their Welcome
        drop_frame_before_auth => "corridor_relay_drops_total" { reason: "frame_before_auth" },
        /// links refused for saying Hello without TLS
        drop_plaintext_link => "corridor_relay_drops_total" { reason: "plaintext_link" },
        /// gateway-port connections whose TLS failed (handshake, or a record that did not authenticate)
        drop_link_tls => "corridor_relay_drops_total" { reason: "link_tls" },
        /// device streams whose first bytes were not a TLS ClientHello
        drop_bad_client_hello => "corridor_relay_drops_total" { reason: "bad_client_hello" },
        /// device ClientHellos without SNI and no relay.default_name
        drop_no_sni => "corridor_relay_drops_total" { reason: "no_sni" },
        /// device ClientHellos for a name no [[gateway]] has
        drop_unknown_name => "corridor_relay_drops_total" { reason: "unknown_name" },
        /// device streams for a name with no live gateway link
        drop_no_gateway => "corridor_relay_drops_total" { reason: "no_gateway" },
        /// device streams dropped at limits.max_pending_streams
        drop_pending_streams => "corridor_relay_drops_total" { reason: "pending_streams" },
        /// devices that sent no ClientHello within limits.hello_timeout
        drop_hello_timeout => "corridor_relay_drops_total" { reason: "hello_timeout" },
        /// streams whose gateway did not attach within limits.attach_timeout
        drop_attach_timeout => "corridor_relay_drops_total" { reason: "attach_timeout" },
        /// attaches naming no waiting stream, with a wrong nonce or from another host
        drop_bad_attach => "corridor_relay_drops_total" { reason: "bad_attach" },
        /// malformed or unexpected frames on the gateway port (the connection is closed)
        drop_bad_gateway_frame => "corridor_relay_drops_total" { reason: "bad_gateway_frame" },
        /// device streams spliced to their gateway
        streams_spliced,
        /// streams the gateway declined (at its connection limit)
        streams_declined,
        /// bytes carried from devices to gateways over finished streams
        stream_bytes_to_gateway => "corridor_relay_stream_bytes_total" { direction: "to_gateway" },
        /// bytes carried from gateways to devices over finished streams
        stream_bytes_to_device => "corridor_relay_stream_bytes_total" { direction: "to_device" },
        /// gateway links authenticated
        links_up,
        /// gateway links refused (unknown name, version or wrong token)
        links_refused,
        /// authenticated gateway links that ended
        links_lost,
        /// gateway links whose gateway said it drains (no new devices sent to it)
        links_draining,
        /// DTLS flows allocated (a relay UDP port each)
        flows_allocated,
        /// flows bound by their gateway
        flows_bound,
        /// flows the gateway refused (no session had the App-ID)
        flows_refused,
        /// flows closed because their gateway never bound them
        flows_unbound,
        /// flows closed after limits.flow_idle_timeout
        flows_idle,
        /// flows closed for any reason
        flows_closed,
        /// datagrams from devices
        udp_from_devices => "corridor_relay_udp_datagrams_total" { direction: "from_devices" },
        /// datagrams forwarded to gateways
        udp_to_gateways => "corridor_relay_udp_datagrams_total" { direction: "to_gateways" },
        /// datagrams forwarded to devices
        udp_to_devices => "corridor_relay_udp_datagrams_total" { direction: "to_devices" },
        /// bytes forwarded to gateways
        udp_bytes_to_gateways => "corridor_relay_udp_bytes_total" { direction: "to_gateways" },
        /// bytes forwarded to devices
        udp_bytes_to_devices => "corridor_relay_udp_bytes_total" { direction: "to_devices" },
        /// datagrams from an unknown device address that were no ClientHello
        drop_udp_unknown_peer => "corridor_relay_drops_total" { reason: "udp_unknown_peer" },
        /// ClientHellos whose App-ID carries no relay route
        drop_udp_unknown_app_id => "corridor_relay_drops_total" { reason: "udp_unknown_app_id" },
        /// ClientHellos for a route no live link holds
        drop_udp_unknown_route => "corridor_relay_drops_total" { reason: "udp_unknown_route" },
        /// ClientHellos dropped at limits.max_flows
        drop_udp_max_flows => "corridor_relay_drops_total" { reason: "udp_max_flows" },
        /// ClientHellos dropped at limits.max_pending_flows
        drop_udp_pending_flows => "corridor_relay_drops_total" { reason: "udp_pending_flows" },
        /// ClientHellos dropped at limits.max_flows_per_source
        drop_udp_flows_per_source => "corridor_relay_drops_total" { reason: "udp_flows_per_source" },
        /// ClientHellos dropped at limits.max_flows_per_app_id
        drop_udp_flows_per_app_id => "corridor_relay_drops_total" { reason: "udp_flows_per_app_id" },
        /// datagrams dropped while a flow waited for its bind (queue full)
        drop_udp_queue_full => "corridor_relay_drops_total" { reason: "udp_queue_full" },
        /// datagrams on a flow port from anyone but its gateway (or a bad bind)
        drop_udp_stranger => "corridor_relay_drops_total" { reason: "udp_stranger" },
        /// datagrams the kernel refused to send
        drop_udp_send_failed => "corridor_relay_drops_total" { reason: "udp_send_failed" },
        /// device datagrams larger than the relay takes whole (9216 bytes)
        drop_udp_truncated => "corridor_relay_drops_total" { reason: "udp_truncated" },
        /// flows not opened: no UDP port could be bound
        drop_udp_socket_failed => "corridor_relay_drops_total" { reason: "udp_socket_failed" },
        /// cookie revocations taken from a gateway link and held for its name
        revocations,
        /// revocations already held for the name (not passed on again)
        revocations_repeated,
        /// revocations whose cookie had expired already (dropped)
        revocations_stale,
        /// revocations dropped at limits.max_revocations_per_name (the first to expire)
        revocations_evicted,
        /// revocation frames passed on to the other gateway links of a name
        revocations_forwarded,
        /// revocation frames replayed to a gateway link as it came up
        revocations_replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::Counters;

    /// Dashboards and the end-to-end tests read these names: a drop is a
    /// `reason` of one family, a refusal at accept a `reason` of another,
    /// what is forwarded a `direction`; every other counter is a family
    /// named for its field.
    #[test]
    fn every_relay_metric_is_named_for_its_field_or_labelled_with_it() {
        for counter in Counters::COUNTERS {
            let f = counter.field;
            let expected = if let Some(reason) = f.strip_prefix("drop_") {
                ("corridor_relay_drops_total".to_owned(), format!("reason=\"{reason}\""))
            } else if let Some(reason) = f.strip_prefix("refused_") {
                ("corridor_relay_connections_refused_total".to_owned(), format!("reason=\"{reason}\""))
            } else if let Some(direction) = f.strip_prefix("stream_bytes_") {
                ("corridor_relay_stream_bytes_total".to_owned(), format!("direction=\"{direction}\""))
            } else if let Some(direction) = f.strip_prefix("udp_bytes_") {
                ("corridor_relay_udp_bytes_total".to_owned(), format!("direction=\"{direction}\""))
            } else if let Some(direction) = f.strip_prefix("udp_") {
                ("corridor_relay_udp_datagrams_total".to_owned(), format!("direction=\"{direction}\""))
            } else {
                (format!("corridor_relay_{f}_total"), String::new())
            };
            assert_eq!((counter.metric, counter.labels), (expected.0.as_str(), expected.1.as_str()), "{f}");
            assert!(!counter.help.is_empty() && counter.help.trim() == counter.help, "{counter:?}");
        }
        let accepted = Counters::COUNTERS.first().map(|c| c.help);
        assert_eq!(accepted, Some("device TCP connections accepted"));
    }
}
