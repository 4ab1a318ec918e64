//! Tests of the protobuf decoder: real kubectl bodies (testdata/), k8s-pb-encoded objects,
//! special types, malformed input, and the generated schema's consistency.

use super::*;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;
use std::collections::BTreeMap;

/// Wraps an encoded message in the magic + `runtime.Unknown` envelope, as client-go does.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn decode_pb(api_version: &str, kind: &str, msg: &impl prost::Message) -> Value {
    decode(&envelope(api_version, kind, msg.encode_to_vec())).expect("decodes")
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn time(seconds: i64) -> Option<meta::Time> {
    Some(meta::Time {
        seconds: Some(seconds),
        nanos: Some(0),
    })
}

fn int_or_string_int(i: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(i),
        str_val: Some(String::new()),
    })
}

fn int_or_string_str(v: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(v),
    })
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

// 2024-01-02T03:04:05Z
const T0: i64 = 1_704_164_645;

// ---------------------------------------------------------------------------------------------
// Real kubectl v1.32 bodies.

/// (fixture, command, body, JSON): `testdata/<fixture>.pb` is what `kubectl <command>` sent,
/// `testdata/<fixture>.json` what `kubectl <command> --dry-run=client -o json` printed
/// (captured by `testdata/capture.py`).
const KUBECTL_CASES: &[(&str, &str, &[u8], &str)] = &[
    (
        "configmap",
        "create configmap cm1 --from-literal=a=b --from-literal=empty= --from-file=bin.dat",
        include_bytes!("testdata/configmap.pb"),
        include_str!("testdata/configmap.json"),
    ),
    (
        "secret",
        "create secret generic s1 --from-literal=password=hunter2 --type=Opaque",
        include_bytes!("testdata/secret.pb"),
        include_str!("testdata/secret.json"),
    ),
    (
        "deployment",
        "create deployment web --image=nginx:1.27 --replicas=3 --port=80",
        include_bytes!("testdata/deployment.pb"),
        include_str!("testdata/deployment.json"),
    ),
    (
        "deployment_zero",
        "create deployment zero --image=busybox --replicas=0 -- sleep 3600",
        include_bytes!("testdata/deployment_zero.pb"),
        include_str!("testdata/deployment_zero.json"),
    ),
    (
        "service",
        "create service clusterip svc --tcp=80:8080 --tcp=443:https",
        include_bytes!("testdata/service.pb"),
        include_str!("testdata/service.json"),
    ),
    (
        "service_headless",
        "create service clusterip headless --clusterip=None",
        include_bytes!("testdata/service_headless.pb"),
        include_str!("testdata/service_headless.json"),
    ),
    (
        "service_nodeport",
        "create service nodeport np --tcp=80:8080 --node-port=30080",
        include_bytes!("testdata/service_nodeport.pb"),
        include_str!("testdata/service_nodeport.json"),
    ),
    (
        "namespace",
        "create namespace ns1",
        include_bytes!("testdata/namespace.pb"),
        include_str!("testdata/namespace.json"),
    ),
    (
        "serviceaccount",
        "create serviceaccount sa1",
        include_bytes!("testdata/serviceaccount.pb"),
        include_str!("testdata/serviceaccount.json"),
    ),
    (
        "job",
        "create job j1 --image=busybox -- echo hi",
        include_bytes!("testdata/job.pb"),
        include_str!("testdata/job.json"),
    ),
    (
        "cronjob",
        "create cronjob cj --image=busybox '--schedule=*/5 * * * *' -- date",
        include_bytes!("testdata/cronjob.pb"),
        include_str!("testdata/cronjob.json"),
    ),
    (
        "quota",
        "create quota q --hard=cpu=1,memory=1Gi,pods=10 --scopes=BestEffort",
        include_bytes!("testdata/quota.pb"),
        include_str!("testdata/quota.json"),
    ),
    (
        "role",
        "create role r --verb=get,list --resource=pods,deployments.apps --resource-name=foo",
        include_bytes!("testdata/role.pb"),
        include_str!("testdata/role.json"),
    ),
    (
        "rolebinding",
        "create rolebinding rb --clusterrole=view --user=alice --serviceaccount=default:sa1 --group=devs",
        include_bytes!("testdata/rolebinding.pb"),
        include_str!("testdata/rolebinding.json"),
    ),
    (
        "clusterrole",
        "create clusterrole cr --verb=get --non-resource-url=/healthz",
        include_bytes!("testdata/clusterrole.pb"),
        include_str!("testdata/clusterrole.json"),
    ),
    (
        "clusterrole_agg",
        "create clusterrole agg --aggregation-rule=rbac.example.com/aggregate-to-monitoring=true",
        include_bytes!("testdata/clusterrole_agg.pb"),
        include_str!("testdata/clusterrole_agg.json"),
    ),
    (
        "clusterrolebinding",
        "create clusterrolebinding crb --clusterrole=cluster-admin --user=bob",
        include_bytes!("testdata/clusterrolebinding.pb"),
        include_str!("testdata/clusterrolebinding.json"),
    ),
    (
        "priorityclass",
        "create priorityclass pc --value=0 --description=d --preemption-policy=Never",
        include_bytes!("testdata/priorityclass.pb"),
        include_str!("testdata/priorityclass.json"),
    ),
    (
        "pdb",
        "create pdb pdb --selector=app=web --min-available=50%",
        include_bytes!("testdata/pdb.pb"),
        include_str!("testdata/pdb.json"),
    ),
    (
        "pdb_max",
        "create pdb pdb2 --selector=app=web --max-unavailable=1",
        include_bytes!("testdata/pdb_max.pb"),
        include_str!("testdata/pdb_max.json"),
    ),
    (
        "ingress",
        "create ingress ing --class=nginx --rule=foo.com/bar=svc1:8080 --rule=bar.com/*=svc2:http,tls=my-cert",
        include_bytes!("testdata/ingress.pb"),
        include_str!("testdata/ingress.json"),
    ),
    (
        "secret_docker",
        "create secret docker-registry reg --docker-server=r.example.com --docker-username=u --docker-password=p",
        include_bytes!("testdata/secret_docker.pb"),
        include_str!("testdata/secret_docker.json"),
    ),
    (
        "service_externalname",
        "create service externalname ext --external-name=db.example.com",
        include_bytes!("testdata/service_externalname.pb"),
        include_str!("testdata/service_externalname.json"),
    ),
    (
        "service_loadbalancer",
        "create service loadbalancer lb --tcp=5678:8080",
        include_bytes!("testdata/service_loadbalancer.pb"),
        include_str!("testdata/service_loadbalancer.json"),
    ),
];

