use super::subsets::*;
use super::*;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

pub(crate) fn pod(name: &str, ip: &str, ready: bool, port: i32) -> Arc<Pod> {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.spec = Some(PodSpec {
        node_name: Some("n1".into()),
        containers: vec![Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: port,
                ..Default::default()
            }]),
            ..Default::default()
        }],
        ..Default::default()
    });
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.into()),
        pod_ips: Some(vec![PodIP { ip: ip.into() }]),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(Timestamp::from_second(1_000).unwrap_or_default())),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Arc::new(p)
}

pub(crate) fn service(target: IntOrString, publish: bool) -> Service {
    let mut s = Service::default();
    s.metadata.name = Some("web".into());
    s.metadata.namespace = Some("ns".into());
    s.metadata.uid = Some("svc-uid".into());
    s.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    s.spec = Some(ServiceSpec {
        cluster_ip: Some("10.43.0.10".into()),
        ip_families: Some(vec!["IPv4".into()]),
        selector: Some([("app".to_owned(), "web".to_owned())].into()),
        publish_not_ready_addresses: Some(publish),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            protocol: Some("TCP".into()),
            target_port: Some(target),
            ..Default::default()
        }]),
        ..Default::default()
    });
    s
}

fn ips(addrs: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    addrs.iter().flatten().map(|a| a.ip.as_str()).collect()
}

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset};

#[test]
fn subsets_split_ready_and_not_ready_and_group_by_ports() {
    let named = IntOrString::String("http".into());
    struct Case {
        name: &'static str,
        svc: Service,
        pods: Vec<Arc<Pod>>,
        /// (ready IPs, not ready IPs, port) per subset.
        want: Vec<(Vec<&'static str>, Vec<&'static str>, i32)>,
    }
    let cases = vec![
        Case {
            name: "ready and not ready share a subset",
            svc: service(IntOrString::Int(8080), false),
            pods: vec![
                pod("a", "10.0.0.2", true, 1),
                pod("b", "10.0.0.1", false, 1),
            ],
            want: vec![(vec!["10.0.0.2"], vec!["10.0.0.1"], 8080)],
        },
        Case {
            name: "publishNotReadyAddresses makes every address ready",
            svc: service(IntOrString::Int(8080), true),
            pods: vec![
                pod("a", "10.0.0.2", true, 1),
                pod("b", "10.0.0.1", false, 1),
            ],
            want: vec![(vec!["10.0.0.1", "10.0.0.2"], vec![], 8080)],
        },
        Case {
            name: "a named port resolved per pod splits the subsets",
            svc: service(named.clone(), false),
            pods: vec![
                pod("a", "10.0.0.1", true, 8080),
                pod("b", "10.0.0.2", true, 9090),
                pod("c", "10.0.0.3", true, 8080),
            ],
            want: vec![
                (vec!["10.0.0.1", "10.0.0.3"], vec![], 8080),
                (vec!["10.0.0.2"], vec![], 9090),
            ],
        },
        Case {
            name: "no pods, no subsets",
            svc: service(named, false),
            pods: vec![],
            want: vec![],
        },
    ];
    for c in cases {
        let got = desired_subsets(&c.svc, &c.pods);
        let got: Vec<(Vec<&str>, Vec<&str>, i32)> = got
            .iter()
            .map(|s| {
                (
                    ips(&s.addresses),
                    ips(&s.not_ready_addresses),
                    s.ports.as_ref().map_or(0, |p| p[0].port),
                )
            })
            .collect();
        assert_eq!(got, c.want, "{}", c.name);
    }
}

#[test]
fn terminating_pods_are_left_out_unless_published() {
    let mut p = (*pod("a", "10.0.0.1", true, 1)).clone();
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let p = Arc::new(p);
    assert!(desired_subsets(
        &service(IntOrString::Int(1), false),
        std::slice::from_ref(&p)
    )
    .is_empty());
    assert_eq!(
        desired_subsets(&service(IntOrString::Int(1), true), &[p]).len(),
        1
    );
}

