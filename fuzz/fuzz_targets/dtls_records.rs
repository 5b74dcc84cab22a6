//! See `dtls::fuzz::records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dtls::fuzz::records(data));
