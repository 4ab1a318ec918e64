//! Joining a node to the cluster with the join token (`<data-dir>/server/token`), both
//! sides. The server serves two routes beside the API (through
//! `skiff_apiserver::tls::serve_with`, before authentication):
//!
//! - `GET /v1-skiff/cluster-info`: the cluster CA certificate and its HMAC-SHA256 under the
//!   join token. An agent does not know the CA yet, so it reads this over TLS it cannot
//!   verify, and trusts the CA only if the signature checks out with its token: a server
//!   that does not know the token cannot forge it, and the token itself is never sent over
//!   an unverified connection (kubeadm's discovery signs its `cluster-info` ConfigMap with
//!   the bootstrap token the same way).
//! - `POST /v1-skiff/node-join` (`Authorization: Bearer <join token>`, body: the node name),
//!   over TLS verified with that CA: a fresh key and a client certificate for
//!   `system:node:<name>` in `system:nodes`, signed by the cluster CA. A wrong token is 401.
//!
//! k3s's agents do the same through `/cacerts` and `/v1-k3s/client-kubelet.crt`.

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::pki::Pki;

pub const CLUSTER_INFO_PATH: &str = "/v1-skiff/cluster-info";
pub const NODE_JOIN_PATH: &str = "/v1-skiff/node-join";
/// The group every node's identity is in (upstream's node authorizer keys on it).
pub const NODES_GROUP: &str = "system:nodes";

/// What the join routes need: the token they accept and the CA that signs.
struct Authority {
    token: String,
    pki: Pki,
}

/// The user a node named `node` is.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// The join routes, for `skiff_apiserver::tls::serve_with`.
pub fn router(token: &str, pki: Pki) -> axum::Router {
    let authority = Arc::new(Authority {
        token: token.to_owned(),
        pki,
    });
    axum::Router::new()
        .route(CLUSTER_INFO_PATH, get(cluster_info))
        .route(NODE_JOIN_PATH, post(node_join))
        .with_state(authority)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `hmac-sha256:<hex>` of `ca_pem` under `token`.
pub fn sign_ca(token: &str, ca_pem: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    format!(
        "hmac-sha256:{}",
        hex(ring::hmac::sign(&key, ca_pem.as_bytes()).as_ref())
    )
}

/// Whether `signature` is [`sign_ca`] of `ca_pem` under `token` (in constant time).
pub fn verify_ca(token: &str, ca_pem: &str, signature: &str) -> bool {
    let Some(tag) = signature.strip_prefix("hmac-sha256:").and_then(unhex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    ring::hmac::verify(&key, ca_pem.as_bytes(), &tag).is_ok()
}

/// Equality that takes as long whichever byte differs.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A node name is a DNS subdomain (what the API server accepts as a Node's name).
pub fn valid_node_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

fn json_response(code: StatusCode, body: &serde_json::Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    json_response(code, &body)
}

async fn cluster_info(State(authority): State<Arc<Authority>>) -> Response {
    let ca = &authority.pki.ca_cert;
    json_response(
        StatusCode::OK,
        &json!({"caCert": ca, "signature": sign_ca(&authority.token, ca)}),
    )
}

async fn node_join(
    State(authority): State<Arc<Authority>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !presented.is_some_and(|t| !t.is_empty() && same_secret(t, &authority.token)) {
        tracing::warn!("a node join with a wrong or no join token was refused");
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    // A node name as text (older agents, simulated nodes), or JSON with the node's
    // addresses, for which the answer carries a kubelet serving certificate too.
    let request: JoinRequest = if body.trim_start().starts_with('{') {
        match serde_json::from_str(&body) {
            Ok(r) => r,
            Err(e) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("the join request is not valid JSON: {e}"),
                )
            }
        }
    } else {
        JoinRequest {
            name: body.trim().to_owned(),
            addresses: Vec::new(),
        }
    };
    let node = request.name.as_str();
    if !valid_node_name(node) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "{node:?} is not a valid node name: a lowercase RFC 1123 subdomain must \
                 consist of lower case alphanumeric characters, '-' or '.', and must start \
                 and end with an alphanumeric character"
            ),
        );
    }
    let user = node_user(node);
    let issued = authority
        .pki
        .issue_client_cert(&user, &[NODES_GROUP])
        .and_then(|client| {
            let serving = if request.addresses.is_empty() {
                None
            } else {
                Some(
                    authority
                        .pki
                        .issue_kubelet_serving_cert(node, &request.addresses)?,
                )
            };
            Ok((client, serving))
        });
    match issued {
        Ok(((cert, key), serving)) => {
            tracing::info!(
                node,
                "a node joined: issued a client certificate for {user}"
            );
            let mut answer = json!({
                "user": user,
                "caCert": authority.pki.ca_cert,
                "clientCert": cert,
                "clientKey": key,
            });
            if let Some((cert, key)) = serving {
                answer["servingCert"] = json!(cert);
                answer["servingKey"] = json!(key);
            }
            json_response(StatusCode::OK, &answer)
        }
        Err(e) => {
            tracing::error!(node, error = %format!("{e:#}"), "issuing a node certificate failed");
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "issuing the node's certificate failed",
            )
        }
    }
}

