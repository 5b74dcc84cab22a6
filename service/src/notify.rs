//! The service manager's notify protocol (`sd_notify(3)`): `READY=1`,
//! `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1` and `STATUS=` as datagrams to
//! the socket named by `NOTIFY_SOCKET`.
//!
//! The socket is connected once, at start, while the server is still root:
//! the gateway then drops to its user and confines itself under seccomp,
//! and a message sent later must depend neither on the socket path's
//! permissions nor on `socket(2)` staying allowed. (The `sd-notify` crate
//! opens a fresh socket per message, which is why this is not it.)
//!
//! The watchdog is sans-IO like the rest: [`Notifier::watchdog`] takes
//! `now` from the caller's loop and pings at half `WATCHDOG_USEC`, so a
//! loop that stalls stops the pings and the manager restarts the service.
//! Without `NOTIFY_SOCKET` every call does nothing.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// A connection to the service manager's notify socket, or none.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<UnixDatagram>,
    /// Half the manager's `WATCHDOG_USEC`: how often to ping.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    /// A failed send is logged once, then kept quiet.
    warned: bool,
}

impl Notifier {
    /// One that sends nothing (no service manager).
    #[must_use]
    pub fn disabled() -> Self {
        Self::default()
    }

    /// From `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace)
    /// and `WATCHDOG_USEC` / `WATCHDOG_PID`; disabled when `NOTIFY_SOCKET`
    /// is unset. An error: the variable is set and its socket cannot be
    /// reached, which start-up reports and carries on without.
    pub fn from_env() -> io::Result<Self> {
        let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(Self::disabled()) };
        let socket = connect(&target)?;
        let ping_every = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Ok(Self { socket: Some(socket), ping_every, last_ping: None, warned: false })
    }

    /// Whether a service manager listens.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// The watchdog's ping interval, when the manager asked for pings.
    #[must_use]
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.ping_every
    }

    /// `READY=1`: start-up (or a reload) is done; `status` says what serves.
    pub fn ready(&mut self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)));
    }

    /// `RELOADING=1` with the `MONOTONIC_USEC` the manager pairs it with;
    /// [`Notifier::ready`] must follow, whatever the reload's outcome.
    pub fn reloading(&mut self) {
        let usec = monotonic_usec();
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration\n"));
    }

    /// `STOPPING=1`: shutting down on purpose.
    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }

    /// `STATUS=`: one line for `systemctl status`.
    pub fn status(&mut self, status: &str) {
        self.send(&format!("STATUS={}\n", one_line(status)));
    }

    /// Called every loop turn: `WATCHDOG=1` when half the manager's
    /// interval has passed since the last ping.
    pub fn watchdog(&mut self, now: Instant) {
        let Some(every) = self.ping_every else { return };
        if self.last_ping.is_some_and(|last| now.saturating_duration_since(last) < every) {
            return;
        }
        self.last_ping = Some(now);
        self.send("WATCHDOG=1\n");
    }

    fn send(&mut self, message: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(e) = socket.send(message.as_bytes()) {
            if !self.warned {
                self.warned = true;
                tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
            }
        }
    }
}

fn connect(target: &std::ffi::OsStr) -> io::Result<UnixDatagram> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    match target.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.connect_addr(&addr)?;
        }
        None => socket.connect(target)?,
    }
    Ok(socket)
}

/// Half of `WATCHDOG_USEC`, unless `WATCHDOG_PID` names another process
/// (the variables were inherited, not meant for us) or the value is not a
/// positive number.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(own_pid)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock the manager compares
/// `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(t.tv_nsec()).unwrap_or(0) / 1000;
        secs.saturating_mul(1_000_000).saturating_add(micros)
    })
}

/// A `STATUS=` value is one line: newlines would start new assignments.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Notifier, UnixDatagram) {
        let (ours, theirs) = UnixDatagram::pair().expect("pair");
        (Notifier { socket: Some(ours), ..Notifier::default() }, theirs)
    }

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf).expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn watchdog_interval_is_half_and_only_for_this_process() {
        assert_eq!(watchdog_interval(Some("2000000"), None, 7), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("7"), 7), Some(Duration::from_secs(1)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn watchdog_pings_at_most_once_per_interval() {
        let (mut n, peer) = pair();
        n.ping_every = Some(Duration::from_secs(1));
        peer.set_nonblocking(true).expect("nonblocking");
        let t0 = Instant::now();
        n.watchdog(t0);
        n.watchdog(t0 + Duration::from_millis(500));
        n.watchdog(t0 + Duration::from_millis(1000));
        assert_eq!(recv(&peer), "WATCHDOG=1\n");
        assert_eq!(recv(&peer), "WATCHDOG=1\n");
        assert!(peer.recv(&mut [0u8; 16]).is_err(), "a third ping within the interval");
    }

    #[test]
    fn messages_follow_the_protocol() {
        let (mut n, peer) = pair();
        n.ready("serving\non 443");
        assert_eq!(recv(&peer), "READY=1\nSTATUS=serving on 443\n");
        n.reloading();
        let reloading = recv(&peer);
        assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
        let usec = reloading.lines().nth(1).and_then(|l| l.strip_prefix("MONOTONIC_USEC=")).expect("usec");
        assert!(usec.parse::<u64>().expect("a number") > 0);
        n.stopping();
        assert_eq!(recv(&peer), "STOPPING=1\nSTATUS=stopping\n");
    }

    #[test]
    fn without_a_manager_nothing_is_sent_and_nothing_fails() {
        let mut n = Notifier::disabled();
        assert!(!n.enabled());
        n.ready("x");
        n.watchdog(Instant::now());
        n.stopping();
    }
}
