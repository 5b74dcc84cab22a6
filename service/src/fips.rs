//! Whether this process runs in FIPS mode: built with `--features fips`
//! (aws-lc-rs on the AWS-LC FIPS module, `aws-lc-fips-sys`) and the
//! module's power-on self-tests passed. A plain build always says no.
//!
//! The one question every server, `corridor --version` and the TLS
//! providers ask; rustls asks the same of aws-lc-rs for each suite, group
//! and signature algorithm (`CryptoProvider::fips`).

/// Whether aws-lc runs in FIPS mode.
pub fn enabled() -> bool {
    aws_lc_rs::try_fips_mode().is_ok()
}
