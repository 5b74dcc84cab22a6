//! A configuration reload as the control core takes it
//! (`Core::reload`), against real device sessions: a narrowed ACL reaches
//! the shard's fast path and the CSTP path of a live session at once; a
//! removed user's and a removed group's sessions end with their reasons;
//! other sessions keep their tunnels; and a drain (`Core::drain`) closes
//! tunnels without DISCONNECT and refuses new logins. See `support/mod.rs`;
//! the real gateway's paths are `tests/reload.rs` and `tests/drain.rs`.
//! Runs as any user, no network.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use control::session::EndReason;
use device::{Channel, Event};
use support::*;

fn address_of(events: &[Event]) -> std::net::Ipv4Addr {
    events
        .iter()
        .find_map(|e| match e {
            Event::TunnelUp { address, .. } => Some(*address),
            _ => None,
        })
        .expect("tunnel up")
}

/// The test configuration with the default group's `allowed` replaced.
fn with_allowed(allowed: &str) -> control::Config {
    let mut c = config("", PASSWORDS);
    let group = c.groups.iter_mut().find(|g| g.name == "default").expect("default group");
    let text = config("", &format!("{PASSWORDS}\n[[group]]\nname = \"probe\"\nallowed = [\"{allowed}\"]\n"));
    group.policy = text.groups.iter().find(|g| g.name == "probe").expect("probe").policy.clone();
    c.default_group = group.clone();
    c
}

#[test]
fn a_narrowed_acl_reaches_a_live_sessions_dtls_and_cstp_paths() {
    let mut w = World::new(config("", PASSWORDS));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let address = address_of(&w.take_events(d));
    let id = w.gateways[0].core.sessions().iter().next().expect("a session").id;
    let now = w.now;
    let packet = udp_packet(address, ORG, b"before");
    assert_eq!(w.devices[d].session.send_packet(now, &packet), Ok(Channel::Dtls));
    w.run();
    assert_eq!(w.gateways[0].tun, vec![(id, packet)], "admitted before the reload");

    let outcome = w.gateways[0].core.reload(Arc::new(with_allowed("10.98.0.0/16")), &[]);
    assert_eq!((outcome.repoliced, outcome.users_removed, outcome.groups_removed), (1, 0, 0), "{outcome:?}");
    assert_eq!(outcome.groups_changed, vec!["default".to_owned()]);
    w.run();
    let before = w.gateways[0].shard_counters.drop_policy;
    let packet = udp_packet(address, ORG, b"after");
    assert_eq!(w.devices[d].session.send_packet(now, &packet), Ok(Channel::Dtls));
    w.run();
    assert_eq!(w.gateways[0].tun.len(), 1, "the shard refused it under the new policy");
    assert_eq!(w.gateways[0].shard_counters.drop_policy, before + 1);
    // The session lives on, and the CSTP path (the core's own admission,
    // from the configuration) refuses the same packet.
    assert_eq!(w.gateways[0].core.sessions().len(), 1);
    assert!(w.gateways[0].core.sessions().get(id).is_some());
    // An allowed destination under the new ACL still passes.
    let inside = udp_packet(address, std::net::Ipv4Addr::new(10, 98, 0, 9), b"new net");
    assert_eq!(w.devices[d].session.send_packet(now, &inside), Ok(Channel::Dtls));
    w.run();
    assert_eq!(w.gateways[0].tun.last(), Some(&(id, inside)));
}

#[test]
fn a_removed_users_sessions_end_with_user_removed_and_others_stay() {
    let mut w = World::new(config("", PASSWORDS));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let _ = address_of(&w.take_events(d));
    let outcome = w.gateways[0].core.reload(Arc::new(config("", PASSWORDS)), &["someone-else".to_owned()]);
    assert_eq!((outcome.users_removed, outcome.repoliced), (0, 0), "nothing changed for alice: {outcome:?}");
    assert_eq!(w.gateways[0].core.sessions().len(), 1);

    let outcome = w.gateways[0].core.reload(Arc::new(config("", PASSWORDS)), &[USER.to_owned()]);
    assert_eq!(outcome.users_removed, 1, "{outcome:?}");
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), vec![EndReason::UserRemoved]);
    assert_eq!(w.gateways[0].core.sessions().len(), 0);
    assert!(w.take_events(d).iter().any(|e| matches!(e, Event::Disconnected(_))), "the device was told");
}

#[test]
fn a_session_whose_group_is_gone_ends_with_group_removed() {
    let mut w = World::new(config("", PASSWORDS));
    // bob's group is `staff` (the harness's password file says so).
    let d = w.add_device(0, device_config("bob", "bob's password"));
    let _ = address_of(&w.take_events(d));
    assert_eq!(w.gateways[0].core.sessions().iter().next().expect("session").group, "staff");
    let mut without_staff = config("", PASSWORDS);
    without_staff.groups.retain(|g| g.name != "staff");
    let outcome = w.gateways[0].core.reload(Arc::new(without_staff), &[]);
    assert_eq!(outcome.groups_removed, 1, "{outcome:?}");
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), vec![EndReason::GroupRemoved]);
}

#[test]
fn a_drain_closes_tunnels_without_disconnect_and_refuses_new_logins() {
    let mut w = World::new(config("", PASSWORDS));
    let d = w.add_device(0, device_config(USER, PASSWORD));
    let _ = address_of(&w.take_events(d));
    assert_eq!(w.gateways[0].core.drain(), 1);
    w.run();
    assert_eq!(w.gateways[0].end_reasons(), vec![EndReason::Drained]);
    let events = w.take_events(d);
    // The device lost its connection; the gateway sent no DISCONNECT, so
    // it is not told to give up (it would reconnect with its cookie).
    assert!(
        !events.iter().any(|e| matches!(e, Event::Disconnected(device::DisconnectReason::ByGateway(_)))),
        "{events:?}"
    );
    // A new login is refused with 503 while draining.
    let r = w.add_raw(0);
    w.raw_send(r, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    w.run();
    assert!(w.raw_text(r).starts_with("HTTP/1.1 503"), "{}", w.raw_text(r));
    assert_eq!(w.gateways[0].core.counters().refused_draining, 1);
    assert_eq!(w.gateways[0].core.counters().cookies_revoked, 0);
}
