//! Defaulting tests: what kubectl sends, defaulted, equals what upstream stores and returns.

use serde_json::{json, Value};

use super::{apply, job_selector_on_create, pod::pull_policy_for, pod_status_on_create};

fn defaulted(group: &str, version: &str, kind: &str, mut obj: Value) -> Value {
    apply(group, version, kind, &mut obj);
    obj
}

/// The container defaults every pod template gets (the image decides the pull policy).
fn container(name: &str, image: &str, pull: &str) -> Value {
    json!({"name": name, "image": image, "imagePullPolicy": pull, "resources": {},
           "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
}

fn pod_spec_defaults(containers: Value, restart: &str) -> Value {
    json!({"containers": containers, "dnsPolicy": "ClusterFirst", "restartPolicy": restart,
           "schedulerName": "default-scheduler", "securityContext": {}, "terminationGracePeriodSeconds": 30})
}

#[test]
fn kubectl_create_deployment_is_stored_as_upstream() {
    let sent = json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}},
                 "strategy": {}},
        "status": {}});
    let want = json!({"kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "creationTimestamp": null},
        "spec": {"progressDeadlineSeconds": 600, "replicas": 1, "revisionHistoryLimit": 10,
                 "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                 "template": {"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                              "spec": pod_spec_defaults(json!([container("nginx", "nginx", "Always")]), "Always")}},
        "status": {}});
    assert_eq!(defaulted("apps", "v1", "Deployment", sent), want);
}

#[test]
fn kubectl_run_pod_and_its_create_status() {
    let sent = json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"run": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "resources": {}}],
                 "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
        "status": {}});
    let mut pod = defaulted("", "v1", "Pod", sent);
    pod_status_on_create(&mut pod);
    let mut web = container("web", "nginx:1.25", "IfNotPresent");
    web["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    let mut spec = pod_spec_defaults(json!([web]), "Always");
    spec["enableServiceLinks"] = json!(true);
    assert_eq!(
        pod,
        json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default", "labels": {"run": "web"}, "creationTimestamp": null},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"}})
    );
}

#[test]
fn kubectl_create_job_gets_defaults_and_a_generated_selector() {
    let sent = json!({"kind": "Job", "apiVersion": "batch/v1",
        "metadata": {"name": "pi", "namespace": "default", "uid": "c0ffee"},
        "spec": {"template": {"metadata": {}, "spec": {
            "containers": [{"name": "pi", "image": "perl:5.34", "command": ["perl", "-e", "1"], "resources": {}}],
            "restartPolicy": "Never"}}},
        "status": {}});
    let mut job = defaulted("batch", "v1", "Job", sent);
    job_selector_on_create(&mut job);
    let labels = json!({"batch.kubernetes.io/controller-uid": "c0ffee", "batch.kubernetes.io/job-name": "pi",
                        "controller-uid": "c0ffee", "job-name": "pi"});
    let mut pi = container("pi", "perl:5.34", "IfNotPresent");
    pi["command"] = json!(["perl", "-e", "1"]);
    assert_eq!(
        job,
        json!({"kind": "Job", "apiVersion": "batch/v1",
            "metadata": {"name": "pi", "namespace": "default", "uid": "c0ffee", "labels": labels, "creationTimestamp": null},
            "spec": {"backoffLimit": 6, "completionMode": "NonIndexed", "completions": 1, "parallelism": 1,
                     "podReplacementPolicy": "TerminatingOrFailed",
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "c0ffee"}},
                     "suspend": false,
                     "template": {"metadata": {"labels": labels, "creationTimestamp": null},
                                  "spec": pod_spec_defaults(json!([pi]), "Never")}},
            "status": {}})
    );
    // A manual selector is left alone.
    let mut manual = json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true,
        "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}}}});
    let before = manual.clone();
    job_selector_on_create(&mut manual);
    assert_eq!(manual, before);
}

