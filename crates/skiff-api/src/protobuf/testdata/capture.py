#!/usr/bin/env python3
"""Re-capture the kubectl protobuf fixtures in this directory (standard library only).

    python3 crates/skiff-api/src/protobuf/testdata/capture.py [--kubectl /usr/bin/kubectl]

Starts a throwaway HTTP server on 127.0.0.1 that answers discovery minimally and saves every
POST body; runs each `kubectl create ...` in CASES against it (`<name>.pb`, the protobuf body),
then the same command with `--dry-run=client -o json` (`<name>.json`, the Go JSON encoding of the
same object, keys sorted). Must match KUBECTL_CASES in ../tests.rs. (`kubectl run` is not here: it
sends JSON.)
"""

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = [
    ("configmap", ["create", "configmap", "cm1", "--from-literal=a=b", "--from-literal=empty=", "--from-file=bin.dat"]),
    ("secret", ["create", "secret", "generic", "s1", "--from-literal=password=hunter2", "--type=Opaque"]),
    ("deployment", ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80"]),
    ("deployment_zero", ["create", "deployment", "zero", "--image=busybox", "--replicas=0", "--", "sleep", "3600"]),
    ("service", ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:https"]),
    ("service_headless", ["create", "service", "clusterip", "headless", "--clusterip=None"]),
    ("service_nodeport", ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"]),
    ("namespace", ["create", "namespace", "ns1"]),
    ("serviceaccount", ["create", "serviceaccount", "sa1"]),
    ("job", ["create", "job", "j1", "--image=busybox", "--", "echo", "hi"]),
    ("cronjob", ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"]),
    ("quota", ["create", "quota", "q", "--hard=cpu=1,memory=1Gi,pods=10", "--scopes=BestEffort"]),
    ("role", ["create", "role", "r", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=foo"]),
    ("rolebinding", ["create", "rolebinding", "rb", "--clusterrole=view", "--user=alice",
                     "--serviceaccount=default:sa1", "--group=devs"]),
    ("clusterrole", ["create", "clusterrole", "cr", "--verb=get", "--non-resource-url=/healthz"]),
    ("clusterrole_agg", ["create", "clusterrole", "agg",
                         "--aggregation-rule=rbac.example.com/aggregate-to-monitoring=true"]),
    ("clusterrolebinding", ["create", "clusterrolebinding", "crb", "--clusterrole=cluster-admin", "--user=bob"]),
    ("priorityclass", ["create", "priorityclass", "pc", "--value=0", "--description=d", "--preemption-policy=Never"]),
    ("pdb", ["create", "pdb", "pdb", "--selector=app=web", "--min-available=50%"]),
    ("pdb_max", ["create", "pdb", "pdb2", "--selector=app=web", "--max-unavailable=1"]),
    ("ingress", ["create", "ingress", "ing", "--class=nginx", "--rule=foo.com/bar=svc1:8080",
                 "--rule=bar.com/*=svc2:http,tls=my-cert"]),
    ("secret_docker", ["create", "secret", "docker-registry", "reg", "--docker-server=r.example.com",
                       "--docker-username=u", "--docker-password=p"]),
    ("service_externalname", ["create", "service", "externalname", "ext", "--external-name=db.example.com"]),
    ("service_loadbalancer", ["create", "service", "loadbalancer", "lb", "--tcp=5678:8080"]),
    # No dry-run for these: expected JSON is in the test.
    ("token", ["create", "token", "sa1", "--duration=10m", "--audience=api"]),
    ("token_plain", ["create", "token", "sa1"]),
]

DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
        "name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "create"]}]},
    "/apis/apps/v1": {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
        {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
         "verbs": ["get", "create"]}]},
}

# Resource (last path segment of the POST) -> (apiVersion, kind) of the reply.
KINDS = {
    "configmaps": ("v1", "ConfigMap"), "secrets": ("v1", "Secret"), "services": ("v1", "Service"),
    "namespaces": ("v1", "Namespace"), "serviceaccounts": ("v1", "ServiceAccount"),
    "resourcequotas": ("v1", "ResourceQuota"), "deployments": ("apps/v1", "Deployment"),
    "jobs": ("batch/v1", "Job"), "cronjobs": ("batch/v1", "CronJob"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    "clusterroles": ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    "clusterrolebindings": ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    "priorityclasses": ("scheduling.k8s.io/v1", "PriorityClass"),
    "poddisruptionbudgets": ("policy/v1", "PodDisruptionBudget"),
    "ingresses": ("networking.k8s.io/v1", "Ingress"),
    "token": ("authentication.k8s.io/v1", "TokenRequest"),
}

captured = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in DISCOVERY:
            return self.reply(200, DISCOVERY[path])
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        captured.append((self.headers.get("Content-Type"), body))
        # Enough of a response for kubectl to print "created".
        api_version, kind = KINDS[self.path.split("?")[0].rstrip("/").split("/")[-1]]
        obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "default"}}
        if kind == "TokenRequest":
            obj["status"] = {"token": "tok", "expirationTimestamp": "2030-01-01T00:00:00Z"}
        self.reply(201, obj)


def with_flags(cmd, flags):
    """cmd with flags added before a `--` (the container command), if any."""
    i = cmd.index("--") if "--" in cmd else len(cmd)
    return cmd[:i] + flags + cmd[i:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", default="/usr/bin/kubectl")
    args = ap.parse_args()
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "bin.dat"), "wb") as f:
            f.write(b"\x00\xff\x01hello")
        env = dict(os.environ, KUBECONFIG=os.path.join(tmp, "kubeconfig"), HOME=tmp)
        for name, cmd in CASES:
            validate = [] if cmd[1] == "token" else ["--validate=false"]
            base = [args.kubectl, f"--server={url}"]
            captured.clear()
            subprocess.run(base + with_flags(cmd, validate), cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL)
            if len(captured) != 1 or captured[0][0] != "application/vnd.kubernetes.protobuf":
                sys.exit(f"{name}: expected one protobuf POST, got {[c[0] for c in captured]}")
            with open(os.path.join(HERE, name + ".pb"), "wb") as f:
                f.write(captured[0][1])
            if cmd[1] == "token":
                continue
            dry = ["--dry-run=client", "-o", "json"]
            out = subprocess.run(base + with_flags(cmd, dry), cwd=tmp, env=env, check=True, capture_output=True).stdout
            with open(os.path.join(HERE, name + ".json"), "w") as f:
                f.write(json.dumps(json.loads(out), indent=2, sort_keys=True) + "\n")
            print(f"captured {name}")
    server.shutdown()


if __name__ == "__main__":
    main()
