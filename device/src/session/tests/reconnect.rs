//! Reconnecting with the cookie after the TLS connection is lost, and
//! what ends a session instead.

use super::*;

const NEW_APP_ID_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn lost_connection_reconnects_with_the_cookie_and_keeps_the_address() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    let first = tunnel_up(t0, &mut gw, &mut d);
    let mut old_dtls = dtls_handshake(t0, &gw, &mut d, APP_ID_HEX);
    dtls_round_trip(t0, &mut d, &mut old_dtls);

    let t1 = t0 + s(5);
    lose_connection(t1, &mut d);
    // Detached: try again at once, give up 300 s on; DTLS went with TLS (§5.3).
    assert_eq!(d.reconnect_at(), Some(t1));
    assert_eq!(d.poll_timeout(), Some(t1 + s(300)));
    assert!(!d.is_dtls_up());
    assert_eq!(d.send_packet(t1, b"\x45x"), Err(SendError::NotConnected));
    let mut buf = Vec::new();
    assert!(!d.poll_datagram(&mut buf));
    assert_eq!(d.tunnel().map(|t| t.address), Some(Ipv4Addr::new(192, 168, 99, 121)));
    // Late bytes of the dead connection change nothing.
    d.handle_tls(t1, b"\x17\x03\x03\x00\x05stale");
    d.handle_tls_eof();
    assert_eq!(events(&mut d), []);
    assert_eq!(d.phase(), Phase::Detached);

    // A new TCP connection: a fresh TLS handshake, then CONNECT straight away.
    let mut gw2 = Gateway::new();
    d.reconnect(t1).unwrap();
    assert_eq!(d.phase(), Phase::Connecting);
    assert_eq!(d.reconnect(t1), Err(ReconnectError::NotDetached));
    assert_eq!(d.reconnect_at(), None);
    gw2.pump(t1, &mut d);
    let request = gw2.read();
    assert!(
        request.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn.test\r\n"),
        "no login first: {request}"
    );
    assert!(request.contains("\r\nCookie: webvpn=C00KIE\r\n"), "{request}");
    assert!(request.contains("\r\nX-CSTP-Address: 192.168.99.121\r\n"), "asks its address back: {request}");
    assert!(request.contains("\r\nX-DTLS-CipherSuite: PSK-NEGOTIATE\r\n"), "{request}");
    assert!(
        !request.contains("POST") && !request.contains("s3cret") && !request.contains("webvpncontext"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\n") && request.matches("\r\n\r\n").count() == 1, "one request: {request}");

    gw2.send(ocserv_connect().replace(APP_ID_HEX, NEW_APP_ID_HEX).as_bytes());
    gw2.pump(t1, &mut d);
    let Event::TunnelUp { address, netmask, mtu, .. } = first else { unreachable!() };
    assert_eq!(
        events(&mut d),
        [Event::TunnelUp { address, netmask, mtu, dtls_port: Some(443), app_id: Some(unhex(NEW_APP_ID_HEX)) }]
    );
    assert_eq!((d.phase(), d.reconnect_at()), (Phase::Tunnel, None));

    // DTLS again, with the new App-ID and the new connection's exporter key.
    assert_ne!(exporter(&gw), exporter(&gw2));
    let mut new_dtls = dtls_handshake(t1, &gw2, &mut d, NEW_APP_ID_HEX);
    dtls_round_trip(t1, &mut d, &mut new_dtls);
    assert_eq!(d.poll_timeout(), Some(t1 + s(30)), "CSTP DPD restarts with the new connection");
    let st = d.stats();
    assert_eq!((st.reconnect_attempts, st.reconnects, st.dtls_handshakes), (1, 1, 2));

    // A second outage starts a fresh schedule.
    let t2 = t1 + s(100);
    lose_connection(t2, &mut d);
    assert_eq!((d.reconnect_at(), d.poll_timeout()), (Some(t2), Some(t2 + s(300))));
}

#[test]
fn reconnect_answered_401_or_403_ends_the_session() {
    for status in [401, 403] {
        let t0 = Instant::now();
        let mut gw = Gateway::new();
        let mut d = DeviceSession::new(device_config()).unwrap();
        tunnel_up(t0, &mut gw, &mut d);
        lose_connection(t0, &mut d);
        let mut gw2 = Gateway::new();
        d.reconnect(t0).unwrap();
        gw2.pump(t0, &mut d);
        assert!(gw2.read().starts_with("CONNECT "));
        gw2.send(
            format!("HTTP/1.1 {status} Cookie is not acceptable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        gw2.pump(t0, &mut d);
        assert_eq!(
            events(&mut d),
            [Event::Disconnected(DisconnectReason::CookieRejected {
                status,
                reason: "Cookie is not acceptable".into()
            })]
        );
        assert_eq!((d.phase(), d.reconnect_at(), d.poll_timeout()), (Phase::Closed, None, None));
        assert_eq!(d.reconnect(t0), Err(ReconnectError::NotDetached));
        assert_eq!(d.stats().reconnects, 0);
    }
}

/// Regression (seen against ocserv 1.1.6): it answers an unknown cookie with
/// `401` and a fatal TLS alert right behind it. When both came in one read,
/// the alert's error hid the 401 and the device retried instead of stopping.
#[test]
fn a_401_followed_by_a_fatal_record_in_the_same_read_still_ends_the_session() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    tunnel_up(t0, &mut gw, &mut d);
    lose_connection(t0, &mut d);
    let mut gw2 = Gateway::new();
    d.reconnect(t0).unwrap();
    gw2.pump(t0, &mut d);
    assert!(gw2.read().starts_with("CONNECT "));
    gw2.send(b"HTTP/1.1 401 Cookie is not acceptable\r\nContent-Length: 0\r\n\r\n");
    let mut flight = Vec::new();
    while gw2.tls.wants_write() {
        gw2.tls.write_tls(&mut flight).unwrap();
    }
    // A record that fails to decrypt stands in for the (encrypted) alert.
    flight.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x20]);
    flight.extend_from_slice(&[0xa5; 0x20]);
    d.handle_tls(t0, &flight);
    assert_eq!(
        events(&mut d),
        [Event::Disconnected(DisconnectReason::CookieRejected {
            status: 401,
            reason: "Cookie is not acceptable".into()
        })]
    );
    assert_eq!(d.phase(), Phase::Closed);
}

