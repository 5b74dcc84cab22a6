//! `corridor connect URL`: the device side, as a Linux client (the
//! `connect` crate). Flags are named as openconnect names them, so a script
//! written for openconnect's password or certificate login runs with it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::passwd::{read_line, EchoOff};

mod background;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The gateway: `https://HOST[:PORT]`, or HOST[:PORT].
    #[arg(required_unless_present = "status")]
    url: Option<String>,
    /// Show the state of the client running on --interface (in this
    /// network namespace): state, gateway, address, DTLS or CSTP, bytes,
    /// why the tunnel last went down. Exit status 1 when none runs.
    #[arg(long, conflicts_with_all = ["user", "authenticate", "cookie_on_stdin"])]
    status: bool,
    /// With --status: one JSON object.
    #[arg(long, requires = "status")]
    json: bool,
    /// Return once the tunnel is up, the client running on in the
    /// background (its log goes to this standard error).
    #[arg(long, short = 'b', conflicts_with_all = ["status", "authenticate"])]
    background: bool,
    /// With --background: write the client's pid here.
    #[arg(long, value_name = "FILE", requires = "background")]
    pid_file: Option<PathBuf>,
    /// The user name for the login form.
    #[arg(long, short)]
    user: Option<String>,
    /// Read the password from standard input's first line (else a terminal
    /// asks for it without echo).
    #[arg(long)]
    passwd_on_stdin: bool,
    /// CA certificates (PEM) the gateway's certificate must chain to;
    /// default: the system's bundle (unless --servercert is given).
    #[arg(long, value_name = "FILE")]
    cafile: Option<PathBuf>,
    /// Accept the gateway whose key has this pin (`pin-sha256:BASE64`, the
    /// SHA-256 of its SubjectPublicKeyInfo); repeatable. Without --cafile
    /// the pin alone decides.
    #[arg(long, value_name = "PIN")]
    servercert: Vec<String>,
    /// A client certificate (PEM chain) for certificate login.
    #[arg(long, short, value_name = "FILE", requires = "sslkey")]
    certificate: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, short = 'k', value_name = "FILE", requires = "certificate")]
    sslkey: Option<PathBuf>,
    /// The TUN interface to create.
    #[arg(long, short, default_value = "corridor0", value_name = "IFNAME")]
    interface: String,
    /// CSTP (TLS) only: do not offer DTLS.
    #[arg(long)]
    no_dtls: bool,
    /// How long to keep reconnecting with the cookie after the connection
    /// is lost, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    reconnect_timeout: u64,
    /// Log in, print COOKIE, HOST, CONNECT_URL, FINGERPRINT and RESOLVE as
    /// shell assignments and exit: no tunnel, no root needed (the first of
    /// NetworkManager's two steps).
    #[arg(long, conflicts_with = "cookie_on_stdin")]
    authenticate: bool,
    /// Read the cookie of an earlier --authenticate from standard input and
    /// connect with it, no login (pass its FINGERPRINT as --servercert).
    #[arg(long, conflicts_with_all = ["user", "passwd_on_stdin"])]
    cookie_on_stdin: bool,
    /// Only this executable's traffic uses the tunnel (repeatable): narrows
    /// the gateway's list, or makes one when the gateway allows all apps.
    /// Start a listed app with `corridor app -- CMD`.
    #[arg(long, value_name = "PATH")]
    app: Vec<String>,
    /// Trusted-network detection of your own (over the gateway's): an
    /// https:// URL reachable only inside the organisation; reached
    /// directly with --trusted-pin's key, the tunnel pauses until you leave.
    #[arg(long, value_name = "URL", requires = "trusted_pin", conflicts_with = "no_trusted_network")]
    trusted_url: Option<String>,
    /// The pin-sha256: of the trusted URL's server key.
    #[arg(long, value_name = "PIN", requires = "trusted_url")]
    trusted_pin: Option<String>,
    /// Never pause the tunnel for a trusted network, whatever the gateway says.
    #[arg(long)]
    no_trusted_network: bool,
    /// Use the DNS servers and domain the gateway pushes while the tunnel
    /// is up: the TUN link's own with systemd-resolved, else written to
    /// /etc/resolv.conf (before the old servers) and put back on exit.
    #[arg(long)]
    dns: bool,
    /// A vpnc-script (run by /bin/sh -c, as openconnect runs it) sets the
    /// tunnel's address, MTU, routes and DNS instead of corridor connect:
    /// reason=pre-init, connect, reconnect, disconnect, with vpnc's
    /// variables (TUNDEV, INTERNAL_IP4_*, CISCO_SPLIT_*…). Not with per-app
    /// selection.
    #[arg(long, short, value_name = "SCRIPT", conflicts_with_all = ["dns", "app"])]
    script: Option<String>,
}

