//! The client's side of a plain-PSK DTLS 1.2 handshake:
//!
//! ```text
//! ClientHello            ──▶
//!                        ◀──  HelloVerifyRequest (optional)
//! ClientHello + cookie   ──▶
//!                        ◀──  ServerHello, [ServerKeyExchange (hint)], ServerHelloDone
//! ClientKeyExchange, ChangeCipherSpec, Finished ──▶
//!                        ◀──  [NewSessionTicket], ChangeCipherSpec, Finished
//! ```

use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use zeroize::Zeroizing;

use super::engine::{Core, Status};
use super::{Event, HandshakeInfo};
use crate::config::ClientConfig;
use crate::handshake::msg::{
    encode_psk_opaque, parse_psk_opaque, transcript_bytes, ClientHello, Extension, HelloVerifyRequest, ServerHello,
};
use crate::handshake::reassembly::Message;
use crate::keys::{self, FinishedLabel, MasterSeed, MASTER_LEN};
use crate::suite::SuiteParams;
use crate::types::{CipherSuite, ExtensionType, HandshakeType, ProtocolVersion};
use crate::Error;

/// A server may ask for a cookie more than once (a rotated secret); more
/// than this many in one handshake is a loop.
const MAX_HELLO_VERIFY_REQUESTS: u8 = 3;

#[derive(Debug)]
pub(crate) struct ExpectServerHello {
    config: Arc<ClientConfig>,
    hello: ClientHello,
    verify_requests: u8,
}

