//! The gateway's HTTP request parser (`proto::http::parse_request`) over
//! arbitrary bytes, with the default limits and with tight ones taken from
//! the last input byte (so the limit checks themselves are reached).
//!
//! A complete request must lie inside the input and inside its limits, and
//! parse the same from exactly its own bytes; one byte fewer is `Partial`.
//! Pipelined requests are read one after the other as the gateway does.
#![no_main]

use proto::http::{parse_request, Limits, Parsed};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let last = usize::from(data.last().copied().unwrap_or(0));
    let tight = Limits { max_head: 16 + last * 8, max_body: last * 4, max_headers: last % 16 };
    for limits in [Limits::default(), tight] {
        let mut at = 0;
        // A pipelined request uses at least its request line: bounded.
        while let Ok(Parsed::Complete { request, consumed }) = parse_request(&data[at..], &limits) {
            let buf = &data[at..];
            assert!(consumed > 0 && consumed <= buf.len(), "consumed {consumed} of {}", buf.len());
            assert!(request.body.len() <= limits.max_body);
            assert!(consumed - request.body.len() <= limits.max_head, "head over max_head");
            assert_eq!(&buf[consumed - request.body.len()..consumed], request.body, "the body ends the request");
            let _ = (request.header("Host"), request.cookie("webvpn"), request.keep_alive());
            match parse_request(&buf[..consumed], &limits) {
                Ok(Parsed::Complete { request: again, consumed: c }) => {
                    assert_eq!(c, consumed);
                    assert_eq!((again.method, again.path, again.body), (request.method, request.path, request.body));
                }
                other => panic!("a request's own bytes parse as {other:?}"),
            }
            assert!(
                matches!(parse_request(&buf[..consumed - 1], &limits), Ok(Parsed::Partial)),
                "a request cut short must be Partial"
            );
            at += consumed;
        }
    }
});
