//! The keeper: a small privileged process that holds the server's private
//! key and the password file, so the network-facing process never does.
//!
//! `corridor gateway` starts as root. Before it touches the network it
//! starts `corridor keeper` (the same binary, re-executed, so nothing of
//! the parent's memory is inherited) with one end of a `SOCK_SEQPACKET`
//! socket pair as its standard input. The keeper loads the configuration,
//! the key and the password file, and answers two questions over the
//! socket ([`wire`]):
//!
//! * **Sign** these bytes under this TLS scheme — asked by rustls through
//!   [`RemoteKey`], a `SigningKey` whose `sign` is a round trip to the
//!   keeper. The keeper signs only what is shaped like a TLS 1.3 server
//!   `CertificateVerify` input or a TLS 1.2 `ServerKeyExchange` (ECDHE)
//!   input ([`serve::is_tls_signature_input`]), so a compromised worker
//!   cannot use it as a general signing oracle.
//! * **Verify** this user's password — asked by the verifier threads
//!   through [`KeeperCredentials`]; PBKDF2 runs in the keeper.
//!
//! The worker then drops to its unprivileged user under seccomp
//! ([`crate::sandbox`]). Either process ending ends the other: the
//! keeper dies with its parent (`PR_SET_PDEATHSIG`) or on end of file,
//! and the worker's control loop exits when the keeper's socket closes
//! ([`Keeper::alive`]), so the service manager restarts both.
//!
//! Replies are matched to requests by id: the worker's callers (the
//! control thread signing, several verifier threads) send on the shared
//! socket — each packet is atomic — and one reader thread hands each reply
//! to its waiting caller.

pub mod sandbox;
pub mod serve;
pub mod wire;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use zeroize::Zeroizing;

use crate::config::ConfigError;
use crate::verifier::Credentials;
use wire::{Hello, KeyHello, Reply, Request, MAX_REPLY};

/// How long start-up waits for the keeper's hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signature may take: one ECDSA or RSA signing, queued behind
/// nothing (the keeper signs on its reading thread).
const SIGN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a password check may take: the keeper runs as many at once as
/// the worker has verifier threads, so a check waits for its own PBKDF2 run.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a reload's steps may take: reading a few files and a key.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the keeper could not be started.
#[derive(Debug)]
pub enum KeeperError {
    /// The keeper found a configuration mistake (the key, the password file).
    Config(ConfigError),
    /// The keeper could not be started or answered nonsense.
    Failed(String),
}

impl core::fmt::Display for KeeperError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Failed(why) => write!(f, "the keeper process: {why}"),
        }
    }
}

impl std::error::Error for KeeperError {}

/// What the worker knows of the key it does not hold.
#[derive(Debug, Clone)]
pub struct KeyFacts {
    pub spki: Vec<u8>,
    pub schemes: Vec<SignatureScheme>,
    pub algorithm: SignatureAlgorithm,
    /// A password file is loaded: password logins are possible.
    pub passwords: bool,
}

impl From<KeyHello> for KeyFacts {
    fn from(k: KeyHello) -> Self {
        Self {
            spki: k.spki,
            schemes: k.schemes.into_iter().map(SignatureScheme::from).collect(),
            algorithm: SignatureAlgorithm::from(k.algorithm),
            passwords: k.passwords,
        }
    }
}

/// A reload the keeper prepared: the texts of every file the configuration
/// read, by path, and the password users gone since the running file.
#[derive(Debug)]
pub struct Prepared {
    pub texts: HashMap<std::path::PathBuf, String>,
    pub removed_users: Vec<String>,
}

type Waiters = Mutex<HashMap<u64, SyncSender<Reply>>>;

/// The worker's end of the keeper: its process and its socket.
#[derive(Debug)]
pub struct Keeper {
    sock: UnixStream,
    waiters: Arc<Waiters>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
    facts: KeyFacts,
    child: Mutex<Child>,
}

