//! Trusted-network teardown with `corridor connect`: the gateway's group
//! names an https URL reachable only inside the organisation and its key
//! pin. The device namespace gains an "inside" link to the org network:
//! the client finds the URL there with the pinned key, pauses its tunnel
//! (the gateway logs `trusted_network`, the TUN goes); the link goes away:
//! the tunnel comes back with the cookie, the same session, traffic flows.

use std::process::Command;
use std::time::Duration;

use testbed::*;

const IFNAME: &str = "corridor0";

/// `corridor connect` as alice in the device namespace, once DTLS is up.
fn connected(t: &Topology) -> Proc {
    let mut cmd = ns(&t.device(), corridor_bin());
    cmd.args(["connect", GATEWAY_IP, "--interface", IFNAME, "--user", "alice", "--passwd-on-stdin", "--cafile"])
        .arg(t.dir.join("ca.crt"));
    let mut c = Proc::spawn("corridor connect", cmd);
    if let Some(mut stdin) = c.child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(format!("{PASSWORD}\n").as_bytes());
    }
    c.log.wait_for("DTLS up", Duration::from_secs(20));
    c
}

/// SIGINT, as a user's ^C: the client logs out and exits 0.
fn log_out(c: &mut Proc) {
    let _ = Command::new("kill").args(["-INT", &c.child.id().to_string()]).status();
    let status = wait_until("corridor connect to exit", Duration::from_secs(10), || c.child.try_wait().ok().flatten());
    assert!(status.success(), "{}", c.log.text());
}

/// The inside link (`dev-in` in the device namespace, down: the device
/// is outside) and the intranet server the trusted URL names, with the
/// topology's key: (its certificate, the server).
fn inside_link_and_intranet(t: &Topology) -> (std::path::PathBuf, Proc) {
    let (dev, org) = (t.device(), t.org());
    // The inside link, down for now: the device is outside.
    run(Command::new("ip")
        .args(["-n", &dev, "link", "add", "dev-in", "type", "veth", "peer", "name", "org-in", "netns", &org]));
    run(Command::new("ip").args(["-n", &org, "addr", "add", "10.98.0.1/24", "dev", "org-in"]));
    run(Command::new("ip").args(["-n", &org, "link", "set", "org-in", "up"]));
    run(Command::new("ip").args(["-n", &dev, "addr", "add", "10.98.0.2/24", "dev", "dev-in"]));
    // The intranet server the trusted URL names, with the topology's key.
    let (cert, key) = (t.dir.join("server.crt"), t.dir.join("server.key"));
    let mut server = ns(&org, "python3");
    server.args(["-c", "import socket,ssl,sys\nctx=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\nctx.load_cert_chain(sys.argv[1],sys.argv[2])\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('10.98.0.1',8443))\ns.listen(8)\nprint('ready',flush=True)\nwhile True:\n c,_=s.accept()\n try:\n  ctx.wrap_socket(c,server_side=True).close()\n  print('probed',flush=True)\n except Exception as e:\n  print('failed',e,flush=True)"])
        .arg(&cert)
        .arg(&key);
    let server = Proc::spawn("intranet server", server);
    server.log.wait_for("ready", Duration::from_secs(10));
    (cert, server)
}

#[test]
fn the_tunnel_pauses_on_the_trusted_network_and_comes_back_when_the_device_leaves() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let dev = t.device();
    let (cert, _server) = inside_link_and_intranet(&t);
    let trusted = ("https://10.98.0.1:8443/".to_owned(), spki_pin(&cert));
    let gw = Gateway::start(&t, &GatewayOptions { trusted: Some(trusted), ..GatewayOptions::default() });
    let mut c = connected(&t);
    let before = gw.session_of("alice").expect("session");
    assert_eq!(udp_echo(&dev, 3), 3);

    // Inside: the tunnel pauses.
    run(Command::new("ip").args(["-n", &dev, "link", "set", "dev-in", "up"]));
    c.log.wait_for("on the trusted network: tunnel paused", Duration::from_secs(15));
    let line = gw.proc.log.wait_for("event=\"paused\"", Duration::from_secs(5));
    assert!(line.contains("reason_code=\"trusted_network\"") && line.contains("user=alice"), "{line}");
    wait_until("the TUN to go", Duration::from_secs(5), || {
        let links = run(Command::new("ip").args(["-n", &dev, "-o", "link", "show"]));
        (!String::from_utf8_lossy(&links.stdout).contains(IFNAME)).then_some(())
    });
    assert_eq!(gw.session_of("alice").expect("kept for its cookie")["channel"], "none");
    let out = run(ns(&dev, corridor_bin()).args(["connect", "--status", "--json", "--interface", IFNAME]));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(status["state"], "paused", "{status}");
    assert!(status["last_teardown"].as_str().is_some_and(|t| t.contains("trusted_network")), "{status}");

    // Outside again: the tunnel comes back, the same session.
    run(Command::new("ip").args(["-n", &dev, "link", "set", "dev-in", "down"]));
    c.log.wait_for("left the trusted network", Duration::from_secs(15));
    wait_until("DTLS up again", Duration::from_secs(20), || {
        (c.log.text().matches("DTLS up").count() >= 2).then_some(())
    });
    assert_eq!(udp_echo(&dev, 5), 5, "traffic flows again");
    let after = gw.session_of("alice").expect("the same session");
    assert_eq!((&after["id"], &after["address"]), (&before["id"], &before["address"]), "{after}");

    log_out(&mut c);
}

/// Per-app selection through a pause: a listed app started before it
/// keeps its cgroup; while paused its echoes fail (the org is not on the
/// inside link, and nothing reaches the tunnel); once the tunnel is back
/// the same process's echoes come back through it again.
#[test]
fn a_listed_app_outlives_a_pause_and_uses_the_tunnel_again() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let dev = t.device();
    let (cert, _server) = inside_link_and_intranet(&t);
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3").display().to_string();
    let options = GatewayOptions {
        apps: vec![python],
        trusted: Some(("https://10.98.0.1:8443/".to_owned(), spki_pin(&cert))),
        ..GatewayOptions::default()
    };
    let _gw = Gateway::start(&t, &options);
    let mut c = connected(&t);
    let script = "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.5)\nwhile True:\n try:\n  s.sendto(b'x',('10.99.0.2',9000)); s.recvfrom(10); print('ok',flush=True)\n except OSError as e: print('fail',type(e).__name__,flush=True)\n time.sleep(0.2)";
    let mut app = ns(&dev, corridor_bin());
    app.args(["app", "--interface", IFNAME, "--", "/usr/bin/python3", "-c", script]);
    let app = Proc::spawn("listed app", app);
    app.log.wait_for("ok", Duration::from_secs(10));

    run(Command::new("ip").args(["-n", &dev, "link", "set", "dev-in", "up"]));
    c.log.wait_for("on the trusted network: tunnel paused", Duration::from_secs(15));
    app.log.wait_for("fail", Duration::from_secs(10));
    run(Command::new("ip").args(["-n", &dev, "link", "set", "dev-in", "down"]));
    c.log.wait_for("per-app selection again", Duration::from_secs(20));
    let oks = app.log.text().matches("ok").count();
    wait_until("the same app's echoes through the tunnel again", Duration::from_secs(20), || {
        (app.log.text().matches("ok").count() > oks + 2).then_some(())
    });
    log_out(&mut c);
}
