//! What a run leaves behind: a live progress line, a human table and a JSON
//! result (scenario, parameters, machine, commit, figures, histograms).

use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// The finished result of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub json: Value,
}

const PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

impl Report {
    pub(crate) fn new(
        scenario: &str,
        parameters: Value,
        figures: Map<String, Value>,
        histograms: Map<String, Value>,
    ) -> Self {
        Self {
            json: json!({
                "scenario": scenario,
                "parameters": parameters,
                "machine": machine(),
                "commit": commit(),
                "figures": figures,
                "histograms": histograms,
            }),
        }
    }

    /// The JSON result, pretty-printed, newline-terminated.
    pub fn json_text(&self) -> String {
        serde_json::to_string_pretty(&self.json).unwrap_or_default() + "\n"
    }

    /// The human table: figures, then one row per histogram.
    pub fn table(&self) -> String {
        let at = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        let mut s = format!("scenario {}  commit {}\n", at(&self.json, "scenario"), at(&self.json, "commit"));
        if let Value::Object(figures) = at(&self.json, "figures") {
            for (k, v) in figures {
                match v.as_f64() {
                    Some(f) if !v.is_u64() => s.push_str(&format!("  {k:<22} {f:.3}\n")),
                    _ => s.push_str(&format!("  {k:<22} {v}\n")),
                }
            }
        }
        s.push_str(&format!(
            "  {:<22} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "histogram (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
        ));
        if let Value::Object(hs) = at(&self.json, "histograms") {
            for (k, h) in hs {
                let percentiles = at(&h, "percentiles");
                let p = |i: usize| percentiles.get(i).and_then(|e| e.get("value")).and_then(Value::as_u64).unwrap_or(0);
                let n = |k: &str| at(&h, k).as_u64().unwrap_or(0);
                s.push_str(&format!(
                    "  {k:<22} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
                    n("count"),
                    p(0),
                    p(1),
                    p(2),
                    p(3),
                    n("max")
                ));
            }
        }
        s
    }
}

/// A histogram's summary, plus every non-empty bucket as `[value, count]`
/// under `recorded`, so results from several processes merge exactly
/// ([`histogram_from_json`]) and can be re-analysed later.
pub(crate) fn histogram_json(h: &Histogram<u64>) -> Value {
    let percentiles: Vec<Value> =
        PERCENTILES.iter().map(|&p| json!({ "percentile": p, "value": h.value_at_percentile(p) })).collect();
    let recorded: Vec<Value> =
        h.iter_recorded().map(|v| json!([h.highest_equivalent(v.value_iterated_to()), v.count_at_value()])).collect();
    json!({
        "unit": "us",
        "count": h.len(),
        "min": if h.is_empty() { 0 } else { h.min() },
        "mean": h.mean(),
        "max": h.max(),
        "percentiles": percentiles,
        "recorded": recorded,
    })
}

/// Adds the `recorded` buckets of a [`histogram_json`] value into `h`;
/// `false` when the value has none or they do not fit.
pub(crate) fn histogram_from_json(v: &Value, h: &mut Histogram<u64>) -> bool {
    let Some(buckets) = v.get("recorded").and_then(Value::as_array) else { return false };
    buckets.iter().all(|b| {
        let pair = (b.get(0).and_then(Value::as_u64), b.get(1).and_then(Value::as_u64));
        matches!(pair, (Some(value), Some(count)) if h.record_n(value, count).is_ok())
    })
}

fn machine() -> Value {
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string());
    json!({ "nproc": nproc, "cpu_model": cpu, "kernel": kernel })
}

fn commit() -> String {
    if let Ok(c) = std::env::var("CORRIDOR_COMMIT") {
        return c;
    }
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// User plus system CPU seconds of this process, from `/proc/self/stat`
/// (fields 14 and 15, in USER_HZ = 100 ticks per second on Linux).
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // The command name (field 2) may hold spaces; count from after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut fields = rest.split_whitespace().skip(11);
    let ticks = |f: Option<&str>| f.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (user, system) = (ticks(fields.next()), ticks(fields.next()));
    (user + system) as f64 / 100.0
}

/// One stderr line a second: elapsed time, the scenario's state, own CPU.
#[derive(Debug)]
pub(crate) struct Progress {
    start: Instant,
    next: Instant,
    cpu_start: f64,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self { start: now, next: now + std::time::Duration::from_secs(1), cpu_start: cpu_seconds() }
    }

    pub(crate) fn tick(&mut self, line: impl FnOnce() -> String) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + std::time::Duration::from_secs(1);
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let cpu = cpu_seconds() - self.cpu_start;
        eprintln!("[{elapsed:6.1}s] {}  generator cpu {cpu:.2}s ({:.0}%)", line(), 100.0 * cpu / elapsed.max(1e-9));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_its_json_exactly() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for v in [1u64, 5, 5, 1_000, 123_456, 3_000_000] {
            h.record(v).expect("in range");
        }
        let mut back = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        assert!(histogram_from_json(&histogram_json(&h), &mut back));
        assert_eq!(back.len(), h.len());
        for p in [0.0, 50.0, 99.0, 100.0] {
            assert_eq!(back.value_at_percentile(p), h.value_at_percentile(p), "p{p}");
        }
        assert!(!histogram_from_json(&json!({"count": 3}), &mut back));
    }
}
