//! Giving up what a server does not need once it is set up, the one way
//! corridor's confined processes do it: the gateway's network-facing
//! worker, its keeper, and the relay (docs/security.md, "Process model").
//!
//! 1. **its user** ([`drop_to`]): every uid and gid switched to an
//!    unprivileged user (default `corridor`; `nobody`, with a warning, where
//!    no `corridor` user exists; never uid 0), that user's group the only
//!    group. Leaving uid 0 this way empties the permitted and effective
//!    capability sets; [`drop_to`] checks `/proc/self/status` says so and
//!    that uid 0 cannot be taken back, then sets `no_new_privs`;
//! 2. **system calls** ([`Policy`]): a seccomp-bpf allowlist on every thread
//!    (TSYNC), with arguments checked where it matters. A call outside it
//!    fails with `EPERM`; a call only an intruder makes kills the process.
//!
//! Each process writes its own [`Policy`] (`control::sandbox` the worker's,
//! `control::keeper::sandbox` the keeper's, `relay::sandbox` the relay's);
//! how a policy becomes filters, and the kill list they all start from, is
//! here.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::ConfigError;

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

/// The user a server drops to when its configuration names none.
pub const DEFAULT_USER: &str = "corridor";

/// Checks a configured user name (`field`, of `server`: "gateway", "relay")
/// before anything looks it up: a plausible system user name, never root.
pub fn check_user(field: &str, server: &str, user: &str) -> Result<(), ConfigError> {
    let plausible = !user.is_empty() && user.len() <= 64 && user.chars().all(|c| c.is_ascii_graphic() && c != ':');
    if user == "root" || !plausible {
        return Err(ConfigError::new(
            field,
            format!("`{user}` cannot be the {server}'s unprivileged user"),
            "name a system user that is not root, e.g. \"corridor\" (`adduser --system corridor`)",
        ));
    }
    Ok(())
}

/// The user to run as: `user`, or `nobody` when `user` is the default
/// `corridor` and no such user exists (`--check-config` asks it too).
/// `field` names the setting in errors (`server.user`, `relay.user`).
pub fn resolve(field: &str, user: &str) -> Result<nix::unistd::User, SandboxError> {
    let lookup = |name: &str| {
        nix::unistd::User::from_name(name).map_err(|e| SandboxError(format!("{field}: looking up `{name}`: {e}")))
    };
    if let Some(u) = lookup(user)? {
        return Ok(u);
    }
    if user == DEFAULT_USER {
        if let Some(u) = lookup("nobody")? {
            // Said once, however often start-up asks (the ctl socket's owner, the drop).
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "{field}: no user `corridor`; running as `nobody`, which other services may share \
                     (create one: adduser --system --group --no-create-home corridor)"
                );
            }
            return Ok(u);
        }
    }
    Err(SandboxError(format!(
        "{field}: no user `{user}` on this system; create it (adduser --system --group --no-create-home {user}) \
         or name another"
    )))
}

/// Switches every uid and gid of the process (all threads) to `user`
/// (resolved as [`resolve`] does, `field` naming the setting), then sets
/// `no_new_privs`. Started as another user than root, it only sets
/// `no_new_privs` and says so.
pub fn drop_to(field: &str, user: &str) -> Result<Dropped, SandboxError> {
    use nix::unistd::{getresgid, getresuid, setgroups, setresgid, setresuid, Gid, Uid};
    let fail = |what: &str, e: nix::Error| SandboxError(format!("{what}: {e}"));
    let dropped = if Uid::effective().is_root() {
        let u = resolve(field, user)?;
        if u.uid.is_root() {
            return Err(SandboxError(format!("{field}: `{}` is uid 0; name an unprivileged user", u.name)));
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

/// A condition on one argument of a call (seccomp sees the argument
/// registers, never the memory they point at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgCheck {
    /// Argument `.0`, as a 64-bit word, equals `.1`.
    Is(u8, u64),
    /// Argument `.0`, an `int` (its low 32 bits), equals `.1`.
    IsInt(u8, u32),
    /// Argument `.0` has none of the bits of `.1` set.
    NoneOf(u8, u64),
    /// Argument `.0` has every bit of `.1` set.
    AllOf(u8, u64),
}

impl ArgCheck {
    fn rule(self) -> Result<SeccompRule, SandboxError> {
        let (arg, len, op, value) = match self {
            Self::Is(arg, v) => (arg, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, v),
            Self::IsInt(arg, v) => (arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, u64::from(v)),
            Self::NoneOf(arg, mask) => (arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), 0),
            Self::AllOf(arg, mask) => (arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), mask),
        };
        let condition = SeccompCondition::new(arg, len, op, value).map_err(seccomp_error)?;
        SeccompRule::new(vec![condition]).map_err(seccomp_error)
    }
}

