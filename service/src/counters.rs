//! One way to declare a set of counters, so that each counter is named once:
//! its field, its metric name and its help text sit on one line of a
//! [`counters!`](crate::counters!) invocation, and [`Metrics::counter_set`]
//! shows the whole set. The gateway's control plane, its relay links, its
//! shards and the relay all declare theirs this way.
//!
//! [`Metrics::counter_set`]: crate::Metrics::counter_set

/// One counter of a set, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// The struct field that holds it, as logs name it.
    pub field: &'static str,
    /// The metric family's full name, `_total` included.
    pub metric: &'static str,
    /// The labels that tell it from the family's other counters
    /// (`reason="policy"`), or `""` when it is the family's only one.
    pub labels: &'static str,
    /// The family's HELP line.
    pub help: &'static str,
    /// What this counter counts: its doc comment (for a counter alone in its
    /// family, also its help).
    pub doc: &'static str,
}

/// The help of family `metric` among `families` (name, help), or `own`.
/// A `const fn`, so that each [`Counter`] is a constant.
pub const fn family_help(families: &[(&'static str, &'static str)], metric: &str, own: &'static str) -> &'static str {
    let mut rest = families;
    while let Some(((name, help), tail)) = rest.split_first() {
        if str_eq(name, metric) {
            return help;
        }
        rest = tail;
    }
    own
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.split_first(), b.split_first()) {
            (None, None) => return true,
            (Some((x, ta)), Some((y, tb))) if *x == *y => (a, b) = (ta, tb),
            _ => return false,
        }
    }
}

