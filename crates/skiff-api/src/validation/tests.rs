//! Table-driven tests: invalid objects give upstream's exact causes (reason, field, message,
//! in upstream's order); valid objects, as kubectl and typical manifests send them, give none.
//! Objects are defaulted first, as the server does before validating.

use serde_json::{json, Value};

use super::{validate_create, validate_update};
use crate::defaults;
use crate::status::Cause;

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const KEY_NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const NEGATIVE: &str = "must be greater than or equal to 0";
const QUANTITY: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

fn gvk(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => ("apps", "v1"),
        "Job" | "CronJob" => ("batch", "v1"),
        "Lease" => ("coordination.k8s.io", "v1"),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
            ("rbac.authorization.k8s.io", "v1")
        }
        "PodDisruptionBudget" => ("policy", "v1"),
        "HorizontalPodAutoscaler" => ("autoscaling", "v2"),
        _ => ("", "v1"),
    }
}

/// The object as the server has it before validating: defaulted, with a uid, and for Jobs
/// with the generated selector.
fn prepared(kind: &str, mut obj: Value) -> Value {
    let (group, version) = gvk(kind);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("uid").or_insert(json!("0a1b2c3d"));
    }
    defaults::apply(group, version, kind, &mut obj);
    if kind == "Job" {
        defaults::job_selector_on_create(&mut obj);
    }
    obj
}

fn create(kind: &str, obj: Value) -> Vec<Cause> {
    let (group, version) = gvk(kind);
    validate_create(group, version, kind, &prepared(kind, obj))
}

fn update(kind: &str, old: Value, new: Value) -> Vec<Cause> {
    let (group, version) = gvk(kind);
    let (old, mut new) = (prepared(kind, old), prepared(kind, new));
    // The server keeps what the client may not change; tests give both the same uid.
    new["metadata"]["uid"] = old["metadata"]["uid"].clone();
    validate_update(group, version, kind, &old, &new)
}

fn causes(list: &[(&str, &str, &str)]) -> Vec<Cause> {
    list.iter()
        .map(|(reason, field, message)| Cause {
            reason: (*reason).into(),
            message: (*message).into(),
            field: (*field).into(),
        })
        .collect()
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default"})
}

fn pod_with(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web"), "spec": spec})
}

fn nginx() -> Value {
    json!({"name": "nginx", "image": "nginx"})
}

fn template(labels: Value, spec: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": spec})
}

fn deployment_with(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"), "spec": spec})
}

const REQ: &str = "FieldValueRequired";
const INV: &str = "FieldValueInvalid";
const UNS: &str = "FieldValueNotSupported";
const DUP: &str = "FieldValueDuplicate";
const FORB: &str = "FieldValueForbidden";
const NF: &str = "FieldValueNotFound";
const LONG: &str = "FieldValueTooLong";

struct Case {
    name: &'static str,
    kind: &'static str,
    obj: Value,
    want: Vec<Cause>,
}

fn check(cases: Vec<Case>) {
    for case in cases {
        let got = create(case.kind, case.obj);
        assert_eq!(got, case.want, "case {:?}", case.name);
    }
}

