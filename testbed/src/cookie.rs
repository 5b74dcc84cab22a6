//! A session cookie in the test's hands: logged in for with the real
//! client (`openconnect --authenticate`, which prints it), tunnelled with
//! ([`crate::Login::Cookie`]), and presented by hand to one chosen gateway
//! so a test can see which gateways still honour it.

use std::time::Duration;

use crate::{ns, run, wait_until, Gateway, Topology, PASSWORD, RELAY_IP, RELAY_NAME};

/// Logs `user` in through the relay from the device namespace `namespace`
/// and returns the session cookie openconnect was given (no tunnel yet):
/// the `webvpn` one of the `name=value; …` list it prints (openconnect
/// adds cookies of its own, and takes the list back whole on stdin).
pub fn authenticate(t: &Topology, namespace: &str, user: &str) -> String {
    let script = format!(
        "echo '{PASSWORD}' | openconnect --protocol=anyconnect --authenticate --non-inter --cafile {ca} \
         --user {user} --passwd-on-stdin --resolve={RELAY_NAME}:{RELAY_IP} https://{RELAY_NAME}/",
        ca = t.dir.join("ca.crt").display()
    );
    let out = run(ns(namespace, "sh").args(["-c", &script]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.strip_prefix("COOKIE='")?.strip_suffix('\''))
        .flat_map(|list| list.split("; "))
        .find_map(|c| c.strip_prefix("webvpn="))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no webvpn cookie in openconnect --authenticate's output:\n{text}"))
}

/// The status line a gateway answers a CONNECT with `cookie` with, asked
/// on its own address from inside its namespace (its firewall lets
/// nothing in from outside). `HTTP/1.1 401 …` for a cookie it refuses.
pub fn connect_status(t: &Topology, gw: &Gateway, cookie: &str) -> String {
    let script = format!(
        "import socket,ssl\n\
         c=ssl.create_default_context(cafile='{ca}')\n\
         s=c.wrap_socket(socket.create_connection(('{listen}',443),timeout=5),server_hostname='{RELAY_NAME}')\n\
         s.sendall(b'CONNECT /CSCOSSLC/tunnel HTTP/1.1\\r\\nHost: {RELAY_NAME}\\r\\nCookie: webvpn={cookie}\\r\\n\\r\\n')\n\
         print(s.recv(4096).split(b'\\r\\n')[0].decode())",
        ca = t.dir.join("ca.crt").display(),
        listen = gw.listen,
    );
    let out = run(ns(&gw.ns, "python3").args(["-c", &script]));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Gateway {
    /// Ends session `id` (`s7`) the way an administrator does
    /// (`corridor ctl kill`); the JSON it answered.
    pub fn kill_session(&self, id: &str) -> serde_json::Value {
        self.ctl_ok(&["kill", id])
    }

    /// The id of `user`'s session, once it has one.
    pub fn session_id_of(&self, user: &str) -> String {
        wait_until(&format!("{user}'s session on {}", self.ns), Duration::from_secs(10), || {
            self.session_of(user)?.get("id")?.as_str().map(str::to_owned)
        })
    }
}