#[test]
fn job_defaults_follow_parallelism_and_failure_policy() {
    let job = defaulted(
        "batch",
        "v1",
        "Job",
        json!({"spec": {"completions": 5,
        "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
        "template": {"metadata": {"labels": {"app": "x"}}}}}),
    );
    assert_eq!(job["spec"]["completions"], 5);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(job["spec"]["podReplacementPolicy"], "Failed");
    assert_eq!(
        job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    assert_eq!(
        job["metadata"]["labels"],
        json!({"app": "x"}),
        "labels come from the template"
    );
    let indexed = defaulted(
        "batch",
        "v1",
        "Job",
        json!({"spec": {"backoffLimitPerIndex": 1, "template": {}}}),
    );
    assert_eq!(indexed["spec"]["backoffLimit"], i64::from(i32::MAX));
}

#[test]
fn kubectl_create_cronjob_defaults_its_job_template_pods_only() {
    let sent = json!({"kind": "CronJob", "apiVersion": "batch/v1",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"jobTemplate": {"metadata": {"name": "tick"}, "spec": {"template": {"metadata": {},
                     "spec": {"containers": [{"name": "tick", "image": "busybox", "resources": {}}], "restartPolicy": "OnFailure"}}}},
                 "schedule": "*/1 * * * *"},
        "status": {}});
    assert_eq!(
        defaulted("batch", "v1", "CronJob", sent),
        json!({"kind": "CronJob", "apiVersion": "batch/v1",
            "metadata": {"name": "tick", "namespace": "default", "creationTimestamp": null},
            "spec": {"concurrencyPolicy": "Allow", "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {"name": "tick", "creationTimestamp": null},
                                     "spec": {"template": {"metadata": {"creationTimestamp": null},
                         "spec": pod_spec_defaults(json!([container("tick", "busybox", "Always")]), "OnFailure")}}},
                     "schedule": "*/1 * * * *", "successfulJobsHistoryLimit": 3, "suspend": false},
            "status": {}})
    );
}

