//! The keeper process (`corridor keeper`, started by the gateway; see
//! [`super`]). Standard input is its socket to the worker. It loads the
//! configuration, the server key and the password file, says hello, then
//! answers: signatures on the reading thread (one ECDSA signing is tens of
//! microseconds, and a TLS handshake waits for it), password checks on a
//! pool of threads (one PBKDF2 run is ~0.3 s at the default cost).
//!
//! Everything it reads comes from the network-facing process, which an
//! attacker may own: requests are decoded by the total [`wire`] decoder,
//! a signature is made only over bytes shaped like a TLS server's
//! signature input ([`is_tls_signature_input`]), and password checks past
//! the pool's queue are refused, not queued without bound. Once its
//! threads exist it confines itself under a seccomp filter ([`super::sandbox`]).

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use zeroize::Zeroizing;

use super::read_packet;
use super::wire::{Hello, KeyHello, Reply, Request, MAX_MESSAGE, MAX_REPLY};
use crate::config::{Config, ConfigError, Disk, Files, Recorder};
use crate::passwd::PasswordFile;
use crate::verifier::Credentials;

/// Every scheme rustls's aws-lc-rs keys can sign with, in the order the
/// worker prefers them.
const SCHEMES: [SignatureScheme; 9] = [
    SignatureScheme::ED25519,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
];

/// Password checks that may wait for a keeper thread beyond those running.
const VERIFY_BACKLOG: usize = 64;

/// The TLS 1.3 server `CertificateVerify` context (RFC 8446 §4.4.3).
const TLS13_CONTEXT: &[u8] = b"TLS 1.3, server CertificateVerify\0";

/// Whether `message` is what a TLS server signs and nothing else:
///
/// * TLS 1.3: 64 spaces, the server `CertificateVerify` context string and
///   a SHA-256 or SHA-384 transcript hash;
/// * TLS 1.2: client random, server random and ECDHE `ServerECDHParams`
///   (named curve, a point of a size one of the offered groups has).
///
/// A compromised worker can still have the keeper sign a handshake it
/// relays, which is what holding the key for TLS means; it cannot have
/// it sign a certificate, a document or another protocol's transcript.
pub fn is_tls_signature_input(message: &[u8]) -> bool {
    if let Some(rest) = message.strip_prefix(&[0x20; 64]) {
        if let Some(hash) = rest.strip_prefix(TLS13_CONTEXT) {
            return hash.len() == 32 || hash.len() == 48;
        }
    }
    // client_random(32) ‖ server_random(32) ‖ curve_type(1)=named_curve(3)
    // ‖ named_curve(2) ‖ point_len(1) ‖ point.
    match message.get(64..) {
        Some([3, curve_hi, curve_lo, len, point @ ..]) => {
            let curve = u16::from_be_bytes([*curve_hi, *curve_lo]);
            let expected = match curve {
                0x001d => 32,  // X25519
                0x0017 => 65,  // secp256r1, uncompressed
                0x0018 => 97,  // secp384r1
                0x0019 => 133, // secp521r1
                _ => return false,
            };
            usize::from(*len) == expected && point.len() == expected
        }
        _ => false,
    }
}

/// What the keeper holds.
struct Secrets {
    key: Arc<dyn SigningKey>,
    passwords: Option<Arc<PasswordFile>>,
    hello: KeyHello,
}

/// What a reload read: the secrets, and every text the worker needs to
/// parse the same configuration.
struct Loaded {
    secrets: Secrets,
    texts: Vec<(PathBuf, String)>,
}

fn password_file(config: &Config) -> Result<Option<Arc<PasswordFile>>, ConfigError> {
    let Some(p) = &config.password_file else { return Ok(None) };
    let file = PasswordFile::load(p).map_err(|e| ConfigError {
        field: "auth.password_file".into(),
        problem: e.to_string(),
        fix: "create or repair it with `corridor passwd`".into(),
    })?;
    // `--check-config` refuses this; at run time those users' logins are refused.
    if let Err(e) = config.check_password_groups(&file) {
        tracing::warn!("{e}");
    }
    Ok(Some(Arc::new(file)))
}

