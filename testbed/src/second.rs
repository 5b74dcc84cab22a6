//! A second device namespace on its own link to the gateway
//! (10.10.1.2 → 10.10.1.1), for tests that need two devices whose routes
//! do not share one namespace.

use std::process::Command;
use std::time::Duration;

use crate::{run, Client, Login, Topology, GATEWAY_IP};

pub struct SecondDevice {
    pub ns: String,
}

impl SecondDevice {
    pub fn add(t: &Topology) -> Self {
        let ns = format!("{}device2", t.prefix);
        let gw = t.gateway();
        let cmds = [
            format!("ip netns add {ns}"),
            format!("ip -n {gw} link add to-dev2 type veth peer name to-gw netns {ns}"),
            format!("ip -n {gw} addr add 10.10.1.1/24 dev to-dev2"),
            format!("ip -n {gw} link set to-dev2 up"),
            format!("ip -n {ns} addr add 10.10.1.2/24 dev to-gw"),
            format!("ip -n {ns} link set to-gw up"),
            format!("ip -n {ns} link set lo up"),
            format!("ip -n {ns} route add default via 10.10.1.1"),
            format!("mkdir -p /etc/netns/{ns} && touch /etc/netns/{ns}/resolv.conf"),
        ];
        for c in cmds {
            run(Command::new("sh").arg("-c").arg(&c));
        }
        Self { ns }
    }

    /// openconnect logging in as `user` with `password` from this namespace
    /// (interface tun1), once it has its tunnel address.
    pub fn client(&self, t: &Topology, user: &str, password: &str) -> Client {
        let mut c = Client::spawn_in(
            t,
            &self.ns,
            &format!("https://{GATEWAY_IP}/"),
            Login::Password(user, password),
            &[],
            "tun1",
        );
        c.address = c.wait_address(Duration::from_secs(30));
        c
    }
}

impl Drop for SecondDevice {
    fn drop(&mut self) {
        let ns = &self.ns;
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}; rm -rf /etc/netns/{ns}"))
            .status();
    }
}
