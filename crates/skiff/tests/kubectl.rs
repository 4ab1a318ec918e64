//! End to end: the real `skiff server` binary on a random port with a temp data dir, driven
//! by the real kubectl (/usr/bin/kubectl) with default flags. Each scenario runs against
//! the embedded datastore and again against a real etcd, to show the API does not depend
//! on the backend. The scenarios that patch a Deployment's status by hand run on a server
//! without controllers (the Deployment controller owns that status); what the controllers
//! do, seen through kubectl, is in `controlplane.rs` and `deployments.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use skiff_store::testing::EtcdProcess;

const KUBECTL: &str = "/usr/bin/kubectl";

/// A running `skiff server` (and the etcd it uses, if any); killed when dropped.
struct Cluster {
    child: Child,
    /// The data dir (taken back by [`Cluster::stop`] to restart on it).
    dir: Option<tempfile::TempDir>,
    home: PathBuf,
    kubeconfig: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _etcd: Option<EtcdProcess>,
}

impl Cluster {
    fn start(etcd: Option<EtcdProcess>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        Self::start_in(dir, etcd)
    }

    /// A server without the controller manager and the scheduler: for scenarios that write
    /// the status of built-in kinds themselves (the controllers would overwrite it).
    fn start_api_only(etcd: Option<EtcdProcess>) -> Result<Self> {
        Self::start_with(
            tempfile::tempdir()?,
            etcd,
            &["--disable-controller-manager", "--disable-scheduler"],
        )
    }

    fn start_in(dir: tempfile::TempDir, etcd: Option<EtcdProcess>) -> Result<Self> {
        Self::start_with(dir, etcd, &[])
    }

    fn start_with(
        dir: tempfile::TempDir,
        etcd: Option<EtcdProcess>,
        extra: &[&str],
    ) -> Result<Self> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.args([
            "server",
            "--https-port",
            "0",
            "--bind-address",
            "127.0.0.1",
            // The control plane only: a real node would run the test's pods
            // as real containers that outlive the killed server.
            "--disable-agent",
            "--disable-dns",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(e) = &etcd {
            cmd.args(["--datastore-endpoint", &e.endpoint()]);
        }
        cmd.args(extra);
        let mut child = cmd.spawn().context("starting skiff server")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("skiff is ready") {
                    let _ = ready_tx.send(());
                }
                if let Ok(mut l) = log2.lock() {
                    l.push(line);
                }
            }
        });
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let home = dir.path().to_owned();
        let mut cluster = Self {
            child,
            dir: Some(dir),
            home,
            kubeconfig,
            log,
            _etcd: etcd,
        };
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = cluster.child.kill();
            bail!("skiff server did not become ready:\n{}", cluster.log_text());
        }
        Ok(cluster)
    }

    fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> Result<Output> {
        self.kubectl_in(args, None)
    }

    fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = Command::new(KUBECTL);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().context("running kubectl")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(input.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        self.ok_in(args, None)
    }

    fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.kubectl_in(args, stdin)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed:\n{}\n{}\n--- server log ---\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_text()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// kubectl that must fail; its stderr.
    fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        ensure!(
            !out.status.success(),
            "kubectl {} succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(String::from_utf8(out.stderr)?)
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&full)?)?)
    }

    /// Stops the server, keeping its data dir.
    fn stop(mut self) -> Result<tempfile::TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().context("already stopped")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_etcd() -> Result<EtcdProcess> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(EtcdProcess::start())
}

/// Runs each scenario against the embedded store and against etcd; those after `api_only:`
/// on a server without controllers (they write built-in kinds' status themselves).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?; api_only: $($api:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() -> anyhow::Result<()> { super::$name(&super::Cluster::start(None)?) } )*
            $( #[test] fn $api() -> anyhow::Result<()> { super::$api(&super::Cluster::start_api_only(None)?) } )*
        }
        mod etcd {
            $( #[test] fn $name() -> anyhow::Result<()> { super::$name(&super::Cluster::start(Some(super::with_etcd()?))?) } )*
            $( #[test] fn $api() -> anyhow::Result<()> { super::$api(&super::Cluster::start_api_only(Some(super::with_etcd()?))?) } )*
        }
    };
}

on_both_backends!(
    discovery_and_version,
    system_namespaces,
    create_get_delete,
    generators,
    label_annotate_scale,
    namespace_lifecycle,
    bad_requests,
    cascading_delete,
    services_and_events,
    terminating_namespace,
    client_side_apply,
    one_resource_in_two_versions,
    edit_diff_replace_directories_and_prune,
    client_side_apply_upgraded_to_server_side;
    api_only:
    more_commands,
    strategic_merge_patches,
    server_side_apply,
    objects_carry_the_fields_go_always_writes
);

fn discovery_and_version(c: &Cluster) -> Result<()> {
    let version = c.ok(&["version"])?;
    ensure!(
        version.contains("Server Version: v1.33.0+skiff"),
        "{version}"
    );
    let resources = c.ok(&["api-resources"])?;
    for line in [
        "deployments",
        "pods",
        "cronjobs",
        "leases",
        "horizontalpodautoscalers",
        "endpointslices",
        "priorityclasses",
    ] {
        ensure!(
            resources.contains(line),
            "api-resources lacks {line}:\n{resources}"
        );
    }
    let deploy = resources
        .lines()
        .find(|l| l.starts_with("deployments "))
        .context("no deployments row")?;
    let cols: Vec<&str> = deploy.split_whitespace().collect();
    ensure!(
        cols == ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        "{deploy}"
    );
    let versions = c.ok(&["api-versions"])?;
    ensure!(
        versions.lines().any(|l| l == "apps/v1") && versions.lines().any(|l| l == "v1"),
        "{versions}"
    );
    let info = c.ok(&["cluster-info"])?;
    ensure!(info.contains("is running at https://127.0.0.1:"), "{info}");
    Ok(())
}

fn system_namespaces(c: &Cluster) -> Result<()> {
    let out = c.ok(&["get", "namespaces"])?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{ns} ")))
            .with_context(|| format!("{ns} missing:\n{out}"))?;
        ensure!(row.contains("Active"), "{row}");
    }
    let ns = c.json(&["get", "namespace", "default"])?;
    ensure!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "default");
    Ok(())
}

const TWO_CONFIGMAPS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: first
  labels: {app: demo, tier: a}
data:
  k: v1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: second
  labels: {app: demo, tier: b}
data:
  k: v2
";