#[test]
fn statefulset_daemonset_replicaset_and_rc_defaults() {
    let sts = defaulted(
        "apps",
        "v1",
        "StatefulSet",
        json!({"spec": {"serviceName": "db",
        "template": {"spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}}]}}),
    );
    assert_eq!(
        sts["spec"],
        json!({"podManagementPolicy": "OrderedReady", "replicas": 1, "revisionHistoryLimit": 10, "serviceName": "db",
               "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
               "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
               "template": {"metadata": {"creationTimestamp": null},
                            "spec": pod_spec_defaults(json!([container("pg", "postgres:16", "IfNotPresent")]), "Always")},
               "volumeClaimTemplates": [{"metadata": {"name": "data", "creationTimestamp": null},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
                   "status": {"phase": "Pending"}}]})
    );
    let on_delete = defaulted(
        "apps",
        "v1",
        "StatefulSet",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    assert_eq!(
        on_delete["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );

    let ds = defaulted("apps", "v1", "DaemonSet", json!({"spec": {"template": {}}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

    let rs = defaulted("apps", "v1", "ReplicaSet", json!({"spec": {}}));
    assert_eq!(rs["spec"]["replicas"], 1);

    let rc = defaulted(
        "",
        "v1",
        "ReplicationController",
        json!({"metadata": {"name": "rc"},
        "spec": {"template": {"metadata": {"labels": {"app": "rc"}}}}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "rc"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "rc"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn probes_env_and_volumes_get_their_defaults() {
    let pod = defaulted(
        "",
        "v1",
        "Pod",
        json!({"spec": {
        "containers": [{"name": "c", "image": "app@sha256:0123",
            "livenessProbe": {"httpGet": {"port": 80}},
            "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 5},
            "lifecycle": {"postStart": {"httpGet": {"port": 80, "path": "/start"}}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}],
        "volumes": [
            {"name": "scratch"},
            {"name": "s", "secret": {"secretName": "s"}},
            {"name": "c", "configMap": {"name": "c", "defaultMode": 256}},
            {"name": "h", "hostPath": {"path": "/x"}},
            {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
        ]}}),
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        c["readinessProbe"],
        json!({"grpc": {"port": 9090, "service": ""}, "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        c["lifecycle"]["postStart"]["httpGet"],
        json!({"path": "/start", "port": 80, "scheme": "HTTP"})
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"],
        json!({"apiVersion": "v1", "fieldPath": "spec.nodeName"})
    );
    let v = &pod["spec"]["volumes"];
    assert_eq!(v[0], json!({"name": "scratch", "emptyDir": {}}));
    assert_eq!(
        v[1]["secret"],
        json!({"secretName": "s", "defaultMode": 420})
    );
    assert_eq!(v[2]["configMap"], json!({"name": "c", "defaultMode": 256}));
    assert_eq!(v[3]["hostPath"], json!({"path": "/x", "type": ""}));
    assert_eq!(
        v[4]["downwardAPI"],
        json!({"defaultMode": 420, "items": [{"path": "n", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]})
    );
    assert_eq!(
        v[5]["projected"],
        json!({"defaultMode": 420, "sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]})
    );
}

#[test]
fn pod_resources_requests_from_limits_canonical_and_qos() {
    let qos = |resources: Value| {
        let mut pod = defaulted(
            "",
            "v1",
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}}),
        );
        pod_status_on_create(&mut pod);
        pod
    };
    let guaranteed = qos(json!({"limits": {"cpu": "0.5", "memory": "1024Mi"}}));
    assert_eq!(
        guaranteed["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
    );
    assert_eq!(guaranteed["status"]["qosClass"], "Guaranteed");
    assert_eq!(
        qos(json!({"requests": {"cpu": "100m"}}))["status"]["qosClass"],
        "Burstable"
    );
    assert_eq!(
        qos(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "500m", "memory": "1Gi"}}))
            ["status"]["qosClass"],
        "Burstable"
    );
    assert_eq!(qos(json!({}))["status"]["qosClass"], "BestEffort");
    // Templates do not get requests from limits (only pods do).
    let dep = defaulted(
        "apps",
        "v1",
        "Deployment",
        json!({"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "0.1"}}}]}}}}),
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "100m"}})
    );
    assert!(dep["spec"]["template"]["spec"]
        .get("enableServiceLinks")
        .is_none());
}

#[test]
fn pod_create_status_with_scheduling_gates_and_affinity_keys() {
    let mut pod = defaulted(
        "",
        "v1",
        "Pod",
        json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
        "spec": {"schedulingGates": [{"name": "example.com/wait"}], "containers": [{"name": "c", "image": "x"}],
                 "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                     "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash"], "topologyKey": "kubernetes.io/hostname"}]}}},
        "status": {"phase": "Running"}}),
    );
    pod_status_on_create(&mut pod);
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [{"type": "PodScheduled", "status": "False",
               "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates",
               "lastProbeTime": null, "lastTransitionTime": null}]})
    );
    assert_eq!(
        pod["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"],
        json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "pod-template-hash", "operator": "In", "values": ["abc"]}]})
    );
}

#[test]
fn services_get_upstream_defaults() {
    let svc = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}], "selector": {"app": "web"}}}),
    );
    assert_eq!(
        svc["spec"],
        json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "protocol": "UDP", "targetPort": "https"}],
               "selector": {"app": "web"}, "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"})
    );
    let lb = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
    let ext = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(ext["spec"].get("internalTrafficPolicy").is_none());
    assert!(ext["spec"].get("externalTrafficPolicy").is_none());
}

