//! Pod IPs from a node's `spec.podCIDR`, as the host-local CNI plugin hands them out: the
//! network address, the first address (the bridge's gateway) and the broadcast address are
//! never given; addresses go round-robin from the last one given, so a freed address is not
//! reused at once. IPv4 only (a dual-stack node's IPv6 range is not used yet).

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub bits: u8,
}

impl Cidr {
    /// `10.42.1.0/24`; host bits are cleared. `None` for anything else (IPv6 included).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, bits) = text.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        if bits > 32 {
            return None;
        }
        Some(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(bits)),
            bits,
        })
    }

    /// How many addresses the range spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.bits))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.bits) == u32::from(self.addr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

fn mask(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    }
}

/// The addresses of one node's range, which of them pods hold, and where the next search
/// starts.
#[derive(Clone, Debug)]
pub struct IpPool {
    cidr: Cidr,
    /// Offsets into the range of the addresses in use.
    used: HashSet<u32>,
    /// The offset given last.
    last: u32,
}

impl IpPool {
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            used: HashSet::new(),
            last: 1,
        }
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The offsets pods may get: past the network address and the gateway, before the
    /// broadcast address. Empty for ranges smaller than a /30.
    fn usable(&self) -> std::ops::Range<u64> {
        let size = self.cidr.size();
        if size < 4 {
            0..0
        } else {
            2..size - 1
        }
    }

    fn offset_of(&self, ip: Ipv4Addr) -> Option<u32> {
        if !self.cidr.contains(ip) {
            return None;
        }
        let offset = u32::from(ip) - u32::from(self.cidr.addr);
        self.usable().contains(&u64::from(offset)).then_some(offset)
    }

    fn ip_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.addr).wrapping_add(offset))
    }

    /// The next free address after the last one given (wrapping), or `None` when all are
    /// in use.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let usable = self.usable();
        let count = usable.end.saturating_sub(usable.start);
        if self.used.len() as u64 >= count {
            return None;
        }
        let mut offset = u64::from(self.last);
        for _ in 0..count {
            offset += 1;
            if offset >= usable.end || offset < usable.start {
                offset = usable.start;
            }
            // The range is at most 2^32 addresses, so the offset fits.
            let candidate = offset as u32;
            if self.used.insert(candidate) {
                self.last = candidate;
                return Some(self.ip_at(candidate));
            }
        }
        None
    }

    /// Marks `ip` in use (a pod that already had it, found after a restart). False when it
    /// is outside the usable range or already taken.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        match self.offset_of(ip) {
            Some(offset) => self.used.insert(offset),
            None => false,
        }
    }

    /// Frees `ip` (nothing happens if it was not in use).
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(offset) = self.offset_of(ip) {
            self.used.remove(&offset);
        }
    }

    /// How many addresses are in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().expect("an address")
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.42.1.7/24").expect("valid");
        assert_eq!(c.to_string(), "10.42.1.0/24");
        assert!(c.contains(ip("10.42.1.255")));
        assert!(!c.contains(ip("10.42.2.0")));
        assert_eq!(c.size(), 256);
        for bad in ["10.42.1.0", "10.42.1.0/33", "fd00::/64", "x/24"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    /// The gateway and the network and broadcast addresses are never given; the rest go in
    /// order, then the pool is full.
    #[test]
    fn a_range_hands_out_every_host_address_but_the_gateway() {
        let mut pool = IpPool::new(Cidr::parse("10.42.3.0/29").expect("valid"));
        let given: Vec<_> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(
            given,
            [
                "10.42.3.2",
                "10.42.3.3",
                "10.42.3.4",
                "10.42.3.5",
                "10.42.3.6"
            ]
            .map(ip)
            .to_vec()
        );
        assert_eq!(pool.in_use(), 5);
        assert_eq!(pool.allocate(), None);
    }

    /// A freed address comes back only after the others, as host-local's round robin.
    #[test]
    fn freed_addresses_are_reused_last() {
        let mut pool = IpPool::new(Cidr::parse("10.42.0.0/24").expect("valid"));
        let a = pool.allocate().expect("free");
        let b = pool.allocate().expect("free");
        assert_eq!((a, b), (ip("10.42.0.2"), ip("10.42.0.3")));
        pool.release(a);
        assert_eq!(pool.allocate(), Some(ip("10.42.0.4")));
        for _ in 5..=254 {
            assert!(pool.allocate().is_some());
        }
        // Wrapped around: the only free address left is the first one freed.
        assert_eq!(pool.allocate(), Some(a));
        assert_eq!(pool.allocate(), None);
        pool.release(ip("10.42.0.100"));
        assert_eq!(pool.allocate(), Some(ip("10.42.0.100")));
    }

    #[test]
    fn reserving_recovers_addresses_in_use_and_refuses_the_rest() {
        let mut pool = IpPool::new(Cidr::parse("10.42.0.0/24").expect("valid"));
        assert!(pool.reserve(ip("10.42.0.2")));
        assert!(!pool.reserve(ip("10.42.0.2")), "taken twice");
        for not_usable in ["10.42.0.0", "10.42.0.1", "10.42.0.255", "10.42.1.5"] {
            assert!(!pool.reserve(ip(not_usable)), "{not_usable}");
        }
        assert_eq!(pool.allocate(), Some(ip("10.42.0.3")));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn tiny_ranges_have_no_pod_addresses() {
        for tiny in ["10.0.0.0/31", "10.0.0.0/32"] {
            let mut pool = IpPool::new(Cidr::parse(tiny).expect("valid"));
            assert_eq!(pool.allocate(), None, "{tiny}");
        }
        let mut pool = IpPool::new(Cidr::parse("10.0.0.0/30").expect("valid"));
        assert_eq!(pool.allocate(), Some(ip("10.0.0.2")));
        assert_eq!(pool.allocate(), None);
    }
}
