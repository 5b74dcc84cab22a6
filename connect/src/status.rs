//! What `corridor connect --status` shows: the client writes its state to a
//! file of its network namespace and interface (beside the per-app state,
//! mode 0644, replaced atomically) when it changes and every
//! [`REFRESH`]; a reader checks that the writer still runs.

use std::fs;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often the counters are written while nothing else changes.
pub const REFRESH: Duration = Duration::from_secs(2);

/// The client's state for the user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub interface: String,
    pub gateway: String,
    /// `connecting`, `tunnel`, `reconnecting`, `paused`.
    pub state: String,
    pub address: Option<Ipv4Addr>,
    /// `dtls` or `cstp` while the tunnel is up.
    pub channel: Option<String>,
    pub cipher: Option<String>,
    /// When the tunnel last came up, seconds since the Unix epoch.
    pub since: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Why the tunnel last went down, if it did.
    pub last_teardown: Option<String>,
    /// When this was written, seconds since the Unix epoch.
    pub updated: u64,
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Status {
    /// Writes it for `--status` (a new file renamed over the old one).
    pub(crate) fn write(&mut self) {
        self.updated = now_unix();
        let Ok(path) = crate::apps::state_path(&self.interface, ".status") else { return };
        let Ok(text) = serde_json::to_string(self) else { return };
        let tmp = path.with_extension("status.new");
        let written = fs::create_dir_all(crate::apps::STATE_DIR)
            .and_then(|()| fs::write(&tmp, text))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::debug!(error = %e, "status file not written");
        }
    }

    pub(crate) fn remove(&self) {
        if let Ok(path) = crate::apps::state_path(&self.interface, ".status") {
            let _ = fs::remove_file(path);
        }
    }

    /// The status of the client of `interface` in this network namespace;
    /// an error when there is none, or its writer is gone.
    pub fn read(interface: &str) -> Result<Self, String> {
        let path = crate::apps::state_path(interface, ".status")?;
        let text = fs::read_to_string(&path)
            .map_err(|_| format!("no corridor connect on {interface} in this network namespace"))?;
        let s: Status = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if !std::path::Path::new(&format!("/proc/{}", s.pid)).exists() {
            return Err(format!("no corridor connect on {interface} (pid {} has gone)", s.pid));
        }
        Ok(s)
    }
}