#[test]
fn other_kinds() {
    let secret = defaulted(
        "",
        "v1",
        "Secret",
        json!({"stringData": {"password": "s3cret"}, "data": {"user": "YWRtaW4="}}),
    );
    assert_eq!(
        secret,
        json!({"type": "Opaque", "data": {"user": "YWRtaW4=", "password": "czNjcmV0"},
               "metadata": {"creationTimestamp": null}})
    );

    let ns = defaulted(
        "",
        "v1",
        "Namespace",
        json!({"metadata": {"name": "team-a"}}),
    );
    assert_eq!(
        ns,
        json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}, "creationTimestamp": null},
               "spec": {}, "status": {"phase": "Active"}})
    );

    let node = defaulted(
        "",
        "v1",
        "Node",
        json!({"status": {"capacity": {"cpu": "4"}}}),
    );
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));

    let pvc = defaulted(
        "",
        "v1",
        "PersistentVolumeClaim",
        json!({"spec": {"resources": {"requests": {"storage": "1.5Gi"}}}}),
    );
    assert_eq!(
        pvc["spec"],
        json!({"resources": {"requests": {"storage": "1536Mi"}}, "volumeMode": "Filesystem"})
    );
    assert_eq!(pvc["status"], json!({"phase": "Pending"}));

    let pv = defaulted(
        "",
        "v1",
        "PersistentVolume",
        json!({"spec": {"capacity": {"storage": "10Gi"}}}),
    );
    assert_eq!(
        pv["spec"],
        json!({"capacity": {"storage": "10Gi"}, "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"})
    );

    let hpa = defaulted(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        json!({"spec": {"maxReplicas": 5,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(
        hpa["spec"]["behavior"],
        json!({"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
               "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                   {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}})
    );

    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        json!({"roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default", "namespace": "x"}]}),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());

    let np = defaulted(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, want) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("nginx@sha256:abc", "IfNotPresent"),
        ("registry.example.com:5000/team/app", "Always"),
        ("registry.example.com:5000/team/app:v1", "IfNotPresent"),
        ("localhost/app:latest", "Always"),
        ("Nginx", "IfNotPresent"),
        ("", "IfNotPresent"),
    ] {
        assert_eq!(pull_policy_for(image), want, "{image}");
    }
}

#[test]
fn defaulting_twice_changes_nothing() {
    for (group, version, kind, obj) in [
        (
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "0.25"}}}]}}}}),
        ),
        (
            "",
            "v1",
            "Pod",
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}], "resources": {"limits": {"memory": "1e3"}}}]}}),
        ),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        ),
        (
            "batch",
            "v1",
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}}),
        ),
        ("", "v1", "Secret", json!({"stringData": {"a": "b"}})),
        (
            "",
            "v1",
            "LimitRange",
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
        ),
    ] {
        let once = defaulted(group, version, kind, obj);
        let twice = defaulted(group, version, kind, once.clone());
        assert_eq!(once, twice, "{kind}");
    }
    let lr = defaulted(
        "",
        "v1",
        "LimitRange",
        json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
    );
    assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "1Mi"})
    );
    let host = defaulted(
        "",
        "v1",
        "Pod",
        json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}]}}),
    );
    assert_eq!(
        host["spec"]["containers"][0]["ports"][0],
        json!({"containerPort": 80, "hostPort": 80, "protocol": "TCP"})
    );
}

