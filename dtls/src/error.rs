//! Fatal errors. Anything returned here ends the association and maps to
//! the alert we send; malformed, replayed or unauthenticated records are
//! dropped and counted in [`crate::Stats`] instead (RFC 6347 §4.1.2.7).

use crate::types::{AlertDescription, HandshakeType};

/// Why a handshake or association failed on our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A handshake message did not parse.
    Decode(HandshakeType),
    /// A message arrived that the current state cannot take.
    UnexpectedMessage(HandshakeType),
    /// A ChangeCipherSpec with a body other than `01`, or out of place.
    UnexpectedChangeCipherSpec,
    /// No cipher suite both sides allow, or the server chose one we did not offer.
    NoSharedCipherSuite,
    /// The peer does not speak DTLS 1.2.
    UnsupportedVersion,
    /// A value the protocol forbids (compression, renegotiation_info body…).
    IllegalParameter,
    /// The server answered with an extension we did not offer.
    UnsupportedExtension,
    /// The PSK lookup found no key for this identity / App-ID.
    UnknownPskIdentity,
    /// The peer's Finished did not verify: the keys differ (wrong PSK) or
    /// the transcript was tampered with.
    FinishedMismatch,
    /// The handshake did not complete in the configured time.
    HandshakeTimeout,
    /// Every sequence number of the epoch was used.
    SequenceExhausted,
    /// Our own crypto refused (should not happen with valid keys).
    Internal,
}

impl Error {
    /// The fatal alert that reports this error to the peer (RFC 5246 §7.2.2).
    pub fn alert(self) -> AlertDescription {
        match self {
            Error::Decode(_) => AlertDescription::DECODE_ERROR,
            Error::UnexpectedMessage(_) | Error::UnexpectedChangeCipherSpec => AlertDescription::UNEXPECTED_MESSAGE,
            Error::NoSharedCipherSuite => AlertDescription::HANDSHAKE_FAILURE,
            Error::UnsupportedVersion => AlertDescription::PROTOCOL_VERSION,
            Error::IllegalParameter => AlertDescription::ILLEGAL_PARAMETER,
            Error::UnsupportedExtension => AlertDescription::UNSUPPORTED_EXTENSION,
            Error::UnknownPskIdentity => AlertDescription::UNKNOWN_PSK_IDENTITY,
            Error::FinishedMismatch => AlertDescription::DECRYPT_ERROR,
            Error::HandshakeTimeout | Error::SequenceExhausted | Error::Internal => AlertDescription::INTERNAL_ERROR,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Decode(t) => write!(f, "malformed {t:?} message"),
            Error::UnexpectedMessage(t) => write!(f, "unexpected {t:?} message"),
            Error::UnexpectedChangeCipherSpec => f.write_str("unexpected ChangeCipherSpec"),
            Error::NoSharedCipherSuite => f.write_str("no shared cipher suite"),
            Error::UnsupportedVersion => f.write_str("peer does not support DTLS 1.2"),
            Error::IllegalParameter => f.write_str("illegal parameter in handshake"),
            Error::UnsupportedExtension => f.write_str("server sent an extension that was not offered"),
            Error::UnknownPskIdentity => f.write_str("no PSK for this identity"),
            Error::FinishedMismatch => f.write_str("peer's Finished did not verify (wrong PSK?)"),
            Error::HandshakeTimeout => f.write_str("handshake timed out"),
            Error::SequenceExhausted => f.write_str("record sequence numbers exhausted"),
            Error::Internal => f.write_str("internal crypto error"),
        }
    }
}

impl std::error::Error for Error {}