#[test]
fn failed_reconnects_back_off_then_give_up_at_the_timeout() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut config = device_config();
    config.dtls = false;
    config.reconnect_timeout = s(60);
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(config).unwrap();
    tunnel_up(t0, &mut gw, &mut d);
    lose_connection(t0, &mut d);
    assert_eq!(d.reconnect_at(), Some(t0));

    // 1: the TCP connect fails.
    d.reconnect(t0).unwrap();
    lose_connection(t0, &mut d);
    assert_eq!(d.reconnect_at(), Some(t0 + s(10)));

    // 2: the gateway has no room (503): one more failed attempt, not the end.
    let at = t0 + s(10);
    d.reconnect(at).unwrap();
    let mut gw2 = Gateway::new();
    gw2.pump(at, &mut d);
    gw2.read();
    gw2.send(b"HTTP/1.1 503 Service Unavailable\r\nX-Reason: no address\r\nContent-Length: 0\r\n\r\n");
    gw2.pump(at, &mut d);
    assert_eq!(
        events(&mut d),
        [Event::Disconnected(DisconnectReason::ConnectRefused { status: 503, reason: "no address".into() })]
    );
    assert_eq!((d.phase(), d.reconnect_at()), (Phase::Detached, Some(at + s(20))));

    // 3: not TLS at all.
    let at = t0 + s(30);
    d.reconnect(at).unwrap();
    d.handle_tls(at, b"HTTP/1.0 400 Bad Request\r\n\r\n");
    let ev = events(&mut d);
    assert!(matches!(ev[..], [Event::Disconnected(DisconnectReason::Error(DeviceError::Tls(_)))]), "{ev:?}");
    assert_eq!((d.phase(), d.reconnect_at()), (Phase::Detached, Some(at + s(30))));

    // 4 would be due at the deadline: the timer ends the session first; an
    // attempt still in flight then is abandoned too.
    assert_eq!(d.poll_timeout(), Some(t0 + s(60)));
    d.handle_timeout(t0 + s(59));
    assert_eq!(events(&mut d), []);
    d.reconnect(t0 + s(59)).unwrap();
    assert_eq!(d.poll_timeout(), Some(t0 + s(60)));
    d.handle_timeout(t0 + s(60));
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::ReconnectTimeout)]);
    assert_eq!((d.phase(), d.reconnect_at(), d.poll_timeout()), (Phase::Closed, None, None));
    assert_eq!((d.stats().reconnect_attempts, d.stats().reconnects), (4, 0));
}

