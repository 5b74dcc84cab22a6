//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the property
//! tests (`tests/robustness.rs`): each takes arbitrary bytes and must never
//! panic, hang or allocate without bound. Not part of the supported API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::Reader;
use crate::crypto::NullCrypto;
use crate::handshake::msg::{parse_psk_opaque, ClientHello, Fragment, HelloVerifyRequest, ServerHello};
use crate::keys::DirectionKeys;
use crate::record::Records;
use crate::replay::ReplayWindow;
use crate::{
    Accept, Acceptor, CipherSuite, ClientConfig, Connection, RecordProtection, Role, ServerConfig, SessionKeys,
    StaticPsk,
};

/// Splits fuzz input into datagrams: `len(2) ‖ bytes`, repeated.
pub fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut r = Reader::new(data);
    while let Ok(n) = r.u16() {
        let n = usize::from(n).min(r.remaining());
        match r.take(n) {
            Ok(d) => out.push(d),
            Err(_) => break,
        }
    }
    out
}

fn keys() -> Option<SessionKeys> {
    Some(SessionKeys {
        suite: CipherSuite::TLS_PSK_WITH_AES_128_GCM_SHA256,
        role: Role::Server,
        epoch: 1,
        write: DirectionKeys::new(&[1; 16], &[2; 4])?,
        read: DirectionKeys::new(&[1; 16], &[2; 4])?,
        next_send_seq: 0,
        replay: ReplayWindow::new(64),
    })
}

/// Every parser over one datagram, and record opening with both providers
/// (the null one lets the fuzzer reach past authentication).
pub fn records(data: &[u8]) {
    let mut null: Option<RecordProtection<NullCrypto>> = keys().and_then(|k| RecordProtection::new(k).ok());
    let mut real: Option<RecordProtection> = keys().and_then(|k| RecordProtection::new(k).ok());
    let mut buf = Vec::with_capacity(data.len());
    for rec in Records::new(data) {
        let mut r = Reader::new(rec.fragment());
        while let Ok(f) = Fragment::read(&mut r) {
            let _ = ClientHello::parse(f.body);
            let _ = ServerHello::parse(f.body);
            let _ = HelloVerifyRequest::parse(f.body);
            let _ = parse_psk_opaque(f.body);
        }
        let openers: [Option<&mut dyn OpenAny>; 2] =
            [null.as_mut().map(|p| p as &mut dyn OpenAny), real.as_mut().map(|p| p as &mut dyn OpenAny)];
        for p in openers.into_iter().flatten() {
            buf.clear();
            buf.extend_from_slice(rec.into_inner());
            p.open_any(&mut buf);
        }
    }
    let _ = crate::PeekedClientHello::parse(data);
}

trait OpenAny {
    fn open_any(&mut self, buf: &mut [u8]);
}

impl<P: crate::crypto::CryptoProvider> OpenAny for RecordProtection<P> {
    fn open_any(&mut self, buf: &mut [u8]) {
        let _ = self.open_in_place(buf).map(|o| o.payload().len());
    }
}

fn server_config() -> ServerConfig {
    let mut s = ServerConfig::new(Arc::new(StaticPsk { identity: b"psk".to_vec(), psk: vec![7u8; 32].into() }));
    s.cookies = false;
    s.identity_hint = Some(b"hint".to_vec());
    s
}

/// A server fed arbitrary datagrams: the first goes to the acceptor, the
/// rest to the connection it creates, with time advancing between them.
pub fn server_handshake(data: &[u8]) {
    let now = Instant::now();
    let Ok(mut acceptor) = Acceptor::new(Arc::new(server_config()), now) else { return };
    let mut conn: Option<Connection> = None;
    let mut out = Vec::new();
    for (i, d) in datagrams(data).into_iter().enumerate() {
        let t = now + Duration::from_millis(300 * i as u64);
        match conn.as_mut() {
            Some(c) => {
                c.handle_datagram(t, d);
                c.handle_timeout(t);
                while c.poll_transmit(&mut out) {}
                while c.poll_event().is_some() {}
            }
            None => {
                if let Accept::Connection(c) = acceptor.accept(t, b"peer", d, &mut out) {
                    conn = Some(*c);
                }
            }
        }
    }
}

/// A client fed arbitrary datagrams after its first ClientHello.
pub fn client_handshake(data: &[u8]) {
    let now = Instant::now();
    let mut cfg = ClientConfig::new(b"psk", &[7u8; 32]);
    cfg.session_id = vec![1; 32];
    let Ok(mut c) = Connection::client(Arc::new(cfg), now) else { return };
    let mut out = Vec::new();
    for (i, d) in datagrams(data).into_iter().enumerate() {
        let t = now + Duration::from_millis(300 * i as u64);
        c.handle_datagram(t, d);
        c.handle_timeout(t);
        while c.poll_transmit(&mut out) {}
        while c.poll_event().is_some() {}
    }
}
