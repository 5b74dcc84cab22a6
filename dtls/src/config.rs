//! Client and server configuration.

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::replay::MIN_WINDOW;
use crate::suite::{default_suites, SuiteParams};
use crate::types::CipherSuite;

/// A pre-shared key; wiped when dropped.
pub type Psk = Zeroizing<Vec<u8>>;

/// Retransmission and give-up timers (RFC 6347 §4.2.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// First retransmission timeout; RFC 6347 recommends 1 s.
    pub initial_retransmit: Duration,
    /// The back-off doubles up to this; RFC 6347 says at least 60 s.
    pub max_retransmit: Duration,
    /// The handshake fails if it has not completed this long after it began.
    pub handshake_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            initial_retransmit: Duration::from_secs(1),
            max_retransmit: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(60),
        }
    }
}

/// Settings both roles share.
#[derive(Debug, Clone)]
pub struct Common {
    /// Suites in preference order.
    pub suites: Vec<CipherSuite>,
    /// Largest datagram we send (the path MTU minus IP and UDP headers).
    /// Handshake messages are fragmented to fit.
    pub max_datagram_size: usize,
    pub timers: Timers,
    /// Anti-replay window size in records (at least 64).
    pub replay_window: usize,
}

/// Smallest `max_datagram_size` accepted: room for a record header, a
/// handshake header, AEAD expansion and some payload.
pub const MIN_DATAGRAM_SIZE: usize = 128;

impl Default for Common {
    fn default() -> Self {
        Self { suites: default_suites(), max_datagram_size: 1400, timers: Timers::default(), replay_window: 1024 }
    }
}

/// A configuration mistake, naming the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub fix: &'static str,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.fix)
    }
}

impl std::error::Error for ConfigError {}

impl Common {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.suites.is_empty() {
            return Err(ConfigError { field: "suites", fix: "list at least one supported suite" });
        }
        for s in &self.suites {
            match SuiteParams::of(*s) {
                None => {
                    return Err(ConfigError {
                        field: "suites",
                        fix: "use only PSK AES-GCM or PSK ChaCha20-Poly1305 suites",
                    })
                }
                Some(p) if cfg!(feature = "fips") && !p.fips_approved() => {
                    return Err(ConfigError {
                        field: "suites",
                        fix: "FIPS builds allow only AES-GCM suites; remove ChaCha20-Poly1305",
                    })
                }
                Some(_) => {}
            }
        }
        if self.max_datagram_size < MIN_DATAGRAM_SIZE || self.max_datagram_size > 65_507 {
            return Err(ConfigError { field: "max_datagram_size", fix: "set between 128 and 65507 bytes" });
        }
        if self.replay_window < MIN_WINDOW {
            return Err(ConfigError { field: "replay_window", fix: "set to 64 or more" });
        }
        let t = &self.timers;
        if t.initial_retransmit.is_zero() || t.max_retransmit < t.initial_retransmit || t.handshake_timeout.is_zero() {
            return Err(ConfigError {
                field: "timers",
                fix: "initial_retransmit must be > 0 and <= max_retransmit, handshake_timeout > 0",
            });
        }
        Ok(())
    }
}

/// What a client offers and with which key.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub common: Common,
    /// PSK identity sent in ClientKeyExchange (openconnect sends `psk`).
    pub psk_identity: Vec<u8>,
    pub psk: Psk,
    /// ClientHello session_id: the OpenConnect App-ID (0..=32 bytes).
    pub session_id: Vec<u8>,
    /// Also send the App-ID in extension 48018, as openconnect 7.x did.
    pub app_id_extension: bool,
    /// Offer extended master secret (RFC 7627). openconnect's profile does not.
    pub offer_extended_master_secret: bool,
}

impl ClientConfig {
    pub fn new(psk_identity: &[u8], psk: &[u8]) -> Self {
        Self {
            common: Common::default(),
            psk_identity: psk_identity.to_vec(),
            psk: Zeroizing::new(psk.to_vec()),
            session_id: Vec::new(),
            app_id_extension: false,
            offer_extended_master_secret: true,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.common.validate()?;
        if self.session_id.len() > 32 {
            return Err(ConfigError { field: "session_id", fix: "use at most 32 bytes" });
        }
        if self.psk.is_empty() || self.psk.len() > 64 {
            return Err(ConfigError { field: "psk", fix: "use a key of 1 to 64 bytes" });
        }
        if self.psk_identity.len() > 128 {
            return Err(ConfigError { field: "psk_identity", fix: "use at most 128 bytes" });
        }
        Ok(())
    }
}

/// What the server's PSK lookup sees (RFC 4279 §5.1 lets the server use any
/// of it). OpenConnect clients always send identity `psk`; the App-ID in the
/// ClientHello is what selects the session.
#[derive(Debug, Clone, Copy)]
pub struct PskRequest<'a> {
    pub identity: &'a [u8],
    /// The hint we sent in ServerKeyExchange, if any.
    pub hint: Option<&'a [u8]>,
    /// The ClientHello session_id (never echoed by us).
    pub session_id: &'a [u8],
    /// The body of extension 48018 (the legacy App-ID), if present.
    pub app_id_extension: Option<&'a [u8]>,
    /// The App-ID by openconnect's rule: extension 48018, else session_id.
    pub app_id: &'a [u8],
}

/// The server's key lookup.
pub trait PskResolver: Send + Sync + core::fmt::Debug {
    /// The key for this handshake, or `None` to fail it with
    /// `unknown_psk_identity`.
    fn resolve(&self, request: &PskRequest<'_>) -> Option<Psk>;
}

/// A resolver with one identity and key, for tests and simple deployments.
#[derive(Debug)]
pub struct StaticPsk {
    pub identity: Vec<u8>,
    pub psk: Psk,
}

impl PskResolver for StaticPsk {
    fn resolve(&self, request: &PskRequest<'_>) -> Option<Psk> {
        (request.identity == self.identity.as_slice()).then(|| self.psk.clone())
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `common.suites` is the server's preference order.
    pub common: Common,
    pub psk_resolver: Arc<dyn PskResolver>,
    /// Sent in ServerKeyExchange when set; no ServerKeyExchange otherwise.
    pub identity_hint: Option<Vec<u8>>,
    /// Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1).
    pub cookies: bool,
    /// How often the cookie secret rotates.
    pub cookie_rotation: Duration,
    /// Pick the suite by the client's order instead of ours.
    pub prefer_client_order: bool,
}

impl ServerConfig {
    pub fn new(psk_resolver: Arc<dyn PskResolver>) -> Self {
        Self {
            common: Common::default(),
            psk_resolver,
            identity_hint: None,
            cookies: true,
            cookie_rotation: Duration::from_secs(60),
            prefer_client_order: false,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.common.validate()?;
        if self.identity_hint.as_ref().is_some_and(|h| h.len() > 128) {
            return Err(ConfigError { field: "identity_hint", fix: "use at most 128 bytes" });
        }
        if self.cookie_rotation.is_zero() {
            return Err(ConfigError { field: "cookie_rotation", fix: "set a period above zero, e.g. 60 s" });
        }
        Ok(())
    }
}