/// A struct declared with [`counters!`](crate::counters!), which
/// [`Metrics`](crate::Metrics) can render whole.
pub trait CounterSet {
    /// Every counter with its current value, in declaration order.
    fn counters(&self) -> impl Iterator<Item = (&'static Counter, u64)>;
}

/// Declares a struct of `pub u64` counters, each named once.
///
/// ```
/// service::counters! {
///     /// What the example counts.
///     #[derive(PartialEq, Eq)]
///     pub struct ExampleCounters {
///         metric_prefix: "corridor_example_",
///         /// requests answered
///         answered,
///         /// requests refused: the queue was full
///         refused => "corridor_example_refusals_total",
///     }
/// }
///
/// let c = ExampleCounters { answered: 2, ..Default::default() };
/// assert_eq!(ExampleCounters::COUNTERS[0].metric, "corridor_example_answered_total");
/// assert_eq!(ExampleCounters::COUNTERS[1].help, "requests refused: the queue was full");
/// assert_eq!(c.merged(&c).answered, 4);
/// ```
///
/// * Each counter's doc comment is its Prometheus help text (its lines
///   joined, trimmed), so the reader of the code and the reader of
///   `/metrics` see the same words.
/// * Its metric is `metric_prefix` + field + `_total`, unless `=> "name"`
///   names it outright. `=> "family" { label: "value" }` makes it one
///   sample of a labelled family (`corridor_shard_drops_total{reason="policy"}`):
///   one family per concept, as Prometheus wants, the label telling its
///   counters apart.
/// * `families: { "family": "help", ... },` after the prefix gives such a
///   family its help text (a counter's own doc then says what its label
///   value means, for [`Counter::doc`]).
/// * An optional `shared_help: "text",` after the prefix gives every
///   counter of the set that one help text instead.
///
/// The struct derives `Default, Clone, Copy, Debug` (add more with
/// attributes) and gets `COUNT`, `COUNTERS` (field, metric, help),
/// `values`/`from_values` (the plain array a published snapshot stores),
/// field-wise `merged`, and [`CounterSet`].
#[macro_export]
macro_rules! counters {
    (
        $(#[$attr:meta])*
        $vis:vis struct $set:ident {
            metric_prefix: $prefix:literal,
            $(shared_help: $shared_help:literal,)?
            $(families: { $($family:literal: $family_help:literal),+ $(,)? },)?
            $(
                $(#[doc = $doc:literal])+
                $field:ident $(=> $metric:literal $({ $($label:ident: $value:literal),+ })?)?,
            )+
        }
    ) => {
        $(#[$attr])*
        #[derive(Default, Clone, Copy, Debug)]
        $vis struct $set {
            $( $(#[doc = $doc])+ pub $field: u64, )+
        }

        impl $set {
            const SHARED_HELP: Option<&'static str> = $crate::counters!(@shared_help $($shared_help)?);
            const FAMILIES: &'static [(&'static str, &'static str)] = &[$($(($family, $family_help)),+)?];

            /// How many counters the set holds.
            pub const COUNT: usize = [$(stringify!($field)),+].len();

            /// Every counter's field, metric name and help text, in
            /// declaration order.
            pub const COUNTERS: &'static [$crate::counters::Counter; Self::COUNT] = &[$(
                $crate::counters::Counter {
                    field: stringify!($field),
                    metric: $crate::counters!(@metric $prefix, $field $(, $metric)?),
                    labels: $crate::counters!(@labels $($($($label $value)+)?)?),
                    help: match Self::SHARED_HELP {
                        Some(help) => help,
                        None => $crate::counters::family_help(
                            Self::FAMILIES,
                            $crate::counters!(@metric $prefix, $field $(, $metric)?),
                            concat!($($doc),+).trim_ascii(),
                        ),
                    },
                    doc: concat!($($doc),+).trim_ascii(),
                },
            )+];

            /// The values in declaration order.
            pub fn values(&self) -> [u64; Self::COUNT] {
                [$(self.$field),+]
            }

            /// The inverse of [`values`](Self::values).
            pub fn from_values(values: [u64; Self::COUNT]) -> Self {
                let [$($field),+] = values;
                Self { $($field),+ }
            }

            /// Field-wise sum, for a total over several sets.
            pub fn merged(&self, other: &Self) -> Self {
                Self { $($field: self.$field.saturating_add(other.$field)),+ }
            }
        }

        impl $crate::counters::CounterSet for $set {
            fn counters(&self) -> impl Iterator<Item = (&'static $crate::counters::Counter, u64)> {
                Self::COUNTERS.iter().zip(self.values())
            }
        }
    };
    (@metric $prefix:literal, $field:ident) => { concat!($prefix, stringify!($field), "_total") };
    (@metric $prefix:literal, $field:ident, $metric:literal) => { $metric };
    (@labels) => { "" };
    (@labels $label:ident $value:literal $($more:ident $more_value:literal)*) => {
        concat!(stringify!($label), "=\"", $value, "\"" $(, ",", stringify!($more), "=\"", $more_value, "\"")*)
    };
    (@shared_help) => { None };
    (@shared_help $shared_help:literal) => { Some($shared_help) };
}

// The macro makes its sets public API, as the crates that declare them
// need; here they are fixtures in a private module, and not every method is
// exercised on both.
#[cfg(test)]
#[allow(unreachable_pub, dead_code)]
mod tests {
    use super::CounterSet;
    use crate::Metrics;

    crate::counters! {
        /// A set shaped like the real ones: a prefix, a field whose metric
        /// is named outright, a help text over two lines, a labelled family.
        #[derive(PartialEq, Eq)]
        pub struct TestCounters {
            metric_prefix: "corridor_test_",
            families: { "corridor_test_drops_total": "packets dropped, by reason" },
            /// packets received
            rx_packets,
            /// logins that succeeded
            logins_ok => "corridor_logins_total",
            /// packets dropped because the queue
            /// was full
            drop_queue_full => "corridor_test_drops_total" { reason: "queue_full" },
            /// logins by certificate refused
            certificate_refused => "corridor_test_logins_total" { method: "certificate", outcome: "refused" },
        }
    }

    crate::counters! {
        /// A set whose counters share one help text.
        pub struct SharedHelpCounters {
            metric_prefix: "corridor_shared_",
            shared_help: "one text for all",
            /// what the code reader sees
            first,
            /// and more of it
            second,
        }
    }

    #[test]
    fn names_and_help_come_from_the_declaration() {
        let names: Vec<_> = TestCounters::COUNTERS.iter().map(|c| (c.field, c.metric, c.labels, c.help)).collect();
        assert_eq!(
            names,
            [
                ("rx_packets", "corridor_test_rx_packets_total", "", "packets received"),
                ("logins_ok", "corridor_logins_total", "", "logins that succeeded"),
                ("drop_queue_full", "corridor_test_drops_total", "reason=\"queue_full\"", "packets dropped, by reason"),
                (
                    "certificate_refused",
                    "corridor_test_logins_total",
                    "method=\"certificate\",outcome=\"refused\"",
                    "logins by certificate refused"
                ),
            ]
        );
        assert_eq!(TestCounters::COUNTERS[2].doc, "packets dropped because the queue was full");
        assert_eq!(TestCounters::COUNTERS[3].labels, "method=\"certificate\",outcome=\"refused\"");
        assert_eq!(TestCounters::COUNT, 4);
        let shared: Vec<_> = SharedHelpCounters::COUNTERS.iter().map(|c| (c.metric, c.help)).collect();
        assert_eq!(
            shared,
            [("corridor_shared_first_total", "one text for all"), ("corridor_shared_second_total", "one text for all")]
        );
    }

    #[test]
    fn values_round_trip_and_merge_field_by_field() {
        let c = TestCounters { rx_packets: 1, logins_ok: 2, drop_queue_full: 3, certificate_refused: 4 };
        assert_eq!(c.values(), [1, 2, 3, 4]);
        assert_eq!(TestCounters::from_values(c.values()), c);
        assert_eq!(
            c.merged(&c),
            TestCounters { rx_packets: 2, logins_ok: 4, drop_queue_full: 6, certificate_refused: 8 }
        );
        let full = TestCounters { rx_packets: u64::MAX, ..c };
        assert_eq!(full.merged(&c).rx_packets, u64::MAX, "a total saturates rather than wraps");
        let seen: Vec<_> = c.counters().map(|(counter, v)| (counter.field, v)).collect();
        assert_eq!(seen, [("rx_packets", 1), ("logins_ok", 2), ("drop_queue_full", 3), ("certificate_refused", 4)]);
    }

    #[test]
    fn a_set_renders_help_and_type_once_per_family_and_one_sample_per_field_and_label() {
        let mut m = Metrics::default();
        m.counter_set(&TestCounters { rx_packets: 5, ..Default::default() }, "shard=\"0\"");
        m.counter_set(&TestCounters { logins_ok: 7, drop_queue_full: 2, ..Default::default() }, "shard=\"1\"");
        m.counter_set(&SharedHelpCounters::default(), "");
        let page = m.into_string();
        for c in TestCounters::COUNTERS.iter().chain(SharedHelpCounters::COUNTERS) {
            assert_eq!(page.matches(&format!("# HELP {} {}\n", c.metric, c.help)).count(), 1, "{page}");
            assert_eq!(page.matches(&format!("# TYPE {} counter\n", c.metric)).count(), 1, "{page}");
        }
        for c in TestCounters::COUNTERS {
            let samples = page.lines().filter(|l| l.starts_with(&format!("{}{{", c.metric))).count();
            assert_eq!(samples, 2, "one sample per set rendered: {page}");
        }
        assert!(page.contains("corridor_test_rx_packets_total{shard=\"0\"} 5\n"), "{page}");
        assert!(page.contains("corridor_logins_total{shard=\"1\"} 7\n"), "{page}");
        assert!(page.contains("corridor_test_drops_total{shard=\"1\",reason=\"queue_full\"} 2\n"), "{page}");
        assert!(page.contains("corridor_shared_second_total 0\n"), "unlabelled: {page}");
        assert!(
            page.contains("corridor_test_logins_total{shard=\"0\",method=\"certificate\",outcome=\"refused\"} 0\n"),
            "{page}"
        );
        assert_eq!(page.lines().filter(|l| !l.starts_with('#')).count(), 2 * 4 + 2, "{page}");
    }
}
