//! The ctl socket's request framing and parser (`control::ctl::framing`,
//! `control::ctl::parse_request`: the pure part of what the admin thread
//! does with a ctl connection's bytes) over arbitrary bytes, at most the
//! 4 KiB it keeps. A request that parses is written back out as the client
//! writes it, and that line parses to the same request.
#![no_main]

use control::ctl::{framing, parse_request, Framing, MAX_REQUEST};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let buf = &data[..data.len().min(MAX_REQUEST)];
    let line = match framing(buf) {
        Framing::Line(n) => {
            assert_eq!(buf.get(n), Some(&b'\n'));
            assert!(!buf[..n].contains(&b'\n'), "the first newline ends the request");
            &buf[..n]
        }
        Framing::Partial => {
            assert!(!buf.contains(&b'\n') && buf.len() < MAX_REQUEST);
            buf
        }
        Framing::TooLong => {
            assert!(!buf.contains(&b'\n') && buf.len() == MAX_REQUEST);
            return;
        }
    };
    if let Ok(request) = parse_request(line) {
        let again = request.to_line();
        assert!(again.ends_with('\n') && again.matches('\n').count() == 1, "{again:?}");
        assert_eq!(parse_request(again.trim_end_matches('\n').as_bytes()), Ok(request), "{again:?}");
    }
});
