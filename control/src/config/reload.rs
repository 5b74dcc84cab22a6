//! What a reload may change. The fields below shape sockets, the TUN, the
//! address pool, the shards and the process itself: they are set up once,
//! as root, before privileges are dropped, and a running gateway cannot
//! change them. A reload that changes one is refused by name and the
//! running configuration stays; everything else (users and the password
//! file, certificate and key, client CA, groups with their routes, DNS and
//! ACLs, timers, banner, limits) applies at once.

use super::Config;

impl Config {
    /// The fields of `next` that differ from this configuration and cannot
    /// change without a restart, named as in the file.
    pub fn fixed_fields_changed(&self, next: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name: &'static str, same: bool| {
            if !same {
                changed.push(name);
            }
        };
        check("server.listen", self.listen == next.listen);
        check("server.dtls_port", self.dtls_port == next.dtls_port);
        check("server.user", self.user == next.user);
        check("server.max_connections", self.max_connections == next.max_connections);
        check("network.pool", self.pool == next.pool);
        check("network.tun_name", self.tun_name == next.tun_name);
        check("network.link_mtu", self.link_mtu == next.link_mtu);
        check("dataplane.shards", self.shards == next.shards);
        check("dataplane.pin_cores", self.pin_cores == next.pin_cores);
        check("dataplane.ring_entries", self.ring_entries == next.ring_entries);
        check("dataplane.offloads", self.offloads == next.offloads);
        check("dataplane.io", self.io == next.io);
        check("dataplane.steering", self.steering == next.steering);
        check("dataplane.batch_wait_us", self.batch_wait == next.batch_wait);
        check("admin.listen", self.admin_listen == next.admin_listen);
        check("auth.verify_threads", self.verify_threads == next.verify_threads);
        check("auth.verify_queue", self.verify_queue == next.verify_queue);
        check("auth.password_file", self.password_file.is_some() == next.password_file.is_some());
        check(
            "relay",
            self.relays.len() == next.relays.len()
                && self.relays.iter().zip(&next.relays).all(|(a, b)| {
                    a.address == b.address && a.name == b.name && a.token == b.token && a.trust == b.trust
                }),
        );
        check(
            "cluster",
            match (&self.cluster, &next.cluster) {
                (None, None) => true,
                (Some(a), Some(b)) => a.secret == b.secret && a.node == b.node && a.nodes == b.nodes,
                _ => false,
            },
        );
        changed
    }
}
