//! `--script`: a vpnc-script configures the tunnel instead of this client.
//!
//! The interface is the one vpnc and openconnect give their scripts (the
//! variables are documented at the top of Debian's
//! `/usr/share/vpnc-scripts/vpnc-script`): the script runs through
//! `/bin/sh -c` (so `--script` may carry arguments, as openconnect's does)
//! with `reason` set to what happened (`pre-init` before the TUN is created,
//! `connect` once the tunnel's configuration is known, `disconnect` when it
//! goes, `reconnect` after a reconnection kept it) and the tunnel's
//! configuration in the environment: `TUNDEV`, `VPNGATEWAY`,
//! `INTERNAL_IP4_ADDRESS`, `INTERNAL_IP4_MTU`, the netmask when the gateway
//! sent one, `INTERNAL_IP4_DNS`, `CISCO_DEF_DOMAIN`, `CISCO_BANNER`, and
//! the split-include and split-exclude routes as `CISCO_SPLIT_INC` /
//! `CISCO_SPLIT_EXC` with their numbered `_ADDR`, `_MASK`, `_MASKLEN`,
//! `_PROTOCOL`, `_SPORT` and `_DPORT`. The script sets the address, MTU,
//! routes and DNS; this client sets none of them.
//!
//! Per-app selection needs this client's own routing table and nftables
//! rules, so a list of apps (the gateway's or `--app`) with `--script` is
//! refused rather than quietly not enforced.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use proto::connect::TunnelConfig;
use proto::ip::Ipv4Net;

/// A vpnc-script and the environment of the tunnel it configured.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    command: String,
    env: Vec<(String, String)>,
}

impl Script {
    /// The script, before any tunnel exists (for `pre-init`).
    pub(crate) fn new(command: &str) -> Self {
        Self { command: command.to_owned(), env: Vec::new() }
    }

    /// The script with the environment of `config` on `tundev`.
    pub(crate) fn for_tunnel(&self, tundev: &str, gateway: SocketAddr, config: &TunnelConfig) -> Self {
        Self { command: self.command.clone(), env: environment(tundev, gateway, config) }
    }

    /// Runs the script for `reason` and waits for it; an error names the
    /// script and how it failed.
    pub(crate) fn run(&self, reason: &str) -> Result<(), String> {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .env("reason", reason)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status()
            .map_err(|e| format!("--script {}: {e}", self.command))?;
        if status.success() {
            tracing::info!(script = %self.command, reason, "vpnc-script ran");
            Ok(())
        } else {
            Err(format!("--script {} ({reason}) failed: {status}", self.command))
        }
    }