fn create_get_delete(c: &Cluster) -> Result<()> {
    let out = c.ok_in(&["create", "-f", "-"], Some(TWO_CONFIGMAPS))?;
    ensure!(
        out.contains("configmap/first created") && out.contains("configmap/second created"),
        "{out}"
    );
    let err = c.fails(&["create", "-f", "-"])?;
    let _ = err;
    let out = c.kubectl_in(&["create", "-f", "-"], Some(TWO_CONFIGMAPS))?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        err.contains("AlreadyExists") && err.contains("configmaps \"first\" already exists"),
        "{err}"
    );

    let cm = c.json(&["get", "configmap", "first"])?;
    ensure!(
        cm["data"]["k"] == "v1"
            && cm["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36)
    );
    ensure!(cm["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|rv| rv.parse::<i64>().is_ok()));
    ensure!(c
        .ok(&["get", "cm", "-o", "name"])?
        .lines()
        .any(|l| l == "configmap/second"));
    ensure!(c.ok(&["get", "cm", "first", "-o", "jsonpath={.data.k}"])? == "v1");
    let cols = c.ok(&[
        "get",
        "cm",
        "-l",
        "app=demo",
        "-o",
        "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier",
    ])?;
    ensure!(
        cols.lines().collect::<Vec<_>>() == ["NAME     TIER", "first    a", "second   b"],
        "{cols}"
    );
    let sel = c.ok(&["get", "cm", "-l", "tier in (b)", "-o", "name"])?;
    ensure!(sel.trim() == "configmap/second", "{sel}");
    let sel = c.ok(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=first",
        "-o",
        "name",
    ])?;
    ensure!(sel.trim() == "configmap/first", "{sel}");
    let yaml = c.ok(&["get", "cm", "first", "-o", "yaml"])?;
    ensure!(
        yaml.contains("kind: ConfigMap") && yaml.contains("k: v1"),
        "{yaml}"
    );
    // Pages of one item still list everything.
    let chunked = c.ok(&["get", "cm", "--chunk-size=1", "-o", "name"])?;
    ensure!(
        chunked
            .lines()
            .filter(|l| l.starts_with("configmap/"))
            .count()
            >= 2,
        "{chunked}"
    );
    let table = c.ok(&["get", "cm"])?;
    ensure!(
        table
            .lines()
            .next()
            .is_some_and(|h| h.split_whitespace().collect::<Vec<_>>() == ["NAME", "DATA", "AGE"]),
        "{table}"
    );

    ensure!(c
        .ok(&["delete", "configmap", "first"])?
        .contains("configmap \"first\" deleted"));
    let err = c.fails(&["get", "configmap", "first"])?;
    ensure!(
        err.contains("Error from server (NotFound): configmaps \"first\" not found"),
        "{err}"
    );
    ensure!(c
        .ok(&["delete", "cm", "-l", "app=demo"])?
        .contains("configmap \"second\" deleted"));
    let left = c.ok(&["get", "cm", "-l", "app=demo", "-o", "name"])?;
    ensure!(left.trim().is_empty(), "{left}");
    Ok(())
}

fn generators(c: &Cluster) -> Result<()> {
    c.ok(&["create", "namespace", "gen"])?;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=1",
    ])?;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=s3cret",
    ])?;
    c.ok(&["-n", "gen", "create", "serviceaccount", "robot"])?;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=2",
    ])?;
    c.ok(&["-n", "gen", "create", "job", "once", "--image=busybox"])?;
    c.ok(&[
        "-n",
        "gen",
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
    ])?;
    let secret = c.json(&["-n", "gen", "get", "secret", "sec"])?;
    ensure!(secret["data"]["password"] == "czNjcmV0", "{secret}");
    let deploy = c.json(&["-n", "gen", "get", "deployment", "web"])?;
    ensure!(
        deploy["spec"]["replicas"] == 2 && deploy["metadata"]["generation"] == 1,
        "{deploy}"
    );
    let names = c.ok(&[
        "-n",
        "gen",
        "get",
        "deploy,job,cronjob,cm,secret,sa",
        "-o",
        "name",
    ])?;
    for n in [
        "deployment.apps/web",
        "job.batch/once",
        "cronjob.batch/tick",
        "configmap/cfg",
        "secret/sec",
        "serviceaccount/robot",
    ] {
        ensure!(names.lines().any(|l| l == n), "{n} missing:\n{names}");
    }
    Ok(())
}

fn label_annotate_scale(c: &Cluster) -> Result<()> {
    c.ok(&["create", "deployment", "web", "--image=busybox"])?;
    c.ok(&["label", "deployment", "web", "team=blue"])?;
    c.ok(&["annotate", "deployment", "web", "note=hello"])?;
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(
        d["metadata"]["labels"]["team"] == "blue"
            && d["metadata"]["annotations"]["note"] == "hello"
    );
    ensure!(
        d["metadata"]["generation"] == 1,
        "metadata changes keep generation: {d}"
    );
    let err = c.fails(&["label", "deployment", "web", "team=red"])?;
    ensure!(err.contains("already has a value"), "{err}");
    c.ok(&["label", "deployment", "web", "team=red", "--overwrite"])?;
    c.ok(&["label", "deployment", "web", "team-"])?;
    ensure!(c.json(&["get", "deployment", "web"])?["metadata"]["labels"]
        .get("team")
        .is_none());
    ensure!(c
        .ok(&["scale", "deployment", "web", "--replicas=3"])?
        .contains("scaled"));
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(
        d["spec"]["replicas"] == 3 && d["metadata"]["generation"] == 2,
        "{d}"
    );
    // Server-side dry run stores nothing.
    c.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ])?;
    ensure!(c.fails(&["get", "configmap", "dry"])?.contains("NotFound"));
    // replace with a stale resourceVersion is a conflict.
    let mut stale = d.clone();
    c.ok(&["label", "deployment", "web", "bump=1"])?;
    stale["spec"]["replicas"] = serde_json::json!(5);
    let out = c.kubectl_in(&["replace", "-f", "-"], Some(&stale.to_string()))?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(err.contains("the object has been modified"), "{err}");
    Ok(())
}

