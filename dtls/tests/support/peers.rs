//! External DTLS 1.2 peers for interop tests, run as child processes.
//!
//! Peers: OpenSSL 3.0 (`openssl s_server` / `s_client`), GnuTLS 3.7
//! (`gnutls-serv` / `gnutls-cli`), the openconnect 9.01 PSK-NEGOTIATE client
//! emulator (`tests/peers/oc_dtls_client.c`, built on first use) and Mbed TLS
//! 2.28 through python-mbedtls (`tests/peers/mbedtls_peer.py`, run with the
//! venv that `scripts/test.sh` creates).
//!
//! Rules the helpers enforce:
//! * A missing peer makes the test **fail** (panic naming the peer and saying
//!   that `scripts/test.sh` installs it); interop tests are never skipped.
//! * Every spawn prints `peer: <name>: <command line>`, so test output names
//!   the peer. If a test panics while a [`PeerProcess`] is alive, its drop
//!   prints the peer's transcript.
//! * Server constructors return only once the peer printed its readiness line
//!   (10 s limit) and panic with the transcript otherwise.
//! * Peers are bound to / dialled on 127.0.0.1. `gnutls-serv` listens on all
//!   addresses, which is why `scripts/test.sh` runs the tests inside a private
//!   network namespace (`unshare --net`, only `lo`).
//!
//! Scripted exchange per peer (a test asserts on the lines):
//!
//! | peer | ready on | success lines | payload |
//! |---|---|---|---|
//! | [`openssl_s_server`] | `ACCEPT` | received data on stdout; exits 0 after the connection | sends what the test writes with [`PeerProcess::send_stdin_line`] |
//! | [`openssl_s_client`] | – | `CONNECTION ESTABLISHED`, `Ciphersuite: <openssl name>` | sends stdin lines; exits 0 ~0.5 s after [`PeerProcess::close_stdin`] |
//! | [`gnutls_serv`] | `listening on IPv4 ...done` | `*** Processing 10 bytes command: cli-hello` | echoes every record; runs until killed |
//! | [`gnutls_cli`] | – | `- Handshake was completed`, `- Description: (DTLS1.2-X.509)-(PSK)-(AES-128-GCM)` | sends stdin lines; exits 0 on stdin EOF (after ≤ 2 s waiting for close_notify) |
//! | [`oc_dtls_client`] | – | `HANDSHAKE OK (DTLS1.2)-(PSK)-(AES-256-GCM) suite=PSK_AES_256_GCM_SHA384 ems=0`, `RECV <text>`, `DONE` | sends `cli-hello\n`, waits 10 s for one record |
//! | [`mbedtls_server`] | `LISTENING` | `SENT HelloVerifyRequest`, `HANDSHAKE OK suite=<mbedtls name>`, `RECV cli-hello` | answers `srv-hello\n` |
//! | [`mbedtls_client`] | – | `HANDSHAKE OK suite=<mbedtls name>`, `RECV <text>` | sends `cli-hello\n` |

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod stacks;
pub use stacks::*;

/// The test PSK shared by all peers (16 bytes, hex).
pub const TEST_PSK_HEX: &str = "000102030405060708090a0b0c0d0e0f";
/// The PSK identity the peers use (openconnect itself always says [`OC_PSK_IDENTITY`]).
pub const TEST_PSK_IDENTITY: &str = "client1";
/// The fixed PSK identity of openconnect's PSK-NEGOTIATE DTLS client.
pub const OC_PSK_IDENTITY: &str = "psk";
/// GnuTLS priority openconnect 9.01 uses for PSK-NEGOTIATE with default options
/// (no EMS, no encrypt-then-MAC through `%COMPAT`).
pub const OPENCONNECT_PRIORITY: &str =
    "NORMAL:-VERS-SSL3.0:+SHA256:%COMPAT:-3DES-CBC:-ARCFOUR-128:-VERS-TLS-ALL:+VERS-DTLS-ALL:-KX-ALL:+PSK";
