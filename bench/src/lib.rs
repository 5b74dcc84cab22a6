//! `corridor bench`: three tools that measure corridor.
//!
//! * [`load`]: the load generator (`corridor bench run`, `bench reflect`):
//!   many simulated devices through the real protocol, HDR histograms, JSON.
//! * [`compare`]: `corridor bench compare OLD NEW`, ratios and regressions.
//! * This module's [`Scenario`]s: the fast path with fixed inputs, for the
//!   deterministic instruction counts of the CI gate (`corridor-icount`).
//!
//! Each [`Scenario`] builds its inputs (keys, packets, frames) and then runs
//! the measured part inside [`measured`], the one function the callgrind
//! gate (`scripts/icount.sh`) counts with `--toggle-collect`: set-up, the
//! allocator's first touches and process start-up stay outside the count.
//! After the measured part each scenario checks that it did what its name
//! says (every record opened, every packet admitted), so a broken scenario
//! fails loudly instead of reporting a cheap, wrong count.
//!
//! The scenarios read no clock for their result and do no I/O; the keys are
//! fixed. The DTLS handshake draws randoms from the system RNG, which moves
//! its count by a few instructions at most (see the baseline's tolerance).

#![forbid(unsafe_code)]

use std::hint::black_box;

mod classify;
pub mod compare;
mod deframe;
pub mod flood;
mod handshake;
pub mod load;
mod offload;
mod record;
mod shard_batch;

/// One named, fixed workload. Names are stable: the baseline is keyed by them.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    /// What the measured part does, for `--list`.
    pub about: &'static str,
    run: fn() -> u64,
}

impl Scenario {
    /// Runs the scenario once and returns a checksum of what it produced.
    ///
    /// # Panics
    ///
    /// When the workload did not do what the scenario says (a record failed
    /// to open, a packet was dropped): the count would then measure
    /// something else.
    pub fn run(&self) -> u64 {
        (self.run)()
    }
}

/// Every scenario, in the order the gate reports them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "record-seal-open-1400",
        about: "1000 x seal + open of a 1400-byte record, RecordProtection, AES-256-GCM",
        run: record::seal_open_1400,
    },
    Scenario {
        name: "record-seal-open-64",
        about: "1000 x seal + open of a 64-byte record, RecordProtection, AES-256-GCM",
        run: record::seal_open_64,
    },
    Scenario {
        name: "classify-ipv4-1000",
        about: "1000 IPv4 packets through Policy::admit: header check, source check, 4 allowed networks",
        run: classify::ipv4_1000,
    },
    Scenario {
        name: "cstp-deframe-1000",
        about: "1000 CSTP frames (mixed sizes) pushed in 16 KiB reads through the Deframer",
        run: deframe::cstp_1000,
    },
    Scenario {
        name: "handshake-psk",
        about: "one in-memory DTLS 1.2 PSK handshake, client and server, cookies on, AES-256-GCM",
        run: handshake::psk,
    },
    Scenario {
        name: "shard-batch-64",
        about: "64 device datagrams through the shard's per-record step (open, type byte, admit, TUN write decision)",
        run: shard_batch::batch_64,
    },
    Scenario {
        name: "tso-segment-seal-48",
        about: "one 48 x 1360 B TSO super-packet: segmented (headers, checksums) and each segment sealed, AES-256-GCM",
        run: offload::tso_segment_seal_48,
    },
    Scenario {
        name: "tcp-coalesce-48",
        about: "48 consecutive 1360 B device TCP segments coalesced into one TUN super-packet (checksums checked)",
        run: offload::tcp_coalesce_48,
    },
    Scenario {
        name: "udp-coalesce-48",
        about:
            "48 consecutive 1360 B device UDP datagrams coalesced into one TUN UDP_L4 super-packet (checksums checked)",
        run: offload::udp_coalesce_48,
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Runs `work`: the only code the instruction-count gate counts.
///
/// Never inlined, so that callgrind's `--toggle-collect=bench::measured*`
/// finds it; the result goes through [`black_box`] so the work is not
/// optimised away.
#[inline(never)]
pub fn measured<R>(work: impl FnOnce() -> R) -> R {
    black_box(work())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_runs_and_passes_its_own_checks() {
        for s in SCENARIOS {
            assert!(s.run() > 0, "{} produced nothing", s.name);
        }
    }

    #[test]
    fn scenario_names_are_unique_and_found() {
        for s in SCENARIOS {
            assert_eq!(find(s.name).map(|f| f.about), Some(s.about));
        }
        assert!(find("no-such-scenario").is_none());
    }
}
