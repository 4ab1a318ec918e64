//! End to end, as root: Services and the cluster DNS as a pod sees them, on one real node.
//! The control plane is a `skiff server` process on the host (its DNS forwarding to a fake
//! upstream resolver the test starts on loopback); the node is a network namespace with a
//! veth link to a test bridge, running the real `skiff agent` (runc, CNI, its own Service
//! proxy in nftables). From a client pod (busybox `wget` and `nslookup`) and from the node:
//!
//! - a Deployment of 3 busybox httpd replicas behind a ClusterIP Service (a named
//!   targetPort) answers at the ClusterIP and by name, the answers coming from all 3 pods;
//! - `web`, `web.default` and `web.default.svc.cluster.local` resolve to the ClusterIP
//!   (`web.default` through wget's resolver: busybox's nslookup searches only dotless
//!   names), its named port has an SRV record;
//! - a headless Service over a StatefulSet resolves to the pods' IPs, `db-0.db` to the
//!   first pod's, `_http._tcp.db` to one SRV record per pod;
//! - an ExternalName is a CNAME, and a name outside the cluster is forwarded upstream;
//! - `sessionAffinity: ClientIP` pins the client to one pod;
//! - a `type: LoadBalancer` Service gets the node's address as its ingress, which answers;
//! - scaled to 0, the ClusterIP refuses connections at once instead of hanging.
//!
//! One test per binary: it owns a test bridge and a network namespace (unique names),
//! removed with everything the node made, even when it fails.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use common::fakedns;
use common::lab::{kubectl, pod_ip, Lab, WAIT};
use common::procs::{free_port, wait_node_ready, AgentProcess, ServerProcess};
use common::realnode::{remove_everything, skip_reason, stage_demo_image};
use common::wait_for;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};

