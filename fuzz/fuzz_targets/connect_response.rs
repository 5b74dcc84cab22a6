//! What a device reads from a gateway after CONNECT (`proto::http_response`
//! and `proto::connect`'s client half) over arbitrary bytes. Nothing may
//! panic, and an accepted answer holds what openconnect insists on: a
//! non-zero MTU and, with DTLS, an App-ID of 1..=32 bytes (§3.2).
#![no_main]

use proto::connect::{parse_connect_response, APP_ID_MAX};
use proto::http_response::{parse_response, BodyMode, ResponseLimits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(Some((response, used))) = parse_response(data, BodyMode::HeadOnly, &ResponseLimits::default()) else {
        return;
    };
    assert!(used <= data.len());
    if let Ok(config) = parse_connect_response(&response) {
        assert_ne!(config.mtu, 0);
        if let Some(dtls) = config.dtls {
            assert!((1..=APP_ID_MAX).contains(&dtls.app_id.len()) && dtls.port != 0);
        }
    }
});
