//! The HTTP phase of a connection: the auth forms, password and
//! certificate logins, and the cookie that names the session afterwards
//! (openconnect-protocol.md §2).

use std::time::{Duration, Instant};

use proto::auth::{self, AuthDocType, AuthForm, FieldKind, FormField};
use proto::grant::SessionId;
use proto::http::{self, Parsed, Request};

use super::throttle::Deferred;
use super::{CheckId, ConnId, Core, Effect, Misbehaviour, Phase, Source, Verdict};
use crate::cluster::CookieClaims;
use crate::port::DataplanePort;
use crate::session::{random_bytes, random_hex, Session};

/// RFC 9110 reason phrases for the errors the HTTP parser reports.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Bad Request",
    }
}

fn login_form(error: Option<&str>) -> String {
    auth::auth_request_xml(&AuthForm {
        message: "Please enter your username and password.".into(),
        error: error.map(str::to_string),
        action: "/auth".into(),
        fields: vec![
            FormField { kind: FieldKind::Text, name: "username".into(), label: "Username:".into(), value: None },
            FormField { kind: FieldKind::Password, name: "password".into(), label: "Password:".into(), value: None },
        ],
        groups: Vec::new(),
    })
}

impl<P: DataplanePort> Core<P> {
    /// Handles the next complete request in the connection's plaintext.
    /// `true` when one was handled and another may follow.
    pub(super) fn next_request(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else { return false };
        // Requests behind a login wait for its verdict.
        if c.check.is_some() || c.plaintext.is_empty() {
            return false;
        }
        let buf = std::mem::take(&mut c.plaintext);
        match http::parse_request(&buf, &self.limits) {
            Ok(Parsed::Complete { request, consumed }) => {
                self.on_request(conn, &request, now);
                let rest = buf.get(consumed..).unwrap_or_default();
                match self.conns.get_mut(&conn) {
                    Some(c) => match &mut c.phase {
                        Phase::Http => c.plaintext = rest.to_vec(),
                        // Frames pipelined behind the CONNECT.
                        Phase::Tunnel { deframer, .. } => deframer.push(rest),
                    },
                    None => return false,
                }
                true
            }
            Ok(Parsed::Partial) => {
                c.plaintext = buf;
                false
            }
            Err(e) => {
                let peer = c.peer;
                self.counters.bad_requests += 1;
                tracing::info!(%peer, error = %e, "bad HTTP request; closing");
                self.misbehaved(peer, Misbehaviour::Malformed, conn, now);
                let mut out = Vec::new();
                http::write_response(&mut out, e.status(), reason_phrase(e.status()), &[("Connection", "close")], b"");
                self.write(conn, out);
                self.close(conn, "bad HTTP request", now);
                false
            }
        }
    }

