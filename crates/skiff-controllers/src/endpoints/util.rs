//! What the Endpoints and EndpointSlice controllers share (upstream's
//! `k8s.io/endpointslice/util` and `pkg/api/v1/pod`'s `FindPort`): which pods are endpoints,
//! a Service port's number in a pod, the hostname rule, the IP family of a Service, and the
//! `endpoints.kubernetes.io/last-change-trigger-time` tracker. Pure functions.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;

/// The annotation both controllers write (upstream's `v1.EndpointsLastChangeTriggerTime`).
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The label of headless Services' endpoints (upstream's `v1.IsHeadlessService`).
pub const HEADLESS: &str = "service.kubernetes.io/headless";

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !ips.is_empty() {
        return ips;
    }
    status
        .pod_ip
        .iter()
        .filter(|ip| !ip.is_empty())
        .cloned()
        .collect()
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and not terminating unless
/// `include_terminating`.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if matches!(phase(pod), "Succeeded" | "Failed") {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Upstream's `ShouldSetHostname`: the pod has a hostname and its subdomain is the Service.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.hostname.as_deref())
        .is_some_and(|h| !h.is_empty())
        && spec.and_then(|s| s.subdomain.as_deref()) == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace
}

/// Upstream's `FindPort`: a number target port as it is, a named one looked up in the pod's
/// containers (and restartable init containers) with the same protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        // The API server defaults targetPort to port.
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Whether the Service has a cluster IP (not headless).
pub fn is_service_ip_set(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

pub fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// The pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    crate::pods::is_ready(pod)
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped).
pub fn rfc3339_nano(t: Timestamp) -> String {
    let secs = t.as_second();
    let nanos = t.subsec_nanosecond();
    let whole = Timestamp::from_second(secs).unwrap_or(t);
    let base = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

#[derive(Default, Clone)]
struct ServiceState {
    last_service_trigger: Option<Timestamp>,
    last_pod_triggers: HashMap<String, Timestamp>,
}

/// Upstream's `TriggerTimeTracker`: the time of the earliest change (a pod's Ready
/// transition, the Service's creation) not yet exported since the last sync; the Service's
/// creation time on its first sync; `None` when nothing changed (the annotation is removed).
#[derive(Default)]
pub struct TriggerTimeTracker {
    states: Mutex<HashMap<(String, String), ServiceState>>,
}

fn ready_transition(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

impl TriggerTimeTracker {
    pub fn compute(&self, svc: &Service, pods: &[std::sync::Arc<Pod>]) -> Option<Timestamp> {
        let key = (
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        let mut states = self.states.lock();
        let was_known = states.contains_key(&key);
        let state = states.entry(key).or_default();
        let mut min: Option<Timestamp> = None;
        let mut pod_triggers = HashMap::new();
        for pod in pods {
            if let Some(t) = ready_transition(pod) {
                let name = pod.metadata.name.clone().unwrap_or_default();
                if state
                    .last_pod_triggers
                    .get(&name)
                    .is_none_or(|last| t > *last)
                {
                    min = Some(min.map_or(t, |m| m.min(t)));
                }
                pod_triggers.insert(name, t);
            }
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created {
            if state.last_service_trigger.is_none_or(|last| c > last) {
                min = Some(min.map_or(c, |m| m.min(c)));
            }
        }
        state.last_pod_triggers = pod_triggers;
        state.last_service_trigger = created;
        if !was_known {
            return created;
        }
        min
    }

    pub fn delete_service(&self, namespace: &str, name: &str) {
        self.states
            .lock()
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};

    fn pod_with_port(name: &str, number: i32) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(name.into()),
                        container_port: number,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: Some("10.0.0.1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ports_are_found_by_number_or_name_and_protocol() {
        let pod = pod_with_port("http", 8080);
        let port = |t: IntOrString, proto: &str| ServicePort {
            port: 80,
            target_port: Some(t),
            protocol: Some(proto.into()),
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &port(IntOrString::Int(9), "TCP")), Some(9));
        assert_eq!(
            find_port(&pod, &port(IntOrString::String("http".into()), "TCP")),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod, &port(IntOrString::String("http".into()), "UDP")),
            None
        );
        assert_eq!(
            find_port(&pod, &port(IntOrString::String("grpc".into()), "TCP")),
            None
        );
    }

    #[test]
    fn terminal_ipless_and_terminating_pods_are_left_out() {
        let mut pod = pod_with_port("http", 1);
        assert!(should_pod_be_in_endpoints(&pod, false));
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        assert!(!should_pod_be_in_endpoints(&pod, false));
        assert!(should_pod_be_in_endpoints(&pod, true));
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_pod_be_in_endpoints(&pod, true));
        let mut no_ip = pod_with_port("http", 1);
        no_ip.status = None;
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
    }

    #[test]
    fn times_are_go_rfc3339_nano() {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
        let t = Timestamp::new(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
    }

    #[test]
    fn the_trigger_time_is_the_earliest_unexported_change() {
        use k8s_openapi::api::core::v1::PodCondition;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let created = Timestamp::from_second(1_000).unwrap();
        let mut svc = Service::default();
        svc.metadata.name = Some("s".into());
        svc.metadata.creation_timestamp = Some(Time(created));
        let ready_at = |name: &str, secs: i64| {
            let mut p = pod_with_port("http", 1);
            p.metadata.name = Some(name.into());
            p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(Timestamp::from_second(secs).unwrap())),
                ..Default::default()
            }]);
            std::sync::Arc::new(p)
        };
        let tracker = TriggerTimeTracker::default();
        assert_eq!(
            tracker.compute(&svc, &[ready_at("a", 2_000)]),
            Some(created)
        );
        assert_eq!(tracker.compute(&svc, &[ready_at("a", 2_000)]), None);
        assert_eq!(
            tracker.compute(
                &svc,
                &[
                    ready_at("a", 2_000),
                    ready_at("b", 3_000),
                    ready_at("c", 2_500)
                ]
            ),
            Timestamp::from_second(2_500).ok()
        );
        tracker.delete_service("", "s");
        assert_eq!(tracker.compute(&svc, &[]), Some(created));
    }
}
