//! `corridor`: the command line. Wiring only; the work is in the crates.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

mod connect;
mod generate;
mod passwd;
mod version;

#[derive(Parser, Debug)]
#[command(name = "corridor", version, about = "A secure-tunnel gateway that speaks OpenConnect")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Gateway {
        /// The TOML configuration (see config/gateway.example.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Check the configuration, its files (and their permissions) and the
        /// password file's groups, print the effective configuration (TOML,
        /// defaults filled in, secrets redacted) and exit: 0 when good, 2
        /// naming the mistake.
        #[arg(long)]
        check_config: bool,
    },
    /// The gateway's keeper process (started by `corridor gateway`; not run by hand):
    /// holds the server key and the password file, answers over standard input.
    #[command(hide = true)]
    Keeper {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Run the infrastructure relay: devices connect to it, gateways dial out to it.
    Relay {
        /// The TOML configuration (see config/relay.example.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Check the configuration, the link certificate and key, and the
        /// user it drops to, print the effective configuration (TOML,
        /// defaults filled in, tokens redacted) and exit: 0 when good, 2
        /// naming the mistake.
        #[arg(long)]
        check_config: bool,
    },
    /// Manage a password file: set a user's password (asked twice without
    /// echo on a terminal, one line from a pipe), or delete, lock, unlock or
    /// list users.
    Passwd(passwd::Args),
    /// Connect this machine to a gateway (corridor or any OpenConnect
    /// server): log in, create a TUN with the tunnel's address and routes,
    /// carry packets over DTLS (CSTP when it fails) until SIGINT or SIGTERM
    /// logs out. Exit status 0: logged out; 1: refused, lost or failed; 2:
    /// a usage mistake.
    Connect(connect::Args),
    /// Start an app inside a per-app tunnel of `corridor connect` (one of
    /// the apps its gateway or --app lists): it and what it starts use the
    /// tunnel and reach nothing outside it.
    App(connect::AppArgs),
    /// Ask or tell the running gateway, over its ctl socket: status,
    /// sessions, kill, bans, unban. Exit status 0: done; 1: the command
    /// failed (no such session...); 2: a usage mistake or no gateway there.
    Ctl {
        /// The gateway's `[admin] ctl_socket`.
        #[arg(long, default_value = control::ctl::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print the gateway's answer as JSON (always one JSON object, errors included).
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Man pages and shell completions, for packaging.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: generate::What,
    },
    /// Load generation against a running gateway.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CtlCommand {
    /// Version, uptime, FIPS, shards and their health, I/O engine, relays, counts.
    Status,
    /// Every session: user, address, peer, channel, cipher, age, bytes and packets.
    Sessions,
    /// One session by id (s3), or every session of a user.
    Show { target: String },
    /// End a session (by id) or every session of a user, and revoke their cookies.
    Kill {
        /// The session id (s3, or 3).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Every session of this user.
        #[arg(long)]
        user: Option<String>,
        /// Why, for the log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Sources with ban points, and how long each ban has left.
    Bans,
    /// Lift the ban on an address's source (its /64 for IPv6) and forget its points.
    Unban { address: std::net::IpAddr },
    /// Reread the configuration, the key and the password file (as SIGHUP does).
    Reload,
    /// Stop taking logins and close every tunnel without DISCONNECT, so
    /// devices reconnect through the relay to another gateway of the name.
    Drain,
}

impl CtlCommand {
    fn request(self) -> control::ctl::Request {
        use control::ctl::Request;
        match self {
            CtlCommand::Status => Request::Status,
            CtlCommand::Sessions => Request::Sessions,
            CtlCommand::Show { target } => Request::Show { target },
            CtlCommand::Kill { user: Some(user), reason, .. } => Request::KillUser { user, reason },
            CtlCommand::Kill { id, reason, .. } => Request::Kill { session: id.unwrap_or_default(), reason },
            CtlCommand::Bans => Request::Bans,
            CtlCommand::Unban { address } => Request::Unban { address },
            CtlCommand::Reload => Request::Reload,
            CtlCommand::Drain => Request::Drain,
        }
    }
}

#[derive(Subcommand, Debug)]
// Parsed once per process; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum BenchCommand {
    /// Run a scenario: handshake-storm, udp-echo, bulk, bulk-down or many-sessions.
    Run {
        /// The scenario's stable name.
        scenario: String,
        /// The gateway, `https://HOST[:PORT]/`.
        #[arg(long)]
        gateway: String,
        /// PEM CA that signed the gateway certificate.
        #[arg(long)]
        cafile: PathBuf,
        /// The user every device logs in as.
        #[arg(long, default_value = "")]
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required_unless_present = "cert")]
        password_stdin: bool,
        /// PEM client certificate every device presents (certificate login).
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// The PEM private key of --cert.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Simulated devices.
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Devices handshaking at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Packets per second, all devices together; 0 = saturation
        /// [default: udp-echo 1000, bulk 0].
        #[arg(long)]
        rate: Option<u64>,
        /// Seconds of traffic (udp-echo, bulk) or of holding the sessions (many-sessions).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The reflector behind the gateway (`corridor bench reflect`).
        #[arg(long, default_value = "10.99.0.2:9000")]
        reflector: std::net::SocketAddrV4,
        /// Generator threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// bulk: IP packet size in bytes (44..=1500) or `imix`.
        #[arg(long, default_value = "1400")]
        size: bench::load::PacketSize,
        /// udp-echo at saturation: probes in flight per device.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// The gateway's process id, for its memory per session (PSS of its process tree).
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// Generator processes (handshake-storm, many-sessions), for fleets
        /// beyond one process's open-file limit (two sockets per device).
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// Print `settled up=N failed=M` once every device is up or failed
        /// (used between generator processes).
        #[arg(long, hide = true)]
        announce_settled: bool,
        /// Where to write the JSON result.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Compare two JSON results (bench run or compare-peers): ratios NEW/OLD,
    /// exit status 1 when a figure regressed beyond the threshold.
    Compare {
        old: PathBuf,
        new: PathBuf,
        /// Relative move counted as a regression (0.05 = 5 %).
        #[arg(long, default_value_t = 0.05)]
        threshold: f64,
    },
    /// Unauthenticated datagrams at a gateway's DTLS port from one address
    /// and many ports (scripts/flood-bench.sh).
    Flood {
        /// The gateway's DTLS address.
        #[arg(long)]
        target: std::net::SocketAddr,
        /// The one source address the flood's sockets bind.
        #[arg(long)]
        bind: std::net::IpAddr,
        /// Source ports (one socket each).
        #[arg(long, default_value_t = 64)]
        ports: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Datagrams per second in all; 0 = as fast as one thread sends.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// client-hello (a real ClientHello, random App-ID), garbage, or mixed.
        #[arg(long, default_value = "client-hello")]
        kind: bench::flood::FloodKind,
    },
    /// Echo UDP datagrams back to their sender (the udp-echo reflector).
    Reflect {
        #[arg(long, default_value = "10.99.0.2:9000")]
        listen: std::net::SocketAddr,
    },
}

