//! Reload (SIGHUP): the keeper reads and checks the configuration, the key
//! and the password file again; the worker parses the same texts, refuses
//! a change to a field that cannot change live, then has the keeper commit
//! and serves with the new configuration, TLS certificate and key. Tunnels
//! stay up (see [`crate::core::ReloadOutcome`] for what sessions see). A
//! reload that fails at any step before the commit changes nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Gateway;
use crate::config::{Config, Replay};
use crate::keeper::RemoteKey;

impl Gateway {
    /// Reloads from `path` (the file the keeper was started with) whenever
    /// `flag` is set (the SIGHUP handler sets it).
    #[must_use]
    pub fn reload_on(mut self, flag: Arc<AtomicBool>, path: PathBuf) -> Self {
        self.reload = Some((flag, path));
        self
    }

    /// Called every loop turn: a reload if one was asked for.
    pub(super) fn reload_if_asked(&mut self, now: Instant) {
        let asked = self.reload.as_ref().is_some_and(|(flag, _)| flag.swap(false, Ordering::Relaxed));
        if !asked {
            return;
        }
        match self.reload() {
            Ok(summary) => tracing::info!("configuration reloaded: {summary}"),
            Err(e) => tracing::error!("reload refused, the running configuration is unchanged: {e}"),
        }
        self.carry_out(now);
    }

    /// One reload (SIGHUP or `corridor ctl reload`); `Ok` says what
    /// changed. The service manager hears `RELOADING=1` before and
    /// `READY=1` after, whatever the outcome: a refused reload leaves the
    /// gateway serving as before.
    pub fn reload(&mut self) -> Result<String, String> {
        self.notify.reloading();
        let outcome = self.reload_now();
        self.notify.ready(match &outcome {
            Ok(_) => "serving; configuration reloaded",
            Err(_) => "serving; the last reload was refused (see the log)",
        });
        outcome
    }

    fn reload_now(&mut self) -> Result<String, String> {
        let keeper = self.keeper.clone().ok_or("reload needs the keeper process (`corridor gateway`)")?;
        let path = self.reload.as_ref().map(|(_, p)| p.clone()).ok_or("no configuration file to reload from")?;
        let prepared = keeper.prepare()?;
        let replay = Replay(prepared.texts);
        let next = Config::load_with(&path, &replay).map_err(|e| e.to_string())?;
        let fixed = self.core.config().fixed_fields_changed(&next);
        if !fixed.is_empty() {
            return Err(format!("{} cannot change while the gateway runs (restart to change it)", fixed.join(", ")));
        }
        let text = |field: &str, p: &std::path::Path| {
            replay
                .0
                .get(p)
                .map(String::as_bytes)
                .ok_or_else(|| format!("{field}: the keeper did not read {}", p.display()))
        };
        let chain = crate::tls::certificates("server.cert", &next.cert, text("server.cert", &next.cert)?)
            .map_err(|e| e.to_string())?;
        let client_ca = match &next.client_ca {
            Some(ca) => Some(
                crate::tls::certificates("auth.client_ca", ca, text("auth.client_ca", ca)?)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let old = self.core.config().clone();
        let facts = keeper.commit()?;
        // The keeper checked the key matches the certificate; a failure here
        // leaves the old TLS configuration, with the keeper on the new key.
        self.tls = crate::tls::server_config_with_key(
            crate::tls::provider(),
            chain,
            RemoteKey::signing_key(keeper, facts),
            client_ca,
        )
        .map_err(|e| format!("the new TLS configuration: {e}"))?;
        let outcome = self.core.reload(Arc::new(next), &prepared.removed_users);
        let mut said =
            vec![format!("certificate {}", if old.cert == self.core.config().cert { "reread" } else { "replaced" })];
        if !outcome.groups_changed.is_empty() {
            said.push(format!("groups changed: {}", outcome.groups_changed.join(", ")));
        }
        said.push(format!("{} sessions got a new policy", outcome.repoliced));
        if outcome.users_removed > 0 {
            said.push(format!(
                "{} sessions ended (user_removed: {})",
                outcome.users_removed,
                prepared.removed_users.join(", ")
            ));
        }
        if outcome.groups_removed > 0 {
            said.push(format!("{} sessions ended (group_removed)", outcome.groups_removed));
        }
        Ok(said.join("; "))
    }
}
