//! The record layer alone: seal then open, in place, one buffer.

use std::hint::black_box;

use dtls::keys::DirectionKeys;
use dtls::replay::ReplayWindow;
use dtls::{CipherSuite, ContentType, RecordProtection, Role, SessionKeys};

use crate::measured;

const ITERATIONS: usize = 1000;

/// Both ends of one epoch with fixed AES-256-GCM keys: (client, server).
pub(crate) fn session_keys() -> (SessionKeys, SessionKeys) {
    let client_write = DirectionKeys::new(&[0x11; 32], &[0x21; 4]).expect("fixed AES-256 key and salt");
    let server_write = DirectionKeys::new(&[0x12; 32], &[0x22; 4]).expect("fixed AES-256 key and salt");
    let keys = |role, write: &DirectionKeys, read: &DirectionKeys| SessionKeys {
        suite: CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384,
        role,
        epoch: 1,
        write: write.clone(),
        read: read.clone(),
        next_send_seq: 1,
        replay: ReplayWindow::new(1024),
    };
    (keys(Role::Client, &client_write, &server_write), keys(Role::Server, &server_write, &client_write))
}

fn seal_open(payload_len: usize) -> u64 {
    let (client, server) = session_keys();
    let mut tx: RecordProtection = RecordProtection::new(client).expect("client record keys");
    let mut rx: RecordProtection = RecordProtection::new(server).expect("server record keys");
    let mut buf = vec![0x5a; tx.headroom() + payload_len + tx.tailroom()];
    let opened = measured(|| {
        let mut opened = 0u64;
        for _ in 0..ITERATIONS {
            let Ok(n) = tx.seal_in_place(ContentType::APPLICATION_DATA, black_box(&mut buf), payload_len) else {
                break;
            };
            let Some(record) = buf.get_mut(..n) else { break };
            match rx.open_in_place(black_box(record)) {
                Ok(o) => opened += black_box(o.payload()).len() as u64,
                Err(_) => break,
            }
        }
        opened
    });
    assert_eq!(opened, (ITERATIONS * payload_len) as u64, "every record seals and opens");
    opened
}

pub(crate) fn seal_open_1400() -> u64 {
    seal_open(1400)
}

pub(crate) fn seal_open_64() -> u64 {
    seal_open(64)
}
