//! What the control plane counts, for `/metrics` and the stop log. Each
//! doc comment is the metric's help text, or for a labelled family's
//! counter what its label value means (docs/metrics.md lists them).

service::counters! {
    /// Counters of the control plane.
    pub struct ControlCounters {
        metric_prefix: "corridor_",
        families: {
            "corridor_connections_refused_total": "TCP connections closed at accept, by the limit that refused them",
            "corridor_logins_total": "logins by method (password, certificate, cookie: a CONNECT with a session cookie) and outcome (ok, failed: a wrong credential, refused: a limit or policy said no)",
            "corridor_logins_refused_total": "password and certificate logins refused, by reason",
            "corridor_cstp_drops_total": "CSTP packets from devices dropped, by reason",
        },
        /// TLS connections accepted
        tls_accepted,
        /// TCP connections closed at accept (server.max_connections)
        connections_refused => "corridor_connections_refused_total" { reason: "max_connections" },
        /// password logins that succeeded
        logins_password_ok => "corridor_logins_total" { method: "password", outcome: "ok" },
        /// password logins with a wrong user or password
        logins_password_failed => "corridor_logins_total" { method: "password", outcome: "failed" },
        /// password logins refused (verifiers busy, group, session cap, pool exhausted)
        logins_password_refused => "corridor_logins_total" { method: "password", outcome: "refused" },
        /// certificate logins that succeeded
        logins_certificate_ok => "corridor_logins_total" { method: "certificate", outcome: "ok" },
        /// certificate logins refused (group, session cap, pool exhausted)
        logins_certificate_refused => "corridor_logins_total" { method: "certificate", outcome: "refused" },
        /// CONNECTs whose session cookie was live here or adopted from a cluster peer
        logins_cookie_ok => "corridor_logins_total" { method: "cookie", outcome: "ok" },
        /// CONNECTs with a cookie nobody issued, or one past its expiry
        logins_cookie_failed => "corridor_logins_total" { method: "cookie", outcome: "failed" },
        /// CONNECTs with a revoked cluster cookie
        logins_cookie_refused => "corridor_logins_total" { method: "cookie", outcome: "refused" },
        /// the password verifiers' queue (auth.verify_queue) was full: answered busy
        logins_busy => "corridor_logins_refused_total" { reason: "busy" },
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
        cstp_dropped_blocked => "corridor_cstp_drops_total" { reason: "blocked" },
        /// CSTP framing errors and bad packets
        cstp_protocol_errors,
        /// CSTP packets whose source was not the session address
        drop_spoofed_source => "corridor_cstp_drops_total" { reason: "spoofed_source" },
        /// CSTP packets to destinations the group may not reach
        drop_policy => "corridor_cstp_drops_total" { reason: "policy" },
        /// CSTP packets to the gateway's own addresses (implicit deny; the group lacks client_to_client)
        drop_to_gateway => "corridor_cstp_drops_total" { reason: "to_gateway" },
        /// CSTP packets to another session's pool address (implicit deny; the group lacks client_to_client)
        drop_client_to_client => "corridor_cstp_drops_total" { reason: "client_to_client" },
        /// CSTP packets that were not IPv4
        drop_not_ipv4 => "corridor_cstp_drops_total" { reason: "not_ipv4" },
        /// logins refused: the address pool (or this node's share of it) was exhausted
        logins_refused_pool => "corridor_logins_refused_total" { reason: "pool_exhausted" },
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
        connections_refused_banned => "corridor_connections_refused_total" { reason: "banned" },
        /// TCP connections closed at accept: limits.max_preauth or limits.max_preauth_per_source reached
        connections_refused_preauth => "corridor_connections_refused_total" { reason: "preauth" },
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
        logins_refused_group => "corridor_logins_refused_total" { reason: "group" },
        /// logins refused: the user holds limits.max_sessions_per_user sessions
        logins_refused_session_cap => "corridor_logins_refused_total" { reason: "session_cap" },
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