/// The command line, with `--version` as [`version::long`] writes it.
fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command().long_version(version::long())
}

fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches).map_err(|e| e.format(&mut command()))
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // The servers (and the keeper beside the gateway) log as their
    // configuration's `[log] format` says; everything else in text.
    let format = match &cli.command {
        Command::Gateway { config, check_config: false }
        | Command::Relay { config, check_config: false }
        | Command::Keeper { config, .. } => service::log::LogFormat::of_file(config),
        _ => service::log::LogFormat::Text,
    };
    // `corridor connect` logs to standard error, as openconnect does: its
    // standard output is for what a script reads (`--authenticate`).
    let to_stderr = matches!(cli.command, Command::Connect(_));
    let (writer, terminal) = if to_stderr {
        (BoxMakeWriter::new(std::io::stderr), std::io::IsTerminal::is_terminal(&std::io::stderr()))
    } else {
        (BoxMakeWriter::new(std::io::stdout), std::io::IsTerminal::is_terminal(&std::io::stdout()))
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false);
    match format {
        service::log::LogFormat::Json => logs.json().flatten_event(true).init(),
        service::log::LogFormat::Text => logs.with_ansi(terminal).init(),
    }
    match cli.command {
        Command::Gateway { config, check_config: true } => check_gateway_config(&config),
        Command::Gateway { config, check_config: false } => gateway(&config),
        Command::Keeper { config, threads } => {
            // The keeper ends when the gateway does (its socket closes): a
            // terminal's SIGINT or SIGHUP to the whole process group, or
            // systemd's SIGTERM to the whole unit, must not end it first.
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
                let _ = signal_hook::flag::register(sig, Arc::new(AtomicBool::new(false)));
            }
            ExitCode::from(control::keeper::serve::run(&config, threads))
        }
        Command::Relay { config, check_config: true } => check_relay_config(&config),
        Command::Relay { config, check_config: false } => relay(&config),
        Command::Passwd(args) => passwd::run(args),
        Command::Connect(args) => connect::run(args),
        Command::App(args) => connect::app(args),
        Command::Ctl { socket, json, command } => ctl(&socket, json, command),
        Command::Bench { command } => bench_command(command),
        Command::Generate { what } => generate::run(what, <Cli as clap::CommandFactory>::command()),
    }
}