#[test]
fn kubectl_bodies_decode_to_kubectls_json() {
    let mut failures = Vec::new();
    for (name, command, pb, expected) in KUBECTL_CASES {
        let mut expected: Value = serde_json::from_str(expected).expect("fixture JSON");
        // Go renders an empty slice without `omitempty` (`ClusterRole.rules`) as null; the
        // decoder omits empty repeated fields.
        if let Some(obj) = expected.as_object_mut() {
            obj.retain(|k, v| !(k == "rules" && v.is_null()));
        }
        match decode(pb) {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!(
                "{name} (kubectl {command}):\n got: {}\nwant: {}",
                serde_json::to_string_pretty(&got).unwrap_or_default(),
                serde_json::to_string_pretty(&expected).unwrap_or_default(),
            )),
            Err(e) => failures.push(format!("{name} (kubectl {command}): {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn kubectl_create_token() {
    // kubectl create token sa1 --duration=10m --audience=api
    let got = decode(include_bytes!("testdata/token.pb")).expect("decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": ["api"], "expirationSeconds": 600},
            // Go: `token string json:"token"`, `expirationTimestamp metav1.Time` (zero: null).
            "status": {"token": "", "expirationTimestamp": null},
        })
    );
    // kubectl create token sa1 (Go's JSON would show `"audiences": null`; empty lists are omitted)
    let got = decode(include_bytes!("testdata/token_plain.pb")).expect("decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"creationTimestamp": null},
            "spec": {},
            "status": {"token": "", "expirationTimestamp": null},
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Objects encoded with k8s-pb (prost: only fields that are `Some` are on the wire).

#[test]
fn configmap_with_data_and_binary_data() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("cm"),
            namespace: s("default"),
            labels: labels(&[("app", "web")]),
            ..Default::default()
        }),
        data: labels(&[("a", "b"), ("config.yaml", "x: 1\n"), ("empty", "")]),
        binary_data: [("bin".to_string(), vec![0u8, 0xff, 0x10, b'a'])].into(),
        immutable: Some(false),
    };
    assert_eq!(
        decode_pb("v1", "ConfigMap", &cm),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "web"}},
            "data": {"a": "b", "config.yaml": "x: 1\n", "empty": ""},
            "binaryData": {"bin": "AP8QYQ=="},
            "immutable": false,
        })
    );
}

