//! The node's Lease in `kube-node-lease`: renewed every quarter of its duration (10 s for
//! 40 s), created (owned by the Node) when missing, retried after a failure with a short
//! back-off capped at 7 s.
//!
//! Upstream: pkg/kubelet/nodelease (`NewController`, `renewIntervalFraction` 0.25) and
//! k8s.io/component-helpers/apimachinery/lease/controller.go (`maxBackoff` 7 s,
//! `setNodeOwnerFunc`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;

use super::common;

/// The renewal interval for a lease of `duration_seconds`.
pub fn renew_interval(duration_seconds: i32) -> Duration {
    Duration::from_secs_f64(f64::from(duration_seconds.max(1)) * 0.25)
}

/// The wait after `failures` failed renewals in a row: 200 ms doubling, at most 7 s.
pub fn retry_delay(failures: u32) -> Duration {
    let ms = 200u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms).min(Duration::from_secs(7))
}

/// Renews one lease now: patch, or create on 404 (owned by the Node `node` shows).
pub async fn renew_once(
    api: &Api<Lease>,
    name: &str,
    node_uid: &str,
    duration_seconds: i32,
) -> Result<(), kube::Error> {
    let now = Timestamp::now();
    let renewal = common::lease_renewal(name, duration_seconds, now);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&renewal))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = common::lease(name, node_uid, duration_seconds, now);
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Keeps the lease of the node `node` shows (its uid for the owner reference) for ever.
pub async fn run(
    client: kube::Client,
    name: String,
    duration_seconds: i32,
    node: watch::Receiver<Arc<Node>>,
) {
    let api: Api<Lease> = Api::namespaced(client, common::LEASE_NAMESPACE);
    let interval = renew_interval(duration_seconds);
    let mut failures = 0u32;
    loop {
        let uid = node.borrow().metadata.uid.clone().unwrap_or_default();
        match renew_once(&api, &name, &uid, duration_seconds).await {
            Ok(()) => {
                failures = 0;
                tokio::time::sleep(interval).await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(node = %name, error = %e, "failed to update lease; retrying");
                tokio::time::sleep(retry_delay(failures)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_upstream() {
        assert_eq!(renew_interval(40), Duration::from_secs(10));
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(2), Duration::from_millis(400));
        assert_eq!(retry_delay(6), Duration::from_millis(6400));
        assert_eq!(retry_delay(7), Duration::from_secs(7));
        assert_eq!(retry_delay(100), Duration::from_secs(7));
    }
}
