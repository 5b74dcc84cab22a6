//! End to end: the gateway's logs (`[log] format`). In JSON every line is
//! one object and a session's events carry their fields and, for its end,
//! a stable `reason_code`; in text a user name an attacker sends with a
//! newline is logged escaped and cannot forge a line. Needs root;
//! `scripts/test.sh` runs it.

use std::time::Duration;

use testbed::*;

/// A login with `user` over raw TLS, from the device namespace.
fn login_as(t: &Topology, user: &str) {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-reply\">\
         <auth><username>{user}</username><password>nope</password></auth></config-auth>"
    );
    let script = format!(
        "import socket,ssl\n\
         c=ssl.create_default_context(cafile='{ca}')\n\
         s=c.wrap_socket(socket.create_connection(('{GATEWAY_IP}',443),timeout=5),server_hostname='{GATEWAY_IP}')\n\
         b={body:?}.encode()\n\
         s.sendall(b'POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(b) + b)\n\
         print(s.recv(4096).split(b'\\r\\n')[0].decode())",
        ca = t.dir.join("ca.crt").display(),
    );
    run(ns(&t.device(), "python3").args(["-c", &script]));
}

#[test]
fn json_logs_are_one_object_a_line_with_session_fields_and_reason_codes() {
    let t = Topology::up();
    let _org = Org::start(&t);
    let gw = Gateway::start(&t, &GatewayOptions { log_json: true, ..GatewayOptions::default() });
    let mut client = Client::connect(&t, Login::Password("alice", PASSWORD), &[]);
    client.proc.log.wait_for("Established DTLS connection", Duration::from_secs(20));
    client.disconnect();
    // A name carrying a newline: one escaped string in one object.
    login_as(&t, "mallory&#10;{\"forged\":true}");
    wait_until("the logout and the odd login logged", Duration::from_secs(10), || {
        let text = gw.proc.log.text();
        (text.contains("\"session_end\"") && text.contains("no account can have")).then_some(())
    });
    let mut events = Vec::new();
    for line in gw.proc.log.text().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(v.get("forged").is_none(), "a forged object: {line}");
        events.push(v);
    }
    let of = |kind: &str| events.iter().find(|e| e["event"] == kind).unwrap_or_else(|| panic!("no {kind} event"));
    let login = of("login");
    assert_eq!(
        (&login["user"], &login["group"], &login["method"]),
        (&"alice".into(), &"default".into(), &"password".into())
    );
    assert!(login["session"].is_string() && login["address"].is_string() && login["peer"].is_string(), "{login}");
    let end = of("session_end");
    assert_eq!((&end["user"], &end["reason_code"]), (&"alice".into(), &"logout".into()), "{end}");
    assert_eq!(end["session"], login["session"]);
    assert_eq!(end["address"], login["address"]);
    assert_eq!(end["peer"], login["peer"]);
    assert!(["bytes_in", "bytes_out", "packets_in", "packets_out"].iter().all(|f| end[*f].is_u64()), "{end}");
    // The keeper logs in the same format.
    assert!(events.iter().any(|e| e["message"].as_str().is_some_and(|m| m.starts_with("keeper ready"))));
}

#[test]
fn a_user_name_with_a_newline_cannot_forge_a_text_log_line() {
    let t = Topology::up();
    let gw = Gateway::start(&t, &GatewayOptions::default());
    login_as(&t, "mallory&#10;INFO forged: admin logged in");
    gw.proc.log.wait_for("no account can have", Duration::from_secs(10));
    let text = gw.proc.log.text();
    assert!(!text.lines().any(|l| l.starts_with("INFO forged")), "a forged line:\n{text}");
    let line = text.lines().find(|l| l.contains("no account can have")).expect("the line");
    assert!(line.contains("mallory\\nINFO forged"), "the name escaped in its own line: {line}");
}