fn seccomp_error(e: impl core::fmt::Display) -> SandboxError {
    SandboxError(format!("seccomp: {e}"))
}

/// What a confined process may call: an allowlist, some of its calls only
/// with arguments that pass a check, and a kill list. Anything else fails
/// with `EPERM`; `clone3` fails with `ENOSYS` (its flags sit behind a
/// pointer seccomp cannot read), so the C library falls back to `clone`,
/// whose flags a policy can check ([`Policy::threads`]).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Each allowed call and the checks of which one must hold; no checks:
    /// allowed whatever its arguments.
    allowed: BTreeMap<i64, Vec<ArgCheck>>,
    fatal: BTreeSet<i64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy {
    /// Nothing allowed yet; the kill list [`intruder_calls`].
    #[must_use]
    pub fn new() -> Self {
        Self { allowed: BTreeMap::new(), fatal: intruder_calls().into_iter().collect() }
    }

    /// Allows `calls` whatever their arguments.
    #[must_use]
    pub fn allow(mut self, calls: impl IntoIterator<Item = i64>) -> Self {
        for call in calls {
            self.allowed.insert(call, Vec::new());
        }
        self
    }

    /// Allows `call` when one of `checks` holds (a call already allowed
    /// whatever its arguments stays so).
    #[must_use]
    pub fn allow_if(mut self, call: i64, checks: &[ArgCheck]) -> Self {
        match self.allowed.get_mut(&call) {
            Some(existing) if existing.is_empty() => {}
            Some(existing) => existing.extend_from_slice(checks),
            None => {
                self.allowed.insert(call, checks.to_vec());
            }
        }
        self
    }

    /// `openat` for reading only: no write, create, truncate or append flag.
    #[must_use]
    pub fn open_read_only(self) -> Self {
        let write = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
        self.allow_if(libc::SYS_openat, &[ArgCheck::NoneOf(2, write)])
    }

    /// `clone` making a thread (`CLONE_THREAD`), never a process.
    #[must_use]
    pub fn threads(self) -> Self {
        self.allow_if(libc::SYS_clone, &[ArgCheck::AllOf(0, libc::CLONE_THREAD as u64)])
    }

    /// `tgkill` to this process's own threads only (the C library's
    /// `abort` signals itself so), never another process: the process id
    /// is the one of the process that builds the policy.
    #[must_use]
    pub fn signal_itself(self) -> Self {
        self.allow_if(libc::SYS_tgkill, &[ArgCheck::IsInt(0, std::process::id())])
    }

    /// Adds `calls` to the kill list.
    #[must_use]
    pub fn kill(mut self, calls: impl IntoIterator<Item = i64>) -> Self {
        self.fatal.extend(calls);
        self
    }

    /// Whether `call` is allowed (with or without checks).
    pub fn allows(&self, call: i64) -> bool {
        self.allowed.contains_key(&call)
    }

    /// Whether `call` kills the process.
    pub fn kills(&self, call: i64) -> bool {
        self.fatal.contains(&call)
    }

    /// The three filters, in the order [`Policy::confine`] installs them.
    /// The kernel runs every filter of a thread and takes the strictest
    /// verdict (of two errno verdicts, the later filter's), so the kill
    /// list wins over the allowlist and `ENOSYS` for `clone3` over the
    /// allowlist's own answer, which therefore allows it.
    pub fn programs(&self) -> Result<[(&'static str, BpfProgram); 3], SandboxError> {
        if let Some(both) = self.fatal.iter().find(|c| self.allowed.contains_key(c)) {
            return Err(SandboxError(format!("seccomp: call {both} is both allowed and fatal")));
        }
        let arch: TargetArch = std::env::consts::ARCH
            .try_into()
            .map_err(|e| SandboxError(format!("seccomp on {}: {e:?}", std::env::consts::ARCH)))?;
        let compile = |rules: BTreeMap<i64, Vec<SeccompRule>>, on_match, otherwise| -> Result<BpfProgram, _> {
            let filter = SeccompFilter::new(rules, otherwise, on_match, arch).map_err(seccomp_error)?;
            filter.try_into().map_err(seccomp_error)
        };
        let kill_list = self.fatal.iter().map(|&c| (c, vec![])).collect();
        let kill_list = compile(kill_list, SeccompAction::KillProcess, SeccompAction::Allow)?;
        let clone3 = BTreeMap::from([(libc::SYS_clone3, vec![])]);
        let clone3 = compile(clone3, SeccompAction::Errno(libc::ENOSYS as u32), SeccompAction::Allow)?;
        let mut allowed = BTreeMap::new();
        for (&call, checks) in &self.allowed {
            allowed.insert(call, checks.iter().map(|c| c.rule()).collect::<Result<Vec<_>, _>>()?);
        }
        allowed.insert(libc::SYS_clone3, vec![]);
        let allowlist = compile(allowed, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32))?;
        Ok([("kill list", kill_list), ("clone3", clone3), ("allowlist", allowlist)])
    }

    /// Installs the filters on every thread of the process (TSYNC; it sets
    /// `no_new_privs`, which a process without `CAP_SYS_ADMIN` needs to
    /// install a filter). The allowlist goes last, so it needs to allow
    /// neither `prctl` nor `seccomp` for the other two.
    pub fn confine(&self) -> Result<(), SandboxError> {
        for (name, program) in self.programs()? {
            seccompiler::apply_filter_all_threads(&program)
                .map_err(|e| SandboxError(format!("installing the seccomp {name}: {e}")))?;
        }
        Ok(())
    }
}