#[test]
fn secret() {
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("s"),
            ..Default::default()
        }),
        data: [
            ("password".to_string(), b"hunter2".to_vec()),
            ("empty".to_string(), Vec::new()),
        ]
        .into(),
        string_data: labels(&[("user", "admin")]),
        r#type: s("Opaque"),
        immutable: None,
    };
    assert_eq!(
        decode_pb("v1", "Secret", &secret),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"password": "aHVudGVyMg==", "empty": ""},
            "stringData": {"user": "admin"},
            "type": "Opaque",
        })
    );
}

#[test]
fn deployment_with_pod_template() {
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        command: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        ports: vec![core::ContainerPort {
            name: s("http"),
            container_port: Some(80),
            protocol: s("TCP"),
            host_port: Some(0), // Go writes non-pointer zero fields; JSON omits them.
            host_ip: Some(String::new()),
        }],
        env: vec![
            core::EnvVar {
                name: s("MODE"),
                value: s("prod"),
                value_from: None,
            },
            core::EnvVar {
                name: s("POD_NAME"),
                value: Some(String::new()),
                value_from: Some(core::EnvVarSource {
                    field_ref: Some(core::ObjectFieldSelector {
                        api_version: s("v1"),
                        field_path: s("metadata.name"),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: [
                ("cpu".to_string(), quantity("500m")),
                ("memory".to_string(), quantity("128Mi")),
            ]
            .into(),
            requests: [("cpu".to_string(), quantity("250m"))].into(),
            claims: vec![],
        }),
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: int_or_string_str("http"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(0),
            ..Default::default()
        }),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            generate_name: Some(String::new()),
            namespace: s("default"),
            uid: Some(String::new()),
            generation: Some(0),
            creation_timestamp: time(T0),
            labels: labels(&[("app", "web")]),
            annotations: labels(&[("note", "x")]),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["a".into(), "b".into()],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    creation_timestamp: Some(meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    restart_policy: s("Always"),
                    termination_grace_period_seconds: Some(0),
                    host_network: Some(false),
                    volumes: vec![core::Volume {
                        name: s("cfg"),
                        volume_source: Some(core::VolumeSource {
                            config_map: Some(core::ConfigMapVolumeSource {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: s("cm"),
                                }),
                                default_mode: Some(0o644),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }],
                    security_context: Some(core::PodSecurityContext {
                        supplemental_groups: vec![1000, 2000],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int_or_string_str("25%"),
                    max_surge: int_or_string_int(1),
                }),
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode_pb("apps/v1", "Deployment", &deployment),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"app": "web"},
                "annotations": {"note": "x"},
            },
            "spec": {
                "replicas": 0,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "command": ["nginx", "-g", "daemon off;"],
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"},
                                    },
                                },
                            ],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"},
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                            },
                            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false},
                        }],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 0,
                        "volumes": [{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}}],
                        "securityContext": {"supplementalGroups": [1000, 2000]},
                    },
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1},
                },
            },
            "status": {},
        })
    );
}

