//! The real node's status, as upstream's status setters compute it: capacity from the host,
//! allocatable (capacity less reservations and hard eviction thresholds), addresses, the
//! kubelet's endpoint, node info, the four conditions and the images on the node. Pure.
//!
//! Upstream: pkg/kubelet/nodestatus/setters.go (`NodeAddress`, `MachineInfo`,
//! `VersionInfo`, `DaemonEndpoints`, `Images`, `ReadyCondition`, `MemoryPressureCondition`,
//! `DiskPressureCondition`, `PIDPressureCondition`), pkg/kubelet/eviction/defaults_linux.go
//! (the hard eviction thresholds), pkg/kubelet/kubelet_node_status.go (`nodeStatusMaxImages`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use skiff_api::validation::quantity::{Format, Quantity as Exact};
use skiff_runtime::cri::ImageInfo;

use super::common::{self, Condition};
use super::host::{FsStats, HostFacts};

/// At most this many images in `status.images` (upstream's `nodeStatusMaxImages`).
pub const MAX_IMAGES: usize = 50;
/// At most this many names per image (upstream's `MaxNamesPerImageInNodeStatus`).
pub const MAX_NAMES_PER_IMAGE: usize = 5;
/// The hard eviction threshold `memory.available<100Mi`.
pub const EVICTION_MEMORY_AVAILABLE: u64 = 100 << 20;
/// The hard eviction threshold `nodefs.available<10%`.
pub const EVICTION_NODEFS_PERCENT: u64 = 10;
/// The hard eviction threshold `imagefs.available<15%`.
pub const EVICTION_IMAGEFS_PERCENT: u64 = 15;

const NANO: i128 = 1_000_000_000;

fn exact(value: u64, format: Format) -> Exact {
    Exact {
        nanos: i128::from(value) * NANO,
        format,
    }
}

fn quantity(q: Exact) -> Quantity {
    Quantity(q.canonical())
}

/// `hugepages-<size>` as upstream's `HugePageResourceName` (`hugepages-2Mi`).
pub fn hugepage_resource(page_size: u64) -> String {
    format!(
        "hugepages-{}",
        exact(page_size, Format::BinarySi).canonical()
    )
}

/// The node's capacity: cpu, memory, ephemeral-storage (the data dir's filesystem), pods
/// and every huge page size.
pub fn capacity(
    facts: &HostFacts,
    nodefs: Option<FsStats>,
    max_pods: i64,
) -> BTreeMap<String, Quantity> {
    let mut c = BTreeMap::new();
    c.insert("cpu".into(), quantity(exact(facts.cpus, Format::DecimalSi)));
    c.insert(
        "memory".into(),
        quantity(exact(facts.memory_bytes, Format::BinarySi)),
    );
    if let Some(fs) = nodefs {
        c.insert(
            "ephemeral-storage".into(),
            quantity(exact(fs.capacity_bytes, Format::BinarySi)),
        );
    }
    c.insert(
        "pods".into(),
        quantity(exact(
            u64::try_from(max_pods).unwrap_or(0),
            Format::DecimalSi,
        )),
    );
    for (size, bytes) in &facts.hugepages {
        c.insert(
            hugepage_resource(*size),
            quantity(exact(*bytes, Format::BinarySi)),
        );
    }
    c
}

fn parse(q: &Quantity) -> Option<Exact> {
    Exact::parse(&q.0).ok()
}