/// Loads the configuration through `files`, then the key and the password
/// file it names.
fn load(config_path: &Path, files: &dyn Files) -> Result<(Config, Secrets), ConfigError> {
    let config = Config::load_with(config_path, files)?;
    let provider = crate::tls::provider();
    let key = crate::tls::load_key(&provider, &config.key)?;
    let spki = key.public_key().map(|k| k.as_ref().to_vec()).ok_or_else(|| ConfigError {
        field: "server.key".into(),
        problem: "the key's public half cannot be derived".into(),
        fix: "give an RSA, ECDSA or Ed25519 key".into(),
    })?;
    let schemes: Vec<u16> =
        SCHEMES.iter().filter(|s| key.choose_scheme(&[**s]).is_some()).map(|s| u16::from(*s)).collect();
    let passwords = password_file(&config)?;
    let hello = KeyHello { spki, schemes, algorithm: u8::from(key.algorithm()), passwords: passwords.is_some() };
    Ok((config, Secrets { key, passwords, hello }))
}

/// A reload's first step: everything read again, through a recorder, plus
/// the certificate and client CA texts (public, but perhaps readable by
/// root only) for the worker's new TLS configuration.
fn prepare(config_path: &Path) -> Result<Loaded, ConfigError> {
    let recorder = Recorder::default();
    let (config, secrets) = load(config_path, &recorder)?;
    let cert = recorder.read("server.cert", &config.cert, false)?;
    let chain = crate::tls::certificates("server.cert", &config.cert, cert.as_bytes())?;
    rustls::sign::CertifiedKey::new(chain, secrets.key.clone()).keys_match().map_err(|e| ConfigError {
        field: "server.key".into(),
        problem: format!("{e}"),
        fix: "the key must match server.cert: renew both together".into(),
    })?;
    if let Some(ca) = &config.client_ca {
        recorder.read("auth.client_ca", ca, false)?;
    }
    Ok(Loaded { secrets, texts: recorder.into_texts() })
}

/// Runs the keeper until the worker's socket (standard input) closes.
/// Returns the process exit status.
pub fn run(config_path: &Path, threads: usize) -> u8 {
    // Die with the gateway even if it cannot close the socket cleanly.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        tracing::error!("keeper: cannot ask to die with the gateway: {e}");
        return 1;
    }
    let sock = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(e) => {
            tracing::error!("keeper: no socket on standard input: {e}");
            return 1;
        }
    };
    // Room for a reload's texts in one packet (root may exceed wmem_max).
    let room = MAX_REPLY + 64 * 1024;
    if let Err(e) = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBufForce, &room) {
        tracing::warn!("keeper: cannot grow its socket buffer ({e}); large reloads may fail");
    }
    let secrets = match load(config_path, &Disk) {
        Ok((_, s)) => s,
        Err(e) => {
            let failed = Hello::Failed { field: e.field, problem: e.problem, fix: e.fix };
            let _ = (&sock).write(&failed.encode());
            return 2;
        }
    };
    let hello = Hello::Ready(secrets.hello.clone());
    let current = Arc::new(RwLock::new(secrets));
    let checks = start_checkers(&sock, &current, threads.max(1));
    // Every thread exists and everything is loaded: from here on the
    // keeper reads files, talks on its socket and computes, nothing else.
    // A keeper that cannot be confined ends before its hello, and the
    // gateway's start-up fails saying so.
    if let Err(e) = super::sandbox::confine() {
        tracing::error!("keeper: cannot install its seccomp filter: {e}");
        return 1;
    }
    if (&sock).write(&hello.encode()).is_err() {
        return 1;
    }
    tracing::info!(
        pid = std::process::id(),
        threads,
        "keeper ready: it holds the server key and the password file, under a seccomp filter"
    );
    serve(&sock, config_path, &current, checks.as_ref());
    0
}