#[test]
fn addresses_carry_node_target_and_hostname() {
    let mut p = (*pod("a", "10.0.0.1", true, 1)).clone();
    if let Some(spec) = p.spec.as_mut() {
        spec.hostname = Some("a-host".into());
        spec.subdomain = Some("web".into());
    }
    let subsets = desired_subsets(&service(IntOrString::Int(1), false), &[Arc::new(p)]);
    let a = &subsets[0].addresses.as_ref().unwrap()[0];
    assert_eq!(a.hostname.as_deref(), Some("a-host"));
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let target = a.target_ref.as_ref().unwrap();
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    assert_eq!(target.uid.as_deref(), Some("uid-a"));
}

#[test]
fn over_capacity_keeps_ready_addresses_first() {
    let addr = |i: usize| EndpointAddress {
        ip: format!("10.0.{}.{}", i / 250, i % 250),
        ..Default::default()
    };
    let mut subsets = vec![
        EndpointSubset {
            addresses: Some((0..900).map(addr).collect()),
            not_ready_addresses: Some((900..1100).map(addr).collect()),
            ports: None,
        },
        EndpointSubset {
            addresses: Some((1100..1200).map(addr).collect()),
            not_ready_addresses: Some((1200..1300).map(addr).collect()),
            ports: None,
        },
    ];
    assert!(truncate(&mut subsets));
    // 1000 ready of 1300 addresses: the ready ones, shared 900:100, and no not-ready one.
    assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 900);
    assert_eq!(subsets[1].addresses.as_ref().unwrap().len(), 100);
    assert!(subsets.iter().all(|s| s.not_ready_addresses.is_none()));

    let mut under = vec![EndpointSubset {
        addresses: Some((0..10).map(addr).collect()),
        ..Default::default()
    }];
    assert!(!truncate(&mut under));

    let mut not_ready_over = vec![EndpointSubset {
        addresses: Some((0..600).map(addr).collect()),
        not_ready_addresses: Some((600..1200).map(addr).collect()),
        ports: None,
    }];
    assert!(truncate(&mut not_ready_over));
    assert_eq!(not_ready_over[0].addresses.as_ref().unwrap().len(), 600);
    assert_eq!(
        not_ready_over[0]
            .not_ready_addresses
            .as_ref()
            .unwrap()
            .len(),
        400
    );
}

#[test]
fn the_endpoints_object_is_written_only_when_it_changes() {
    let svc = service(IntOrString::Int(8080), false);
    let pods = vec![pod("a", "10.0.0.1", true, 1)];
    let t = Timestamp::from_second(1_000).ok();
    let first = desired_endpoints(&svc, &pods, None, t).expect("created");
    assert_eq!(first.metadata.name.as_deref(), Some("web"));
    assert_eq!(first.metadata.labels, svc.metadata.labels);
    assert_eq!(
        first
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME))
            .map(String::as_str),
        Some("1970-01-01T00:16:40Z")
    );
    assert!(desired_endpoints(&svc, &pods, Some(&first), None).is_none());
    let more = vec![pods[0].clone(), pod("b", "10.0.0.2", true, 1)];
    let second = desired_endpoints(&svc, &more, Some(&first), None).expect("updated");
    assert_eq!(
        second.subsets.as_ref().unwrap()[0]
            .addresses
            .as_ref()
            .unwrap()
            .len(),
        2
    );
    assert!(second
        .metadata
        .annotations
        .as_ref()
        .is_none_or(|a| !a.contains_key(LAST_CHANGE_TRIGGER_TIME)));

    // Headless: the label is added, and not taken for a change of the Service's labels.
    let mut headless = svc.clone();
    if let Some(spec) = headless.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
    }
    let h = desired_endpoints(&headless, &pods, None, None).expect("created");
    assert_eq!(
        h.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HEADLESS))
            .map(String::as_str),
        Some("")
    );
    assert!(desired_endpoints(&headless, &pods, Some(&h), None).is_none());
}
