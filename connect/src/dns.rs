//! `--dns`: the DNS servers and domain the gateway pushes, for the time
//! the tunnel is up. Where systemd-resolved manages resolv.conf (a link to
//! its stub), they are the TUN link's own (`resolvectl dns`/`domain`; resolved drops them with the
//! link). Otherwise `/etc/resolv.conf` is rewritten, the gateway's servers
//! first and the old ones after, and put back on exit; a copy of the old
//! file waits in `/run/corridor/connect/` so that a client killed before
//! it could restore is undone by the next one on that interface.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What was changed, to undo.
#[derive(Debug)]
pub(crate) enum Dns {
    Resolved { interface: String },
    ResolvConf { saved: PathBuf },
}

/// Whether systemd-resolved manages name resolution here: resolv.conf is
/// its stub (a link into /run/systemd/resolve), as vpnc-script decides.
fn resolved_running() -> bool {
    fs::read_link(RESOLV_CONF).is_ok_and(|target| target.starts_with("/run/systemd/resolve"))
        && Command::new("resolvectl").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Puts back what a client of `interface` killed before its clean-up left.
pub(crate) fn restore_leftover(interface: &str) {
    if let Ok(saved) = crate::apps::state_path(interface, ".resolv.conf") {
        if saved.exists() {
            tracing::warn!(interface, "an earlier client left /etc/resolv.conf changed: restoring it");
            restore_resolv_conf(&saved);
        }
    }
}

/// Applies `servers` and `domain` for `interface`; `None` when there is
/// nothing to apply.
pub(crate) fn apply(interface: &str, servers: &[Ipv4Addr], domain: Option<&str>) -> Result<Option<Dns>, String> {
    if servers.is_empty() {
        return Ok(None);
    }
    if resolved_running() {
        let mut dns = Command::new("resolvectl");
        dns.arg("dns").arg(interface).args(servers.iter().map(Ipv4Addr::to_string));
        run(&mut dns)?;
        if let Some(d) = domain {
            run(Command::new("resolvectl").args(["domain", interface, d]))?;
        }
        return Ok(Some(Dns::Resolved { interface: interface.to_owned() }));
    }
    let saved = crate::apps::state_path(interface, ".resolv.conf")?;
    let old = fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    fs::create_dir_all(crate::apps::STATE_DIR).map_err(|e| format!("{}: {e}", crate::apps::STATE_DIR))?;
    fs::write(&saved, &old).map_err(|e| format!("{}: {e}", saved.display()))?;
    let mut text = format!("# written by corridor connect for {interface}; put back when it ends\n");
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if let Some(d) = domain {
        text.push_str(&format!("search {d}\n"));
    }
    for line in old.lines().filter(|l| l.trim_start().starts_with("nameserver")) {
        text.push_str(line);
        text.push('\n');
    }
    // In place, not renamed: /etc/resolv.conf may be a bind mount (ip netns
    // exec) or a link someone else owns.
    fs::write(RESOLV_CONF, text).map_err(|e| format!("{RESOLV_CONF}: {e}"))?;
    Ok(Some(Dns::ResolvConf { saved }))
}

impl Dns {
    pub(crate) fn undo(&self) {
        match self {
            Dns::Resolved { interface } => {
                let _ = Command::new("resolvectl").args(["revert", interface]).output();
            }
            Dns::ResolvConf { saved } => restore_resolv_conf(saved),
        }
    }
}

fn restore_resolv_conf(saved: &Path) {
    match fs::read_to_string(saved) {
        Ok(old) => match fs::write(RESOLV_CONF, old) {
            Ok(()) => {
                let _ = fs::remove_file(saved);
            }
            Err(e) => tracing::warn!(error = %e, "could not put /etc/resolv.conf back"),
        },
        Err(e) => tracing::warn!(error = %e, saved = %saved.display(), "the saved /etc/resolv.conf is unreadable"),
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}