/// What upstream's API returns for an object of each kind that sets nothing but its name:
/// Go's `encoding/json` of the Go struct, from `kubectl get -o json` on kube-apiserver 1.33.
/// (Defaulting aside: this is [`super::fill_go_fields`] alone.)
#[test]
fn every_kind_carries_the_fields_go_always_writes() {
    let template = json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}});
    let cases = [
        (
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"strategy": {}, "template": template}, "status": {}}),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            json!({"spec": {"template": template}, "status": {"replicas": 0}}),
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"serviceName": "", "template": template, "updateStrategy": {}},
                "status": {"availableReplicas": 0, "replicas": 0}}),
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            json!({"spec": {"template": template, "updateStrategy": {}},
                "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}}),
        ),
        (
            "apps",
            "v1",
            "ControllerRevision",
            json!({"data": null, "revision": 0}),
        ),
        (
            "batch",
            "v1",
            "Job",
            json!({"spec": {"template": template}, "status": {}}),
        ),
        (
            "batch",
            "v1",
            "CronJob",
            json!({"spec": {"jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": {"template": template}},
                         "schedule": ""}, "status": {}}),
        ),
        (
            "",
            "v1",
            "Pod",
            json!({"spec": {"containers": null}, "status": {}}),
        ),
        ("", "v1", "PodTemplate", json!({"template": template})),
        (
            "",
            "v1",
            "ReplicationController",
            json!({"spec": {}, "status": {"replicas": 0}}),
        ),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {}, "status": {"loadBalancer": {}}}),
        ),
        ("", "v1", "Namespace", json!({"spec": {}, "status": {}})),
        (
            "",
            "v1",
            "Node",
            json!({"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {"architecture": "", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
                             "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "operatingSystem": "",
                             "osImage": "", "systemUUID": ""}}}),
        ),
        (
            "",
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {"resources": {}}, "status": {}}),
        ),
        (
            "",
            "v1",
            "PersistentVolume",
            json!({"spec": {}, "status": {}}),
        ),
        ("", "v1", "ConfigMap", json!({})),
        ("", "v1", "Secret", json!({})),
        ("", "v1", "ServiceAccount", json!({})),
        ("", "v1", "Endpoints", json!({})),
        ("", "v1", "ResourceQuota", json!({"spec": {}, "status": {}})),
        ("", "v1", "LimitRange", json!({"spec": {"limits": null}})),
        (
            "",
            "v1",
            "Event",
            json!({"eventTime": null, "firstTimestamp": null, "lastTimestamp": null, "involvedObject": {},
                "reportingComponent": "", "reportingInstance": "", "source": {}}),
        ),
        (
            "events.k8s.io",
            "v1",
            "Event",
            json!({"deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null, "deprecatedSource": {},
                "eventTime": null, "regarding": {}}),
        ),
        ("coordination.k8s.io", "v1", "Lease", json!({"spec": {}})),
        (
            "policy",
            "v1",
            "PodDisruptionBudget",
            json!({"spec": {}, "status": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}}),
        ),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 0, "scaleTargetRef": {"kind": "", "name": ""}},
                "status": {"currentMetrics": null, "desiredReplicas": 0}}),
        ),
        (
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 0, "scaleTargetRef": {"kind": "", "name": ""}},
                "status": {"currentReplicas": 0, "desiredReplicas": 0}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "Ingress",
            json!({"spec": {}, "status": {"loadBalancer": {}}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}}}),
        ),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            json!({"addressType": "", "endpoints": null, "ports": null}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            json!({"rules": null}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            json!({"roleRef": {"apiGroup": "", "kind": "", "name": ""}}),
        ),
        (
            "storage.k8s.io",
            "v1",
            "StorageClass",
            json!({"provisioner": ""}),
        ),
        (
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            json!({"value": 0}),
        ),
        (
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            json!({"spec": {"request": "", "signerName": ""}, "status": {}}),
        ),
    ];
    for (group, version, kind, mut want) in cases {
        let meta = json!({"name": "x", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"});
        let mut obj = json!({"metadata": meta});
        super::fill_go_fields(group, version, kind, &mut obj);
        want["metadata"] = meta;
        assert_eq!(obj, want, "{kind} in {group}/{version}");
        super::fill_go_fields(group, version, kind, &mut obj);
        assert_eq!(obj, want, "{kind} in {group}/{version}, filled twice");
    }
}

#[test]
fn go_fields_fill_nested_structs_and_keep_what_is_set() {
    let mut pod = json!({"metadata": {"name": "p", "creationTimestamp": "t",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80}]}],
                 "initContainers": [{"name": "i", "image": "x", "resources": {"limits": {"cpu": "1"}}}],
                 "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t"}],
                   "containerStatuses": [{"name": "c", "ready": true, "state": {"running": {}}}]}});
    super::fill_go_fields("", "v1", "Pod", &mut pod);
    assert_eq!(pod["spec"]["containers"][0]["resources"], json!({}));
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0],
        json!({"containerPort": 80}),
        "omitempty stays unset"
    );
    assert_eq!(
        pod["spec"]["initContainers"][0]["resources"],
        json!({"limits": {"cpu": "1"}})
    );
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!({"nodeSelectorTerms": [{}]})
    );
    assert_eq!(
        pod["status"]["conditions"][0],
        json!({"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "t"})
    );
    assert_eq!(
        pod["status"]["containerStatuses"][0],
        json!({"name": "c", "ready": true, "restartCount": 0, "image": "", "imageID": "",
               "state": {"running": {"startedAt": null}}, "lastState": {}})
    );
    assert_eq!(
        pod["metadata"]["ownerReferences"][0],
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true})
    );

    // Null where Go writes a struct or a scalar is decoded as its zero value; null stays
    // null where that is what Go writes.
    let mut dep = json!({"metadata": {"name": "d", "creationTimestamp": "t"}, "spec": {"strategy": null,
        "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}}, "status": null});
    super::fill_go_fields("apps", "v1", "Deployment", &mut dep);
    assert_eq!(dep["spec"]["strategy"], json!({}));
    assert_eq!(dep["status"], json!({}));
    assert_eq!(
        dep["spec"]["template"],
        json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}})
    );

    // A kind without a table (a custom resource) is left alone.
    let mut cr = json!({"metadata": {"name": "c"}, "spec": {}});
    let before = cr.clone();
    super::fill_go_fields("example.com", "v1", "Widget", &mut cr);
    assert_eq!(cr, before);
}

