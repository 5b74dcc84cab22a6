//! The peers themselves: OpenSSL, GnuTLS, the openconnect emulator and
//! Mbed TLS, each started with its options and awaited until ready.

use super::*;

// ---------------------------------------------------------------------------
// OpenSSL 3.0

/// Options for [`openssl_s_server`].
#[derive(Debug, Default, Clone)]
pub struct OpensslServerOpts {
    /// `-listen`: stateless cookie exchange through `DTLSv1_listen()` (a
    /// HelloVerifyRequest is sent with or without it).
    pub listen: bool,
    /// `-psk_hint`: makes the server send a ServerKeyExchange with the hint.
    pub psk_hint: Option<String>,
    /// `-no_ticket`: no NewSessionTicket.
    pub no_ticket: bool,
    /// `-mtu N`: small values force handshake fragmentation.
    pub mtu: Option<u32>,
    /// Hex PSK; `None` means [`TEST_PSK_HEX`].
    pub psk_hex: Option<String>,
    /// `-serverpref`: server's cipher order wins.
    pub serverpref: bool,
}

/// `openssl s_server -dtls1_2 -accept 127.0.0.1:PORT -naccept 1 -nocert -psk .. -psk_identity client1 -cipher CIPHER`
/// (+ options); returns once it printed `ACCEPT`.
///
/// It prints received application data on stdout and sends what the test writes
/// with [`PeerProcess::send_stdin_line`] (lines written before the handshake are
/// sent once it completes); it exits 0 after the one connection closes. Its stdin
/// stays open: without `-quiet`, stdin EOF shuts it down. The expected identity
/// (`client1`) only matters for a warning: other identities still handshake.
pub fn openssl_s_server(port: u16, cipher: &str, opts: &OpensslServerOpts) -> PeerProcess {
    let mut cmd = Command::new(require_tool("openssl"));
    cmd.arg("s_server")
        .arg("-dtls1_2")
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .args(["-naccept", "1", "-nocert"])
        .args(["-psk", opts.psk_hex.as_deref().unwrap_or(TEST_PSK_HEX)])
        .args(["-psk_identity", TEST_PSK_IDENTITY])
        .args(["-cipher", cipher]);
    if opts.listen {
        cmd.arg("-listen");
    }
    if let Some(hint) = &opts.psk_hint {
        cmd.args(["-psk_hint", hint]);
    }
    if opts.no_ticket {
        cmd.arg("-no_ticket");
    }
    if let Some(mtu) = opts.mtu {
        cmd.args(["-mtu", &mtu.to_string()]);
    }
    if opts.serverpref {
        cmd.arg("-serverpref");
    }
    await_ready(PeerProcess::spawn("openssl s_server", cmd), "ACCEPT")
}

/// `openssl s_client -dtls1_2 -connect 127.0.0.1:PORT -brief -psk HEX -psk_identity ID -cipher CIPHER`.
///
/// Nothing is sent until the caller writes it: `send_stdin_line("cli-hello")`
/// (may be written right away; it goes out after the handshake). Success shows as
/// `CONNECTION ESTABLISHED` and `Ciphersuite: <name>` (stderr) and the server's
/// data on stdout. Close stdin only after the expected reply arrived:
/// [`PeerProcess::close_stdin`] makes it send close_notify and exit 0 about 0.5 s later.
/// A wrong PSK does not fail fast (records are silently dropped): use a timeout.
pub fn openssl_s_client(port: u16, cipher: &str, identity: &str, psk_hex: &str) -> PeerProcess {
    let mut cmd = Command::new(require_tool("openssl"));
    cmd.arg("s_client")
        .arg("-dtls1_2")
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .arg("-brief")
        .args(["-psk", psk_hex])
        .args(["-psk_identity", identity])
        .args(["-cipher", cipher]);
    PeerProcess::spawn("openssl s_client", cmd)
}

// ---------------------------------------------------------------------------
// GnuTLS 3.7

/// Writes `psk.passwd` (`client1:<hex>` and `psk:<hex>` with [`TEST_PSK_HEX`]) into `dir`.
pub fn write_gnutls_psk_file(dir: &Path) -> PathBuf {
    let path = dir.join("psk.passwd");
    let contents = format!("{TEST_PSK_IDENTITY}:{TEST_PSK_HEX}\n{OC_PSK_IDENTITY}:{TEST_PSK_HEX}\n");
    std::fs::write(&path, contents).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    path
}

