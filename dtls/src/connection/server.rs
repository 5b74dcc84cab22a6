//! The server's side: a stateless [`Acceptor`] in front, then one
//! [`Connection`] per client that proved its address.
//!
//! ```text
//!                        ◀──  ClientHello
//! HelloVerifyRequest     ──▶  (stateless, when cookies are on)
//!                        ◀──  ClientHello + cookie      → Connection created
//! ServerHello, [ServerKeyExchange (hint)], ServerHelloDone ──▶
//!                        ◀──  ClientKeyExchange, ChangeCipherSpec, Finished
//! ChangeCipherSpec, Finished ──▶
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use zeroize::Zeroizing;

use super::engine::{Core, Status};
use super::{Connection, Event, HandshakeInfo};
use crate::codec::Reader;
use crate::config::{ConfigError, PskRequest, PskResolver, ServerConfig};
use crate::cookie::CookieSecret;
use crate::handshake::msg::{
    encode_psk_opaque, parse_psk_opaque, put_header, transcript_bytes, ClientHello, Extension, Fragment,
    HelloVerifyRequest, ServerHello,
};
use crate::handshake::reassembly::{Message, Reassembler};
use crate::keys::{self, FinishedLabel, MasterSeed, MASTER_LEN};
use crate::protection::Role;
use crate::record::{Record, RecordHeaderRepr, Records};
use crate::suite::SuiteParams;
use crate::types::{ContentType, ExtensionType, HandshakeType, ProtocolVersion};
use crate::Error;

#[derive(Debug)]
pub(crate) struct ExpectClientKeyExchange {
    config: Arc<ServerConfig>,
    params: SuiteParams,
    client_random: [u8; 32],
    server_random: [u8; 32],
    ems: bool,
    session_id: Vec<u8>,
    app_id_extension: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct Keyed {
    params: SuiteParams,
    master: Zeroizing<[u8; MASTER_LEN]>,
    info: HandshakeInfo,
}

#[derive(Debug)]
pub(crate) enum State {
    ExpectClientKeyExchange(ExpectClientKeyExchange),
    ExpectChangeCipherSpec(Keyed),
    ExpectFinished(Keyed),
    Done,
}

impl State {
    pub(crate) fn expects_ccs(&self) -> bool {
        matches!(self, State::ExpectChangeCipherSpec(_))
    }

    pub(crate) fn on_ccs(&mut self) {
        if let State::ExpectChangeCipherSpec(_) = self {
            if let State::ExpectChangeCipherSpec(k) = core::mem::replace(self, State::Done) {
                *self = State::ExpectFinished(k);
            }
        }
    }
}

/// Why the [`Acceptor`] ignored a datagram. The caller counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptDrop {
    /// Not a DTLS record.
    NotDtls,
    /// Not an epoch-0 handshake record starting with a ClientHello.
    NotClientHello,
    /// A fragment of a ClientHello, buffered until the rest arrives.
    Fragmented,
    /// The ClientHello did not parse.
    Malformed,
}

/// What to do with a datagram from an address that has no connection.
#[derive(Debug)]
pub enum Accept {
    /// Send the HelloVerifyRequest now in `out` back to the sender; keep no state.
    HelloVerifyRequest,
    /// The client proved its address (or cookies are off): a new connection,
    /// with its first flight ready in `poll_transmit`.
    Connection(Box<Connection>),
    /// Ignore the datagram.
    Drop(AcceptDrop),
    /// The ClientHello was answered with a fatal alert in `out`
    /// (no shared suite, wrong version); keep no state.
    Refused(Error),
}

/// The server's front door: keeps no per-client state until a client
/// returns a valid cookie (RFC 6347 §4.2.1), except a small bounded cache
/// of ClientHellos that arrive in fragments (tiny path MTUs).
#[derive(Debug)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    cookies: CookieSecret,
    partial_hellos: VecDeque<PartialHello>,
}

/// Fragmented ClientHellos being reassembled, at most this many at once;
/// the oldest is evicted first.
const MAX_PARTIAL_HELLOS: usize = 64;
/// A ClientHello larger than this is not worth buffering.
const MAX_FRAGMENTED_HELLO: usize = 4096;

#[derive(Debug)]
struct PartialHello {
    peer: Vec<u8>,
    message_seq: u16,
    reasm: Reassembler,
}

/// A ClientHello at the start of a datagram, with its record and fragment
/// fields. Public so that a gateway or relay can route by App-ID before
/// anything else happens.
#[derive(Debug, Clone)]
pub struct PeekedClientHello {
    pub record_version: ProtocolVersion,
    pub record_seq: u64,
    pub message_seq: u16,
    pub hello: ClientHello,
    /// The message body as received: what the transcript hashes.
    pub body: Vec<u8>,
}