#[test]
fn service_with_ports_and_cluster_ips() {
    let svc = core::Service {
        metadata: Some(meta::ObjectMeta {
            name: s("svc"),
            ..Default::default()
        }),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    port: Some(80),
                    target_port: int_or_string_int(8080),
                    node_port: Some(0),
                    ..Default::default()
                },
                core::ServicePort {
                    name: s("https"),
                    port: Some(443),
                    target_port: int_or_string_str("https"),
                    app_protocol: s("https"),
                    ..Default::default()
                },
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("10.96.0.10"),
            cluster_ips: vec!["10.96.0.10".into(), "fd00::10".into()],
            r#type: s("ClusterIP"),
            ip_families: vec!["IPv4".into(), "IPv6".into()],
            ip_family_policy: s("PreferDualStack"),
            session_affinity: Some(String::new()),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decode_pb("v1", "Service", &svc),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "port": 443, "targetPort": "https", "appProtocol": "https"},
                ],
                "selector": {"app": "web"},
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10", "fd00::10"],
                "type": "ClusterIP",
                "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "PreferDualStack",
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn namespace() {
    let ns = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("team-a"),
            deletion_timestamp: time(T0 + 60),
            deletion_grace_period_seconds: Some(0),
            finalizers: vec!["kubernetes".into()],
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: Some(core::NamespaceStatus {
            phase: s("Active"),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decode_pb("v1", "Namespace", &ns),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "team-a",
                "deletionTimestamp": "2024-01-02T03:05:05Z",
                "deletionGracePeriodSeconds": 0,
                "finalizers": ["kubernetes"],
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        })
    );
}

fn job_spec() -> batch::JobSpec {
    batch::JobSpec {
        backoff_limit: Some(0),
        completions: Some(1),
        ttl_seconds_after_finished: Some(100),
        suspend: Some(false),
        template: Some(core::PodTemplateSpec {
            metadata: None,
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: s("c"),
                    image: s("busybox"),
                    args: vec!["echo".into(), "hi".into()],
                    ..Default::default()
                }],
                restart_policy: s("Never"),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn job_spec_json() -> Value {
    json!({
        "backoffLimit": 0,
        "completions": 1,
        "ttlSecondsAfterFinished": 100,
        "suspend": false,
        "template": {
            "spec": {
                "containers": [{"name": "c", "image": "busybox", "args": ["echo", "hi"]}],
                "restartPolicy": "Never",
            },
        },
    })
}

#[test]
fn job() {
    let job = batch::Job {
        metadata: Some(meta::ObjectMeta {
            name: s("j"),
            ..Default::default()
        }),
        spec: Some(job_spec()),
        status: Some(batch::JobStatus {
            start_time: time(T0),
            succeeded: Some(1),
            conditions: vec![batch::JobCondition {
                r#type: s("Complete"),
                status: s("True"),
                last_transition_time: time(T0 + 5),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    assert_eq!(
        decode_pb("batch/v1", "Job", &job),
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": job_spec_json(),
            "status": {
                "startTime": "2024-01-02T03:04:05Z",
                "succeeded": 1,
                "conditions": [{
                    "type": "Complete",
                    "status": "True",
                    "lastTransitionTime": "2024-01-02T03:04:10Z",
                }],
            },
        })
    );
}

#[test]
fn cronjob() {
    let cj = batch::CronJob {
        metadata: Some(meta::ObjectMeta {
            name: s("cj"),
            ..Default::default()
        }),
        spec: Some(batch::CronJobSpec {
            schedule: s("*/5 * * * *"),
            time_zone: s("Etc/UTC"),
            concurrency_policy: s("Forbid"),
            suspend: Some(false),
            successful_jobs_history_limit: Some(0),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: labels(&[("a", "b")]),
                    ..Default::default()
                }),
                spec: Some(job_spec()),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode_pb("batch/v1", "CronJob", &cj),
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "cj"},
            "spec": {
                "schedule": "*/5 * * * *",
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "suspend": false,
                "successfulJobsHistoryLimit": 0,
                "jobTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": job_spec_json()},
            },
        })
    );
}

#[test]
fn rolebinding() {
    let rb = rbac::RoleBinding {
        metadata: Some(meta::ObjectMeta {
            name: s("rb"),
            namespace: s("dev"),
            ..Default::default()
        }),
        subjects: vec![
            rbac::Subject {
                kind: s("User"),
                api_group: s("rbac.authorization.k8s.io"),
                name: s("alice"),
                namespace: None,
            },
            rbac::Subject {
                kind: s("ServiceAccount"),
                api_group: s(""),
                name: s("sa"),
                namespace: s("dev"),
            },
        ],
        role_ref: Some(rbac::RoleRef {
            api_group: s("rbac.authorization.k8s.io"),
            kind: s("ClusterRole"),
            name: s("view"),
        }),
    };
    assert_eq!(
        decode_pb("rbac.authorization.k8s.io/v1", "RoleBinding", &rb),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "rb", "namespace": "dev"},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                // Subject.apiGroup is a non-pointer Go string: "" is omitted.
                {"kind": "ServiceAccount", "name": "sa", "namespace": "dev"},
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Special types.

#[test]
fn micro_time_and_managed_fields() {
    let ev = k8s_pb::api::events::v1::Event {
        metadata: Some(meta::ObjectMeta {
            name: s("ev"),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl"),
                operation: s("Update"),
                api_version: s("events.k8s.io/v1"),
                time: time(T0),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:note":{}}"#.to_vec()),
                }),
                subresource: None,
            }],
            ..Default::default()
        }),
        event_time: Some(meta::MicroTime {
            seconds: Some(T0),
            nanos: Some(123_456_789),
        }),
        deprecated_first_timestamp: Some(meta::Time {
            seconds: Some(T0),
            nanos: Some(999_000_000),
        }),
        note: s("hi"),
        ..Default::default()
    };
    assert_eq!(
        decode_pb("events.k8s.io/v1", "Event", &ev),
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {
                "name": "ev",
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "events.k8s.io/v1",
                    "time": "2024-01-02T03:04:05Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:note": {}},
                }],
            },
            "eventTime": "2024-01-02T03:04:05.123456Z",
            "deprecatedFirstTimestamp": "2024-01-02T03:04:05Z",
            "note": "hi",
        })
    );
}

