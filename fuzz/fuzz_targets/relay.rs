//! What a relay reads from strangers (`proto::sni`, `proto::relay`) over
//! arbitrary bytes: the start of a device stream, a run of link frames
//! (every type, the cluster's Revoke too: both sides parse them), a
//! datagram on a flow port. Nothing may panic; a frame that parses must
//! write back to the bytes it came from (the format has one encoding), and
//! a name that is sniffed must be a lowercase DNS name.
#![no_main]

use proto::relay::{next_frame, Bind};
use proto::sni::{sniff, Sniffed};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(Sniffed::Hello { server_name: Some(name) }) = sniff(data) {
        assert!(!name.is_empty() && name.len() <= 255);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)));
    }
    let mut at = 0;
    while let Ok(Some((frame, used))) = next_frame(&data[at..]) {
        assert_eq!(frame.to_vec(), &data[at..at + used], "one encoding per frame");
        at += used;
    }
    if let Some(b) = Bind::parse(data) {
        assert_eq!(&b.to_bytes()[..], data);
    }
});
