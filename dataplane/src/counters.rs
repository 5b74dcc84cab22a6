//! Per-shard counters: plain integers on the shard, published once per loop
//! turn as relaxed atomics on their own cache lines, read by control.

use std::sync::atomic::{AtomicU64, Ordering};

service::counters! {
    /// What one shard has seen since it started. A snapshot: fields are
    /// each current, not mutually consistent to the packet.
    #[derive(PartialEq, Eq)]
    pub struct ShardCounters {
        metric_prefix: "corridor_shard_",
        families: {
            "corridor_shard_drops_total": "packets and datagrams the shard dropped, by reason (docs/metrics.md)",
            "corridor_shard_handshakes_total": "DTLS handshakes and ClientHellos by outcome (docs/metrics.md)",
        },
        /// UDP datagrams received.
        rx_datagrams,
        /// DTLS records opened (authenticated) from granted peers.
        rx_records,
        /// UDP datagrams sent (completed sends).
        tx_datagrams,
        /// Packets read from the TUN.
        tun_reads,
        /// Packets written to the TUN (completed writes).
        tun_writes,
        /// UDP payload bytes received, counted per receive (a GRO batch at once).
        rx_bytes,
        /// UDP payload bytes sent, counted per completed send (a GSO batch at once).
        tx_bytes,
        /// Bytes read from the TUN, counted per read (a super-packet at once;
        /// the virtio-net header included when offloads are on).
        tun_read_bytes,
        /// Bytes written to the TUN, counted per completed write (the
        /// virtio-net header included when offloads are on).
        tun_write_bytes,
        /// Not a DTLS record, a broken IPv4 header, or an unknown OpenConnect type.
        drop_malformed => "corridor_shard_drops_total" { reason: "malformed" },
        /// Authenticated alerts (close_notify when a device disconnects) and
        /// post-handshake messages: not data, absorbed.
        rx_alerts,
        /// Inner packets that are not IPv4 (IPv6 is not carried yet; clients send router solicitations).
        drop_not_ipv4 => "corridor_shard_drops_total" { reason: "not_ipv4" },
        /// Record authentication failed.
        drop_bad_mac => "corridor_shard_drops_total" { reason: "bad_mac" },
        /// Record already seen or left of the replay window.
        drop_replay => "corridor_shard_drops_total" { reason: "replay" },
        /// Record from an epoch other than the session's (and not 0).
        drop_wrong_epoch => "corridor_shard_drops_total" { reason: "wrong_epoch" },
        /// Inner source address is not the session's assigned address.
        drop_spoofed_source => "corridor_shard_drops_total" { reason: "spoofed_source" },
        /// Destination not allowed by the session's policy.
        drop_policy => "corridor_shard_drops_total" { reason: "policy" },
        /// Destination is one of the gateway's own addresses (implicit deny;
        /// the group lacks client_to_client).
        drop_to_gateway => "corridor_shard_drops_total" { reason: "to_gateway" },
        /// Destination is another session's pool address (implicit deny;
        /// the group lacks client_to_client).
        drop_client_to_client => "corridor_shard_drops_total" { reason: "client_to_client" },
        /// TUN packet outside the pool, or a packet for a session this shard lacks.
        drop_no_session => "corridor_shard_drops_total" { reason: "no_session" },
        /// Datagram truncated by the receive buffer, or a packet too big to seal.
        drop_oversize => "corridor_shard_drops_total" { reason: "oversize" },
        /// DPD requests answered.
        dpd_answered,
        /// Keepalives absorbed.
        keepalives,
        /// TUN packets handed to the shard owning their session.
        cross_shard,
        /// Steering map updates the kernel refused (packets of that session
        /// then cross shards).
        steering_errors,
        /// Records sent to devices through per-peer batches (offloads on).
        tx_records,
        /// UDP sends that carried more than one record (UDP GSO).
        gso_sends,
        /// Per-peer batches sent (one send each; `tx_records / tx_batches`
        /// is the records per send).
        tx_batches,
        /// UDP receives that carried several datagrams coalesced by UDP GRO.
        gro_receives,
        /// The datagrams those GRO receives carried.
        gro_datagrams,
        /// Loop turns that handled at least one completion (packets per
        /// turn: `(rx_datagrams + tun_reads) / loop_turns`).
        loop_turns,
        /// Waits that asked the kernel for a batch of completions (the turn
        /// before was loaded; `[dataplane] batch_wait_us`).
        batched_waits,
        /// TUN reads that were TSO/USO super-packets, segmented here.
        tun_super_packets,
        /// TUN writes that carried device TCP segments, or UDP datagrams,
        /// coalesced into one.
        tun_super_writes,
        /// The device packets those super-packet writes carried.
        tun_super_segments,
        /// Packets sent alone, sealed where they were read, because every batch
        /// buffer was in use.
        batch_fallbacks,
        /// Super-packets or checksum-partial packets the segmenter refused
        /// (unsupported GSO type such as IPv6, inconsistent headers).
        drop_offload => "corridor_shard_drops_total" { reason: "offload" },
        /// Offloads the kernel refused at run time (a GSO send failed: one
        /// record per send since).
        offload_refused,
        /// DTLS handshakes this shard completed and installed.
        handshakes_established => "corridor_shard_handshakes_total" { outcome: "established" },
        /// DTLS handshakes that failed after the cookie round (a wrong key, a
        /// bad Finished, a timeout).
        handshakes_failed => "corridor_shard_handshakes_total" { outcome: "failed" },
        /// ClientHellos answered with a fatal alert (no shared suite, version).
        handshakes_refused => "corridor_shard_handshakes_total" { outcome: "refused" },
        /// Cookie rounds (HelloVerifyRequest) sent.
        hello_verify_requests,
        /// ClientHellos whose App-ID no session is authorised with: dropped
        /// unanswered, nothing copied anywhere.
        handshakes_unknown_app_id => "corridor_shard_handshakes_total" { outcome: "unknown_app_id" },
        /// Datagrams from peers without a session that were no ClientHello
        /// (or a fragmented one): dropped unanswered.
        handshakes_not_client_hello => "corridor_shard_handshakes_total" { outcome: "not_client_hello" },
        /// ClientHellos dropped with the shard's handshake table full.
        handshakes_overloaded => "corridor_shard_handshakes_total" { outcome: "overloaded" },
        /// Handshake datagrams dropped unparsed: their source address was over
        /// its rate (a token bucket per source and shard).
        handshakes_rate_limited => "corridor_shard_handshakes_total" { outcome: "rate_limited" },
        /// Events or packets dropped because a bounded queue or the op table was full.
        queue_full => "corridor_shard_drops_total" { reason: "queue_full" },
        /// Sends, TUN writes or receives that the kernel failed.
        io_errors,
        /// Records that could not be sealed (sequence space exhausted, crypto refusal).
        seal_errors,
        /// Grants accepted.
        grants,
        /// Grants refused: session id outside the pool, address not the pool's
        /// address for that id, or keys the record layer rejects.
        grants_rejected,
        /// Sessions removed by revoke.
        revokes,
    }
}

