#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

const APP_ID: [u8; 32] = [9; 32];

fn authorization(session: u32, app_id: &[u8], psk: &[u8; 32]) -> Authorization {
    Authorization {
        session: SessionId(session),
        app_id: app_id.to_vec(),
        psk: Psk::new(psk.to_vec()),
        address: Ipv4Addr::new(10, 200, 0, 2),
        policy: Policy::default(),
        mtu: 1400,
    }
}

fn client(now: Instant, app_id: &[u8], psk: &[u8; 32]) -> Connection {
    let mut c = dtls::ClientConfig::new(b"psk", psk);
    c.session_id = app_id.to_vec();
    Connection::client(Arc::new(c), now).unwrap()
}

fn connected(client: &mut Connection) -> bool {
    std::iter::from_fn(|| client.poll_event()).any(|e| matches!(e, Event::Connected(_)))
}

/// Runs `client`'s flights through `h` until a handshake completes there;
/// returns it and what `h` sent in that last step.
fn until_established(
    h: &mut Handshakes,
    now: Instant,
    client: &mut Connection,
    peer: SocketAddr,
) -> Option<(Established, Vec<Vec<u8>>)> {
    let mut buf = Vec::new();
    for _ in 0..4 {
        let mut sent = Vec::new();
        let mut done = None;
        while client.poll_transmit(&mut buf) {
            if let Some(e) = h.on_datagram(now, peer, &buf, &mut |d| sent.push(d.to_vec())) {
                assert!(done.is_none(), "one handshake completed");
                done = Some(e);
            }
        }
        if let Some(e) = done {
            return Some((e, sent));
        }
        for d in sent {
            client.handle_datagram(now, &d);
        }
    }
    None
}

#[test]
fn an_authorised_app_id_completes_and_yields_the_sessions_grant() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    let mut c = client(now, &APP_ID, &[1; 32]);
    let peer: SocketAddr = ([192, 0, 2, 1], 40_000).into();
    let (e, sent) = until_established(&mut h, now, &mut c, peer).expect("established");
    assert!(sent.is_empty(), "the final flight waits for the grant to be installed");
    assert_eq!(
        (e.grant.session, e.grant.peer, e.grant.address, e.grant.mtu),
        (SessionId(7), peer, Ipv4Addr::new(10, 200, 0, 2), 1400)
    );
    assert!(!connected(&mut c));
    for d in &e.final_flight {
        c.handle_datagram(now, d);
    }
    assert!(connected(&mut c), "the final flight completes the device's handshake");
    assert_eq!(h.counters.established, 1);
    assert_eq!(h.counters.hello_verify_requests, 1, "a cookie round first");
}

#[test]
fn an_unknown_app_id_or_a_wrong_key_gets_no_session() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    let peer: SocketAddr = ([192, 0, 2, 1], 40_001).into();
    let mut stranger = client(now, &[8; 32], &[1; 32]);
    assert!(until_established(&mut h, now, &mut stranger, peer).is_none());
    assert!(h.counters.unknown_app_id >= 1);
    let mut wrong_key = client(now, &APP_ID, &[2; 32]);
    let peer: SocketAddr = ([192, 0, 2, 1], 40_002).into();
    assert!(until_established(&mut h, now, &mut wrong_key, peer).is_none());
    assert_eq!(h.counters.established, 0);
}

#[test]
fn garbage_is_counted_and_answered_with_nothing() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    let mut sent = 0;
    for d in [&b""[..], b"\x17\xfe\xfd garbage", &[0x16; 200]] {
        assert!(h.on_datagram(now, ([192, 0, 2, 9], 1).into(), d, &mut |_| sent += 1).is_none());
    }
    assert_eq!((h.counters.not_client_hello, sent), (3, 0));
}

#[test]
fn a_deauthorised_session_completes_no_handshake() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    h.deauthorize(SessionId(7));
    assert!(!h.is_authorized(&APP_ID));
    let mut c = client(now, &APP_ID, &[1; 32]);
    assert!(until_established(&mut h, now, &mut c, ([192, 0, 2, 1], 40_003).into()).is_none());
}

#[test]
fn a_new_authorisation_replaces_the_sessions_old_app_id_and_key() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    h.authorize(authorization(7, &[5; 32], &[3; 32]));
    assert!(!h.is_authorized(&APP_ID) && h.is_authorized(&[5; 32]));
    let mut c = client(now, &[5; 32], &[3; 32]);
    assert!(until_established(&mut h, now, &mut c, ([192, 0, 2, 1], 40_004).into()).is_some());
}

/// The final flight may be lost on the way like any other: the device
/// resends its own, and the lingering handshake answers it at once.
#[test]
fn lost_final_flight_is_resent_when_the_device_retransmits() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    let mut c = client(now, &APP_ID, &[1; 32]);
    let peer: SocketAddr = ([192, 0, 2, 1], 40_005).into();
    let (_lost, _) = until_established(&mut h, now, &mut c, peer).unwrap();
    let later = now + Duration::from_secs(2);
    c.handle_timeout(later);
    let (mut resent, mut buf) = (Vec::new(), Vec::new());
    while c.poll_transmit(&mut buf) {
        assert!(h.on_datagram(later, peer, &buf, &mut |d| resent.push(d.to_vec())).is_none(), "granted once");
    }
    assert!(!resent.is_empty());
    for d in &resent {
        c.handle_datagram(later, d);
    }
    assert!(connected(&mut c));
    assert_eq!(h.counters.established, 1);
}

