//! Client and server over the in-memory network with virtual time.

mod sim;

use std::time::Duration;

use dtls::{CipherSuite, CloseReason, Error, Event};
use sim::{client_config, server_config, Dir, Fault, Pair};

fn connected(p: &Pair) {
    assert!(p.both_connected(), "not connected; log:\n{}", p.log.join("\n"));
    assert!(matches!(p.client_events.first(), Some(Event::Connected(_))), "{:?}", p.client_events);
    assert!(matches!(p.server_events.first(), Some(Event::Connected(_))), "{:?}", p.server_events);
}

fn exchange(p: &mut Pair) {
    p.client.send(b"cli-hello").expect("client send");
    p.server.as_mut().expect("server").send(b"srv-hello").expect("server send");
    p.drive(Duration::from_secs(1));
    assert!(p.server_events.contains(&Event::ApplicationData(b"cli-hello".to_vec())), "{:?}", p.server_events);
    assert!(p.client_events.contains(&Event::ApplicationData(b"srv-hello".to_vec())), "{:?}", p.client_events);
}

#[test]
fn handshake_with_cookie_exchange_and_data() {
    let mut p = Pair::default_pair();
    p.drive(Duration::from_secs(5));
    connected(&p);
    assert_eq!(p.hello_verify_requests, 1);
    let info = p.server.as_ref().and_then(|s| s.handshake_info()).expect("info");
    assert_eq!(info.suite, CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384);
    assert!(info.extended_master_secret);
    assert_eq!(info.app_id, vec![0xab; 32]);
    assert_eq!(p.elapsed(), Duration::ZERO, "no retransmission needed");
    exchange(&mut p);
}

#[test]
fn every_flight_lost_once_in_each_direction_recovers() {
    for dir in [Dir::ClientToServer, Dir::ServerToClient] {
        for n in 1..=3 {
            let mut p = Pair::default_pair();
            p.faults.rules.push((dir, n, Fault::Drop));
            p.drive(Duration::from_secs(30));
            connected(&p);
            let retransmits = p.client.stats().retransmits + p.server.as_ref().map_or(0, |s| s.stats().retransmits);
            assert!(retransmits >= 1, "{dir:?} #{n}: loss must be repaired by a retransmission");
            // RFC 6347 §4.2.4.1: the first retransmission comes after the 1 s initial timer.
            assert!(p.elapsed() >= Duration::from_secs(1), "{dir:?} #{n}");
            exchange(&mut p);
        }
    }
}

#[test]
fn every_datagram_duplicated() {
    let mut p = Pair::default_pair();
    p.faults.duplicate_all = true;
    p.drive(Duration::from_secs(5));
    connected(&p);
    p.client.send(b"once").expect("send");
    p.drive(Duration::from_secs(1));
    let got = p.server_events.iter().filter(|e| **e == Event::ApplicationData(b"once".to_vec())).count();
    assert_eq!(got, 1, "a duplicated record is delivered once");
    assert!(p.server.as_ref().expect("server").stats().replayed >= 1);
}

#[test]
fn reordered_flights_and_early_epoch1_records() {
    let mut s = server_config();
    s.identity_hint = Some(b"hint".to_vec());
    let mut p = Pair::new(client_config(), s);
    // One record per datagram, each batch reversed: ServerHelloDone arrives
    // before ServerHello, and Finished (epoch 1) before ChangeCipherSpec.
    p.faults.split_records = true;
    p.faults.reverse_batches = true;
    p.drive(Duration::from_secs(10));
    connected(&p);
    assert!(p.client.stats().early_epoch1 >= 1, "{:?}", p.client.stats());
    assert!(p.server.as_ref().expect("server").stats().early_epoch1 >= 1);
    exchange(&mut p);
}

