//! The keeper's seccomp filter. The keeper stays root — it reads the
//! root-only key and password file, at start and again at every reload —
//! but what it does once it serves is small: read files by name (read-only
//! opens), receive and send on its `SOCK_SEQPACKET` socket, sign and run
//! PBKDF2 (CPU), wait on its password-check threads, log to standard
//! error, exit. [`policy`] allows that and no more, and is installed on
//! every thread (TSYNC) once those threads exist ([`super::serve::run`]).
//!
//! Besides the kill list every confined process has
//! ([`service::sandbox::intruder_calls`]: exec, ptrace, mounts, namespaces,
//! modules, id and capability changes, new processes), the keeper dies at
//! the first call that would reach the network or the kernel's
//! programmable parts: a new socket of any kind, connect, bind, listen,
//! accept, BPF, io_uring. It creates no thread after start-up: `clone`
//! fails with `EPERM`.

use service::sandbox::{Policy, SandboxError};

/// The calls the keeper makes once it serves, whatever their arguments.
/// Found with `strace -f` over tests/privsep.rs and tests/reload.rs
/// (logins, signatures, reloads that succeed and that are refused): every
/// call after the last filter went on, plus what a thread's or the
/// process's end and a signal's return need.
fn allowed() -> Vec<i64> {
    let mut v = service::sandbox::runtime_calls();
    v.extend([
        // (The service manager's SIGTERM to the whole unit runs a handler,
        // the keeper waits for its socket to close instead; its return
        // and the resumed call are in the runtime set.) Files by name (read-only opens, see [`policy`]), checked for
        // owner and mode against the effective uid: the configuration,
        // key, certificate, client CA, password file; aws-lc's question
        // whether /dev/sysgenid exists.
        libc::SYS_read,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_fstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_geteuid,
        // Its socket to the worker (read and write on a connected
        // socket), and the log on standard error.
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_write,
    ]);
    v
}

/// Calls the keeper never makes: the network, BPF, io_uring.
fn fatal() -> Vec<i64> {
    vec![
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_bpf,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ]
}

/// [`allowed`], plus `openat` read-only and `tgkill` to its own threads
/// only (`abort` signals itself with it; root could signal any process),
/// and the kill lists.
pub fn policy() -> Policy {
    Policy::new().allow(allowed()).open_read_only().signal_itself().kill(fatal())
}

/// Installs [`policy`] on every thread of the keeper.
pub fn confine() -> Result<(), SandboxError> {
    policy().confine()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keepers_filters_compile_and_keep_it_off_the_network() {
        let p = policy();
        for (name, program) in p.programs().expect("compiles") {
            assert!(!program.is_empty() && program.len() < 4096, "{name}: {} instructions", program.len());
        }
        for call in [libc::SYS_socket, libc::SYS_connect, libc::SYS_execve, libc::SYS_ptrace, libc::SYS_setresuid] {
            assert!(p.kills(call), "{call}");
        }
        assert!(!p.allows(libc::SYS_clone) && p.allows(libc::SYS_openat) && p.allows(libc::SYS_recvfrom));
    }
}
