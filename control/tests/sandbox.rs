//! The worker's and the keeper's seccomp filters, tried on a process of
//! their own: this test binary re-runs itself with `CORRIDOR_SANDBOX_PROBE`
//! set to `PROCESS:PROBE`, the child confines itself with
//! [`control::sandbox::confine`] (`worker`) or
//! [`control::keeper::sandbox::confine`] (`keeper`) and then tries what
//! that process does and what an intruder would. Runs as any user (the
//! filter needs only `no_new_privs`, which it sets).

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const PROBE: &str = "CORRIDOR_SANDBOX_PROBE";

/// The child's side: one probe, its outcome on stdout, then exit.
fn probe(process_and_probe: &str) -> ! {
    let (process, what) = process_and_probe.split_once(':').expect("PROCESS:PROBE");
    let confined = match process {
        "worker" => control::sandbox::confine(),
        "keeper" => control::keeper::sandbox::confine(),
        other => panic!("no process {other}"),
    };
    if let Err(e) = confined {
        println!("\nprobe: confine failed: {e}");
        std::process::exit(3);
    }
    let dir = std::env::temp_dir();
    let outcome = match what {
        "read" => {
            std::fs::read_to_string("/proc/self/status").map(|s| s.contains("Seccomp:\t2")).map(|b| b.to_string())
        }
        "write" => {
            std::fs::write(dir.join(format!("corridor-sandbox-{}", std::process::id())), b"x").map(|()| "wrote".into())
        }
        "thread" => std::thread::Builder::new()
            .spawn(|| 7)
            .and_then(|t| t.join().map_err(|_| std::io::Error::other("join")))
            .map(|v| v.to_string()),
        "socket" => std::net::UdpSocket::bind("127.0.0.1:0").map(|_| "bound".into()),
        "process" => Command::new("/bin/true").status().map(|s| s.to_string()),
        "exec" => nix::unistd::execv(c"/bin/true", &[c"/bin/true"]).map(|_| "exec returned".into()).map_err(Into::into),
        other => panic!("no probe {other}"),
    };
    match outcome {
        Ok(v) => println!("\nprobe: ok {v}"),
        Err(e) => println!("\nprobe: err {}", e.raw_os_error().unwrap_or(-1)),
    }
    std::process::exit(0);
}

/// Runs probe `what` (`PROCESS:PROBE`) in a child; its exit code, signal
/// and outcome line.
fn run_probe(what: &str) -> (Option<i32>, Option<i32>, String) {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "probe_entry", "--nocapture", "--test-threads", "1"])
        .env(PROBE, what)
        .output()
        .expect("spawn probe");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout.lines().find_map(|l| l.strip_prefix("probe: ")).unwrap_or_default().to_owned();
    (out.status.code(), out.status.signal(), line)
}

/// The entry the child runs; a plain test run (no variable) passes through.
#[test]
fn probe_entry() {
    if let Ok(what) = std::env::var(PROBE) {
        probe(&what);
    }
}

#[test]
fn what_the_gateway_does_still_works_under_the_filter() {
    assert_eq!(run_probe("worker:read"), (Some(0), None, "ok true".into()), "reading /proc/self/status");
    assert_eq!(run_probe("worker:thread"), (Some(0), None, "ok 7".into()), "a thread (clone3 refused, clone allowed)");
    assert_eq!(run_probe("worker:socket"), (Some(0), None, "ok bound".into()), "a UDP socket");
}

#[test]
fn writing_a_file_is_refused_with_eperm() {
    assert_eq!(run_probe("worker:write"), (Some(0), None, format!("err {}", libc::EPERM)));
}

#[test]
fn starting_a_program_kills_the_process() {
    // Spawning forks with clone (no CLONE_THREAD: refused) or clone3
    // (ENOSYS), or, where the C library uses vfork, reaches execve: the
    // child either gets an error or dies of SIGSYS; it never runs /bin/true.
    let (code, signal, line) = run_probe("worker:process");
    assert!(
        signal == Some(libc::SIGSYS) || (code == Some(0) && line.starts_with("err ")),
        "code {code:?} signal {signal:?} line {line:?}"
    );
    assert_ne!(line, "ok exit status: 0");
}

#[test]
fn exec_kills_the_process() {
    let (code, signal, line) = run_probe("worker:exec");
    assert_eq!((code, signal), (None, Some(libc::SIGSYS)), "{line}");
}

#[test]
fn the_keeper_reads_files_but_writes_none_and_starts_no_thread() {
    assert_eq!(run_probe("keeper:read"), (Some(0), None, "ok true".into()), "reading /proc/self/status");
    assert_eq!(run_probe("keeper:write"), (Some(0), None, format!("err {}", libc::EPERM)));
    let (code, signal, line) = run_probe("keeper:thread");
    assert_eq!((code, signal), (Some(0), None), "{line}");
    assert!(line.starts_with("err "), "a thread started under the keeper's filter: {line}");
}

#[test]
fn the_keeper_dies_at_its_first_socket_or_exec() {
    for probe in ["keeper:socket", "keeper:exec"] {
        let (code, signal, line) = run_probe(probe);
        assert_eq!((code, signal), (None, Some(libc::SIGSYS)), "{probe}: {line}");
    }
}
