//! Registry pull with `oci-client`, as containerd's CRI plugin pulls for the kubelet:
//! resolve the reference (following a multi-arch index to linux and the host's
//! architecture), stream the config and layer blobs into the store with their digests
//! checked, record the image.
//!
//! Credentials come from two places. The caller passes the dockerconfigjson of the pod's
//! `imagePullSecrets`, matched by registry host (and path prefix) as the kubelet's
//! credential keyring matches them. The node's `registries.yaml` (k3s's format) adds
//! mirrors (`mirrors: {docker.io: {endpoint: [...]}}`, tried in order, then the registry
//! itself), per-host auth and TLS (`configs: {host: {auth: {...}, tls: {...}}}`), and
//! plain HTTP for `http://` endpoints.
//!
//! Errors are sorted into not found, unauthorized and unreachable (see [`Error`]) because
//! the kubelet's `ErrImagePull` message and backoff depend on which.

use super::manifest::{self, Index, Probe};
use super::reference::{parse_reference, Reference};
use super::store::{sha256_digest, ImageRecord, NewImage, Store};
use super::{Error, Result};
use base64::Engine as _;
use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// A dockerconfigjson (`kubernetes.io/dockerconfigjson` secrets' `.dockerconfigjson`, or a
/// legacy `.dockercfg` map without the `auths` wrapper).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerConfigJson {
    #[serde(default)]
    pub auths: BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerAuth {
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl DockerAuth {
    fn credentials(&self) -> Option<(String, String)> {
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            if !u.is_empty() {
                return Some((u.clone(), p.clone()));
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.as_deref()?.trim())
            .ok()?;
        let s = String::from_utf8(decoded).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }
}

impl DockerConfigJson {
    pub fn parse(bytes: &[u8]) -> Result<DockerConfigJson> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::DockerConfig(e.to_string()))?;
        let v = if v.get("auths").is_some() {
            v
        } else {
            serde_json::json!({ "auths": v })
        };
        serde_json::from_value(v).map_err(|e| Error::DockerConfig(e.to_string()))
    }

    /// Several secrets' configs as one (earlier secrets win, as the kubelet's keyring).
    pub fn merge(configs: &[DockerConfigJson]) -> DockerConfigJson {
        let mut out = DockerConfigJson::default();
        for c in configs.iter().rev() {
            out.auths.extend(c.auths.clone());
        }
        out
    }

    /// The credentials for `registry` (as written in an image name) and `repository`.
    /// Keys match as the kubelet's keyring matches them: scheme ignored, host equal (a
    /// `*.` label matches one label), port equal, key path a prefix of the repository;
    /// Docker Hub's many spellings (`https://index.docker.io/v1/`, `docker.io`, ...)
    /// are one. The longest matching key wins.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<(String, String)> {
        let mut best: Option<(usize, (String, String))> = None;
        for (key, auth) in &self.auths {
            let Some(spec) = key_matches(key, registry, repository) else {
                continue;
            };
            let Some(creds) = auth.credentials() else {
                continue;
            };
            if best.as_ref().is_none_or(|(s, _)| spec > *s) {
                best = Some((spec, creds));
            }
        }
        best.map(|(_, c)| c)
    }
}

fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    }
}

/// How specific the match of `key` is (its length), if it matches.
fn key_matches(key: &str, registry: &str, repository: &str) -> Option<usize> {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = match k.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (k, ""),
    };
    let host = canonical_host(host);
    let registry = canonical_host(registry);
    let host_ok = if let Some(suffix) = host.strip_prefix("*.") {
        registry
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
    } else {
        host == registry
    };
    if !host_ok {
        return None;
    }
    // Docker Hub keys carry the API version as their path.
    let path = if host == "docker.io" {
        path.trim_start_matches("v1")
            .trim_start_matches("v2")
            .trim_start_matches('/')
    } else {
        path
    };
    let path_ok =
        path.is_empty() || repository == path || repository.starts_with(&format!("{path}/"));
    if !path_ok {
        return None;
    }
    Some(k.len())
}