#[test]
fn pods_report_every_bad_field_as_upstream() {
    let subdomain_bad = format!("Invalid value: \"Bad_Name\": {SUBDOMAIN}");
    let label_bad = format!("Invalid value: \"-bad\": {LABEL_VALUE}");
    let annotation_bad = format!("Invalid value: \"bad key\": {KEY_NAME_PART}");
    let container_name = format!("Invalid value: \"Web_1\": {DNS_LABEL}");
    let cases = vec![
        Case {
            name: "no containers",
            kind: "Pod",
            obj: pod_with(json!({})),
            want: causes(&[(REQ, "spec.containers", "Required value")]),
        },
        Case {
            name: "container name and image",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "Web_1"}]})),
            want: causes(&[
                (INV, "spec.containers[0].name", &container_name),
                (REQ, "spec.containers[0].image", "Required value"),
            ]),
        },
        Case {
            name: "names unique across containers and init containers",
            kind: "Pod",
            obj: pod_with(json!({
                "containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "x"}],
                "initContainers": [{"name": "a", "image": "x"}],
            })),
            want: causes(&[
                (DUP, "spec.containers[1].name", "Duplicate value: \"a\""),
                (DUP, "spec.initContainers[0].name", "Duplicate value: \"a\""),
            ]),
        },
        Case {
            name: "ports",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "c", "image": "x", "ports": [
                {"containerPort": 70000, "protocol": "FOO"},
                {"name": "http", "containerPort": 80},
                {"name": "http", "containerPort": 81},
            ]}]})),
            want: causes(&[
                (INV, "spec.containers[0].ports[0].containerPort", &format!("Invalid value: 70000: {PORT_RANGE}")),
                (UNS, "spec.containers[0].ports[0].protocol", "Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
                (DUP, "spec.containers[0].ports[2].name", "Duplicate value: \"http\""),
            ]),
        },
        Case {
            name: "restart and dns policies",
            kind: "Pod",
            obj: pod_with(json!({"containers": [nginx()], "restartPolicy": "Sometimes", "dnsPolicy": "Weird"})),
            want: causes(&[
                (UNS, "spec.restartPolicy", "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""),
                (UNS, "spec.dnsPolicy", "Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""),
            ]),
        },
        Case {
            name: "volumes and mounts",
            kind: "Pod",
            obj: pod_with(json!({
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "data", "emptyDir": {}},
                    {"name": "both", "emptyDir": {}, "hostPath": {"path": "/x"}},
                ],
                "containers": [{"name": "c", "image": "x", "volumeMounts": [
                    {"name": "missing", "mountPath": "/m"},
                    {"name": "data", "mountPath": "/m"},
                ]}],
            })),
            want: causes(&[
                (DUP, "spec.volumes[1].name", "Duplicate value: \"data\""),
                (FORB, "spec.volumes[2].hostPath", "Forbidden: may not specify more than 1 volume type"),
                (NF, "spec.containers[0].volumeMounts[0].name", "Not found: \"missing\""),
                (INV, "spec.containers[0].volumeMounts[1].mountPath", "Invalid value: \"/m\": must be unique"),
            ]),
        },
        Case {
            name: "volume without a source name",
            kind: "Pod",
            obj: pod_with(json!({
                "volumes": [{"name": "", "secret": {"defaultMode": 1000}}],
                "containers": [nginx()],
            })),
            want: causes(&[
                (REQ, "spec.volumes[0].secret.secretName", "Required value"),
                (INV, "spec.volumes[0].secret.defaultMode", "Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive"),
                (REQ, "spec.volumes[0].name", "Required value"),
            ]),
        },
        Case {
            name: "resources",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "c", "image": "x", "resources": {
                "limits": {"cpu": "1", "gpu": "1"},
                "requests": {"cpu": "2", "memory": "1Gb"},
            }}]})),
            want: causes(&[
                (INV, "spec.containers[0].resources.limits[gpu]", "Invalid value: \"gpu\": must be a standard resource type or fully qualified"),
                (INV, "spec.containers[0].resources.limits[gpu]", "Invalid value: \"gpu\": must be a standard resource for containers"),
                (INV, "spec.containers[0].resources.requests", "Invalid value: \"2\": must be less than or equal to cpu limit of 1"),
                (INV, "spec.containers[0].resources.requests[gpu]", "Invalid value: \"gpu\": must be a standard resource type or fully qualified"),
                (INV, "spec.containers[0].resources.requests[gpu]", "Invalid value: \"gpu\": must be a standard resource for containers"),
                (INV, "spec.containers[0].resources.requests[memory]", &format!("Invalid value: \"1Gb\": {QUANTITY}")),
            ]),
        },
        Case {
            name: "extended resources need equal integer limits",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "c", "image": "x", "resources": {
                "limits": {"example.com/gpu": "500m"},
            }}]})),
            want: causes(&[
                (INV, "spec.containers[0].resources.limits[example.com/gpu]", "Invalid value: 500m: must be an integer"),
                (INV, "spec.containers[0].resources.requests[example.com/gpu]", "Invalid value: 500m: must be an integer"),
            ]),
        },
        Case {
            name: "env",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "c", "image": "x", "env": [
                {"name": ""},
                {"name": "A=B", "value": "x"},
                {"name": "C", "valueFrom": {}},
                {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "spec.restartPolicy"}}},
            ]}]})),
            want: causes(&[
                (REQ, "spec.containers[0].env[0].name", "Required value"),
                (INV, "spec.containers[0].env[1].name", "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
                (INV, "spec.containers[0].env[2].valueFrom", "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"),
                (UNS, "spec.containers[0].env[3].valueFrom.fieldRef.fieldPath", "Unsupported value: \"spec.restartPolicy\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""),
            ]),
        },
        Case {
            name: "probes",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "c", "image": "x",
                "livenessProbe": {"httpGet": {"port": 0}, "successThreshold": 2},
                "readinessProbe": {},
            }]})),
            want: causes(&[
                (INV, "spec.containers[0].livenessProbe.httpGet.port", &format!("Invalid value: 0: {PORT_RANGE}")),
                (INV, "spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
                (REQ, "spec.containers[0].readinessProbe", "Required value: must specify a handler type"),
            ]),
        },
        Case {
            name: "metadata",
            kind: "Pod",
            obj: json!({"metadata": {
                "name": "Bad_Name", "namespace": "default",
                "labels": {"app": "-bad"},
                "annotations": {"bad key": "v"},
                "finalizers": ["foo"],
            }, "spec": {"containers": [nginx()]}}),
            want: causes(&[
                (INV, "metadata.name", &subdomain_bad),
                (INV, "metadata.labels", &label_bad),
                (INV, "metadata.annotations", &annotation_bad),
                (INV, "metadata.finalizers[0]", "Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"),
            ]),
        },
        Case {
            name: "owner references",
            kind: "Pod",
            obj: json!({"metadata": {"name": "web", "namespace": "default", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "", "controller": true},
            ]}, "spec": {"containers": [nginx()]}}),
            want: causes(&[
                (INV, "metadata.ownerReferences.uid", "Invalid value: \"\": must not be empty"),
                (INV, "metadata.ownerReferences", "Invalid value: []v1.OwnerReference{v1.OwnerReference{APIVersion:\"apps/v1\", Kind:\"ReplicaSet\", Name:\"a\", UID:\"1\", Controller:(*bool)(true), BlockOwnerDeletion:(*bool)(nil)}, v1.OwnerReference{APIVersion:\"apps/v1\", Kind:\"ReplicaSet\", Name:\"b\", UID:\"\", Controller:(*bool)(true), BlockOwnerDeletion:(*bool)(nil)}}: Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"),
            ]),
        },
        Case {
            name: "missing name and namespace",
            kind: "Pod",
            obj: json!({"metadata": {}, "spec": {"containers": [nginx()]}}),
            want: causes(&[
                (REQ, "metadata.name", "Required value: name or generateName is required"),
                (REQ, "metadata.namespace", "Required value"),
            ]),
        },
        Case {
            name: "tolerations and host network ports",
            kind: "Pod",
            obj: pod_with(json!({
                "hostNetwork": true,
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 81}]}],
                "tolerations": [{"operator": "Equal", "value": "x"}],
            })),
            want: causes(&[
                (INV, "spec.containers[0].ports[0].hostPort", "Invalid value: 81: must match `containerPort` when `hostNetwork` is true"),
                (INV, "spec.tolerations[0].operator", "Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""),
            ]),
        },
        Case {
            name: "shareProcessNamespace with hostPID",
            kind: "Pod",
            obj: pod_with(json!({"containers": [nginx()], "shareProcessNamespace": true, "hostPID": true})),
            want: causes(&[(INV, "spec.securityContext.shareProcessNamespace", "Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled")]),
        },
        Case {
            name: "image whitespace on pods only",
            kind: "Pod",
            obj: pod_with(json!({"containers": [{"name": "c", "image": " nginx"}]})),
            want: causes(&[(INV, "spec.containers[0].image", "Invalid value: \" nginx\": must not have leading or trailing whitespace")]),
        },
    ];
    check(cases);
}