#[test]
fn pmtu_small_enough_to_fragment_every_flight() {
    let mut c = client_config();
    c.common.max_datagram_size = 128;
    c.session_id = vec![7; 32];
    let mut s = server_config();
    s.common.max_datagram_size = 128;
    s.identity_hint = Some(vec![b'h'; 120]);
    let mut p = Pair::new(c, s);
    p.drive(Duration::from_secs(10));
    connected(&p);
    assert!(p.sent[0] >= 4 && p.sent[1] >= 4, "flights were split: {:?}", p.sent);
    assert!(p.client.stats().partial_fragments >= 2, "the hint's ServerKeyExchange came in fragments");
    let info = p.client.handshake_info().expect("info");
    assert_eq!(info.psk_identity_hint.as_deref(), Some(&[b'h'; 120][..]));
    exchange(&mut p);
}

#[test]
fn fragmented_flights_with_loss_and_reordering() {
    for n in 1..=6 {
        let mut c = client_config();
        c.common.max_datagram_size = 128;
        let mut s = server_config();
        s.common.max_datagram_size = 128;
        s.identity_hint = Some(vec![b'h'; 120]);
        let mut p = Pair::new(c, s);
        p.faults.rules.push((Dir::ServerToClient, n, Fault::Drop));
        p.faults.rules.push((Dir::ClientToServer, n + 1, Fault::Delay));
        p.drive(Duration::from_secs(30));
        connected(&p);
    }
}

#[test]
fn replayed_application_records_are_delivered_once() {
    let mut p = Pair::default_pair();
    p.drive(Duration::from_secs(5));
    connected(&p);
    p.client.send(b"pay").expect("send");
    let mut d = Vec::new();
    assert!(p.client.poll_transmit(&mut d));
    let server = p.server.as_mut().expect("server");
    for _ in 0..3 {
        server.handle_datagram(p.now, &d);
    }
    let mut got = 0;
    while let Some(e) = server.poll_event() {
        if e == Event::ApplicationData(b"pay".to_vec()) {
            got += 1;
        }
    }
    assert_eq!(got, 1);
    assert_eq!(server.stats().replayed, 2);
}

#[test]
fn wrong_psk_never_establishes_and_gives_up_in_bounded_time() {
    let mut c = client_config();
    c.psk = vec![9u8; 16].into();
    c.common.timers.handshake_timeout = Duration::from_secs(20);
    let mut p = Pair::new(c, server_config());
    p.drive(Duration::from_secs(120));
    assert!(!p.client.is_established());
    assert!(!p.server.as_ref().is_some_and(|s| s.is_established()));
    // Keys derived from different PSKs: the client's Finished fails
    // authentication and is silently dropped (RFC 6347 §4.1.2.7), as OpenSSL
    // and GnuTLS do; both sides give up at their handshake timeout.
    assert!(p.server.as_ref().expect("server").stats().bad_record_mac >= 1);
    assert!(
        p.client_events.contains(&Event::Closed(CloseReason::Error(Error::HandshakeTimeout))),
        "{:?}",
        p.client_events
    );
    assert!(p.elapsed() <= Duration::from_secs(60));
}

#[test]
fn no_shared_suite_is_refused_with_an_alert() {
    let mut c = client_config();
    c.common.suites = vec![CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256];
    let mut s = server_config();
    s.common.suites = vec![CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256];
    let mut p = Pair::new(c, s);
    p.drive(Duration::from_secs(5));
    assert!(p.server.is_none());
    assert!(
        p.client_events.contains(&Event::Closed(CloseReason::PeerAlert(dtls::AlertDescription::HANDSHAKE_FAILURE))),
        "{:?}",
        p.client_events
    );
}

#[test]
fn every_suite_with_and_without_ems_cookies_and_hint() {
    for suite in [
        CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        for ems in [false, true] {
            for cookies in [false, true] {
                let mut c = client_config();
                c.common.suites = vec![suite];
                c.offer_extended_master_secret = ems;
                let mut s = server_config();
                s.cookies = cookies;
                s.identity_hint = cookies.then(|| b"hint".to_vec());
                let mut p = Pair::new(c, s);
                p.drive(Duration::from_secs(5));
                connected(&p);
                let info = p.client.handshake_info().expect("info").clone();
                assert_eq!(info.suite, suite);
                assert_eq!(info.extended_master_secret, ems);
                assert_eq!(p.hello_verify_requests, usize::from(cookies));
                exchange(&mut p);
            }
        }
    }
}

