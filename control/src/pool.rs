//! The client address pool. A session's id *is* its address's offset in the
//! pool, so the data plane finds a session from a packet's destination with
//! an array index, and a reconnecting session keeps its address by keeping
//! its id.

use std::net::Ipv4Addr;

use proto::grant::SessionId;
use proto::ip::Ipv4Net;

#[derive(Debug)]
pub struct AddressPool {
    net: Ipv4Net,
    used: Vec<bool>,
    /// Where the next search starts, so a released address is not handed
    /// straight to the next device (stale routes and ARP entries age out).
    cursor: usize,
}

impl AddressPool {
    /// Offsets 0 (network), 1 (the gateway) and the last (broadcast) are
    /// never handed out.
    pub fn new(net: Ipv4Net) -> Self {
        let size = 1usize << (32 - u32::from(net.prefix.min(32)));
        let mut used = vec![false; size];
        for i in [0, 1, size.saturating_sub(1)] {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
        Self { net, used, cursor: 2 }
    }

    pub fn network(&self) -> Ipv4Net {
        self.net
    }

    pub fn capacity(&self) -> usize {
        self.used.len().saturating_sub(3)
    }

    pub fn in_use(&self) -> usize {
        self.used.iter().filter(|u| **u).count().saturating_sub(3)
    }

    pub fn address(&self, id: SessionId) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.network()).wrapping_add(id.0))
    }

    /// The session id of a pool address.
    pub fn id_of(&self, a: Ipv4Addr) -> Option<SessionId> {
        if !self.net.contains(a) {
            return None;
        }
        Some(SessionId(u32::from(a) - u32::from(self.net.network())))
    }

    pub fn allocate(&mut self) -> Option<SessionId> {
        self.allocate_where(|_| true)
    }

    /// A free address whose offset `mine` accepts (a cluster node's share).
    pub fn allocate_where(&mut self, mine: impl Fn(usize) -> bool) -> Option<SessionId> {
        let n = self.used.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            if !mine(i) {
                continue;
            }
            if let Some(u) = self.used.get_mut(i) {
                if !*u {
                    *u = true;
                    self.cursor = i + 1;
                    return u32::try_from(i).ok().map(SessionId);
                }
            }
        }
        None
    }

    /// Takes `id`'s address if it is a free host address (a session
    /// another cluster node began, reconnecting here).
    pub fn take(&mut self, id: SessionId) -> bool {
        let i = id.0 as usize;
        match self.used.get_mut(i) {
            Some(u) if !*u => {
                *u = true;
                true
            }
            _ => false,
        }
    }

    pub fn release(&mut self, id: SessionId) {
        let i = id.0 as usize;
        if i >= 2 && i + 1 < self.used.len() {
            if let Some(u) = self.used.get_mut(i) {
                *u = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_hosts_only_and_reuses_late() {
        let mut p = AddressPool::new("10.0.0.0/29".parse().expect("net"));
        assert_eq!(p.capacity(), 5);
        let ids: Vec<_> = (0..5).map(|_| p.allocate().expect("free")).collect();
        assert_eq!(p.address(ids[0]), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.address(ids[4]), Ipv4Addr::new(10, 0, 0, 6));
        assert!(p.allocate().is_none(), "broadcast never handed out");
        assert!(!p.take(ids[0]), "in use");
        assert!(!p.take(SessionId(7)), "broadcast");
        p.release(ids[1]);
        assert_eq!(p.allocate(), Some(ids[1]));
        assert_eq!(p.id_of(Ipv4Addr::new(10, 0, 0, 4)), Some(ids[2]));
        assert_eq!(p.id_of(Ipv4Addr::new(10, 0, 1, 4)), None);
    }
}
