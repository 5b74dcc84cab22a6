//! Property tests that double as fuzz targets: the parsers of untrusted
//! bytes never panic, and the CSTP deframer is indifferent to how the TLS
//! stream is cut into reads.

// Test helpers: a panic is how they report a failed expectation.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)]

use proptest::prelude::*;

use proto::auth;
use proto::connect;
use proto::cstp::{self, Deframer, Frame, PacketType};
use proto::grant::Policy;
use proto::http::{self, Limits, Parsed};
use proto::http_response::{self, BodyMode, ResponseLimits};

const TYPES: [PacketType; 7] = [
    PacketType::DATA,
    PacketType::DPD_REQ,
    PacketType::DPD_RESP,
    PacketType::DISCONNECT,
    PacketType::KEEPALIVE,
    PacketType::COMPRESSED,
    PacketType::TERMINATE,
];

fn frame() -> impl Strategy<Value = Frame> {
    (0..TYPES.len(), prop::collection::vec(any::<u8>(), 0..1500))
        .prop_map(|(t, payload)| Frame { packet_type: TYPES[t], payload })
}

/// Splits `bytes` into chunks whose sizes cycle through `cuts`.
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    for &cut in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(cut.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// Bytes that look like the auth XML often enough to get deep.
fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "<config-auth type=\"auth-reply\">",
        "</config-auth>",
        "<auth>",
        "</auth>",
        "<username>",
        "</username>",
        "<password>",
        "</password>",
        "<opaque>",
        "</opaque>",
        "<auth id=\"main\">",
        "<form method=\"post\" action=\"/a\">",
        "</form>",
        "<input type=\"text\" name=\"u\" label=\"U:\"/>",
        "<input type=\"hidden\" name=\"h\" value=\"&lt;\"/>",
        "<select name=\"group_list\">",
        "</select>",
        "<option value=\"g\">",
        "</option>",
        "<message>",
        "</message>",
        "<session-token>",
        "</session-token>",
        "<x/>",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE",
        "&amp;",
        "&#x41;",
        "&#",
        "&",
        ";",
        "\"",
        "'",
        "=",
        " ",
        "a",
        "\u{e9}",
        "<",
        ">",
        "/",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|v| v.concat().into_bytes())
}

/// Bytes that look like a CONNECT response often enough to get deep.
fn responseish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "HTTP/1.1 200 CONNECTED\r\n",
        "HTTP/1.1 401 Unauthorized\r\n",
        "HTTP/1.0 200 OK\r\n",
        "X-CSTP-Address: 10.0.0.1\r\n",
        "X-CSTP-Address: 2001:db8::1\r\n",
        "X-CSTP-MTU: 1400\r\n",
        "X-CSTP-MTU: 0\r\n",
        "X-CSTP-Netmask: 255.255.255.0\r\n",
        "X-CSTP-Split-Include: 10.0.0.0/255.0.0.0\r\n",
        "X-CSTP-Split-Exclude: 10.0.0.0/33\r\n",
        "X-CSTP-Idle-Timeout: none\r\n",
        "X-CSTP-Rekey-Time: 99999999999\r\n",
        "X-CSTP-Rekey-Method: ssl\r\n",
        "X-DTLS-Port: 443\r\n",
        "X-DTLS-App-ID: 0a\r\n",
        "X-DTLS-App-ID: \u{e9}\u{e9}\r\n",
        "X-DTLS-CipherSuite: PSK-NEGOTIATE\r\n",
        "Content-Length: 2\r\n",
        "\r\n",
        ":",
        "/",
        " ",
        "1",
        "\u{0}",
    ]);
    prop::collection::vec(pieces, 0..30).prop_map(|v| v.concat().into_bytes())
}

/// Everything a device does with a CONNECT answer: parse the head, read it.
fn exercise_connect_response(bytes: &[u8]) {
    for mode in [BodyMode::HeadOnly, BodyMode::Delimited] {
        if let Ok(Some((response, used))) = http_response::parse_response(bytes, mode, &ResponseLimits::default()) {
            assert!(used <= bytes.len());
            if let Ok(config) = connect::parse_connect_response(&response) {
                assert!(config.mtu != 0);
                assert!(config.dtls.is_none_or(|d| (1..=connect::APP_ID_MAX).contains(&d.app_id.len())));
            }
        }
    }
}

/// Bytes that look like an HTTP head often enough to get deep.
fn httpish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n",
        "POST /auth HTTP/1.1\r\n",
        "GET / HTTP/1.0\r\n",
        "Content-Length: 3\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Cookie: webvpn=a; b=c\r\n",
        "X-CSTP-Address: 10.0.0.1\r\n",
        "X-CSTP-Base-MTU: 1500\r\n",
        "X-DTLS-CipherSuite: PSK-NEGOTIATE\r\n",
        "Connection: close\r\n",
        "\r\n",
        "\r",
        "\n",
        ":",
        " ",
        "abc",
        "\u{0}",
        "\u{ff}",
    ]);
    prop::collection::vec(pieces, 0..30).prop_map(|v| v.concat().into_bytes())
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (0usize..300, 0usize..100, 0usize..10).prop_map(|(max_head, max_body, max_headers)| Limits {
        max_head,
        max_body,
        max_headers,
    })
}

/// Everything a server does with a request buffer: parse, then CONNECT.
fn exercise_http(bytes: &[u8], limits: &Limits) {
    let mut at = 0;
    while let Ok(Parsed::Complete { request, consumed }) = http::parse_request(&bytes[at..], limits) {
        assert!(consumed > 0 && consumed <= bytes.len() - at);
        assert!(request.body.len() <= limits.max_body);
        let _ = request.keep_alive();
        let _ = request.cookie("webvpn");
        let _ = connect::parse_connect(&request);
        let _ = auth::parse_client_auth(request.body);
        at += consumed;
    }
}