impl PeekedClientHello {
    /// Parses the first record of `datagram` as an unfragmented ClientHello.
    pub fn parse(datagram: &[u8]) -> Result<Self, AcceptDrop> {
        let (rec, f) = first_hello_fragment(datagram)?;
        if !f.is_complete() {
            return Err(AcceptDrop::Fragmented);
        }
        Self::from_body(rec.version(), rec.sequence(), f.message_seq, f.body)
    }

    fn from_body(
        record_version: ProtocolVersion,
        record_seq: u64,
        message_seq: u16,
        body: &[u8],
    ) -> Result<Self, AcceptDrop> {
        let hello = ClientHello::parse(body).map_err(|_| AcceptDrop::Malformed)?;
        Ok(Self { record_version, record_seq, message_seq, hello, body: body.to_vec() })
    }
}

fn first_hello_fragment(datagram: &[u8]) -> Result<(Record<&[u8]>, Fragment<'_>), AcceptDrop> {
    let rec = Record::new_checked(datagram).map_err(|_| AcceptDrop::NotDtls)?;
    if rec.content_type() != ContentType::HANDSHAKE || rec.epoch() != 0 {
        return Err(AcceptDrop::NotClientHello);
    }
    let fragment = datagram.get(crate::record::HEADER_LEN..rec.total_len()).unwrap_or_default();
    let f = Fragment::read(&mut Reader::new(fragment)).map_err(|_| AcceptDrop::Malformed)?;
    if f.msg_type != HandshakeType::CLIENT_HELLO {
        return Err(AcceptDrop::NotClientHello);
    }
    Ok((rec, f))
}

impl Acceptor {
    pub fn new(config: Arc<ServerConfig>, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let cookies = CookieSecret::new(now, config.cookie_rotation);
        Ok(Self { config, cookies, partial_hellos: VecDeque::new() })
    }

