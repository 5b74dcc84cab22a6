//! End to end: `corridor gateway` and `corridor relay` under a stand-in
//! for systemd's `Type=notify` (packaging/*.service): a unix datagram
//! socket named by `NOTIFY_SOCKET`, with `WATCHDOG_USEC` set. The gateway
//! says `READY=1` only once its privileges are dropped (and says it from
//! under seccomp), pings `WATCHDOG=1` from its control loop, wraps a reload
//! (SIGHUP or `corridor ctl reload`) in `RELOADING=1` … `READY=1`, and says
//! `STOPPING=1` on SIGTERM; the relay says ready, pings and stops. Each
//! runs with no more capabilities than its unit's `CapabilityBoundingSet`
//! (packaging/*.service), as systemd would start it. Needs root;
//! `scripts/test.sh` runs it.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testbed::*;

/// The service manager's end: every message, in order.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    /// Listens at `path`; the environment a service started under it gets.
    fn listen(path: &Path) -> (Self, Vec<(String, String)>) {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        // Only a safety net, so that a silent server fails the test rather
        // than hanging it; nothing here is timed.
        socket.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let env = vec![
            ("NOTIFY_SOCKET".to_owned(), path.display().to_string()),
            ("WATCHDOG_USEC".to_owned(), "2000000".to_owned()),
        ];
        (Self { socket, seen: Vec::new() }, env)
    }

    fn next(&mut self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).unwrap_or_else(|e| panic!("no message ({e}); so far: {:?}", self.seen));
        let message = String::from_utf8_lossy(buf.get(..n).expect("within the buffer")).into_owned();
        self.seen.push(message.clone());
        message
    }

    /// The next message with the line `line`; the ones before it must be
    /// watchdog pings and nothing else.
    fn until(&mut self, line: &str) -> String {
        loop {
            let message = self.next();
            if message.lines().any(|l| l == line) {
                return message;
            }
            assert_eq!(message, "WATCHDOG=1\n", "before {line}: {:?}", self.seen);
        }
    }

    fn pings(&mut self, n: usize) {
        for _ in 0..n {
            self.until("WATCHDOG=1");
        }
    }
}

/// `setpriv` with the bounding set of `packaging/UNIT`: root's capabilities
/// at exec are those and no others, as under systemd.
fn under_unit_capabilities(unit: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("packaging").join(unit)).expect("the unit");
    let caps: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet=")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let set = format!("-all,{}", caps.join(","));
    ["setpriv", "--bounding-set", &set, "--inh-caps", "-all", "--"].map(str::to_owned).to_vec()
}

#[test]
fn gateway_notifies_ready_after_the_drop_pings_the_watchdog_and_wraps_reloads() {
    let t = Topology::up();
    let (mut manager, env) = Manager::listen(&t.dir.join("notify.sock"));
    let under = under_unit_capabilities("corridor-gateway.service");
    let mut gw = Gateway::start(&t, &GatewayOptions { env, under, ..GatewayOptions::default() });

    // Gateway::start returned on "privileges dropped": the first message
    // is READY, sent by the confined worker.
    let ready = manager.next();
    assert!(ready.starts_with("READY=1\nSTATUS=serving on "), "{ready}");
    assert!(gw.proc.log.text().contains("privileges dropped"));
    // The unit's capabilities are enough for everything start-up sets up,
    // no fallback taken: the steering program, the rings' fixed buffers.
    let status = gw.ctl_ok(&["status"]);
    let steering = status["steering"].as_str().expect("steering");
    assert!(steering.starts_with("ebpf"), "{status}");
    let io = status["io"].as_str().expect("io");
    assert!(!io.contains("fallback") && io.contains("fixed files+buffers"), "{status}");
    manager.pings(3);

    run(Command::new("kill").args(["-HUP", &gw.proc.child.id().to_string()]));
    let reloading = manager.until("RELOADING=1");
    let usec = reloading.lines().find_map(|l| l.strip_prefix("MONOTONIC_USEC=")).expect("MONOTONIC_USEC");
    assert!(usec.parse::<u64>().expect("microseconds") > 0, "{reloading}");
    let reloaded = manager.until("READY=1");
    assert!(reloaded.contains("STATUS=serving; configuration reloaded"), "{reloaded}");
    gw.proc.log.wait_for("configuration reloaded", Duration::from_secs(10));

    // The ctl socket's reload goes the same way.
    gw.ctl_ok(&["reload"]);
    manager.until("RELOADING=1");
    manager.until("READY=1");
    manager.pings(1);

    let status = gw.proc.stop(Duration::from_secs(10)).expect("the gateway stops on SIGTERM");
    manager.until("STOPPING=1");
    assert!(status.success(), "{status:?}");
}

#[test]
fn relay_notifies_ready_pings_the_watchdog_and_stops() {
    let t = Topology::up_relay();
    let (mut manager, env) = Manager::listen(&t.dir.join("relay-notify.sock"));
    let mut relay = Relay::start_under(&t, "", &env, &under_unit_capabilities("corridor-relay.service"));

    let ready = manager.next();
    assert!(ready.starts_with("READY=1\nSTATUS=serving devices on "), "{ready}");
    manager.pings(2);

    let status = relay.proc.stop(Duration::from_secs(10)).expect("the relay stops on SIGTERM");
    manager.until("STOPPING=1");
    assert!(status.success(), "{status:?}");
}