/// ocserv-like DTLS PSK server priority (ocserv's default `tls-priorities` plus its DTLS suffix).
pub const OCSERV_PRIORITY: &str = "NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-TLS1.3:-VERS-TLS-ALL:-KX-ALL:+PSK:+VERS-DTLS-ALL";
/// How long a server constructor waits for the readiness line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit for a positive interop case (handshake plus one record each way).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The test PSK as bytes.
pub fn test_psk() -> Vec<u8> {
    decode_hex(TEST_PSK_HEX)
}

/// Decodes lowercase or uppercase hex; panics on malformed input (test helper).
pub fn decode_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd-length hex string {hex:?}");
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).expect("hex string is ASCII");
            u8::from_str_radix(digits, 16).unwrap_or_else(|err| panic!("bad hex digits {digits:?} in {hex:?}: {err}"))
        })
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(out, "{byte:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// A UDP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, drop),
/// never the same one twice within a test process (tests run in parallel threads).
pub fn free_udp_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..64 {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free UDP port");
        let port = socket.local_addr().expect("local_addr of a bound UDP socket").port();
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no UDP port that was not handed out before after 64 tries");
}

/// The plain-PSK AEAD suites the peers are tested with, and their names per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PskSuite {
    /// TLS_PSK_WITH_AES_128_GCM_SHA256 (0x00A8)
    Aes128Gcm,
    /// TLS_PSK_WITH_AES_256_GCM_SHA384 (0x00A9)
    Aes256Gcm,
    /// TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 (0xCCAB)
    Chacha20Poly1305,
}

impl PskSuite {
    pub const ALL: [PskSuite; 3] = [Self::Aes128Gcm, Self::Aes256Gcm, Self::Chacha20Poly1305];

    /// IANA cipher suite number.
    pub fn id(self) -> u16 {
        match self {
            Self::Aes128Gcm => 0x00A8,
            Self::Aes256Gcm => 0x00A9,
            Self::Chacha20Poly1305 => 0xCCAB,
        }
    }

    /// OpenSSL name (`-cipher`, and `s_client -brief`'s `Ciphersuite:` line).
    pub fn openssl(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "PSK-AES128-GCM-SHA256",
            Self::Aes256Gcm => "PSK-AES256-GCM-SHA384",
            Self::Chacha20Poly1305 => "PSK-CHACHA20-POLY1305",
        }
    }

    /// Mbed TLS name (`mbedtls_peer.py --cipher`, and its `suite=` output).
    pub fn mbedtls(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "TLS-PSK-WITH-AES-128-GCM-SHA256",
            Self::Aes256Gcm => "TLS-PSK-WITH-AES-256-GCM-SHA384",
            Self::Chacha20Poly1305 => "TLS-PSK-WITH-CHACHA20-POLY1305-SHA256",
        }
    }

    /// GnuTLS suite name as `oc_dtls_client` prints it after `suite=`.
    pub fn gnutls_name(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "PSK_AES_128_GCM_SHA256",
            Self::Aes256Gcm => "PSK_AES_256_GCM_SHA384",
            Self::Chacha20Poly1305 => "PSK_CHACHA20_POLY1305_SHA256",
        }
    }

    /// GnuTLS priority string allowing exactly this suite in DTLS 1.2 (EMS on).
    pub fn gnutls_priority(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-GCM:-MAC-ALL:+AEAD",
            Self::Aes256Gcm => "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-256-GCM:-MAC-ALL:+AEAD",
            Self::Chacha20Poly1305 => {
                "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+CHACHA20-POLY1305:-MAC-ALL:+AEAD"
            }
        }
    }

    /// The key-exchange and cipher part of GnuTLS's session description, e.g.
    /// `(PSK)-(AES-128-GCM)` (gnutls-cli's `- Description:` and `oc_dtls_client`'s line).
    pub fn gnutls_description(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "(PSK)-(AES-128-GCM)",
            Self::Aes256Gcm => "(PSK)-(AES-256-GCM)",
            Self::Chacha20Poly1305 => "(PSK)-(CHACHA20-POLY1305)",
        }
    }
}

// ---------------------------------------------------------------------------
// Tools on PATH

