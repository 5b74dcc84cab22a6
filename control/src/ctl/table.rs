//! `corridor ctl`'s human output: aligned tables and short lines. `--json`
//! prints the response itself instead.

use std::fmt::Write as _;

use super::views::{BanView, SessionView, Status};

/// Columns padded to their widest cell, two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `3d04h`, `2h05m`, `4m09s`, `7s`.
pub(super) fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// Bytes in binary units with one decimal: `512B`, `4.0K`, `12.3M`, `1.5G`.
pub(super) fn size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut units = ["K", "M", "G", "T", "P"].into_iter().peekable();
    let mut unit = "K";
    while let Some(u) = units.next() {
        unit = u;
        if v < 1024.0 || units.peek().is_none() {
            break;
        }
        v /= 1024.0;
    }
    format!("{v:.1}{unit}")
}

/// `bytes/packets`, bytes in binary units.
fn traffic(bytes: u64, packets: u64) -> String {
    format!("{}/{packets}", size(bytes))
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub(super) fn status(s: &Status) -> String {
    let problems = s.problems();
    let health = if problems.is_empty() { "ok".to_owned() } else { format!("PROBLEM: {}", problems.join("; ")) };
    let shards: Vec<String> = s
        .shards
        .iter()
        .map(|x| format!("{} {} ({} ms ago)", x.shard, if x.up { "up" } else { "DOWN" }, x.last_turn_ms))
        .collect();
    let relays = if s.relays.is_empty() {
        "none".to_owned()
    } else {
        s.relays.iter().map(|r| format!("{} ({}) {}", r.address, r.name, r.state)).collect::<Vec<_>>().join(", ")
    };
    let rows = [
        ("version", s.version.clone()),
        ("uptime", format!("{} (since {})", age(s.uptime_s), s.started)),
        ("health", health),
        ("fips", if s.fips { "on" } else { "off" }.to_owned()),
        ("shards", format!("{}: {}", s.shards.len(), shards.join(", "))),
        ("io", s.io.clone()),
        ("offloads", s.offloads.clone()),
        ("steering", s.steering.clone()),
        ("sessions", format!("{} ({} TLS connections)", s.sessions, s.connections)),
        ("relays", relays),
        ("bans", format!("{} sources banned", s.banned_sources)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<9} {v}\n")).collect()
}

pub(super) fn sessions(list: &[SessionView]) -> String {
    if list.is_empty() {
        return "no sessions\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.user.clone(),
                s.group.clone(),
                s.address.to_string(),
                or_dash(s.peer),
                s.via.clone(),
                s.channel.name().to_owned(),
                or_dash(s.shard),
                or_dash(s.cipher.as_deref()),
                format!("{} ({})", s.since, age(s.age_s)),
                age(s.idle_s),
                traffic(s.bytes_in, s.packets_in),
                traffic(s.bytes_out, s.packets_out),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USER",
            "GROUP",
            "ADDRESS",
            "PEER",
            "VIA",
            "CHANNEL",
            "SHARD",
            "CIPHER",
            "SINCE (AGE)",
            "IDLE",
            "IN (BYTES/PKTS)",
            "OUT (BYTES/PKTS)",
        ],
        &rows,
    )
}

pub(super) fn bans(list: &[BanView]) -> String {
    if list.is_empty() {
        return "no sources with ban points\n".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|b| {
            vec![
                b.source.clone(),
                b.score.to_string(),
                if b.banned { "banned".to_owned() } else { "points only".to_owned() },
                b.remaining_s.map_or_else(|| "-".to_owned(), age),
            ]
        })
        .collect();
    table(&["SOURCE", "SCORE", "STATE", "REMAINING"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(7), "7s");
        assert_eq!(age(249), "4m09s");
        assert_eq!(age(7500), "2h05m");
        assert_eq!(age(273_600), "3d04h");
    }

    #[test]
    fn sizes_are_short() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(1023), "1023B");
        assert_eq!(size(4096), "4.0K");
        assert_eq!(size(12_900_000), "12.3M");
        assert_eq!(size(1_610_612_736), "1.5G");
        assert_eq!(traffic(2048, 3), "2.0K/3");
    }

    #[test]
    fn tables_align_their_columns() {
        let t = table(&["A", "LONGER"], &[vec!["wide cell".into(), "x".into()], vec!["y".into(), "z".into()]]);
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
    }

    #[test]
    fn bans_show_the_time_left() {
        let t = bans(&[
            BanView { source: "10.0.0.9".into(), score: 80, banned: true, remaining_s: Some(870) },
            BanView { source: "2001:db8::/64".into(), score: 10, banned: false, remaining_s: None },
        ]);
        assert!(t.contains("10.0.0.9       80     banned       14m30s"), "{t}");
        assert!(t.contains("2001:db8::/64  10     points only  -"), "{t}");
    }
}
