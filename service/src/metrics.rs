//! Counters, gauges and histograms in the Prometheus text exposition
//! format, as the admin endpoint's `GET /metrics` serves them.
//!
//! The format wants each family's HELP and TYPE once, followed by all of
//! its samples together; callers add samples in whatever order their data
//! comes (a shard at a time, say), so the page keeps one body per family,
//! in the order families first appeared, and joins them at the end. This
//! small builder rather than the `prometheus-client` crate: the counters
//! are already plain snapshots (a registry of atomics would be a second
//! copy of each), and the page is written once per scrape.

use std::fmt::Write as _;

use crate::counters::CounterSet;

/// One metric family: its header and every sample so far.
#[derive(Debug)]
struct Family {
    name: String,
    samples: String,
}

/// A Prometheus text page being written.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Vec<Family>,
}

impl Metrics {
    /// Writes into the body of family `name`, opened with its HELP and
    /// TYPE lines the first time it is named.
    fn family(&mut self, name: &str, help: &str, kind: &str, write: impl FnOnce(&mut String)) {
        if !self.families.iter().any(|f| f.name == name) {
            let mut samples = String::new();
            let _ = writeln!(samples, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(samples, "# TYPE {name} {kind}");
            self.families.push(Family { name: name.to_owned(), samples });
        }
        if let Some(f) = self.families.iter_mut().find(|f| f.name == name) {
            write(&mut f.samples);
        }
    }

    /// One counter sample of family `name` (which ends in `_total`), with
    /// `labels` (`""` for none).
    pub fn counter(&mut self, name: &str, help: &str, labels: &str, value: u64) {
        self.family(name, help, "counter", |body| sample(body, name, labels, value));
    }

    /// Every counter of a set declared with [`counters!`](crate::counters!),
    /// each with `labels` (`""` for none) before its own (a `reason`, an
    /// `outcome`). Rendering one set per shard with its own label gives each
    /// family one HELP and TYPE and its samples of every shard together.
    pub fn counter_set(&mut self, set: &impl CounterSet, labels: &str) {
        for (counter, value) in set.counters() {
            let labels = join_labels(labels, counter.labels);
            self.counter(counter.metric, counter.help, &labels, value);
        }
    }

    /// A histogram series: `cumulative` holds (upper bound in seconds, or
    /// `None` for +Inf, count at or under it), ending with +Inf.
    pub fn histogram(&mut self, name: &str, help: &str, labels: &str, cumulative: &[(Option<f64>, u64)], sum: f64) {
        self.family(name, help, "histogram", |body| {
            let sep = if labels.is_empty() { "" } else { "," };
            for (le, n) in cumulative {
                let le = le.map_or("+Inf".to_owned(), |s| format!("{s:e}"));
                let _ = writeln!(body, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
            }
            let count = cumulative.last().map_or(0, |(_, n)| *n);
            sample(body, &format!("{name}_sum"), labels, sum);
            sample(body, &format!("{name}_count"), labels, count);
        });
    }

    /// One gauge, with no labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.gauge_series(name, help, "", value);
    }

    /// One gauge sample of family `name` with `labels`.
    pub fn gauge_series(&mut self, name: &str, help: &str, labels: &str, value: impl core::fmt::Display) {
        self.family(name, help, "gauge", |body| sample(body, name, labels, value));
    }

    /// `name` (`corridor_build_info`, `corridor_relay_build_info`) = 1,
    /// labelled with the version (the workspace's, which every crate
    /// shares) and whether aws-lc runs in FIPS mode: the usual way to put
    /// what is running on a dashboard.
    pub fn build_info(&mut self, name: &str, fips: bool) {
        let labels = format!("version=\"{}\",fips=\"{fips}\"", label_value(env!("CARGO_PKG_VERSION")));
        self.gauge_series(name, "1, labelled with the running build's version and FIPS mode", &labels, 1);
    }

    /// The page: each family's header and then all of its samples.
    pub fn into_string(self) -> String {
        self.families.into_iter().map(|f| f.samples).collect()
    }
}

/// `a` and `b` (each `k="v",...` or empty) as one label list.
fn join_labels(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_owned(),
        (true, false) => b.to_owned(),
        (false, false) => format!("{a},{b}"),
    }
}

fn sample(body: &mut String, name: &str, labels: &str, value: impl core::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(body, "{name} {value}");
    } else {
        let _ = writeln!(body, "{name}{{{labels}}} {value}");
    }
}

/// HELP text escapes backslashes and line feeds (and nothing else).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value as the format writes it between its quotes.
pub fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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

    /// Regression: shard 1's samples of a family came after shard 0's next
    /// family's TYPE line, which the exposition format forbids.
    #[test]
    fn a_familys_samples_stay_together_whatever_order_they_come_in() {
        let mut m = Metrics::default();
        m.counter("corridor_a_total", "a", "shard=\"0\"", 1);
        m.counter("corridor_b_total", "b", "shard=\"0\"", 2);
        m.counter("corridor_a_total", "a", "shard=\"1\"", 3);
        m.gauge_series("corridor_c", "c\\d\ne", "", 4);
        assert_eq!(
            m.into_string(),
            "# HELP corridor_a_total a\n# TYPE corridor_a_total counter\ncorridor_a_total{shard=\"0\"} 1\n\
             corridor_a_total{shard=\"1\"} 3\n# HELP corridor_b_total b\n# TYPE corridor_b_total counter\n\
             corridor_b_total{shard=\"0\"} 2\n# HELP corridor_c c\\\\d\\ne\n# TYPE corridor_c gauge\ncorridor_c 4\n"
        );
        assert_eq!(label_value("a\"b\\"), "a\\\"b\\\\");
    }

    #[test]
    fn build_info_is_one_labelled_gauge() {
        let mut m = Metrics::default();
        m.build_info("corridor_build_info", false);
        let page = m.into_string();
        let sample = format!("corridor_build_info{{version=\"{}\",fips=\"false\"}} 1\n", env!("CARGO_PKG_VERSION"));
        assert!(page.ends_with(&sample), "{page}");
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
