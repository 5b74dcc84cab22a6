//! `corridor bench compare OLD.json NEW.json`: figure by figure, the ratio
//! NEW / OLD, and a regression flag where a figure moved the wrong way by
//! more than a threshold.
//!
//! Both `corridor bench run` results and `scripts/compare-peers.sh --json`
//! results are read: every number is flattened to a dotted path
//! (`figures.delivered_gbps`, `histograms.rtt_us.percentiles.p99`,
//! `contenders.corridor.tcp1_gbps`). Which way is better is read off the
//! figure's name ([`Direction::of`]); figures with no better way (counts,
//! wall time) are shown, never flagged. Identification (`machine`,
//! `parameters`, `commit`, `date`) is compared as text, and a difference is
//! printed above the table: a ratio between different set-ups is not a
//! regression signal.

use std::collections::BTreeMap;

use serde_json::Value;

/// Which way a figure should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
    Neutral,
}

impl Direction {
    /// By the figure's dotted path; the rules are the naming conventions of
    /// the result files.
    pub fn of(path: &str) -> Self {
        let leaf = path.rsplit('.').next().unwrap_or(path);
        if leaf.starts_with("generator_") || leaf.starts_with("reflector_") {
            return Self::Neutral;
        }
        // Histograms in µs: percentiles and extremes are latencies; the count is not.
        if path.contains("_us.") {
            let latency = leaf.starts_with('p') || matches!(leaf, "min" | "mean" | "max");
            return if latency { Self::LowerIsBetter } else { Self::Neutral };
        }
        const HIGHER: [&str; 8] =
            ["per_s", "gbps", "pps", "per_gateway_cpu_s", "devices_up", "still_up", "_received", "_delivered"];
        const LOWER: [&str; 7] = ["_us", "_ms", "loss", "failures", "lost", "per_session", "cores"];
        if leaf == "handshake_wall_s" || LOWER.iter().any(|l| leaf.contains(l)) {
            return Self::LowerIsBetter;
        }
        if HIGHER.iter().any(|h| leaf.contains(h)) {
            return Self::HigherIsBetter;
        }
        Self::Neutral
    }
}

/// One figure present in both files.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub figure: String,
    pub old: f64,
    pub new: f64,
    /// NEW / OLD; `None` when OLD is zero.
    pub ratio: Option<f64>,
    pub direction: Direction,
    pub regression: bool,
}

/// The comparison of two result files.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Identification fields that differ: `(path, old, new)`.
    pub setup_differences: Vec<(String, String, String)>,
    /// Figures in only one of the two files.
    pub only_old: Vec<String>,
    pub only_new: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.regression)
    }

    /// The human table.
    pub fn table(&self, threshold: f64) -> String {
        let mut s = String::new();
        for (path, old, new) in &self.setup_differences {
            s.push_str(&format!("note: {path} differs: {old} -> {new}\n"));
        }
        s.push_str(&format!("{:<44} {:>14} {:>14} {:>8}  {}\n", "figure", "old", "new", "new/old", "verdict"));
        for r in &self.rows {
            let ratio = r.ratio.map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
            let verdict = match (r.regression, r.direction) {
                (true, _) => "REGRESSION",
                (false, Direction::Neutral) => "",
                (false, _) => "ok",
            };
            s.push_str(&format!("{:<44} {:>14} {:>14} {ratio:>8}  {verdict}\n", r.figure, num(r.old), num(r.new)));
        }
        for f in &self.only_old {
            s.push_str(&format!("only in OLD: {f}\n"));
        }
        for f in &self.only_new {
            s.push_str(&format!("only in NEW: {f}\n"));
        }
        let n = self.regressions().count();
        s.push_str(&format!(
            "{n} regression(s) beyond {:.1} % ({} figures compared)\n",
            threshold * 100.0,
            self.rows.len()
        ));
        s
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// Compares two result documents; `threshold` is the relative move (0.05 =
/// 5 %) beyond which a figure moving the wrong way is a regression.
pub fn compare(old: &Value, new: &Value, threshold: f64) -> Comparison {
    let (mut old_figures, mut new_figures) = (BTreeMap::new(), BTreeMap::new());
    let (mut old_setup, mut new_setup) = (BTreeMap::new(), BTreeMap::new());
    flatten(old, String::new(), &mut old_figures, &mut old_setup);
    flatten(new, String::new(), &mut new_figures, &mut new_setup);
    let mut c = Comparison::default();
    for (path, o) in &old_setup {
        let n = new_setup.get(path).cloned().unwrap_or_else(|| "(absent)".into());
        if *o != n {
            c.setup_differences.push((path.clone(), o.clone(), n));
        }
    }
    for (path, &o) in &old_figures {
        let Some(&n) = new_figures.get(path) else {
            c.only_old.push(path.clone());
            continue;
        };
        let ratio = (o != 0.0).then(|| n / o);
        let direction = Direction::of(path);
        let regression = match (direction, ratio) {
            (Direction::HigherIsBetter, Some(r)) => r < 1.0 - threshold,
            (Direction::HigherIsBetter, None) => false,
            (Direction::LowerIsBetter, Some(r)) => r > 1.0 + threshold,
            // From zero (no loss, no failures) to anything is a regression.
            (Direction::LowerIsBetter, None) => n > 0.0,
            (Direction::Neutral, _) => false,
        };
        c.rows.push(Row { figure: path.clone(), old: o, new: n, ratio, direction, regression });
    }
    c.only_new = new_figures.keys().filter(|k| !old_figures.contains_key(*k)).cloned().collect();
    c
}

/// [`compare`] over two JSON files.
pub fn compare_files(old: &std::path::Path, new: &std::path::Path, threshold: f64) -> Result<Comparison, String> {
    let read = |p: &std::path::Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))
    };
    Ok(compare(&read(old)?, &read(new)?, threshold))
}

