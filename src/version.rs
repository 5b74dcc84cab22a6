//! `corridor --version`: the version, then a line saying whether aws-lc
//! runs in FIPS mode (`fips: true` only from a `--features fips` build: the
//! probe scripts/package.sh runs before it packages a binary), and in a
//! null-aead build (scripts/gateway-cost.sh's null forwarder) a line
//! saying so, which scripts/package.sh refuses. `-V` prints the version
//! alone.

/// The long version text.
pub(crate) fn long() -> &'static str {
    match (service::fips::enabled(), dtls::crypto::NULL_AEAD) {
        (true, false) => concat!(env!("CARGO_PKG_VERSION"), "\nfips: true"),
        (false, false) => concat!(env!("CARGO_PKG_VERSION"), "\nfips: false"),
        (true, true) => {
            concat!(env!("CARGO_PKG_VERSION"), "\nfips: true\nnull-aead: true (DTLS records NOT encrypted)")
        }
        (false, true) => {
            concat!(env!("CARGO_PKG_VERSION"), "\nfips: false\nnull-aead: true (DTLS records NOT encrypted)")
        }
    }
}