/// Which Debian package provides a peer program (for the panic message).
fn package_of(program: &str) -> Option<&'static str> {
    match program {
        "openssl" => Some("openssl"),
        "gnutls-serv" | "gnutls-cli" => Some("gnutls-bin"),
        "gcc" => Some("gcc"),
        "pkg-config" => Some("pkg-config"),
        "python3" => Some("python3"),
        _ => None,
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let is_executable = |path: &Path| {
        path.metadata().map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let search = std::env::var_os("PATH")?;
    std::env::split_paths(&search).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

/// Finds `name` on PATH. A missing peer program is a test **failure** (panic),
/// never a skip.
pub fn require_tool(name: &str) -> PathBuf {
    find_on_path(name).unwrap_or_else(|| {
        let package = package_of(name).map(|package| format!(" (Debian package `{package}`)")).unwrap_or_default();
        panic!(
            "interop peer program `{name}`{package} is not on PATH; scripts/test.sh installs it. \
             Interop tests fail rather than skip when a peer is missing."
        )
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the dtls crate lives inside the workspace").to_path_buf()
}

/// `dtls/tests/peers/`: the peer sources.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("peers")
}

// ---------------------------------------------------------------------------
// PeerProcess

#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
    /// stdout/stderr reader threads still running.
    open_streams: usize,
}

#[derive(Default)]
struct Shared {
    transcript: Mutex<Transcript>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Transcript> {
        self.transcript.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn render(transcript: &Transcript) -> String {
        transcript.lines.join("\n")
    }
}

/// A running external peer: stdin piped (kept open until [`close_stdin`](Self::close_stdin)
/// or drop, because `openssl s_server`/`s_client` act on stdin EOF), stdout and stderr read
/// by two background threads into one transcript of lines. The child is killed on drop.
pub struct PeerProcess {
    name: String,
    command_line: String,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl fmt::Debug for PeerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("command_line", &self.command_line)
            .finish_non_exhaustive()
    }
}

fn shell_quote(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn render_command(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => parts.push(format!("{}={}", key.to_string_lossy(), shell_quote(value))),
            None => parts.push(format!("(unset {})", key.to_string_lossy())),
        }
    }
    parts.push(shell_quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(shell_quote));
    parts.join(" ")
}

fn spawn_reader<R: Read + Send + 'static>(
    peer: &str,
    stream_name: &str,
    stream: R,
    shared: Arc<Shared>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name(format!("peer-{peer}-{stream_name}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&raw);
                        let line = line.trim_end_matches(['\n', '\r']).to_owned();
                        shared.lock().lines.push(line);
                        shared.changed.notify_all();
                    }
                }
            }
            shared.lock().open_streams -= 1;
            shared.changed.notify_all();
        })
        .expect("spawn a peer output reader thread")
}