/// A Deployment manifest for `kubectl apply`: `replicas` (if any) and the `tier` label (if
/// any).
fn web_manifest(replicas: Option<i64>, tier: Option<&str>) -> String {
    let mut m = String::from(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\n",
    );
    if let Some(t) = tier {
        m.push_str(&format!("    tier: {t}\n"));
    }
    m.push_str("spec:\n");
    if let Some(r) = replicas {
        m.push_str(&format!("  replicas: {r}\n"));
    }
    m.push_str(concat!(
        "  selector:\n    matchLabels: {app: web}\n",
        "  template:\n    metadata:\n      labels: {app: web}\n",
        "    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    ));
    m
}

fn managers(d: &Value) -> Vec<(String, String)> {
    d["metadata"]["managedFields"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_owned(),
                        e["operation"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn server_side_apply(c: &Cluster) -> Result<()> {
    let apply = |args: &[&str], manifest: &str| -> Result<Output> {
        let mut full = vec!["apply", "--server-side", "-f", "-"];
        full.extend(args);
        c.kubectl_in(&full, Some(manifest))
    };
    let get = || c.json(&["get", "deployment", "web", "--show-managed-fields"]);
    // Create.
    let out = c.ok_in(
        &["apply", "--server-side", "-f", "-"],
        Some(&web_manifest(Some(2), Some("front"))),
    )?;
    ensure!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let d = get()?;
    ensure!(d["spec"]["replicas"] == 2, "{d}");
    ensure!(
        managers(&d) == vec![("kubectl".to_owned(), "Apply".to_owned())],
        "{}",
        d["metadata"]["managedFields"]
    );
    let fields = d["metadata"]["managedFields"][0]["fieldsV1"].to_string();
    ensure!(fields.contains(r#""f:replicas":{}"#), "{fields}");
    ensure!(
        fields.contains(r#""k:{\"name\":\"c\"}""#),
        "containers are keyed by name: {fields}"
    );
    // Update.
    let out = c.ok_in(
        &["apply", "--server-side", "-f", "-"],
        Some(&web_manifest(Some(3), Some("front"))),
    )?;
    ensure!(out.contains("serverside-applied"), "{out}");
    ensure!(get()?["spec"]["replicas"] == 3);
    // Another manager changing replicas conflicts, answered and printed as upstream.
    let out = apply(
        &["--field-manager=other"],
        &web_manifest(Some(5), Some("front")),
    )?;
    ensure!(!out.status.success(), "the conflicting apply succeeded");
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{err}"
    );
    ensure!(err.contains("--force-conflicts"), "kubectl's advice: {err}");
    ensure!(get()?["spec"]["replicas"] == 3);
    // With --force-conflicts the other manager takes replicas.
    let out = apply(
        &["--field-manager=other", "--force-conflicts"],
        &web_manifest(Some(5), Some("front")),
    )?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = get()?;
    ensure!(d["spec"]["replicas"] == 5, "{d}");
    let kubectl_entry = d["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["manager"] == "kubectl"))
        .context("kubectl's entry")?;
    ensure!(
        !kubectl_entry["fieldsV1"].to_string().contains("f:replicas"),
        "kubectl lost replicas: {kubectl_entry}"
    );
    // kubectl drops the tier label (only it owned it... and `other`, which applied it too)
    // and replicas (now other's): the label stays while `other` still applies it.
    let out = c.ok_in(
        &["apply", "--server-side", "-f", "-"],
        Some(&web_manifest(None, None)),
    )?;
    ensure!(out.contains("serverside-applied"), "{out}");
    let d = get()?;
    ensure!(d["spec"]["replicas"] == 5, "other's replicas stay: {d}");
    ensure!(d["metadata"]["labels"]["tier"] == "front", "{d}");
    // Once `other` drops it too, nobody owns it: gone.
    let out = apply(&["--field-manager=other"], &web_manifest(Some(5), None))?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = get()?;
    ensure!(d["metadata"]["labels"].get("tier").is_none(), "{d}");
    ensure!(d["metadata"]["labels"]["app"] == "web", "{d}");
    // Client-side writes are recorded as Update.
    c.ok(&["label", "deployment", "web", "team=blue"])?;
    let d = get()?;
    ensure!(
        managers(&d).contains(&("kubectl-label".to_owned(), "Update".to_owned())),
        "{:?}",
        managers(&d)
    );
    Ok(())
}

fn namespace_lifecycle(c: &Cluster) -> Result<()> {
    let err = c.fails(&["-n", "nowhere", "create", "configmap", "x"])?;
    ensure!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    c.ok(&["create", "namespace", "doomed"])?;
    c.ok(&["-n", "doomed", "create", "configmap", "x"])?;
    c.ok(&[
        "delete",
        "namespace",
        "doomed",
        "--wait=true",
        "--timeout=60s",
    ])?;
    let err = c.fails(&["get", "namespace", "doomed"])?;
    ensure!(err.contains("not found"), "{err}");
    let err = c.fails(&["delete", "namespace", "default"])?;
    ensure!(err.contains("forbidden"), "{err}");
    Ok(())
}

fn bad_requests(c: &Cluster) -> Result<()> {
    let err = c.fails(&["get", "flurbs"])?;
    ensure!(
        err.contains("the server doesn't have a resource type \"flurbs\""),
        "{err}"
    );
    let out = c.kubectl_in(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  namespace: other\n"),
    )?;
    ensure!(!out.status.success());
    // Validation: 422 Invalid naming the field, as upstream prints it.
    let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  selector:\n    matchLabels: {app: a}\n  template:\n    metadata:\n      labels: {app: a}\n    spec:\n      containers:\n      - name: c\n";
    let out = c.kubectl_in(&["create", "-f", "-"], Some(bad))?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        err.contains("The Deployment \"bad\" is invalid: spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );
    ensure!(
        c.fails(&["get", "deployment", "bad"])?.contains("NotFound"),
        "an invalid object was stored"
    );
    let err = c.fails(&["get", "pods", "--field-selector", "spec.flurb=x"])?;
    ensure!(
        err.contains("field label not supported: spec.flurb"),
        "{err}"
    );
    // A token the server does not know: 401.
    let anon = c.home.join("anon.yaml");
    let config = std::fs::read_to_string(&c.kubeconfig)?;
    let server = config
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("server: "))
        .context("no server line")?;
    std::fs::write(
        &anon,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {{token: not-a-valid-token}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        ),
    )?;
    let out = Command::new(KUBECTL)
        .args(["--kubeconfig", path_str(&anon)?, "get", "cm"])
        .output()?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        !out.status.success() && err.contains("You must be logged in to the server"),
        "{err}"
    );
    Ok(())
}

/// Runs `kubectl ARGS` (a watch), does `then` once it is running, and collects its output
/// lines until one satisfies `done` (at most 15 s); the lines so far.
fn kubectl_watch(
    c: &Cluster,
    args: &[&str],
    then: impl FnOnce() -> Result<()>,
    done: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let mut watch = Command::new(KUBECTL)
        .args(args)
        .arg("--request-timeout=20s")
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", &c.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(700));
    let acted = then();
    let stdout = watch.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while acted.is_ok() && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let finished = done(&line);
            lines.push(line);
            if finished {
                break;
            }
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    acted?;
    ensure!(
        lines.last().is_some_and(|l| done(l)),
        "kubectl {args:?} did not print what was awaited: {lines:?}"
    );
    Ok(lines)
}

/// A ConfigMap owned by the Deployment `owner`.
fn owned_configmap(c: &Cluster, owner: &str, name: &str) -> Result<()> {
    let uid = c.ok(&["get", "deployment", owner, "-o", "jsonpath={.metadata.uid}"])?;
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": uid,
                             "controller": true, "blockOwnerDeletion": true}]}});
    c.ok_in(&["create", "-f", "-"], Some(&cm.to_string()))?;
    Ok(())
}

fn gone_within(c: &Cluster, args: &[&str], secs: u64) -> Result<bool> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        let out = c.kubectl(args)?;
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound") {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(false)
}

fn cascading_delete(c: &Cluster) -> Result<()> {
    // Background (kubectl's default): the owner goes at once, then its dependents.
    c.ok(&["create", "deployment", "bg", "--image=busybox"])?;
    owned_configmap(c, "bg", "bg-dep")?;
    c.ok(&["delete", "deployment", "bg"])?;
    ensure!(
        gone_within(c, &["get", "cm", "bg-dep"], 20)?,
        "background: the dependent stayed"
    );
    // Orphan: the dependent stays, without the owner reference.
    c.ok(&["create", "deployment", "or", "--image=busybox"])?;
    owned_configmap(c, "or", "or-dep")?;
    let or_uid = c.ok(&["get", "deployment", "or", "-o", "jsonpath={.metadata.uid}"])?;
    c.ok(&[
        "delete",
        "deployment",
        "or",
        "--cascade=orphan",
        "--wait=true",
        "--timeout=30s",
    ])?;
    ensure!(c.fails(&["get", "deployment", "or"])?.contains("NotFound"));
    let dep = c.json(&["get", "cm", "or-dep", "--show-managed-fields"])?;
    ensure!(
        dep["metadata"]
            .get("ownerReferences")
            .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty)),
        "{dep}"
    );
    // The collector's write is tracked: no manager still owns the removed reference.
    let managed = dep["metadata"]["managedFields"].to_string();
    ensure!(
        managed.contains("kubectl-create") && !managed.contains(or_uid.trim()),
        "{managed}"
    );
    // Foreground: the owner waits for its dependents.
    c.ok(&["create", "deployment", "fg", "--image=busybox"])?;
    owned_configmap(c, "fg", "fg-dep")?;
    c.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--wait=true",
        "--timeout=30s",
    ])?;
    ensure!(c.fails(&["get", "deployment", "fg"])?.contains("NotFound"));
    ensure!(c.fails(&["get", "cm", "fg-dep"])?.contains("NotFound"));
    Ok(())
}