/// Allocatable as `MachineInfo` computes it: capacity less kube-reserved, system-reserved
/// and the hard eviction thresholds (memory.available 100Mi, nodefs.available 10% of
/// ephemeral-storage), never below zero; then every huge page capacity comes off memory.
pub fn allocatable(
    capacity: &BTreeMap<String, Quantity>,
    kube_reserved: &BTreeMap<String, Quantity>,
    system_reserved: &BTreeMap<String, Quantity>,
) -> BTreeMap<String, Quantity> {
    let mut reservation: BTreeMap<&str, Exact> = BTreeMap::new();
    for (name, q) in kube_reserved.iter().chain(system_reserved) {
        if let Some(q) = parse(q) {
            let sum = reservation
                .get(name.as_str())
                .copied()
                .unwrap_or_else(Exact::zero)
                + q;
            reservation.insert(name.as_str(), sum);
        }
    }
    let mut eviction: BTreeMap<&str, Exact> = BTreeMap::new();
    eviction.insert("memory", exact(EVICTION_MEMORY_AVAILABLE, Format::BinarySi));
    if let Some(storage) = capacity.get("ephemeral-storage").and_then(parse) {
        let tenth = (storage.nanos / NANO) * i128::from(EVICTION_NODEFS_PERCENT) / 100;
        eviction.insert(
            "ephemeral-storage",
            Exact {
                nanos: tenth * NANO,
                format: Format::BinarySi,
            },
        );
    }
    let non_negative = |q: Exact| if q.nanos < 0 { Exact::zero() } else { q };
    let mut out: BTreeMap<String, Exact> = BTreeMap::new();
    for (name, q) in capacity {
        let Some(mut value) = parse(q) else { continue };
        for table in [&reservation, &eviction] {
            if let Some(r) = table.get(name.as_str()) {
                value = value - *r;
            }
        }
        out.insert(name.clone(), non_negative(value));
    }
    for (name, q) in capacity {
        if name.starts_with("hugepages-") {
            if let (Some(pages), Some(memory)) = (parse(q), out.get("memory").copied()) {
                out.insert("memory".into(), non_negative(memory - pages));
            }
        }
    }
    out.into_iter().map(|(k, v)| (k, quantity(v))).collect()
}

/// `status.images`: biggest first, at most [`MAX_IMAGES`], each named by its repo digests
/// then its tags (at most [`MAX_NAMES_PER_IMAGE`]).
pub fn images(list: &[ImageInfo]) -> Vec<ContainerImage> {
    let mut sorted: Vec<&ImageInfo> = list.iter().collect();
    sorted.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.id.cmp(&b.id)));
    sorted
        .into_iter()
        .take(MAX_IMAGES)
        .map(|image| {
            let names: Vec<String> = image
                .repo_digests
                .iter()
                .chain(&image.repo_tags)
                .take(MAX_NAMES_PER_IMAGE)
                .cloned()
                .collect();
            ContainerImage {
                names: Some(names),
                size_bytes: Some(i64::try_from(image.size).unwrap_or(i64::MAX)),
            }
        })
        .collect()
}

/// What the node observed for its pressure conditions (the hard eviction thresholds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory_available: Option<u64>,
    pub nodefs: Option<FsStats>,
    pub imagefs: Option<FsStats>,
}

fn below_percent(fs: Option<FsStats>, percent: u64) -> bool {
    fs.is_some_and(|fs| {
        u128::from(fs.available_bytes) * 100 < u128::from(fs.capacity_bytes) * u128::from(percent)
    })
}

/// MemoryPressure, DiskPressure, PIDPressure and Ready, in upstream's order.
pub fn wanted_conditions(pressure: Pressure, network_ready: bool) -> [Condition; 4] {
    let memory = if pressure
        .memory_available
        .is_some_and(|a| a < EVICTION_MEMORY_AVAILABLE)
    {
        common::MEMORY_PRESSURE
    } else {
        common::MEMORY_OK
    };
    let disk = if below_percent(pressure.nodefs, EVICTION_NODEFS_PERCENT)
        || below_percent(pressure.imagefs, EVICTION_IMAGEFS_PERCENT)
    {
        common::DISK_PRESSURE
    } else {
        common::DISK_OK
    };
    let ready = if network_ready {
        common::READY
    } else {
        common::NETWORK_NOT_READY
    };
    [memory, disk, common::PID_OK, ready]
}

/// Everything a status report is made from.
#[derive(Clone, Debug)]
pub struct StatusInputs<'a> {
    pub name: &'a str,
    pub node_ip: Option<IpAddr>,
    pub facts: &'a HostFacts,
    pub capacity: BTreeMap<String, Quantity>,
    pub allocatable: BTreeMap<String, Quantity>,
    pub kubelet_port: i32,
    pub runtime_version: &'a str,
    pub kubelet_version: &'a str,
    pub images: &'a [ImageInfo],
    pub pressure: Pressure,
    pub network_ready: bool,
    /// A graceful node shutdown is under way (Ready=False, `node is shutting down`).
    pub shutting_down: bool,
}