/// What any confined process of ours does to live, whatever it serves:
/// memory (the allocator), locks, randomness, the clock where the vDSO
/// cannot read it, its thread and process ids, signal masks and the
/// alternate stack, exit, and a signal handler's return with the call it
/// interrupted resuming. Each process's list adds its own work.
pub fn runtime_calls() -> Vec<i64> {
    vec![
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_clock_gettime,
        libc::SYS_futex,
        libc::SYS_getrandom,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_rt_sigreturn,
        libc::SYS_restart_syscall,
    ]
}

/// Calls only an intruder makes, fatal in every confined corridor process:
/// exec, tracing and other processes' memory, mounts and namespaces,
/// kernel modules and kexec, perf, the key rings, new io_uring instances,
/// every change of ids or capabilities, and new processes.
pub fn intruder_calls() -> Vec<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_compiles_for_this_machine() {
        let p = Policy::new().allow([libc::SYS_read, libc::SYS_write]).open_read_only().threads().allow_if(
            libc::SYS_socket,
            &[ArgCheck::IsInt(0, libc::AF_INET as u32), ArgCheck::IsInt(0, libc::AF_INET6 as u32)],
        );
        for (name, program) in p.programs().expect("compiles") {
            assert!(!program.is_empty() && program.len() < 4096, "{name}: {} instructions", program.len());
        }
    }

    #[test]
    fn a_call_both_allowed_and_fatal_is_refused() {
        let e = Policy::new().allow([libc::SYS_execve]).programs().expect_err("execve is fatal");
        assert!(e.0.contains("both allowed and fatal"), "{e}");
    }

    #[test]
    fn an_unconditional_allowance_is_not_narrowed_by_a_check() {
        let p = Policy::new().allow([libc::SYS_ioctl]).allow_if(libc::SYS_ioctl, &[ArgCheck::Is(1, 1)]);
        assert_eq!(p.allowed.get(&libc::SYS_ioctl), Some(&vec![]));
        let p = Policy::new()
            .allow_if(libc::SYS_ioctl, &[ArgCheck::Is(1, 1)])
            .allow_if(libc::SYS_ioctl, &[ArgCheck::Is(1, 2)]);
        assert_eq!(p.allowed.get(&libc::SYS_ioctl).map(Vec::len), Some(2));
    }

    #[test]
    fn user_names_are_checked_before_any_lookup() {
        assert!(check_user("relay.user", "relay", "corridor").is_ok());
        for bad in ["root", "", "a:b", "has space"] {
            let e = check_user("relay.user", "relay", bad).expect_err(bad);
            assert_eq!(e.field, "relay.user");
            assert!(e.problem.contains("relay's unprivileged user"), "{e}");
        }
    }
}
