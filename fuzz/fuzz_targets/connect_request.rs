//! CONNECT headers as the gateway reads them (`proto::connect::parse_connect`
//! on a request from `proto::http::parse_request`) over arbitrary bytes.
//!
//! An accepted CONNECT is answered: what the device sent back in the answer
//! (its host name echoed, its user agent as a banner) must not break the
//! response the device reads — it parses, and says the address and MTU the
//! gateway chose (a header smuggled in through a value would change them).
#![no_main]

use std::net::Ipv4Addr;

use proto::connect::{connect_response, parse_connect, parse_connect_response, TunnelParams};
use proto::http::{parse_request, Limits, Parsed};
use proto::http_response::{parse_response, BodyMode, ResponseLimits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(Parsed::Complete { request, .. }) = parse_request(data, &Limits::default()) else { return };
    let Ok(connect) = parse_connect(&request) else { return };
    assert_eq!(request.method, "CONNECT");
    if connect.psk_negotiate {
        assert!(connect.dtls_requested, "PSK-NEGOTIATE is a DTLS request");
    }
    let address = Ipv4Addr::new(10, 9, 0, 2);
    let params = TunnelParams {
        server_name: "corridor".into(),
        hostname: connect.hostname.clone(),
        address,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        dns: vec![Ipv4Addr::new(10, 9, 0, 1)],
        default_domain: None,
        split_include: Vec::new(),
        split_exclude: Vec::new(),
        base_mtu: connect.base_mtu.unwrap_or(1500),
        mtu: 1400,
        dpd_secs: 90,
        keepalive_secs: 32400,
        idle_timeout_secs: None,
        session_timeout_secs: None,
        rekey: None,
        banner: connect.user_agent.clone(),
        dtls: None,
        apps: connect.user_agent.clone().map(|a| vec![a]),
        trusted: None,
    };
    let answer = connect_response(&params);
    let limits = ResponseLimits { max_head: 64 * 1024, ..ResponseLimits::default() };
    let (response, used) = match parse_response(&answer, BodyMode::HeadOnly, &limits) {
        Ok(Some(r)) => r,
        other => panic!("the device cannot read the CONNECT answer: {other:?}"),
    };
    assert_eq!(used, answer.len());
    let config = parse_connect_response(&response).expect("the device accepts the CONNECT answer");
    assert_eq!((config.address, config.mtu), (address, 1400));
    assert!(config.dtls.is_none());
    // The app list (here the device's own user agent) comes back one header,
    // one app: no value smuggles a second.
    assert_eq!(config.apps.map(|a| a.len()), connect.user_agent.map(|_| 1));
});
