//! Arbitrary and mutated datagrams never panic either endpoint (the same
//! entry points the cargo-fuzz targets in `fuzz/` run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dtls::{Accept, Acceptor, ClientConfig, Connection, ServerConfig, StaticPsk};
use proptest::prelude::*;

fn framed(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in datagrams {
        out.extend_from_slice(&u16::try_from(d.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(d);
    }
    out
}

/// A real handshake's datagrams, in order, to mutate.
fn recorded_handshake() -> Vec<(bool, Vec<u8>)> {
    handshake_pair().2
}

/// Client and server after an in-memory handshake, and what they sent.
fn handshake_pair() -> (Connection, Connection, Vec<(bool, Vec<u8>)>) {
    let now = Instant::now();
    let mut c = ClientConfig::new(b"psk", &[7u8; 32]);
    c.session_id = vec![1; 32];
    let mut client = Connection::client(Arc::new(c), now).expect("client");
    let mut s = ServerConfig::new(Arc::new(StaticPsk { identity: b"psk".to_vec(), psk: vec![7u8; 32].into() }));
    s.cookies = false;
    s.identity_hint = Some(b"hint".to_vec());
    let mut acceptor = Acceptor::new(Arc::new(s), now).expect("acceptor");
    let mut server: Option<Connection> = None;
    let mut log = Vec::new();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for _ in 0..8 {
        while client.poll_transmit(&mut buf) {
            log.push((true, buf.clone()));
            match server.as_mut() {
                Some(s) => s.handle_datagram(now, &buf),
                None => {
                    if let Accept::Connection(c) = acceptor.accept(now, b"peer", &buf, &mut out) {
                        server = Some(*c);
                    }
                }
            }
        }
        if let Some(s) = server.as_mut() {
            while s.poll_transmit(&mut buf) {
                log.push((false, buf.clone()));
                client.handle_datagram(now, &buf);
            }
        }
    }
    assert!(client.is_established(), "the recorded handshake completed");
    client.send(b"data").expect("send");
    while client.poll_transmit(&mut buf) {
        log.push((true, buf.clone()));
    }
    (client, server.expect("server"), log)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        dtls::fuzz::records(&data);
    }

    #[test]
    fn arbitrary_datagrams_never_panic_a_server(ds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)) {
        dtls::fuzz::server_handshake(&framed(&ds));
    }

    #[test]
    fn arbitrary_datagrams_never_panic_a_client(ds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)) {
        dtls::fuzz::client_handshake(&framed(&ds));
    }

    /// Valid handshakes with a few bytes flipped reach deep into the state
    /// machines, where random bytes would not.
    #[test]
    fn mutated_real_handshakes_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..4)) {
        let log = recorded_handshake();
        let mut to_server: Vec<Vec<u8>> = log.iter().filter(|(c, _)| *c).map(|(_, d)| d.clone()).collect();
        let mut to_client: Vec<Vec<u8>> = log.iter().filter(|(c, _)| !*c).map(|(_, d)| d.clone()).collect();
        for (i, (which, at, x)) in flips.iter().enumerate() {
            let set = if i % 2 == 0 { &mut to_server } else { &mut to_client };
            let n = set.len();
            if let Some(d) = set.get_mut(which % n.max(1)) {
                let len = d.len();
                if let Some(b) = d.get_mut(at % len.max(1)) {
                    *b ^= x | 1;
                }
            }
        }
        dtls::fuzz::server_handshake(&framed(&to_server));
        dtls::fuzz::client_handshake(&framed(&to_client));
    }
}

#[test]
fn garbage_after_established_is_counted_not_fatal() {
    let now = Instant::now();
    let (_client, mut server, log) = handshake_pair();
    assert!(server.is_established());
    let before = *server.stats();
    server.handle_datagram(now + Duration::from_millis(1), &[0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 40]);
    server.handle_datagram(now, &[0xff; 50]);
    let mut forged = log.last().expect("data record").1.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    server.handle_datagram(now, &forged);
    let after = server.stats();
    assert!(!server.is_closed());
    assert_eq!(after.malformed, before.malformed + 2, "{after:?}");
    assert_eq!(after.bad_record_mac, before.bad_record_mac + 1, "{after:?}");
}
