//! The relay's SNI reader (`proto::sni::sniff`) over arbitrary bytes: the
//! start of a device's TCP stream. A name that is read is a lowercase DNS
//! name of 1..=255 bytes; the answer never changes as more bytes arrive (a
//! shorter prefix either needs more or says the same).
#![no_main]

use proto::sni::{sniff, Sniffed};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let result = sniff(data);
    if let Ok(Sniffed::Hello { server_name: Some(name) }) = &result {
        assert!(!name.is_empty() && name.len() <= 255);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)));
    }
    if let Ok(Sniffed::Hello { .. }) = &result {
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            match sniff(&data[..cut]) {
                Ok(Sniffed::NeedMore) => {}
                prefix => assert_eq!(prefix, result, "the first {cut} bytes answer differently"),
            }
        }
    }
});
