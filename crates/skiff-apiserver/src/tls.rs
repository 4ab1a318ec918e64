//! The HTTPS listener: TLS (rustls) with HTTP/1.1 and HTTP/2, and who the client is. A
//! client certificate signed by the cluster CA, or a bearer token the server knows, makes a
//! request authenticated; everything but the health and version endpoints requires it
//! (401 `Unauthorized` otherwise). Authorization (RBAC) comes later: for now any
//! authenticated user may do anything.
//!
//! The distribution may add routes of its own under [`EXTRA_PREFIX`] ([`serve_with`]), such
//! as the node join endpoint: they are served before authentication, so they check their own
//! credentials (k3s serves its `/v1-k3s/` supervisor endpoints beside the API the same way).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::App;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// PEM material of the serving side.
pub struct TlsMaterial {
    pub cert_chain_pem: String,
    pub key_pem: String,
    /// The CA that signs client certificates.
    pub client_ca_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid certificate or key: {0}")]
    Pem(String),
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// The rustls configuration: our certificate, optional client certificates from our CA.
pub fn server_config(m: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(m.cert_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(m.client_ca_pem.as_bytes()) {
        roots.add(ca.map_err(|e| TlsError::Pem(e.to_string()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS client configuration towards kubelets: their serving certificates verified
/// with `ca_pem` (the cluster CA), this server authenticated with its kubelet client
/// certificate (`cert_pem`, `key_pem`). HTTP/1.1 only: upgrades ride on it.
pub fn kubelet_client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let pem = |e: rustls_pki_types::pem::Error| TlsError::Pem(e.to_string());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.map_err(pem)?)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The user a verified client certificate names: CN is the user, each O a group (as
/// upstream's x509 authenticator).
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(User { name, groups })
}

/// Where the routes handed to [`serve_with`] live.
pub const EXTRA_PREFIX: &str = "/v1-skiff/";

fn is_public(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/healthz" | "/version")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
        || path.starts_with("/healthz/")
}

/// Checks the request's credentials: the connection's certificate user, or a bearer token.
fn authenticate(app: &App, cert_user: Option<&User>, req: &Request) -> Option<User> {
    if let Some(user) = cert_user {
        return Some(user.clone());
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    app.config
        .admin_tokens
        .iter()
        .any(|t| !t.is_empty() && t == token)
        .then(|| User {
            name: "system:admin".into(),
            groups: vec!["system:masters".into()],
        })
}

/// Serves the API on `listener` until the task is dropped; then its connections end too
/// (they are tasks of this one's `JoinSet`), and with them every use of `app`.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, app: Arc<App>) {
    serve_with(listener, tls, app, None).await
}

/// [`serve`], with `extra` answering every path under [`EXTRA_PREFIX`]. Those requests are
/// not authenticated here (no user is attached): `extra`'s handlers check credentials
/// themselves.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    extra: Option<axum::Router>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let router = app.router();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let extra = extra.clone();
        let app = app.clone();
        connections.spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let cert_user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|c| user_from_cert(c.as_ref()));
            serve_connection(stream, peer, cert_user, router, extra, app).await;
        });
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    cert_user: Option<User>,
    router: axum::Router,
    extra: Option<axum::Router>,
    app: Arc<App>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        let extra = extra.clone();
        let app = app.clone();
        let cert_user = cert_user.clone();
        async move {
            let mut req = req.map(axum::body::Body::new);
            if let Some(extra) = extra {
                if req.uri().path().starts_with(EXTRA_PREFIX) {
                    return extra.oneshot(req).await;
                }
            }
            if !is_public(req.uri().path()) {
                match authenticate(&app, cert_user.as_ref(), &req) {
                    Some(user) => {
                        req.extensions_mut().insert(user);
                    }
                    None => {
                        return Ok::<Response, std::convert::Infallible>(
                            crate::http::error_response(
                                &skiff_api::status::ApiError::unauthorized(),
                            ),
                        )
                    }
                }
            }
            router.oneshot(req).await
        }
    });
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
