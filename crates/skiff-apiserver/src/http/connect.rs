//! The pods' connect subresources: `pods/log`, `pods/exec`, `pods/attach` and
//! `pods/portforward`, answered by the kubelet of the pod's node through this server.
//! Upstream counterpart: `LogREST`, `ExecREST`, `AttachREST` and `PortForwardREST` of
//! `pkg/registry/core/pod/rest/{log.go,subresources.go}`, the locations of
//! `pkg/registry/core/pod/strategy.go` (`LogLocation`, `streamLocation`,
//! `PortForwardLocation`) and the apiserver's upgrade-aware proxy
//! (`k8s.io/apimachinery/pkg/util/proxy`).
//!
//! The container is checked here with upstream's messages; the kubelet is found at the
//! node's InternalIP (then ExternalIP, then hostname, as k3s's
//! `--kubelet-preferred-address-types`) and `status.daemonEndpoints.kubeletEndpoint.Port`,
//! reached over TLS verified with the cluster CA, authenticated with the API server's
//! kubelet client certificate. A log is streamed back; an upgrade (WebSocket or SPDY,
//! whatever the client offered) is passed to the kubelet and, once the kubelet switched
//! protocols, both connections are spliced byte for byte.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use skiff_api::registry::Subresource;
use skiff_api::status::{ApiError, Cause};

use super::{ApiResult, Streaming};
use crate::App;

/// How long reaching a kubelet may take (upstream's dialer uses 30 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// The kubelet port when a node does not publish one.
const DEFAULT_KUBELET_PORT: u16 = 10250;
/// The PodLogOptions the kubelet reads, passed through as given.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "tailLines",
    "limitBytes",
];
/// Request headers an upgrade needs at the kubelet (the WebSocket handshake and the
/// SPDY protocol negotiation).
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Serves `sub` of pod `ns/name` for the request `parts` (its body is not read: a log has
/// none, an upgrade's bytes come after the 101).
pub(super) async fn serve(
    app: Arc<App>,
    pods: &skiff_api::registry::ResourceInfo,
    ns: &str,
    name: &str,
    sub: Subresource,
    mut parts: Parts,
) -> ApiResult {
    let allowed = match sub {
        Subresource::Log => parts.method == Method::GET,
        _ => matches!(parts.method, Method::GET | Method::POST),
    };
    if !allowed {
        return Err(ApiError::method_not_supported(
            "",
            &format!("pods/{}", sub.name()),
            parts.method.as_str(),
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("the query is not valid: {e}")))?;
    let pod = app.objects.get(pods, Some(ns), name).await?.obj;
    let asked = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let container = match sub {
        Subresource::Log => {
            validate_log_options(name, &pairs)?;
            Some(log_container(&pod, name, asked)?)
        }
        Subresource::Exec | Subresource::Attach => Some(stream_container(&pod, name, asked)?),
        _ => None,
    };
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        // Upstream: a log of an unscheduled pod is empty; a stream is refused.
        if sub == Subresource::Log {
            return Ok(text(StatusCode::OK, Body::empty()));
        }
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = app
        .objects
        .get(&app.info("", "nodes"), None, node_name)
        .await?
        .obj;
    let (host, port) = kubelet_address(&node).ok_or_else(|| {
        ApiError::internal(format!(
            "no preferred addresses found for node {node_name}; known addresses: {}",
            node.pointer("/status/addresses").unwrap_or(&Value::Null)
        ))
    })?;
    let container = container.unwrap_or_default();
    let (path, params): (String, Vec<(String, String)>) = match sub {
        Subresource::Log => (
            format!("/containerLogs/{ns}/{name}/{container}"),
            pairs
                .into_iter()
                .filter(|(k, _)| LOG_PARAMS.contains(&k.as_str()))
                .collect(),
        ),
        Subresource::Exec | Subresource::Attach => (
            format!("/{}/{ns}/{name}/{container}", sub.name()),
            stream_params(&pairs),
        ),
        _ => (
            format!("/portForward/{ns}/{name}"),
            pairs.into_iter().filter(|(k, _)| k == "ports").collect(),
        ),
    };
    let query = serde_urlencoded::to_string(&params)
        .map_err(|e| ApiError::internal(format!("encoding the kubelet's query: {e}")))?;
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let tls = app.config.kubelet_client.clone().ok_or_else(|| {
        ApiError::service_unavailable("this API server has no kubelet client credentials")
    })?;
    let mut sender = dial(tls, &host, port).await?;

    let mut out = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .header(header::HOST, format!("{host}:{port}"));
    let upgrade = parts.headers.contains_key(header::UPGRADE);
    if upgrade {
        for name in UPGRADE_HEADERS {
            for value in parts.headers.get_all(*name) {
                out = out.header(*name, value);
            }
        }
    }
    let request = out
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(format!("building the kubelet request: {e}")))?;
    let mut backend = sender.send_request(request).await.map_err(|e| {
        ApiError::internal(format!(
            "error reading from the kubelet at {host}:{port}: {e}"
        ))
    })?;

    if upgrade && backend.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(ApiError::bad_request(
                "the connection cannot be upgraded (HTTP/2 has no upgrades: use HTTP/1.1)",
            ));
        };
        let kubelet_side = hyper::upgrade::on(&mut backend);
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *resp.headers_mut() = backend.headers().clone();
        resp.extensions_mut().insert(Streaming);
        tokio::spawn(async move {
            let (client, kubelet) = match tokio::try_join!(client_side, kubelet_side) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "a proxied upgrade did not complete");
                    return;
                }
            };
            let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                tracing::debug!(error = %e, "a proxied stream ended");
            }
        });
        return Ok(resp);
    }
    let status = backend.status();
    if status.is_success() && !upgrade {
        let mut resp = text(status, Body::new(backend.into_body()));
        resp.extensions_mut().insert(Streaming);
        return Ok(resp);
    }
    // The kubelet refused: its answer, as upstream's GenericHttpResponseChecker maps it.
    let body = http_body_util::Limited::new(backend.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim_end().to_owned())
        .unwrap_or_default();
    Err(kubelet_error(
        status,
        &body,
        &format!("pods/{}", sub.name()),
        name,
    ))
}

