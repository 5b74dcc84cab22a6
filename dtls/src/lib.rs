//! corridor's DTLS 1.2: plain-PSK suites on aws-lc-rs, sans-IO.
//!
//! This is the data channel of an OpenConnect tunnel: DTLS 1.2 (RFC 6347 on
//! RFC 5246) with plain PSK key exchange (RFC 4279) and AEAD suites
//!
//! | suite | code | PRF |
//! |---|---|---|
//! | `TLS_PSK_WITH_AES_256_GCM_SHA384` | 0x00A9 | SHA-384 |
//! | `TLS_PSK_WITH_AES_128_GCM_SHA256` | 0x00A8 | SHA-256 |
//! | `TLS_PSK_WITH_CHACHA20_POLY1305_SHA256` (not in FIPS builds) | 0xCCAB | SHA-256 |
//!
//! extended master secret (RFC 7627) when offered but never required,
//! stateless cookies, fragmentation and retransmission, and an anti-replay
//! window.
//!
//! Three layers, usable on their own:
//!
//! * [`Acceptor`] and [`Connection`]: the handshake as a state machine.
//!   Bytes and `now` go in; datagrams, timers and [`Event`]s come out. See
//!   the [`connection`] module for the call order.
//! * [`SessionKeys`]: once established, the record state as an owned value
//!   (keys wiped on drop) — what the control plane hands to a data-plane shard.
//! * [`RecordProtection`]: seals and opens records in place on the caller's
//!   buffers, with no allocation, generic over a [`crypto::CryptoProvider`]
//!   (aws-lc-rs, or a null provider for fuzzing and cost measurement).
//!
//! The crate has no I/O, no threads and no clock.

#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod connection;
mod cookie;
pub mod crypto;
mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod handshake;
pub mod keys;
pub mod protection;
pub mod record;
pub mod replay;
pub mod suite;
pub mod types;

pub use config::{ClientConfig, Common, ConfigError, Psk, PskRequest, PskResolver, ServerConfig, StaticPsk, Timers};
pub use connection::{
    Accept, AcceptDrop, Acceptor, CloseReason, Connection, Event, HandshakeInfo, PeekedClientHello, SendError, Stats,
};
pub use error::Error;
pub use protection::{OpenError, Opened, RecordProtection, Role, SealError, SessionKeys};
pub use types::{
    AlertDescription, AlertLevel, CipherSuite, ContentType, ExtensionType, HandshakeType, ProtocolVersion,
};

/// `N` bytes from the operating system's CSPRNG via aws-lc.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    use aws_lc_rs::rand::SecureRandom;
    let mut out = [0u8; N];
    // AWS-LC's RNG aborts the process rather than return an error on
    // entropy failure, so this cannot fail in practice; if it ever did,
    // continuing with predictable randoms would be worse than stopping.
    aws_lc_rs::rand::SystemRandom::new().fill(&mut out).expect("the system CSPRNG failed");
    out
}
