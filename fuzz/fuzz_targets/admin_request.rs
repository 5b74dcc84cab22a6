//! The admin endpoint's request line (`service::admin::parse_request_line`,
//! the pure part of what the admin thread does with an HTTP request) and
//! its routing (`control::admin::route`) over arbitrary bytes: at most the
//! 4 KiB the reader keeps. Method and path are words of the first line;
//! only `GET /metrics` and `GET /healthz` are served.
#![no_main]

use control::admin::{route, AdminRequest};
use service::admin::parse_request_line;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(4096)];
    let Some((method, path)) = parse_request_line(head) else { return };
    for word in [&method, &path] {
        assert!(!word.is_empty() && !word.contains(char::is_whitespace), "{word:?}");
    }
    assert!(method.len() + path.len() <= 3 * head.len(), "lossy UTF-8 at most triples a byte");
    match route(&method, &path) {
        AdminRequest::Metrics => assert_eq!((method.as_str(), path.as_str()), ("GET", "/metrics")),
        AdminRequest::Health => assert_eq!((method.as_str(), path.as_str()), ("GET", "/healthz")),
        AdminRequest::NotFound => assert!(method != "GET" || (path != "/metrics" && path != "/healthz")),
    }
});
