//! Per-app selection: only listed executables' traffic enters the tunnel,
//! and theirs never leaves outside it.
//!
//! How: a cgroup v2 directory of this client's (`corridor-IFNAME-PID`);
//! `corridor app -- CMD` starts a listed app in it (its children stay
//! there). An nftables table of this interface marks what sockets of that
//! cgroup send, and an `ip rule` sends marked packets to a routing table of
//! their own holding the tunnel's routes. The split-include routes are in
//! the main table too, so that a socket's first route lookup (made before
//! any mark) finds one, but whatever else takes them into the tunnel is
//! dropped there, unmarked: nothing unlisted enters the tunnel. A filter in
//! the same nftables table drops whatever the cgroup sends out of any
//! interface but the tunnel's (and loopback): fail closed while the tunnel
//! is down or reconnecting, and after a crash too, since the table and the
//! rule outlive the process (a clean exit removes them). With no
//! split-include routes (everything, for the listed apps) only their table
//! has a default route into the tunnel; their first lookup then needs the
//! host's own default route. Replies arriving on the TUN are marked as
//! well, with `src_valid_mark`, so reverse-path filtering finds the route
//! back in the same table.
//!
//! `nft` is Debian's nftables command, fed the ruleset on its standard
//! input: the kernel's nftables netlink API has no kept Rust crate that
//! speaks it directly, and `nft` resolves the cgroup path itself.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::netlink::Netlink;

/// Where nftables resolves `socket cgroupv2` paths from.
const CGROUP_BASE: &str = "/sys/fs/cgroup";
/// The per-namespace files `corridor app` reads.
pub(crate) const STATE_DIR: &str = "/run/corridor/connect";
/// The `ip rule` priority: before the main table's (32766).
const RULE_PRIORITY: u32 = 10_000;

/// The cgroup v2 hierarchy's mount point, mounting it when nothing is
/// mounted (under `ip netns exec`, whose fresh sysfs has an empty
/// `/sys/fs/cgroup`; on a host with the legacy hierarchy, systemd's
/// `/sys/fs/cgroup/unified`). It must lie under `/sys/fs/cgroup`, where
/// `nft` looks.
pub fn cgroup2_root() -> Result<PathBuf, String> {
    if let Some(m) = cgroup2_mount() {
        return Ok(m);
    }
    let base = Path::new(CGROUP_BASE);
    let target = if base.join("unified").is_dir() {
        base.join("unified")
    } else if fs::read_dir(base).map(|mut d| d.next().is_none()).unwrap_or(false) {
        base.to_path_buf()
    } else {
        return Err(format!(
            "per-app selection needs the cgroup v2 hierarchy, and none is mounted; mount it (mount -t cgroup2 none {CGROUP_BASE}/unified)"
        ));
    };
    nix::mount::mount(Some("cgroup2"), &target, Some("cgroup2"), nix::mount::MsFlags::empty(), None::<&str>)
        .map_err(|e| format!("mounting cgroup2 on {}: {e}", target.display()))?;
    Ok(target)
}

/// The first cgroup2 mount under `/sys/fs/cgroup` (`/proc/self/mountinfo`).
fn cgroup2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2" && point.starts_with(CGROUP_BASE)).then(|| PathBuf::from(point))
    })
}

/// A file of the client of `interface` in this network namespace (a
/// namespace's `ip netns exec` sees its own TUN only), named
/// `NS-INTERFACE` and `suffix`: the per-app state (no suffix) that
/// `corridor app` reads, `.status`, `.resolv.conf`.
pub(crate) fn state_path(interface: &str, suffix: &str) -> Result<PathBuf, String> {
    let ns = fs::metadata("/proc/self/ns/net").map_err(|e| format!("/proc/self/ns/net: {e}"))?.ino();
    Ok(Path::new(STATE_DIR).join(format!("{ns}-{interface}{suffix}")))
}

/// The apps a tunnel carries and the cgroup they run in, as the client
/// wrote them for `corridor app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppState {
    /// The cgroup's path below the cgroup2 root.
    pub cgroup: String,
    pub apps: Vec<String>,
}