#[test]
fn raw_extension_json_and_nested_protobuf() {
    let rev = apps::ControllerRevision {
        metadata: Some(meta::ObjectMeta {
            name: s("rev"),
            ..Default::default()
        }),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"x":[1,2]}}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    assert_eq!(
        decode_pb("apps/v1", "ControllerRevision", &rev),
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "rev"},
            "data": {"spec": {"template": {"x": [1, 2]}}},
            "revision": 3,
        })
    );
    // An embedded object that is itself a protobuf body.
    let ns = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("n"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rev = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(envelope("v1", "Namespace", ns.encode_to_vec())),
        }),
        ..Default::default()
    };
    assert_eq!(
        decode_pb("apps/v1", "ControllerRevision", &rev),
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "data": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
        })
    );
    let bad = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        ..Default::default()
    };
    let err = decode(&envelope(
        "apps/v1",
        "ControllerRevision",
        bad.encode_to_vec(),
    ))
    .unwrap_err();
    assert!(matches!(err, ProtoError::InvalidValue { .. }), "{err}");
}

#[test]
fn delete_options_under_any_group_version() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        preconditions: Some(meta::Preconditions {
            uid: s("abc"),
            resource_version: None,
        }),
        ..Default::default()
    };
    let want = |api_version: &str| {
        json!({
            "apiVersion": api_version,
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
            "preconditions": {"uid": "abc"},
        })
    };
    assert_eq!(
        decode_pb("apps/v1", "DeleteOptions", &opts),
        want("apps/v1")
    );
    assert_eq!(
        decode_pb("meta.k8s.io/v1", "DeleteOptions", &opts),
        want("meta.k8s.io/v1")
    );
}

