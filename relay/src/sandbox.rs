//! The relay gives up what it does not need once it is set up: its
//! listeners (devices' TLS and DTLS on 443, gateways on 3101, admin) are
//! bound, its link certificate and key loaded, its open-file limit raised.
//! From then on it only accepts, reads, writes and opens unprivileged UDP
//! ports for flows, so [`confine`]:
//!
//! 1. switches every uid and gid to `[relay] user` (default `corridor`;
//!    `nobody`, with a warning, where no `corridor` user exists; never
//!    uid 0), which empties its capability sets, and sets `no_new_privs`
//!    ([`service::sandbox::drop_to`]);
//! 2. installs [`policy`], a seccomp allowlist fitted to the relay's
//!    driver, on every thread.
//!
//! The relay rereads no file after start (it has no reload; a restart
//! rereads its configuration, as root again), so a dropped relay need not
//! reach its root-only link key or tokens, and cannot.

use service::sandbox::{ArgCheck, Dropped, Policy, SandboxError};

/// The calls the relay's loop makes, whatever their arguments. Found
/// with `strace -f` over the relay's end-to-end tests (tests/relay.rs,
/// tests/privsep.rs): every call after the last filter went on, plus what
/// the process's end and a signal's return need.
fn allowed() -> Vec<i64> {
    let mut v = service::sandbox::runtime_calls();
    v.extend([
        // (SIGTERM's handler sets the stop flag; its return and the
        // resumed call are in the runtime set.) Descriptors it holds: sockets, the event loop, the log.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_fstat,
        // aws-lc's first random draw (a link's TLS handshake) asks whether
        // /dev/sysgenid exists (VM snapshot detection): a name's metadata,
        // never its contents.
        libc::SYS_newfstatat,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        // Devices, gateways and flows: accept, one UDP port per flow,
        // datagrams in batches (GSO, GRO), options, shutdowns; the
        // service manager's connected socket.
        libc::SYS_accept4,
        libc::SYS_bind,
        libc::SYS_shutdown,
        libc::SYS_getsockname,
        libc::SYS_setsockopt,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        libc::SYS_recvmmsg,
    ]);
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_epoll_wait]);
    v
}

/// Calls the relay never makes: BPF, io_uring, new event loops.
fn fatal() -> Vec<i64> {
    vec![libc::SYS_bpf, libc::SYS_io_uring_enter, libc::SYS_io_uring_register]
}

/// [`allowed`], plus these with their arguments checked:
/// * `socket` for IPv4 and IPv6 only (a flow's UDP port; no unix,
///   netlink or packet sockets);
/// * `ioctl` for `FIONBIO` only (the admin listener's connections);
/// * `tgkill` to its own threads only (`abort` signals itself with it).
///
/// No `openat` (it reads no file once it serves) and no `clone` (it has
/// one thread). Everything else fails with `EPERM`; the calls of
/// [`service::sandbox::intruder_calls`] and [`fatal`] kill the process.
pub fn policy() -> Policy {
    let inet = [ArgCheck::IsInt(0, libc::AF_INET as u32), ArgCheck::IsInt(0, libc::AF_INET6 as u32)];
    Policy::new()
        .allow(allowed())
        .allow_if(libc::SYS_socket, &inet)
        .allow_if(libc::SYS_ioctl, &[ArgCheck::Is(1, libc::FIONBIO)])
        .signal_itself()
        .kill(fatal())
}

/// Drops to `user` (`[relay] user`) and installs [`policy`] on every
/// thread. Call it once the relay has started ([`crate::Relay::start`]).
pub fn confine(user: &str) -> Result<Dropped, SandboxError> {
    let dropped = service::sandbox::drop_to("relay.user", user)?;
    policy().confine()?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relays_filters_compile_and_keep_it_to_its_sockets() {
        let p = policy();
        for (name, program) in p.programs().expect("compiles") {
            assert!(!program.is_empty() && program.len() < 4096, "{name}: {} instructions", program.len());
        }
        for call in [libc::SYS_execve, libc::SYS_setresuid, libc::SYS_bpf, libc::SYS_io_uring_setup] {
            assert!(p.kills(call), "{call}");
        }
        assert!(!p.allows(libc::SYS_openat) && !p.allows(libc::SYS_clone) && p.allows(libc::SYS_accept4));
    }
}