impl AppState {
    /// What the client of `interface` in this network namespace wrote.
    pub fn read(interface: &str) -> Result<Self, String> {
        let path = state_path(interface, "")?;
        let text = fs::read_to_string(&path).map_err(|_| {
            format!("no corridor connect with per-app selection on {interface} in this network namespace")
        })?;
        let mut cgroup = None;
        let mut apps = Vec::new();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("cgroup", c)) => cgroup = Some(c.to_owned()),
                Some(("app", a)) => apps.push(a.to_owned()),
                _ => {}
            }
        }
        let cgroup = cgroup.ok_or_else(|| format!("{}: no cgroup line", path.display()))?;
        Ok(Self { cgroup, apps })
    }

    /// Whether `exe` (an absolute path) is one of the apps: the same path,
    /// or the same file once links are resolved (`/usr/bin/python3` for a
    /// listed `/usr/bin/python3.11`).
    pub fn allows(&self, exe: &Path) -> bool {
        let real = fs::canonicalize(exe).ok();
        self.apps
            .iter()
            .any(|a| Path::new(a) == exe || real.as_ref().is_some_and(|r| fs::canonicalize(a).is_ok_and(|c| &c == r)))
    }

    /// Moves this process into the tunnel's cgroup (before it execs an app).
    pub fn enter(&self) -> Result<(), String> {
        let procs = cgroup2_root()?.join(&self.cgroup).join("cgroup.procs");
        fs::write(&procs, std::process::id().to_string()).map_err(|e| format!("{}: {e}", procs.display()))
    }
}

/// The per-app machinery of one tunnel, removed by [`stop`](Self::stop).
#[derive(Debug)]
pub struct AppTunnel {
    interface: String,
    cgroup_dir: PathBuf,
    /// The cgroup as `nft` names it (below /sys/fs/cgroup).
    nft_path: String,
    nft_table: String,
    /// The routing table of the tunnel's routes, and the mark that leads
    /// to it.
    pub table: u32,
    state: PathBuf,
}

impl AppTunnel {
    /// Sets up the cgroup, the nftables table and the rule for `apps`
    /// through `interface`; the caller puts the tunnel's routes into
    /// [`table`](Self::table).
    pub fn start(interface: &str, apps: &[String]) -> Result<Self, String> {
        let root = cgroup2_root()?;
        let name = format!("corridor-{interface}-{}", std::process::id());
        let cgroup_dir = root.join(&name);
        fs::create_dir(&cgroup_dir).map_err(|e| format!("creating the cgroup {}: {e}", cgroup_dir.display()))?;
        // From the interface's name, not its index: a client restarted
        // after a crash finds (and replaces) what the crashed one left.
        let table = 0x6363_0000 | (name_hash(interface) & 0xffff);
        let nft_table = format!("corridor_{}", interface.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        let nft_path = match cgroup_dir.strip_prefix(CGROUP_BASE) {
            Ok(p) => p.display().to_string(),
            Err(_) => {
                let _ = fs::remove_dir(&cgroup_dir);
                return Err(format!("{} is not under {CGROUP_BASE}, where nft looks", root.display()));
            }
        };
        let mut t =
            Self { interface: interface.to_owned(), cgroup_dir, nft_path, nft_table, table, state: PathBuf::new() };
        if let Err(e) = t.install(&name, apps) {
            t.stop();
            return Err(e);
        }
        Ok(t)
    }

    fn install(&mut self, name: &str, apps: &[String]) -> Result<(), String> {
        self.install_rules()?;
        self.state = state_path(&self.interface, "")?;
        let mut text = format!("cgroup {name}\n");
        for a in apps {
            text.push_str(&format!("app {a}\n"));
        }
        fs::create_dir_all(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
        fs::write(&self.state, text).map_err(|e| format!("{}: {e}", self.state.display()))?;
        Ok(())
    }

    /// The nftables table, `src_valid_mark` on the TUN and the rule.
    fn install_rules(&self) -> Result<(), String> {
        let (iface, table, mark, nft_path) = (&self.interface, &self.nft_table, self.table, &self.nft_path);
        let ruleset = format!(
            "table inet {table} {{
    chain steer {{
        type route hook output priority mangle; policy accept;
        socket cgroupv2 level 1 \"{nft_path}\" meta mark set {mark:#x}
    }}
    chain replies {{
        type filter hook prerouting priority mangle; policy accept;
        iifname \"{iface}\" meta mark set {mark:#x}
    }}
    chain guard {{
        type filter hook output priority filter; policy accept;
        socket cgroupv2 level 1 \"{nft_path}\" oifname \"lo\" accept
        socket cgroupv2 level 1 \"{nft_path}\" oifname != \"{iface}\" counter drop
        oifname \"{iface}\" meta mark != {mark:#x} counter drop
    }}
}}
"
        );
        // A client of this interface that crashed left its table and rule
        // (fail closed): this one replaces them.
        let _ = nft(&format!("delete table inet {table}\n"));
        let _ = Netlink::open().and_then(|mut nl| nl.delete_rule(mark, mark, RULE_PRIORITY));
        nft(&ruleset)?;
        fs::write(format!("/proc/sys/net/ipv4/conf/{iface}/src_valid_mark"), "1")
            .map_err(|e| format!("src_valid_mark on {iface}: {e}"))?;
        Netlink::open()
            .and_then(|mut nl| nl.add_rule(mark, mark, RULE_PRIORITY))
            .map_err(|e| format!("ip rule fwmark {mark:#x} lookup {mark:#x}: {e}"))?;
        Ok(())
    }