/// `corridor app [--interface IFNAME] -- CMD [ARGS...]`.
#[derive(clap::Args, Debug)]
pub(crate) struct AppArgs {
    /// The tunnel's interface (as given to corridor connect).
    #[arg(long, short, default_value = "corridor0", value_name = "IFNAME")]
    interface: String,
    /// Run the app as this user (its groups, HOME, USER, LOGNAME), after
    /// joining the tunnel's cgroup: joining takes root, the app need not.
    #[arg(long = "as", value_name = "USER")]
    as_user: Option<String>,
    /// The app and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Starts a listed app inside the tunnel's cgroup: it (and what it starts)
/// reaches the tunnel's routes and nothing outside the tunnel. Exit status
/// 2 when CMD is not one of the apps or no tunnel selects apps; else CMD's.
pub(crate) fn app(args: AppArgs) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let refuse = |why: String| {
        eprintln!("corridor app: {why}");
        ExitCode::from(2)
    };
    let state = match connect::apps::AppState::read(&args.interface) {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    let Some((cmd, rest)) = args.command.split_first() else { return refuse("no command".to_owned()) };
    let Some(exe) = which(cmd) else { return refuse(format!("{cmd}: no such executable on PATH")) };
    if !state.allows(&exe) {
        return refuse(format!(
            "{cmd} ({}) is not one of the apps this tunnel carries: {}",
            exe.display(),
            state.apps.join(", ")
        ));
    }
    if let Err(e) = state.enter() {
        return refuse(e);
    }
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(rest);
    if let Some(name) = &args.as_user {
        match become_user(name) {
            Ok(home) => {
                cmd.env("HOME", home).env("USER", name).env("LOGNAME", name);
            }
            Err(e) => return refuse(e),
        }
    }
    let e = cmd.exec();
    eprintln!("corridor app: {}: {e}", exe.display());
    ExitCode::from(126)
}

/// Switches to `name`'s uid, gid and supplementary groups (as runuser does);
/// returns their home directory.
fn become_user(name: &str) -> Result<PathBuf, String> {
    use nix::unistd::{initgroups, setresgid, setresuid, User};
    let u = User::from_name(name)
        .map_err(|e| format!("--as {name}: {e}"))?
        .ok_or_else(|| format!("--as {name}: no such user"))?;
    let cname = std::ffi::CString::new(name).map_err(|_| format!("--as {name}: not a user name"))?;
    initgroups(&cname, u.gid).map_err(|e| format!("--as {name}: initgroups: {e}"))?;
    setresgid(u.gid, u.gid, u.gid).map_err(|e| format!("--as {name}: setresgid: {e}"))?;
    setresuid(u.uid, u.uid, u.uid).map_err(|e| format!("--as {name}: setresuid: {e}"))?;
    Ok(u.dir)
}

/// `cmd` as the shell finds it: a path as given, else the first match on PATH.
fn which(cmd: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if cmd.contains('/') {
        let p = std::path::absolute(cmd).ok()?;
        return runnable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).map(|d| d.join(cmd)).find(|p| runnable(p)))
}

pub(crate) fn run(args: Args) -> ExitCode {
    if args.status {
        return status(&args.interface, args.json);
    }
    let host = args.url.clone().unwrap_or_default();
    let (background, pid_file) = (args.background, args.pid_file.clone());
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("corridor connect: {e}");
            return ExitCode::from(2);
        }
    };
    if background {
        return background::start(&options, pid_file.as_deref());
    }
    match connect::run(options) {
        Ok(connect::Ended::ByUser) => {
            tracing::info!("logged out");
            ExitCode::SUCCESS
        }
        Ok(connect::Ended::Authenticated { cookie, fingerprint, gateway }) => {
            print!("{}", authenticated(&cookie, &fingerprint, &host, gateway));
            ExitCode::SUCCESS
        }
        Ok(connect::Ended::ByGateway(why)) => {
            tracing::error!(reason = %why, "session ended");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "corridor connect failed");
            ExitCode::FAILURE
        }
    }
}

