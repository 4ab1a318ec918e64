//! The target architecture's dependency rules, checked on every crate's Cargo.toml (see
//! ARCHITECTURE.md): the components that talk to the cluster only through the Kubernetes API
//! (controllers, scheduler, kubelet, and the proxy and DNS to come) never depend on the
//! datastore or the API server; `skiff-api` has no HTTP, client, runtime or storage crate;
//! `skiff-store` knows nothing of Kubernetes. A new crate must be given its rule here.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The crates that are clients of the API only.
const API_CLIENTS: &[&str] = &[
    "skiff-controllers",
    "skiff-scheduler",
    "skiff-kubelet",
    "skiff-runtime",
    "skiff-proxy",
    "skiff-dns",
];

/// What an API client may never depend on.
const SERVER_SIDE: &[&str] = &["skiff-store", "skiff-apiserver"];

/// What `skiff-api` (the API's logic without I/O) may never depend on.
const IO_CRATES: &[&str] = &[
    "skiff-store",
    "skiff-apiserver",
    "http",
    "http-body",
    "hyper",
    "hyper-util",
    "axum",
    "tower",
    "tower-http",
    "reqwest",
    "tonic",
    "kube",
    "kube-client",
    "kube-runtime",
    "tokio",
    "redb",
    "etcd-client",
    "rustls",
    "tokio-rustls",
];

/// What `skiff-store` may never depend on.
const KUBERNETES_CRATES: &[&str] = &[
    "skiff-api",
    "k8s-openapi",
    "kube",
    "kube-client",
    "kube-runtime",
];

/// Every dependency of a manifest (normal, dev and build), by package name.
fn dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(deps) = manifest.get(section).and_then(toml::Value::as_table) {
            for (name, spec) in deps {
                let package = spec
                    .as_table()
                    .and_then(|t| t.get("package"))
                    .and_then(toml::Value::as_str)
                    .unwrap_or(name);
                names.insert(package.to_owned());
            }
        }
    }
    names
}

/// The rule's verdict on one crate: the forbidden dependencies it has.
fn violations(krate: &str, deps: &BTreeSet<String>) -> Option<Vec<String>> {
    let forbidden: &[&str] = match krate {
        k if API_CLIENTS.contains(&k) => SERVER_SIDE,
        "skiff-api" => IO_CRATES,
        "skiff-store" => KUBERNETES_CRATES,
        "skiff-apiserver" | "skiff" => &[],
        _ => return None,
    };
    Some(
        forbidden
            .iter()
            .filter(|f| deps.contains(**f))
            .map(|f| (*f).to_owned())
            .collect(),
    )
}

#[test]
fn every_crate_keeps_to_the_dependency_rules() -> Result<()> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    let mut broken = Vec::new();
    for entry in std::fs::read_dir(&crates)? {
        let path = entry?.path().join("Cargo.toml");
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let manifest: toml::Table = text
            .parse()
            .with_context(|| format!("{}", path.display()))?;
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{} has no package name", path.display()))?
            .to_owned();
        let Some(bad) = violations(&name, &dependencies(&manifest)) else {
            bail!("crate {name} has no dependency rule: give it one in tests/architecture.rs and ARCHITECTURE.md");
        };
        seen += 1;
        if !bad.is_empty() {
            broken.push(format!("{name} depends on {}", bad.join(", ")));
        }
    }
    if !broken.is_empty() {
        bail!("the target architecture is broken: {}", broken.join("; "));
    }
    anyhow::ensure!(
        seen >= 5,
        "only {seen} crates found under {}",
        crates.display()
    );
    Ok(())
}

#[test]
fn the_rules_catch_a_broken_edge() {
    let deps = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        violations("skiff-controllers", &deps(&["kube", "skiff-store"])),
        Some(vec!["skiff-store".to_owned()])
    );
    assert_eq!(
        violations("skiff-api", &deps(&["serde", "hyper"])),
        Some(vec!["hyper".to_owned()])
    );
    assert_eq!(
        violations("skiff-store", &deps(&["k8s-openapi"])),
        Some(vec!["k8s-openapi".to_owned()])
    );
    assert_eq!(violations("skiff-unknown", &deps(&[])), None);
    let manifest: toml::Table =
        "[dependencies]\nstore = { package = \"skiff-store\", path = \"x\" }\n"
            .parse()
            .expect("valid toml");
    assert!(dependencies(&manifest).contains("skiff-store"));
}