    pub(super) fn respond(&mut self, conn: ConnId, status: u16, reason: &str, extra: &[(&str, &str)], body: &[u8]) {
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "text/xml"), ("X-Transcend-Version", "1")];
        headers.extend_from_slice(extra);
        let mut out = Vec::new();
        http::write_response(&mut out, status, reason, &headers, body);
        self.write(conn, out);
    }

    fn ask_again(&mut self, conn: ConnId, error: &str) {
        let form = login_form(Some(error));
        self.respond(conn, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
    }

    fn on_request(&mut self, conn: ConnId, req: &Request<'_>, now: Instant) {
        if self.draining {
            // No new logins or tunnels here: the device's client tries
            // again (through a relay: at another gateway of the name).
            self.counters.refused_draining += 1;
            self.respond(conn, 503, "Service Unavailable", &[("Connection", "close"), ("Retry-After", "5")], b"");
            return self.close(conn, "draining", now);
        }
        if req.method == "CONNECT" {
            return self.on_connect(conn, req, now);
        }
        let Some(c) = self.conns.get(&conn) else { return };
        let peer = c.peer;
        if req.method != "POST" && req.method != "GET" {
            self.counters.bad_requests += 1;
            self.misbehaved(peer, Misbehaviour::Malformed, conn, now);
            self.respond(conn, 405, "Method Not Allowed", &[("Connection", "close")], b"");
            return self.close(conn, "method not allowed", now);
        }
        // A verified client certificate logs in at once (ocserv's
        // `auth = certificate` behaviour, openconnect-protocol.md §2.7).
        if self.config.client_ca.is_some() {
            if let Some(user) = c.tls.certificate_user.clone() {
                return self.login_ok(conn, &user, None, now, LoginMethod::Certificate);
            }
        }
        let doc = if req.method == "POST" && !req.body.is_empty() {
            match auth::parse_client_auth(req.body) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.counters.bad_requests += 1;
                    tracing::info!(%peer, error = ?e, "malformed auth document");
                    self.misbehaved(peer, Misbehaviour::Malformed, conn, now);
                    self.respond(conn, 400, "Bad Request", &[("Connection", "close")], b"");
                    return self.close(conn, "malformed auth document", now);
                }
            }
        } else {
            None
        };
        let creds = doc.filter(|d| d.doc_type == AuthDocType::AuthReply).and_then(|d| Some((d.username?, d.password?)));
        let Some((user, password)) = creds else {
            let form = login_form(None);
            return self.respond(conn, 200, "OK", &[("Connection", "keep-alive")], form.as_bytes());
        };
        if !crate::passwd::valid_user(&user) {
            // No account can have this name; it is logged escaped (`?`), so
            // a name carrying a newline cannot forge a log line, and never
            // reaches a password check.
            tracing::info!(%peer, user = ?user, "login with a user name no account can have");
            return self.login_failed(conn, "(invalid user name)", now);
        }
        if !self.passwords {
            return self.login_failed(conn, &user, now);
        }
        // The check runs off this thread; the connection waits for its
        // verdict in `handle_verdict`. A source past its pace waits for its
        // slot first (`limits.login_interval_ms`).
        let check = CheckId { conn, seq: self.next_check };
        self.next_check += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.check = Some((check, user.clone()));
        }
        let slot = self.throttle.check_slot(Source::of(peer.ip()), &self.config.limits, now);
        if slot > now {
            self.counters.logins_paced += 1;
            self.throttle.defer(slot, Deferred::Check { check, user, password });
        } else {
            self.effects.push_back(Effect::CheckPassword { check, user, password });
        }
    }

    /// The verdict of a password check: the connection goes on as an
    /// inline check would have, then handles whatever queued behind it.
    /// After a user's failures the verdict waits (`limits.failure_delay_ms`,
    /// doubling), released by [`handle_tick`](Self::handle_tick).
    pub fn handle_verdict(&mut self, check: CheckId, verdict: Verdict, now: Instant) {
        let user = match self.conns.get(&check.conn).and_then(|c| c.check.as_ref()) {
            Some((pending, user)) if *pending == check => user.clone(),
            _ => {
                self.counters.verdicts_discarded += 1;
                return;
            }
        };
        let delay = self.throttle.user_delay(&user, &self.config.limits, now);
        if verdict != Verdict::Busy && !delay.is_zero() {
            self.counters.verdicts_delayed += 1;
            self.throttle.defer(now + delay, Deferred::Verdict { check, verdict });
            return;
        }
        self.apply_verdict(check, verdict, now);
    }

    /// Hands out what the login pace and the verdict delays held back.
    pub(super) fn release_deferred(&mut self, now: Instant) {
        for d in self.throttle.take_due(now) {
            match d {
                Deferred::Check { check, user, password } => {
                    // Only if the connection still waits for this check.
                    let waiting = self
                        .conns
                        .get(&check.conn)
                        .and_then(|c| c.check.as_ref())
                        .is_some_and(|(pending, _)| *pending == check);
                    if waiting {
                        self.effects.push_back(Effect::CheckPassword { check, user, password });
                    }
                }
                Deferred::Verdict { check, verdict } => self.apply_verdict(check, verdict, now),
            }
        }
    }

    fn apply_verdict(&mut self, check: CheckId, verdict: Verdict, now: Instant) {
        let Some(c) = self.conns.get_mut(&check.conn) else { return };
        let user = match c.check.take() {
            Some((pending, user)) if pending == check => user,
            other => {
                c.check = other;
                return;
            }
        };
        match verdict {
            Verdict::Accepted { group } => {
                self.login_ok(check.conn, &user, group.as_deref(), now, LoginMethod::Password);
            }
            Verdict::Rejected => self.login_failed(check.conn, &user, now),
            // A temporary refusal, not a wrong password: openconnect shows
            // the form's error and asks again (openconnect-protocol.md §2.4).
            Verdict::Busy => {
                self.counters.logins_busy += 1;
                self.counters.logins_password_refused += 1;
                tracing::info!(user = %user, "password verifiers busy; login refused for now");
                self.ask_again(check.conn, "The gateway is busy; try again.");
            }
        }
        self.process(check.conn, now);
    }

    fn login_failed(&mut self, conn: ConnId, user: &str, now: Instant) {
        self.counters.logins_password_failed += 1;
        self.throttle.user_failed(user, &self.config.limits, now);
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.login_failures += 1;
        let (failures, peer) = (c.login_failures, c.peer);
        tracing::info!(%peer, user = %user, failures, "login failed");
        self.misbehaved(peer, Misbehaviour::WrongPassword, conn, now);
        if failures >= self.config.max_login_attempts {
            self.respond(conn, 401, "Unauthorized", &[("Connection", "close")], b"");
            self.close(conn, "too many failed logins", now);
        } else {
            self.ask_again(conn, "Login failed.");
        }
    }

    fn login_ok(&mut self, conn: ConnId, user: &str, group: Option<&str>, now: Instant, method: LoginMethod) {
        let config = self.config.clone();
        let peer = self.conns.get(&conn).map(|c| c.peer);
        // A group no [[group]] defines grants nothing: never the default's access.
        let Some(group) = config.group(group).map(|g| g.name.clone()) else {
            self.counters.logins_refused_group += 1;
            self.count_login(method, false);
            tracing::warn!(user = %user, group = ?group, ?peer, "login refused: the user's group is not a configured [[group]]");
            self.respond(conn, 401, "Unauthorized", &[("Connection", "close")], b"");
            return self.close(conn, "group not configured", now);
        };
        self.throttle.user_succeeded(user);
        // ocserv's max-same-clients: a login past the cap is refused; the
        // user's live sessions carry on.
        let cap = config.limits.max_sessions_per_user as usize;
        if cap > 0 && self.sessions.iter().filter(|s| s.user == user).count() >= cap {
            self.counters.logins_refused_session_cap += 1;
            self.count_login(method, false);
            tracing::warn!(user = %user, ?peer, cap, "login refused: the user holds limits.max_sessions_per_user sessions");
            return self.ask_again(conn, "Too many sessions for this user; log out elsewhere first.");
        }
        // A cluster node hands out fresh addresses from its share only.
        let allocated = match &config.cluster {
            Some(cl) => self.pool.allocate_where(|i| cl.owns_offset(i)),
            None => self.pool.allocate(),
        };
        let Some(id) = allocated else {
            self.counters.logins_refused_pool += 1;
            self.count_login(method, false);
            tracing::warn!(user = %user, "address pool exhausted; login refused");
            return self.ask_again(conn, "No addresses left; try again later.");
        };
        let address = self.pool.address(id);
        let cookie = match &config.cluster {
            Some(cl) => cl.mint(
                &CookieClaims {
                    user: user.to_string(),
                    group: group.clone(),
                    address,
                    issued: self.unix_now(now),
                    expires: config
                        .timers
                        .session_timeout
                        .map_or(u64::MAX, |t| self.unix_now(now).saturating_add(t.as_secs())),
                    node: cl.node,
                },
                &random_bytes::<16>(),
            ),
            None => random_hex::<32>(),
        };
        let s = Session::new(id, user.to_string(), group.clone(), cookie.clone(), address, now, now);
        tracing::info!(event = "login", session = %id, user = %user, group = %group, method = %method.as_str(), address = %s.address, peer = %peer.map_or_else(String::new, |p| p.to_string()), "login");
        self.sessions.insert(s);
        self.count_login(method, true);
        let body = auth::auth_success_xml(config.banner.as_deref());
        let set_cookie = format!("webvpn={cookie}; Secure; HttpOnly");
        self.respond(conn, 200, "OK", &[("Connection", "keep-alive"), ("Set-Cookie", &set_cookie)], body.as_bytes());
    }

    /// A password or certificate login's outcome, for
    /// `corridor_logins_total{method,outcome}` (a wrong password counts
    /// in `login_failed`; a certificate that does not verify never gets here).
    fn count_login(&mut self, method: LoginMethod, ok: bool) {
        let counter = match (method, ok) {
            (LoginMethod::Password, true) => &mut self.counters.logins_password_ok,
            (LoginMethod::Password, false) => &mut self.counters.logins_password_refused,
            (LoginMethod::Certificate, true) => &mut self.counters.logins_certificate_ok,
            (LoginMethod::Certificate, false) => &mut self.counters.logins_certificate_refused,
        };
        *counter += 1;
    }

    /// A cookie another node of the cluster minted: its session moves
    /// here, with the address it had (openconnect gives up on any other).
    pub(super) fn adopt(&mut self, cookie: &str, now: Instant) -> Option<SessionId> {
        let cluster = self.config.cluster.as_ref()?;
        let claims = cluster.verify(cookie)?;
        if claims.node == cluster.node {
            // Ours, and no longer live here: that session has ended.
            return None;
        }
        if self.is_revoked(cookie, now) {
            tracing::info!(user = %claims.user, "cluster cookie revoked here or at a peer");
            return None;
        }
        let unix_now = self.unix_now(now);
        if claims.issued > unix_now + 300 {
            tracing::warn!(user = %claims.user, "cluster cookie issued in the future; check the nodes' clocks");
            return None;
        }
        if claims.expires <= unix_now {
            tracing::info!(user = %claims.user, "cluster cookie past its expiry");
            return None;
        }
        let age = unix_now.saturating_sub(claims.issued);
        if self.config.timers.session_timeout.is_some_and(|t| age >= t.as_secs()) {
            tracing::info!(user = %claims.user, "cluster cookie past the session timeout");
            return None;
        }
        let id = self.pool.id_of(claims.address)?;
        if !self.pool.take(id) {
            tracing::warn!(user = %claims.user, address = %claims.address, "cluster cookie for an address in use here; refused");
            return None;
        }
        let Some(group) = self.config.group(Some(&claims.group)).map(|g| g.name.clone()) else {
            self.counters.logins_refused_group += 1;
            tracing::warn!(user = %claims.user, group = %claims.group, "cluster cookie for a group not configured here; refused");
            self.pool.release(id);
            return None;
        };
        tracing::info!(event = "adopted", session = %id, user = %claims.user, group = %group, address = %claims.address, age_s = age, "session adopted from a cluster peer");
        let created = now.checked_sub(Duration::from_secs(age)).unwrap_or(now);
        self.sessions.insert(Session::new(id, claims.user, group, cookie.to_owned(), claims.address, created, now));
        self.counters.sessions_adopted += 1;
        Some(id)
    }
}

/// How a login proved who the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginMethod {
    Password,
    Certificate,
}

impl LoginMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Certificate => "certificate",
        }
    }
}