/// `gnutls-serv --udp -p PORT --echo --pskpasswd FILE --priority P`; returns once it
/// printed `UDP Echo Server listening on IPv4 0.0.0.0 port PORT...done` (and panics if
/// that line reports a failed bind instead of `done`).
///
/// It echoes every record back (so a client sending `cli-hello` gets `cli-hello`),
/// serves any number of connections, and runs until killed (drop does that). It
/// listens on all addresses: run inside the test namespace. Plain `NORMAL` has no
/// PSK: use [`PskSuite::gnutls_priority`] or [`OCSERV_PRIORITY`].
pub fn gnutls_serv(port: u16, priority: &str, psk_file: &Path) -> PeerProcess {
    let mut cmd = Command::new(require_tool("gnutls-serv"));
    cmd.arg("--udp")
        .args(["-p", &port.to_string()])
        .arg("--echo")
        .arg("--pskpasswd")
        .arg(psk_file)
        .args(["--priority", priority]);
    let server = await_ready(PeerProcess::spawn("gnutls-serv", cmd), "listening on IPv4");
    // A failed bind does not stop it: it prints
    // `UDP Echo Server listening on IPv4 0.0.0.0 port N...bind() failed: ...`
    // and goes on serving IPv6 only.
    let ipv4 = server.expect_line("listening on IPv4");
    if !ipv4.ends_with("done") {
        panic!(
            "{}",
            server
                .describe_failure(&format!("could not bind UDP port {port} on IPv4: {ipv4:?}"), &server.shared.lock())
        );
    }
    server
}

/// `gnutls-cli --udp -p PORT 127.0.0.1 --pskusername ID --pskkey HEX --priority P`.
///
/// Success: `- Handshake was completed`; the data the caller writes with
/// [`PeerProcess::send_stdin_line`] is sent, received data is printed; it exits 0 on
/// stdin EOF ([`PeerProcess::close_stdin`]), after waiting up to ~2 s for the server's
/// close_notify (`gnutls-serv` never answers it, so that pair takes 2 s longer; killing
/// it by drop once the echo arrived is fine too). It spends ~0.3 s loading the system
/// CAs at start. If the server vanished first it may exit 1 with "Error in the push
/// function" after a successful exchange, so assert on lines, not only the status.
pub fn gnutls_cli(port: u16, priority: &str, identity: &str, psk_hex: &str) -> PeerProcess {
    let mut cmd = Command::new(require_tool("gnutls-cli"));
    cmd.arg("--udp")
        .args(["-p", &port.to_string()])
        .arg("127.0.0.1")
        .args(["--pskusername", identity])
        .args(["--pskkey", psk_hex])
        .args(["--priority", priority]);
    PeerProcess::spawn("gnutls-cli", cmd)
}

// ---------------------------------------------------------------------------
// openconnect 9.01 PSK-NEGOTIATE client emulator

fn compile_oc_dtls_client() -> PathBuf {
    let source = peers_dir().join("oc_dtls_client.c");
    let gcc = require_tool("gcc");
    let pkg_config = require_tool("pkg-config");
    let flags = Command::new(&pkg_config)
        .args(["--cflags", "--libs", "gnutls"])
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", pkg_config.display()));
    assert!(
        flags.status.success(),
        "pkg-config finds no gnutls (Debian package libgnutls28-dev, needed to build the \
         oc_dtls_client peer); scripts/test.sh installs it\n{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("corridor-peers");
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|err| panic!("create {}: {err}", out_dir.display()));
    let target = out_dir.join("oc_dtls_client");
    // Parallel test binaries each compile to their own name, then rename over the
    // target atomically (a running copy keeps its old inode).
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.subsec_nanos()).unwrap_or(0);
    let temp = out_dir.join(format!("oc_dtls_client.{}.{nanos}.tmp", std::process::id()));

    let mut cmd = Command::new(&gcc);
    cmd.args(["-O2", "-Wall", "-o"]).arg(&temp).arg(&source).args(flags.split_whitespace());
    eprintln!("peer: build oc_dtls_client: {}", render_command(&cmd));
    let output = cmd.output().unwrap_or_else(|err| panic!("run {}: {err}", gcc.display()));
    if !output.status.success() {
        let _ = std::fs::remove_file(&temp);
        panic!(
            "building the oc_dtls_client peer failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&temp, &target)
        .unwrap_or_else(|err| panic!("rename {} -> {}: {err}", temp.display(), target.display()));
    target
}

/// Compiles `tests/peers/oc_dtls_client.c` (gcc, GnuTLS via pkg-config) into
/// `$CARGO_TARGET_TMPDIR/corridor-peers/` once per test process; returns the binary.
pub fn build_oc_dtls_client() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(compile_oc_dtls_client).clone()
}