#[test]
fn user_extra_values_are_arrays() {
    use k8s_pb::api::authentication::v1 as authn;
    let review = authn::TokenReview {
        metadata: None,
        spec: Some(authn::TokenReviewSpec {
            token: s("t"),
            audiences: vec![],
        }),
        status: Some(authn::TokenReviewStatus {
            authenticated: Some(true),
            user: Some(authn::UserInfo {
                username: s("u"),
                extra: [(
                    "scopes".to_string(),
                    authn::ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                )]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode_pb("authentication.k8s.io/v1", "TokenReview", &review),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": "t"},
            "status": {"authenticated": true, "user": {"username": "u", "extra": {"scopes": ["a", "b"]}}},
        })
    );
}

#[test]
fn go_durations() {
    let cases = [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_004_000_000, "1h2m3.004s"),
        (-2_000_000_000, "-2s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ];
    for (ns, want) in cases {
        assert_eq!(go_duration(ns), want, "{ns}");
    }
    let msg = lookup("k8s.io.apimachinery.pkg.apis.meta.v1.Duration").expect("in schema");
    let d = meta::Duration {
        duration: Some(300_000_000_000),
    };
    assert_eq!(
        decode_message(msg, &d.encode_to_vec(), 0),
        Ok(json!("5m0s"))
    );
}

#[test]
fn packed_and_unpacked_repeated_scalars() {
    // PodSecurityContext.supplementalGroups (tag 4, int64): prost writes it unpacked (as Go
    // does); a packed encoding must decode the same.
    let msg = lookup("k8s.io.api.core.v1.PodSecurityContext").expect("in schema");
    let unpacked = [0x20, 0x01, 0x20, 0xe8, 0x07];
    let packed = [0x22, 0x03, 0x01, 0xe8, 0x07];
    let want = json!({"supplementalGroups": [1, 1000]});
    assert_eq!(decode_message(msg, &unpacked, 0), Ok(want.clone()));
    assert_eq!(decode_message(msg, &packed, 0), Ok(want));
    // Mixed, and an empty packed run adds nothing.
    let mixed = [0x22, 0x01, 0x01, 0x22, 0x00, 0x20, 0x02];
    assert_eq!(
        decode_message(msg, &mixed, 0),
        Ok(json!({"supplementalGroups": [1, 2]}))
    );
    assert_eq!(decode_message(msg, &[0x22, 0x00], 0), Ok(json!({})));
}

#[test]
fn negative_ints_and_repeated_message_fields_merge() {
    // Container.ports[0].containerPort = -1 (10-byte varint), name set in two occurrences of
    // the singular field Container.securityContext (tag 15), which proto merges.
    let msg = lookup("k8s.io.api.core.v1.Container").expect("in schema");
    let port = core::ContainerPort {
        container_port: Some(-1),
        ..Default::default()
    };
    let mut buf = core::Container {
        ports: vec![port],
        ..Default::default()
    }
    .encode_to_vec();
    let sc1 = core::SecurityContext {
        run_as_user: Some(5),
        ..Default::default()
    };
    let sc2 = core::SecurityContext {
        privileged: Some(true),
        ..Default::default()
    };
    for sc in [sc1, sc2] {
        let c = core::Container {
            security_context: Some(sc),
            ..Default::default()
        };
        buf.extend(c.encode_to_vec());
    }
    assert_eq!(
        decode_message(msg, &buf, 0),
        Ok(json!({
            "ports": [{"containerPort": -1}],
            "securityContext": {"runAsUser": 5, "privileged": true},
        }))
    );
}

#[test]
fn zero_and_unset_times() {
    let ns = |ts: Option<meta::Time>| core::Namespace {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: ts,
            ..Default::default()
        }),
        ..Default::default()
    };
    let ts = |v: &Value| v["metadata"].get("creationTimestamp").cloned();
    // Go sends the zero time as an empty message: JSON null.
    assert_eq!(
        ts(&decode_pb(
            "v1",
            "Namespace",
            &ns(Some(meta::Time::default()))
        )),
        Some(Value::Null)
    );
    // Go's zero time with explicit seconds is null too.
    assert_eq!(
        ts(&decode_pb("v1", "Namespace", &ns(time(-62_135_596_800)))),
        Some(Value::Null)
    );
    assert_eq!(
        ts(&decode_pb("v1", "Namespace", &ns(time(0)))),
        Some(json!("1970-01-01T00:00:00Z"))
    );
    assert_eq!(ts(&decode_pb("v1", "Namespace", &ns(None))), None);
    let far = meta::Time {
        seconds: Some(i64::MAX),
        nanos: None,
    };
    let err = decode(&envelope("v1", "Namespace", ns(Some(far)).encode_to_vec())).unwrap_err();
    assert!(matches!(err, ProtoError::InvalidValue { .. }), "{err}");
}

#[test]
fn unknown_fields_are_skipped() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("cm"),
            ..Default::default()
        }),
        data: labels(&[("a", "b")]),
        ..Default::default()
    };
    let mut raw = cm.encode_to_vec();
    // Unknown fields of every wire type: 90 varint, 91 fixed64, 92 bytes, 93 fixed32, 94 group.
    raw.extend([0xd0, 0x05, 0x96, 0x01]);
    raw.extend([0xd9, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend([0xe2, 0x05, 0x02, b'h', b'i']);
    raw.extend([0xed, 0x05, 1, 2, 3, 4]);
    raw.extend([0xf3, 0x05, 0x08, 0x01, 0xf4, 0x05]);
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", raw)),
        Ok(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}})
        )
    );
}