impl PeerProcess {
    /// Starts `cmd` as peer `name` with stdin piped and stdout/stderr captured,
    /// printing `peer: <name>: <command line>`. Panics if it cannot be started.
    pub fn spawn(name: &str, mut cmd: Command) -> PeerProcess {
        let command_line = render_command(&cmd);
        eprintln!("peer: {name}: {command_line}");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|err| {
            panic!("peer {name}: cannot start `{command_line}`: {err}; scripts/test.sh installs the interop peers")
        });
        let shared = Arc::new(Shared::default());
        shared.lock().open_streams = 2;
        let stdout = child.stdout.take().expect("child stdout is piped");
        let stderr = child.stderr.take().expect("child stderr is piped");
        let readers = vec![
            spawn_reader(name, "stdout", stdout, Arc::clone(&shared)),
            spawn_reader(name, "stderr", stderr, Arc::clone(&shared)),
        ];
        PeerProcess {
            name: name.to_owned(),
            command_line,
            stdin: child.stdin.take(),
            child,
            shared,
            readers,
            started: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time since the peer was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// All stdout and stderr lines so far, in arrival order, joined with `\n`.
    pub fn transcript(&self) -> String {
        Shared::render(&self.shared.lock())
    }

    fn describe_failure(&self, what: &str, transcript: &Transcript) -> String {
        format!(
            "peer {}: {what} (after {:.2?})\ncommand: {}\n--- transcript ---\n{}\n--- end of transcript ---",
            self.name,
            self.started.elapsed(),
            self.command_line,
            Shared::render(transcript)
        )
    }

    /// Waits for the first line containing `needle` (searching from the start of
    /// the transcript) and returns it. `Err` holds the whole transcript if the
    /// timeout passes or the peer closed its output (exited) without such a line.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut transcript = self.shared.lock();
        loop {
            if let Some(line) = transcript.lines.iter().find(|line| line.contains(needle)) {
                return Ok(line.clone());
            }
            if transcript.open_streams == 0 {
                return Err(self.describe_failure(
                    &format!("exited (closed stdout and stderr) without printing a line containing {needle:?}"),
                    &transcript,
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(
                    self.describe_failure(&format!("no line containing {needle:?} within {timeout:?}"), &transcript)
                );
            }
            transcript = match self.shared.changed.wait_timeout(transcript, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// [`wait_for_line`](Self::wait_for_line) with [`PEER_TIMEOUT`], panicking with the transcript.
    pub fn expect_line(&self, needle: &str) -> String {
        self.wait_for_line(needle, PEER_TIMEOUT).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Asserts that no line so far contains `needle`.
    pub fn assert_no_line(&self, needle: &str) {
        let transcript = self.shared.lock();
        if transcript.lines.iter().any(|line| line.contains(needle)) {
            panic!("{}", self.describe_failure(&format!("unexpected line containing {needle:?}"), &transcript));
        }
    }

    /// Writes `line` (plus `\n` unless present) to the peer's stdin and flushes.
    /// Panics (with the transcript) if stdin was closed or the peer is gone.
    pub fn send_stdin_line(&mut self, line: &str) {
        let result = match self.stdin.as_mut() {
            None => Err(std::io::Error::other("stdin already closed")),
            Some(stdin) => {
                let mut data = line.to_owned();
                if !data.ends_with('\n') {
                    data.push('\n');
                }
                stdin.write_all(data.as_bytes()).and_then(|()| stdin.flush())
            }
        };
        if let Err(err) = result {
            panic!("{}", self.describe_failure(&format!("cannot write {line:?} to stdin: {err}"), &self.shared.lock()));
        }
    }

    /// Closes the peer's stdin (EOF): `openssl s_client` and `gnutls-cli` then send
    /// close_notify and exit, `openssl s_server` shuts down.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the readers to reach EOF (bounded: a grandchild could hold the
    /// pipes), then reaps the finished reader threads.
    fn drain_output(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        {
            let mut transcript = self.shared.lock();
            while transcript.open_streams > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                transcript = match self.shared.changed.wait_timeout(transcript, deadline - now) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
        let (finished, running): (Vec<_>, Vec<_>) = self.readers.drain(..).partition(JoinHandle::is_finished);
        for reader in finished {
            // A reader thread only panics on a bug; the transcript shows what it read.
            let _ = reader.join();
        }
        self.readers = running;
    }

    /// Waits up to `timeout` for the peer to exit and returns its status, with the
    /// transcript complete. On timeout the peer is killed and `None` returned.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.drain_output(Duration::from_secs(2));
                    return Some(status);
                }
                Ok(None) => {}
                Err(err) => eprintln!("peer: {}: try_wait failed: {err}", self.name),
            }
            if Instant::now() >= deadline {
                self.kill();
                self.drain_output(Duration::from_secs(2));
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `timeout` for exit status 0; panics with the transcript otherwise.
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Some(status) if status.success() => {}
            Some(status) => panic!("{}", self.describe_failure(&format!("exited with {status}"), &self.shared.lock())),
            None => panic!(
                "{}",
                self.describe_failure(&format!("still running after {timeout:?} (killed)"), &self.shared.lock())
            ),
        }
    }

    /// Kills the peer (if still running) and reaps it.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // It may exit between the check and the kill; both outcomes are fine.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
        if thread::panicking() {
            self.drain_output(Duration::from_millis(500));
            eprintln!(
                "peer: {}: transcript at test failure:\n{}\n--- end of {} transcript ---",
                self.name,
                self.transcript(),
                self.name
            );
        }
    }
}

/// Panics with the transcript unless `peer` prints a line containing `needle`
/// within [`READY_TIMEOUT`].
fn await_ready(peer: PeerProcess, needle: &str) -> PeerProcess {
    if let Err(err) = peer.wait_for_line(needle, READY_TIMEOUT) {
        panic!("peer {} did not become ready: {err}", peer.name());
    }
    peer
}
