//! The ban score of each source (ocserv's `max-ban-score`): wrong
//! passwords, malformed requests and TLS failures add points; a source
//! whose score reaches `limits.max_ban_score` is refused at accept for
//! `limits.ban_time`. A score that earns nothing for `limits.ban_reset_time`
//! starts again from zero. An IPv6 source counts by its /64: one host holds
//! a whole /64 as easily as one address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// Where connections come from, as bans and per-source limits count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Source::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

impl core::fmt::Display for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Source::V4(a) => a.fmt(f),
            Source::V6(p) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*p) << 64)),
        }
    }
}

/// What a source did to earn points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A wrong password, or a CONNECT with a cookie nobody issued.
    WrongPassword,
    /// Bad HTTP, a bad auth document, a bad CONNECT.
    Malformed,
    TlsFailure,
}

impl Misbehaviour {
    fn points(self, l: &Limits) -> u32 {
        match self {
            Misbehaviour::WrongPassword => l.points.wrong_password,
            Misbehaviour::Malformed => l.points.malformed,
            Misbehaviour::TlsFailure => l.points.tls_failure,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Score {
    points: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

/// One source of the ban table, as the operator sees it (`corridor ctl bans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanEntry {
    pub source: Source,
    /// Its points since its score last reset.
    pub score: u32,
    /// How much longer it is refused at accept; `None` while not banned.
    pub banned_for: Option<Duration>,
}

/// Every source with points or a ban.
#[derive(Debug, Default)]
pub(super) struct Bans {
    scores: HashMap<Source, Score>,
}

impl Bans {
    pub(super) fn is_banned(&self, s: Source, now: Instant) -> bool {
        self.scores.get(&s).and_then(|x| x.banned_until).is_some_and(|until| now < until)
    }

    /// Adds what `what` costs; `Some(score)` when this banned the source.
    pub(super) fn add(&mut self, s: Source, what: Misbehaviour, l: &Limits, now: Instant) -> Option<u32> {
        let points = what.points(l);
        if l.max_ban_score == 0 || points == 0 {
            return None;
        }
        let e = self.scores.entry(s).or_insert(Score { points: 0, last: now, banned_until: None });
        if now.saturating_duration_since(e.last) >= l.ban_reset_time {
            e.points = 0;
        }
        e.points = e.points.saturating_add(points);
        e.last = now;
        if e.points >= l.max_ban_score && e.banned_until.is_none_or(|u| now >= u) {
            e.banned_until = Some(now + l.ban_time);
            return Some(e.points);
        }
        None
    }

    /// Forgets the source's score and ban; whether it was banned.
    pub(super) fn unban(&mut self, s: Source, now: Instant) -> bool {
        self.scores.remove(&s).and_then(|x| x.banned_until).is_some_and(|u| now < u)
    }

    pub(super) fn banned(&self, now: Instant) -> usize {
        self.scores.values().filter(|x| x.banned_until.is_some_and(|u| now < u)).count()
    }

    /// Every source with points or a ban in force: banned ones first, the
    /// longest ban first, then by score.
    pub(super) fn entries(&self, now: Instant) -> Vec<BanEntry> {
        let mut out: Vec<BanEntry> = self
            .scores
            .iter()
            .map(|(s, x)| BanEntry {
                source: *s,
                score: x.points,
                banned_for: x.banned_until.filter(|u| now < *u).map(|u| u.saturating_duration_since(now)),
            })
            .collect();
        out.sort_by(|a, b| b.banned_for.cmp(&a.banned_for).then(b.score.cmp(&a.score)));
        out
    }

    /// Drops sources whose ban ended and whose score has reset: the table
    /// holds only what still matters.
    pub(super) fn prune(&mut self, l: &Limits, now: Instant) -> usize {
        let before = self.scores.len();
        self.scores.retain(|_, x| {
            x.banned_until.is_some_and(|u| now < u) || now.saturating_duration_since(x.last) < l.ban_reset_time
        });
        before - self.scores.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        assert_eq!(Source::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(Source::of(mapped), Source::V4(Ipv4Addr::new(192, 0, 2, 7)));
    }

    #[test]
    fn a_score_resets_after_a_quiet_spell_and_a_ban_ends() {
        let l = Limits::default();
        let (s, t0) = (Source::V4(Ipv4Addr::new(192, 0, 2, 1)), Instant::now());
        assert_eq!((l.max_ban_score, l.points.wrong_password), (80, 10));
        let mut b = Bans::default();
        for _ in 0..7 {
            assert_eq!(b.add(s, Misbehaviour::WrongPassword, &l, t0), None);
        }
        // Quiet past the reset: the eighth starts a new score.
        let later = t0 + l.ban_reset_time;
        assert_eq!(b.add(s, Misbehaviour::WrongPassword, &l, later), None);
        for _ in 0..6 {
            assert_eq!(b.add(s, Misbehaviour::WrongPassword, &l, later), None);
        }
        assert_eq!(b.add(s, Misbehaviour::WrongPassword, &l, later), Some(80));
        assert!(b.is_banned(s, later));
        assert!(!b.is_banned(s, later + l.ban_time));
        assert_eq!(b.banned(later), 1);
        let other = Source::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(b.add(other, Misbehaviour::Malformed, &l, later), None);
        let listed = b.entries(later + Duration::from_secs(1));
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!((listed[0].source, listed[0].score), (s, 80), "the banned source first");
        assert_eq!(listed[0].banned_for, Some(l.ban_time - Duration::from_secs(1)));
        assert_eq!((listed[1].source, listed[1].banned_for), (other, None));
        assert!(b.unban(s, later));
        assert!(!b.is_banned(s, later));
    }
}
