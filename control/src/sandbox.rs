//! The network-facing process gives up what it does not need once its
//! TUN, sockets, rings and steering program exist:
//!
//! 1. **its user**: it switches every uid and gid to `[server] user`
//!    (default `corridor`; `nobody`, with a warning, where no `corridor`
//!    user exists) with that user's group as its only group. A process
//!    that leaves uid 0 this way loses its permitted and effective
//!    capabilities; [`drop_to`] checks `/proc/self/status` says so, and that
//!    uid 0 cannot be taken back;
//! 2. **new privileges**: `no_new_privs`, so no exec can raise them again;
//! 3. **system calls**: a seccomp-bpf allowlist ([`allowed`]) on every
//!    thread (TSYNC): what the event loops, the shards, the verifier and
//!    relay-link code call, and no more. A call outside it fails with
//!    `EPERM`; a call only an intruder makes — exec, ptrace, mount,
//!    module loading, namespace changes, new io_uring instances, new BPF
//!    programs — kills the process ([`fatal`]).
//!
//! The private key and the password file are not in this process at all:
//! the keeper holds them ([`crate::keeper`]).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Where privileges were dropped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Why the process could not be confined; start-up stops on it.
#[derive(Debug)]
pub struct SandboxError(pub String);

impl core::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SandboxError {}

/// The user to run as: `user`, or `nobody` when `user` is the default
/// `corridor` and no such user exists (`--check-config` asks it too).
pub fn resolve(user: &str) -> Result<nix::unistd::User, SandboxError> {
    let lookup = |name: &str| {
        nix::unistd::User::from_name(name).map_err(|e| SandboxError(format!("server.user: looking up `{name}`: {e}")))
    };
    if let Some(u) = lookup(user)? {
        return Ok(u);
    }
    if user == "corridor" {
        if let Some(u) = lookup("nobody")? {
            // Said once, however often start-up asks (the ctl socket's owner, the drop).
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "server.user: no user `corridor`; running as `nobody`, which other services may share \
                     (create one: adduser --system --group --no-create-home corridor)"
                );
            }
            return Ok(u);
        }
    }
    Err(SandboxError(format!(
        "server.user: no user `{user}` on this system; create it (adduser --system --group --no-create-home {user}) \
         or name another"
    )))
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
    use nix::unistd::{getresgid, getresuid, setgroups, setresgid, setresuid, Gid, Uid};
    let fail = |what: &str, e: nix::Error| SandboxError(format!("{what}: {e}"));
    let dropped = if Uid::effective().is_root() {
        let u = resolve(user)?;
        if u.uid.is_root() {
            return Err(SandboxError(format!("server.user: `{}` is uid 0; name an unprivileged user", u.name)));
        }
        // Groups first: once the uid is gone, so is the right to change them.
        setgroups(&[u.gid]).map_err(|e| fail("setgroups", e))?;
        setresgid(u.gid, u.gid, u.gid).map_err(|e| fail("setresgid", e))?;
        setresuid(u.uid, u.uid, u.uid).map_err(|e| fail("setresuid", e))?;
        let id = getresuid().map_err(|e| fail("getresuid", e))?;
        let g = getresgid().map_err(|e| fail("getresgid", e))?;
        if [id.real, id.effective, id.saved] != [u.uid; 3] || [g.real, g.effective, g.saved] != [u.gid; 3] {
            return Err(SandboxError("the uid or gid switch did not take on every id".into()));
        }
        if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
            return Err(SandboxError("uid 0 could be taken back after dropping it".into()));
        }
        Dropped { user: u.name, uid: u.uid.as_raw(), gid: u.gid.as_raw() }
    } else {
        let uid = Uid::effective().as_raw();
        tracing::warn!(uid, "not started as root: running as uid {uid}, no user to drop to");
        Dropped { user: format!("uid {uid}"), uid, gid: Gid::effective().as_raw() }
    };
    check_no_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| fail("PR_SET_NO_NEW_PRIVS", e))?;
    Ok(dropped)
}

/// Checks the permitted and effective capability sets are empty.
fn check_no_capabilities() -> Result<(), SandboxError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| SandboxError(format!("reading /proc/self/status: {e}")))?;
    for field in ["CapPrm:", "CapEff:"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .map(str::trim)
            .ok_or_else(|| SandboxError(format!("/proc/self/status has no {field}")))?;
        if u64::from_str_radix(value, 16) != Ok(0) {
            return Err(SandboxError(format!("{field} {value} after dropping privileges; it must be 0")));
        }
    }
    Ok(())
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(|e| SandboxError(format!("seccomp: {e}")))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| SandboxError(format!("seccomp: {e}")))
}