/// Clap's own handling, except that `corridor ctl --json` says a usage
/// mistake in JSON on standard output too, as it says everything else.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let args: Vec<String> = std::env::args().collect();
    let shown = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    if !shown && args.get(1).is_some_and(|a| a == "ctl") && args.iter().any(|a| a == "--json") {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("usage error").trim_start_matches("error: ");
        print!("{}", control::ctl::client::usage_error(first, true).stdout);
        let _ = e.print();
        return ExitCode::from(2);
    }
    e.exit()
}

/// `corridor ctl`: the client is `control::ctl::client`; a request the
/// gateway would refuse is refused here first, the same way.
fn ctl(socket: &std::path::Path, json: bool, command: CtlCommand) -> ExitCode {
    use control::ctl::{client, parse_request};
    let request = command.request();
    let o = match parse_request(request.to_line().trim_end().as_bytes()) {
        Ok(request) => client::run(socket, json, &request),
        Err(e) => client::usage_error(&e, json),
    };
    print!("{}", o.stdout);
    eprint!("{}", o.stderr);
    ExitCode::from(o.code)
}

fn bench_command(command: BenchCommand) -> ExitCode {
    match command {
        BenchCommand::Flood { target, bind, ports, seconds, rate, kind } => {
            let params = bench::flood::FloodParams { target, bind, ports, seconds, rate, kind };
            // SIGTERM ends the flood early, with its report.
            let Some(stop) = stop_flag() else { return ExitCode::FAILURE };
            match bench::flood::flood(&params, &stop) {
                Ok(report) => {
                    println!("{}", report.line(&params));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("corridor bench flood: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        BenchCommand::Reflect { listen } => match bench::load::reflect(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("corridor bench reflect: {e}");
                ExitCode::FAILURE
            }
        },
        BenchCommand::Run {
            scenario,
            gateway,
            cafile,
            user,
            password_stdin,
            cert,
            key,
            devices,
            concurrency,
            rate,
            seconds,
            reflector,
            threads,
            size,
            window,
            gateway_pid,
            processes,
            announce_settled,
            json,
        } => {
            let mut line = String::new();
            if password_stdin
                && (std::io::stdin().lock().read_line(&mut line).is_err()
                    || line.trim_end_matches(['\r', '\n']).is_empty())
            {
                eprintln!("corridor bench run: give the password on standard input");
                return ExitCode::from(2);
            }
            let password = line.trim_end_matches(['\r', '\n']).to_string();
            let client_cert = cert.zip(key);
            let target = bench::load::Target { gateway, cafile, user, password, client_cert };
            let rate = rate.unwrap_or(if scenario == "udp-echo" { 1000 } else { 0 });
            let params = bench::load::Params {
                devices,
                concurrency,
                rate,
                seconds,
                reflector,
                threads,
                size,
                window,
                gateway_pid,
                processes,
                announce_settled,
            };
            let report = match bench::load::run(&scenario, &target, &params) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("corridor bench run: {e}");
                    return ExitCode::FAILURE;
                }
            };
            print!("{}", report.table());
            if let Some(path) = json {
                if let Err(e) = std::fs::write(&path, report.json_text()) {
                    eprintln!("corridor bench run: writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        BenchCommand::Compare { old, new, threshold } => {
            let comparison = match bench::compare::compare_files(&old, &new, threshold) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("corridor bench compare: {e}");
                    return ExitCode::from(2);
                }
            };
            print!("{}", comparison.table(threshold));
            if comparison.regressions().next().is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// SIGINT and SIGTERM set the flag the event loops poll.
fn stop_flag() -> Option<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("corridor: cannot install a signal handler: {e}");
            return None;
        }
    }
    Some(stop)
}

/// `corridor relay`: binds its listeners and loads its link key as root,
/// then drops to `[relay] user` under seccomp before serving anything
/// (docs/security.md, "Process model").
fn relay(path: &std::path::Path) -> ExitCode {
    let config = match relay::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(stop) = stop_flag() else { return ExitCode::FAILURE };
    // Connected now, as root: after the drop the socket's path may be out
    // of reach and seccomp allows no unix sockets.
    let mut notifier = service_notifier();
    let user = config.user.clone();
    let r = match relay::Relay::start(config) {
        Ok(r) => r,
        Err(relay::StartError::Config(e)) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dropped = match relay::sandbox::confine(&user) {
        Ok(d) => {
            tracing::info!(
                user = %d.user,
                uid = d.uid,
                gid = d.gid,
                "privileges dropped: no capabilities, no_new_privs, seccomp filter"
            );
            d
        }
        Err(e) => {
            eprintln!("corridor: cannot drop privileges: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serving = r.local_addrs().map_or_else(
        |_| "serving".to_owned(),
        |(devices, gateways)| format!("serving devices on {devices}, gateways on {gateways} as {}", dropped.user),
    );
    notifier.ready(&serving);
    match r.notify_to(notifier).run(&stop) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The service manager's notify socket (`NOTIFY_SOCKET`, set by systemd
/// for `Type=notify`); one that cannot be reached is said and done without.
fn service_notifier() -> service::notify::Notifier {
    service::notify::Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("NOTIFY_SOCKET is set but cannot be reached ({e}); not notifying the service manager");
        service::notify::Notifier::disabled()
    })
}

/// `corridor gateway`: starts the keeper (key and passwords), the gateway
/// (TUN, sockets, rings, shards) as root, then drops to `[server] user`
/// under seccomp before serving anything (docs/security.md, "Process model").
fn gateway(path: &std::path::Path) -> ExitCode {
    let config = match control::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("corridor: cannot find its own executable to start the keeper: {e}");
            return ExitCode::FAILURE;
        }
    };
    let threads = control::verifier::threads_for(config.verify_threads);
    let keeper = match control::keeper::Keeper::spawn(&exe, path, threads) {
        Ok(k) => k,
        Err(control::keeper::KeeperError::Config(e)) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let keeper_pid = keeper.pid();
    let user = config.user.clone();
    // Connected now, as root: after the drop the socket's path may be out
    // of reach and seccomp allows no new sockets of every kind.
    let mut notifier = service_notifier();
    let Some(stop) = stop_flag() else { return ExitCode::FAILURE };
    // SIGHUP reloads (docs/operations.md): set a flag the event loop polls.
    let reload = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()) {
        eprintln!("corridor: cannot install the SIGHUP handler: {e}");
        return ExitCode::FAILURE;
    }
    let gw = match control::Gateway::start(config, control::Secrets::Keeper(keeper)) {
        Ok(g) => g,
        Err(control::StartError::Config(e)) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let confined = control::sandbox::share_ctl_socket(gw.ctl_socket_path(), &user)
        .and_then(|()| control::sandbox::drop_to(&user))
        .and_then(|d| control::sandbox::confine().map(|()| d));
    match confined {
        Ok(d) => tracing::info!(
            user = %d.user,
            uid = d.uid,
            gid = d.gid,
            keeper_pid,
            "privileges dropped: no capabilities, no_new_privs, seccomp filter on every thread"
        ),
        Err(e) => {
            eprintln!("corridor: cannot drop privileges: {e}");
            return ExitCode::FAILURE;
        }
    }
    let serving = gw.local_addr().map_or_else(|_| "serving".to_owned(), |a| format!("serving on {a} as {user}"));
    notifier.ready(&serving);
    match gw.reload_on(reload, path.to_path_buf()).notify_to(notifier).run(&stop) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `corridor gateway --check-config`: everything start-up checks before it
/// touches the network, and the password file's groups, which start-up
/// only warns about (their users' logins are refused); then the effective
/// configuration on stdout.
fn check_gateway_config(path: &std::path::Path) -> ExitCode {
    logs_to_stderr(|| check_gateway(path))
}

fn check_gateway(path: &std::path::Path) -> ExitCode {
    let (config, effective) = match control::Config::load_effective(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = control::tls::server_config(&config.cert, &config.key, config.client_ca.as_deref()) {
        eprintln!("corridor: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = control::sandbox::resolve(&config.user) {
        eprintln!("corridor: {e}");
        return ExitCode::from(2);
    }
    if let Some(p) = &config.password_file {
        let checked = control::passwd::PasswordFile::load(p)
            .map_err(|e| {
                control::ConfigError::new("auth.password_file", e.to_string(), "repair it with `corridor passwd`")
            })
            .and_then(|f| config.check_password_groups(&f));
        if let Err(e) = checked {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    }
    print_effective(path, &effective);
    ExitCode::SUCCESS
}

/// `corridor relay --check-config`: the configuration, the link's
/// certificate and key, as start-up loads them, and the user it drops to;
/// then the effective configuration on stdout.
fn check_relay_config(path: &std::path::Path) -> ExitCode {
    logs_to_stderr(|| check_relay(path))
}

fn check_relay(path: &std::path::Path) -> ExitCode {
    let (config, effective) = match relay::Config::load_effective(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = relay::driver::link_tls::server_config(&config) {
        eprintln!("corridor: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = service::sandbox::resolve("relay.user", &config.user) {
        eprintln!("corridor: {e}");
        return ExitCode::from(2);
    }
    print_effective(path, &effective);
    ExitCode::SUCCESS
}

/// Runs `check` with its warnings (an inline token, a shared `nobody`
/// user) on stderr, where the servers log to stdout: a check's stdout is
/// the effective configuration alone, for tools to read as TOML.
fn logs_to_stderr(check: impl FnOnce() -> ExitCode) -> ExitCode {
    let stderr = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .finish();
    tracing::subscriber::with_default(stderr, check)
}

/// The effective configuration, after a comment that says what it is, so
/// that stdout stays TOML.
fn print_effective(path: &std::path::Path, effective: &str) {
    println!(
        "# {} is good. As it takes effect: every field after its defaults,\n\
         # relative paths resolved, secrets shown only by where they come from.\n\n{effective}",
        path.display()
    );
}