/// `--status`: the running client's state, as a table or JSON.
fn status(interface: &str, json: bool) -> ExitCode {
    match connect::status::Status::read(interface) {
        Ok(s) if json => {
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            for (k, v) in [
                ("state", s.state.clone()),
                ("gateway", s.gateway.clone()),
                ("interface", s.interface.clone()),
                ("address", or_dash(s.address.map(|a| a.to_string()))),
                ("channel", or_dash(s.channel.clone())),
                ("cipher", or_dash(s.cipher.clone())),
                ("in", format!("{} bytes, {} packets", s.bytes_in, s.packets_in)),
                ("out", format!("{} bytes, {} packets", s.bytes_out, s.packets_out)),
                ("last teardown", or_dash(s.last_teardown.clone())),
            ] {
                println!("{k:<14}{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e }));
            } else {
                eprintln!("corridor connect: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// What `--authenticate` prints, as openconnect prints it: shell
/// assignments a script can `eval`.
fn authenticated(cookie: &str, fingerprint: &str, url: &str, gateway: std::net::SocketAddr) -> String {
    let (host, port) = host_port(url).unwrap_or_else(|_| (gateway.ip().to_string(), gateway.port()));
    let connect_url = if port == 443 { format!("https://{host}/") } else { format!("https://{host}:{port}/") };
    let mut out = String::new();
    for (name, value) in [
        ("COOKIE", cookie.to_owned()),
        ("HOST", gateway.ip().to_string()),
        ("CONNECT_URL", connect_url),
        ("FINGERPRINT", fingerprint.to_owned()),
        ("RESOLVE", format!("{host}:{}", gateway.ip())),
    ] {
        out.push_str(&format!("{name}='{}'\n", value.replace('\'', "'\\''")));
    }
    out
}

/// HOST and PORT of `https://HOST[:PORT][/]`, or of HOST[:PORT].
fn host_port(url: &str) -> Result<(String, u16), String> {
    let rest = match url.split_once("://") {
        Some(("https", rest)) => rest,
        Some((scheme, _)) => return Err(format!("{url}: only https:// gateways (not {scheme}://)")),
        None => url,
    };
    let authority = match rest.split_once('/') {
        None => rest,
        Some((a, "")) => a,
        Some((_, path)) => {
            return Err(format!("{url}: a path (/{path}) selects a group on some gateways; not supported yet"))
        }
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{url}: the port is not a number 1-65535"))?),
        None => (authority, 443),
    };
    if host.is_empty() || port == 0 {
        return Err(format!("{url}: no host"));
    }
    Ok((host.to_owned(), port))
}

fn options(args: Args) -> Result<connect::Options, String> {
    let (host, port) = host_port(args.url.as_deref().unwrap_or_default())?;
    let mut pins = Vec::new();
    for p in &args.servercert {
        pins.push(service::pin::parse_pin(p).ok_or_else(|| {
            format!("--servercert {p}: expected pin-sha256: and the base64 of 32 bytes (openconnect prints it)")
        })?);
    }
    if args.user.is_none() && args.certificate.is_none() && !args.cookie_on_stdin {
        return Err("give --user (password login), --certificate and --sslkey, or --cookie-on-stdin".to_owned());
    }
    let cookie = if args.cookie_on_stdin {
        let c = read_line()?;
        if c.is_empty() {
            return Err("--cookie-on-stdin: standard input held no cookie".to_owned());
        }
        Some(Zeroizing::new(c))
    } else {
        None
    };
    let password = match &args.user {
        None => None,
        Some(user) => Some(password(user, args.passwd_on_stdin)?),
    };
    Ok(connect::Options {
        host,
        port,
        user: args.user,
        password,
        trust: connect::Trust { cafile: args.cafile, pins, certificate: args.certificate.zip(args.sslkey) },
        interface: args.interface,
        dtls: !args.no_dtls,
        reconnect_timeout: Duration::from_secs(args.reconnect_timeout),
        cookie,
        authenticate_only: args.authenticate,
        apps: args.app,
        trusted: args.trusted_url.zip(args.trusted_pin).map(|(url, pin)| connect::TrustedNetwork { url, pin }),
        no_trusted_network: args.no_trusted_network,
        notify_up: std::env::var_os(background::NOTIFY_ENV).is_some(),
        dns: args.dns,
        script: args.script,
    })
}

/// The password: standard input's first line with --passwd-on-stdin or
/// when it is not a terminal; else asked on the terminal without echo.
fn password(user: &str, on_stdin: bool) -> Result<Zeroizing<String>, String> {
    if on_stdin || !std::io::stdin().is_terminal() {
        return read_line().map(Zeroizing::new);
    }
    let quiet = EchoOff::start().map_err(|e| format!("cannot turn the terminal's echo off: {e}"))?;
    eprint!("Password for {user}: ");
    let password = read_line();
    drop(quiet);
    password.map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn authenticate_prints_shell_assignments() {
        let gw = std::net::SocketAddr::from(([10, 10, 0, 1], 443));
        let out = super::authenticated("a'b", "pin-sha256:X=", "https://vpn.test", gw);
        assert_eq!(
            out,
            "COOKIE='a'\\''b'\nHOST='10.10.0.1'\nCONNECT_URL='https://vpn.test/'\nFINGERPRINT='pin-sha256:X='\nRESOLVE='vpn.test:10.10.0.1'\n"
        );
    }

    #[test]
    fn gateway_urls() {
        assert_eq!(host_port("https://vpn.example.com"), Ok(("vpn.example.com".into(), 443)));
        assert_eq!(host_port("https://vpn.example.com/"), Ok(("vpn.example.com".into(), 443)));
        assert_eq!(host_port("10.10.0.1:8443"), Ok(("10.10.0.1".into(), 8443)));
        assert!(host_port("http://vpn.example.com").is_err_and(|e| e.contains("only https")));
        assert!(host_port("https://vpn.example.com/sales").is_err_and(|e| e.contains("not supported yet")));
        assert!(host_port("https://vpn.example.com:x").is_err_and(|e| e.contains("port")));
        assert!(host_port("https://:443").is_err());
    }
}
