//! `corridor passwd`: the users of a password file. A new password is read
//! from the terminal twice without echo, or as one line from a pipe, so it
//! never shows on screen or in the process list. Every change is written
//! atomically, mode 600 ([`PasswordFile::store`]).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use control::passwd::{Entry, PasswordFile};

/// The actions other than setting a password, which take no --group or --iterations.
const OTHER_ACTIONS: [&str; 4] = ["delete", "lock", "unlock", "list"];

/// `corridor passwd`'s arguments: exactly one of USER, --delete, --lock,
/// --unlock and --list.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["user", "delete", "lock", "unlock", "list"])))]
pub(crate) struct Args {
    /// The password file (created if missing when a password is set).
    #[arg(long, short)]
    file: PathBuf,
    /// Set USER's password (adding USER if new): asked twice without echo
    /// on a terminal, read as one line from a pipe. A locked user stays locked.
    user: Option<String>,
    /// The group the user belongs to (a [[group]] name in the config); a
    /// user whose password changes keeps their group unless given.
    // Conflicts, not `requires = "user"`: clap waives a requirement that
    // conflicts with an argument given, and USER conflicts with every action.
    #[arg(long, short, conflicts_with_all = OTHER_ACTIONS)]
    group: Option<String>,
    /// PBKDF2 iterations.
    #[arg(long, default_value_t = control::passwd::DEFAULT_ITERATIONS, conflicts_with_all = OTHER_ACTIONS)]
    iterations: u32,
    /// Remove USER (exit status 1 when there is none).
    #[arg(long, value_name = "USER")]
    delete: Option<String>,
    /// Lock USER: no password opens the account until --unlock; the hash is kept.
    #[arg(long, value_name = "USER")]
    lock: Option<String>,
    /// Unlock USER, with the password they had.
    #[arg(long, value_name = "USER")]
    unlock: Option<String>,
    /// List the users: name, group, locked, iterations (never a hash).
    #[arg(long)]
    list: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let file = args.file.as_path();
    match (args.user, args.delete, args.lock, args.unlock) {
        (Some(user), ..) => set(file, &user, args.group.as_deref(), args.iterations),
        (_, Some(user), ..) => change(file, &user, "delete", |pf| pf.remove(&user)),
        (_, _, Some(user), _) => change(file, &user, "lock", |pf| pf.set_locked(&user, true)),
        (_, _, _, Some(user)) => change(file, &user, "unlock", |pf| pf.set_locked(&user, false)),
        _ => list(file),
    }
}

/// Sets `user`'s password, keeping their lock, and their group unless `group` names one.
fn set(file: &Path, user: &str, group: Option<&str>, iterations: u32) -> ExitCode {
    let password = match new_password(user) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("corridor passwd: {e}");
            return ExitCode::from(2);
        }
    };
    let mut pf = if file.exists() {
        match PasswordFile::load(file) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("corridor passwd: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    } else {
        PasswordFile::default()
    };
    let old = pf.get(user);
    let group = group.or_else(|| old.and_then(|e| e.group.as_deref()));
    let Some(mut entry) = Entry::new(user, &password, group, iterations) else {
        eprintln!("corridor passwd: user and group names must be printable without ':' and iterations > 0");
        return ExitCode::from(2);
    };
    entry.locked = old.is_some_and(|e| e.locked);
    if entry.locked {
        eprintln!("corridor passwd: {user} stays locked; `--unlock {user}` lets them log in");
    }
    pf.set(entry);
    store(file, &pf)
}

/// Applies `edit` (false: no such user) to an existing file.
fn change(file: &Path, user: &str, what: &str, edit: impl FnOnce(&mut PasswordFile) -> bool) -> ExitCode {
    let mut pf = match existing(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if !edit(&mut pf) {
        eprintln!("corridor passwd: cannot {what} {user}: no such user in {}", file.display());
        return ExitCode::FAILURE;
    }
    store(file, &pf)
}

fn list(file: &Path) -> ExitCode {
    let pf = match existing(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let users = pf.entries().map(|e| e.user.len()).chain([4]).max().unwrap_or(4);
    let groups = pf.entries().filter_map(|e| e.group.as_ref().map(String::len)).chain([5]).max().unwrap_or(5);
    println!("{:users$}  {:groups$}  locked  iterations", "user", "group");
    for e in pf.entries() {
        let locked = if e.locked { "yes" } else { "no" };
        // No group: the first [[group]] of the configuration.
        let group = e.group.as_deref().unwrap_or("-");
        println!("{:users$}  {group:groups$}  {locked:6}  {}", e.user, e.iterations());
    }
    ExitCode::SUCCESS
}

/// The file, which must exist: 1 when it does not, 2 when it does not
/// parse (a mistake in it, as for a password change).
fn existing(file: &Path) -> Result<PasswordFile, ExitCode> {
    if !file.exists() {
        eprintln!("corridor passwd: {} does not exist", file.display());
        return Err(ExitCode::FAILURE);
    }
    PasswordFile::load(file).map_err(|e| {
        eprintln!("corridor passwd: {}: {e}", file.display());
        ExitCode::from(2)
    })
}

fn store(file: &Path, pf: &PasswordFile) -> ExitCode {
    match pf.store(file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corridor passwd: writing {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// The new password: asked twice without echo when standard input is a
/// terminal, else its first line.
fn new_password(user: &str) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let quiet = EchoOff::start().map_err(|e| format!("cannot turn the terminal's echo off: {e}"))?;
        eprint!("New password for {user}: ");
        let first = read_line()?;
        eprint!("Again: ");
        let again = read_line()?;
        drop(quiet);
        if first != again {
            return Err("the two passwords differ; nothing changed".to_owned());
        }
        first
    } else {
        read_line()?
    };
    if password.is_empty() {
        return Err("give the password on standard input (a terminal asks for it twice)".to_owned());
    }
    Ok(password)
}

pub(crate) fn read_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the password: {e}"))?;
    let len = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(len);
    Ok(line)
}

/// The terminal on standard input with echo off (the newline still shows,
/// ECHONL) until dropped. A signal that ends the process meanwhile (^C,
/// ^\, a hang-up, a kill) restores echo first, so no shell is left typing
/// blind.
pub(crate) struct EchoOff {
    saved: nix::sys::termios::Termios,
    signals: signal_hook::iterator::Handle,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl EchoOff {
    pub(crate) fn start() -> std::io::Result<Self> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
        let saved = tcgetattr(std::io::stdin())?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        let mut caught = signal_hook::iterator::Signals::new([SIGINT, SIGQUIT, SIGHUP, SIGTERM])?;
        let signals = caught.handle();
        let restore = saved.clone();
        let watcher = std::thread::spawn(move || {
            if let Some(signal) = caught.forever().next() {
                let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &restore);
                eprintln!();
                std::process::exit(128 + signal);
            }
        });
        // TCSAFLUSH: what was typed before the prompt is not the password.
        let quieted = tcsetattr(std::io::stdin(), SetArg::TCSAFLUSH, &quiet);
        let echo_off = Self { saved, signals, watcher: Some(watcher) };
        quieted?;
        Ok(echo_off)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.saved);
        self.signals.close();
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}
