//! The network-facing process gives up what it does not need once its
//! TUN, sockets, rings and steering program exist, the way
//! [`service::sandbox`] does it for every confined process:
//!
//! 1. **its user**: it switches every uid and gid to `[server] user`
//!    (default `corridor`; `nobody`, with a warning, where no `corridor`
//!    user exists) with that user's group as its only group. A process
//!    that leaves uid 0 this way loses its permitted and effective
//!    capabilities; [`drop_to`] checks `/proc/self/status` says so, and that
//!    uid 0 cannot be taken back;
//! 2. **new privileges**: `no_new_privs`, so no exec can raise them again;
//! 3. **system calls**: a seccomp-bpf allowlist ([`policy`]) on every
//!    thread (TSYNC): what the event loops, the shards, the verifier and
//!    relay-link code call, and no more. A call outside it fails with
//!    `EPERM`; a call only an intruder makes — exec, ptrace, mount,
//!    module loading, namespace changes, new io_uring instances, new BPF
//!    programs — kills the process ([`service::sandbox::intruder_calls`]).
//!
//! The private key and the password file are not in this process at all:
//! the keeper holds them ([`crate::keeper`]), under a filter of its own
//! ([`crate::keeper::sandbox`]).

use service::sandbox::{ArgCheck, Policy};
pub use service::sandbox::{Dropped, SandboxError};

/// The setting the user comes from, as errors name it.
const FIELD: &str = "server.user";

/// The user to run as: `user`, or `nobody` when `user` is the default
/// `corridor` and no such user exists (`--check-config` asks it too).
pub fn resolve(user: &str) -> Result<nix::unistd::User, SandboxError> {
    service::sandbox::resolve(FIELD, user)
}

/// Hands the ctl socket (and the directory it is in, when that is not
/// shared: `/run/corridor`) to `user`'s group, mode 0660 / 0750 as the
/// gateway made them: the socket's operators are root and that group, and
/// the worker, once it is `user`, still answers on it. Root only; a
/// gateway not started as root leaves them as they are.
pub fn share_ctl_socket(path: &std::path::Path, user: &str) -> Result<(), SandboxError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let u = resolve(user)?;
    let chown = |p: &std::path::Path| {
        nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(0)), Some(u.gid))
            .map_err(|e| SandboxError(format!("admin.ctl_socket: chown root:{} {}: {e}", u.gid, p.display())))
    };
    chown(path)?;
    if let Some(dir) = path.parent() {
        // Only a directory of corridor's own (the default /run/corridor), never /run or /tmp.
        if dir.file_name().is_some_and(|n| n == "corridor") {
            chown(dir)?;
        }
    }
    Ok(())
}

/// Switches every uid and gid of the process (all threads) to `user`,
/// then sets `no_new_privs`. Started as another user than root, it only
/// sets `no_new_privs` and says so.
pub fn drop_to(user: &str) -> Result<Dropped, SandboxError> {
    service::sandbox::drop_to(FIELD, user)
}

/// The calls the worker makes after start-up, unconditionally allowed.
fn allowed() -> Vec<i64> {
    // Memory, locks, randomness, the clock, ids, signal masks, exit and a
    // handler's return: what every confined process of ours makes.
    let mut v = service::sandbox::runtime_calls();
    v.extend([
        // Threads, time, signals.
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_setaffinity,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_rt_sigaction,
        libc::SYS_getppid,
        libc::SYS_clock_getres,
        libc::SYS_getcpu,
        libc::SYS_tgkill,
        libc::SYS_prctl,
        libc::SYS_uname,
        libc::SYS_getrlimit,
        libc::SYS_prlimit64,
        libc::SYS_wait4,
        // Files already open, and reading (never writing) by name: /proc, DNS.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_lseek,
        libc::SYS_getdents64,
        libc::SYS_readlinkat,
        libc::SYS_eventfd2,
        libc::SYS_pipe2,
        libc::SYS_dup,
        libc::SYS_dup3,
        // Event loops.
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        // The readiness engine's wait to the nanosecond (5.11+).
        libc::SYS_epoll_pwait2,
        libc::SYS_ppoll,
        // Sockets: accept, dial relays, datagrams, options.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_accept4,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_shutdown,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_setsockopt,
        libc::SYS_getsockopt,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        libc::SYS_sendmmsg,
        libc::SYS_recvmmsg,
        // The rings that exist (no new ones: io_uring_setup is fatal).
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ]);
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_arch_prctl,
        libc::SYS_epoll_wait,
        libc::SYS_poll,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_access,
        libc::SYS_readlink,
        libc::SYS_pipe,
        libc::SYS_dup2,
        libc::SYS_getdents,
    ]);
    v
}

/// The worker's filters: [`allowed`] calls, plus these with their
/// arguments checked:
/// * `openat` for reading only (no write, create or truncate flags);
/// * `clone` making a thread (`CLONE_THREAD`), never a process; `clone3`
///   fails with `ENOSYS`, and the C library falls back to `clone`;
/// * `bpf` for `BPF_MAP_UPDATE_ELEM` only (the shards point the TUN
///   steering map at a session's shard);
/// * `ioctl` for `FIONBIO` and `FIONREAD` only.
///
/// Everything else fails with `EPERM`, and the calls of
/// [`service::sandbox::intruder_calls`] kill the process.
pub fn policy() -> Policy {
    Policy::new()
        .allow(allowed())
        .open_read_only()
        .threads()
        .allow_if(libc::SYS_bpf, &[ArgCheck::Is(0, 2 /* BPF_MAP_UPDATE_ELEM */)])
        .allow_if(libc::SYS_ioctl, &[ArgCheck::Is(1, libc::FIONBIO), ArgCheck::Is(1, libc::FIONREAD)])
}

/// Installs the worker's filters ([`policy`]) on every thread of the process.
pub fn confine() -> Result<(), SandboxError> {
    policy().confine()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_machine() {
        for (name, p) in policy().programs().expect("compiles") {
            assert!(!p.is_empty() && p.len() < 4096, "{name}: {} instructions", p.len());
        }
    }

    #[test]
    fn the_worker_may_not_start_programs_or_new_rings() {
        let p = policy();
        for call in [libc::SYS_execve, libc::SYS_io_uring_setup, libc::SYS_setresuid, libc::SYS_ptrace] {
            assert!(p.kills(call) && !p.allows(call), "{call}");
        }
        assert!(p.allows(libc::SYS_io_uring_enter) && p.allows(libc::SYS_socket));
    }
}
