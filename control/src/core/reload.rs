//! A configuration reload, as the core takes it: the driver has checked
//! that no fixed field changed ([`Config::fixed_fields_changed`]) and
//! hands over the new configuration and the password users gone since
//! the running file. Live sessions keep their connections, addresses and
//! DTLS channels; what changes for them:
//!
//! * a gone user's sessions end (`user_removed`); a session whose group
//!   is gone ends (`group_removed`);
//! * a session whose group's policy (ACL, implicit deny, client-to-client)
//!   changed gets it on every shard at once ([`ToShard::Repolicy`]): the
//!   next DTLS packet is admitted by the new policy, and CSTP packets are
//!   admitted by the core from the configuration, which is the new one;
//! * timers, limits and the banner are read from the configuration where
//!   they are used, so they apply from the next use.
//!
//! Routes and DNS reach a device at its next CONNECT (openconnect reads
//! them once per tunnel), which its reconnect brings.

use std::sync::Arc;

use dataplane::{ShardId, ToShard};

use super::Core;
use crate::config::Config;
use crate::port::DataplanePort;
use crate::session::EndReason;

/// What a reload did to the live sessions, for the log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Groups added, removed, or whose policy changed.
    pub groups_changed: Vec<String>,
    /// Sessions that got a new policy.
    pub repoliced: usize,
    /// Sessions ended because their user went away.
    pub users_removed: usize,
    /// Sessions ended because their group went away.
    pub groups_removed: usize,
}

impl<P: DataplanePort> Core<P> {
    /// Serves with `next` from now on (see the module docs).
    pub fn reload(&mut self, next: Arc<Config>, removed_users: &[String]) -> ReloadOutcome {
        let old = std::mem::replace(&mut self.config, next);
        let mut out = ReloadOutcome::default();
        for g in &old.groups {
            match self.config.groups.iter().find(|n| n.name == g.name) {
                Some(n) if n.policy == g.policy => {}
                _ => out.groups_changed.push(g.name.clone()),
            }
        }
        for n in &self.config.groups {
            if !old.groups.iter().any(|g| g.name == n.name) {
                out.groups_changed.push(n.name.clone());
            }
        }
        for id in self.sessions.ids() {
            let Some(s) = self.sessions.get(id) else { continue };
            if removed_users.contains(&s.user) {
                self.end_session(id, EndReason::UserRemoved);
                out.users_removed += 1;
                continue;
            }
            let Some(group) = self.config.group(Some(&s.group)) else {
                self.end_session(id, EndReason::GroupRemoved);
                out.groups_removed += 1;
                continue;
            };
            if old.group(Some(&s.group)).is_some_and(|g| g.policy == group.policy) {
                continue;
            }
            let policy = group.policy.clone();
            for shard in 0..self.port.shard_count() {
                let shard = ShardId(u16::try_from(shard).unwrap_or(u16::MAX));
                let _ = self.port.send(shard, ToShard::Repolicy { session: id, policy: Box::new(policy.clone()) });
            }
            out.repoliced += 1;
        }
        out
    }
}
