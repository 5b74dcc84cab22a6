//! `corridor`: the command line. Wiring only; the work is in the crates.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Parser, Subcommand};

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
    },
    /// Add a user to a password file, or change their password.
    Passwd {
        /// The password file (created if missing).
        #[arg(long, short)]
        file: PathBuf,
        /// The user name.
        user: String,
        /// The group the user belongs to (a [[group]] name in the config).
        #[arg(long, short)]
        group: Option<String>,
        /// PBKDF2 iterations.
        #[arg(long, default_value_t = control::passwd::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Load generation against a running gateway.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Run a scenario: handshake-storm or udp-echo.
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
        #[arg(long)]
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Simulated devices.
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Devices handshaking at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// udp-echo: probes per second, all devices together.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// udp-echo: seconds of probing.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// udp-echo: the reflector behind the gateway.
        #[arg(long, default_value = "10.99.0.2:9000")]
        reflector: std::net::SocketAddrV4,
        /// Where to write the JSON result.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Echo UDP datagrams back to their sender (the udp-echo reflector).
    Reflect {
        #[arg(long, default_value = "10.99.0.2:9000")]
        listen: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    match cli.command {
        Command::Gateway { config } => gateway(&config),
        Command::Passwd { file, user, group, iterations } => passwd(&file, &user, group.as_deref(), iterations),
        Command::Bench { command } => bench_command(command),
    }
}

fn bench_command(command: BenchCommand) -> ExitCode {
    match command {
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
            password_stdin: _,
            devices,
            concurrency,
            rate,
            seconds,
            reflector,
            json,
        } => {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim_end_matches(['\r', '\n']).is_empty() {
                eprintln!("corridor bench run: give the password on standard input");
                return ExitCode::from(2);
            }
            let password = line.trim_end_matches(['\r', '\n']).to_string();
            let target = bench::load::Target { gateway, cafile, user, password };
            let params = bench::load::Params { devices, concurrency, rate, seconds, reflector };
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
    }
}

fn gateway(path: &std::path::Path) -> ExitCode {
    let config = match control::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("corridor: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("corridor: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let gw = match control::Gateway::start(config) {
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
    match gw.run(&stop) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the password from stdin (one line), so scripts can pipe it in and
/// it never appears in the process list.
fn passwd(file: &std::path::Path, user: &str, group: Option<&str>, iterations: u32) -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim_end_matches(['\r', '\n']).is_empty() {
        eprintln!("corridor passwd: give the password on standard input");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    let mut pf = if file.exists() {
        match control::passwd::PasswordFile::load(file) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("corridor passwd: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    } else {
        control::passwd::PasswordFile::default()
    };
    let Some(entry) = control::passwd::Entry::new(user, password, group, iterations) else {
        eprintln!("corridor passwd: user and group names must be printable without ':' and iterations > 0");
        return ExitCode::from(2);
    };
    pf.set(entry);
    if let Err(e) = pf.store(file) {
        eprintln!("corridor passwd: writing {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
