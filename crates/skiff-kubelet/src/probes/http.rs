//! HTTP GET probes and hook requests (upstream's `pkg/probe/http/{http.go,request.go}`).
//!
//! The URL is `scheme://host:port/path` with the host defaulting to the pod IP and a named
//! port resolved against the container's ports; headers as given, plus `User-Agent:
//! kube-probe/<major.minor>` (`kube-lifecycle/...` for hooks) and `Accept: */*` unless set
//! (an empty `Accept` removes it), the `Host` header as the request's host. HTTPS is not
//! verified. Redirects to the same host are followed (at most 10); a redirect elsewhere is
//! not followed and the probe succeeds with a warning, as upstream's `RedirectChecker(false)`.
//! 2xx is a success, 3xx a warning, anything else a failure whose message has the status
//! code only (never the body: upstream issue 99425). Bodies are read up to 10 KiB.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction};

use super::tcp::join_host_port;
use super::{resolve_port, Error, Outcome, KUBE_VERSION, MAX_OUTPUT};

/// A prepared GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    pub url: reqwest::Url,
    /// In order, names as given (`Host` among them if set).
    pub headers: Vec<(String, String)>,
}

impl ProbeRequest {
    /// Upstream's `NewRequestForHTTPGetAction`; `fragment` is `probe` or `lifecycle`.
    pub fn from_action(
        h: &HTTPGetAction,
        container: &Container,
        pod_ip: Option<IpAddr>,
        fragment: &str,
    ) -> Result<Self, Error> {
        let scheme = h.scheme.as_deref().unwrap_or("").to_ascii_lowercase();
        let scheme = if scheme.is_empty() {
            "http".to_string()
        } else {
            scheme
        };
        let host = match h.host.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => h.to_string(),
            None => pod_ip.ok_or(Error::NoHost)?.to_string(),
        };
        let port = resolve_port(&h.port, container)?;
        let path = h.path.as_deref().unwrap_or("");
        let sep = if path.starts_with('/') || path.is_empty() {
            ""
        } else {
            "/"
        };
        let raw = format!("{scheme}://{}{sep}{path}", join_host_port(&host, port));
        let url = reqwest::Url::parse(&raw).map_err(|e| Error::Request(format!("{raw}: {e}")))?;
        let mut headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let has =
            |hs: &[(String, String)], n: &str| hs.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !has(&headers, "user-agent") {
            headers.push((
                "User-Agent".into(),
                format!("kube-{fragment}/{KUBE_VERSION}"),
            ));
        }
        if !has(&headers, "accept") {
            headers.push(("Accept".into(), "*/*".into()));
        } else {
            // An Accept header given empty is removed (Go's headers.Get is the first value).
            let first_empty = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("accept"))
                .is_some_and(|(_, v)| v.is_empty());
            if first_empty {
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("accept"));
            }
        }
        Ok(Self { url, headers })
    }
}

/// The shared client (one connection pool with nothing kept idle: upstream's probe
/// transport disables keep-alives).
#[derive(Clone, Debug)]
pub struct Client {
    http: Option<reqwest::Client>,
    build_error: Option<String>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt
                .previous()
                .first()
                .and_then(|u| u.host_str().map(str::to_owned));
            if attempt.url().host_str().map(str::to_owned) != first {
                attempt.stop()
            } else if attempt.previous().len() >= 10 {
                attempt.error("stopped after 10 redirects")
            } else {
                attempt.follow()
            }
        });
        let built = reqwest::Client::builder()
            .redirect(policy)
            .danger_accept_invalid_certs(true)
            .pool_max_idle_per_host(0)
            .build();
        match built {
            Ok(http) => Self {
                http: Some(http),
                build_error: None,
            },
            Err(e) => Self {
                http: None,
                build_error: Some(e.to_string()),
            },
        }
    }

    async fn send(
        &self,
        req: &ProbeRequest,
        timeout: Duration,
    ) -> Result<Result<reqwest::Response, String>, Error> {
        let Some(http) = &self.http else {
            return Err(Error::Request(self.build_error.clone().unwrap_or_default()));
        };
        let mut b = http.get(req.url.clone()).timeout(timeout);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        Ok(b.send().await.map_err(|e| go_client_error(&req.url, &e)))
    }

    /// Runs a probe request (upstream's `DoHTTPProbe`).
    pub async fn probe(&self, req: &ProbeRequest, timeout: Duration) -> Result<Outcome, Error> {
        let mut resp = match self.send(req, timeout).await? {
            Ok(r) => r,
            // Errors are failures, so that timeouts count.
            Err(e) => return Ok(Outcome::Failure(e)),
        };
        let mut body: Vec<u8> = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let room = MAX_OUTPUT - body.len();
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    if body.len() >= MAX_OUTPUT {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Ok(Outcome::Failure(go_client_error(&req.url, &e))),
            }
        }
        Ok(classify(
            resp.status().as_u16(),
            &String::from_utf8_lossy(&body),
        ))
    }

    /// Runs a hook request: any response counts (upstream's `runHTTPHandler`), the body
    /// is discarded.
    pub async fn hook(&self, req: &ProbeRequest, timeout: Duration) -> Result<(), Error> {
        match self.send(req, timeout).await? {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Request(e)),
        }
    }
}