#[derive(Debug)]
pub(crate) struct ExpectServerHelloDone {
    config: Arc<ClientConfig>,
    params: SuiteParams,
    client_random: [u8; 32],
    server_random: [u8; 32],
    ems: bool,
    hint: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct Keyed {
    params: SuiteParams,
    master: Zeroizing<[u8; MASTER_LEN]>,
    info: HandshakeInfo,
}

#[derive(Debug)]
pub(crate) enum State {
    ExpectServerHello(ExpectServerHello),
    ExpectServerHelloDone(ExpectServerHelloDone),
    ExpectChangeCipherSpec(Keyed),
    ExpectFinished(Keyed),
    Done,
}

impl State {
    pub(crate) fn expects_ccs(&self) -> bool {
        matches!(self, State::ExpectChangeCipherSpec(_))
    }
}

fn client_hello(config: &ClientConfig) -> ClientHello {
    let mut extensions = Vec::new();
    if config.offer_extended_master_secret {
        extensions.push(Extension { typ: ExtensionType::EXTENDED_MASTER_SECRET, data: Vec::new() });
    }
    // RFC 5746 §3.4: an empty renegotiation_info in the initial handshake.
    extensions.push(Extension { typ: ExtensionType::RENEGOTIATION_INFO, data: vec![0] });
    if config.app_id_extension {
        let mut data = vec![u8::try_from(config.session_id.len()).unwrap_or(0)];
        data.extend_from_slice(&config.session_id);
        extensions.push(Extension { typ: ExtensionType::OPENCONNECT_APP_ID, data });
    }
    ClientHello {
        client_version: ProtocolVersion::DTLS1_2,
        random: crate::random_array(),
        session_id: config.session_id.clone(),
        cookie: Vec::new(),
        cipher_suites: config.common.suites.clone(),
        compression_methods: vec![0],
        extensions,
    }
}

pub(crate) fn start(core: &mut Core, config: Arc<ClientConfig>, now: Instant) -> Result<State, Error> {
    let hello = client_hello(&config);
    send_hello(core, &hello, now)?;
    Ok(State::ExpectServerHello(ExpectServerHello { config, hello, verify_requests: 0 }))
}

fn send_hello(core: &mut Core, hello: &ClientHello, now: Instant) -> Result<(), Error> {
    let mut body = Vec::new();
    hello.encode(&mut body);
    core.begin_flight();
    core.push_handshake(HandshakeType::CLIENT_HELLO, 0, body);
    core.send_flight(now, false)
}

fn add_received(core: &mut Core, msg: &Message) {
    transcript_bytes(&mut core.transcript, msg.msg_type, msg.message_seq, &msg.body);
}

pub(crate) fn on_message(state: &mut State, core: &mut Core, now: Instant, msg: Message) -> Result<(), Error> {
    let t = msg.msg_type;
    // Every message but Finished travels in epoch 0.
    if (msg.epoch == 1) != (t == HandshakeType::FINISHED) {
        return Err(Error::UnexpectedMessage(t));
    }
    match (core::mem::replace(state, State::Done), t) {
        (State::ExpectServerHello(mut s), HandshakeType::HELLO_VERIFY_REQUEST) => {
            let hvr = HelloVerifyRequest::parse(&msg.body).map_err(|_| Error::Decode(t))?;
            // RFC 6347 §4.2.1: servers send 0xfeff or 0xfefd here; both are fine.
            if !hvr.server_version.is_dtls() || hvr.cookie.is_empty() {
                return Err(Error::IllegalParameter);
            }
            s.verify_requests += 1;
            if s.verify_requests > MAX_HELLO_VERIFY_REQUESTS {
                return Err(Error::UnexpectedMessage(t));
            }
            // RFC 6347 §4.2.6: the first ClientHello and the HelloVerifyRequest
            // are not part of the handshake hash.
            core.transcript.clear();
            s.hello.cookie = hvr.cookie;
            send_hello(core, &s.hello, now)?;
            *state = State::ExpectServerHello(s);
            Ok(())
        }
        (State::ExpectServerHello(s), HandshakeType::SERVER_HELLO) => {
            let sh = ServerHello::parse(&msg.body).map_err(|_| Error::Decode(t))?;
            if sh.server_version != ProtocolVersion::DTLS1_2 {
                return Err(Error::UnsupportedVersion);
            }
            if !s.hello.cipher_suites.contains(&sh.cipher_suite)
                || sh.cipher_suite == CipherSuite::TLS_EMPTY_RENEGOTIATION_INFO_SCSV
            {
                return Err(Error::NoSharedCipherSuite);
            }
            let params = SuiteParams::of(sh.cipher_suite).ok_or(Error::NoSharedCipherSuite)?;
            if sh.compression_method != 0 {
                return Err(Error::IllegalParameter);
            }
            let mut ems = false;
            for e in &sh.extensions {
                match e.typ {
                    ExtensionType::EXTENDED_MASTER_SECRET if s.config.offer_extended_master_secret => {
                        if !e.data.is_empty() {
                            return Err(Error::Decode(t));
                        }
                        ems = true;
                    }
                    // RFC 5746 §3.4: must be empty on the initial handshake.
                    ExtensionType::RENEGOTIATION_INFO if e.data != [0] => return Err(Error::IllegalParameter),
                    ExtensionType::RENEGOTIATION_INFO => {}
                    ExtensionType::OPENCONNECT_APP_ID if s.config.app_id_extension => {}
                    // RFC 5246 §7.4.1.4: an extension we did not offer is fatal.
                    _ => return Err(Error::UnsupportedExtension),
                }
            }
            add_received(core, &msg);
            *state = State::ExpectServerHelloDone(ExpectServerHelloDone {
                config: s.config,
                params,
                client_random: s.hello.random,
                server_random: sh.random,
                ems,
                hint: None,
            });
            Ok(())
        }
        (State::ExpectServerHelloDone(mut s), HandshakeType::SERVER_KEY_EXCHANGE) if s.hint.is_none() => {
            // RFC 4279 §2: a plain-PSK ServerKeyExchange carries only the hint.
            s.hint = Some(parse_psk_opaque(&msg.body).map_err(|_| Error::Decode(t))?);
            add_received(core, &msg);
            *state = State::ExpectServerHelloDone(s);
            Ok(())
        }
        (State::ExpectServerHelloDone(s), HandshakeType::SERVER_HELLO_DONE) => {
            if !msg.body.is_empty() {
                return Err(Error::Decode(t));
            }
            add_received(core, &msg);
            *state = State::ExpectChangeCipherSpec(send_key_exchange(core, s, now)?);
            Ok(())
        }
        (State::ExpectChangeCipherSpec(k), HandshakeType::NEW_SESSION_TICKET) => {
            // We offer no ticket, but servers that send one anyway are
            // tolerated: it only joins the transcript (RFC 5077 §3.3).
            add_received(core, &msg);
            *state = State::ExpectChangeCipherSpec(k);
            Ok(())
        }
        (State::ExpectFinished(k), HandshakeType::FINISHED) => {
            let hash = keys::transcript_hash(k.params.prf, &core.transcript);
            let expected = keys::verify_data(k.params.prf, &*k.master, FinishedLabel::Server, hash.as_ref())
                .map_err(|_| Error::Internal)?;
            if verify_slices_are_equal(&expected, &msg.body).is_err() {
                return Err(Error::FinishedMismatch);
            }
            core.stop_retransmit();
            core.status = Status::Established;
            core.info = Some(k.info.clone());
            core.push_event(Event::Connected(k.info));
            Ok(())
        }
        (_, t) => Err(Error::UnexpectedMessage(t)),
    }
}

fn send_key_exchange(core: &mut Core, s: ExpectServerHelloDone, now: Instant) -> Result<Keyed, Error> {
    let config = &s.config;
    let mut cke = Vec::new();
    encode_psk_opaque(&mut cke, &config.psk_identity);
    core.begin_flight();
    core.push_handshake(HandshakeType::CLIENT_KEY_EXCHANGE, 0, cke);

    let premaster = keys::psk_premaster(&config.psk);
    let session_hash = keys::transcript_hash(s.params.prf, &core.transcript);
    let seed = if s.ems {
        MasterSeed::SessionHash(session_hash.as_ref())
    } else {
        MasterSeed::Randoms { client: &s.client_random, server: &s.server_random }
    };
    let master = keys::master_secret(s.params.prf, &premaster, seed).map_err(|_| Error::Internal)?;
    let block =
        keys::key_block(&s.params, &*master, &s.client_random, &s.server_random).map_err(|_| Error::Internal)?;
    core.install_keys(s.params.suite, block.client_write.clone(), block.server_write.clone())?;

    let verify = keys::verify_data(s.params.prf, &*master, FinishedLabel::Client, session_hash.as_ref())
        .map_err(|_| Error::Internal)?;
    core.push_change_cipher_spec();
    core.write_active = true;
    core.push_handshake(HandshakeType::FINISHED, 1, verify.to_vec());
    core.send_flight(now, false)?;
    Ok(Keyed {
        params: s.params,
        master,
        info: HandshakeInfo {
            suite: s.params.suite,
            extended_master_secret: s.ems,
            psk_identity: config.psk_identity.clone(),
            psk_identity_hint: s.hint,
            app_id: config.session_id.clone(),
        },
    })
}

impl State {
    /// Moves from waiting for the ChangeCipherSpec to waiting for Finished.
    pub(crate) fn on_ccs(&mut self) {
        if let State::ExpectChangeCipherSpec(_) = self {
            if let State::ExpectChangeCipherSpec(k) = core::mem::replace(self, State::Done) {
                *self = State::ExpectFinished(k);
            }
        }
    }
}