fn more_commands(c: &Cluster) -> Result<()> {
    c.ok(&["create", "deployment", "web", "--image=busybox"])?;
    c.ok(&["create", "service", "clusterip", "websvc", "--tcp=80:8080"])?;
    let svc = c.json(&["get", "service", "websvc"])?;
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or("");
    ensure!(ip.starts_with("10.43.") && ip != "10.43.0.1", "{svc}");
    ensure!(svc["spec"]["ports"][0]["targetPort"] == 8080, "{svc}");
    let wide = c.ok(&["get", "svc", "-o", "wide"])?;
    ensure!(
        wide.lines().next().is_some_and(|h| h.contains("SELECTOR")),
        "{wide}"
    );
    ensure!(
        wide.contains("kubernetes") && wide.contains("10.43.0.1"),
        "{wide}"
    );
    let all = c.ok(&["get", "deployments", "-A"])?;
    ensure!(
        all.lines()
            .next()
            .is_some_and(|h| h.starts_with("NAMESPACE")),
        "{all}"
    );
    let describe = c.ok(&["describe", "deployment", "web"])?;
    ensure!(
        describe.contains("Name:") && describe.contains("web") && describe.contains("busybox"),
        "{describe}"
    );
    let explain = c.ok(&["explain", "deployment.spec.replicas"])?;
    ensure!(
        explain.contains("replicas") && explain.contains("integer"),
        "{explain}"
    );
    // get -w prints the change: by name, and in the default (server-side Table) form,
    // where each event is a one-row Table printed under the list's header.
    let lines = kubectl_watch(
        c,
        &["get", "configmaps", "-w", "-o", "name"],
        || {
            c.ok(&["create", "configmap", "watched", "--from-literal=a=b"])
                .map(drop)
        },
        |line| line == "configmap/watched",
    )?;
    ensure!(
        lines.last().is_some_and(|l| l == "configmap/watched"),
        "{lines:?}"
    );
    let lines = kubectl_watch(
        c,
        &["get", "configmaps", "-w"],
        || {
            c.ok(&[
                "create",
                "configmap",
                "watched-table",
                "--from-literal=a=b",
                "--from-literal=c=d",
            ])
            .map(drop)
        },
        |line| line.starts_with("watched-table "),
    )?;
    let header = lines
        .first()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    ensure!(header == Some(vec!["NAME", "DATA", "AGE"]), "{lines:?}");
    ensure!(
        lines.iter().filter(|l| l.starts_with("NAME ")).count() == 1,
        "one header for the list and its events: {lines:?}"
    );
    let row: Vec<&str> = lines
        .last()
        .map_or(vec![], |l| l.split_whitespace().collect());
    ensure!(
        row.len() == 3 && row[0] == "watched-table" && row[1] == "2",
        "{lines:?}"
    );
    // wait --for=delete, delete -f, delete --all.
    let manifest = c.home.join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-file\n",
    )?;
    c.ok(&["create", "-f", path_str(&manifest)?])?;
    c.ok(&["delete", "-f", path_str(&manifest)?])?;
    c.ok(&["delete", "configmap", "watched", "--wait=false"])?;
    c.ok(&["wait", "--for=delete", "configmap/watched", "--timeout=10s"])?;
    // wait --for=condition, with the condition set through the status subresource.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Available","status":"True","reason":"Test","message":"set by the test"}]}}"#,
    ])?;
    let waited = c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=10s",
    ])?;
    ensure!(waited.contains("condition met"), "{waited}");
    c.ok(&["delete", "configmap", "--all"])?;
    let left = c.ok(&["get", "cm", "-o", "name"])?;
    ensure!(
        !left.contains("configmap/watched") && !left.contains("from-file"),
        "{left}"
    );
    Ok(())
}

