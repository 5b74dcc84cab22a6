//! `cargo bench -p corridor-dtls`: what the record layer costs over the bare
//! AEAD, and how many PSK handshakes one core completes in memory.
//!
//! Prints one table; ratios are from the same run, so they hold on a noisy
//! shared machine where absolute numbers do not. Method: for each size, 7
//! rounds alternating ours / bare, each round long enough to take ~50 ms;
//! the median ns per seal+open pair is reported.

#![allow(clippy::indexing_slicing)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{self, Aad, Nonce, TlsProtocolId, TlsRecordOpeningKey, TlsRecordSealingKey};
use dtls::keys::DirectionKeys;
use dtls::replay::ReplayWindow;
use dtls::{
    Accept, Acceptor, CipherSuite, ClientConfig, Connection, ContentType, RecordProtection, Role, ServerConfig,
    SessionKeys, StaticPsk,
};

const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn keys(suite: CipherSuite, key_len: usize) -> (SessionKeys, SessionKeys) {
    let a = DirectionKeys::new(&vec![7u8; key_len], &[9u8; 4]).expect("keys");
    let b = DirectionKeys::new(&vec![8u8; key_len], &[10u8; 4]).expect("keys");
    let mk = |role, write: &DirectionKeys, read: &DirectionKeys| SessionKeys {
        suite,
        role,
        epoch: 1,
        write: write.clone(),
        read: read.clone(),
        next_send_seq: 1,
        replay: ReplayWindow::new(1024),
    };
    (mk(Role::Client, &a, &b), mk(Role::Server, &b, &a))
}

/// ns per seal+open through RecordProtection.
fn ours(suite: CipherSuite, key_len: usize, size: usize, iters: usize) -> f64 {
    let (c, s) = keys(suite, key_len);
    let mut tx: RecordProtection = RecordProtection::new(c).expect("tx");
    let mut rx: RecordProtection = RecordProtection::new(s).expect("rx");
    let mut buf = vec![0x5au8; tx.headroom() + size + tx.tailroom()];
    let t = Instant::now();
    for _ in 0..iters {
        let n = tx.seal_in_place(ContentType::APPLICATION_DATA, &mut buf, size).expect("seal");
        let o = rx.open_in_place(&mut buf[..n]).expect("open");
        black_box(o.payload().len());
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// ns per seal+open with the same aws-lc-rs TLS 1.2 record keys, same buffer,
/// no record layer: the floor ours is measured against.
fn bare(alg: &'static aead::Algorithm, key_len: usize, size: usize, iters: usize) -> f64 {
    let mut seal = TlsRecordSealingKey::new(alg, TlsProtocolId::TLS12, &vec![7u8; key_len]).expect("key");
    let open = TlsRecordOpeningKey::new(alg, TlsProtocolId::TLS12, &vec![7u8; key_len]).expect("key");
    let mut buf = vec![0x5au8; size + 16];
    let aad = [0u8; 13];
    let t = Instant::now();
    for i in 0..iters as u64 {
        let mut n = [9u8; 12];
        n[4..].copy_from_slice(&(i + 1).to_be_bytes());
        let (payload, tag_out) = buf.split_at_mut(size);
        let tag =
            seal.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(aad), payload).expect("seal");
        tag_out.copy_from_slice(tag.as_ref());
        let p = open.open_in_place(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut buf).expect("open");
        black_box(p.len());
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn iters_for(size: usize) -> usize {
    // ~50 ms per round at ~0.5 ns/byte + 250 ns fixed.
    (50_000_000 / (size / 2 + 250)).max(1000)
}

fn record_layer() {
    println!("record seal+open, ns per pair (median of {ROUNDS} rounds), ratio = bare / ours (1.0 = no overhead)");
    println!("| suite | bytes | ours ns | bare aws-lc-rs ns | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (suite, alg, key_len, name) in [
        (CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256, &aead::AES_128_GCM, 16, "PSK-AES128-GCM"),
        (CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384, &aead::AES_256_GCM, 32, "PSK-AES256-GCM"),
    ] {
        for size in [64, 512, 1400] {
            let iters = iters_for(size);
            let (mut o, mut b) = (Vec::new(), Vec::new());
            ours(suite, key_len, size, iters / 10);
            bare(alg, key_len, size, iters / 10);
            for _ in 0..ROUNDS {
                o.push(ours(suite, key_len, size, iters));
                b.push(bare(alg, key_len, size, iters));
            }
            let (o, b) = (median(o), median(b));
            println!("| {name} | {size} | {o:.0} | {b:.0} | {:.3} |", b / o);
        }
    }
}

fn handshake_once(cc: &Arc<ClientConfig>, acceptor: &mut Acceptor, now: Instant) -> bool {
    let mut client = Connection::client(cc.clone(), now).expect("client");
    let mut server: Option<Connection> = None;
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for _ in 0..16 {
        let mut moved = false;
        while client.poll_transmit(&mut buf) {
            moved = true;
            match server.as_mut() {
                Some(s) => s.handle_datagram(now, &buf),
                None => match acceptor.accept(now, b"peer", &buf, &mut out) {
                    Accept::HelloVerifyRequest => client.handle_datagram(now, &out),
                    Accept::Connection(c) => server = Some(*c),
                    _ => return false,
                },
            }
        }
        if let Some(s) = server.as_mut() {
            while s.poll_transmit(&mut buf) {
                moved = true;
                client.handle_datagram(now, &buf);
            }
        }
        if client.is_established() && server.as_ref().is_some_and(|s| s.is_established()) {
            return true;
        }
        if !moved {
            return false;
        }
    }
    false
}

fn handshakes() {
    println!();
    println!("PSK handshakes in memory, client and server on one core (median of {ROUNDS} rounds of ~0.3 s)");
    println!("| suite | cookies | EMS | handshakes/s | µs per handshake (both sides) |");
    println!("|---|---|---|---:|---:|");
    for (suite, name) in [
        (CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384, "PSK-AES256-GCM"),
        (CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256, "PSK-AES128-GCM"),
    ] {
        for (cookies, ems) in [(true, false), (false, false), (true, true)] {
            let mut c = ClientConfig::new(b"psk", &[1u8; 32]);
            c.common.suites = vec![suite];
            c.session_id = vec![3; 32];
            c.offer_extended_master_secret = ems;
            let cc = Arc::new(c);
            let mut s = ServerConfig::new(Arc::new(StaticPsk { identity: b"psk".to_vec(), psk: vec![1u8; 32].into() }));
            s.cookies = cookies;
            let now = Instant::now();
            let mut acceptor = Acceptor::new(Arc::new(s), now).expect("acceptor");
            let mut rates = Vec::new();
            for _ in 0..ROUNDS {
                let t = Instant::now();
                let mut n = 0u64;
                while t.elapsed() < Duration::from_millis(300) {
                    assert!(handshake_once(&cc, &mut acceptor, now), "in-memory handshake failed");
                    n += 1;
                }
                rates.push(n as f64 / t.elapsed().as_secs_f64());
            }
            let r = median(rates);
            println!(
                "| {name} | {} | {} | {r:.0} | {:.1} |",
                if cookies { "on" } else { "off" },
                if ems { "yes" } else { "no" },
                1e6 / r
            );
        }
    }
}

fn main() {
    // `cargo test --benches` runs this binary with --bench absent; keep it quick there.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    record_layer();
    handshakes();
}