#[test]
fn json_content_type_in_envelope() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(br#"{"metadata":{"name":"x"}}"#.to_vec()),
        content_encoding: None,
        content_type: s("application/json"),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert_eq!(
        decode(&body),
        Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed input.

#[test]
fn wrong_magic() {
    assert_eq!(decode(b""), Err(ProtoError::BadMagic));
    assert_eq!(decode(b"k8s"), Err(ProtoError::BadMagic));
    assert_eq!(
        decode(br#"{"kind":"ConfigMap"}"#),
        Err(ProtoError::BadMagic)
    );
    let mut body = envelope("v1", "Namespace", Vec::new());
    body[3] = 1;
    assert_eq!(decode(&body), Err(ProtoError::BadMagic));
}

#[test]
fn unknown_kind_and_missing_type() {
    assert_eq!(
        decode(&envelope("v1", "Frobnicator", Vec::new())),
        Err(ProtoError::UnknownKind {
            api_version: "v1".into(),
            kind: "Frobnicator".into()
        })
    );
    assert_eq!(
        decode(&envelope("apps/v2", "Deployment", Vec::new())),
        Err(ProtoError::UnknownKind {
            api_version: "apps/v2".into(),
            kind: "Deployment".into()
        })
    );
    assert_eq!(
        decode(&envelope("v1", "", Vec::new())),
        Err(ProtoError::MissingTypeMeta)
    );
    assert_eq!(decode(MAGIC), Err(ProtoError::MissingTypeMeta));
    // An empty message is a valid (empty) object.
    assert_eq!(
        decode(&envelope("v1", "Namespace", Vec::new())),
        Ok(json!({"apiVersion": "v1", "kind": "Namespace"}))
    );
}

#[test]
fn unsupported_envelope_encodings() {
    let mut unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(Vec::new()),
        content_encoding: s("gzip"),
        content_type: None,
    };
    let body = |u: &Unknown| [MAGIC.to_vec(), u.encode_to_vec()].concat();
    assert_eq!(
        decode(&body(&unknown)),
        Err(ProtoError::UnsupportedContentEncoding("gzip".into()))
    );
    unknown.content_encoding = None;
    unknown.content_type = s("application/yaml");
    assert_eq!(
        decode(&body(&unknown)),
        Err(ProtoError::UnsupportedContentType(
            "application/yaml".into()
        ))
    );
}

#[test]
fn truncated_and_garbage_input() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("cm"),
            labels: labels(&[("a", "b")]),
            ..Default::default()
        }),
        data: labels(&[("k", "v")]),
        ..Default::default()
    };
    let body = envelope("v1", "ConfigMap", cm.encode_to_vec());
    assert!(decode(&body).is_ok());
    // Every strict prefix is an error (no panic), except those that end on a field boundary of
    // the envelope.
    for n in 4..body.len() {
        let _ = decode(&body[..n]);
    }
    assert_eq!(decode(&body[..body.len() - 1]), Err(ProtoError::Truncated));
    // Truncated inside raw: the envelope's length prefix is consistent, the message is not.
    let mut raw = cm.encode_to_vec();
    raw.truncate(raw.len() - 2);
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", raw)),
        Err(ProtoError::Truncated)
    );
    // Overlong varint.
    let mut bad = MAGIC.to_vec();
    bad.push(0x28); // field 5, varint: unknown, skipped
    bad.extend([0xff; 11]);
    assert_eq!(decode(&bad), Err(ProtoError::BadVarint));
    // Field number 0, wire types 6 and 7.
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", vec![0x02, 0x00])),
        Err(ProtoError::BadFieldNumber(0))
    );
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", vec![0x7e])),
        Err(ProtoError::BadWireType(6))
    );
    // A string field sent as a varint.
    let err = decode(&envelope("v1", "Namespace", vec![0x0a, 0x02, 0x08, 0x01])).unwrap_err();
    assert_eq!(
        err,
        ProtoError::WireTypeMismatch {
            field: "ObjectMeta.name".into(),
            wire_type: 0
        }
    );
    // Invalid IntOrString type.
    let svc = core::ServicePort {
        target_port: Some(IntOrString {
            r#type: Some(7),
            int_val: None,
            str_val: None,
        }),
        ..Default::default()
    };
    let msg = lookup("k8s.io.api.core.v1.ServicePort").expect("in schema");
    assert!(matches!(
        decode_message(msg, &svc.encode_to_vec(), 0),
        Err(ProtoError::InvalidValue { .. })
    ));

    // Pseudo-random garbage and random mutations of a valid body never panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let deployment = include_bytes!("testdata/deployment.pb");
    for _ in 0..3000 {
        let len = (next() % 200) as usize;
        let mut garbage = MAGIC.to_vec();
        garbage.extend((0..len).map(|_| next() as u8));
        let _ = decode(&garbage);
        let mut mutated = deployment.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = 4 + (next() as usize) % (mutated.len() - 4);
            mutated[i] = next() as u8;
        }
        let _ = decode(&mutated);
    }
}