/// Service addresses and ports as upstream allocates them, `get all`, and events shown by
/// `describe`.
fn services_and_events(c: &Cluster) -> Result<()> {
    let svc = |name: &str, extra: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - port: 80\n{extra}")
    };
    c.ok_in(
        &["create", "-f", "-"],
        Some(&svc("fixed", "  clusterIP: 10.43.100.100\n")),
    )?;
    ensure!(c.ok(&["get", "svc", "fixed", "-o", "jsonpath={.spec.clusterIP}"])? == "10.43.100.100");
    let out = c.kubectl_in(
        &["create", "-f", "-"],
        Some(&svc("twin", "  clusterIP: 10.43.100.100\n")),
    )?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(err.contains("provided IP is already allocated"), "{err}");
    let out = c.kubectl_in(
        &["create", "-f", "-"],
        Some(&svc("far", "  clusterIP: 10.99.0.1\n")),
    )?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        err.contains("provided IP is not in the valid range"),
        "{err}"
    );
    // Released with its Service: the address can be had again.
    c.ok(&["delete", "svc", "fixed"])?;
    c.ok_in(
        &["create", "-f", "-"],
        Some(&svc("twin", "  clusterIP: 10.43.100.100\n")),
    )?;
    // NodePorts: allocated from 30000-32767, held, released on delete.
    c.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"])?;
    let port: u16 = c
        .ok(&[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])?
        .parse()?;
    ensure!((30000..=32767).contains(&port), "{port}");
    let taken = svc("np2", &format!("    nodePort: {port}\n  type: NodePort\n"));
    let out = c.kubectl_in(&["create", "-f", "-"], Some(&taken))?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(err.contains("provided port is already allocated"), "{err}");
    c.ok(&["delete", "svc", "np"])?;
    c.ok_in(&["create", "-f", "-"], Some(&taken))?;
    // Type changes: to NodePort allocates a nodePort, back to ClusterIP gives it back.
    c.ok(&[
        "patch",
        "svc",
        "twin",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ])?;
    let moved: u16 = c
        .ok(&[
            "get",
            "svc",
            "twin",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])?
        .parse()?;
    ensure!((30000..=32767).contains(&moved) && moved != port, "{moved}");
    c.ok(&[
        "patch",
        "svc",
        "twin",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])?;
    let none = c.ok(&[
        "get",
        "svc",
        "twin",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ])?;
    ensure!(none.is_empty(), "a ClusterIP Service kept nodePort {none}");
    c.ok_in(
        &["create", "-f", "-"],
        Some(&svc(
            "np3",
            &format!("    nodePort: {moved}\n  type: NodePort\n"),
        )),
    )?;

    // `get all` lists the workloads and services of the namespace.
    c.ok(&["create", "deployment", "web", "--image=busybox"])?;
    let all = c.ok(&["get", "all"])?;
    for name in ["service/kubernetes", "service/twin", "deployment.apps/web"] {
        ensure!(all.contains(name), "get all lacks {name}:\n{all}");
    }

    // An event about a ConfigMap shows in its description and in `get events`.
    c.ok(&["create", "configmap", "noted", "--from-literal=a=b"])?;
    let uid = c.ok(&["get", "cm", "noted", "-o", "jsonpath={.metadata.uid}"])?;
    let event = serde_json::json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "noted.1"},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "noted", "namespace": "default", "uid": uid},
        "reason": "Checked", "message": "looked at by the test", "type": "Normal",
        "source": {"component": "skiff-test"}, "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"});
    c.ok_in(&["create", "-f", "-"], Some(&event.to_string()))?;
    let described = c.ok(&["describe", "configmap", "noted"])?;
    ensure!(
        described.contains("Events:")
            && described.contains("Checked")
            && described.contains("looked at by the test"),
        "{described}"
    );
    let events = c.ok(&["get", "events"])?;
    ensure!(
        events.contains("configmap/noted") && events.contains("Checked"),
        "{events}"
    );
    Ok(())
}

/// A namespace stays Terminating while something in it has a finalizer, and refuses new
/// content meanwhile (403, upstream's message); it goes once the finalizer is removed.
fn terminating_namespace(c: &Cluster) -> Result<()> {
    c.ok(&["create", "namespace", "ending"])?;
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: ending\n  finalizers: [skiff.test/hold]\n";
    c.ok_in(&["create", "-f", "-"], Some(held))?;
    c.ok(&["delete", "namespace", "ending", "--wait=false"])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let phase = c.ok(&["get", "ns", "ending", "-o", "jsonpath={.status.phase}"])?;
        if phase == "Terminating" {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "phase {phase}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // What holds it up is in its conditions, as upstream's namespace controller reports it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let conditions = loop {
        let ns = c.json(&["get", "ns", "ending"])?;
        let conditions = ns["status"]["conditions"].clone();
        if conditions.as_array().is_some_and(|c| c.len() == 5) {
            break conditions;
        }
        ensure!(std::time::Instant::now() < deadline, "no conditions: {ns}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let condition = |kind: &str| {
        conditions
            .as_array()
            .and_then(|all| all.iter().find(|c| c["type"] == kind))
            .cloned()
            .unwrap_or_default()
    };
    let content = condition("NamespaceContentRemaining");
    ensure!(
        content["status"] == "True"
            && content["reason"] == "SomeResourcesRemain"
            && content["message"]
                == "Some resources are remaining: configmaps. has 1 resource instances",
        "{conditions}"
    );
    let held = condition("NamespaceFinalizersRemaining");
    ensure!(
        held["status"] == "True"
            && held["message"]
                == "Some content in the namespace has finalizers remaining: skiff.test/hold in 1 resource instances",
        "{conditions}"
    );
    ensure!(
        condition("NamespaceDeletionContentFailure")["reason"] == "ContentDeleted",
        "{conditions}"
    );
    let described = c.ok(&["describe", "namespace", "ending"])?;
    ensure!(
        described.contains("NamespaceContentRemaining")
            && described.contains("SomeFinalizersRemain"),
        "{described}"
    );
    let err = c.fails(&["-n", "ending", "create", "configmap", "late"])?;
    ensure!(
        err.contains(
            "unable to create new content in namespace ending because it is being terminated"
        ),
        "{err}"
    );
    c.ok(&[
        "-n",
        "ending",
        "patch",
        "configmap",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])?;
    ensure!(
        gone_within(c, &["get", "namespace", "ending"], 30)?,
        "the namespace stayed after its last finalizer went"
    );
    Ok(())
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: c, image: 'img:1'}
";

/// The names of the deployment's containers, in order.
fn container_names(d: &Value) -> Vec<String> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `kubectl patch` (strategic merge is its default type), `set image`, `set env`,
/// `rollout restart|pause|resume`: each sends a strategic merge patch.
fn strategic_merge_patches(c: &Cluster) -> Result<()> {
    c.ok_in(&["create", "-f", "-"], Some(WEB))?;
    // A container added without $setElementOrder goes first, as upstream orders it.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}"#,
    ])?;
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(container_names(&d) == ["side", "c"], "{d}");
    ensure!(d["metadata"]["generation"] == 2, "{d}");
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#,
    ])?;
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(container_names(&d) == ["c"], "{d}");

    c.ok(&["set", "image", "deployment/web", "c=img:2"])?;
    let d = c.json(&["get", "deployment", "web"])?;
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    ensure!(container["image"] == "img:2", "{d}");
    // Defaults the server set survive the merge.
    ensure!(container["imagePullPolicy"] == "IfNotPresent", "{d}");

    c.ok(&["set", "env", "deployment/web", "A=1", "B=2"])?;
    let d = c.json(&["get", "deployment", "web"])?;
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    ensure!(
        *env == serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        "{d}"
    );
    c.ok(&["set", "env", "deployment/web", "A-"])?;
    let d = c.json(&["get", "deployment", "web"])?;
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    ensure!(
        *env == serde_json::json!([{"name": "B", "value": "2"}]),
        "{d}"
    );

    ensure!(c
        .ok(&["rollout", "restart", "deployment/web"])?
        .contains("restarted"));
    let d = c.json(&["get", "deployment", "web"])?;
    let restarted =
        &d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    ensure!(restarted.is_string(), "{d}");
    ensure!(
        d["spec"]["template"]["metadata"]["labels"]["app"] == "web",
        "{d}"
    );

    ensure!(c
        .ok(&["rollout", "pause", "deployment/web"])?
        .contains("paused"));
    ensure!(c.json(&["get", "deployment", "web"])?["spec"]["paused"] == true);
    ensure!(c
        .ok(&["rollout", "resume", "deployment/web"])?
        .contains("resumed"));
    ensure!(c.json(&["get", "deployment", "web"])?["spec"]["paused"] != true);

    // A merging list element without its merge key: the patch is refused, nothing changes.
    let err = c.fails(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
    ])?;
    ensure!(
        err.contains("does not contain declared merge key: name"),
        "{err}"
    );
    let err = c.fails(&["patch", "deployment", "web", "-p", "{not json"])?;
    ensure!(!err.is_empty(), "{err}");
    // Strategic merge on the status and scale subresources.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource",
        "status",
        "-p",
        r#"{"status":{"conditions":[{"type":"Available","status":"True"}]}}"#,
    ])?;
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(d["status"]["conditions"][0]["type"] == "Available", "{d}");
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource",
        "scale",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
    ])?;
    ensure!(c.json(&["get", "deployment", "web"])?["spec"]["replicas"] == 4);
    Ok(())
}