/// The shard's counters as control reads them.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct PublishedCounters {
    values: [AtomicU64; ShardCounters::COUNT],
}

impl Default for PublishedCounters {
    fn default() -> Self {
        Self { values: core::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl PublishedCounters {
    /// Single writer (the shard); relaxed stores suffice for monotone counters.
    pub(crate) fn publish(&self, c: &ShardCounters) {
        for (slot, v) in self.values.iter().zip(c.values()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> ShardCounters {
        ShardCounters::from_values(self.values.each_ref().map(|v| v.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use service::CounterSet;

    use super::*;

    #[test]
    fn publish_round_trips() {
        let c = ShardCounters { rx_datagrams: 3, revokes: 9, drop_policy: 1, ..Default::default() };
        let p = PublishedCounters::default();
        p.publish(&c);
        assert_eq!(p.snapshot(), c);
        let first = c.counters().next().map(|(counter, v)| (counter.metric, counter.help, v));
        assert_eq!(first, Some(("corridor_shard_rx_datagrams_total", "UDP datagrams received.", 3)));
        assert_eq!(c.merged(&c).revokes, 18);
    }

    /// Dashboards and the end-to-end tests read these names: a drop is a
    /// `reason` of one family, a handshake an `outcome` of another, and
    /// every other counter a family named for its field.
    #[test]
    fn every_shard_metric_is_named_for_its_field_or_labelled_with_it() {
        for counter in ShardCounters::COUNTERS {
            let (metric, labels) = if let Some(reason) = counter.field.strip_prefix("drop_") {
                ("corridor_shard_drops_total".to_owned(), format!("reason=\"{reason}\""))
            } else if counter.field == "queue_full" {
                ("corridor_shard_drops_total".to_owned(), "reason=\"queue_full\"".to_owned())
            } else if let Some(outcome) = counter.field.strip_prefix("handshakes_") {
                ("corridor_shard_handshakes_total".to_owned(), format!("outcome=\"{outcome}\""))
            } else {
                (format!("corridor_shard_{}_total", counter.field), String::new())
            };
            assert_eq!((counter.metric, counter.labels), (metric.as_str(), labels.as_str()), "{}", counter.field);
            assert!(!counter.help.is_empty() && !counter.help.contains('\n'), "{}: {:?}", counter.field, counter.help);
        }
    }
}