/// The node's registries file, k3s's `registries.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryConfig {
    #[serde(default)]
    pub auth: Option<RegistryAuthConfig>,
    #[serde(default)]
    pub tls: Option<RegistryTls>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryAuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryTls {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl RegistriesConfig {
    pub fn parse(path: &Path, text: &str) -> Result<RegistriesConfig> {
        if text.trim().is_empty() {
            return Ok(RegistriesConfig::default());
        }
        serde_yaml::from_str(text).map_err(|e| Error::RegistriesConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<RegistriesConfig> {
        match std::fs::read_to_string(path) {
            Ok(t) => Self::parse(path, &t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistriesConfig::default()),
            Err(e) => Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// The endpoints to try for `registry`: its mirrors (or the `*` mirrors) in order, then
    /// the registry itself over HTTPS, as k3s configures containerd.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirrors = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .map(|m| m.endpoint.as_slice())
            .unwrap_or_default();
        let mut out: Vec<Endpoint> = mirrors.iter().filter_map(|e| Endpoint::parse(e)).collect();
        // The registry itself last, unless a mirror entry already is it (an
        // `http://host:port` entry for a plain-HTTP registry of its own name).
        if !out.iter().any(|e| e.host == registry) {
            out.push(Endpoint {
                host: registry.to_owned(),
                plain_http: false,
            });
        }
        out
    }

    fn config_for(&self, host: &str) -> Option<&RegistryConfig> {
        self.configs.get(host)
    }
}

/// A registry endpoint: `host[:port]` and whether it speaks plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub plain_http: bool,
}

impl Endpoint {
    fn parse(s: &str) -> Option<Endpoint> {
        let s = s.trim();
        let (plain_http, rest) = if let Some(r) = s.strip_prefix("http://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (false, r)
        } else {
            (false, s)
        };
        let host = rest.split('/').next().unwrap_or_default();
        (!host.is_empty()).then(|| Endpoint {
            host: host.to_owned(),
            plain_http,
        })
    }
}

/// What a pull is given besides the image name.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The pod's `imagePullSecrets`, merged.
    pub pull_secrets: DockerConfigJson,
    /// The node's registries file.
    pub registries: RegistriesConfig,
}

/// Pulls `image` into `store` and records it (unpinned). Returns the image.
pub async fn pull(store: &Store, image: &str, opts: &PullOptions) -> Result<ImageRecord> {
    let r = parse_reference(image)?;
    let name = r.whole();
    // rustls needs a process-wide provider; ring is the workspace's. Already set is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Of the endpoints' errors the most telling is reported: a mirror's "not found" or
    // "unauthorized" says more than the registry behind it being unreachable (an
    // air-gapped node with a mirror for docker.io).
    let mut best: Option<Error> = None;
    for ep in opts.registries.endpoints(r.registry()) {
        match pull_from(store, &r, &ep, opts).await {
            Ok(rec) => return Ok(rec),
            Err(e) => {
                tracing::info!(image = %name, endpoint = %ep.host, error = %e, "pull from endpoint failed");
                if best.as_ref().is_none_or(|b| rank(&e) >= rank(b)) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or_else(|| Error::Registry {
        reference: name,
        detail: "no endpoint to pull from".into(),
    }))
}

/// How telling an endpoint's error is (see [`pull`]).
fn rank(e: &Error) -> u8 {
    match e {
        Error::Unreachable { .. } => 0,
        Error::Registry { .. } => 1,
        Error::NotFound { .. } => 3,
        Error::Unauthorized { .. } => 2,
        _ => 1,
    }
}

fn credentials(r: &Reference, ep: &Endpoint, opts: &PullOptions) -> RegistryAuth {
    let from_secret = opts
        .pull_secrets
        .lookup(&ep.host, r.repository())
        .or_else(|| opts.pull_secrets.lookup(r.registry(), r.repository()));
    if let Some((u, p)) = from_secret {
        return RegistryAuth::Basic(u, p);
    }
    let cfg = opts
        .registries
        .config_for(&ep.host)
        .or_else(|| opts.registries.config_for(r.registry()))
        .and_then(|c| c.auth.as_ref());
    if let Some(a) = cfg {
        let creds = DockerAuth {
            auth: a.auth.clone(),
            username: a.username.clone(),
            password: a.password.clone(),
        }
        .credentials();
        if let Some((u, p)) = creds {
            return RegistryAuth::Basic(u, p);
        }
    }
    RegistryAuth::Anonymous
}

fn client_for(ep: &Endpoint, opts: &PullOptions) -> Result<oci_client::Client> {
    let tls = opts
        .registries
        .config_for(&ep.host)
        .and_then(|c| c.tls.clone());
    let mut config = ClientConfig {
        protocol: if ep.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: tls.as_ref().is_some_and(|t| t.insecure_skip_verify),
        connect_timeout: Some(std::time::Duration::from_secs(15)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..ClientConfig::default()
    };
    if let Some(ca) = tls.and_then(|t| t.ca_file) {
        let data = std::fs::read(&ca).map_err(|e| Error::Io {
            path: ca.clone().into(),
            source: e,
        })?;
        config
            .extra_root_certificates
            .push(oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data,
            });
    }
    Ok(oci_client::Client::new(config))
}

const ACCEPTED: &[&str] = &[
    manifest::OCI_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_MANIFEST,
    manifest::DOCKER_LIST,
];

async fn pull_from(
    store: &Store,
    r: &Reference,
    ep: &Endpoint,
    opts: &PullOptions,
) -> Result<ImageRecord> {
    let name = r.whole();
    let client = client_for(ep, opts)?;
    let auth = credentials(r, ep, opts);
    let at = |tag: Option<&str>, digest: Option<&str>| match (tag, digest) {
        (_, Some(d)) => {
            Reference::with_digest(ep.host.clone(), r.repository().to_owned(), d.to_owned())
        }
        (t, None) => Reference::with_tag(
            ep.host.clone(),
            r.repository().to_owned(),
            t.unwrap_or("latest").to_owned(),
        ),
    };
    let wrap = |e: OciDistributionError| classify(&name, e);
    let started = Instant::now();
    let mut target = at(r.tag(), r.digest());
    let mut lease = store.lease();
    let mut depth = 0;
    let manifest_digest = loop {
        let (bytes, _) = client
            .pull_manifest_raw(&target, &auth, ACCEPTED)
            .await
            .map_err(wrap)?;
        let digest = sha256_digest(&bytes);
        if let Some(want) = target.digest() {
            if want != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest of {name}"),
                    expected: want.to_owned(),
                    actual: digest,
                });
            }
        }
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("manifest of {name}"),
            source,
        })?;
        let media_type = probe.media_type.clone().unwrap_or_default();
        if manifest::is_index(&media_type) || (probe.manifests.is_some() && probe.layers.is_none())
        {
            depth += 1;
            if depth > 3 {
                return Err(Error::InvalidImage(format!(
                    "{name}: indexes nested too deep"
                )));
            }
            let index: Index = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                what: format!("index of {name}"),
                source,
            })?;
            let want = manifest::host_platform();
            let chosen = manifest::select_platform(&index.manifests, &want).ok_or_else(|| {
                Error::NotFound {
                    reference: name.clone(),
                    detail: format!(
                        "no match for platform {}/{} in the manifest list",
                        want.os, want.architecture
                    ),
                }
            })?;
            target = at(None, Some(&chosen.digest));
            continue;
        }
        store.put_bytes(&bytes, &mut lease)?;
        break digest;
    };
    let m: manifest::Manifest = store.read_json(&manifest_digest)?;
    let mut blobs = vec![m.config.clone()];
    blobs.extend(m.layers.iter().cloned());
    let mut fetched = 0u64;
    for b in &blobs {
        lease.hold(&b.digest)?;
        if store.has_blob(&b.digest) {
            continue;
        }
        let t = Instant::now();
        let mut stream = client
            .pull_blob_stream(&target, b.digest.as_str())
            .await
            .map_err(wrap)?;
        let mut w = store.writer(Some(&b.digest))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Unreachable {
                reference: name.clone(),
                detail: format!("reading blob {}: {e}", b.digest),
            })?;
            w.write_all(&chunk).map_err(|e| Error::Io {
                path: store.root().join("blobs/tmp"),
                source: e,
            })?;
        }
        let (_, size) = w.commit(&mut lease)?;
        fetched += size;
        tracing::info!(image = %name, blob = %b.digest, bytes = size, ms = t.elapsed().as_millis() as u64, "blob pulled");
    }
    let record = store.add_image(NewImage {
        manifest_digest,
        names: vec![name.clone()],
        pinned: false,
    })?;
    store.release(lease)?;
    tracing::info!(
        image = %name,
        endpoint = %ep.host,
        id = %record.id,
        bytes = fetched,
        ms = started.elapsed().as_millis() as u64,
        "image pulled"
    );
    Ok(record)
}