    /// While the tunnel is paused (the device is inside): the rule and the
    /// nftables table go, so the listed apps reach the inside directly;
    /// the cgroup and its apps stay, for [`restore`](Self::restore).
    pub fn suspend(&self) {
        self.remove_rules();
    }

    /// The tunnel is back (a new TUN of the same name): the rules again,
    /// for the apps still in the cgroup.
    pub fn restore(&self) -> Result<(), String> {
        self.install_rules()
    }

    fn remove_rules(&self) {
        if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_rule(self.table, self.table, RULE_PRIORITY)) {
            tracing::warn!(error = %e, mark = self.table, "could not remove the apps' ip rule");
        }
        if let Err(e) = nft(&format!("delete table inet {}\n", self.nft_table)) {
            tracing::warn!(error = %e, "could not remove the apps' nftables table");
        }
    }

    /// Removes the rule, the nftables table, the state file and the cgroup
    /// (its processes go back to the root cgroup first). Listed apps still
    /// running reach the network as any other process then.
    pub fn stop(&self) {
        self.remove_rules();
        if !self.state.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.state);
        }
        if let (Ok(procs), Some(root)) =
            (fs::read_to_string(self.cgroup_dir.join("cgroup.procs")), self.cgroup_dir.parent())
        {
            for pid in procs.lines() {
                let _ = fs::write(root.join("cgroup.procs"), pid);
            }
        }
        if let Err(e) = fs::remove_dir(&self.cgroup_dir) {
            tracing::warn!(cgroup = %self.cgroup_dir.display(), error = %e, "could not remove the apps' cgroup");
        }
    }
}

/// FNV-1a of an interface name: the mark and table of its tunnel.
fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Runs `nft -f -` with `ruleset` on its standard input.
fn nft(ruleset: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft (Debian package nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes()).map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft refused the rules: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The apps this tunnel carries: the gateway's list narrowed by the user's
/// (`--app`); `None`: all of them.
pub fn effective(gateway: Option<&[String]>, user: &[String]) -> Result<Option<Vec<String>>, String> {
    match (gateway, user.is_empty()) {
        (None, true) => Ok(None),
        (None, false) => Ok(Some(user.to_vec())),
        (Some(g), true) => Ok(Some(g.to_vec())),
        (Some(g), false) => {
            let state = AppState { cgroup: String::new(), apps: g.to_vec() };
            let kept: Vec<String> = user.iter().filter(|u| state.allows(Path::new(u))).cloned().collect();
            if kept.is_empty() {
                return Err(format!(
                    "none of --app {} is among the gateway's apps ({})",
                    user.join(", "),
                    g.join(", ")
                ));
            }
            Ok(Some(kept))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_list_narrows_the_gateways() {
        let g = vec!["/usr/bin/ssh".to_owned(), "/usr/bin/env".to_owned()];
        assert_eq!(effective(None, &[]), Ok(None));
        assert_eq!(effective(Some(&g), &[]), Ok(Some(g.clone())));
        assert_eq!(effective(None, &["/usr/bin/ssh".into()]), Ok(Some(vec!["/usr/bin/ssh".into()])));
        assert_eq!(effective(Some(&g), &["/usr/bin/env".into()]), Ok(Some(vec!["/usr/bin/env".into()])));
        assert!(effective(Some(&g), &["/usr/bin/curl".into()]).is_err_and(|e| e.contains("among the gateway's")));
    }

    #[test]
    fn a_linked_name_of_a_listed_file_is_allowed() {
        let state = AppState { cgroup: String::new(), apps: vec!["/bin/sh".into()] };
        assert!(state.allows(Path::new("/bin/sh")));
        let real = fs::canonicalize("/bin/sh").expect("a shell");
        assert!(state.allows(&real), "{}", real.display());
        assert!(!state.allows(Path::new("/usr/bin/env")));
    }
}
