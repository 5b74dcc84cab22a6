//! Reading a `/metrics` page the way the tests ask of it: a family's
//! samples summed over the label sets that match a filter, and the page
//! checked by `promtool`.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// The sum of family `name`'s samples whose labels include every
/// `(label, value)` of `filter` (all of them for an empty filter).
/// Samples that are not integers (a gauge of seconds) count as nothing.
pub fn sum(page: &str, name: &str, filter: &[(&str, &str)]) -> u64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels: Vec<&str> = labels.split(',').collect();
            let matches =
                metric == name && filter.iter().all(|(k, v)| labels.iter().any(|l| *l == format!("{k}=\"{v}\"")));
            matches.then(|| value.parse::<u64>().ok()).flatten()
        })
        .sum()
}

/// Runs `promtool check metrics` on `page`: its complaints, or `Ok` when it
/// printed none and exited 0. Panics when promtool is missing: the check
/// must not pass for want of the tool (scripts/test.sh installs it).
pub fn promtool_check(page: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    child.stdin.take().expect("stdin").write_all(page.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics ({}):\n{said}", out.status))
    }
}

#[cfg(test)]
mod tests {
    use super::sum;

    #[test]
    fn a_filter_picks_label_sets_and_no_filter_sums_them_all() {
        let page = "# TYPE corridor_shard_drops_total counter\n\
                    corridor_shard_drops_total{shard=\"0\",reason=\"policy\"} 2\n\
                    corridor_shard_drops_total{shard=\"1\",reason=\"policy\"} 3\n\
                    corridor_shard_drops_total{shard=\"1\",reason=\"replay\"} 5\n\
                    corridor_shard_drops_total_other 7\n\
                    corridor_shard_last_turn_seconds{shard=\"0\"} 0.25\n\
                    corridor_relay_links 1\n";
        assert_eq!(sum(page, "corridor_shard_drops_total", &[]), 10);
        assert_eq!(sum(page, "corridor_shard_drops_total", &[("reason", "policy")]), 5);
        assert_eq!(sum(page, "corridor_shard_drops_total", &[("reason", "policy"), ("shard", "1")]), 3);
        assert_eq!(sum(page, "corridor_shard_drops_total", &[("reason", "pol")]), 0);
        assert_eq!(sum(page, "corridor_relay_links", &[]), 1);
        assert_eq!(sum(page, "corridor_shard_last_turn_seconds", &[]), 0);
    }
}