fn text(status: StatusCode, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A kubelet's refusal as the Status upstream's `GenericHttpResponseChecker` makes of it.
pub(crate) fn kubelet_error(
    status: StatusCode,
    body: &str,
    resource: &str,
    name: &str,
) -> ApiError {
    match status.as_u16() {
        400 => ApiError::bad_request(body),
        500 => ApiError::internal(body),
        code => {
            let reason = match code {
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                503 => "ServiceUnavailable",
                _ => "Unknown",
            };
            let mut e = ApiError::bad_request(body);
            e.code = code;
            e.reason = reason;
            e.kind = Some(resource.to_owned());
            e.name = Some(name.to_owned());
            e
        }
    }
}

/// An HTTP/1.1 connection to the kubelet at `host:port`, TLS verified with the cluster CA.
async fn dial(
    tls: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> ApiResult<hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>> {
    // Upstream's proxy answers with the dial error itself as an InternalError.
    let failed = |e: &dyn std::fmt::Display| {
        let mut err = ApiError::internal("");
        err.message = format!("error dialing backend: dial tcp {host}:{port}: {e}");
        err
    };
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| failed(&"i/o timeout"))?
        .map_err(|e| failed(&e))?;
    let _ = tcp.set_nodelay(true);
    let server_name =
        rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| failed(&e))?;
    let stream = tokio::time::timeout(
        DIAL_TIMEOUT,
        tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp),
    )
    .await
    .map_err(|_| failed(&"TLS handshake timeout"))?
    .map_err(|e| failed(&format!("tls: {e}")))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "a kubelet connection ended");
        }
    });
    Ok(sender)
}

/// The kubelet's host and port from a Node object.
pub(crate) fn kubelet_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node.pointer("/status/addresses")?.as_array()?;
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|wanted| {
            addresses.iter().find_map(|a| {
                (a["type"].as_str() == Some(wanted))
                    .then(|| a["address"].as_str())
                    .flatten()
                    .filter(|s| !s.is_empty())
            })
        })?
        .to_owned();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some((host, port))
}

fn names(containers: Option<&Value>) -> Vec<String> {
    containers
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn has_container(pod: &Value, container: &str) -> bool {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|list| names(pod["spec"].get(*list)).iter().any(|n| n == container))
}

/// The container a request names, or the pod's only one; `several` words the refusal
/// when the pod has more than one and none was named.
fn choose_container(
    pod: &Value,
    name: &str,
    asked: Option<&str>,
    several: impl FnOnce(&[String]) -> String,
) -> ApiResult<String> {
    if let Some(c) = asked {
        if !has_container(pod, c) {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        return Ok(c.to_owned());
    }
    let containers = names(pod["spec"].get("containers"));
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        many => Err(ApiError::bad_request(several(many))),
    }
}

/// The container of a log request (upstream's `ValidateContainer`).
pub(crate) fn log_container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    choose_container(pod, name, asked, |containers| {
        // Every container, init ones first (podutil.VisitContainers), as Go prints a slice.
        let mut all = names(pod["spec"].get("initContainers"));
        all.extend_from_slice(containers);
        all.extend(names(pod["spec"].get("ephemeralContainers")));
        format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            all.join(" ")
        )
    })
}

/// The container of an exec or attach (upstream's `streamLocation`).
pub(crate) fn stream_container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    choose_container(pod, name, asked, |containers| {
        let mut message = format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        );
        let init = names(pod["spec"].get("initContainers"));
        if !init.is_empty() {
            message.push_str(&format!(
                " or one of the init containers: [{}]",
                init.join(" ")
            ));
        }
        message
    })
}

