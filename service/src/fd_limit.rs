//! The open-file limit both servers raise at start: every connection,
//! stream and flow port is a file descriptor, and the default soft limit
//! (1024) is far below what their connection limits allow.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft RLIMIT_NOFILE to the hard one and returns the limit now
/// in force (`None`: it could not be read). The caller compares it with
/// what its limits need and warns naming its own fields.
pub fn raise_open_file_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let limit = super::raise_open_file_limit().expect("getrlimit");
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).expect("getrlimit");
        assert_eq!((limit, soft), (hard, hard));
    }
}
