//! Pod addresses: each pod gets an IPv4 address from the node's pod CIDR
//! (`spec.podCIDR`, allocated by the control plane). A Wasm pod has no network
//! interface: the address is the pod's identity in Services' endpoints, which
//! the node proxy maps back to the pod.
//!
//! A pod keeps the address its status already names (a node restart changes
//! nothing); new addresses go round the block from where the last one was
//! taken, so a freed address is reused as late as possible (a terminating
//! pod's endpoint may still be listed for a moment).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

#[derive(Debug, Default)]
pub(super) struct PodAddresses {
    cidr: Option<Ipv4Net>,
    by_uid: HashMap<String, Ipv4Addr>,
    used: HashSet<Ipv4Addr>,
    /// Offset in the block of the next address to try.
    next: u32,
}

impl PodAddresses {
    /// Sets the node's block; whether it changed.
    pub(super) fn set_cidr(&mut self, cidr: Ipv4Net) -> bool {
        if self.cidr == Some(cidr) {
            return false;
        }
        self.cidr = Some(cidr);
        // Addresses outside the new block are no longer this node's to give.
        self.by_uid.retain(|_, ip| cidr.contains(&*ip));
        self.used = self.by_uid.values().copied().collect();
        true
    }

    pub(super) fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_uid.get(uid).copied()
    }

    /// The pod's address: the one it has, else `preferred` (what its status
    /// says) if that is free and in the block, else the next free one; `None`
    /// without a block or when the block is full.
    pub(super) fn assign(&mut self, uid: &str, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Some(*ip);
        }
        let cidr = self.cidr?;
        let ip = match preferred.filter(|ip| self.usable(cidr, *ip)) {
            Some(ip) => ip,
            None => self.next_free(cidr)?,
        };
        self.by_uid.insert(uid.to_string(), ip);
        self.used.insert(ip);
        Some(ip)
    }

    pub(super) fn release(&mut self, uid: &str) {
        if let Some(ip) = self.by_uid.remove(uid) {
            self.used.remove(&ip);
        }
    }

    fn usable(&self, cidr: Ipv4Net, ip: Ipv4Addr) -> bool {
        cidr.contains(&ip)
            && ip != cidr.network()
            && ip != cidr.broadcast()
            && !self.used.contains(&ip)
    }

    fn next_free(&mut self, cidr: Ipv4Net) -> Option<Ipv4Addr> {
        let base = u32::from(cidr.network());
        let size = 1u32
            .checked_shl(32 - u32::from(cidr.prefix_len()))
            .unwrap_or(0);
        // The first address is the block's own and the second is kept as the
        // node's, as a CNI bridge would have it.
        let first = 2u32.min(size);
        let hosts = size.saturating_sub(first + 1);
        for i in 0..hosts {
            let offset = first + (self.next + i) % hosts;
            let ip = Ipv4Addr::from(base + offset);
            if self.usable(cidr, ip) {
                self.next = (self.next + i + 1) % hosts;
                return Some(ip);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_the_block_and_are_reused_late() {
        let mut a = PodAddresses::default();
        assert_eq!(a.assign("p0", None), None, "no block yet");
        assert!(a.set_cidr("10.128.0.0/29".parse().expect("cidr")));
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        assert_eq!(a.assign("p1", None), Some(ip("10.128.0.2")));
        assert_eq!(a.assign("p1", None), Some(ip("10.128.0.2")), "stable");
        assert_eq!(
            a.assign("p2", Some(ip("10.128.0.5"))),
            Some(ip("10.128.0.5"))
        );
        assert_eq!(
            a.assign("p3", Some(ip("10.128.0.5"))),
            Some(ip("10.128.0.3")),
            "taken"
        );
        assert_eq!(
            a.assign("p4", Some(ip("10.9.9.9"))),
            Some(ip("10.128.0.4")),
            "outside"
        );
        a.release("p1");
        assert_eq!(
            a.assign("p5", None),
            Some(ip("10.128.0.6")),
            "p1's address waits"
        );
        assert_eq!(a.assign("p6", None), Some(ip("10.128.0.2")));
        assert_eq!(a.assign("p7", None), None, "full");
    }
}