/// Keys that identify a run rather than measure it.
const SETUP: [&str; 5] = ["machine", "parameters", "commit", "date", "scenario"];

fn flatten(v: &Value, path: String, figures: &mut BTreeMap<String, f64>, setup: &mut BTreeMap<String, String>) {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if path.is_empty() && SETUP.contains(&k.as_str()) {
                    setup.insert(k.clone(), v.to_string());
                } else {
                    flatten(v, join(k), figures, setup);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                // Named entries (contenders) and percentiles get readable paths.
                let key = if let Some(name) = item.get("name").and_then(Value::as_str) {
                    name.to_string()
                } else if let (Some(p), Some(value)) =
                    (item.get("percentile").and_then(Value::as_f64), item.get("value"))
                {
                    flatten(value, join(&format!("p{p}").replace('.', "_")), figures, setup);
                    continue;
                } else {
                    i.to_string()
                };
                flatten(item, join(&key), figures, setup);
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                figures.insert(path, x);
            }
        }
        Value::Bool(_) | Value::String(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(gbps: f64, p99: u64, loss: u64, devices: u64) -> Value {
        json!({
            "scenario": "bulk",
            "commit": "abc",
            "machine": {"nproc": 2},
            "parameters": {"devices": devices},
            "figures": {"delivered_gbps": gbps, "loss": loss, "packets_sent": 1000, "wall_s": 10.0},
            "histograms": {"rtt_us": {"count": 5, "percentiles": [{"percentile": 99.0, "value": p99}]}},
        })
    }

    #[test]
    fn directions_follow_the_figure_names() {
        assert_eq!(Direction::of("figures.delivered_gbps"), Direction::HigherIsBetter);
        assert_eq!(Direction::of("figures.handshakes_per_s"), Direction::HigherIsBetter);
        assert_eq!(Direction::of("contenders.corridor.udp100_kpps"), Direction::HigherIsBetter);
        assert_eq!(Direction::of("contenders.corridor.gbit_per_gateway_cpu_s"), Direction::HigherIsBetter);
        assert_eq!(Direction::of("histograms.rtt_us.p99"), Direction::LowerIsBetter);
        assert_eq!(Direction::of("contenders.corridor.ping_load_p99_ms"), Direction::LowerIsBetter);
        assert_eq!(Direction::of("figures.gateway_bytes_per_session"), Direction::LowerIsBetter);
        assert_eq!(Direction::of("figures.loss"), Direction::LowerIsBetter);
        assert_eq!(Direction::of("figures.packets_sent"), Direction::Neutral);
        assert_eq!(Direction::of("figures.wall_s"), Direction::Neutral);
        assert_eq!(Direction::of("histograms.rtt_us.count"), Direction::Neutral);
        assert_eq!(Direction::of("histograms.rtt_us.p99_9"), Direction::LowerIsBetter);
        assert_eq!(Direction::of("figures.generator_cores"), Direction::Neutral);
        assert_eq!(Direction::of("contenders.corridor.gateway_cores_tcp1"), Direction::LowerIsBetter);
    }

    #[test]
    fn a_slower_result_is_flagged_and_a_faster_one_is_not() {
        let c = compare(&result(2.0, 100, 0, 1), &result(1.5, 100, 0, 1), 0.05);
        let flagged: Vec<_> = c.regressions().map(|r| r.figure.as_str()).collect();
        assert_eq!(flagged, ["figures.delivered_gbps"]);
        let c = compare(&result(2.0, 100, 0, 1), &result(2.5, 90, 0, 1), 0.05);
        assert_eq!(c.regressions().count(), 0);
        assert!(c.setup_differences.is_empty());
    }

    #[test]
    fn within_the_threshold_is_noise_not_a_regression() {
        let c = compare(&result(2.0, 100, 0, 1), &result(1.92, 104, 0, 1), 0.05);
        assert_eq!(c.regressions().count(), 0);
        let c = compare(&result(2.0, 100, 0, 1), &result(1.92, 104, 0, 1), 0.01);
        assert_eq!(c.regressions().count(), 2);
    }

    #[test]
    fn latency_up_and_loss_from_zero_are_regressions() {
        let c = compare(&result(2.0, 100, 0, 1), &result(2.0, 200, 3, 1), 0.05);
        let mut flagged: Vec<_> = c.regressions().map(|r| r.figure.clone()).collect();
        flagged.sort();
        assert_eq!(flagged, ["figures.loss", "histograms.rtt_us.percentiles.p99"]);
    }

    #[test]
    fn different_setups_are_reported_and_contenders_are_named() {
        let old = json!({"machine": {"nproc": 2}, "contenders": [{"name": "corridor", "tcp1_gbps": 2.0}]});
        let new = json!({"machine": {"nproc": 16}, "contenders": [{"name": "corridor", "tcp1_gbps": 1.0}]});
        let c = compare(&old, &new, 0.05);
        assert_eq!(c.setup_differences.len(), 1);
        assert_eq!(c.rows.first().map(|r| r.figure.as_str()), Some("contenders.corridor.tcp1_gbps"));
        assert!(c.table(0.05).contains("REGRESSION"));
    }
}