/// Everything a device does with a gateway auth document: read it and, if
/// it holds a form, answer it; the answer must be a document the gateway reads.
fn exercise_server_auth(bytes: &[u8]) {
    let Ok(auth) = auth::parse_server_auth(bytes) else { return };
    let Some(form) = auth.form else { return };
    let answers: Vec<(&str, &str)> = form.inputs.iter().map(|i| (i.name.as_str(), "v")).collect();
    let reply = auth::auth_reply_xml(&answers, auth.opaque.as_deref());
    match auth::parse_client_auth(reply.as_bytes()) {
        Ok(_) | Err(auth::AuthXmlError::DuplicateField | auth::AuthXmlError::TooManyAnswers) => {}
        Err(e) => panic!("the device wrote a document the gateway cannot read: {e}\n{}", *reply),
    }
}

fn exercise_deframer(bytes: &[u8], cuts: &[usize]) {
    let mut d = Deframer::new();
    for chunk in chunks(bytes, cuts) {
        d.push(chunk);
        while let Some(frame) = d.next_frame() {
            match frame {
                Ok(f) => assert!(f.payload.len() <= cstp::MAX_PAYLOAD),
                Err(_) => return,
            }
        }
        assert!(d.buffered() < cstp::HEADER_LEN + cstp::MAX_PAYLOAD + chunk.len());
    }
}

proptest! {
    #[test]
    fn deframing_ignores_split_points(
        frames in prop::collection::vec(frame(), 0..8),
        cuts in prop::collection::vec(1usize..2000, 1..8),
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            cstp::write_frame(&mut stream, f.packet_type, &f.payload).unwrap();
        }
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for chunk in chunks(&stream, &cuts) {
            d.push(chunk);
            while let Some(f) = d.next_frame() {
                got.push(f.unwrap());
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_deframer(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in prop::collection::vec(1usize..512, 1..4),
    ) {
        exercise_deframer(&bytes, &cuts);
        // Mostly-valid streams: a good header in front of noise.
        let mut stream = cstp::header(PacketType::DATA, bytes.len().min(cstp::MAX_PAYLOAD)).to_vec();
        stream.extend_from_slice(&bytes);
        exercise_deframer(&stream, &cuts);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_http_parser(bytes in prop::collection::vec(any::<u8>(), 0..2048), limits in small_limits()) {
        exercise_http(&bytes, &Limits::default());
        exercise_http(&bytes, &limits);
    }

    #[test]
    fn http_looking_bytes_never_panic(bytes in httpish(), limits in small_limits()) {
        exercise_http(&bytes, &Limits::default());
        exercise_http(&bytes, &limits);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_auth_parser(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = auth::parse_client_auth(&bytes);
        let _ = auth::parse_auth_answers(&bytes);
    }

    #[test]
    fn xml_looking_bytes_never_panic(bytes in xmlish()) {
        let _ = auth::parse_client_auth(&bytes);
        let _ = auth::parse_auth_answers(&bytes);
        exercise_server_auth(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_device_auth_parser(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise_server_auth(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_connect_response_reader(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise_connect_response(&bytes);
    }

    #[test]
    fn response_looking_bytes_never_panic(bytes in responseish()) {
        exercise_connect_response(&bytes);
    }

    #[test]
    fn dtls_framing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        match cstp::dtls_type(&bytes) {
            Some((t, payload)) => {
                prop_assert_eq!(Some(&t.0), bytes.first());
                prop_assert_eq!(payload.len() + 1, bytes.len());
            }
            None => prop_assert!(bytes.is_empty()),
        }
        let _ = cstp::classify_disconnect(&bytes);
        let _ = cstp::disconnect_reason(&bytes);
    }

    #[test]
    fn admission_gives_a_verdict_for_any_bytes(
        mut bytes in prop::collection::vec(any::<u8>(), 0..128),
        src_is_session in any::<bool>(),
    ) {
        // Mostly IPv4 with a plausible IHL, so the later rules are reached too.
        if let Some(first) = bytes.first_mut() {
            *first = 0x45;
        }
        let address = std::net::Ipv4Addr::new(10, 9, 0, 2);
        if src_is_session && bytes.len() >= 16 {
            bytes[12..16].copy_from_slice(&address.octets());
        }
        let policy = Policy {
            allowed: vec!["0.0.0.0/1".parse().unwrap()],
            gateway: vec![std::net::Ipv4Addr::new(10, 9, 0, 1)],
            pool: Some("10.9.0.0/24".parse().unwrap()),
            client_to_client: false,
        };
        if let Ok(admitted) = policy.admit(address, &bytes) {
            prop_assert!(admitted.total_len >= 20 && admitted.total_len <= bytes.len());
            prop_assert_eq!(admitted.trim(&bytes).len(), admitted.total_len);
        }
    }

}

/// Every cut of a pipelined pair: partial until the first request is whole,
/// then exactly that request.
#[test]
fn requests_survive_any_split() {
    let first: &[u8] = b"POST /auth HTTP/1.1\r\nHost: vpn.test\r\nContent-Length: 5\r\n\r\nhello";
    let raw = [first, b"GET / HTTP/1.1\r\n\r\n"].concat();
    for cut in 0..=raw.len() {
        match http::parse_request(&raw[..cut], &Limits::default()).unwrap() {
            Parsed::Partial => assert!(cut < first.len(), "cut {cut}"),
            Parsed::Complete { request, consumed } => {
                assert!(cut >= first.len(), "cut {cut}");
                assert_eq!((consumed, request.body), (first.len(), &b"hello"[..]));
            }
        }
    }
}
