//! Integration: the endpoint and EndpointSlice controllers through the in-process server on
//! three simulated nodes (`sim-0`..`sim-2`: the server's scheduler binds the pods to them, and
//! they run them, give them IPs and mark them Ready), driven by the real kubectl and kube-rs,
//! on both datastores.
//!
//! Scenarios: a Deployment of 3 behind a Service gets one EndpointSlice and one Endpoints with
//! the 3 pod IPs ready, and both empty after scaling to 0; a named targetPort resolving to
//! different numbers puts the pods in different slices and subsets, a not-ready pod (a
//! readiness gate never met) is not ready unless the Service publishes not-ready addresses;
//! 250 pods make 3 slices of at most 100; a LoadBalancer Service gets the nodes' addresses
//! as its ingress.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(120);

fn deployment(name: &str, app: &str, replicas: usize, port: u16, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}, deploy: {name}}}
  template:
    metadata:
      labels: {{app: {app}, deploy: {name}}}
    spec:
{extra_spec}
      containers:
      - name: main
        image: nginx:1.25
        ports:
        - name: http
          containerPort: {port}
"#
    )
}

fn service(name: &str, app: &str, target: &str, publish: bool) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{team: web}}
spec:
  selector: {{app: {app}}}
  publishNotReadyAddresses: {publish}
  ports:
  - name: http
    port: 80
    targetPort: {target}
"#
    )
}

async fn slices_of(client: &Client, svc: &str) -> Result<Vec<EndpointSlice>> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let list = api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await?;
    Ok(list.items)
}

/// (port, ready IPs, not-ready IPs) of every slice, sorted.
fn slice_summary(slices: &[EndpointSlice]) -> Vec<(i32, BTreeSet<String>, BTreeSet<String>)> {
    let mut out: Vec<_> = slices
        .iter()
        .map(|s| {
            let port = s
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.port)
                .unwrap_or(0);
            let (mut ready, mut not_ready) = (BTreeSet::new(), BTreeSet::new());
            for e in &s.endpoints {
                let r = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
                for a in &e.addresses {
                    if r {
                        ready.insert(a.clone());
                    } else {
                        not_ready.insert(a.clone());
                    }
                }
            }
            (port, ready, not_ready)
        })
        .collect();
    out.sort();
    out
}

/// (port, ready IPs, not-ready IPs) of every subset, sorted.
fn subset_summary(ep: &Endpoints) -> Vec<(i32, BTreeSet<String>, BTreeSet<String>)> {
    let ips = |v: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
        v.iter()
            .flatten()
            .map(|a| a.ip.clone())
            .collect::<BTreeSet<_>>()
    };
    let mut out: Vec<_> = ep
        .subsets
        .iter()
        .flatten()
        .map(|s| {
            (
                s.ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .map_or(0, |p| p.port),
                ips(&s.addresses),
                ips(&s.not_ready_addresses),
            )
        })
        .collect();
    out.sort();
    out
}

/// The IPs of the running pods with `selector`.
async fn pod_ips(client: &Client, selector: &str, want: usize) -> Result<BTreeSet<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(
        &format!("{want} pods {selector} with IPs"),
        WAIT,
        || async {
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            let ips: BTreeSet<String> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect();
            Ok((ips.len() == want && list.items.len() == want).then_some(ips))
        },
    )
    .await
}