const APPLIED_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: 'img:1'
        env:
        - {name: A, value: '1'}
        - {name: B, value: '2'}
      - {name: d, image: 'sidecar:1'}
";

const APPLIED_V2: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
  labels: {app: web, tier: x}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: 'img:2'
        env:
        - {name: A, value: '1'}
";

/// Client-side `kubectl apply`: create with the last-applied annotation, then a three-way
/// strategic merge patch that removes what left the file and keeps what others added.
fn client_side_apply(c: &Cluster) -> Result<()> {
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    let out = c.ok_in(&["apply", "-f", "-"], Some(APPLIED_V1))?;
    ensure!(out.contains("deployment.apps/applied created"), "{out}");
    let d = c.json(&["get", "deployment", "applied"])?;
    let last: Value = serde_json::from_str(
        d["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .context("no last-applied-configuration")?,
    )?;
    ensure!(
        last["spec"]["template"]["spec"]["containers"][1]["name"] == "d",
        "{last}"
    );
    ensure!(container_names(&d) == ["c", "d"], "{d}");

    // A label nobody's file has: apply must keep it.
    c.ok(&["label", "deployment", "applied", "extra=yes"])?;
    let out = c.ok_in(&["apply", "-f", "-"], Some(APPLIED_V2))?;
    ensure!(out.contains("deployment.apps/applied configured"), "{out}");
    let d = c.json(&["get", "deployment", "applied"])?;
    ensure!(container_names(&d) == ["c"], "{d}");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    ensure!(container["image"] == "img:2", "{d}");
    ensure!(
        container["env"] == serde_json::json!([{"name": "A", "value": "1"}]),
        "{d}"
    );
    // Server defaults are not the file's to remove.
    ensure!(container["imagePullPolicy"] == "IfNotPresent", "{d}");
    ensure!(
        d["metadata"]["labels"] == serde_json::json!({"app": "web", "tier": "x", "extra": "yes"}),
        "{d}"
    );
    // strategy has patch strategy retainKeys: the defaulted rollingUpdate goes with the type.
    ensure!(
        d["spec"]["strategy"] == serde_json::json!({"type": "Recreate"}),
        "{d}"
    );
    let last: Value = serde_json::from_str(
        d["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .context("no last-applied-configuration")?,
    )?;
    ensure!(last["metadata"]["labels"]["tier"] == "x", "{last}");
    ensure!(d["metadata"]["generation"] == 2, "{d}");

    let out = c.ok_in(&["apply", "-f", "-"], Some(APPLIED_V2))?;
    ensure!(out.contains("deployment.apps/applied unchanged"), "{out}");
    // Back to the first file: the container and env var come back, the label `tier` goes,
    // `extra` stays.
    c.ok_in(&["apply", "-f", "-"], Some(APPLIED_V1))?;
    let d = c.json(&["get", "deployment", "applied"])?;
    ensure!(container_names(&d) == ["c", "d"], "{d}");
    ensure!(
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            == serde_json::json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        "{d}"
    );
    ensure!(
        d["metadata"]["labels"] == serde_json::json!({"app": "web", "extra": "yes"}),
        "{d}"
    );
    Ok(())
}

/// An events.k8s.io/v1 Event about ConfigMap `settings` (uid filled in).
const EVENTS_V1_EVENT: &str = "apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: settings.1
eventTime: \"2024-01-01T00:00:00.000000Z\"
reportingController: skiff.io/test
reportingInstance: test-1
action: Testing
reason: NewApiReason
type: Normal
note: written through events.k8s.io
regarding:
  apiVersion: v1
  kind: ConfigMap
  namespace: default
  name: settings
  uid: UID
";

/// A core/v1 Event about the same ConfigMap.
const CORE_EVENT: &str = "apiVersion: v1
kind: Event
metadata:
  name: settings.2
reason: CoreReason
type: Warning
message: written through core
count: 1
firstTimestamp: \"2024-01-01T00:00:00Z\"
lastTimestamp: \"2024-01-01T00:00:00Z\"
source:
  component: tester
involvedObject:
  apiVersion: v1
  kind: ConfigMap
  namespace: default
  name: settings
  uid: UID
";

/// Events and HPAs are each one resource served in two versions: what is written through
/// one is seen through the other, in its own shape (kubectl's tables included).
fn one_resource_in_two_versions(c: &Cluster) -> Result<()> {
    c.ok(&["create", "configmap", "settings", "--from-literal=a=b"])?;
    let uid = c.ok(&["get", "cm", "settings", "-o", "jsonpath={.metadata.uid}"])?;
    let out = c.ok_in(
        &["create", "-f", "-"],
        Some(&EVENTS_V1_EVENT.replace("UID", &uid)),
    )?;
    ensure!(out.contains("settings.1 created"), "{out}");
    c.ok_in(
        &["create", "-f", "-"],
        Some(&CORE_EVENT.replace("UID", &uid)),
    )?;

    // `kubectl get events` lists core/v1 events: both are there.
    let events = c.ok(&["get", "events"])?;
    for want in [
        "NewApiReason",
        "written through events.k8s.io",
        "CoreReason",
        "written through core",
        "configmap/settings",
    ] {
        ensure!(events.contains(want), "no {want:?} in:\n{events}");
    }
    // Through events.k8s.io/v1, the core one reads in that version's shape.
    let note = c.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "settings.2",
        "-o",
        "jsonpath={.note}/{.regarding.name}/{.deprecatedSource.component}",
    ])?;
    ensure!(note == "written through core/settings/tester", "{note}");
    let message = c.ok(&[
        "get",
        "events",
        "settings.1",
        "-o",
        "jsonpath={.message}/{.involvedObject.name}/{.reportingComponent}",
    ])?;
    ensure!(
        message == "written through events.k8s.io/settings/skiff.io/test",
        "{message}"
    );
    // describe finds them by the involved object (a field selector on core/v1 events).
    let described = c.ok(&["describe", "configmap", "settings"])?;
    for want in [
        "Events:",
        "NewApiReason",
        "written through events.k8s.io",
        "CoreReason",
    ] {
        ensure!(described.contains(want), "no {want:?} in:\n{described}");
    }

    // An HPA made through autoscaling/v1, shown with autoscaling/v2's table.
    c.ok(&["create", "deployment", "web", "--image=nginx"])?;
    let out = c.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--max=3",
        "--cpu-percent=50",
    ])?;
    ensure!(out.contains("web autoscaled"), "{out}");
    let table = c.ok(&["get", "hpa"])?;
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines
        .first()
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    ensure!(
        header
            == [
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ],
        "{table}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with("web "))
        .with_context(|| format!("no web row:\n{table}"))?;
    ensure!(
        row.contains("Deployment/web") && row.contains("cpu: <unknown>/50%"),
        "{table}"
    );
    let cells: Vec<&str> = row.split("cpu: <unknown>/50%").collect();
    let rest: Vec<&str> = cells
        .get(1)
        .map(|r| r.split_whitespace().collect())
        .unwrap_or_default();
    ensure!(
        rest.first() == Some(&"1") && rest.get(1) == Some(&"3"),
        "{table}"
    );
    let v2 = c.json(&["get", "horizontalpodautoscalers.v2.autoscaling", "web"])?;
    ensure!(v2["apiVersion"] == "autoscaling/v2", "{v2}");
    ensure!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50,
        "{v2}"
    );
    let v1 = c.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "jsonpath={.apiVersion}/{.spec.targetCPUUtilizationPercentage}",
    ])?;
    ensure!(v1 == "autoscaling/v1/50", "{v1}");
    Ok(())
}