#[test]
fn server_preference_order_and_client_order() {
    let mut c = client_config();
    c.common.suites = vec![CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256, CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384];
    let mut p = Pair::new(c.clone(), server_config());
    p.drive(Duration::from_secs(5));
    assert_eq!(p.client.handshake_info().map(|i| i.suite), Some(CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384));
    let mut s = server_config();
    s.prefer_client_order = true;
    let mut p = Pair::new(c, s);
    p.drive(Duration::from_secs(5));
    assert_eq!(p.client.handshake_info().map(|i| i.suite), Some(CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256));
}

#[test]
fn close_notify_both_ways() {
    let mut p = Pair::default_pair();
    p.drive(Duration::from_secs(5));
    connected(&p);
    p.client.close();
    p.drive(Duration::from_secs(1));
    assert!(p.client_events.contains(&Event::Closed(CloseReason::LocalClose)));
    assert!(p.server_events.contains(&Event::Closed(CloseReason::PeerClosed)), "{:?}", p.server_events);

    let mut p = Pair::default_pair();
    p.drive(Duration::from_secs(5));
    p.server.as_mut().expect("server").close();
    p.drive(Duration::from_secs(1));
    assert!(p.client_events.contains(&Event::Closed(CloseReason::PeerClosed)), "{:?}", p.client_events);
}

#[test]
fn lost_server_finished_is_resent_after_hand_off_without_reusing_sequence_numbers() {
    let mut p = Pair::default_pair();
    // s2c: #1 HVR, #2 ServerHello flight, #3 CCS+Finished (lost).
    p.faults.rules.push((Dir::ServerToClient, 3, Fault::Drop));
    p.drive(Duration::from_millis(500));
    let server = p.server.as_mut().expect("server");
    assert!(server.is_established() && !p.client.is_established());
    let grant = server.export_session().expect("grant");
    assert_eq!(grant.next_send_seq, 1, "Finished used epoch-1 sequence 0");
    assert!(server.send(b"x").is_err(), "a handed-off connection never seals again");
    p.drive(Duration::from_secs(5));
    assert!(p.client.is_established(), "the frozen final flight was resent: {}", p.log.join("\n"));
}

#[test]
fn renegotiation_is_refused_with_a_warning_alert() {
    use dtls::handshake::msg::put_header;
    use dtls::{AlertDescription, AlertLevel, ContentType, HandshakeType, RecordProtection};
    let mut p = Pair::default_pair();
    p.drive(Duration::from_secs(5));
    connected(&p);
    // The client side's own keys seal an epoch-1 ClientHello: a renegotiation.
    let mut keys = RecordProtection::<dtls::crypto::AwsLc>::new(p.client.export_session().expect("keys")).expect("rp");
    let mut hs = Vec::new();
    put_header(&mut hs, HandshakeType::CLIENT_HELLO, 4, 9, 0, 4);
    hs.extend_from_slice(&[0xfe, 0xfd, 0, 0]);
    let mut buf = vec![0u8; keys.headroom() + hs.len() + keys.tailroom()];
    buf[keys.headroom()..keys.headroom() + hs.len()].copy_from_slice(&hs);
    let n = keys.seal_in_place(ContentType::HANDSHAKE, &mut buf, hs.len()).expect("seal");
    let server = p.server.as_mut().expect("server");
    server.handle_datagram(p.now, &buf[..n]);
    assert_eq!(server.stats().renegotiations_refused, 1);
    assert!(server.is_established(), "refusal is not fatal");
    let mut alert = Vec::new();
    assert!(server.poll_transmit(&mut alert));
    p.client.handle_datagram(p.now, &alert);
    assert_eq!(
        p.client.poll_event(),
        Some(Event::Alert { level: AlertLevel::WARNING, description: AlertDescription::NO_RENEGOTIATION })
    );
}
