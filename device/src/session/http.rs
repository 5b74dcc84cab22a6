//! The HTTP phase of a [`DeviceSession`]: the login exchange (§2), its
//! forms and cookies, and CONNECT (§3) up to the tunnel's configuration.

use std::io::{ErrorKind, Read, Write};
use std::net::Ipv4Addr;
use std::time::Instant;

use proto::auth::{self, InputKind, ServerAuth};
use proto::connect::{self, ConnectOptions, ConnectResponseError};
use proto::http_response::{parse_response, BodyMode, Response, ResponseLimits};
use zeroize::Zeroizing;

use super::{DeviceSession, Event, Login, Phase, HOSTNAME};
use crate::error::{DeviceError, DisconnectReason};
use crate::liveness::Liveness;

impl DeviceSession {
    pub(super) fn post(&mut self, path: &str, body: &[u8]) -> Result<(), DeviceError> {
        let cookies = self.login.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
        let mut req = Zeroizing::new(Vec::with_capacity(512 + body.len()));
        req.extend_from_slice(
            format!("POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n", self.config.host, self.config.user_agent)
                .as_bytes(),
        );
        if !cookies.is_empty() {
            req.extend_from_slice(format!("Cookie: {cookies}\r\n").as_bytes());
        }
        req.extend_from_slice(
            format!(
                "Accept: */*\r\nAccept-Encoding: identity\r\nX-Transcend-Version: 1\r\nX-Aggregate-Auth: 1\r\n\
                 X-Support-HTTP-Auth: true\r\nContent-Type: application/xml; charset=utf-8\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(body);
        self.write_plaintext(&req)
    }

    pub(super) fn write_plaintext(&mut self, bytes: &[u8]) -> Result<(), DeviceError> {
        self.tls.writer().write_all(bytes).map_err(|_| DeviceError::ConnectionNotKept)
    }

    pub(super) fn drain_plaintext(&mut self, now: Instant) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if !self.on_connection() {
                return;
            }
            match self.tls.reader().read(&mut buf) {
                Ok(n) if n > 0 => self.on_plaintext(now, buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // close_notify, or the stream ended without one.
                _ => return self.connection_lost(now, DisconnectReason::TlsClosed),
            }
        }
    }

    /// Plaintext rustls decrypted before its connection failed.
    pub(super) fn drain_buffered_plaintext(&mut self, now: Instant) {
        let mut buf = [0u8; 16 * 1024];
        while self.on_connection() {
            match self.tls.reader().read(&mut buf) {
                Ok(n) if n > 0 => self.on_plaintext(now, buf.get(..n).unwrap_or_default()),
                _ => return,
            }
        }
    }

    pub(super) fn on_plaintext(&mut self, now: Instant, bytes: &[u8]) {
        match self.phase {
            Phase::Authenticating | Phase::Connecting => {
                self.http_in.extend_from_slice(bytes);
                self.parse_http(now);
            }
            Phase::Tunnel => {
                self.deframer.push(bytes);
                self.drain_frames(now);
            }
            Phase::Detached | Phase::Closed => {}
        }
    }

    pub(super) fn parse_http(&mut self, now: Instant) {
        loop {
            let mode = if self.phase == Phase::Connecting { BodyMode::HeadOnly } else { BodyMode::Delimited };
            let (response, used) = match parse_response(&self.http_in, mode, &ResponseLimits::default()) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => return self.fail(DeviceError::Http(e)),
            };
            let rest = self.http_in.split_off(used.min(self.http_in.len()));
            self.http_in = rest;
            match self.phase {
                Phase::Authenticating => self.on_auth_response(&response),
                Phase::Connecting => {
                    self.on_connect_response(now, &response);
                    // What followed the head is already CSTP (§3.2).
                    let rest = std::mem::take(&mut self.http_in);
                    if self.phase == Phase::Tunnel && !rest.is_empty() {
                        self.deframer.push(&rest);
                        self.drain_frames(now);
                    }
                    return;
                }
                Phase::Tunnel | Phase::Detached | Phase::Closed => return,
            }
        }
    }

