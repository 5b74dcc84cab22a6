//! Code points as newtypes with named constants: unknown values round-trip
//! and `Debug` prints the name when there is one.

macro_rules! code_point {
    ($(#[$m:meta])* $name:ident($repr:ty) { $($(#[$cm:meta])* $konst:ident = $val:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$cm])* pub const $konst: Self = Self($val);)*

            /// The registered name of this value, if it has one here.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$konst => Some(stringify!($konst)),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }
    };
}

code_point! {
    /// TLS record content type (RFC 5246 §6.2.1).
    ContentType(u8) {
        CHANGE_CIPHER_SPEC = 20,
        ALERT = 21,
        HANDSHAKE = 22,
        APPLICATION_DATA = 23,
    }
}

code_point! {
    /// Handshake message type (RFC 5246 §7.4, RFC 6347 §4.3.2).
    HandshakeType(u8) {
        HELLO_REQUEST = 0,
        CLIENT_HELLO = 1,
        SERVER_HELLO = 2,
        HELLO_VERIFY_REQUEST = 3,
        NEW_SESSION_TICKET = 4,
        CERTIFICATE = 11,
        SERVER_KEY_EXCHANGE = 12,
        CERTIFICATE_REQUEST = 13,
        SERVER_HELLO_DONE = 14,
        CERTIFICATE_VERIFY = 15,
        CLIENT_KEY_EXCHANGE = 16,
        FINISHED = 20,
    }
}

code_point! {
    /// Protocol version on the wire. DTLS versions are one's complements,
    /// so a *smaller* number is a *newer* version.
    ProtocolVersion(u16) {
        DTLS1_0 = 0xfeff,
        DTLS1_2 = 0xfefd,
    }
}

code_point! {
    /// Cipher suite identifiers (IANA TLS registry).
    CipherSuite(u16) {
        /// RFC 5487.
        TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00a8,
        /// RFC 5487.
        TLS_PSK_WITH_AES_256_GCM_SHA384 = 0x00a9,
        /// RFC 7905.
        TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xccab,
        /// RFC 5746 signalling value, never negotiated.
        TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff,
    }
}

code_point! {
    /// Hello extension types.
    ExtensionType(u16) {
        SIGNATURE_ALGORITHMS = 13,
        ENCRYPT_THEN_MAC = 22,
        EXTENDED_MASTER_SECRET = 23,
        RECORD_SIZE_LIMIT = 28,
        SESSION_TICKET = 35,
        RENEGOTIATION_INFO = 0xff01,
        /// Private extension older openconnect clients (7.x) used to carry
        /// the App-ID: body `len(1) ‖ id`.
        OPENCONNECT_APP_ID = 48018,
    }
}

code_point! {
    /// Alert level (RFC 5246 §7.2).
    AlertLevel(u8) {
        WARNING = 1,
        FATAL = 2,
    }
}

code_point! {
    /// Alert description (RFC 5246 §7.2).
    AlertDescription(u8) {
        CLOSE_NOTIFY = 0,
        UNEXPECTED_MESSAGE = 10,
        BAD_RECORD_MAC = 20,
        RECORD_OVERFLOW = 22,
        HANDSHAKE_FAILURE = 40,
        ILLEGAL_PARAMETER = 47,
        UNKNOWN_CA = 48,
        DECODE_ERROR = 50,
        DECRYPT_ERROR = 51,
        PROTOCOL_VERSION = 70,
        INSUFFICIENT_SECURITY = 71,
        INTERNAL_ERROR = 80,
        USER_CANCELED = 90,
        NO_RENEGOTIATION = 100,
        UNSUPPORTED_EXTENSION = 110,
        /// RFC 4279 §2.
        UNKNOWN_PSK_IDENTITY = 115,
    }
}

impl ProtocolVersion {
    /// Whether this version is DTLS 1.2 or newer (numerically at most 0xfefd).
    pub fn is_at_least_dtls12(self) -> bool {
        (0xfe00..=0xfefd).contains(&self.0)
    }

    /// Whether this is a DTLS version at all (major byte 0xfe).
    pub fn is_dtls(self) -> bool {
        self.0 >> 8 == 0xfe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_names_and_unknowns_round_trip() {
        assert_eq!(format!("{:?}", CipherSuite(0x00a9)), "TLS_PSK_WITH_AES_256_GCM_SHA384");
        assert_eq!(format!("{:?}", CipherSuite(0x1234)), "CipherSuite(0x1234)");
        assert!(ProtocolVersion::DTLS1_2.is_at_least_dtls12());
        assert!(!ProtocolVersion::DTLS1_0.is_at_least_dtls12());
    }
}