impl Keeper {
    /// Starts `exe keeper --config CONFIG --threads THREADS` and waits for
    /// its hello. Call it before any thread of this process exists is not
    /// required (the keeper is a fresh exec), but before dropping
    /// privileges: the keeper must start as root to read the key.
    pub fn spawn(exe: &Path, config: &Path, threads: usize) -> Result<Arc<Self>, KeeperError> {
        let fail = |what: &str, e: &dyn core::fmt::Display| KeeperError::Failed(format!("{what}: {e}"));
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| fail("creating its socket pair", &e))?;
        let child = Command::new(exe)
            .arg("keeper")
            .arg("--config")
            .arg(config)
            .arg("--threads")
            .arg(threads.max(1).to_string())
            .stdin(Stdio::from(theirs))
            .spawn()
            .map_err(|e| fail(&format!("starting {}", exe.display()), &e))?;
        let sock = UnixStream::from(ours);
        sock.set_read_timeout(Some(HELLO_TIMEOUT)).map_err(|e| fail("socket", &e))?;
        let mut buf = vec![0u8; MAX_REPLY + 1];
        let n = (&sock).read(&mut buf).map_err(|e| fail("waiting for its hello", &e))?;
        if n == 0 {
            return Err(KeeperError::Failed("it ended before saying hello (its log says why)".into()));
        }
        let facts = match Hello::decode(buf.get(..n).unwrap_or_default()).map_err(|e| fail("its hello", &e))? {
            Hello::Failed { field, problem, fix } => {
                return Err(KeeperError::Config(ConfigError { field, problem, fix }))
            }
            Hello::Ready(key) => KeyFacts::from(key),
        };
        sock.set_read_timeout(None).map_err(|e| fail("socket", &e))?;
        let keeper = Arc::new(Self {
            sock: sock.try_clone().map_err(|e| fail("socket", &e))?,
            waiters: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            alive: Arc::new(AtomicBool::new(true)),
            facts,
            child: Mutex::new(child),
        });
        let (waiters, alive) = (keeper.waiters.clone(), keeper.alive.clone());
        std::thread::Builder::new()
            .name("keeper-link".into())
            .spawn(move || read_replies(&sock, &waiters, &alive))
            .map_err(|e| fail("starting its reply reader", &e))?;
        Ok(keeper)
    }

    pub fn facts(&self) -> &KeyFacts {
        &self.facts
    }

    /// The keeper's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(PoisonError::into_inner).id()
    }

    /// False once the keeper's socket closed: it ended, and nothing can
    /// sign or verify any more.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// A reload's first step: the keeper reads and checks everything again
    /// and keeps it aside; nothing changes yet. The error is the keeper's
    /// account of the mistake (a [`ConfigError`]'s text).
    pub fn prepare(&self) -> Result<Prepared, String> {
        match self.call(|id| Request::Prepare { id }, RELOAD_TIMEOUT)? {
            Reply::Prepared { texts, removed_users, .. } => Ok(Prepared {
                texts: texts.into_iter().map(|(p, t)| (std::path::PathBuf::from(p), t)).collect(),
                removed_users,
            }),
            Reply::Refused { reason, .. } => Err(reason),
            other => Err(format!("the keeper answered a reload with {other:?}")),
        }
    }

    /// A reload's second step: the prepared key and password file serve
    /// from now on; the new key's facts.
    pub fn commit(&self) -> Result<KeyFacts, String> {
        match self.call(|id| Request::Commit { id }, RELOAD_TIMEOUT)? {
            Reply::Committed { key, .. } => Ok(KeyFacts::from(key)),
            Reply::Refused { reason, .. } => Err(reason),
            other => Err(format!("the keeper answered a commit with {other:?}")),
        }
    }

    /// Sends the request `make` builds for a fresh id and waits up to
    /// `timeout` for its reply.
    fn call(&self, make: impl FnOnce(u64) -> Request, timeout: Duration) -> Result<Reply, String> {
        if !self.alive() {
            return Err("the keeper process has ended".into());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        let packet = make(id).encode();
        let sent = (&self.sock).write(&packet);
        let got = match sent {
            Ok(n) if n == packet.len() => rx.recv_timeout(timeout).map_err(|e| match e {
                RecvTimeoutError::Timeout => format!("no answer from the keeper in {} s", timeout.as_secs()),
                RecvTimeoutError::Disconnected => "the keeper process has ended".into(),
            }),
            Ok(n) => Err(format!("the keeper took {n} of {} bytes", packet.len())),
            Err(e) => Err(format!("writing to the keeper: {e}")),
        };
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        got
    }
}

