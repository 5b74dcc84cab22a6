//! The control thread's side of administration: it answers the admin
//! thread's questions ([`crate::admin::link`]) from the core's state, with
//! owned views the admin thread writes out, and carries out `kill` and
//! `unban`. Nothing here touches an admin socket or waits.

use std::time::Instant;

use proto::grant::SessionId;

use super::metrics::{describe_io, describe_offloads, describe_steering};
use super::Gateway;
use crate::admin::link::{Answer, Ask};
use crate::admin::PeerCred;
use crate::ctl::{self, BanView, Channel, ErrorKind, Request, Response, SessionView, ShardView, Status};
use crate::session::{DtlsState, Session};

impl Gateway {
    /// Answers every question the admin thread has asked.
    pub(super) fn on_admin(&mut self, now: Instant) {
        while let Some(q) = self.admin.link.next_question() {
            let answer = match q.ask {
                Ask::Metrics => Answer::Metrics(self.metrics()),
                Ask::Health => Answer::Health(self.shard_views()),
                Ask::Ctl { request, peer } => Answer::Ctl(self.ctl(request, peer, now)),
            };
            self.admin.link.answer(q.id, answer);
        }
    }

    fn ctl(&mut self, request: Request, peer: PeerCred, now: Instant) -> Response {
        match request {
            Request::Status => Response::Status(self.status(now)),
            Request::Sessions => Response::Sessions { sessions: self.session_views(|_| true, now) },
            Request::Show { target } => {
                let by_id = ctl::parse_session_id(&target);
                let sessions = self.session_views(|s| Some(s.id) == by_id || s.user == target, now);
                if sessions.is_empty() {
                    Response::error(ErrorKind::NotFound, format!("no session or user {}", target.escape_debug()))
                } else {
                    Response::Sessions { sessions }
                }
            }
            Request::Kill { session, reason } => {
                let found = ctl::parse_session_id(&session).filter(|id| self.core.sessions().get(*id).is_some());
                match found {
                    Some(id) => self.kill(&[id], reason, peer, now),
                    None => Response::error(ErrorKind::NotFound, format!("no session {}", session.escape_debug())),
                }
            }
            Request::KillUser { user, reason } => {
                let mut ids: Vec<SessionId> =
                    self.core.sessions().iter().filter(|s| s.user == user).map(|s| s.id).collect();
                ids.sort();
                if ids.is_empty() {
                    return Response::error(ErrorKind::NotFound, format!("no session of user {user}"));
                }
                self.kill(&ids, reason, peer, now)
            }
            Request::Bans => Response::Bans {
                bans: self
                    .core
                    .bans(now)
                    .into_iter()
                    .map(|b| BanView {
                        source: b.source.to_string(),
                        score: b.score,
                        banned: b.banned_for.is_some(),
                        remaining_s: b.banned_for.map(|d| d.as_secs()),
                    })
                    .collect(),
            },
            Request::Drain => {
                tracing::warn!(peer_uid = peer.uid, peer_pid = peer.pid, "drain asked by corridor ctl");
                Response::Drained { sessions: self.drain(now) }
            }
            Request::Reload => {
                tracing::warn!(peer_uid = peer.uid, peer_pid = peer.pid, "reload asked by corridor ctl");
                match self.reload() {
                    Ok(summary) => {
                        tracing::info!("configuration reloaded: {summary}");
                        Response::Reloaded { summary }
                    }
                    Err(e) => {
                        tracing::error!("reload refused, the running configuration is unchanged: {e}");
                        Response::error(ErrorKind::Refused, format!("{e}; the running configuration is unchanged"))
                    }
                }
            }
            Request::Unban { address } => {
                let source = ctl::source_of(address);
                if self.core.unban(address, now) {
                    tracing::warn!(%source, peer_uid = peer.uid, peer_pid = peer.pid, "unbanned by corridor ctl");
                    Response::Unbanned { address, source }
                } else {
                    Response::error(ErrorKind::NotFound, format!("{source} is not banned"))
                }
            }
        }
    }