#[test]
fn workloads_check_selectors_templates_and_strategies() {
    let cases = vec![
        Case {
            name: "deployment without selector",
            kind: "Deployment",
            obj: deployment_with(json!({"template": template(json!({"app": "web"}), json!({"containers": [nginx()]}))})),
            want: causes(&[
                (REQ, "spec.selector", "Required value"),
                (INV, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"),
            ]),
        },
        Case {
            name: "deployment selector, replicas, strategy, history",
            kind: "Deployment",
            obj: deployment_with(json!({
                "replicas": -1,
                "selector": {"matchLabels": {"app": "other"}},
                "strategy": {"type": "Blue"},
                "revisionHistoryLimit": -1,
                "template": template(json!({"app": "web"}), json!({"containers": [nginx()]})),
            })),
            want: causes(&[
                (INV, "spec.replicas", &format!("Invalid value: -1: {NEGATIVE}")),
                (INV, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"),
                (UNS, "spec.strategy", "Unsupported value: apps.DeploymentStrategy{Type:\"Blue\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\""),
                (INV, "spec.revisionHistoryLimit", &format!("Invalid value: -1: {NEGATIVE}")),
            ]),
        },
        Case {
            name: "deployment rolling update bounds",
            kind: "Deployment",
            obj: deployment_with(json!({
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%", "maxSurge": "x"}},
                "template": template(json!({"app": "web"}), json!({"containers": [nginx()]})),
            })),
            want: causes(&[
                (INV, "spec.strategy.rollingUpdate.maxSurge", "Invalid value: x: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
                (INV, "spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 120%: must not be greater than 100%"),
            ]),
        },
        Case {
            name: "deployment both zero",
            kind: "Deployment",
            obj: deployment_with(json!({
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}},
                "progressDeadlineSeconds": 5,
                "minReadySeconds": 10,
                "template": template(json!({"app": "web"}), json!({"containers": [nginx()]})),
            })),
            want: causes(&[
                (INV, "spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when `maxSurge` is 0"),
                (INV, "spec.progressDeadlineSeconds", "Invalid value: 5: must be greater than minReadySeconds"),
            ]),
        },
        Case {
            name: "deployment with invalid selector skips the template",
            kind: "Deployment",
            obj: deployment_with(json!({
                "selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]},
                "template": template(json!({"app": "web"}), json!({})),
            })),
            want: causes(&[
                (INV, "spec.selector.matchExpressions[0].operator", "Invalid value: \"Near\": not a valid selector operator"),
                (INV, "spec.selector", "Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:app,Operator:Near,Values:[],},},}: invalid label selector"),
            ]),
        },
        Case {
            name: "replica set with empty selector and pod template problems",
            kind: "ReplicaSet",
            obj: json!({"metadata": meta("rs"), "spec": {
                "selector": {},
                "template": template(json!({"app": "x"}), json!({"containers": [nginx()], "restartPolicy": "Never", "activeDeadlineSeconds": 5})),
            }}),
            want: causes(&[
                (INV, "spec.selector", "Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment"),
                (UNS, "spec.template.spec.restartPolicy", "Unsupported value: \"Never\": supported values: \"Always\""),
                (FORB, "spec.template.spec.activeDeadlineSeconds", "Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"),
            ]),
        },
        Case {
            name: "daemon set without selector",
            kind: "DaemonSet",
            obj: json!({"metadata": meta("ds"), "spec": {"template": template(json!({"app": "x"}), json!({"containers": [nginx()]}))}}),
            want: causes(&[(INV, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`")]),
        },
        Case {
            name: "daemon set rolling update both set",
            kind: "DaemonSet",
            obj: json!({"metadata": meta("ds"), "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}},
                "template": template(json!({"app": "x"}), json!({"containers": [nginx()]})),
            }}),
            want: causes(&[(INV, "spec.updateStrategy.rollingUpdate.maxSurge", "Invalid value: 1: may not be set when maxUnavailable is non-zero")]),
        },
        Case {
            name: "stateful set policies and template",
            kind: "StatefulSet",
            obj: json!({"metadata": meta("db"), "spec": {
                "podManagementPolicy": "Bogus",
                "selector": {"matchLabels": {"app": "db"}},
                "template": template(json!({"app": "db"}), json!({"containers": [{"name": "c"}], "restartPolicy": "OnFailure"})),
            }}),
            want: causes(&[
                (INV, "spec.podManagementPolicy", "Invalid value: \"Bogus\": must be 'OrderedReady' or 'Parallel'"),
                (UNS, "spec.template.spec.restartPolicy", "Unsupported value: \"OnFailure\": supported values: \"Always\""),
            ]),
        },
        Case {
            name: "stateful set names are DNS labels",
            kind: "StatefulSet",
            obj: json!({"metadata": meta("db.one"), "spec": {
                "selector": {"matchLabels": {"app": "db"}},
                "template": template(json!({"app": "db"}), json!({"containers": [nginx()]})),
            }}),
            want: causes(&[(INV, "metadata.name", "Invalid value: \"db.one\": must not contain dots")]),
        },
        Case {
            name: "job counts and restart policy",
            kind: "Job",
            obj: json!({"metadata": meta("pi"), "spec": {
                "parallelism": -1, "completions": -1, "backoffLimit": -1,
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}},
            }}),
            want: causes(&[
                (INV, "spec.parallelism", &format!("Invalid value: -1: {NEGATIVE}")),
                (INV, "spec.completions", &format!("Invalid value: -1: {NEGATIVE}")),
                (INV, "spec.backoffLimit", &format!("Invalid value: -1: {NEGATIVE}")),
                (REQ, "spec.template.spec.restartPolicy", "Required value: valid values: \"OnFailure\", \"Never\""),
            ]),
        },
        Case {
            name: "job with a manual selector that misses its template",
            kind: "Job",
            obj: json!({"metadata": meta("pi"), "spec": {
                "manualSelector": true,
                "selector": {"matchLabels": {"app": "pi"}},
                "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "pi", "image": "perl"}], "restartPolicy": "Never"}},
            }}),
            want: causes(&[(INV, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`")]),
        },
        Case {
            name: "cron job schedule and policy",
            kind: "CronJob",
            obj: json!({"metadata": meta("tick"), "spec": {
                "schedule": "61 * * * *",
                "concurrencyPolicy": "Sometimes",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t", "image": "busybox"}], "restartPolicy": "OnFailure"}}}},
            }}),
            want: causes(&[
                (INV, "spec.schedule", "Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"),
                (UNS, "spec.concurrencyPolicy", "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
            ]),
        },
        Case {
            name: "cron job schedule required, TZ, long name, job template",
            kind: "CronJob",
            obj: json!({"metadata": meta(&"c".repeat(53)), "spec": {
                "schedule": "",
                "jobTemplate": {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "t", "image": "busybox"}]}}}},
            }}),
            want: causes(&[
                (REQ, "spec.schedule", "Required value"),
                (REQ, "spec.jobTemplate.spec.template.spec.restartPolicy", "Required value: valid values: \"OnFailure\", \"Never\""),
                (INV, "spec.jobTemplate.spec.selector", "Invalid value: &LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{},}: `selector` will be auto-generated"),
                (INV, "metadata.name", &format!("Invalid value: \"{}\": must be no more than 52 characters", "c".repeat(53))),
            ]),
        },
        Case {
            name: "cron job TZ in schedule",
            kind: "CronJob",
            obj: json!({"metadata": meta("tick"), "spec": {
                "schedule": "TZ=UTC 0 * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t", "image": "busybox"}], "restartPolicy": "Never"}}}},
            }}),
            want: causes(&[(INV, "spec.schedule", "Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]),
        },
        Case {
            name: "cron job unknown time zone",
            kind: "CronJob",
            obj: json!({"metadata": meta("tick"), "spec": {
                "schedule": "0 * * * *", "timeZone": "Mars/Olympus",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t", "image": "busybox"}], "restartPolicy": "Never"}}}},
            }}),
            want: causes(&[(INV, "spec.timeZone", "Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus")]),
        },
        Case {
            name: "replication controller",
            kind: "ReplicationController",
            obj: json!({"metadata": meta("rc"), "spec": {"selector": {"app": "a"}, "template": template(json!({"app": "b"}), json!({"containers": [nginx()]}))}}),
            want: causes(&[(INV, "spec.template.metadata.labels", "Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`")]),
        },
    ];
    check(cases);
}

