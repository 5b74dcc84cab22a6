//! The relay link's TLS, in one process on loopback (no root): a real
//! `relay::Relay` and the gateway's `RelayLinks` driven by hand. The right
//! pin brings the link up; a wrong pin, or a CA whose certificate does not
//! name the relay's address, is refused by the gateway, counted, and said
//! in its log.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::relay_link::{LinkCounters, RelayLinks, RelayTarget, RelayTrust};

const TOKEN: &str = "relay-link-tls-test-token-0123456789";

/// scripts/certs.sh's PKI in a directory of this test's own.
fn certs(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corridor-link-tls-{tag}-{}", std::process::id()));
    let out = std::process::Command::new("bash")
        .arg(testbed::repo().join("scripts/certs.sh"))
        .arg(&dir)
        .output()
        .expect("bash scripts/certs.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A relay on loopback; its gateway port, and the flag that stops it.
fn start_relay(dir: &std::path::Path) -> (SocketAddr, Arc<AtomicBool>) {
    let text = format!(
        "[relay]\nlisten = \"127.0.0.1:0\"\ndtls_port = 0\ngateway_listen = \"127.0.0.2:0\"\n\
         [[gateway]]\nname = \"vpn.test\"\ntoken = \"{TOKEN}\"\n\
         [gateway_link]\ncert = \"relay-link.crt\"\nkey = \"relay-link.key\"\n"
    );
    let config = relay::Config::parse_in(&text, dir).expect("relay config");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // The relay's sockets stay on its thread.
    std::thread::spawn(move || {
        let r = relay::Relay::start(config).expect("relay starts");
        let _ = tx.send(r.local_addrs().expect("addresses").1);
        r.run(&flag)
    });
    (rx.recv().expect("the relay's gateway port"), stop)
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Drives one gateway link to `relay` until it is up or `give_up` says
/// enough; whether it came up, its counters and what it logged.
fn dial(relay: SocketAddr, trust: RelayTrust, give_up: impl Fn(&LinkCounters) -> bool) -> (bool, LinkCounters, String) {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let (up, counters) = tracing::subscriber::with_default(subscriber, || {
        let target = RelayTarget { address: relay, name: "vpn.test".into(), token: TOKEN.as_bytes().to_vec(), trust };
        let mut poll = mio::Poll::new().expect("poll");
        let mut links = RelayLinks::new(&[target], Instant::now());
        let mut events = mio::Events::with_capacity(64);
        let mut next_token = 100;
        let end = Instant::now() + Duration::from_secs(20);
        while links.up() == 0 && !give_up(&links.counters) && Instant::now() < end {
            links.on_tick(Instant::now(), poll.registry());
            poll.poll(&mut events, Some(Duration::from_millis(50))).expect("poll");
            for ev in events.iter() {
                let mut out = Vec::new();
                links.on_event(ev.token(), Instant::now(), poll.registry(), &mut next_token, 100, &mut out);
            }
        }
        (links.up() == 1, links.counters)
    });
    let text = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
    (up, counters, text)
}

fn pin_of(dir: &std::path::Path) -> service::pin::Pin {
    let text = std::fs::read_to_string(dir.join("relay-link.pin")).expect("relay-link.pin");
    service::pin::parse_pin(&text).expect("a pin")
}

#[test]
fn the_right_pin_brings_the_link_up() {
    let dir = certs("right");
    let (relay, stop) = start_relay(&dir);
    let trust = RelayTrust { pin: Some(pin_of(&dir)), ca: Vec::new() };
    let (up, counters, log) = dial(relay, trust, |c| c.links_bad_certificate > 0 || c.links_refused > 0);
    stop.store(true, Ordering::Relaxed);
    assert!(up, "the link did not come up:\n{log}");
    assert_eq!((counters.links_up, counters.links_bad_certificate, counters.links_tls_failed), (1, 0, 0));
    assert!(log.contains("relay link up"), "{log}");
}

#[test]
fn a_wrong_pin_refuses_the_relay_and_says_so() {
    let dir = certs("wrong");
    let (relay, stop) = start_relay(&dir);
    let mut wrong = pin_of(&dir);
    wrong[0] ^= 1;
    let (up, counters, log) =
        dial(relay, RelayTrust { pin: Some(wrong), ca: Vec::new() }, |c| c.links_bad_certificate > 0);
    assert!(!up, "{log}");
    assert_eq!((counters.links_up, counters.links_bad_certificate), (0, 1));
    assert!(log.contains("does not match [[relay]] pin_sha256"), "{log}");
    assert!(log.contains(&service::pin::pin_base64(&pin_of(&dir))), "the log names the pin presented:\n{log}");

    // The test CA signed the link certificate, but for 10.20.0.1, not the
    // loopback address dialled here: refused as well.
    let ca = control::relay_link::tls::ca_certificates(&dir.join("ca.crt")).expect("ca.crt");
    let (up, counters, log) = dial(relay, RelayTrust { pin: None, ca }, |c| c.links_bad_certificate > 0);
    stop.store(true, Ordering::Relaxed);
    assert!(!up && counters.links_bad_certificate == 1, "{log}");
    assert!(log.contains("does not verify against [[relay]] ca_file"), "{log}");
}
