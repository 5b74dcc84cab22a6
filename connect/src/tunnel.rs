//! The tunnel's interface on the device: the TUN (single-queue, never one
//! in use) and the routes into it, in the main table or, with per-app
//! selection, in a table only the listed apps' packets reach.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proto::connect::TunnelConfig;
use proto::ip::Ipv4Net;

use crate::apps::AppTunnel;
use crate::netlink::{Netlink, Path, Route};

/// The TUN, the routes that outlive it (through the old path) to delete,
/// and the per-app machinery when only listed apps use the tunnel.
pub(crate) struct Tunnel {
    pub(crate) name: String,
    pub(crate) file: File,
    pub(crate) index: u32,
    pub(crate) address: Ipv4Addr,
    pub(crate) added: Vec<Route>,
    pub(crate) apps: Option<AppTunnel>,
    /// `--dns`: what was changed, to undo.
    pub(crate) dns: Option<crate::dns::Dns>,
    /// `--script`: the vpnc-script that configured it, with its environment.
    pub(crate) script: Option<crate::script::Script>,
}

/// Creates the TUN `name`, refusing one that is in use.
pub(crate) fn open_tun(name: &str) -> Result<File, String> {
    let fd = dataplane::tun::open_tun_exclusive(name).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EINVAL) => {
            format!("TUN {name}: an interface of that name is in use (choose another with --interface)")
        }
        _ => format!("TUN {name}: {e}"),
    })?;
    Ok(File::from(fd))
}

/// Split-include routes through the TUN; with none, everything through it
/// and the gateway (and split-exclude routes) through the path it had.
/// With per-app selection the routes go into the apps' own table (with
/// none, a default route there), and the main table is left alone.
pub(crate) fn add_routes(t: &mut Tunnel, config: &TunnelConfig, gateway: SocketAddr) -> Result<(), String> {
    let mut nl = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    let through_tun = Path { gateway: None, oif: t.index };
    if let Some(apps) = &t.apps {
        // In the main table too, for the first lookup (see crate::apps);
        // what is not the apps' is dropped on its way into the TUN.
        for net in &config.split_include {
            let route = Route { destination: *net, path: through_tun, table: None };
            match nl.add(route) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(format!("adding the route {route}: {e}")),
            }
        }
        let mut inside = config.split_include.clone();
        if inside.is_empty() {
            inside.extend(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0));
        }
        if !config.split_exclude.is_empty() {
            tracing::warn!("split-exclude routes are not used with per-app selection: listed apps reach nothing outside the tunnel");
        }
        for net in inside {
            let route = Route { destination: net, path: through_tun, table: Some(apps.table) };
            match nl.add(route) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(format!("adding the route {route}: {e}")),
            }
            tracing::info!(route = %net, interface = %t.name, table = apps.table, "route into the tunnel, for the listed apps");
        }
        return Ok(());
    }
    let mut outside = Vec::new();
    let mut inside = config.split_include.clone();
    if inside.is_empty() {
        let IpAddr::V4(gw) = gateway.ip() else { return Err("the gateway is not IPv4".into()) };
        outside.push(Ipv4Net { addr: gw, prefix: 32 });
        inside = ["0.0.0.0/1", "128.0.0.0/1"].iter().filter_map(|n| n.parse().ok()).collect();
    }
    outside.extend(config.split_exclude.iter().copied());
    // The old paths first: once the tunnel routes are in, they lead into it.
    let mut old = Vec::new();
    for net in outside {
        let path = nl.path_to(net.network()).map_err(|e| format!("the route to {net}: {e}"))?;
        old.push(Route { destination: net, path, table: None });
    }
    for route in old {
        match nl.add(route) {
            Ok(()) => t.added.push(route),
            // Someone's route already: used, not ours to delete.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("adding the route {route}: {e}")),
        }
        tracing::info!(%route, "route kept outside the tunnel");
    }
    for net in inside {
        let route = Route { destination: net, path: through_tun, table: None };
        match nl.add(route) {
            // Routes through the TUN go with it: nothing to delete later.
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("adding the route {net} dev {}: {e}", t.name)),
        }
        tracing::info!(route = %net, interface = %t.name, "route into the tunnel");
    }
    Ok(())
}

/// Removes what [`add_routes`] and the per-app setup added outside the TUN
/// (what lives on the TUN goes with it).
pub(crate) fn remove_routes(t: &Tunnel) {
    if let Some(script) = &t.script {
        script.run_logged("disconnect");
        return;
    }
    if let Some(apps) = &t.apps {
        apps.stop();
    }
    if let Some(dns) = &t.dns {
        dns.undo();
    }
    let Ok(mut nl) = Netlink::open() else { return };
    for route in &t.added {
        if let Err(e) = nl.delete(*route) {
            tracing::warn!(%route, error = %e, "could not remove a route this client added");
        }
    }
}
