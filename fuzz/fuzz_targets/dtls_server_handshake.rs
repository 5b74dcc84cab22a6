//! See `dtls::fuzz::server_handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dtls::fuzz::server_handshake(data));