#[test]
fn deep_nesting_is_an_error() {
    // RawExtension -> protobuf body -> ControllerRevision -> RawExtension -> ... deeper than the
    // limit.
    let mut body = envelope("v1", "Namespace", Vec::new());
    for _ in 0..MAX_DEPTH {
        let rev = apps::ControllerRevision {
            data: Some(RawExtension { raw: Some(body) }),
            ..Default::default()
        };
        body = envelope("apps/v1", "ControllerRevision", rev.encode_to_vec());
    }
    assert_eq!(decode(&body), Err(ProtoError::TooDeep));
    // Deeply nested groups in an unknown field.
    let raw = [0xf3, 0x05].repeat(MAX_DEPTH + 5);
    assert!(decode(&envelope("v1", "ConfigMap", raw)).is_err());
}

// ---------------------------------------------------------------------------------------------
// The generated schema.

#[test]
fn schema_is_consistent() {
    let msgs = schema::MESSAGES;
    assert!(
        msgs.windows(2).all(|w| w[0].name < w[1].name),
        "MESSAGES sorted and unique"
    );
    for m in msgs {
        assert!(
            m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
            "{}: fields sorted by tag",
            m.name
        );
        for f in m.fields {
            assert!(
                !f.json.is_empty(),
                "{}: tag {} has a JSON name",
                m.name,
                f.tag
            );
            if let Ty::Msg(name) = f.ty {
                assert!(lookup(name).is_ok(), "{}.{} -> {name}", m.name, f.json);
            }
            if let Card::Map(key) = f.card {
                assert!(
                    !matches!(key, Ty::Msg(_) | Ty::Bytes),
                    "{}.{}: map key",
                    m.name,
                    f.json
                );
            }
            if f.card == Card::Inline {
                assert!(matches!(f.ty, Ty::Msg(_)), "{}.{}: inline", m.name, f.json);
            }
        }
    }
    let kinds = schema::KINDS;
    assert!(
        kinds
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)),
        "KINDS sorted and unique"
    );
    for (api_version, kind, name) in kinds {
        assert!(lookup(name).is_ok(), "{api_version} {kind} -> {name}");
        assert_eq!(message_name(api_version, kind), Some(*name));
    }
    assert!(schema::META_KINDS.windows(2).all(|w| w[0].0 < w[1].0));
    for (kind, name) in schema::META_KINDS {
        assert!(lookup(name).is_ok(), "{kind} -> {name}");
    }
    // A few names that prost mangles.
    let svc = lookup("k8s.io.api.core.v1.ServiceSpec").expect("ServiceSpec");
    assert!(svc.fields.iter().any(|f| f.json == "clusterIPs"));
    assert!(lookup("k8s.io.api.core.v1.AWSElasticBlockStoreVolumeSource").is_ok());
    assert_eq!(
        message_name("apps/v1", "Deployment"),
        Some("k8s.io.api.apps.v1.Deployment")
    );
    assert_eq!(
        message_name("authentication.k8s.io/v1", "TokenRequest"),
        Some("k8s.io.api.authentication.v1.TokenRequest")
    );
}
