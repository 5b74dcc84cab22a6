//! The cluster cookie verifier (`control::cluster::Cluster::verify`), which
//! reads cookies any device presents at CONNECT.
//!
//! Input byte 0 picks the mode. Odd: the rest is a cookie, verified as it
//! is (nothing may panic; a forgery is `None`). Even: the rest makes claims
//! (`address(4) ‖ issued(8) ‖ nonce(16) ‖ user ‖ 0xff ‖ group`), a cookie is
//! minted for them and then changed at one place (`at(2) ‖ byte(1)` taken
//! off the end). The minted cookie verifies to its claims; a changed cookie
//! is refused unless it is the same string — one session has one cookie, so
//! nothing keyed by the cookie's text (a revocation) can be side-stepped by
//! writing it another way.
#![no_main]

use std::net::Ipv4Addr;

use control::cluster::{Cluster, CookieClaims};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let cluster = Cluster { secret: b"0123456789abcdef0123456789abcdef".to_vec(), node: 2, nodes: 3 };
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 1 {
        let cookie = String::from_utf8_lossy(rest);
        if let Some(claims) = cluster.verify(&cookie) {
            panic!("a cookie nobody minted verified: {claims:?}");
        }
        return;
    }
    let Some((fixed, rest)) = rest.split_first_chunk::<36>() else { return };
    let Some((text, edit)) = rest.split_last_chunk::<3>() else { return };
    let (user, group) = match text.iter().position(|&b| b == 0xff) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &b""[..]),
    };
    let claims = CookieClaims {
        user: String::from_utf8_lossy(user).into_owned(),
        group: String::from_utf8_lossy(group).into_owned(),
        address: Ipv4Addr::new(fixed[0], fixed[1], fixed[2], fixed[3]),
        issued: u64::from_be_bytes(fixed[4..12].try_into().expect("8 bytes")),
        expires: u64::from_be_bytes(fixed[12..20].try_into().expect("8 bytes")),
        node: 9,
    };
    let nonce: [u8; 16] = fixed[20..36].try_into().expect("16 bytes");
    let cookie = cluster.mint(&claims, &nonce);
    let verified = cluster.verify(&cookie);
    if claims.user.len() <= 255 && claims.group.len() <= 255 {
        assert_eq!(verified, Some(CookieClaims { node: 2, ..claims }), "a minted cookie verifies to its claims");
    }
    let mut changed = cookie.clone().into_bytes();
    let at = usize::from(u16::from_be_bytes([edit[0], edit[1]]));
    if at < changed.len() {
        changed[at] = edit[2];
    } else {
        changed.push(edit[2]);
    }
    let changed = String::from_utf8_lossy(&changed);
    if changed != cookie {
        assert_eq!(cluster.verify(&changed), None, "{cookie} changed to {changed} still verifies");
    }
});
