//! The kubelet's HTTPS server (port 10250), as upstream's pkg/kubelet/server/server.go with
//! the CRI streaming server folded in: `GET /containerLogs/{ns}/{pod}/{container}` and the
//! WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`) `/exec/{ns}/{pod}/{container}` and
//! `/attach/{ns}/{pod}/{container}`, over [`PodRuntime`] alone (containers are found from
//! `list_containers()`'s meta), and `/portForward/{ns}/{pod}[/{uid}]` over SPDY/3.1, SPDY
//! tunneled in WebSocket, or WebSocket `v4.channel.k8s.io` ([`portforward`], [`spdy`]; the
//! pod's ready sandbox from `list_sandboxes()`).
//!
//! Authentication: only a client certificate (verified by the TLS config's client CA) of the
//! API server's kubelet client ([`KUBELET_CLIENT_CN`]) or of a member of `system:masters`;
//! no certificate is 401, another identity 403.
//!
//! `/exec` and `/attach` also take a SPDY/3.1 upgrade (`v5`..`v2.channel.k8s.io`,
//! [`remotecommand`]), kubectl's fallback.

mod logs;
pub mod portforward;
mod query;
pub mod remotecommand;
pub mod spdy;
mod ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use skiff_runtime::cri::{ContainerInfo, ContainerState, PodRuntime};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use query::{log_options, LogQuery, StreamQuery};

/// The API server's kubelet client identity (upstream's `kube-apiserver-kubelet-client`).
pub const KUBELET_CLIENT_CN: &str = "system:kube-apiserver-kubelet-client";
/// A group whose members may use the server too.
pub const MASTERS_GROUP: &str = "system:masters";

pub type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("kubelet server TLS: {0}")]
    Tls(String),
}

/// What [`serve`] needs.
pub struct ServerConfig {
    /// Usually `0.0.0.0:10250`.
    pub listen: SocketAddr,
    /// The serving certificate, with a client verifier for the cluster CA that lets
    /// unauthenticated clients through (they get 401): [`tls_config`] builds one.
    pub tls: Arc<rustls::ServerConfig>,
    pub runtime: Arc<dyn PodRuntime>,
}

/// A rustls server config from PEM: the serving certificate chain and key, and the CA
/// whose client certificates are verified (clients without one are let through the TLS
/// handshake and refused with 401).
pub fn tls_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<rustls::ServerConfig, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| tls(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem) {
        roots.add(ca.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Binds `config.listen` and serves until the future is dropped.
pub async fn serve(config: ServerConfig) -> Result<(), ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Listen(config.listen, e))?;
    serve_on(listener, config.tls, config.runtime).await;
    Ok(())
}

/// Serves on a bound listener (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    runtime: Arc<dyn PodRuntime>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
                    return;
                }
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| identity(c.as_ref()));
            let service = hyper::service::service_fn(move |req| {
                let runtime = runtime.clone();
                let identity = identity.clone();
                async move { Ok::<_, Infallible>(handle(req, identity, runtime).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "kubelet server: connection ended");
            }
        });
    }
}

/// A client certificate's user (CN) and groups (O).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// The identity in a DER certificate (empty for one that does not parse).
pub fn identity(der: &[u8]) -> Identity {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Identity::default();
    };
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_owned))
        .collect();
    Identity { user, groups }
}

/// Whether `id` may use the server (upstream delegates to the API server's SubjectAccessReview;
/// skiff allows its API server's client and cluster admins).
pub fn authorized(id: &Identity) -> bool {
    id.user == KUBELET_CLIENT_CN || id.groups.iter().any(|g| g == MASTERS_GROUP)
}

pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let body = Full::new(Bytes::from(msg.into()))
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle(
    req: Request<Incoming>,
    identity: Option<Identity>,
    runtime: Arc<dyn PodRuntime>,
) -> Response<Body> {
    match &identity {
        None => return text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Some(id) if !authorized(id) => {
            return text(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden (user={}, verb={}, resource=nodes, subresource=proxy)",
                    id.user,
                    req.method().as_str().to_lowercase()
                ),
            )
        }
        Some(_) => {}
    }
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["containerLogs", ns, pod, container] if req.method() == http::Method::GET => {
            logs::serve(&req, runtime, ns, pod, container).await
        }
        [kind @ ("exec" | "attach"), ns, pod, container]
            if matches!(*req.method(), http::Method::GET | http::Method::POST) =>
        {
            let attach = *kind == "attach";
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            // Anything but a WebSocket is the SPDY path (its handshake refuses the rest
            // with upstream's messages).
            if !portforward::is_websocket(req.headers()) {
                return remotecommand::serve(req, runtime, attach, &ns, &pod, &container).await;
            }
            ws::serve(req, runtime, attach, &ns, &pod, &container).await
        }
        ["portForward", ns, pod, rest @ ..]
            if rest.len() <= 1
                && matches!(*req.method(), http::Method::GET | http::Method::POST) =>
        {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            let uid = rest.first().map(|u| u.to_string());
            portforward::serve(req, runtime, &ns, &pod, uid.as_deref()).await
        }
        ["healthz"] => text(StatusCode::OK, "ok"),
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// The instances of `container` in pod `ns/pod`, by attempt (oldest first).
pub(crate) async fn instances(
    runtime: &dyn PodRuntime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<(bool, Vec<ContainerInfo>), String> {
    let all = runtime.list_containers().await.map_err(|e| e.to_string())?;
    let pod_known = all
        .iter()
        .any(|c| c.meta.pod_namespace == ns && c.meta.pod_name == pod);
    let mut mine: Vec<ContainerInfo> = all
        .into_iter()
        .filter(|c| {
            c.meta.pod_namespace == ns && c.meta.pod_name == pod && c.meta.name == container
        })
        .collect();
    mine.sort_by_key(|c| c.meta.attempt);
    Ok((pod_known, mine))
}

/// The id of the running (latest) instance of `container` in pod `ns/pod`, what exec and
/// attach reach; else the answer to give: 404 `container not found ("c")`, or 500.
pub(crate) async fn running_container(
    runtime: &dyn PodRuntime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Box<Response<Body>>> {
    let found = match instances(runtime, ns, pod, container).await {
        Ok((_, all)) => all.last().filter(|c| running(c)).map(|c| c.id.clone()),
        Err(e) => return Err(Box::new(text(StatusCode::INTERNAL_SERVER_ERROR, e))),
    };
    found.ok_or_else(|| {
        Box::new(text(
            StatusCode::NOT_FOUND,
            format!("container not found ({container:?})"),
        ))
    })
}

pub(crate) fn running(c: &ContainerInfo) -> bool {
    matches!(c.state, ContainerState::Running { .. })
}