/// The reader thread: hands each reply to the caller waiting for its id;
/// on end of file marks the keeper dead and wakes every waiter.
fn read_replies(sock: &UnixStream, waiters: &Waiters, alive: &AtomicBool) {
    let mut buf = vec![0u8; MAX_REPLY + 1];
    loop {
        match read_packet(sock, &mut buf) {
            Ok(n) if n > 0 && n <= MAX_REPLY => match Reply::decode(buf.get(..n).unwrap_or_default()) {
                Ok(reply) => {
                    let waiter = waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&reply.id());
                    if let Some(tx) = waiter {
                        let _ = tx.try_send(reply);
                    }
                }
                Err(e) => tracing::error!("dropped {e} from the keeper"),
            },
            Ok(0) => {
                tracing::error!("the keeper process ended: no signatures or password checks from now on");
                break;
            }
            Ok(n) => tracing::error!(bytes = n, "dropped an oversized message from the keeper"),
            Err(e) => {
                tracing::error!("reading from the keeper: {e}");
                break;
            }
        }
    }
    alive.store(false, Ordering::Relaxed);
    // Dropping the senders wakes every caller with "ended".
    waiters.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

/// Reads one packet, retrying when a signal interrupts the read.
pub(crate) fn read_packet(sock: &UnixStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match (&*sock).read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// The server key as rustls sees it in the worker: every signature is a
/// round trip to the keeper.
#[derive(Debug)]
pub struct RemoteKey {
    keeper: Arc<Keeper>,
    facts: KeyFacts,
}

impl RemoteKey {
    /// The key the keeper holds now, described by `facts` (its hello, or
    /// its answer to the last reload).
    pub fn signing_key(keeper: Arc<Keeper>, facts: KeyFacts) -> Arc<dyn SigningKey> {
        Arc::new(Self { keeper, facts })
    }
}

impl SigningKey for RemoteKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = *self.facts.schemes.iter().find(|s| offered.contains(s))?;
        Some(Box::new(RemoteSigner { keeper: self.keeper.clone(), scheme }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.facts.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.facts.algorithm
    }
}

#[derive(Debug)]
struct RemoteSigner {
    keeper: Arc<Keeper>,
    scheme: SignatureScheme,
}

impl Signer for RemoteSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let reply = self
            .keeper
            .call(|id| Request::Sign { id, scheme: u16::from(self.scheme), message: message.to_vec() }, SIGN_TIMEOUT)
            .map_err(|e| {
                tracing::error!("signing through the keeper: {e}");
                rustls::Error::General(e)
            })?;
        match reply {
            Reply::Signature { signature, .. } => Ok(signature),
            Reply::Refused { reason, .. } => {
                tracing::error!("the keeper refused to sign: {reason}");
                Err(rustls::Error::General(reason))
            }
            other => Err(rustls::Error::General(format!("the keeper answered a signature with {other:?}"))),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// The password file as the verifier threads see it in the worker: every
/// check is a round trip to the keeper, which runs PBKDF2.
#[derive(Debug)]
pub struct KeeperCredentials {
    keeper: Arc<Keeper>,
}

impl KeeperCredentials {
    pub fn new(keeper: Arc<Keeper>) -> Self {
        Self { keeper }
    }
}

impl Credentials for KeeperCredentials {
    fn verify(&self, user: &str, password: &str) -> Option<Option<String>> {
        let reply = self.keeper.call(
            |id| Request::Verify { id, user: user.to_string(), password: Zeroizing::new(password.to_string()) },
            VERIFY_TIMEOUT,
        );
        match reply {
            Ok(Reply::Verdict { accepted, .. }) => accepted,
            Ok(Reply::Refused { reason, .. }) => {
                tracing::error!(%user, "the keeper refused a password check: {reason}");
                None
            }
            Ok(other) => {
                tracing::error!("the keeper answered a password check with {other:?}");
                None
            }
            Err(e) => {
                tracing::error!(%user, "password check through the keeper: {e}");
                None
            }
        }
    }
}