async fn deployment_behind_a_service(cluster: &Cluster) -> Result<()> {
    let client = &cluster.client;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            &(deployment("web", "web", 3, 8080, "")
                + "---"
                + &service("web", "web", "http", false)),
        ),
    )?;
    let ips = pod_ips(client, "app=web", 3).await?;
    ensure!(
        ips.iter().all(|ip| ip.starts_with("10.42.")),
        "pod IPs from the nodes' ranges: {ips:?}"
    );
    let want = vec![(8080, ips.clone(), BTreeSet::new())];
    let slices = wait_for("one EndpointSlice with the 3 pods ready", WAIT, || async {
        let slices = slices_of(client, "web").await?;
        Ok((slice_summary(&slices) == want).then_some(slices))
    })
    .await?;
    let slice = &slices[0];
    ensure!(slice.address_type == "IPv4");
    ensure!(slice.metadata.generate_name.as_deref() == Some("web-"));
    let labels = slice.labels();
    ensure!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some("endpointslice-controller.k8s.io")
    );
    ensure!(
        labels.get("team").map(String::as_str) == Some("web"),
        "{labels:?}"
    );
    let owner = &slice.owner_references()[0];
    ensure!(owner.kind == "Service" && owner.name == "web" && owner.controller == Some(true));
    ensure!(slice.endpoints.iter().all(|e| e
        .node_name
        .as_deref()
        .is_some_and(|n| n.starts_with("sim-"))
        && e.target_ref.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pod")
        && e.conditions.as_ref().and_then(|c| c.serving) == Some(true)));
    ensure!(slice
        .annotations()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep = wait_for("the Endpoints with the 3 pods ready", WAIT, || async {
        let ep = endpoints.get_opt("web").await?;
        Ok(ep.filter(|e| subset_summary(e) == want))
    })
    .await?;
    ensure!(ep.labels().get("team").map(String::as_str) == Some("web"));
    ensure!(ep
        .annotations()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    let out = cluster.kubectl(&["get", "endpoints", "web"])?;
    ensure!(out.contains(":8080"), "kubectl get endpoints: {out}");

    cluster.kubectl(&["scale", "deployment/web", "--replicas=0"])?;
    wait_for("one empty EndpointSlice", WAIT, || async {
        let slices = slices_of(client, "web").await?;
        Ok((slices.len() == 1 && slices[0].endpoints.is_empty()).then_some(()))
    })
    .await?;
    wait_for("empty Endpoints", WAIT, || async {
        let ep = endpoints.get("web").await?;
        Ok(ep.subsets.as_ref().is_none_or(Vec::is_empty).then_some(()))
    })
    .await?;

    // The Service's deletion takes its Endpoints (and the GC its slices).
    cluster.kubectl(&["delete", "service", "web"])?;
    wait_for("the Endpoints gone", WAIT, || async {
        Ok(endpoints.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

async fn named_ports_and_not_ready_pods(cluster: &Cluster) -> Result<()> {
    let client = &cluster.client;
    // Two pods serving "http" on 8080, one on 9090 that never gets ready (a readiness gate
    // nobody sets).
    let gate = "      readinessGates:\n      - conditionType: example.com/never\n";
    let yaml = [
        deployment("a", "mixed", 2, 8080, ""),
        deployment("b", "mixed", 1, 9090, gate),
        service("mixed", "mixed", "http", false),
        service("mixed-all", "mixed", "http", true),
    ]
    .join("---");
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    let a = pod_ips(client, "deploy=a", 2).await?;
    let b = pod_ips(client, "deploy=b", 1).await?;
    let none = BTreeSet::new();
    let want = vec![
        (8080, a.clone(), none.clone()),
        (9090, none.clone(), b.clone()),
    ];
    wait_for("two slices, one per resolved port", WAIT, || async {
        Ok((slice_summary(&slices_of(client, "mixed").await?) == want).then_some(()))
    })
    .await?;
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    wait_for("two subsets, the 9090 one not ready", WAIT, || async {
        let ep = endpoints.get_opt("mixed").await?;
        Ok(ep.filter(|e| subset_summary(e) == want))
    })
    .await?;
    // The not-ready endpoint is not serving either.
    let slices = slices_of(client, "mixed").await?;
    ensure!(slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.addresses.iter().any(|ip| b.contains(ip)))
        .all(|e| e.conditions.as_ref().and_then(|c| c.serving) == Some(false)));

    let published = vec![
        (8080, a.clone(), none.clone()),
        (9090, b.clone(), none.clone()),
    ];
    wait_for("publishNotReadyAddresses: all ready", WAIT, || async {
        Ok((slice_summary(&slices_of(client, "mixed-all").await?) == published).then_some(()))
    })
    .await?;
    wait_for(
        "publishNotReadyAddresses: all addresses ready",
        WAIT,
        || async {
            let ep = endpoints.get_opt("mixed-all").await?;
            Ok(ep.filter(|e| subset_summary(e) == published))
        },
    )
    .await?;
    Ok(())
}

async fn many_pods_make_several_slices(cluster: &Cluster) -> Result<()> {
    let client = &cluster.client;
    // The Service comes once the 250 pods run, so one sync sees them all: pods arriving
    // in waves would fill slices wave by wave (the reconciler never repacks a slice).
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&deployment("big", "big", 250, 8080, "")),
    )?;
    let ips = wait_for("250 pods with IPs", Duration::from_secs(180), || async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let list = pods.list(&ListParams::default().labels("app=big")).await?;
        let ips: BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect();
        Ok((ips.len() == 250).then_some(ips))
    })
    .await?;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&service("big", "big", "8080", false)),
    )?;
    let slices = wait_for(
        "3 slices holding the 250 endpoints",
        Duration::from_secs(120),
        || async {
            let slices = slices_of(client, "big").await?;
            let all: BTreeSet<String> = slices
                .iter()
                .flat_map(|s| &s.endpoints)
                .flat_map(|e| e.addresses.clone())
                .collect();
            Ok((all == ips && slices.len() == 3).then_some(slices))
        },
    )
    .await?;
    let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort_unstable();
    ensure!(sizes == vec![50, 100, 100], "slice sizes {sizes:?}");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    wait_for("Endpoints with 250 addresses", WAIT, || async {
        let ep = endpoints.get_opt("big").await?;
        Ok(ep.filter(|e| subset_summary(e) == vec![(8080, ips.clone(), BTreeSet::new())]))
    })
    .await?;
    Ok(())
}