/// What a node asks for when it joins (the body may also be just the name, as text).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct JoinRequest {
    pub name: String,
    /// The node's addresses: its kubelet's serving certificate is valid for them.
    #[serde(default)]
    pub addresses: Vec<std::net::IpAddr>,
}

/// What a node is given when it joins.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub user: String,
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    /// The kubelet's serving certificate and key, when the join named addresses.
    #[serde(default)]
    pub serving_cert: Option<String>,
    #[serde(default)]
    pub serving_key: Option<String>,
}

/// The message for a token the server does not know, and what to check.
pub const REFUSED: &str = "the server refused the join token: check --token / --token-file \
     against <data-dir>/server/token on the server (/var/lib/skiff/server/token by default)";

fn uri(server: &str) -> Result<http::Uri> {
    let uri: http::Uri = server.trim_end_matches('/').parse().with_context(|| {
        format!("--server {server:?} is not a URL (like https://10.0.0.1:6443)")
    })?;
    if uri.scheme_str() != Some("https") {
        bail!("--server {server:?}: the server is reached over https (like https://10.0.0.1:6443)");
    }
    Ok(uri)
}

/// The DER of every certificate in `pem`.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .context("reading the cluster CA certificate")?;
    if certs.is_empty() {
        bail!("the server sent no CA certificate");
    }
    Ok(certs)
}

/// Joins the cluster at `server` as node `node` with the join `token`; with `addresses`,
/// the answer carries a kubelet serving certificate for them.
pub async fn join(
    server: &str,
    token: &str,
    node: &str,
    addresses: &[std::net::IpAddr],
) -> Result<Credentials> {
    let uri = uri(server)?;
    let unreachable = |e: kube::Error| {
        anyhow::Error::new(e).context(format!("reaching the server at {server} (is it running?)"))
    };

    // The CA, over TLS that cannot be verified yet: trusted only if signed with our token.
    let mut insecure = kube::Config::new(uri.clone());
    insecure.accept_invalid_certs = true;
    insecure.connect_timeout = Some(std::time::Duration::from_secs(10));
    let client = kube::Client::try_from(insecure).context("building the join client")?;
    let request = http::Request::get(CLUSTER_INFO_PATH)
        .body(Vec::new())
        .context("building the join request")?;
    let info: serde_json::Value = client.request(request).await.map_err(unreachable)?;
    let (Some(ca), Some(signature)) = (info["caCert"].as_str(), info["signature"].as_str()) else {
        bail!("{server} does not look like a skiff server (no signed cluster CA at {CLUSTER_INFO_PATH})");
    };
    if !verify_ca(token, ca, signature) {
        // Either the token is wrong or the server is not the one it knows: both mean stop.
        bail!("{REFUSED} (the cluster CA it sent is not signed with this token)");
    }

    // The node's certificate, over TLS verified with that CA.
    let mut verified = kube::Config::new(uri);
    verified.root_cert = Some(pem_certificates(ca)?);
    verified.connect_timeout = Some(std::time::Duration::from_secs(10));
    let client = kube::Client::try_from(verified).context("building the join client")?;
    let body = serde_json::to_vec(&JoinRequest {
        name: node.to_owned(),
        addresses: addresses.to_vec(),
    })?;
    let request = http::Request::post(NODE_JOIN_PATH)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .context("building the join request")?;
    match client.request::<Credentials>(request).await {
        Ok(credentials) => Ok(credentials),
        Err(kube::Error::Api(status)) if status.code == 401 => bail!("{REFUSED}"),
        Err(kube::Error::Api(status)) => bail!(
            "the server refused to join node {node:?}: {} ({})",
            status.message,
            status.code
        ),
        Err(e) => Err(unreachable(e)),
    }
}