#[test]
fn services_and_config_kinds() {
    let big = "x".repeat(1024 * 1024 + 1);
    let cases = vec![
        Case {
            name: "service without ports",
            kind: "Service",
            obj: json!({"metadata": meta("web"), "spec": {"selector": {"app": "web"}}}),
            want: causes(&[(REQ, "spec.ports", "Required value")]),
        },
        Case {
            name: "service ports need names and must be unique",
            kind: "Service",
            obj: json!({"metadata": meta("web"), "spec": {"ports": [{"port": 80}, {"port": 80}, {"name": "x", "port": 0}]}}),
            want: causes(&[
                (REQ, "spec.ports[0].name", "Required value"),
                (REQ, "spec.ports[1].name", "Required value"),
                (INV, "spec.ports[2].port", &format!("Invalid value: 0: {PORT_RANGE}")),
                (INV, "spec.ports[2].targetPort", &format!("Invalid value: 0: {PORT_RANGE}")),
                (DUP, "spec.ports[1]", "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"),
            ]),
        },
        Case {
            name: "external name service",
            kind: "Service",
            obj: json!({"metadata": meta("ext"), "spec": {"type": "ExternalName"}}),
            want: causes(&[(REQ, "spec.externalName", "Required value")]),
        },
        Case {
            name: "service type and name",
            kind: "Service",
            obj: json!({"metadata": meta("1web"), "spec": {"type": "Bogus", "ports": [{"port": 80}]}}),
            want: causes(&[
                (INV, "metadata.name", &format!("Invalid value: \"1web\": {DNS1035}")),
                (UNS, "spec.type", "Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            ]),
        },
        Case {
            name: "service node port on cluster IP and bad selector",
            kind: "Service",
            obj: json!({"metadata": meta("web"), "spec": {"selector": {"app": "-x"}, "ports": [{"port": 80, "nodePort": 30000}]}}),
            want: causes(&[
                (INV, "spec.selector", &format!("Invalid value: \"-x\": {LABEL_VALUE}")),
                (FORB, "spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'"),
            ]),
        },
        Case {
            name: "config map keys",
            kind: "ConfigMap",
            obj: json!({"metadata": meta("cfg"), "data": {"bad key": "v", "good": "v"}}),
            want: causes(&[(INV, "data[bad key]", &format!("Invalid value: \"bad key\": {CONFIG_KEY}"))]),
        },
        Case {
            name: "config map size",
            kind: "ConfigMap",
            obj: json!({"metadata": meta("cfg"), "data": {"big": big}}),
            want: causes(&[(LONG, "", "Too long: may not be more than 1048576 bytes")]),
        },
        Case {
            name: "tls secret keys",
            kind: "Secret",
            obj: json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}}),
            want: causes(&[(REQ, "data[tls.key]", "Required value")]),
        },
        Case {
            name: "docker config secret",
            kind: "Secret",
            obj: json!({"metadata": meta("reg"), "type": "kubernetes.io/dockerconfigjson"}),
            want: causes(&[(REQ, "data[.dockerconfigjson]", "Required value")]),
        },
        Case {
            name: "docker config secret contents",
            kind: "Secret",
            obj: json!({"metadata": meta("reg"), "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "xyz"}}),
            want: causes(&[(INV, "data[.dockerconfigjson]", "Invalid value: \"<secret contents redacted>\": invalid character 'x' looking for beginning of value")]),
        },
        Case {
            name: "secret keys from stringData",
            kind: "Secret",
            obj: json!({"metadata": meta("s"), "stringData": {"a b": "x"}}),
            want: causes(&[(INV, "data[a b]", &format!("Invalid value: \"a b\": {CONFIG_KEY}"))]),
        },
        Case {
            name: "namespace name",
            kind: "Namespace",
            obj: json!({"metadata": {"name": "Bad"}}),
            want: causes(&[(INV, "metadata.name", &format!("Invalid value: \"Bad\": {DNS_LABEL}"))]),
        },
        Case {
            name: "node taints",
            kind: "Node",
            obj: json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "a", "effect": "Foo"}, {"key": "b", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]}}),
            want: causes(&[
                (UNS, "metadata.taints[0].effect", "Unsupported value: \"Foo\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""),
                (DUP, "metadata.taints[2]", "Duplicate value: core.Taint{Key:\"b\", Value:\"\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair"),
            ]),
        },
        Case {
            name: "service account name",
            kind: "ServiceAccount",
            obj: json!({"metadata": meta("Bad")}),
            want: causes(&[(INV, "metadata.name", &format!("Invalid value: \"Bad\": {SUBDOMAIN}"))]),
        },
        Case {
            name: "core event namespace",
            kind: "Event",
            obj: json!({"metadata": meta("e1"), "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"}, "reason": "Started"}),
            want: causes(&[(INV, "involvedObject.namespace", "Invalid value: \"other\": does not match event.namespace")]),
        },
        Case {
            name: "lease durations",
            kind: "Lease",
            obj: json!({"metadata": meta("l"), "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}}),
            want: causes(&[
                (INV, "spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0"),
                (INV, "spec.leaseTransitions", "Invalid value: -1: must be greater than or equal to 0"),
            ]),
        },
        Case {
            name: "role binding",
            kind: "RoleBinding",
            obj: json!({"metadata": meta("a%b"), "roleRef": {"kind": "Foo", "name": "x"}, "subjects": [{"kind": "User", "name": "bob", "apiGroup": "other"}]}),
            want: causes(&[
                (INV, "metadata.name", "Invalid value: \"a%b\": may not contain '%'"),
                (UNS, "roleRef.kind", "Unsupported value: \"Foo\": supported values: \"Role\", \"ClusterRole\""),
                (UNS, "subjects[0].apiGroup", "Unsupported value: \"other\": supported values: \"rbac.authorization.k8s.io\""),
            ]),
        },
        Case {
            name: "role rules",
            kind: "Role",
            obj: json!({"metadata": meta("r"), "rules": [{"apiGroups": [""]}]}),
            want: causes(&[
                (REQ, "rules[0].verbs", "Required value: verbs must contain at least one value"),
                (REQ, "rules[0].resources", "Required value: resource rules must supply at least one resource"),
            ]),
        },
        Case {
            name: "claim without storage",
            kind: "PersistentVolumeClaim",
            obj: json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteSometimes"]}}),
            want: causes(&[
                (UNS, "spec.accessModes", "Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""),
                (REQ, "spec.resources[storage]", "Required value"),
            ]),
        },
        Case {
            name: "unlisted kinds still get metadata validation",
            kind: "LimitRange",
            obj: json!({"metadata": meta("Bad"), "spec": {"limits": []}}),
            want: causes(&[(INV, "metadata.name", &format!("Invalid value: \"Bad\": {SUBDOMAIN}"))]),
        },
    ];
    check(cases);
}

#[test]
fn valid_objects_have_no_causes() {
    let secret_data = "e30="; // "{}"
    let objects = vec![
        ("Pod", pod_with(json!({"containers": [nginx()]}))),
        (
            "Pod",
            pod_with(json!({"containers": [nginx()], "shareProcessNamespace": true})),
        ),
        (
            "Pod",
            pod_with(
                json!({"containers": [nginx()], "shareProcessNamespace": false, "hostPID": true}),
            ),
        ),
        // `kubectl run web --image=nginx --port=80 --env=A=1`
        (
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default", "labels": {"run": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}], "resources": {}}],
                     "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"}, "status": {}}),
        ),
        // A pod using most of the spec.
        (
            "Pod",
            pod_with(json!({
                "serviceAccountName": "default",
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a.txt"}]}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
                    {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}},
                ],
                "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]},
                                   {"name": "sidecar", "image": "envoy", "restartPolicy": "Always", "readinessProbe": {"tcpSocket": {"port": 9901}}}],
                "containers": [{
                    "name": "app", "image": "registry.example.com:5000/team/app:v1.2",
                    "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        {"name": "dotted.name", "value": "ok"},
                    ],
                    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi", "ephemeral-storage": "1Gi"}},
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}, {"name": "tmp", "mountPath": "/tmp"},
                                      {"name": "sec", "mountPath": "/etc/sec"}, {"name": "host", "mountPath": "/host", "subPath": "app"},
                                      {"name": "claim", "mountPath": "/data"}, {"name": "info", "mountPath": "/info"}, {"name": "token", "mountPath": "/var/run/token"}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5},
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                    "startupProbe": {"grpc": {"port": 9090}, "failureThreshold": 30},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                    "securityContext": {"runAsUser": 1000, "runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
                }],
                "securityContext": {"fsGroup": 2000, "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}}]},
                             "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}],
                "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["svc.cluster.local"], "options": [{"name": "ndots", "value": "2"}]},
                "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["foo.local"]}],
                "priorityClassName": "high",
                "activeDeadlineSeconds": 600,
            })),
        ),
        // `kubectl create deployment web --image=nginx`
        (
            "Deployment",
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}}, "strategy": {}}, "status": {}}),
        ),
        (
            "Deployment",
            deployment_with(json!({
                "replicas": 3,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]},
                "strategy": {"type": "Recreate"},
                "minReadySeconds": 5,
                "template": template(json!({"app.kubernetes.io/name": "web", "tier": "frontend"}), json!({"containers": [nginx()], "terminationGracePeriodSeconds": 10})),
            })),
        ),
        (
            "ReplicaSet",
            json!({"metadata": meta("rs"), "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"}), json!({"containers": [nginx()]}))}}),
        ),
        (
            "StatefulSet",
            json!({"metadata": meta("db"), "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": template(json!({"app": "db"}), json!({"containers": [{"name": "pg", "image": "postgres:16", "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}]})),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "DaemonSet",
            json!({"metadata": meta("agent"), "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template(json!({"app": "agent"}), json!({"containers": [nginx()], "hostNetwork": true}))}}),
        ),
        // `kubectl create job pi --image=perl -- perl -e 1`
        (
            "Job",
            json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "pi", "namespace": "default", "creationTimestamp": null},
            "spec": {"template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": [{"name": "pi", "image": "perl", "command": ["perl", "-e", "1"], "resources": {}}], "restartPolicy": "Never"}}}, "status": {}}),
        ),
        (
            "Job",
            json!({"metadata": meta("idx"), "spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 3,
            "template": {"spec": {"containers": [{"name": "w", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}),
        ),
        // `kubectl create cronjob tick --image=busybox --schedule="*/1 * * * *"`
        (
            "CronJob",
            json!({"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "tick", "namespace": "default", "creationTimestamp": null},
            "spec": {"jobTemplate": {"metadata": {"name": "tick", "creationTimestamp": null}, "spec": {"template": {"metadata": {"creationTimestamp": null},
                "spec": {"containers": [{"name": "tick", "image": "busybox", "resources": {}}], "restartPolicy": "OnFailure"}}}}, "schedule": "*/1 * * * *"}, "status": {}}),
        ),
        (
            "CronJob",
            json!({"metadata": meta("nightly"), "spec": {"schedule": "@daily", "timeZone": "Europe/Rome",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [nginx()], "restartPolicy": "Never"}}}}}}),
        ),
        // `kubectl create service clusterip web --tcp=80:8080`
        (
            "Service",
            json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}], "selector": {"app": "web"}, "type": "ClusterIP"}, "status": {"loadBalancer": {}}}),
        ),
        (
            "Service",
            json!({"metadata": meta("db"), "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        ),
        (
            "Service",
            json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https", "nodePort": 30443}]}}),
        ),
        (
            "Service",
            json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "example.com."}}),
        ),
        (
            "ConfigMap",
            json!({"metadata": meta("cfg"), "data": {"app.properties": "a=b", "KEY_1": "x"}, "binaryData": {"logo.png": "iVBORw0="}}),
        ),
        (
            "Secret",
            json!({"metadata": meta("s"), "type": "Opaque", "data": {"password": "cGFzcw=="}}),
        ),
        (
            "Secret",
            json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
        ),
        (
            "Secret",
            json!({"metadata": meta("reg"), "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": secret_data}}),
        ),
        (
            "Secret",
            json!({"metadata": meta("basic"), "type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}}),
        ),
        ("Namespace", json!({"metadata": {"name": "team-a"}})),
        (
            "Node",
            json!({"metadata": {"name": "node-1.example"}, "spec": {"podCIDRs": ["10.42.0.0/24"]}, "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        ),
        ("ServiceAccount", json!({"metadata": meta("builder")})),
        (
            "Event",
            json!({"metadata": meta("web.17a"), "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started", "type": "Normal"}),
        ),
        (
            "Lease",
            json!({"metadata": {"name": "kube-scheduler", "namespace": "kube-system"}, "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15, "leaseTransitions": 0}}),
        ),
        (
            "Role",
            json!({"metadata": meta("reader"), "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ),
        (
            "ClusterRole",
            json!({"metadata": {"name": "system:metrics"}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
        ),
        (
            "RoleBinding",
            json!({"metadata": meta("read"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}),
        ),
        (
            "ClusterRoleBinding",
            json!({"metadata": {"name": "admins"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "Group", "name": "system:masters"}]}),
        ),
        (
            "PersistentVolumeClaim",
            json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}, "storageClassName": "local-path"}}),
        ),
        (
            "PersistentVolume",
            json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data/pv1"}}}),
        ),
        (
            "PodDisruptionBudget",
            json!({"metadata": meta("web"), "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "HorizontalPodAutoscaler",
            json!({"metadata": meta("web"), "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}}),
        ),
        (
            "ReplicationController",
            json!({"metadata": meta("rc"), "spec": {"replicas": 2, "template": template(json!({"app": "rc"}), json!({"containers": [nginx()]}))}}),
        ),
    ];
    for (kind, obj) in objects {
        let name = obj["metadata"]["name"].clone();
        assert_eq!(create(kind, obj), vec![], "{kind} {name}");
    }
}

#[test]
fn updates_enforce_immutable_fields() {
    let dep = |app: &str, image: &str| {
        deployment_with(json!({"selector": {"matchLabels": {"app": app}},
            "template": template(json!({"app": app}), json!({"containers": [{"name": "c", "image": image}]}))}))
    };
    assert_eq!(
        update("Deployment", dep("a", "nginx"), dep("a", "nginx:2")),
        vec![]
    );
    assert_eq!(
        update("Deployment", dep("a", "nginx"), dep("b", "nginx")),
        causes(&[(INV, "spec.selector", "Invalid value: &LabelSelector{MatchLabels:map[string]string{app: b,},MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable")])
    );

    let job = |image: &str, completions: i64| {
        json!({"metadata": meta("pi"), "spec": {"completions": completions,
            "template": {"spec": {"containers": [{"name": "pi", "image": image}], "restartPolicy": "Never"}}}})
    };
    assert_eq!(update("Job", job("perl", 1), job("perl", 1)), vec![]);
    assert_eq!(
        update("Job", job("perl", 1), job("perl:2", 3)),
        causes(&[
            (
                INV,
                "spec.completions",
                "Invalid value: 3: field is immutable"
            ),
            (
                INV,
                "spec.template",
                "Invalid value: core.PodTemplateSpec{...}: field is immutable"
            ),
        ])
    );

    let svc = |ip: &str| json!({"metadata": meta("web"), "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80}]}});
    assert_eq!(
        update("Service", svc("10.43.0.10"), svc("10.43.0.10")),
        vec![]
    );
    assert_eq!(
        update("Service", svc("10.43.0.10"), svc("10.43.0.11")),
        causes(&[(
            INV,
            "spec.clusterIPs[0]",
            "Invalid value: []string{\"10.43.0.11\"}: may not change once set"
        )])
    );

    let cm = |v: &str| json!({"metadata": meta("cfg"), "immutable": true, "data": {"a": v}});
    assert_eq!(update("ConfigMap", cm("1"), cm("1")), vec![]);
    assert_eq!(
        update("ConfigMap", cm("1"), cm("2")),
        causes(&[(
            FORB,
            "data",
            "Forbidden: field is immutable when `immutable` is set"
        )])
    );
    assert_eq!(
        update(
            "ConfigMap",
            cm("1"),
            json!({"metadata": meta("cfg"), "data": {"a": "1"}})
        ),
        causes(&[(
            FORB,
            "immutable",
            "Forbidden: field is immutable when `immutable` is set"
        )])
    );

    let secret =
        |ty: &str| json!({"metadata": meta("s"), "type": ty, "data": {"username": "dQ=="}});
    assert_eq!(
        update(
            "Secret",
            secret("Opaque"),
            secret("kubernetes.io/basic-auth")
        ),
        causes(&[(
            INV,
            "type",
            "Invalid value: \"kubernetes.io/basic-auth\": field is immutable"
        )])
    );

    let pod = |image: &str, dns: &str, tolerations: Value| {
        pod_with(
            json!({"containers": [{"name": "c", "image": image}], "dnsPolicy": dns, "tolerations": tolerations}),
        )
    };
    let t1 = json!([{"key": "a", "operator": "Exists"}]);
    let t2 = json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
    // As `kubectl set image` does: the stored pod with a new image (the pull policy stays).
    let stored = prepared("Pod", pod("nginx", "ClusterFirst", t1.clone()));
    let mut patched = stored.clone();
    patched["spec"]["containers"][0]["image"] = json!("nginx:2");
    patched["spec"]["tolerations"] = t2;
    assert_eq!(validate_update("", "v1", "Pod", &stored, &patched), vec![]);
    let changed = update(
        "Pod",
        pod("nginx", "ClusterFirst", t1.clone()),
        pod("nginx", "Default", t1.clone()),
    );
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].reason.as_str(), changed[0].field.as_str()),
        (FORB, "spec")
    );
    assert!(changed[0].message.starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{}", changed[0].message);
    assert!(changed[0].message.contains("dnsPolicy"));
    assert_eq!(
        update(
            "Pod",
            pod("nginx", "ClusterFirst", t1.clone()),
            pod("nginx", "ClusterFirst", json!([]))
        ),
        causes(&[(
            FORB,
            "spec.tolerations",
            "Forbidden: existing toleration can not be modified except its tolerationSeconds"
        )])
    );
    let two =
        pod_with(json!({"containers": [{"name": "c", "image": "x"}, {"name": "d", "image": "x"}]}));
    assert_eq!(
        update("Pod", pod("nginx", "ClusterFirst", t1), two),
        causes(&[(
            FORB,
            "spec.containers",
            "Forbidden: pod updates may not add or remove containers"
        )])
    );

    let sts = |service: &str, replicas: i64| {
        json!({"metadata": meta("db"), "spec": {"serviceName": service, "replicas": replicas, "selector": {"matchLabels": {"app": "db"}},
            "template": template(json!({"app": "db"}), json!({"containers": [nginx()]}))}})
    };
    assert_eq!(update("StatefulSet", sts("db", 1), sts("db", 3)), vec![]);
    assert_eq!(
        update("StatefulSet", sts("db", 1), sts("other", 1)),
        causes(&[(FORB, "spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")])
    );

    let renamed = update(
        "ConfigMap",
        json!({"metadata": meta("a")}),
        json!({"metadata": {"name": "b", "namespace": "other"}}),
    );
    assert_eq!(
        renamed,
        causes(&[
            (
                INV,
                "metadata.name",
                "Invalid value: \"b\": field is immutable"
            ),
            (
                INV,
                "metadata.namespace",
                "Invalid value: \"other\": field is immutable"
            ),
        ])
    );

    let pvc = |mode: &str, size: &str| json!({"metadata": meta("data"), "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}});
    let changed = update(
        "PersistentVolumeClaim",
        pvc("ReadWriteOnce", "1Gi"),
        pvc("ReadWriteMany", "1Gi"),
    );
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].reason.as_str(), changed[0].field.as_str()),
        (FORB, "spec")
    );
    assert!(changed[0].message.starts_with("Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"));
    assert!(changed[0].message.contains("accessModes"));

    let rb = |role: &str| json!({"metadata": meta("rb"), "roleRef": {"kind": "Role", "name": role}, "subjects": []});
    assert_eq!(
        update("RoleBinding", rb("a"), rb("b")),
        causes(&[(INV, "roleRef", "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"b\"}: cannot change roleRef")])
    );
}

#[test]
fn invalid_status_renders_like_upstream() {
    let causes = create(
        "Deployment",
        deployment_with(
            json!({"template": template(json!({"app": "web"}), json!({"containers": [nginx()]}))}),
        ),
    );
    let err = crate::status::ApiError::invalid("apps", "Deployment", "web", causes);
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`]"
    );
}

#[test]
fn events_api_events_are_validated_strictly() {
    let ev = |extra: Value| {
        let mut e = json!({"metadata": {"name": "web.17a", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Started", "note": "started", "type": "Normal"});
        if let (Some(m), Value::Object(x)) = (e.as_object_mut(), extra) {
            m.extend(x);
        }
        validate_create("events.k8s.io", "v1", "Event", &e)
    };
    assert_eq!(
        ev(json!({})),
        causes(&[(REQ, "eventTime", "Required value")])
    );
    assert_eq!(
        ev(json!({"eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "kubelet"})),
        causes(&[
            (REQ, "reportingInstance", "Required value"),
            (REQ, "action", "Required value"),
        ])
    );
    assert_eq!(
        ev(
            json!({"eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "kubelet",
                  "reportingInstance": "node-1", "action": "Start", "deprecatedCount": 3})
        ),
        causes(&[(INV, "count", "Invalid value: \"\": needs to be unset")])
    );
    // The core API keeps the legacy rules only.
    let core = json!({"metadata": {"name": "Bad_Name", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "n1"}, "reason": "Rebooted"});
    assert_eq!(validate_create("", "v1", "Event", &core), vec![]);
}
