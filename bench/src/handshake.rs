//! One DTLS 1.2 PSK handshake in memory, both ends, with a cookie exchange.

use std::sync::Arc;
use std::time::Instant;

use dtls::{Accept, Acceptor, CipherSuite, ClientConfig, Connection, ServerConfig, StaticPsk};

use crate::measured;

/// Flights are at most a handful; more rounds than this means it is stuck.
const MAX_ROUNDS: usize = 16;

/// Drives a client against `acceptor` until both ends are established.
/// Returns the bytes that crossed, or `None` if the handshake stalled.
fn handshake(client: &Arc<ClientConfig>, acceptor: &mut Acceptor, now: Instant) -> Option<u64> {
    let mut client = Connection::client(client.clone(), now).ok()?;
    let mut server: Option<Connection> = None;
    let (mut datagram, mut reply) = (Vec::new(), Vec::new());
    let mut crossed = 0u64;
    for _ in 0..MAX_ROUNDS {
        let mut moved = false;
        while client.poll_transmit(&mut datagram) {
            moved = true;
            crossed += datagram.len() as u64;
            match server.as_mut() {
                Some(s) => s.handle_datagram(now, &datagram),
                None => match acceptor.accept(now, b"device", &datagram, &mut reply) {
                    Accept::HelloVerifyRequest => {
                        crossed += reply.len() as u64;
                        client.handle_datagram(now, &reply);
                    }
                    Accept::Connection(c) => server = Some(*c),
                    _ => return None,
                },
            }
        }
        if let Some(s) = server.as_mut() {
            while s.poll_transmit(&mut datagram) {
                moved = true;
                crossed += datagram.len() as u64;
                client.handle_datagram(now, &datagram);
            }
        }
        if client.is_established() && server.as_ref().is_some_and(Connection::is_established) {
            return Some(crossed);
        }
        if !moved {
            return None;
        }
    }
    None
}

pub(crate) fn psk() -> u64 {
    let suite = CipherSuite::TLS_PSK_WITH_AES_256_GCM_SHA384;
    let mut client = ClientConfig::new(b"psk", &[0x33; 32]);
    client.common.suites = vec![suite];
    client.session_id = vec![0x44; 32];
    let client = Arc::new(client);
    let psk = StaticPsk { identity: b"psk".to_vec(), psk: vec![0x33; 32].into() };
    let mut server = ServerConfig::new(Arc::new(psk));
    server.common.suites = vec![suite];
    server.cookies = true;
    // The sans-IO endpoints only compare instants; one fixed `now` serves.
    let now = Instant::now();
    let mut acceptor = Acceptor::new(Arc::new(server), now).expect("valid server config");
    // A first handshake outside the count: lazy initialisation (the RNG's
    // state, the first allocations of each size) is start-up, not per-handshake cost.
    handshake(&client, &mut acceptor, now).expect("warm-up handshake completes");
    let crossed = measured(|| handshake(&client, &mut acceptor, now));
    crossed.expect("measured handshake completes")
}