/// Whether a join failed because the server could not be reached (rather than refused it).
pub fn unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<kube::Error>()
            .is_some_and(|k| !matches!(k, kube::Error::Api(_)))
    })
}

/// The last join's answer, kept in the node's data dir so that a restarted agent runs its
/// static pods while the server is down (upstream's kubelet keeps its kubeconfig).
#[derive(serde::Deserialize, serde::Serialize)]
struct Saved {
    server: String,
    node: String,
    credentials: Credentials,
}

fn saved_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("agent").join("node-credentials.json")
}

/// Keeps `credentials` for [`load_saved`] (mode 0600, written durably and atomically).
pub fn save(
    data_dir: &std::path::Path,
    server: &str,
    node: &str,
    credentials: &Credentials,
) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = saved_path(data_dir);
    let dir = path
        .parent()
        .context("the credentials path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = serde_json::to_vec(&Saved {
        server: server.to_owned(),
        node: node.to_owned(),
        credentials: credentials.clone(),
    })?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The credentials the last join to `server` as `node` gave, if kept.
pub fn load_saved(data_dir: &std::path::Path, server: &str, node: &str) -> Option<Credentials> {
    let bytes = std::fs::read(saved_path(data_dir)).ok()?;
    let saved: Saved = serde_json::from_slice(&bytes).ok()?;
    (saved.server == server && saved.node == node).then_some(saved.credentials)
}

/// The client configuration of a joined node: the cluster CA, its certificate and key.
pub fn node_config(server: &str, credentials: &Credentials) -> Result<kube::Config> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let mut config = kube::Config::new(uri(server)?);
    config.root_cert = Some(pem_certificates(&credentials.ca_cert)?);
    config.auth_info.client_certificate_data = Some(b64(&credentials.client_cert));
    config.auth_info.client_key_data =
        Some(secrecy::SecretString::from(b64(&credentials.client_key)));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_signature_checks_out_only_with_the_token() {
        let ca = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
        let signature = sign_ca("s3cret", ca);
        assert!(signature.starts_with("hmac-sha256:"));
        assert!(verify_ca("s3cret", ca, &signature));
        assert!(!verify_ca("wrong", ca, &signature));
        assert!(!verify_ca("s3cret", "another CA", &signature));
        assert!(!verify_ca("s3cret", ca, "hmac-sha256:zz"));
        assert!(!verify_ca("s3cret", ca, "sha1:00"));
        assert_eq!(unhex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn node_names_are_dns_subdomains() {
        for good in ["sim-0", "node.example.com", "a", "agent-a-sim-12"] {
            assert!(valid_node_name(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in ["", "Sim", "-a", "a-", "a..b", "a_b", long.as_str(), "a/b"] {
            assert!(!valid_node_name(bad), "{bad}");
        }
        assert_eq!(node_user("sim-0"), "system:node:sim-0");
    }
}