/// A LoadBalancer Service gets the nodes' addresses as its ingress (k3s's ServiceLB role),
/// `kubectl get svc` shows them as EXTERNAL-IP; a cordoned node leaves the list; a Service
/// turned into a ClusterIP loses them; another controller's class is left alone.
async fn load_balancers_get_the_node_addresses(cluster: &Cluster) -> Result<()> {
    use k8s_openapi::api::core::v1::{Node, Service};
    let client = &cluster.client;
    let nodes: Api<Node> = Api::all(client.clone());
    let ips = wait_for("three Ready nodes with addresses", WAIT, || async {
        let mut ips: Vec<String> = Vec::new();
        for n in nodes.list(&ListParams::default()).await?.items {
            let status = n.status.unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ips.extend(
                status
                    .addresses
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| ready && a.type_ == "InternalIP")
                    .map(|a| a.address),
            );
        }
        ips.sort();
        Ok((ips.len() == 3).then_some(ips))
    })
    .await?;
    let lb = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n{class}  selector: {{app: lb}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
        )
    };
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&lb("web-lb", "")))?;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&lb("theirs", "  loadBalancerClass: example.com/lb\n")),
    )?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let ingress_of = |svc: &Service| -> Vec<String> {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
            .unwrap_or_default()
    };
    wait_for("the load balancer's ingress", WAIT, || async {
        let svc = services.get("web-lb").await?;
        Ok((ingress_of(&svc) == ips).then_some(()))
    })
    .await?;
    let table = cluster.kubectl(&["get", "svc", "web-lb"])?;
    ensure!(
        table.contains(&ips.join(",")),
        "EXTERNAL-IP shows the nodes: {table}"
    );
    // Cordoned: the node takes no load-balanced traffic.
    cluster.kubectl(&["cordon", "sim-0"])?;
    let sim0 = nodes
        .get("sim-0")
        .await?
        .status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .unwrap_or_default();
    let rest: Vec<String> = ips.iter().filter(|ip| **ip != sim0).cloned().collect();
    wait_for("the cordoned node out of the ingress", WAIT, || async {
        let svc = services.get("web-lb").await?;
        Ok((ingress_of(&svc) == rest).then_some(()))
    })
    .await?;
    cluster.kubectl(&["uncordon", "sim-0"])?;
    // No longer a load balancer: no ingress.
    cluster.kubectl(&[
        "patch",
        "svc",
        "web-lb",
        "-p",
        r#"{"spec": {"type": "ClusterIP"}}"#,
    ])?;
    wait_for("the ingress gone", WAIT, || async {
        let svc = services.get("web-lb").await?;
        Ok(ingress_of(&svc).is_empty().then_some(()))
    })
    .await?;
    let theirs = services.get("theirs").await?;
    ensure!(
        ingress_of(&theirs).is_empty(),
        "another class's load balancer is not ours"
    );
    Ok(())
}

on_both_datastores!(nodes: 3;
    load_balancers_get_the_node_addresses,
    deployment_behind_a_service,
    named_ports_and_not_ready_pods,
    many_pods_make_several_slices,
);