/// The status posted at `now` (conditions keep their transition times from `observed`).
pub fn node_status(
    inputs: &StatusInputs<'_>,
    now: Timestamp,
    observed: Option<&NodeStatus>,
) -> NodeStatus {
    let mut wanted = wanted_conditions(inputs.pressure, inputs.network_ready);
    if inputs.shutting_down {
        wanted[3] = common::SHUTTING_DOWN;
    }
    let mut addresses = Vec::new();
    if let Some(ip) = inputs.node_ip {
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: inputs.name.to_owned(),
    });
    let facts = inputs.facts;
    NodeStatus {
        addresses: Some(addresses),
        allocatable: Some(inputs.allocatable.clone()),
        capacity: Some(inputs.capacity.clone()),
        conditions: Some(common::conditions(&wanted, now, observed)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: inputs.kubelet_port,
            }),
        }),
        images: Some(images(inputs.images)),
        node_info: Some(NodeSystemInfo {
            architecture: common::arch().into(),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: inputs.runtime_version.to_owned(),
            kernel_version: facts.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: inputs.kubelet_version.to_owned(),
            machine_id: facts.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.os_image.clone(),
            system_uuid: facts.system_uuid.clone(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 4,
            memory_bytes: 16318112 * 1024,
            hugepages: vec![(2 << 20, 64 << 20)],
            ..HostFacts::default()
        }
    }

    #[test]
    fn capacity_comes_from_the_host() {
        let fs = FsStats {
            capacity_bytes: 100 << 30,
            available_bytes: 50 << 30,
        };
        let c = capacity(&facts(), Some(fs), 110);
        let shown: Vec<(&str, &str)> = c.iter().map(|(k, v)| (k.as_str(), v.0.as_str())).collect();
        assert_eq!(
            shown,
            vec![
                ("cpu", "4"),
                ("ephemeral-storage", "100Gi"),
                ("hugepages-2Mi", "64Mi"),
                ("memory", "16318112Ki"),
                ("pods", "110"),
            ]
        );
        assert_eq!(hugepage_resource(1 << 30), "hugepages-1Gi");
    }

    #[test]
    fn allocatable_subtracts_reservations_thresholds_and_hugepages() {
        let fs = FsStats {
            capacity_bytes: 100 << 30,
            available_bytes: 50 << 30,
        };
        let c = capacity(&facts(), Some(fs), 110);
        let kube: BTreeMap<String, Quantity> = [
            ("cpu".to_owned(), q("500m")),
            ("memory".to_owned(), q("1Gi")),
        ]
        .into();
        let system: BTreeMap<String, Quantity> =
            [("cpu".to_owned(), q("250m")), ("pods".to_owned(), q("200"))].into();
        let a = allocatable(&c, &kube, &system);
        assert_eq!(a["cpu"], q("3250m"));
        // 16318112Ki - 1Gi - 100Mi (eviction) - 64Mi (huge pages) = 15101600Ki.
        assert_eq!(a["memory"], q("15101600Ki"));
        // 10% of 100Gi stays for eviction: 90Gi.
        assert_eq!(a["ephemeral-storage"], q("90Gi"));
        assert_eq!(a["hugepages-2Mi"], q("64Mi"));
        // Never below zero.
        assert_eq!(a["pods"], q("0"));
        // Nothing reserved: capacity less the thresholds only.
        let none = allocatable(&c, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(none["cpu"], q("4"));
        assert_eq!(none["pods"], q("110"));
    }

    fn image(id: &str, size: u64, tags: &[&str], digests: &[&str]) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size,
            pinned: false,
            config: Default::default(),
        }
    }

    #[test]
    fn images_are_biggest_first_capped_and_named() {
        let mut list: Vec<ImageInfo> = (0..60u64)
            .map(|i| {
                image(
                    &format!("sha256:{i:02}"),
                    i * 10,
                    &[&format!("img:{i}")],
                    &[],
                )
            })
            .collect();
        list.push(image(
            "sha256:big",
            10_000,
            &["a:1", "a:2", "a:3", "a:4"],
            &["a@sha256:1", "a@sha256:2"],
        ));
        let shown = images(&list);
        assert_eq!(shown.len(), MAX_IMAGES);
        assert_eq!(shown[0].size_bytes, Some(10_000));
        assert_eq!(
            shown[0].names.clone().unwrap_or_default(),
            vec!["a@sha256:1", "a@sha256:2", "a:1", "a:2", "a:3"]
        );
        assert_eq!(shown[1].size_bytes, Some(590));
        assert_eq!(shown[49].size_bytes, Some(110));
        assert!(shown.windows(2).all(|w| w[0].size_bytes >= w[1].size_bytes));
    }

    #[test]
    fn pressure_and_network_choose_the_conditions() {
        let fine = Pressure {
            memory_available: Some(1 << 30),
            nodefs: Some(FsStats {
                capacity_bytes: 100,
                available_bytes: 50,
            }),
            imagefs: None,
        };
        assert_eq!(
            wanted_conditions(fine, true),
            [
                common::MEMORY_OK,
                common::DISK_OK,
                common::PID_OK,
                common::READY
            ]
        );
        let tight = Pressure {
            memory_available: Some(99 << 20),
            nodefs: Some(FsStats {
                capacity_bytes: 100,
                available_bytes: 9,
            }),
            imagefs: None,
        };
        let c = wanted_conditions(tight, false);
        assert_eq!(c[0], common::MEMORY_PRESSURE);
        assert_eq!(c[1], common::DISK_PRESSURE);
        assert_eq!(c[3], common::NETWORK_NOT_READY);
        let imagefs = Pressure {
            imagefs: Some(FsStats {
                capacity_bytes: 100,
                available_bytes: 14,
            }),
            ..fine
        };
        assert_eq!(wanted_conditions(imagefs, true)[1], common::DISK_PRESSURE);
    }

    #[test]
    fn a_status_reports_the_host_and_moves_transitions_only_on_change() {
        let facts = facts();
        let images_list = [image("sha256:x", 5, &["x:1"], &[])];
        let mut inputs = StatusInputs {
            name: "node-a",
            node_ip: Some("192.168.1.5".parse().expect("ip")),
            facts: &facts,
            capacity: capacity(&facts, None, 110),
            allocatable: BTreeMap::new(),
            kubelet_port: 10250,
            runtime_version: "runc://1.1.15",
            kubelet_version: "v1.33.0+skiff",
            images: &images_list,
            pressure: Pressure::default(),
            network_ready: false,
            shutting_down: false,
        };
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("t0");
        let t1: Timestamp = "2026-01-01T00:00:10Z".parse().expect("t1");
        let first = node_status(&inputs, t0, None);
        let info = first.node_info.clone().expect("info");
        assert_eq!(info.container_runtime_version, "runc://1.1.15");
        assert_eq!(info.kubelet_version, "v1.33.0+skiff");
        let addresses: Vec<_> = first
            .addresses
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        assert_eq!(
            addresses,
            vec![
                ("InternalIP".to_owned(), "192.168.1.5".to_owned()),
                ("Hostname".to_owned(), "node-a".to_owned())
            ]
        );
        let same = node_status(&inputs, t1, Some(&first));
        assert!(!common::status_differs(&same, Some(&first)));
        inputs.network_ready = true;
        let ready = node_status(&inputs, t1, Some(&first));
        assert!(common::status_differs(&ready, Some(&first)));
        let conditions = ready.conditions.clone().unwrap_or_default();
        assert_eq!(conditions[3].reason.as_deref(), Some("KubeletReady"));
        assert_eq!(conditions[3].last_transition_time, Some(Time(t1)));
        assert_eq!(conditions[0].last_transition_time, Some(Time(t0)));
        assert_eq!(conditions[0].last_heartbeat_time, Some(Time(t1)));
        inputs.shutting_down = true;
        let t2: Timestamp = "2026-01-01T00:00:20Z".parse().expect("t2");
        let down = node_status(&inputs, t2, Some(&ready));
        let ready_condition = &down.conditions.unwrap_or_default()[3];
        assert_eq!(
            (
                ready_condition.status.as_str(),
                ready_condition.reason.as_deref(),
                ready_condition.message.as_deref()
            ),
            (
                "False",
                Some("KubeletNotReady"),
                Some("node is shutting down")
            )
        );
        assert_eq!(ready_condition.last_transition_time, Some(Time(t2)));
    }
}
