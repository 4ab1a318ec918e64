//! The API as an in-process tower service: what the components of `skiff server` (controller
//! manager, scheduler, the node agent) build their `kube::Client` on. A request goes through
//! the same router, verbs and `Status` answers as one over HTTPS, with no TCP and no TLS; it
//! is authenticated as the user the service was made for (as a client certificate would
//! authenticate it), and carries that component's User-Agent unless the client sets one, so
//! its writes are recorded in managedFields under upstream's manager names.
//!
//! This module knows nothing of the clients: any `http::Request` whose body is an
//! `http_body::Body` of `Bytes` is served.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use tower::ServiceExt;

use crate::tls::User;
use crate::App;

/// The API server's router, called in process as `user`.
#[derive(Clone)]
pub struct LocalService {
    router: axum::Router,
    user: User,
    user_agent: HeaderValue,
}

impl LocalService {
    /// Requests made through it are `user`'s; `user_agent` names the component (upstream's
    /// form: `kube-controller-manager/v1.33.0 (linux/amd64) kubernetes/skiff`).
    pub fn new(app: &Arc<App>, user: User, user_agent: &str) -> Self {
        Self {
            router: app.router(),
            user,
            user_agent: HeaderValue::from_str(user_agent)
                .unwrap_or_else(|_| HeaderValue::from_static("skiff")),
        }
    }
}

impl<B> tower::Service<http::Request<B>> for LocalService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(self.user.clone());
        if !req.headers().contains_key(http::header::USER_AGENT) {
            req.headers_mut()
                .insert(http::header::USER_AGENT, self.user_agent.clone());
        }
        let router = self.router.clone();
        Box::pin(async move { router.oneshot(req).await })
    }
}
