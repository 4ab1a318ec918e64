//! The simulated nodes' settings and the text forms they are given in: Go durations (the
//! `sim.skiff.dev/run-for` annotation, as `time.ParseDuration` reads them) and capacities
//! (`--sim-capacity cpu=32,memory=256Gi,pods=110`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What the simulated nodes of one process look like and how often they report.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many nodes: `<name_prefix>0` .. `<name_prefix><count - 1>`.
    pub count: usize,
    /// The nodes' name prefix (`sim-`).
    pub name_prefix: String,
    /// Each node's capacity, also its allocatable.
    pub capacity: BTreeMap<String, Quantity>,
    /// How often each node's Lease is renewed (upstream: 10 s, a quarter of its duration).
    pub lease_interval: Duration,
    /// The Lease's `leaseDurationSeconds` (upstream: 40).
    pub lease_duration_seconds: i32,
    /// How often a node posts its status when nothing changed (upstream's
    /// `nodeStatusReportFrequency`); a change is posted at once.
    pub status_report_interval: Duration,
    /// The InternalIP of node 0; node `i` has this address plus `i`.
    pub node_ip_start: Ipv4Addr,
    /// Labels every node gets besides the ones a kubelet sets (kubelet's `--node-labels`).
    pub labels: BTreeMap<String, String>,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: String,
    /// At most this many API requests at a time, for all nodes together.
    pub max_in_flight: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            count: 0,
            name_prefix: "sim-".into(),
            capacity: default_capacity(),
            lease_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_report_interval: Duration::from_secs(60),
            node_ip_start: Ipv4Addr::new(10, 41, 0, 1),
            labels: BTreeMap::new(),
            kubelet_version: "v1.33.0+skiff".into(),
            max_in_flight: 32,
        }
    }
}

/// `cpu=32,memory=256Gi,pods=110`, kwok's default node.
pub fn default_capacity() -> BTreeMap<String, Quantity> {
    [("cpu", "32"), ("memory", "256Gi"), ("pods", "110")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
        .collect()
}

/// Parses `name=quantity[,name=quantity...]` (`cpu=32,memory=256Gi,pods=110`).
pub fn parse_capacity(text: &str) -> Result<BTreeMap<String, Quantity>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not name=quantity (like cpu=32)"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(format!("{item:?} has no resource name"));
        }
        if !is_quantity(value) {
            return Err(format!(
                "{value:?} is not a quantity (like 32, 500m, 256Gi, 1e3)"
            ));
        }
        out.insert(name.to_owned(), Quantity(value.to_owned()));
    }
    if out.is_empty() {
        return Err(format!("{text:?} names no resource (like cpu=32,pods=110)"));
    }
    Ok(out)
}

/// Whether `text` has the shape of a Kubernetes quantity: a non-negative decimal number and
/// an optional binary (Ki..Ei), decimal (n, u, m, k, M..E) or exponent suffix.
fn is_quantity(text: &str) -> bool {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    let digits = number.trim_start_matches('+');
    if digits.is_empty() || digits.matches('.').count() > 1 || digits == "." {
        return false;
    }
    match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        s => s
            .strip_prefix(['e', 'E'])
            .map(|e| e.trim_start_matches(['+', '-']))
            .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())),
    }
}

/// Parses a duration as Go's `time.ParseDuration` does (`1s`, `1m30s`, `1.5h`, `500ms`,
/// `0`); negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 1s, 500ms, 1m30s)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        for (text, want) in [
            ("1s", Duration::from_secs(1)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h0m0s", Duration::from_secs(7200)),
            ("10us", Duration::from_micros(10)),
        ] {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "1", "s", "1x", "-1s", "1..5s", "1s-"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacities_parse_and_bad_ones_are_named() {
        let c =
            parse_capacity("cpu=32, memory=256Gi,pods=110,ephemeral-storage=1e12").expect("valid");
        assert_eq!(c["cpu"], Quantity("32".into()));
        assert_eq!(c["memory"], Quantity("256Gi".into()));
        assert_eq!(c["pods"], Quantity("110".into()));
        assert_eq!(c["ephemeral-storage"], Quantity("1e12".into()));
        assert_eq!(parse_capacity("cpu=500m").map(|c| c.len()), Ok(1));
        for bad in [
            "",
            "cpu",
            "=3",
            "cpu=lots",
            "memory=1Gb",
            "cpu=1.2.3",
            "cpu=-1",
        ] {
            assert!(parse_capacity(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_capacity("cpu=32,memory=256Gi,pods=110"),
            Ok(default_capacity())
        );
    }
}