#[test]
fn every_served_kind_has_its_go_fields() {
    for info in crate::registry::Registry::builtin().all() {
        assert!(
            super::go_fields::kind_fields(info.group, info.version, info.kind).is_some(),
            "{} {}/{} is served but not in struct_fields.rs: add its package to tools/gen_struct_fields.py",
            info.kind,
            info.group,
            info.version
        );
    }
}

/// The typed round trip every write goes through gives back a stored object unchanged: else
/// an update that changes nothing in the spec would read as a spec change (and bump the
/// generation), since k8s-openapi's types drop the `"creationTimestamp": null` and keep no
/// empty `status`.
#[test]
fn normalizing_a_stored_object_changes_nothing() {
    let registry = crate::registry::Registry::builtin();
    let objects = [
        (
            "apps",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        ),
        (
            "apps",
            "statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "pg"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "image": "nginx", "imageID": "", "ready": true, "restartCount": 0,
                                              "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}]}}),
        ),
        (
            "",
            "events",
            json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Scheduled"}),
        ),
    ];
    for (group, plural, obj) in objects {
        let info = registry
            .all()
            .iter()
            .find(|i| i.group == group && i.plural == plural)
            .expect("a served kind");
        // As the server stores it: normalized, then defaulted.
        let mut stored = (info.normalize)(&obj).expect("a valid object");
        apply(info.group, info.version, info.kind, &mut stored);
        let normalized = (info.normalize)(&stored).expect("a valid object");
        assert_eq!(normalized, stored, "{plural}");
    }
}

/// A kind read in another version than it is stored in has the fields that version's Go
/// struct writes, not the storage version's.
#[test]
fn converted_views_carry_their_versions_fields() {
    let registry = crate::registry::Registry::builtin();
    let info = |group: &str, version: &str, kind: &str| {
        registry
            .by_kind(group, version, kind)
            .expect("a served kind")
            .clone()
    };
    let hpa_v2 = info("autoscaling", "v2", "HorizontalPodAutoscaler");
    let mut stored = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}});
    apply("autoscaling", "v2", "HorizontalPodAutoscaler", &mut stored);
    assert_eq!(
        stored["status"],
        json!({"currentMetrics": null, "desiredReplicas": 0})
    );
    let v1 = crate::conversion::from_storage(
        &info("autoscaling", "v1", "HorizontalPodAutoscaler"),
        stored.clone(),
    )
    .expect("converts");
    assert_eq!(
        v1["status"],
        json!({"currentReplicas": 0, "desiredReplicas": 0})
    );
    assert_eq!(
        crate::conversion::from_storage(&hpa_v2, stored).expect("as stored")["status"],
        json!({"currentMetrics": null, "desiredReplicas": 0})
    );

    let mut event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Scheduled", "message": "assigned"});
    apply("", "v1", "Event", &mut event);
    let events = crate::conversion::from_storage(&info("events.k8s.io", "v1", "Event"), event)
        .expect("converts");
    assert_eq!(
        events,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "regarding": {"kind": "Pod", "name": "p"}, "reason": "Scheduled", "note": "assigned",
            "deprecatedSource": {}, "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null,
            "eventTime": null})
    );
}
