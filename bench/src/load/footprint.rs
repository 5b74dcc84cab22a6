//! A gateway's memory as the sum of the proportional set size (PSS) of its
//! process and every descendant: one process for corridor, the main
//! process, sec-mod and one worker per session for ocserv. PSS splits shared
//! pages among the processes sharing them, so the sum over a tree counts
//! each page once.

use std::collections::HashMap;

/// Bytes of PSS of `pid` and its descendants; `None` if `pid` is gone or
/// `/proc` cannot be read.
pub(crate) fn tree_pss_bytes(pid: u32) -> Option<u64> {
    let children = children_by_parent();
    let mut total = pss_kib(pid)?;
    let mut stack: Vec<u32> = children.get(&pid).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        total += pss_kib(p).unwrap_or(0);
        stack.extend(children.get(&p).into_iter().flatten());
    }
    Some(total * 1024)
}

/// This process's resident set, bytes.
pub(crate) fn own_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status").ok().and_then(|s| field_kib(&s, "VmRSS:")).unwrap_or(0) * 1024
}

fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    field_kib(&rollup, "Pss:")
}

fn field_kib(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn children_by_parent() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return map };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Field 4 is the parent; the command name (field 2) may hold spaces.
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse().ok()) else {
            continue;
        };
        map.entry(ppid).or_default().push(pid);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_footprint_and_a_missing_one_has_none() {
        let own = tree_pss_bytes(std::process::id()).expect("own PSS");
        assert!(own > 0);
        assert!(own_rss_bytes() > 0);
        assert_eq!(tree_pss_bytes(u32::MAX), None);
    }

    #[test]
    fn fields_are_read_in_kib() {
        assert_eq!(field_kib("Rss:  10 kB\nPss:   7 kB\n", "Pss:"), Some(7));
        assert_eq!(field_kib("Rss: 10 kB\n", "Pss:"), None);
    }
}