/// Moving from `kubectl apply` to `kubectl apply --server-side`, as upstream: a changed
/// field the client-side manager owns conflicts; the same configuration applies, and
/// kubectl then moves the client-side manager's fields to its own Apply entry (a JSON patch
/// of `managedFields`), so the next server-side apply removes what the file dropped.
fn client_side_apply_upgraded_to_server_side(c: &Cluster) -> Result<()> {
    let v1 = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: upgraded\n  labels: {app: up}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: up}}\n  template:\n    metadata: {labels: {app: up}}\n    spec:\n      containers:\n      - {name: c, image: 'img:1'}\n      - {name: d, image: 'sidecar:1'}\n";
    let v2 = v1
        .replace("      - {name: d, image: 'sidecar:1'}\n", "")
        .replace("img:1", "img:2");
    c.ok_in(&["apply", "-f", "-"], Some(v1))?;
    let out = c.kubectl_in(&["apply", "--server-side", "-f", "-"], Some(&v2))?;
    let err = String::from_utf8(out.stderr)?;
    ensure!(
        !out.status.success()
            && err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.template.spec.containers[name="c"].image"#),
        "{err}"
    );
    let out = c.ok_in(&["apply", "--server-side", "-f", "-"], Some(v1))?;
    ensure!(
        out.contains("deployment.apps/upgraded serverside-applied"),
        "{out}"
    );
    let d = c.json(&["get", "deployment", "upgraded", "--show-managed-fields"])?;
    let names: Vec<(String, String)> = managers(&d);
    ensure!(
        names.contains(&("kubectl".to_owned(), "Apply".to_owned()))
            && !names.iter().any(|(m, _)| m == "kubectl-client-side-apply"),
        "{names:?}"
    );
    c.ok_in(&["apply", "--server-side", "-f", "-"], Some(&v2))?;
    let d = c.json(&["get", "deployment", "upgraded"])?;
    ensure!(container_names(&d) == ["c"], "{d}");
    ensure!(
        d["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2",
        "{d}"
    );
    Ok(())
}

/// `kubectl edit` (an EDITOR script changes the file), `kubectl diff` (server dry-run: a
/// change shows and exits 1, no change exits 0, nothing is stored), `kubectl replace`,
/// `kubectl apply -f dir/` and `-R`, and `apply --prune -l`.
fn edit_diff_replace_directories_and_prune(c: &Cluster) -> Result<()> {
    // edit
    c.ok(&["create", "configmap", "edited", "--from-literal=a=before"])?;
    let editor = c.home.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/a: before/a: after/' \"$1\"\n",
    )?;
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let run_edit = || -> Result<Output> {
        Ok(Command::new(KUBECTL)
            .args(["edit", "configmap", "edited"])
            .env("KUBECONFIG", &c.kubeconfig)
            .env("HOME", &c.home)
            .env("EDITOR", &editor)
            .stdin(Stdio::null())
            .output()?)
    };
    let out = run_edit()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains("configmap/edited edited"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(c.ok(&["get", "configmap", "edited", "-o", "jsonpath={.data.a}"])? == "after");
    // The script finds nothing to change now.
    let out = run_edit()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(said.contains("Edit cancelled, no changes made."), "{said}");

    // diff
    let manifest = |value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: diffed\ndata:\n  a: {value}\n")
    };
    c.ok_in(&["apply", "-f", "-"], Some(&manifest("one")))?;
    let out = c.kubectl_in(&["diff", "-f", "-"], Some(&manifest("two")))?;
    let shown = String::from_utf8(out.stdout)?;
    ensure!(
        out.status.code() == Some(1),
        "diff exit {:?}: {shown}",
        out.status
    );
    ensure!(
        shown.contains("-  a: one") && shown.contains("+  a: two"),
        "{shown}"
    );
    ensure!(c.ok(&["get", "configmap", "diffed", "-o", "jsonpath={.data.a}"])? == "one");
    let out = c.kubectl_in(&["diff", "-f", "-"], Some(&manifest("one")))?;
    ensure!(
        out.status.code() == Some(0) && out.stdout.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );

    // replace
    let out = c.ok_in(&["replace", "-f", "-"], Some(&manifest("three")))?;
    ensure!(out.contains("configmap/diffed replaced"), "{out}");
    ensure!(c.ok(&["get", "configmap", "diffed", "-o", "jsonpath={.data.a}"])? == "three");

    // apply -f dir/, -R, --prune -l
    let dir = c.home.join("manifests");
    std::fs::create_dir_all(dir.join("nested"))?;
    let labelled = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    set: pruned\ndata:\n  k: v\n")
    };
    std::fs::write(dir.join("a.yaml"), labelled("from-dir-a"))?;
    std::fs::write(dir.join("b.yaml"), labelled("from-dir-b"))?;
    std::fs::write(dir.join("nested").join("c.yaml"), labelled("from-dir-c"))?;
    let d = path_str(&dir)?;
    let out = c.ok(&["apply", "-f", d])?;
    ensure!(
        out.contains("configmap/from-dir-a created")
            && out.contains("configmap/from-dir-b created")
            && !out.contains("from-dir-c"),
        "{out}"
    );
    let out = c.ok(&["apply", "-R", "-f", d])?;
    ensure!(
        out.contains("configmap/from-dir-a unchanged")
            && out.contains("configmap/from-dir-c created"),
        "{out}"
    );
    std::fs::remove_file(dir.join("b.yaml"))?;
    let out = c.ok(&["apply", "-R", "-f", d, "--prune", "-l", "set=pruned"])?;
    ensure!(out.contains("configmap/from-dir-b pruned"), "{out}");
    let left = c.ok(&["get", "configmaps", "-l", "set=pruned", "-o", "name"])?;
    ensure!(
        left.lines().collect::<Vec<_>>() == ["configmap/from-dir-a", "configmap/from-dir-c"],
        "{left}"
    );
    Ok(())
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path")
}