#[test]
fn reconnect_given_another_address_ends_the_session() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut config = device_config();
    config.dtls = false;
    let mut d = DeviceSession::new(config).unwrap();
    tunnel_up(t0, &mut gw, &mut d);
    lose_connection(t0, &mut d);
    let mut gw2 = Gateway::new();
    d.reconnect(t0).unwrap();
    gw2.pump(t0, &mut d);
    gw2.read();
    gw2.send(ocserv_connect().replace("192.168.99.121", "192.168.99.122").as_bytes());
    gw2.pump(t0, &mut d);
    assert_eq!(
        events(&mut d),
        [Event::Disconnected(DisconnectReason::AddressChanged {
            previous: Ipv4Addr::new(192, 168, 99, 121),
            offered: Ipv4Addr::new(192, 168, 99, 122),
        })]
    );
    assert_eq!(d.phase(), Phase::Closed);
}

#[test]
fn what_does_not_reconnect() {
    let t0 = Instant::now();
    // The gateway ended the session (DISCONNECT, §4.4): final.
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    tunnel_up(t0, &mut gw, &mut d);
    let mut kick = Vec::new();
    cstp::write_frame(&mut kick, PacketType::DISCONNECT, b"").unwrap();
    gw.send(&kick);
    gw.pump(t0, &mut d);
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::ByGateway(String::new()))]);
    d.handle_connection_lost(t0);
    assert_eq!((d.phase(), d.reconnect_at(), events(&mut d)), (Phase::Closed, None, vec![]));

    // Reconnecting turned off: a lost connection ends the session.
    let mut config = device_config();
    config.reconnect_timeout = Duration::ZERO;
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(config).unwrap();
    tunnel_up(t0, &mut gw, &mut d);
    d.handle_connection_lost(t0);
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::TlsClosed)]);
    assert_eq!((d.phase(), d.reconnect_at()), (Phase::Closed, None));

    // Lost before login: no cookie to come back with.
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    gw.pump(t0, &mut d);
    d.handle_connection_lost(t0);
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::TlsClosed)]);
    assert_eq!((d.phase(), d.reconnect_at()), (Phase::Closed, None));

    // Logging out while detached ends it too.
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    tunnel_up(t0, &mut gw, &mut d);
    lose_connection(t0, &mut d);
    d.disconnect(t0);
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::Logout)]);
    assert_eq!((d.phase(), d.reconnect_at()), (Phase::Closed, None));
}

#[test]
fn a_paused_session_tells_the_gateway_and_waits_for_resume() {
    let t0 = Instant::now();
    let mut gw = Gateway::new();
    let mut d = DeviceSession::new(device_config()).unwrap();
    assert!(matches!(tunnel_up(t0, &mut gw, &mut d), Event::TunnelUp { .. }));
    assert!(d.pause(t0, "trusted_network"));
    assert_eq!(events(&mut d), [Event::Disconnected(DisconnectReason::Paused("trusted_network".into()))]);
    gw.pump(t0, &mut d);
    let bye = gw.read();
    // A CSTP DISCONNECT whose payload is 0x00 and the reason code.
    assert!(bye.ends_with("\0trusted_network"), "{bye:?}");
    assert_eq!(bye.as_bytes().get(6), Some(&PacketType::DISCONNECT.0));
    assert_eq!(
        (d.phase(), d.is_paused(), d.reconnect_at()),
        (Phase::Detached, true, None),
        "no reconnect while paused"
    );
    assert!(!d.pause(t0, "again"), "only a tunnel pauses");

    let t1 = t0 + Duration::from_secs(600);
    d.resume(t1);
    assert_eq!(
        (d.is_paused(), d.reconnect_at()),
        (false, Some(t1)),
        "resumed: a reconnect due at once, a fresh schedule"
    );
    let mut gw2 = Gateway::new();
    d.reconnect(t1).unwrap();
    gw2.pump(t1, &mut d);
    let connect = gw2.read();
    assert!(connect.starts_with("CONNECT ") && connect.contains("Cookie: webvpn="), "{connect}");
}