    pub(super) fn on_auth_response(&mut self, r: &Response) {
        for (name, value) in r.set_cookies() {
            self.login.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.login.cookies.push((name.to_string(), value.to_string()));
            }
        }
        if r.status != 200 {
            self.events.push_back(Event::AuthFailed(format!("{} {}", r.status, r.reason)));
            return self.close(DisconnectReason::AuthFailed);
        }
        let auth = match auth::parse_server_auth(&r.body) {
            Ok(a) => a,
            Err(e) => return self.fail(DeviceError::AuthXml(e)),
        };
        if auth.is_success() {
            return self.on_login_success(r, &auth);
        }
        if !r.keep_alive() {
            return self.fail(DeviceError::ConnectionNotKept);
        }
        match self.answer(&auth) {
            Ok((action, body)) => {
                if let Err(e) = self.post(&action, body.as_bytes()) {
                    self.fail(e);
                }
            }
            Err(message) => {
                self.events.push_back(Event::AuthFailed(message));
                self.close(DisconnectReason::AuthFailed);
            }
        }
    }

    /// The auth-reply for a form (§2.5), or why the device cannot answer.
    pub(super) fn answer(&mut self, auth: &ServerAuth) -> Result<(String, Zeroizing<String>), String> {
        let refused = || auth.error.clone().or_else(|| auth.message.clone()).unwrap_or_else(|| auth.id.clone());
        let Some(form) = &auth.form else {
            return Err(refused());
        };
        let asks_password = form.inputs.iter().any(|i| i.kind == InputKind::Password);
        // A form again after the password went out: the login failed (ocserv
        // re-prompts with "Login failed.", §2.1). Do not loop.
        if self.login.password_sent && (asks_password || auth.error.is_some()) {
            return Err(refused());
        }
        // A certificate-only device asked for credentials: the gateway did
        // not take the certificate alone (§2.7). Say so rather than send
        // empty answers.
        let none_to_give = |what: &str| {
            let said = auth.error.clone().or_else(|| auth.message.clone()).unwrap_or_default();
            format!("the gateway asks for a {what} and this device has none (certificate not accepted alone?): {said}")
        };
        let mut answers: Vec<(&str, &str)> = Vec::new();
        for input in &form.inputs {
            let value = match &input.kind {
                InputKind::Text if self.config.username.is_empty() => return Err(none_to_give("user name")),
                InputKind::Password if self.config.password.is_empty() => return Err(none_to_give("password")),
                InputKind::Text => self.config.username.as_str(),
                InputKind::Password => self.config.password.as_str(),
                InputKind::Hidden => input.value.as_deref().unwrap_or(""),
                InputKind::Other(kind) => return Err(format!("cannot answer input `{}` of type `{kind}`", input.name)),
            };
            answers.push((&input.name, value));
        }
        let body = auth::auth_reply_xml(&answers, auth.opaque.as_deref());
        self.login.password_sent |= asks_password;
        Ok((request_path(&form.action), body))
    }

    pub(super) fn on_login_success(&mut self, r: &Response, auth: &ServerAuth) {
        let cookie = self
            .login
            .cookies
            .iter()
            .find(|(n, _)| n == proto::connect::SESSION_COOKIE)
            .map(|(_, v)| v.clone())
            .or_else(|| auth.session_token.clone());
        let Some(cookie) = cookie else {
            self.events.push_back(Event::AuthFailed("login succeeded without a webvpn cookie".into()));
            return self.close(DisconnectReason::AuthFailed);
        };
        self.events.push_back(Event::LoggedIn);
        // The auth cookies stay behind: only `webvpn` goes on CONNECT (§2.6).
        self.login = Login::default();
        if !r.keep_alive() {
            return self.fail(DeviceError::ConnectionNotKept);
        }
        let cookie = Zeroizing::new(cookie);
        self.cookie = Some(cookie.clone());
        self.phase = Phase::Connecting;
        self.send_connect(&cookie, self.config.previous_address);
    }

    /// CONNECT with the cookie (§3.1), on the current TLS connection.
    pub(super) fn send_connect(&mut self, cookie: &str, previous_address: Option<Ipv4Addr>) {
        let request = connect::connect_request(
            &ConnectOptions {
                host: &self.config.host,
                user_agent: &self.config.user_agent,
                hostname: HOSTNAME,
                base_mtu: self.config.base_mtu,
                dtls: self.config.dtls,
                previous_address,
            },
            cookie,
        );
        if let Err(e) = self.write_plaintext(&request) {
            self.fail(e);
        }
    }

    pub(super) fn on_connect_response(&mut self, now: Instant, r: &Response) {
        let reconnecting = self.reconnect.is_some();
        let config = match connect::parse_connect_response(r) {
            Ok(c) => c,
            Err(ConnectResponseError::Refused { status, reason }) if !reconnecting => {
                return self.close(DisconnectReason::ConnectRefused { status, reason })
            }
            // §6.6: a refused cookie ends the retry loop; log in again.
            Err(ConnectResponseError::Refused { status: status @ (401 | 403), reason }) => {
                return self.close(DisconnectReason::CookieRejected { status, reason })
            }
            // Anything else (503 …) is one failed attempt.
            Err(ConnectResponseError::Refused { status, reason }) => {
                return self.connection_lost(now, DisconnectReason::ConnectRefused { status, reason })
            }
            Err(e) => return self.fail(DeviceError::Tunnel(e)),
        };
        if reconnecting {
            // openconnect gives up on a different address (§3.2, reference issue #38).
            if let Some(previous) = self.tunnel.as_ref().map(|t| t.address).filter(|a| *a != config.address) {
                return self.close(DisconnectReason::AddressChanged { previous, offered: config.address });
            }
            self.reconnect = None;
            self.stats.reconnects += 1;
        }
        self.phase = Phase::Tunnel;
        self.cstp = Some(Liveness::new(now, config.dpd_secs, config.keepalive_secs));
        let dtls = config.dtls.as_ref().filter(|_| self.config.dtls);
        self.events.push_back(Event::TunnelUp {
            address: config.address,
            netmask: config.netmask,
            mtu: config.mtu,
            dtls_port: dtls.map(|d| d.port),
            app_id: dtls.map(|d| d.app_id.clone()),
        });
        let start = dtls.is_some();
        self.tunnel = Some(config);
        if start {
            self.start_dtls(now);
        }
    }
}

/// The path to POST a form's answers to: `action` as given when it is a
/// path, the path part of an absolute URL (§2.4).
fn request_path(action: &str) -> String {
    if action.starts_with('/') {
        return action.to_string();
    }
    if let Some((_, after_scheme)) = action.split_once("://") {
        return after_scheme.find('/').and_then(|i| after_scheme.get(i..)).unwrap_or("/").to_string();
    }
    format!("/{action}")
}

#[cfg(test)]
mod tests {
    use super::request_path;

    #[test]
    fn request_paths() {
        assert_eq!(request_path("/auth"), "/auth");
        assert_eq!(request_path("https://vpn.test/grp/auth"), "/grp/auth");
        assert_eq!(request_path("https://vpn.test"), "/");
        assert_eq!(request_path("auth"), "/auth");
    }
}