/// The command [`oc_dtls_client`] runs, for variations such as `.env("NOEXT", "0")`
/// (then start it with [`PeerProcess::spawn`]).
pub fn oc_dtls_client_command(port: u16, psk_hex: &str, app_id_hex: &str, priority: Option<&str>) -> Command {
    let mut cmd = Command::new(build_oc_dtls_client());
    cmd.arg("127.0.0.1").arg(port.to_string()).arg(psk_hex).arg(app_id_hex);
    if let Some(priority) = priority {
        cmd.arg(priority);
    }
    cmd
}

/// The openconnect 9.01 PSK-NEGOTIATE DTLS client emulator (identity `psk`,
/// session_id = app id, no EMS, [`OPENCONNECT_PRIORITY`] unless `priority` is given).
///
/// Prints `HANDSHAKE OK <desc> suite=<GnuTLS name> ems=<0|1>`, sends `cli-hello\n`,
/// prints `RECV <text>` for the first record it gets (waits up to 10 s, so the server
/// side must send something), then `DONE`, exit 0. Handshake failure:
/// `ERROR handshake: ...` on stderr, exit 2; send/receive failure: exit 3.
pub fn oc_dtls_client(port: u16, psk_hex: &str, app_id_hex: &str, priority: Option<&str>) -> PeerProcess {
    PeerProcess::spawn("oc_dtls_client", oc_dtls_client_command(port, psk_hex, app_id_hex, priority))
}

// ---------------------------------------------------------------------------
// Mbed TLS 2.28 through python-mbedtls 2.10.1

fn venv_dir() -> PathBuf {
    std::env::var_os("CORRIDOR_PEERS_VENV")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("peers-venv"))
}

fn check_venv_python() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        return Err(format!(
            "python-mbedtls venv not found: {} does not exist (CORRIDOR_PEERS_VENV or \
             <workspace>/target/peers-venv); scripts/test.sh creates it with python-mbedtls==2.10.1",
            python.display()
        ));
    }
    let probe = Command::new(&python)
        .args(["-c", "import mbedtls, mbedtls.tls"])
        .output()
        .map_err(|err| format!("cannot run {}: {err}", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "python-mbedtls is not importable with {}; scripts/test.sh installs python-mbedtls==2.10.1 \
             into that venv\n{}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr)
        ));
    }
    Ok(python)
}

/// The peers venv's interpreter, checked once per process (exists, imports mbedtls);
/// panics with instructions otherwise.
pub fn venv_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(check_venv_python) {
        Ok(python) => python.clone(),
        Err(err) => panic!("mbedtls peer unavailable: {err}"),
    }
}

fn mbedtls_command(role: &str, port: u16, cipher: &str, identity: &str, psk_hex: &str) -> Command {
    let mut cmd = Command::new(venv_python());
    cmd.arg("-u")
        .arg(peers_dir().join("mbedtls_peer.py"))
        .arg(role)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .arg("--psk")
        .arg(format!("{identity}:{psk_hex}"))
        .arg("--cipher")
        .arg(cipher);
    cmd
}

/// python-mbedtls DTLS 1.2 PSK server (`cipher`: an Mbed TLS name, see
/// [`PskSuite::mbedtls`]); returns once it printed `LISTENING`. It sends a
/// HelloVerifyRequest (`SENT HelloVerifyRequest`), handshakes (`HANDSHAKE OK suite=..`),
/// prints `RECV <text>` for one record, answers `srv-hello\n` and exits 0 (2 plus an
/// `ERROR` line on failure; 10 s limit).
pub fn mbedtls_server(port: u16, cipher: &str, identity: &str, psk_hex: &str) -> PeerProcess {
    let cmd = mbedtls_command("server", port, cipher, identity, psk_hex);
    await_ready(PeerProcess::spawn("mbedtls server", cmd), "LISTENING")
}

/// python-mbedtls DTLS 1.2 PSK client: handshakes (`HANDSHAKE OK suite=..`), sends
/// `cli-hello\n`, prints `RECV <text>` for the reply and exits 0 (2 plus an `ERROR`
/// line on failure; 10 s limit).
pub fn mbedtls_client(port: u16, cipher: &str, identity: &str, psk_hex: &str) -> PeerProcess {
    let cmd = mbedtls_command("client", port, cipher, identity, psk_hex);
    PeerProcess::spawn("mbedtls client", cmd)
}