#[test]
fn handshakes_in_progress_beyond_the_limit_are_dropped_and_counted_but_finished_ones_do_not_count() {
    let now = Instant::now();
    let mut h = Handshakes::with_max_pending(now, 1).unwrap();
    for port in 0..3u16 {
        let app_id = [port as u8 + 100; 32];
        h.authorize(authorization(u32::from(port) + 10, &app_id, &[7; 32]));
        let mut c = client(now, &app_id, &[7; 32]);
        assert!(until_established(&mut h, now, &mut c, ([192, 0, 2, 2], 41_000 + port).into()).is_some());
    }
    assert_eq!((h.counters.established, h.counters.overloaded, h.pending()), (3, 0, 0), "all linger, none in progress");
    // Two started at once: the second is over the limit.
    let mut buf = Vec::new();
    for port in 0..2u16 {
        let app_id = [port as u8 + 100; 32];
        let mut c = client(now, &app_id, &[7; 32]);
        let peer: SocketAddr = ([192, 0, 2, 3], 42_000 + port).into();
        let mut hvr = Vec::new();
        while c.poll_transmit(&mut buf) {
            h.on_datagram(now, peer, &buf, &mut |d| hvr.push(d.to_vec()));
        }
        for d in hvr {
            c.handle_datagram(now, &d);
        }
        while c.poll_transmit(&mut buf) {
            h.on_datagram(now, peer, &buf, &mut |_| {});
        }
    }
    assert_eq!((h.pending(), h.counters.overloaded), (1, 1));
}

#[test]
fn retransmissions_and_forgetting_follow_the_timers() {
    let now = Instant::now();
    let mut h = Handshakes::new(now).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    let mut c = client(now, &APP_ID, &[1; 32]);
    let peer: SocketAddr = ([192, 0, 2, 1], 40_006).into();
    let mut buf = Vec::new();
    // ClientHello, HelloVerifyRequest, ClientHello with cookie: the server
    // flight is out; then the client goes quiet.
    let mut to_client = Vec::new();
    while c.poll_transmit(&mut buf) {
        h.on_datagram(now, peer, &buf, &mut |d| to_client.push(d.to_vec()));
    }
    for d in to_client.drain(..) {
        c.handle_datagram(now, &d);
    }
    while c.poll_transmit(&mut buf) {
        h.on_datagram(now, peer, &buf, &mut |d| to_client.push(d.to_vec()));
    }
    assert!(!to_client.is_empty(), "the server's flight");
    let due = h.poll_timeout().expect("a retransmission is due");
    let mut resent = 0;
    h.on_timeout(due, &mut |to, _| {
        assert_eq!(to, peer);
        resent += 1;
    });
    assert!(resent > 0, "the flight was retransmitted");
    h.on_timeout(now + Duration::from_secs(120), &mut |_, _| {});
    assert_eq!(h.pending(), 0, "a handshake that never finished is forgotten");
    assert!(h.poll_timeout().is_none());
}

#[test]
fn a_source_over_its_rate_is_dropped_before_parsing_while_others_complete() {
    let now = Instant::now();
    let mut h = Handshakes::with_source_limit(now, 10, 5).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    let flooder: SocketAddr = "192.0.2.66:4000".parse().unwrap();
    let mut hello = Vec::new();
    assert!(client(now, &APP_ID, &[1; 32]).poll_transmit(&mut hello));
    let mut answered = 0;
    for port in 0..64u16 {
        let from = SocketAddr::new(flooder.ip(), 4000 + port);
        for _ in 0..10 {
            h.on_datagram(now, from, &hello, &mut |_| answered += 1);
        }
    }
    assert_eq!(answered, 5, "only the burst was answered (with cookie rounds)");
    assert_eq!(h.counters.rate_limited, 640 - 5);
    assert_eq!(h.counters.hello_verify_requests, 5);
    // Another address completes its handshake meanwhile.
    let mut device = client(now, &APP_ID, &[1; 32]);
    assert!(until_established(&mut h, now, &mut device, "192.0.2.7:5000".parse().unwrap()).is_some());
    // The flooder's bucket refills at its rate.
    let later = now + Duration::from_millis(100);
    assert!(h.on_datagram(later, flooder, &hello, &mut |_| answered += 1).is_none());
    assert_eq!((answered, h.counters.rate_limited), (6, 635));
}

/// A handshake is timed from the ClientHello that passed the cookie round
/// to the device's Finished, in the shard's (here virtual) time.
#[test]
fn an_established_handshake_is_timed_from_its_verified_client_hello() {
    let start = Instant::now();
    let mut h = Handshakes::new(start).unwrap();
    h.authorize(authorization(7, &APP_ID, &[1; 32]));
    let mut c = client(start, &APP_ID, &[1; 32]);
    let peer: SocketAddr = ([192, 0, 2, 1], 40_010).into();
    let (mut buf, mut now, mut established) = (Vec::new(), start, false);
    // Each flight 2 ms after the last: ClientHello (answered with a
    // cookie), ClientHello with the cookie (the clock starts), Finished.
    for _ in 0..4 {
        now += std::time::Duration::from_millis(2);
        let mut sent = Vec::new();
        while c.poll_transmit(&mut buf) {
            established |= h.on_datagram(now, peer, &buf, &mut |d| sent.push(d.to_vec())).is_some();
        }
        if established {
            break;
        }
        for d in sent {
            c.handle_datagram(now, &d);
        }
    }
    assert!(established);
    assert_eq!((h.latency.count, h.latency.sum_ns), (1, 2_000_000), "{:?}", h.latency);
}