fn send(sock: &UnixStream, reply: &Reply) {
    // A failed write means the worker is gone; the reading loop sees it next.
    let _ = (&*sock).write(&reply.encode());
}

fn serve(sock: &UnixStream, config_path: &Path, current: &RwLock<Secrets>, checks: Option<&SyncSender<Request>>) {
    let mut pending: Option<Secrets> = None;
    let mut buf = Zeroizing::new(vec![0u8; MAX_MESSAGE + 1]);
    loop {
        let n = match read_packet(sock, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let request = match Request::decode(buf.get(..n).unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => {
                // No id to answer to: the worker's caller times out.
                tracing::warn!("keeper: dropped {e} ({n} bytes)");
                continue;
            }
        };
        match request {
            Request::Sign { id, scheme, message } => {
                let key = current.read().unwrap_or_else(PoisonError::into_inner).key.clone();
                send(sock, &sign(&*key, id, scheme, &message));
            }
            Request::Verify { id, user, password } => match checks {
                None => send(sock, &Reply::Refused { id, reason: "no password-check thread could start".into() }),
                Some(tx) => match tx.try_send(Request::Verify { id, user, password }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        send(sock, &Reply::Refused { id, reason: "too many password checks waiting".into() });
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                },
            },
            Request::Prepare { id } => match prepare(config_path) {
                Ok(loaded) => {
                    let removed_users =
                        removed(&current.read().unwrap_or_else(PoisonError::into_inner), &loaded.secrets);
                    let texts = loaded.texts.into_iter().map(|(p, t)| (p.to_string_lossy().into_owned(), t)).collect();
                    pending = Some(loaded.secrets);
                    send(sock, &Reply::Prepared { id, texts, removed_users });
                }
                Err(e) => {
                    pending = None;
                    send(sock, &Reply::Refused { id, reason: e.to_string() });
                }
            },
            Request::Commit { id } => match pending.take() {
                Some(next) => {
                    let key = next.hello.clone();
                    *current.write().unwrap_or_else(PoisonError::into_inner) = next;
                    tracing::info!("keeper: reloaded the server key and the password file");
                    send(sock, &Reply::Committed { id, key });
                }
                None => send(sock, &Reply::Refused { id, reason: "no reload was prepared".into() }),
            },
        }
    }
}

/// The password users of `old` who cannot log in with `new`: removed, or
/// locked (`corridor passwd --lock`).
fn removed(old: &Secrets, new: &Secrets) -> Vec<String> {
    let Some(old) = &old.passwords else { return Vec::new() };
    old.entries()
        .filter(|e| !e.locked)
        .map(|e| e.user.clone())
        .filter(|u| new.passwords.as_ref().is_none_or(|p| p.get(u).is_none_or(|e| e.locked)))
        .collect()
}

fn sign(key: &dyn SigningKey, id: u64, scheme: u16, message: &[u8]) -> Reply {
    if !is_tls_signature_input(message) {
        tracing::warn!(bytes = message.len(), "keeper: refused to sign something that is no TLS signature input");
        return Reply::Refused { id, reason: "not a TLS server signature input".into() };
    }
    let scheme = SignatureScheme::from(scheme);
    let Some(signer) = key.choose_scheme(&[scheme]) else {
        return Reply::Refused { id, reason: format!("the key does not sign with {scheme:?}") };
    };
    match signer.sign(message) {
        Ok(signature) => Reply::Signature { id, signature },
        Err(e) => Reply::Refused { id, reason: format!("signing failed: {e}") },
    }
}

/// The password-check threads; `None` when not one could be started.
/// Returns once each of them runs its loop, so that the seccomp filter
/// installed next finds no thread still in its start-up (which names the
/// thread and sets up its signal stack: calls the filter does not allow).
fn start_checkers(sock: &UnixStream, current: &Arc<RwLock<Secrets>>, threads: usize) -> Option<SyncSender<Request>> {
    let (tx, rx) = mpsc::sync_channel::<Request>(VERIFY_BACKLOG);
    let rx = Arc::new(Mutex::new(rx));
    let (running_tx, running) = mpsc::channel::<()>();
    let mut started = 0;
    for i in 0..threads {
        let (rx, current, running_tx) = (rx.clone(), current.clone(), running_tx.clone());
        let Ok(sock) = sock.try_clone() else { continue };
        let spawned = std::thread::Builder::new().name(format!("keeper-check{i}")).spawn(move || {
            let _ = running_tx.send(());
            check_passwords(&sock, &rx, &current);
        });
        if spawned.is_ok() {
            started += 1;
        }
    }
    drop(running_tx);
    let running = running.iter().take(started).count();
    (running > 0).then_some(tx)
}

fn check_passwords(sock: &UnixStream, rx: &Mutex<Receiver<Request>>, current: &RwLock<Secrets>) {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Request::Verify { id, user, password }) = next else { return };
        // The file of this moment: a reload swaps it under running checks.
        let passwords = current.read().unwrap_or_else(PoisonError::into_inner).passwords.clone();
        let reply = match passwords {
            Some(p) => Reply::Verdict { id, accepted: (*p).verify(&user, &password) },
            None => Reply::Refused { id, reason: "no password file is configured".into() },
        };
        send(sock, &reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls13(hash_len: usize) -> Vec<u8> {
        let mut m = vec![0x20; 64];
        m.extend_from_slice(TLS13_CONTEXT);
        m.extend(std::iter::repeat_n(0xab, hash_len));
        m
    }

    fn tls12(curve: u16, len: u8, point: usize) -> Vec<u8> {
        let mut m = vec![7u8; 64];
        m.push(3);
        m.extend_from_slice(&curve.to_be_bytes());
        m.push(len);
        m.extend(std::iter::repeat_n(4, point));
        m
    }

    #[test]
    fn only_tls_server_signature_inputs_are_signed() {
        assert!(is_tls_signature_input(&tls13(32)));
        assert!(is_tls_signature_input(&tls13(48)));
        assert!(is_tls_signature_input(&tls12(0x001d, 32, 32)));
        assert!(is_tls_signature_input(&tls12(0x0017, 65, 65)));
        assert!(is_tls_signature_input(&tls12(0x0018, 97, 97)));

        assert!(!is_tls_signature_input(&tls13(31)));
        assert!(!is_tls_signature_input(&tls13(64)));
        // The client's context is not the server's.
        let mut client = vec![0x20; 64];
        client.extend_from_slice(b"TLS 1.3, client CertificateVerify\0");
        client.extend([0; 32]);
        assert!(!is_tls_signature_input(&client));
        // A point of the wrong size, a length that lies, an unknown curve.
        assert!(!is_tls_signature_input(&tls12(0x001d, 32, 33)));
        assert!(!is_tls_signature_input(&tls12(0x0017, 64, 65)));
        assert!(!is_tls_signature_input(&tls12(0x1234, 32, 32)));
        // A certificate's TBS, a bare hash, nothing.
        assert!(!is_tls_signature_input(&[0x30, 0x82, 0x01, 0x0a, 0x02, 0x01]));
        assert!(!is_tls_signature_input(&[0u8; 32]));
        assert!(!is_tls_signature_input(&[]));
    }

    #[test]
    fn the_keeper_signs_what_its_key_can_and_refuses_the_rest() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .expect("key");
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8.as_ref().to_vec().into());
        let key = crate::tls::provider().key_provider.load_private_key(der).expect("load");
        let scheme = u16::from(SignatureScheme::ECDSA_NISTP256_SHA256);
        match sign(&*key, 9, scheme, &tls13(32)) {
            Reply::Signature { id: 9, signature } => assert!(!signature.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(sign(&*key, 1, scheme, b"a document"), Reply::Refused { id: 1, .. }));
        let rsa = u16::from(SignatureScheme::RSA_PSS_SHA256);
        assert!(matches!(sign(&*key, 2, rsa, &tls13(32)), Reply::Refused { id: 2, .. }));
    }
}