/// Upstream's `ValidatePodLogOptions`, as a 422 on `PodLogOptions`.
pub(crate) fn validate_log_options(name: &str, pairs: &[(String, String)]) -> ApiResult<()> {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let mut causes = Vec::new();
    let invalid = |causes: &mut Vec<Cause>, field: &str, value: i64, why: &str| {
        causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {why}"),
            field: field.into(),
        })
    };
    let int = |k: &str| -> ApiResult<Option<i64>> {
        match get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for {k}: strconv.ParseInt: parsing {v:?}: invalid syntax"
                ))
            }),
        }
    };
    let tail = int("tailLines")?;
    let limit = int("limitBytes")?;
    let since = int("sinceSeconds")?;
    let since_time = get("sinceTime").filter(|v| !v.is_empty());
    if let Some(t) = since_time {
        if chrono::DateTime::parse_from_rfc3339(t).is_err() {
            return Err(ApiError::bad_request(format!(
                "parsing time {t:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse"
            )));
        }
    }
    if let Some(n) = tail.filter(|n| *n < 0) {
        invalid(
            &mut causes,
            "tailLines",
            n,
            "must be greater than or equal to 0",
        );
    }
    if let Some(n) = limit.filter(|n| *n < 1) {
        invalid(&mut causes, "limitBytes", n, "must be greater than 0");
    }
    if since.is_some() && since_time.is_some() {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                .into(),
            field: "".into(),
        });
    }
    if let Some(n) = since.filter(|n| *n < 1) {
        invalid(&mut causes, "sinceSeconds", n, "must be greater than 0");
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("", "PodLogOptions", name, causes))
    }
}

/// The kubelet's exec/attach query (upstream's `streamParams`): `command`s, and `input`,
/// `output`, `error`, `tty` as `1` for what the client asked.
pub(crate) fn stream_params(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let on = |k: &str| {
        pairs
            .iter()
            .any(|(key, v)| key == k && (v == "1" || v.eq_ignore_ascii_case("true")))
    };
    let mut out = Vec::new();
    for (from, to) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if on(from) {
            out.push((to.to_owned(), "1".to_owned()));
        }
    }
    out.extend(pairs.iter().filter(|(k, _)| k == "command").cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"spec": {
            "nodeName": "n1",
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "web"}, {"name": "sidecar"}],
        }})
    }

    #[test]
    fn containers_are_chosen_as_upstream() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(log_container(&one, "p", None).unwrap(), "web");
        assert_eq!(stream_container(&one, "p", None).unwrap(), "web");
        let e = log_container(&pod(), "p", None).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "a container name must be specified for pod p, choose one of: [setup web sidecar]"
            )
        );
        let e = stream_container(&pod(), "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [web sidecar] or one of the init containers: [setup]"
        );
        assert_eq!(log_container(&pod(), "p", Some("setup")).unwrap(), "setup");
        let e = stream_container(&pod(), "p", Some("nope")).unwrap_err();
        assert_eq!(e.message, "container nope is not valid for pod p");
    }

    #[test]
    fn log_options_are_validated_as_upstream() {
        let q = |s: &str| -> Vec<(String, String)> { serde_urlencoded::from_str(s).unwrap() };
        assert!(validate_log_options("p", &q("tailLines=3&follow=true")).is_ok());
        let e = validate_log_options("p", &q("tailLines=-1")).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = validate_log_options("p", &q("sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            validate_log_options("p", &q("tailLines=x"))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            validate_log_options("p", &q("sinceTime=then"))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn the_kubelet_is_found_at_the_preferred_address() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}},
        }});
        assert_eq!(kubelet_address(&node), Some(("10.0.0.5".into(), 10251)));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(kubelet_address(&node), Some(("n1".into(), 10250)));
        assert_eq!(kubelet_address(&json!({"status": {}})), None);
    }

    #[test]
    fn stream_params_are_the_kubelets() {
        let q: Vec<(String, String)> = serde_urlencoded::from_str(
            "command=sh&command=-c&command=exit+3&container=c&stdin=true&stdout=true&tty=false",
        )
        .unwrap();
        assert_eq!(
            serde_urlencoded::to_string(stream_params(&q)).unwrap(),
            "input=1&output=1&command=sh&command=-c&command=exit+3"
        );
    }

    #[test]
    fn kubelet_refusals_keep_their_code() {
        let e = kubelet_error(
            StatusCode::BAD_REQUEST,
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating",
            "pods/log",
            "p",
        );
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        let e = kubelet_error(
            StatusCode::NOT_FOUND,
            "container not found",
            "pods/exec",
            "p",
        );
        assert_eq!((e.code, e.reason), (404, "NotFound"));
    }
}
