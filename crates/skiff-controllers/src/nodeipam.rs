//! Node IPAM: every node gets a pod range (`spec.podCIDR`, `spec.podCIDRs`), the next free
//! `/node-cidr-mask-size` block of `--cluster-cidr`, as upstream's range allocator
//! (pkg/controller/nodeipam/ipam/range_allocator.go). A node's range is free again when the
//! node is gone.
//!
//! The free block is decided by [`next_free`] from the ranges the node cache shows plus the
//! ones this process handed out that the cache does not show yet; one worker at a time
//! (concurrency 1), so two nodes never get the same block.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::events::Recorder;
use crate::{Context, Error, Result, Task};

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, bits) = text.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        if bits > 32 {
            return None;
        }
        let mask = mask(bits);
        Some(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            bits,
        })
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

/// The first `/node_bits` block of `cluster` that is not in `used`.
pub fn next_free(cluster: Cidr, node_bits: u8, used: &HashSet<Cidr>) -> Option<Cidr> {
    if node_bits < cluster.bits || node_bits > 32 {
        return None;
    }
    let count = 1u64 << (node_bits - cluster.bits);
    let step = 1u64 << (32 - node_bits);
    let base = u64::from(u32::from(cluster.addr));
    (0..count)
        .map(|i| Cidr {
            addr: Ipv4Addr::from((base + i * step) as u32),
            bits: node_bits,
        })
        .find(|c| !used.contains(c))
}

struct State {
    ctx: Arc<Context>,
    nodes: Store<Node>,
    cluster: Cidr,
    /// Handed out by this process, by node name, until the cache shows them.
    handed_out: Mutex<HashMap<String, Cidr>>,
    recorder: Recorder,
}

/// Sets up the `nodeipam` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let cluster = Cidr::parse(&ctx.config.cluster_cidr).ok_or_else(|| {
        Error::Config(format!(
            "--cluster-cidr {:?} is not an IPv4 CIDR like 10.42.0.0/16",
            ctx.config.cluster_cidr
        ))
    })?;
    if ctx.config.node_cidr_mask_size < cluster.bits || ctx.config.node_cidr_mask_size > 30 {
        return Err(Error::Config(format!(
            "--node-cidr-mask-size {} does not fit in --cluster-cidr {cluster}",
            ctx.config.node_cidr_mask_size
        )));
    }
    let nodes = ctx.informers.store::<Node>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        nodes: nodes.clone(),
        cluster,
        handed_out: Mutex::new(HashMap::new()),
        recorder: Recorder::new(ctx.client.clone(), "node-ipam-controller"),
    });
    let controller = Controller::for_shared_stream(ctx.informers.subscribe::<Node>(), nodes)
        .with_config(controller::Config::default().concurrency(1));
    Ok(Box::pin(
        controller
            .run(
                reconcile,
                |_, _: &Error, _| Action::requeue(Duration::from_secs(2)),
                state,
            )
            .for_each(|_| async {}),
    ))
}

async fn reconcile(node: Arc<Node>, state: Arc<State>) -> Result<Action> {
    let name = node.name_any();
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
    {
        state.handed_out.lock().remove(&name);
        return Ok(Action::await_change());
    }
    let cidr = {
        let mut handed_out = state.handed_out.lock();
        if let Some(c) = handed_out.get(&name) {
            Some(*c)
        } else {
            let cached = state.nodes.state();
            let present: HashSet<&str> = cached
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            // What was handed out to a node that is gone is free again.
            handed_out.retain(|n, _| present.contains(n.as_str()));
            let mut used: HashSet<Cidr> = cached
                .iter()
                .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref())
                .filter_map(Cidr::parse)
                .collect();
            used.extend(handed_out.values().copied());
            match next_free(state.cluster, state.ctx.config.node_cidr_mask_size, &used) {
                Some(c) => {
                    handed_out.insert(name.clone(), c);
                    Some(c)
                }
                None => None,
            }
        }
    };
    let Some(cidr) = cidr else {
        state
            .recorder
            .warning(
                &*node,
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            )
            .await;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let api: Api<Node> = Api::all(state.ctx.client.clone());
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = %name, %cidr, "allocated the node's pod range");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            state.handed_out.lock().remove(&name);
            Ok(Action::await_change())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_handed_out_in_order_skipping_used_ones() {
        let cluster = Cidr::parse("10.42.0.0/16").expect("valid");
        let mut used = HashSet::new();
        let first = next_free(cluster, 24, &used).expect("free");
        assert_eq!(first.to_string(), "10.42.0.0/24");
        used.insert(first);
        used.insert(Cidr::parse("10.42.1.0/24").expect("valid"));
        assert_eq!(
            next_free(cluster, 24, &used).expect("free").to_string(),
            "10.42.2.0/24"
        );
        let tiny = Cidr::parse("10.0.0.0/30").expect("valid");
        let all: HashSet<Cidr> = [
            Cidr::parse("10.0.0.0/31").expect("valid"),
            Cidr::parse("10.0.0.2/31").expect("valid"),
        ]
        .into();
        assert_eq!(next_free(tiny, 31, &all), None);
        assert_eq!(
            Cidr::parse("10.42.7.9/16")
                .map(|c| c.to_string())
                .as_deref(),
            Some("10.42.0.0/16")
        );
        assert_eq!(Cidr::parse("10.42.0.0/33"), None);
    }
}
