//! See `dtls::fuzz::client_handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dtls::fuzz::client_handshake(data));
