//! Counters, gauges and histograms in the Prometheus text exposition
//! format, as the admin endpoint's `GET /metrics` serves them.

use std::fmt::Write as _;

use crate::counters::CounterSet;

/// A Prometheus text page being written.
#[derive(Debug, Default)]
pub struct Metrics(String);

impl Metrics {
    /// One counter series; its HELP and TYPE lines are written once per
    /// name, however many label sets follow.
    pub fn counter(&mut self, name: &str, help: &str, labels: &str, value: u64) {
        if !self.0.contains(&format!("# TYPE {name} ")) {
            let _ = writeln!(self.0, "# HELP {name} {help}");
            let _ = writeln!(self.0, "# TYPE {name} counter");
        }
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    /// Every counter of a set declared with [`counters!`](crate::counters!),
    /// each with `labels` (`""` for none). Rendering one set per shard with
    /// its own label gives each metric one HELP and TYPE and a series per shard.
    pub fn counter_set(&mut self, set: &impl CounterSet, labels: &str) {
        for (counter, value) in set.counters() {
            self.counter(counter.metric, counter.help, labels, value);
        }
    }

    /// A histogram series: `cumulative` holds (upper bound in seconds, or
    /// `None` for +Inf, count at or under it), ending with +Inf.
    pub fn histogram(&mut self, name: &str, help: &str, labels: &str, cumulative: &[(Option<f64>, u64)], sum: f64) {
        if !self.0.contains(&format!("# TYPE {name} ")) {
            let _ = writeln!(self.0, "# HELP {name} {help}");
            let _ = writeln!(self.0, "# TYPE {name} histogram");
        }
        let sep = if labels.is_empty() { "" } else { "," };
        for (le, n) in cumulative {
            let le = le.map_or("+Inf".to_owned(), |s| format!("{s:e}"));
            let _ = writeln!(self.0, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let count = cumulative.last().map_or(0, |(_, n)| *n);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(self.0, "{name}_sum{braces} {sum}");
        let _ = writeln!(self.0, "{name}_count{braces} {count}");
    }

    /// One gauge, with no labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} gauge");
        let _ = writeln!(self.0, "{name} {value}");
    }

    /// One gauge series with `labels`; its HELP and TYPE lines are written
    /// once per name, however many label sets follow.
    pub fn gauge_series(&mut self, name: &str, help: &str, labels: &str, value: impl core::fmt::Display) {
        if !self.0.contains(&format!("# TYPE {name} ")) {
            let _ = writeln!(self.0, "# HELP {name} {help}");
            let _ = writeln!(self.0, "# TYPE {name} gauge");
        }
        let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
    }

    /// The page.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_once_per_name() {
        let mut m = Metrics::default();
        m.counter("corridor_x_total", "x", "shard=\"0\"", 1);
        m.counter("corridor_x_total", "x", "shard=\"1\"", 2);
        m.histogram("corridor_t_seconds", "t", "shard=\"0\"", &[(Some(5e-7), 1), (None, 3)], 0.25);
        let s = m.into_string();
        assert!(s.contains("corridor_t_seconds_bucket{shard=\"0\",le=\"5e-7\"} 1"), "{s}");
        assert!(s.contains("corridor_t_seconds_bucket{shard=\"0\",le=\"+Inf\"} 3"), "{s}");
        assert!(s.contains("corridor_t_seconds_count{shard=\"0\"} 3") && s.contains("_sum{shard=\"0\"} 0.25"), "{s}");
        assert_eq!(s.matches("# TYPE corridor_x_total counter").count(), 1);
        assert!(s.contains("corridor_x_total{shard=\"1\"} 2"));
    }

    #[test]
    fn gauge_series_render_once_per_name() {
        let mut m = Metrics::default();
        m.gauge_series("corridor_shard_up", "up", "shard=\"0\"", 1);
        m.gauge_series("corridor_shard_up", "up", "shard=\"1\"", 0);
        let s = m.into_string();
        assert_eq!(s.matches("# TYPE corridor_shard_up gauge").count(), 1, "{s}");
        assert!(s.contains("corridor_shard_up{shard=\"1\"} 0"), "{s}");
    }

    #[test]
    fn a_gauge_is_typed_and_unlabelled() {
        let mut m = Metrics::default();
        m.gauge("corridor_relay_links", "gateway links up", 2);
        assert_eq!(
            m.into_string(),
            "# HELP corridor_relay_links gateway links up\n# TYPE corridor_relay_links gauge\ncorridor_relay_links 2\n"
        );
    }
}
