//! gRPC probes (upstream's `pkg/probe/grpc/grpc.go`): `grpc.health.v1.Health/Check` with
//! the probe's `service` over plain HTTP/2 (no TLS, as upstream), the whole exchange
//! within the timeout; `SERVING` is a success, anything else a failure with upstream's
//! messages.

use std::net::IpAddr;
use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::tcp::join_host_port;
use super::{Outcome, KUBE_VERSION};

/// Checks `service` at `host:port`.
pub async fn probe(host: IpAddr, port: u16, service: &str, timeout: Duration) -> Outcome {
    let addr = join_host_port(&host.to_string(), port);
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
        return Outcome::Failure(format!(
            "error: failed to connect service at {addr:?}: invalid address"
        ));
    };
    let endpoint = endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(format!("kube-probe/{KUBE_VERSION}"));
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {e}"))
        }
    };
    let check = async {
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Failure(format!(
                    "error: failed to connect service at {addr:?}: {}",
                    error_chain(&e)
                ))
            }
        };
        let mut client = HealthClient::new(channel);
        let req = HealthCheckRequest {
            service: service.to_string(),
        };
        match client.check(req).await {
            Ok(resp) => serving(resp.into_inner().status),
            Err(status) => rpc_error(&status, timeout),
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(o) => o,
        Err(_) => Outcome::Failure(format!(
            "timeout: failed to connect service {addr:?} within {}",
            go_duration(timeout)
        )),
    }
}

fn serving(status: i32) -> Outcome {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => Outcome::Success("service healthy".into()),
        Ok(s) => Outcome::Failure(format!(
            "service unhealthy (responded with {:?})",
            s.as_str_name()
        )),
        Err(_) => Outcome::Failure(format!("service unhealthy (responded with \"{status}\")")),
    }
}

fn rpc_error(status: &tonic::Status, timeout: Duration) -> Outcome {
    match status.code() {
        tonic::Code::Unimplemented => Outcome::Failure(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
            status.message()
        )),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        )),
        _ => Outcome::Failure(format!("error: health rpc probe failed: {status}")),
    }
}

/// A Go-style duration for whole seconds (`1s`, `2m0s` is not needed for probe timeouts
/// of seconds: upstream prints `1s`, `30s`).
fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn error_chain(e: &dyn std::error::Error) -> String {
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

    #[test]
    fn statuses() {
        assert_eq!(
            serving(ServingStatus::Serving as i32),
            Outcome::Success("service healthy".into())
        );
        assert_eq!(
            serving(ServingStatus::NotServing as i32),
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let s = tonic::Status::unimplemented("unknown service grpc.health.v1.Health");
        assert_eq!(
            rpc_error(&s, Duration::from_secs(1)),
            Outcome::Failure("this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health".into())
        );
    }
}