    /// Runs the script for `reason` where a failure cannot stop anything
    /// any more (disconnect): logged.
    pub(crate) fn run_logged(&self, reason: &str) {
        if let Err(e) = self.run(reason) {
            tracing::warn!(error = %e, "vpnc-script");
        }
    }
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The vpnc-script variables of a tunnel.
pub(crate) fn environment(tundev: &str, gateway: SocketAddr, config: &TunnelConfig) -> Vec<(String, String)> {
    let mut env = vec![
        ("TUNDEV".to_owned(), tundev.to_owned()),
        ("VPNGATEWAY".to_owned(), gateway.ip().to_string()),
        ("VPNPID".to_owned(), std::process::id().to_string()),
        ("INTERNAL_IP4_ADDRESS".to_owned(), config.address.to_string()),
        ("INTERNAL_IP4_MTU".to_owned(), config.mtu.to_string()),
        ("LOG_LEVEL".to_owned(), "1".to_owned()),
    ];
    if let Some(mask) = config.netmask {
        let len = u32::from(mask).leading_ones();
        let net = Ipv4Addr::from(u32::from(config.address) & u32::from(mask));
        env.push(("INTERNAL_IP4_NETMASK".to_owned(), mask.to_string()));
        env.push(("INTERNAL_IP4_NETMASKLEN".to_owned(), len.to_string()));
        env.push(("INTERNAL_IP4_NETADDR".to_owned(), net.to_string()));
    }
    if !config.dns.is_empty() {
        let dns: Vec<String> = config.dns.iter().map(Ipv4Addr::to_string).collect();
        env.push(("INTERNAL_IP4_DNS".to_owned(), dns.join(" ")));
    }
    if let Some(d) = &config.default_domain {
        env.push(("CISCO_DEF_DOMAIN".to_owned(), d.clone()));
    }
    if let Some(b) = &config.banner {
        env.push(("CISCO_BANNER".to_owned(), b.clone()));
    }
    if let Some(secs) = config.idle_timeout_secs {
        env.push(("IDLE_TIMEOUT".to_owned(), secs.to_string()));
    }
    split(&mut env, "CISCO_SPLIT_INC", &config.split_include);
    split(&mut env, "CISCO_SPLIT_EXC", &config.split_exclude);
    env
}

fn split(env: &mut Vec<(String, String)>, name: &str, nets: &[Ipv4Net]) {
    if nets.is_empty() {
        return;
    }
    env.push((name.to_owned(), nets.len().to_string()));
    for (i, net) in nets.iter().enumerate() {
        env.push((format!("{name}_{i}_ADDR"), net.network().to_string()));
        env.push((format!("{name}_{i}_MASK"), netmask(net.prefix).to_string()));
        env.push((format!("{name}_{i}_MASKLEN"), net.prefix.to_string()));
        for part in ["PROTOCOL", "SPORT", "DPORT"] {
            env.push((format!("{name}_{i}_{part}"), "0".to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TunnelConfig {
        TunnelConfig {
            server_name: None,
            hostname: None,
            address: Ipv4Addr::new(192, 168, 99, 7),
            netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            dns: vec![Ipv4Addr::new(10, 99, 0, 53), Ipv4Addr::new(10, 99, 0, 54)],
            default_domain: Some("corp.example".into()),
            split_include: vec!["10.99.0.0/24".parse().expect("net"), "172.16.0.0/12".parse().expect("net")],
            split_exclude: vec!["10.99.0.128/25".parse().expect("net")],
            mtu: 1399,
            base_mtu: None,
            dpd_secs: 30,
            keepalive_secs: 20,
            idle_timeout_secs: Some(1800),
            session_timeout_secs: None,
            rekey: None,
            banner: Some("Welcome".into()),
            dtls: None,
            apps: None,
            trusted: None,
        }
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_variables_are_vpnc_scripts() {
        let env = environment("corridor0", "10.10.0.1:443".parse().expect("addr"), &config());
        for (key, want) in [
            ("TUNDEV", "corridor0"),
            ("VPNGATEWAY", "10.10.0.1"),
            ("INTERNAL_IP4_ADDRESS", "192.168.99.7"),
            ("INTERNAL_IP4_MTU", "1399"),
            ("INTERNAL_IP4_NETMASK", "255.255.255.0"),
            ("INTERNAL_IP4_NETMASKLEN", "24"),
            ("INTERNAL_IP4_NETADDR", "192.168.99.0"),
            ("INTERNAL_IP4_DNS", "10.99.0.53 10.99.0.54"),
            ("CISCO_DEF_DOMAIN", "corp.example"),
            ("CISCO_BANNER", "Welcome"),
            ("IDLE_TIMEOUT", "1800"),
            ("CISCO_SPLIT_INC", "2"),
            ("CISCO_SPLIT_INC_0_ADDR", "10.99.0.0"),
            ("CISCO_SPLIT_INC_0_MASK", "255.255.255.0"),
            ("CISCO_SPLIT_INC_1_ADDR", "172.16.0.0"),
            ("CISCO_SPLIT_INC_1_MASK", "255.240.0.0"),
            ("CISCO_SPLIT_INC_1_MASKLEN", "12"),
            ("CISCO_SPLIT_INC_1_DPORT", "0"),
            ("CISCO_SPLIT_EXC", "1"),
            ("CISCO_SPLIT_EXC_0_ADDR", "10.99.0.128"),
            ("CISCO_SPLIT_EXC_0_MASKLEN", "25"),
        ] {
            assert_eq!(get(&env, key), Some(want), "{key}");
        }
    }

    #[test]
    fn what_the_gateway_did_not_send_is_left_out() {
        let c = TunnelConfig {
            netmask: None,
            dns: Vec::new(),
            default_domain: None,
            banner: None,
            split_include: Vec::new(),
            split_exclude: Vec::new(),
            idle_timeout_secs: None,
            ..config()
        };
        let env = environment("tun9", "10.10.0.1:443".parse().expect("addr"), &c);
        for key in
            ["INTERNAL_IP4_NETMASK", "INTERNAL_IP4_DNS", "CISCO_DEF_DOMAIN", "CISCO_SPLIT_INC", "CISCO_SPLIT_EXC"]
        {
            assert_eq!(get(&env, key), None, "{key}");
        }
        assert_eq!(get(&env, "INTERNAL_IP4_ADDRESS"), Some("192.168.99.7"));
    }

    #[test]
    fn a_script_runs_with_its_reason_and_a_failure_is_named() {
        let dir = std::env::temp_dir().join(format!("corridor-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("out");
        let s = Script::new(&format!("echo \"$reason $TUNDEV $CISCO_SPLIT_INC\" > {}", out.display())).for_tunnel(
            "corridor9",
            "10.10.0.1:443".parse().expect("addr"),
            &config(),
        );
        s.run("connect").expect("runs");
        assert_eq!(std::fs::read_to_string(&out).expect("written").trim(), "connect corridor9 2");
        let e = Script::new("exit 3").run("connect").expect_err("fails");
        assert!(e.contains("exit 3") && e.contains("(connect)"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
