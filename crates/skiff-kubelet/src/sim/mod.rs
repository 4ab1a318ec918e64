//! Simulated nodes: `count` Nodes (`sim-0`, `sim-1`, ...) that register, renew their Leases
//! in `kube-node-lease` every 10 s, post their status (Ready and no pressure) every minute
//! or at once when it changed, and make every pod bound to them look as a kubelet would
//! make it look — pod IP from the node's `spec.podCIDR`, conditions, container statuses,
//! `Running`, and `Succeeded` or `Failed` when a batch pod's run ends (see [`pod`]) — then
//! finish graceful deletions. Nothing runs: no image is pulled, no process started.
//!
//! Built to hold thousands of nodes in one process: one task ([`driver`]), one watch of
//! Nodes and one of bound Pods, one timer queue, Lease renewals spread over their interval,
//! and a bounded number of requests in flight. Everything that decides is pure and tested
//! alone: [`pod`] (a pod's state at a time and its status), [`node`] (the Node, its status,
//! its Lease), [`ipam`] (addresses from a range), [`schedule`] (timers and slots).
//!
//! Upstream counterparts: kwok's node and pod stages (sigs.k8s.io/kwok), and for what is
//! written, the kubelet's pkg/kubelet/nodestatus, pkg/kubelet/nodelease and
//! pkg/kubelet/status.

pub mod config;
mod driver;
pub mod ids;
pub mod ipam;
pub mod node;
pub mod pod;
pub mod schedule;

pub use config::{parse_capacity, parse_go_duration, SimConfig};

/// Why the simulated nodes stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid simulated node configuration: {0}")]
    Config(String),
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// Whether `prefix` followed by a number is a valid node name (a DNS subdomain).
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() < 240
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !prefix.contains("..")
        && !prefix.contains(".-")
        && !prefix.contains("-.")
        && !prefix.ends_with('.')
}

/// Checks `config` before anything is registered.
pub fn validate(config: &SimConfig) -> Result<(), Error> {
    if !valid_prefix(&config.name_prefix) {
        return Err(Error::Config(format!(
            "the node name prefix {:?} does not make valid node names (lowercase letters, \
             digits, '-' and '.', starting with a letter or digit)",
            config.name_prefix
        )));
    }
    if config.lease_interval.is_zero() || config.status_report_interval.is_zero() {
        return Err(Error::Config(
            "the lease and status report intervals must be longer than zero".into(),
        ));
    }
    if config.lease_duration_seconds <= 0 {
        return Err(Error::Config(
            "the lease duration must be at least a second".into(),
        ));
    }
    Ok(())
}

/// Runs `config.count` simulated nodes with `client` until the task is dropped. Returns
/// at once for no nodes; an error only for a bad configuration or a watch that ended.
pub async fn run(client: kube::Client, config: SimConfig) -> Result<(), Error> {
    validate(&config)?;
    if config.count == 0 {
        return Ok(());
    }
    let kernel_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let boot_seed = k8s_openapi::jiff::Timestamp::now()
        .as_nanosecond()
        .to_string();
    let host = node::Host {
        kernel_version,
        boot_seed,
    };
    driver::Driver::new(client, config, host).run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_make_node_names() {
        for good in ["sim-", "a", "node.sim-", "rack1-"] {
            assert!(valid_prefix(good), "{good}");
        }
        for bad in ["", "Sim-", "-sim", "sim_", "sim.", "a..b", "a.-b"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
        assert!(validate(&SimConfig::default()).is_ok());
        let zero = SimConfig {
            lease_interval: std::time::Duration::ZERO,
            ..SimConfig::default()
        };
        assert!(validate(&zero).is_err());
    }
}