    /// Every record of the datagram that is a ClientHello fragment goes into
    /// the peer's partial hello; returns the hello once it is whole.
    fn reassemble(&mut self, peer: &[u8], datagram: &[u8]) -> Result<PeekedClientHello, AcceptDrop> {
        let mut result = Err(AcceptDrop::Fragmented);
        for rec in Records::new(datagram) {
            if rec.content_type() != ContentType::HANDSHAKE || rec.epoch() != 0 {
                continue;
            }
            let mut r = Reader::new(rec.fragment());
            while let Ok(f) = Fragment::read(&mut r) {
                if f.msg_type != HandshakeType::CLIENT_HELLO
                    || usize::try_from(f.length).map_or(true, |l| l > MAX_FRAGMENTED_HELLO)
                {
                    return Err(AcceptDrop::Malformed);
                }
                let i = match self.partial_hellos.iter().position(|p| p.peer == peer && p.message_seq == f.message_seq)
                {
                    Some(i) => i,
                    None => {
                        if self.partial_hellos.len() >= MAX_PARTIAL_HELLOS {
                            self.partial_hellos.pop_front();
                        }
                        self.partial_hellos.retain(|p| p.peer != peer);
                        self.partial_hellos.push_back(PartialHello {
                            peer: peer.to_vec(),
                            message_seq: f.message_seq,
                            reasm: Reassembler::new(f.message_seq),
                        });
                        self.partial_hellos.len() - 1
                    }
                };
                let Some(p) = self.partial_hellos.get_mut(i) else { break };
                p.reasm.insert(0, &f);
                if let Some(m) = p.reasm.pop() {
                    self.partial_hellos.remove(i);
                    result = PeekedClientHello::from_body(rec.version(), rec.sequence(), m.message_seq, &m.body);
                    break;
                }
            }
        }
        result
    }

    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Handles a datagram from `peer` (any stable byte form of the source
    /// address; the cookie is bound to it). `out` receives a reply to send
    /// when the result says so.
    pub fn accept(&mut self, now: Instant, peer: &[u8], datagram: &[u8], out: &mut Vec<u8>) -> Accept {
        self.accept_inner(now, peer, datagram, out, None)
    }

    /// As [`accept`](Self::accept), with `resolver` answering the new
    /// connection's PSK lookup instead of the configuration's: a server that
    /// knows from the ClientHello's App-ID which key the handshake must use
    /// (a gateway shard holding its sessions' authorisations) hands that key
    /// to this connection alone and needs no table shared across threads.
    pub fn accept_with_resolver(
        &mut self,
        now: Instant,
        peer: &[u8],
        datagram: &[u8],
        out: &mut Vec<u8>,
        resolver: Arc<dyn PskResolver>,
    ) -> Accept {
        self.accept_inner(now, peer, datagram, out, Some(resolver))
    }

    fn accept_inner(
        &mut self,
        now: Instant,
        peer: &[u8],
        datagram: &[u8],
        out: &mut Vec<u8>,
        resolver: Option<Arc<dyn PskResolver>>,
    ) -> Accept {
        out.clear();
        let peeked = match PeekedClientHello::parse(datagram) {
            Ok(p) => p,
            Err(AcceptDrop::Fragmented) => match self.reassemble(peer, datagram) {
                Ok(p) => p,
                Err(e) => return Accept::Drop(e),
            },
            Err(e) => return Accept::Drop(e),
        };
        let ch = &peeked.hello;
        if self.config.cookies && !self.cookies.verify(now, peer, ch) {
            let cookie = self.cookies.issue(now, peer, ch);
            hello_verify_request(&peeked, &cookie, out);
            return Accept::HelloVerifyRequest;
        }
        let config = match resolver {
            Some(r) => Arc::new(ServerConfig { psk_resolver: r, ..(*self.config).clone() }),
            None => self.config.clone(),
        };
        match new_connection(config, now, &peeked) {
            Ok(c) => Accept::Connection(Box::new(c)),
            Err(e) => {
                refusal(&peeked, e, out);
                Accept::Refused(e)
            }
        }
    }
}

/// RFC 6347 §4.2.1: the HelloVerifyRequest reuses the ClientHello's record
/// sequence number, and DTLS 1.2 servers send version 1.0 in it.
fn hello_verify_request(p: &PeekedClientHello, cookie: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    HelloVerifyRequest { server_version: ProtocolVersion::DTLS1_0, cookie: cookie.to_vec() }.encode(&mut body);
    let mut hs = Vec::new();
    put_header(&mut hs, HandshakeType::HELLO_VERIFY_REQUEST, body.len(), p.message_seq, 0, body.len());
    hs.extend_from_slice(&body);
    let repr = RecordHeaderRepr {
        content_type: ContentType::HANDSHAKE,
        version: ProtocolVersion::DTLS1_0,
        epoch: 0,
        sequence: p.record_seq,
        length: u16::try_from(hs.len()).unwrap_or(0),
    };
    out.extend_from_slice(&repr.to_bytes());
    out.extend_from_slice(&hs);
}

fn refusal(p: &PeekedClientHello, e: Error, out: &mut Vec<u8>) {
    let repr = RecordHeaderRepr {
        content_type: ContentType::ALERT,
        version: ProtocolVersion::DTLS1_2,
        epoch: 0,
        sequence: p.record_seq,
        length: 2,
    };
    out.extend_from_slice(&repr.to_bytes());
    out.extend_from_slice(&[crate::types::AlertLevel::FATAL.0, e.alert().0]);
}

fn choose_suite(config: &ServerConfig, ch: &ClientHello) -> Option<SuiteParams> {
    let ours = &config.common.suites;
    let pick = if config.prefer_client_order {
        ch.cipher_suites.iter().find(|s| ours.contains(s))
    } else {
        ours.iter().find(|s| ch.cipher_suites.contains(s))
    };
    pick.and_then(|s| SuiteParams::of(*s))
}

fn new_connection(config: Arc<ServerConfig>, now: Instant, p: &PeekedClientHello) -> Result<Connection, Error> {
    let ch = &p.hello;
    if !ch.client_version.is_at_least_dtls12() {
        return Err(Error::UnsupportedVersion);
    }
    let params = choose_suite(&config, ch).ok_or(Error::NoSharedCipherSuite)?;
    if !ch.compression_methods.contains(&0) {
        return Err(Error::IllegalParameter);
    }
    let mut ext = Vec::new();
    if ch.offers_renegotiation_info() {
        // RFC 5746 §3.6: on an initial handshake the client's value is empty.
        if ch.extension(ExtensionType::RENEGOTIATION_INFO).is_some_and(|e| e.data != [0]) {
            return Err(Error::IllegalParameter);
        }
        ext.push(Extension { typ: ExtensionType::RENEGOTIATION_INFO, data: vec![0] });
    }
    // RFC 7627 §5.1: negotiated whenever the client offers it; never required,
    // because openconnect's PSK-NEGOTIATE profile (GnuTLS %COMPAT) omits it.
    let ems = ch.extension(ExtensionType::EXTENDED_MASTER_SECRET).is_some();
    if ems {
        ext.push(Extension { typ: ExtensionType::EXTENDED_MASTER_SECRET, data: Vec::new() });
    }
    let server_random: [u8; 32] = crate::random_array();
    let sh = ServerHello {
        server_version: ProtocolVersion::DTLS1_2,
        random: server_random,
        // Never echo the client's session_id: it carries the App-ID, and an
        // echo would announce a resumption the client has no state for.
        session_id: crate::random_array::<32>().to_vec(),
        cipher_suite: params.suite,
        compression_method: 0,
        extensions: ext,
    };

    // The server's first message_seq equals the ClientHello's (1 after a
    // cookie exchange, 0 without), as OpenSSL and GnuTLS do.
    let mut core = Core::new(Role::Server, config.common.clone(), now, p.message_seq, p.message_seq.wrapping_add(1));
    core.set_epoch0_seq(p.record_seq.saturating_add(1));
    transcript_bytes(&mut core.transcript, HandshakeType::CLIENT_HELLO, p.message_seq, &p.body);
    core.begin_flight();
    let mut body = Vec::new();
    sh.encode(&mut body);
    core.push_handshake(HandshakeType::SERVER_HELLO, 0, body);
    if let Some(hint) = &config.identity_hint {
        let mut b = Vec::new();
        encode_psk_opaque(&mut b, hint);
        core.push_handshake(HandshakeType::SERVER_KEY_EXCHANGE, 0, b);
    }
    core.push_handshake(HandshakeType::SERVER_HELLO_DONE, 0, Vec::new());
    core.send_flight(now, false)?;
    let app_id_extension = ch.extension(ExtensionType::OPENCONNECT_APP_ID).map(|e| e.data.clone());
    let state = State::ExpectClientKeyExchange(ExpectClientKeyExchange {
        config,
        params,
        client_random: ch.random,
        server_random,
        ems,
        session_id: ch.session_id.clone(),
        app_id_extension,
    });
    Ok(Connection::from_parts(core, state))
}

pub(crate) fn on_message(state: &mut State, core: &mut Core, now: Instant, msg: Message) -> Result<(), Error> {
    let t = msg.msg_type;
    if (msg.epoch == 1) != (t == HandshakeType::FINISHED) {
        return Err(Error::UnexpectedMessage(t));
    }
    match (core::mem::replace(state, State::Done), t) {
        (State::ExpectClientKeyExchange(s), HandshakeType::CLIENT_KEY_EXCHANGE) => {
            let identity = parse_psk_opaque(&msg.body).map_err(|_| Error::Decode(t))?;
            let legacy = s.app_id_extension.as_deref().and_then(|d| Reader::new(d).sub_u8().ok().map(|r| r.rest()));
            let app_id = legacy.unwrap_or(&s.session_id);
            let request = PskRequest {
                identity: &identity,
                hint: s.config.identity_hint.as_deref(),
                session_id: &s.session_id,
                app_id_extension: s.app_id_extension.as_deref(),
                app_id,
            };
            let psk = s.config.psk_resolver.resolve(&request).ok_or(Error::UnknownPskIdentity)?;
            let app_id = app_id.to_vec();
            transcript_bytes(&mut core.transcript, t, msg.message_seq, &msg.body);
            let premaster = keys::psk_premaster(&psk);
            let session_hash = keys::transcript_hash(s.params.prf, &core.transcript);
            let seed = if s.ems {
                MasterSeed::SessionHash(session_hash.as_ref())
            } else {
                MasterSeed::Randoms { client: &s.client_random, server: &s.server_random }
            };
            let master = keys::master_secret(s.params.prf, &premaster, seed).map_err(|_| Error::Internal)?;
            let block = keys::key_block(&s.params, &*master, &s.client_random, &s.server_random)
                .map_err(|_| Error::Internal)?;
            core.install_keys(s.params.suite, block.server_write.clone(), block.client_write.clone())?;
            *state = State::ExpectChangeCipherSpec(Keyed {
                params: s.params,
                master,
                info: HandshakeInfo {
                    suite: s.params.suite,
                    extended_master_secret: s.ems,
                    psk_identity: identity,
                    psk_identity_hint: s.config.identity_hint.clone(),
                    app_id,
                },
            });
            Ok(())
        }
        (State::ExpectFinished(k), HandshakeType::FINISHED) => {
            let hash = keys::transcript_hash(k.params.prf, &core.transcript);
            let expected = keys::verify_data(k.params.prf, &*k.master, FinishedLabel::Client, hash.as_ref())
                .map_err(|_| Error::Internal)?;
            if verify_slices_are_equal(&expected, &msg.body).is_err() {
                return Err(Error::FinishedMismatch);
            }
            transcript_bytes(&mut core.transcript, t, msg.message_seq, &msg.body);
            let hash = keys::transcript_hash(k.params.prf, &core.transcript);
            let verify = keys::verify_data(k.params.prf, &*k.master, FinishedLabel::Server, hash.as_ref())
                .map_err(|_| Error::Internal)?;
            core.begin_flight();
            core.push_change_cipher_spec();
            core.write_active = true;
            core.push_handshake(HandshakeType::FINISHED, 1, verify.to_vec());
            core.send_flight(now, true)?;
            core.status = Status::Established;
            core.info = Some(k.info.clone());
            core.push_event(Event::Connected(k.info));
            Ok(())
        }
        (_, t) => Err(Error::UnexpectedMessage(t)),
    }
}