fn arch() -> Result<TargetArch, SandboxError> {
    std::env::consts::ARCH.try_into().map_err(|e| SandboxError(format!("seccomp on {}: {e:?}", std::env::consts::ARCH)))
}

/// The calls the worker makes after start-up, unconditionally allowed.
fn allowed() -> Vec<i64> {
    let mut v = vec![
        // Memory (the allocator, thread stacks).
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        // Threads, locks, time, signals, exit.
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_setaffinity,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_getrandom,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        // A call a signal interrupted resumes through this one.
        libc::SYS_restart_syscall,
        libc::SYS_getppid,
        libc::SYS_clock_getres,
        libc::SYS_getcpu,
        libc::SYS_sigaltstack,
        libc::SYS_tgkill,
        libc::SYS_exit,
        libc::SYS_exit_group,
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
        // Further filters: the next two of [`confine`] go on after this one
        // (a filter can only narrow what a thread may do, never widen it).
        libc::SYS_seccomp,
    ];
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

/// Calls only an intruder makes: the process dies at the first one.
fn fatal() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setgroups,
        libc::SYS_capset,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_fork, libc::SYS_vfork]);
    v
}

/// The allowlist filter: [`allowed`] calls, plus these with their
/// arguments checked:
/// * `openat` for reading only (no write, create or truncate flags);
/// * `clone` making a thread (`CLONE_THREAD`), never a process; `clone3`,
///   whose flags sit behind a pointer seccomp cannot read, fails with
///   `ENOSYS`, and the C library falls back to `clone`;
/// * `bpf` for `BPF_MAP_UPDATE_ELEM` only (the shards point the TUN
///   steering map at a session's shard);
/// * `ioctl` for `FIONBIO` and `FIONREAD` only.
fn allowlist() -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = allowed().into_iter().map(|s| (s, vec![])).collect();
    let write_flags = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
    rules.insert(libc::SYS_openat, vec![rule(vec![cond(2, SeccompCmpOp::MaskedEq(write_flags), 0)?])?]);
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(libc::SYS_clone, vec![rule(vec![cond(0, SeccompCmpOp::MaskedEq(thread), thread)?])?]);
    rules.insert(libc::SYS_bpf, vec![rule(vec![cond(0, SeccompCmpOp::Eq, 2 /* BPF_MAP_UPDATE_ELEM */)?])?]);
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::FIONBIO)?])?,
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::FIONREAD)?])?,
        ],
    );
    let filter = SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, arch()?)
        .map_err(|e| SandboxError(format!("seccomp: {e}")))?;
    filter.try_into().map_err(|e| SandboxError(format!("seccomp: {e}")))
}

/// `clone3` answers `ENOSYS` (see [`allowlist`]).
fn clone3_filter() -> Result<BpfProgram, SandboxError> {
    let rules = BTreeMap::from([(libc::SYS_clone3, vec![])]);
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch()?)
        .map_err(|e| SandboxError(format!("seccomp: {e}")))?;
    filter.try_into().map_err(|e| SandboxError(format!("seccomp: {e}")))
}

/// The kill filter over [`fatal`].
fn killlist() -> Result<BpfProgram, SandboxError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = fatal().into_iter().map(|s| (s, vec![])).collect();
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::KillProcess, arch()?)
        .map_err(|e| SandboxError(format!("seccomp: {e}")))?;
    filter.try_into().map_err(|e| SandboxError(format!("seccomp: {e}")))
}

/// Installs the filters on every thread of the process. The kernel runs
/// all of a thread's filters and takes the strictest verdict, so the kill
/// list wins over the allowlist and `ENOSYS` for `clone3` over `EPERM`.
pub fn confine() -> Result<(), SandboxError> {
    for (name, program) in [("allowlist", allowlist()?), ("clone3", clone3_filter()?), ("kill list", killlist()?)] {
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| SandboxError(format!("installing the seccomp {name}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_machine() {
        for p in [allowlist(), clone3_filter(), killlist()] {
            let p = p.expect("compiles");
            assert!(!p.is_empty() && p.len() < 4096, "{} instructions", p.len());
        }
    }

    #[test]
    fn nothing_is_both_allowed_and_fatal() {
        let allowed = allowed();
        for f in fatal() {
            assert!(!allowed.contains(&f), "syscall {f} is in both lists");
        }
    }
}
