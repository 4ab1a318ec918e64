//! Facts about the host the node reports: online CPUs, memory (`/proc/meminfo`), huge pages
//! (`/sys/kernel/mm/hugepages`), the data dir's filesystem (statvfs), machine and boot ids,
//! kernel and OS image, and the node's IP. The parsers are pure; [`HostFacts::read`] and
//! [`fs_usage`] do the reading.
//!
//! Upstream: cadvisor's machine info as pkg/kubelet/nodestatus/setters.go `MachineInfo` and
//! `NodeAddress` use it, and `VersionInfo`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::Path;

/// What does not change while the node runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Online CPUs.
    pub cpus: u64,
    /// `MemTotal` in bytes.
    pub memory_bytes: u64,
    /// Huge page sizes in bytes and the bytes reserved in pages of that size.
    pub hugepages: Vec<(u64, u64)>,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl HostFacts {
    /// Reads the facts; what cannot be read stays empty (0, "").
    pub fn read() -> Self {
        let cpus = read_trimmed("/sys/devices/system/cpu/online")
            .and_then(|s| parse_cpu_list(&s))
            .or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .map(|n| n.get() as u64)
            })
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo_field(&meminfo, "MemTotal").unwrap_or(0);
        let mut hugepages = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(size) = name.to_str().and_then(parse_hugepages_dir) else {
                    continue;
                };
                let pages = read_trimmed(entry.path().join("nr_hugepages"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                hugepages.push((size, size.saturating_mul(pages)));
            }
        }
        hugepages.sort();
        HostFacts {
            cpus,
            memory_bytes,
            hugepages,
            machine_id: read_trimmed("/etc/machine-id").unwrap_or_default(),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid").unwrap_or_default(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|s| pretty_name(&s))
                .unwrap_or_else(|| "Linux".into()),
        }
    }
}

/// The number of CPUs in a kernel CPU list (`0-3,6,8-9`).
pub fn parse_cpu_list(text: &str) -> Option<u64> {
    let mut n = 0u64;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
                n += b.checked_sub(a)? + 1;
            }
            None => {
                part.parse::<u64>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

/// A `/proc/meminfo` field in bytes (`MemTotal:  16318112 kB`).
pub fn meminfo_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != field {
            return None;
        }
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse::<u64>().ok()?;
        match parts.next() {
            Some("kB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// The page size in bytes of a `/sys/kernel/mm/hugepages` entry (`hugepages-2048kB`).
pub fn parse_hugepages_dir(name: &str) -> Option<u64> {
    let kb = name.strip_prefix("hugepages-")?.strip_suffix("kB")?;
    kb.parse::<u64>().ok()?.checked_mul(1024)
}

/// `PRETTY_NAME` of an os-release file, unquoted.
pub fn pretty_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        Some(value.to_owned()).filter(|v| !v.is_empty())
    })
}

/// A filesystem's size and free space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// statvfs of `path` (the node's data dir: the kubelet's nodefs).
pub fn fs_usage(path: &Path) -> Option<FsStats> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let fragment = st.fragment_size() as u64;
    Some(FsStats {
        capacity_bytes: (st.blocks() as u64).saturating_mul(fragment),
        available_bytes: (st.blocks_available() as u64).saturating_mul(fragment),
    })
}

/// `MemAvailable` now, in bytes (for memory.available).
pub fn memory_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_field(&meminfo, "MemAvailable")
}

/// The node's IP when `--node-ip` is not given: the source address of the default route
/// (what a UDP socket connected to a public address gets; nothing is sent), else the
/// first non-loopback address of an interface that is up.
pub fn default_node_ip() -> Option<IpAddr> {
    let probe = |bind: IpAddr, to: IpAddr| -> Option<IpAddr> {
        let socket = UdpSocket::bind((bind, 0)).ok()?;
        socket.connect((to, 53)).ok()?;
        Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    };
    probe(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    )
    .or_else(|| {
        probe(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        )
    })
    .or_else(first_interface_address)
}

fn first_interface_address() -> Option<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut v6 = None;
    for a in addrs {
        if !a.flags.contains(InterfaceFlags::IFF_UP)
            || a.flags.contains(InterfaceFlags::IFF_LOOPBACK)
        {
            continue;
        }
        let Some(address) = a.address else { continue };
        if let Some(v4) = address.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        if let Some(s6) = address.as_sockaddr_in6() {
            let ip = s6.ip();
            // Link-local addresses (fe80::/10) do not reach other nodes.
            if v6.is_none() && (ip.segments()[0] & 0xffc0) != 0xfe80 {
                v6 = Some(IpAddr::V6(ip));
            }
        }
    }
    v6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_files_parse() {
        assert_eq!(parse_cpu_list("0-3,6,8-9\n"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        let meminfo = "MemTotal:       16318112 kB\nMemFree:  100 kB\nMemAvailable:   8000000 kB\nHugePages_Total: 0\n";
        assert_eq!(meminfo_field(meminfo, "MemTotal"), Some(16318112 * 1024));
        assert_eq!(meminfo_field(meminfo, "MemAvailable"), Some(8000000 * 1024));
        assert_eq!(meminfo_field(meminfo, "HugePages_Total"), Some(0));
        assert_eq!(meminfo_field(meminfo, "Nope"), None);
        assert_eq!(parse_hugepages_dir("hugepages-2048kB"), Some(2 << 20));
        assert_eq!(parse_hugepages_dir("hugepages-1048576kB"), Some(1 << 30));
        assert_eq!(parse_hugepages_dir("other"), None);
        assert_eq!(
            pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name("PRETTY_NAME=Alpine").as_deref(), Some("Alpine"));
        assert_eq!(pretty_name("NAME=x"), None);
    }
}
