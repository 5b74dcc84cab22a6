//! What the control plane counts, for `/metrics` and the stop log. Each
//! doc comment is the metric's help text; several metrics are named
//! outright because they were exposed under those names before their
//! fields had these.

service::counters! {
    /// Counters of the control plane.
    pub struct ControlCounters {
        metric_prefix: "corridor_",
        /// TLS connections accepted
        tls_accepted,
        /// TCP connections closed at accept (server.max_connections)
        connections_refused,
        /// successful logins
        logins_ok => "corridor_logins_total",
        /// failed logins
        logins_failed => "corridor_login_failures_total",
        /// logins answered busy: the password verifiers' queue (auth.verify_queue) was full
        logins_busy,
        /// password checks answered after their connection had closed
        // (or after it stopped waiting for that check)
        verdicts_discarded => "corridor_password_verdicts_discarded_total",
        /// malformed HTTP requests
        bad_requests,
        /// tunnels set up with CONNECT
        connects,
        /// CONNECTs refused
        connect_rejected => "corridor_connects_rejected_total",
        /// CSTP frames received
        cstp_frames_in,
        /// CSTP frames sent
        cstp_frames_out,
        /// CSTP packets dropped on a full TLS connection
        cstp_dropped_blocked,
        /// CSTP framing errors and bad packets
        cstp_protocol_errors,
        /// CSTP packets whose source was not the session address
        drop_spoofed_source => "corridor_cstp_drop_spoofed_source_total",
        /// CSTP packets to destinations the group may not reach
        drop_policy => "corridor_cstp_drop_policy_total",
        /// CSTP packets to the gateway's own addresses (implicit deny; the group lacks client_to_client)
        drop_to_gateway => "corridor_cstp_drop_to_gateway_total",
        /// CSTP packets to another session's pool address (implicit deny; the group lacks client_to_client)
        drop_client_to_client => "corridor_cstp_drop_client_to_client_total",
        /// CSTP packets that were not IPv4
        drop_not_ipv4 => "corridor_cstp_drop_not_ipv4_total",
        /// sessions ended
        sessions_ended,
        /// sessions another cluster node began, reconnected here
        sessions_adopted,
        /// relay DTLS flows bound from the shards' port
        relay_flows_bound,
        /// sources banned: their ban score reached limits.max_ban_score
        bans,
        /// bans lifted by an operator (Core::unban)
        unbans,
        /// TCP connections closed at accept: their source is banned
        connections_refused_banned,
        /// TCP connections closed at accept: limits.max_preauth or limits.max_preauth_per_source reached
        connections_refused_preauth,
        /// TLS handshakes or records that failed (each adds limits.ban_points_tls_failure)
        tls_failures,
        /// connections closed for not finishing TLS within limits.tls_handshake_timeout
        tls_handshake_timeouts,
        /// connections closed for not logging in and CONNECTing within limits.auth_timeout
        auth_timeouts,
        /// password checks held back for the source's pace (limits.login_interval_ms)
        logins_paced,
        /// verdicts delivered late after the user's failures (limits.failure_delay_ms)
        verdicts_delayed,
        /// logins refused: the user's group is not a configured [[group]]
        logins_refused_group,
        /// logins refused: the user holds limits.max_sessions_per_user sessions
        logins_refused_session_cap,
        /// cluster cookies revoked here as their session ended for good (logout, kill, timeouts), sent to the relays
        cookies_revoked,
        /// cluster cookie revocations learnt from other nodes through a relay
        revocations_received,
        /// revocations forgotten before their cookie expired: the list was full (the first to expire went)
        revocations_evicted,
        /// CONNECTs refused with 401: the cookie was revoked here or at a cluster peer
        connects_refused_revoked,
        /// logins and CONNECTs refused with 503 while the gateway drains
        refused_draining,
    }
}