#[test]
fn restart_keeps_certificates_and_data() -> Result<()> {
    let c = Cluster::start(None)?;
    c.ok(&["create", "configmap", "keep", "--from-literal=a=b"])?;
    let kubeconfig_before = std::fs::read_to_string(&c.kubeconfig)?;
    let dir = c.stop()?;
    let c = Cluster::start_in(dir, None)?;
    let ca_before = kubeconfig_before
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .map(str::to_owned);
    let ca_after = std::fs::read_to_string(&c.kubeconfig)?
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .map(str::to_owned);
    ensure!(ca_before == ca_after, "the CA changed across a restart");
    ensure!(c.ok(&["get", "cm", "keep", "-o", "jsonpath={.data.a}"])? == "b");
    Ok(())
}

/// The garbage collector's queue is memory: a dependent whose owner went while the server
/// was down (here: removed from the datastore behind its back, as a crash between removing
/// an owner and collecting its dependents leaves it) is collected when the server starts
/// again, and a dependent whose owner is there stays.
#[test]
fn garbage_collection_resumes_after_a_restart() -> Result<()> {
    let c = Cluster::start(None)?;
    c.ok(&["create", "deployment", "owner", "--image=busybox"])?;
    c.ok(&["create", "deployment", "kept", "--image=busybox"])?;
    owned_configmap(&c, "owner", "left-behind")?;
    owned_configmap(&c, "kept", "still-owned")?;
    let dir = c.stop()?;
    let db = dir.path().join("server").join("db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use skiff_store::Store;
        let store = skiff_store::EmbeddedStore::open(skiff_store::EmbeddedConfig::new(db))?;
        store
            .delete("/apps/deployments/default/owner", None)
            .await?;
        anyhow::Ok(())
    })?;
    let c = Cluster::start_in(dir, None)?;
    ensure!(
        gone_within(&c, &["get", "configmap", "left-behind"], 20)?,
        "the dependent of a vanished owner was not collected"
    );
    c.ok(&["get", "configmap", "still-owned"])?;
    Ok(())
}

/// What upstream's JSON always carries because Go writes struct values even when empty (and
/// zero metav1.Time as null, non-omitempty counters as 0): a new Deployment's `"status": {}`,
/// which a client reading `status` as a struct needs for a read-modify-write of `/status`.
/// On a server without controllers, so that nothing else writes the statuses.
fn objects_carry_the_fields_go_always_writes(c: &Cluster) -> Result<()> {
    c.ok(&["create", "deployment", "web", "--image=nginx"])?;
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(d["status"] == serde_json::json!({}), "{d}");
    let template = &d["spec"]["template"];
    ensure!(
        template["metadata"]
            .as_object()
            .is_some_and(|m| m.get("creationTimestamp") == Some(&Value::Null)),
        "{d}"
    );
    ensure!(
        template["spec"]["containers"][0]["resources"] == serde_json::json!({}),
        "{d}"
    );
    // Read, modify, write back through /status (what the Python client's
    // read_namespaced_deployment_status / replace_namespaced_deployment_status do).
    let mut d = c.json(&["get", "deployment", "web"])?;
    d["status"]["observedGeneration"] = serde_json::json!(1);
    c.ok_in(
        &["replace", "--subresource=status", "-f", "-"],
        Some(&d.to_string()),
    )?;
    let d = c.json(&["get", "deployment", "web"])?;
    ensure!(
        d["status"] == serde_json::json!({"observedGeneration": 1}),
        "{d}"
    );

    c.ok(&["create", "service", "clusterip", "websvc", "--tcp=80:8080"])?;
    for name in ["websvc", "kubernetes"] {
        let svc = c.json(&["get", "service", name])?;
        ensure!(
            svc["status"] == serde_json::json!({"loadBalancer": {}}),
            "{svc}"
        );
    }
    c.ok(&["run", "p", "--image=nginx"])?;
    let pod = c.json(&["get", "pod", "p"])?;
    ensure!(pod["status"]["phase"] == "Pending", "{pod}");
    ensure!(
        pod["spec"]["containers"][0]["resources"] == serde_json::json!({}),
        "{pod}"
    );
    c.ok(&["create", "configmap", "cm", "--from-literal=a=b"])?;
    let cm = c.json(&["get", "configmap", "cm"])?;
    ensure!(
        cm.get("status").is_none() && cm.get("spec").is_none(),
        "{cm}"
    );
    let rs = r#"{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "rs"}},
                 "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}"#;
    c.ok_in(&["create", "-f", "-"], Some(rs))?;
    let rs = c.json(&["get", "replicaset", "rs"])?;
    ensure!(rs["status"] == serde_json::json!({"replicas": 0}), "{rs}");
    let pdb = c.json(&[
        "create",
        "poddisruptionbudget",
        "pdb",
        "--selector=app=rs",
        "--min-available=1",
        "--dry-run=server",
    ])?;
    ensure!(
        pdb["status"]
            == serde_json::json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}),
        "{pdb}"
    );
    let ns = c.json(&["get", "namespace", "default"])?;
    ensure!(
        ns["status"] == serde_json::json!({"phase": "Active"}),
        "{ns}"
    );
    Ok(())
}
