//! Load balancers without a cloud, as k3s's ServiceLB (klipper-lb) gives them: a Service of
//! `type: LoadBalancer` (with no `loadBalancerClass`: those belong to another controller, as
//! upstream's service controller leaves them) gets the addresses of the cluster's ready,
//! schedulable nodes as `status.loadBalancer.ingress` (each node's ExternalIP, else its
//! InternalIP, sorted, as k3s lists them), and the Service proxy on every node answers the
//! Service's ports on those addresses. Where k3s runs a `svclb` pod per node with hostPorts,
//! skiff's proxy already owns the node's nftables, so no pod is needed. A Service that is no
//! longer a LoadBalancer loses the ingress again.
//!
//! [`ingress_for`] is the pure part (nodes in, the ingress list out).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::{Context, Error, Result, Task};

struct State {
    ctx: Arc<Context>,
    nodes: Store<Node>,
}

/// Sets up the `service-lb` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let services = informers.store::<Service>();
    let nodes = informers.store::<Node>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        nodes: nodes.clone(),
    });
    // A node change can change every load balancer's addresses.
    let all = services.clone();
    let synced = {
        let (a, b) = (informers.synced::<Node>(), informers.synced::<Service>());
        async move {
            a.await;
            b.await;
        }
    };
    let controller = Controller::for_shared_stream(informers.subscribe::<Service>(), services)
        .watches_shared_stream(informers.subscribe::<Node>(), move |_node: Arc<Node>| {
            all.state()
                .iter()
                .filter(|s| is_load_balancer(s))
                .map(|s| ObjectRef::from_obj(&**s))
                .collect::<Vec<_>>()
        });
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(
                reconcile,
                |_, _: &Error, _| Action::requeue(Duration::from_secs(5)),
                state,
            )
            .for_each(|_| async {})
            .await;
    }))
}

/// Whether the Service is a load balancer this controller serves.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// Whether a node takes load-balanced traffic: Ready, not cordoned, not being deleted.
fn serves(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    ready && !cordoned && node.metadata.deletion_timestamp.is_none()
}

/// The ingress addresses: every serving node's ExternalIP, else its InternalIP; sorted and
/// deduplicated.
pub fn ingress_for<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Vec<String> {
    let mut out: Vec<String> = nodes
        .into_iter()
        .filter(|n| serves(n))
        .filter_map(|n| {
            let addresses = n.status.as_ref()?.addresses.as_ref()?;
            let of = |kind: &str| {
                addresses
                    .iter()
                    .find(|a| a.type_ == kind)
                    .map(|a| a.address.clone())
            };
            of("ExternalIP").or_else(|| of("InternalIP"))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The ingress the Service shows now (IPs only).
fn current_ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// Whether the status holds ingress entries that are not plain IPs of ours (hostnames).
fn has_other_ingress(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|ing| ing.iter().any(|i| i.ip.is_none()))
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let want: Vec<String> = if is_load_balancer(&svc) && svc.metadata.deletion_timestamp.is_none() {
        ingress_for(state.nodes.state().iter().map(|n| &**n))
    } else if svc
        .spec
        .as_ref()
        .is_some_and(|s| s.load_balancer_class.is_some())
    {
        // Another controller's load balancer: never touched.
        return Ok(Action::await_change());
    } else {
        Vec::new()
    };
    if current_ingress(&svc) == want && !has_other_ingress(&svc) {
        return Ok(Action::await_change());
    }
    let ingress: Vec<serde_json::Value> = want
        .iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect();
    let patch = json!({"status": {"loadBalancer": {"ingress": if ingress.is_empty() { serde_json::Value::Null } else { json!(ingress) }}}});
    let api: Api<Service> = Api::namespaced(
        state.ctx.client.clone(),
        svc.namespace().as_deref().unwrap_or("default"),
    );
    match api
        .patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            tracing::debug!(service = %svc.name_any(), ingress = ?want, "load balancer ingress");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, cordoned: bool, addresses: &[(&str, &str)]) -> Node {
        let addresses: Vec<_> = addresses
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": cordoned},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "addresses": addresses,
            }
        }))
        .expect("node")
    }

    #[test]
    fn ready_schedulable_nodes_give_their_addresses() {
        let nodes = [
            node("b", true, false, &[("InternalIP", "10.0.0.2")]),
            node(
                "a",
                true,
                false,
                &[("InternalIP", "10.0.0.1"), ("ExternalIP", "203.0.113.1")],
            ),
            node("down", false, false, &[("InternalIP", "10.0.0.3")]),
            node("cordoned", true, true, &[("InternalIP", "10.0.0.4")]),
            node("twin", true, false, &[("InternalIP", "10.0.0.2")]),
            node("bare", true, false, &[("Hostname", "bare")]),
        ];
        assert_eq!(ingress_for(&nodes), ["10.0.0.2", "203.0.113.1"]);
    }

    #[test]
    fn only_class_less_load_balancers_are_ours() {
        let svc = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).expect("svc")
        };
        assert!(is_load_balancer(&svc(json!({"type": "LoadBalancer"}))));
        assert!(!is_load_balancer(&svc(
            json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"})
        )));
        assert!(!is_load_balancer(&svc(json!({"type": "NodePort"}))));
        assert!(!is_load_balancer(&svc(json!({}))));
    }
}