/// Sorts an `oci-client` error into what the kubelet needs to tell apart.
fn classify(reference: &str, e: OciDistributionError) -> Error {
    let reference = reference.to_owned();
    let detail = e.to_string();
    match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            Error::NotFound { reference, detail }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            Error::Unauthorized { reference, detail }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                Error::Unauthorized { reference, detail }
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Error::NotFound { reference, detail }
            } else {
                Error::Registry { reference, detail }
            }
        }
        OciDistributionError::ServerError { code, .. } => match code {
            404 => Error::NotFound { reference, detail },
            401 | 403 => Error::Unauthorized { reference, detail },
            _ => Error::Registry { reference, detail },
        },
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
            Error::Unreachable { reference, detail }
        }
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => {
            Error::Unreachable { reference, detail }
        }
        _ => Error::Registry { reference, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> DockerConfigJson {
        DockerConfigJson::parse(json.as_bytes()).expect("config")
    }

    #[test]
    fn dockerconfigjson_matches_as_the_kubelet_keyring() {
        let auth = base64::engine::general_purpose::STANDARD.encode("hub:pw");
        let c = cfg(&format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "registry.example:5000": {{"username": "u", "password": "p"}},
                "registry.example:5000/team": {{"username": "team", "password": "tp"}},
                "*.wild.example": {{"username": "w", "password": "wp"}}
            }}}}"#
        ));
        let pair = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
        assert_eq!(c.lookup("docker.io", "library/nginx"), pair("hub", "pw"));
        assert_eq!(c.lookup("registry.example:5000", "app"), pair("u", "p"));
        assert_eq!(
            c.lookup("registry.example:5000", "team/app"),
            pair("team", "tp")
        );
        assert_eq!(
            c.lookup("registry.example", "app"),
            None,
            "the port must match"
        );
        assert_eq!(c.lookup("a.wild.example", "x"), pair("w", "wp"));
        assert_eq!(
            c.lookup("a.b.wild.example", "x"),
            None,
            "a glob matches one label"
        );
        assert_eq!(c.lookup("quay.io", "x"), None);
    }

    #[test]
    fn legacy_dockercfg_and_bad_json() {
        let c = cfg(r#"{"quay.io": {"username": "q", "password": "qp"}}"#);
        assert_eq!(c.lookup("quay.io", "a/b"), Some(("q".into(), "qp".into())));
        assert!(matches!(
            DockerConfigJson::parse(b"{"),
            Err(Error::DockerConfig(_))
        ));
    }

    #[test]
    fn registries_yaml_mirrors_then_the_registry() {
        let text = r#"
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5000"
      - "https://mirror.example/v2"
configs:
  "127.0.0.1:5000":
    auth: {username: a, password: b}
    tls: {insecure_skip_verify: true}
"#;
        let c = RegistriesConfig::parse(Path::new("registries.yaml"), text).expect("yaml");
        let eps = c.endpoints("docker.io");
        assert_eq!(
            eps,
            vec![
                Endpoint {
                    host: "127.0.0.1:5000".into(),
                    plain_http: true
                },
                Endpoint {
                    host: "mirror.example".into(),
                    plain_http: false
                },
                Endpoint {
                    host: "docker.io".into(),
                    plain_http: false
                },
            ]
        );
        let own = RegistriesConfig::parse(
            Path::new("r.yaml"),
            "mirrors: {\"reg.local:5000\": {endpoint: [\"http://reg.local:5000\"]}}",
        )
        .expect("yaml");
        assert_eq!(
            own.endpoints("reg.local:5000"),
            vec![Endpoint {
                host: "reg.local:5000".into(),
                plain_http: true
            }]
        );
        assert_eq!(
            c.endpoints("quay.io"),
            vec![Endpoint {
                host: "quay.io".into(),
                plain_http: false
            }]
        );
        assert!(c.configs["127.0.0.1:5000"]
            .tls
            .as_ref()
            .is_some_and(|t| t.insecure_skip_verify));
        let bad = RegistriesConfig::parse(Path::new("r.yaml"), "mirrors: [1, 2");
        assert!(matches!(bad, Err(Error::RegistriesConfig { .. })));
    }
}