const NODE: &str = "svc-a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_names_as_pods_see_them() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let lab = Lab::create("sksvc", 252, 1)?;
    let server_dir = tempfile::tempdir()?;
    let node_dir = tempfile::tempdir()?;
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario(
        &lab,
        server_dir.path(),
        node_dir.path(),
    )))
    .await;
    // Whatever happened: the node's containers and sandboxes go before its namespace.
    let _ = remove_everything(node_dir.path()).await;
    drop(lab);
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// `kubectl apply -f -` of a YAML document.
fn apply(kubeconfig: &Path, yaml: &str) -> Result<String> {
    let mut child = std::process::Command::new(common::KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .context("kubectl's stdin")?
        .write_all(yaml.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kubectl exec client -- args...` until it succeeds and `accept` takes its output.
async fn from_client(
    kubeconfig: &Path,
    what: &str,
    args: &[&str],
    accept: impl Fn(&str) -> bool,
) -> Result<String> {
    let mut all = vec!["exec", "client", "--"];
    all.extend_from_slice(args);
    let last = std::sync::Mutex::new(String::new());
    wait_for(what, WAIT, || {
        let got = kubectl(kubeconfig, &all);
        let ok = match &got {
            Ok(out) if accept(out) => Some(out.clone()),
            Ok(out) => {
                *last.lock().unwrap_or_else(|e| e.into_inner()) = out.clone();
                None
            }
            Err(e) => {
                *last.lock().unwrap_or_else(|e| e.into_inner()) = format!("{e:#}");
                None
            }
        };
        async move { Ok(ok) }
    })
    .await
    .with_context(|| {
        format!(
            "the last answer to {all:?}: {}",
            last.lock().unwrap_or_else(|e| e.into_inner())
        )
    })
}

/// `nslookup args...` in the client pod until `accept` takes its output. busybox's nslookup
/// asks every search-path variant of a name at once and exits 1 when any of them is
/// NXDOMAIN (as it does against CoreDNS), so its output is judged, not its exit code.
async fn nslookup(
    kubeconfig: &Path,
    what: &str,
    args: &str,
    accept: impl Fn(&str) -> bool,
) -> Result<String> {
    let script = format!("nslookup {args} 2>&1; true");
    from_client(kubeconfig, what, &["sh", "-c", &script], accept).await
}

/// The addresses in `nslookup`'s answer section (after the `Name:` line; the server's own
/// address comes before it).
fn looked_up(out: &str) -> BTreeSet<String> {
    out.split_once("Name:")
        .map(|(_, answers)| answers)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.trim().to_owned())
        .collect()
}

/// The pods that answered `n` requests to `url` from the client pod.
fn answerers(kubeconfig: &Path, url: &str, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|_| kubectl(kubeconfig, &["exec", "client", "--", "wget", "-qO-", url]).ok())
        .filter_map(|a| a.split_whitespace().next().map(str::to_owned))
        .collect()
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: docker.io/skiff/demo-web:v1
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: docker.io/skiff/demo-web:v1
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: db.example.net}
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 8081, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: docker.io/skiff/demo-web:v1
    imagePullPolicy: IfNotPresent
"#;

async fn scenario(lab: &Lab, server_dir: &Path, node_dir: &Path) -> Result<()> {
    let upstream = fakedns::start_upstream().await?;
    let resolv = server_dir.join("upstream-resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", upstream.ip))?;
    let port = free_port()?;
    let host = lab.host_ip();
    let server = ServerProcess::start(
        server_dir,
        port,
        &[
            "--node-ip",
            &host,
            "--tls-san",
            &host,
            "--cluster-dns-resolv-conf",
            &resolv.to_string_lossy(),
        ],
    )?;
    let token = server.token()?;
    let url = format!("https://{host}:{port}");
    stage_demo_image(node_dir)?;
    let node_ip = lab.node_ip(0);
    let agent = AgentProcess::start(
        node_dir,
        &url,
        &token,
        NODE,
        Some(&lab.netns(0)),
        &["--node-ip", &node_ip],
    )?;
    let client = server.admin_client().await?;
    wait_node_ready(&client, NODE, WAIT)
        .await
        .with_context(|| agent.log_text())?;
    wait_for("the demo image imported", WAIT, || {
        let done = agent.logged("air-gap image import finished");
        async move { Ok(done.then_some(())) }
    })
    .await?;
    let kubeconfig = server.kubeconfig();
    apply(&kubeconfig, WORKLOADS)?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pod_ip(&pods, "client")
        .await
        .with_context(|| agent.log_text())?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let web = services.get("web").await?;
    let cluster_ip = web
        .spec
        .and_then(|s| s.cluster_ip)
        .context("web's ClusterIP")?;
    let web_pods = wait_for("the 3 web pods Running", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            let running: BTreeSet<String> = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect();
            Ok((running.len() == 3).then_some(running))
        }
    })
    .await?;

    // The names of the ClusterIP Service, short and long, from the pod's resolv.conf
    // search path; and the SRV record of its named port. (busybox's nslookup applies the
    // search path only to names without a dot, so `web.default` is asked through the
    // resolver of wget further down, as an application would use it.)
    for name in ["web", "web.default.svc.cluster.local"] {
        let ip = cluster_ip.clone();
        nslookup(&kubeconfig, &format!("nslookup {name}"), name, move |out| {
            looked_up(out) == BTreeSet::from([ip.clone()])
        })
        .await?;
    }
    let srv = nslookup(
        &kubeconfig,
        "web's SRV record",
        "-type=SRV _http._tcp.web.default.svc.cluster.local",
        |out| out.contains("service = "),
    )
    .await?;
    ensure!(srv.contains(" 80 "), "the SRV record names port 80: {srv}");

    // The ClusterIP balances over all 3 pods, by name and by address.
    let by_name = "http://web/cgi-bin/whoami";
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    while seen != web_pods && started.elapsed() < WAIT {
        seen.extend(answerers(&kubeconfig, by_name, 6));
    }
    ensure!(
        seen == web_pods,
        "answers came from {seen:?}, not from all of {web_pods:?}"
    );
    let answer = from_client(
        &kubeconfig,
        "web.default through the search path",
        &["wget", "-qO-", "http://web.default/cgi-bin/whoami"],
        |a| a.starts_with("web-"),
    )
    .await?;
    ensure!(web_pods.iter().any(|p| answer.starts_with(p.as_str())));
    let by_ip = format!("http://{cluster_ip}/cgi-bin/whoami");
    let answer = from_client(
        &kubeconfig,
        "the ClusterIP",
        &["wget", "-qO-", &by_ip],
        |a| a.starts_with("web-"),
    )
    .await?;
    ensure!(web_pods.iter().any(|p| answer.starts_with(p.as_str())));
    // From the node itself (its own network namespace, outside any pod).
    let from_node = lab.exec(0, &["/bin/busybox", "wget", "-qO-", &by_ip])?;
    ensure!(from_node.starts_with("web-"), "{from_node}");

    // The headless Service: the pods' own addresses, a StatefulSet pod by its hostname,
    // an SRV record per pod.
    let db0 = pod_ip(&pods, "db-0").await?;
    let db1 = pod_ip(&pods, "db-1").await?;
    let want = BTreeSet::from([db0.clone(), db1.clone()]);
    nslookup(
        &kubeconfig,
        "the headless Service's addresses",
        "db.default.svc.cluster.local",
        |out| looked_up(out) == want,
    )
    .await?;
    let only_db0 = BTreeSet::from([db0.clone()]);
    nslookup(
        &kubeconfig,
        "db-0's name",
        "db-0.db.default.svc.cluster.local",
        |out| looked_up(out) == only_db0,
    )
    .await?;
    let answer = from_client(
        &kubeconfig,
        "db-0.db through the search path",
        &["wget", "-qO-", "http://db-0.db:8080/cgi-bin/whoami"],
        |a| a.starts_with("db-0 "),
    )
    .await?;
    ensure!(answer.starts_with("db-0 "), "{answer}");
    nslookup(
        &kubeconfig,
        "the headless Service's SRV records",
        "-type=SRV _http._tcp.db.default.svc.cluster.local",
        |out| {
            out.contains("db-0.db.default.svc.cluster.local")
                && out.contains("db-1.db.default.svc.cluster.local")
                && out.contains(" 8080 ")
        },
    )
    .await?;

    // An ExternalName is a CNAME (its target answered by the upstream); a name outside
    // the cluster goes to the upstream resolver.
    let external = fakedns::ANSWER.to_string();
    let cname = nslookup(&kubeconfig, "the ExternalName", "ext", |out| {
        looked_up(out).contains(&external)
    })
    .await?;
    ensure!(cname.contains("db.example.net"), "{cname}");
    let only_external = BTreeSet::from([external.clone()]);
    nslookup(
        &kubeconfig,
        "a name outside the cluster",
        "skiff.example.org",
        |out| looked_up(out) == only_external,
    )
    .await?;

    // The LoadBalancer: the node's address as its ingress, answering from outside.
    let ingress = wait_for("web-lb's ingress", WAIT, || {
        let services = services.clone();
        async move {
            let s = services.get("web-lb").await?;
            Ok(s.status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .and_then(|i| i.into_iter().next())
                .and_then(|i| i.ip))
        }
    })
    .await?;
    ensure!(
        ingress == node_ip,
        "ingress {ingress}, the node is {node_ip}"
    );
    let answer = wait_for("the LoadBalancer's port on its ingress", WAIT, || {
        let got = common::realnode::http_get(&ingress, 8081);
        async move { Ok(got.ok()) }
    })
    .await?;
    ensure!(answer.starts_with("HTTP/1."), "{answer}");

    // sessionAffinity: ClientIP pins the client to one pod.
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"sessionAffinity": "ClientIP"}})),
        )
        .await?;
    wait_for("the affinity rules on the node", WAIT, || {
        let rules = lab.exec(0, &["nft", "list", "table", "ip", "skiff"]);
        async move { Ok(rules.ok().filter(|r| r.contains("affinity-")).map(|_| ())) }
    })
    .await?;
    let pinned: BTreeSet<String> = answerers(&kubeconfig, by_name, 8).into_iter().collect();
    ensure!(pinned.len() == 1, "one pod answers every time: {pinned:?}");

    // Scaled to 0: no endpoints, and the ClusterIP refuses at once (a reject, not a
    // connection left to time out).
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    wait_for("web's endpoints gone", WAIT, || {
        let slices = slices.clone();
        async move {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await?;
            let any = list.items.iter().any(|s| !s.endpoints.is_empty());
            Ok((!any && !list.items.is_empty()).then_some(()))
        }
    })
    .await?;
    let refused = from_client(
        &kubeconfig,
        "the ClusterIP refusing",
        &["sh", "-c", &format!("wget -qO- {by_ip} 2>&1; true")],
        |out| out.contains("refused"),
    )
    .await?;
    ensure!(refused.contains("refused"), "{refused}");
    let started = Instant::now();
    let from_node = lab.exec(
        0,
        &[
            "sh",
            "-c",
            &format!("/bin/busybox wget -qO- {by_ip} 2>&1; true"),
        ],
    )?;
    ensure!(
        from_node.contains("refused"),
        "from the node: {from_node} (after {:?})",
        started.elapsed()
    );
    drop(agent);
    drop(server);
    drop(upstream);
    Ok(())
}