/// The result of a response's status code and (capped) body.
pub fn classify(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Success(body.to_string()),
        300..=399 => Outcome::Warning(format!("Probe terminated redirects, Response body: {body}")),
        _ => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
    }
}

/// A client error worded as Go's `http.Client` words it (`Get "<url>": dial tcp
/// <addr>: connect: connection refused`, `... (Client.Timeout exceeded while awaiting
/// headers)`), since these texts are what upstream's `Unhealthy` events show.
fn go_client_error(url: &reqwest::Url, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!(
            "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            url.as_str()
        );
    }
    if e.is_connect() {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(c) = cur {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                let host = url.host_str().unwrap_or("");
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port = url.port_or_known_default().unwrap_or(0);
                return format!(
                    "Get {:?}: dial tcp {}: {}",
                    url.as_str(),
                    join_host_port(host, port),
                    super::tcp::go_io_error(io)
                );
            }
            cur = c.source();
        }
    }
    format!("Get {:?}: {}", url.as_str(), error_text(e))
}

fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn container() -> Container {
        Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn ip() -> Option<IpAddr> {
        "10.42.0.7".parse().ok()
    }

    #[test]
    fn url_and_default_headers() {
        let h = HTTPGetAction {
            path: Some("/healthz?full=1".into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        };
        let r = ProbeRequest::from_action(&h, &container(), ip(), "probe").expect("request");
        assert_eq!(r.url.as_str(), "http://10.42.0.7:8080/healthz?full=1");
        assert_eq!(
            r.headers,
            vec![
                ("User-Agent".to_string(), "kube-probe/1.33".to_string()),
                ("Accept".to_string(), "*/*".to_string()),
            ]
        );
    }

    #[test]
    fn scheme_host_headers_and_path_without_slash() {
        let h = HTTPGetAction {
            scheme: Some("HTTPS".into()),
            host: Some("example.test".into()),
            path: Some("ready".into()),
            port: IntOrString::Int(8443),
            http_headers: Some(vec![
                HTTPHeader {
                    name: "user-agent".into(),
                    value: "mine".into(),
                },
                HTTPHeader {
                    name: "Accept".into(),
                    value: String::new(),
                },
                HTTPHeader {
                    name: "Host".into(),
                    value: "virtual.test".into(),
                },
            ]),
        };
        let r = ProbeRequest::from_action(&h, &container(), ip(), "lifecycle").expect("request");
        assert_eq!(r.url.as_str(), "https://example.test:8443/ready");
        assert_eq!(
            r.headers,
            vec![
                ("user-agent".to_string(), "mine".to_string()),
                ("Host".to_string(), "virtual.test".to_string()),
            ]
        );
        let h = HTTPGetAction {
            port: IntOrString::Int(80),
            ..Default::default()
        };
        let r = ProbeRequest::from_action(&h, &container(), ip(), "lifecycle").expect("request");
        assert_eq!(r.headers[0].1, "kube-lifecycle/1.33");
        // The default port is left out, as in any URL.
        assert_eq!(r.url.as_str(), "http://10.42.0.7/");
        assert!(matches!(
            ProbeRequest::from_action(&h, &container(), None, "probe"),
            Err(Error::NoHost)
        ));
    }

    #[test]
    fn status_classes() {
        assert_eq!(classify(200, "ok"), Outcome::Success("ok".into()));
        assert_eq!(
            classify(302, "moved"),
            Outcome::Warning("Probe terminated redirects, Response body: moved".into())
        );
        assert_eq!(
            classify(500, "secret"),
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
        assert_eq!(
            classify(404, ""),
            Outcome::Failure("HTTP probe failed with statuscode: 404".into())
        );
    }
}