    /// Ends the sessions (their cookies revoked: [`crate::core::Core::kill`]),
    /// each logged with the reason and who asked.
    fn kill(&mut self, ids: &[SessionId], reason: Option<String>, peer: PeerCred, now: Instant) -> Response {
        let reason = reason.unwrap_or_else(|| "none given".to_owned());
        let mut killed = Vec::new();
        for id in ids {
            let Some(user) = self.core.sessions().get(*id).map(|s| s.user.clone()) else { continue };
            tracing::warn!(
                session = %id,
                user = %user,
                reason = ?reason,
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                "session killed by corridor ctl; its cookie is revoked"
            );
            if self.core.kill(*id) {
                killed.push(id.to_string());
            }
        }
        self.carry_out(now);
        Response::Killed { sessions: killed, reason }
    }

    fn shard_views(&self) -> Vec<ShardView> {
        self.core
            .port()
            .health()
            .into_iter()
            .map(|h| ShardView {
                shard: h.shard.0,
                up: h.up,
                last_turn_ms: u64::try_from(h.since_last_turn.as_millis()).unwrap_or(u64::MAX),
            })
            .collect()
    }

    fn status(&self, now: Instant) -> Status {
        let uptime = now.saturating_duration_since(self.started).as_secs();
        let info = self.core.port().info();
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: self.core.unix_now(now).saturating_sub(uptime),
            uptime_s: uptime,
            fips: crate::tls::fips(&self.tls),
            shards: self.shard_views(),
            io: describe_io(info),
            offloads: describe_offloads(info, self.core.config().offloads),
            steering: describe_steering(info),
            sessions: self.core.sessions().len(),
            connections: self.core.connection_count(),
            relays: self.relays.views(),
            banned_sources: self.core.banned_sources(now),
        }
    }

    /// The sessions `keep` picks, by id.
    fn session_views(&self, keep: impl Fn(&Session) -> bool, now: Instant) -> Vec<SessionView> {
        let mut list: Vec<&Session> = self.core.sessions().iter().filter(|s| keep(s)).collect();
        list.sort_by_key(|s| s.id);
        list.into_iter().map(|s| self.session_view(s, now)).collect()
    }

    fn session_view(&self, s: &Session, now: Instant) -> SessionView {
        let unix_now = self.core.unix_now(now);
        let age = now.saturating_duration_since(s.created).as_secs();
        let idle = now.saturating_duration_since(s.last_data).as_secs();
        let (shard, dtls_peer, dtls_suite) = match s.dtls {
            DtlsState::Granted { shard, peer, suite, .. } => (Some(shard.0), Some(peer), Some(format!("{suite:?}"))),
            DtlsState::None => (None, None, None),
        };
        let (channel, cipher) = match s.conn {
            None => (Channel::None, None),
            Some(_) if dtls_suite.is_some() => (Channel::Dtls, dtls_suite),
            Some(conn) => (
                Channel::Cstp,
                self.conns
                    .get(&conn)
                    .and_then(|c| c.tls.negotiated_cipher_suite())
                    .map(|cs| format!("{:?}", cs.suite())),
            ),
        };
        let via = match s.via {
            None => "direct".to_owned(),
            Some(v) => self
                .core
                .config()
                .relays
                .get(v.link)
                .map_or_else(|| format!("relay link {}", v.link), |r| format!("relay {}", r.address)),
        };
        SessionView {
            id: s.id.to_string(),
            user: s.user.clone(),
            group: s.group.clone(),
            address: s.address,
            peer: s.peer,
            via,
            channel,
            shard,
            dtls_peer,
            cipher,
            since: unix_now.saturating_sub(age),
            age_s: age,
            last_activity: unix_now.saturating_sub(idle),
            idle_s: idle,
            detached_s: s.detached_at.map(|d| now.saturating_duration_since(d).as_secs()),
            bytes_in: s.traffic.rx().bytes,
            bytes_out: s.traffic.tx().bytes,
            packets_in: s.traffic.rx().packets,
            packets_out: s.traffic.tx().packets,
            drops_spoofed: s.drops_spoofed,
            drops_policy: s.drops_policy,
        }
    }
}
