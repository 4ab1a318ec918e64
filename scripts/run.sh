#!/usr/bin/env bash
# Sets up what skiff needs on a fresh Debian machine, builds skiff, starts a single-node
# cluster in the foreground (this machine is its node: pods run in real containers) and
# creates the demo workload (examples/demo.yaml). Ctrl-C stops the cluster; the demo's
# containers keep running until their pods are deleted, and the state stays in the data dir
# for the next start.
#   SKIFF_DATA_DIR  where the cluster keeps its state (default /var/lib/skiff)
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/deps.sh
# protoc and its well-known types build the etcd client's gRPC bindings; runc runs the
# containers, the CNI plugins give pods their network; busybox-static, umoci and skopeo
# build the demo image locally (there is no internet to pull one from).
need_debian_packages protoc:protobuf-compiler /usr/include/google/protobuf/descriptor.proto:libprotobuf-dev \
  runc:runc /usr/lib/cni/bridge:containernetworking-plugins /bin/busybox:busybox-static umoci:umoci skopeo:skopeo
if [ "$(id -u)" -ne 0 ]; then
  echo "skiff's node runs containers and needs root: run this as root (sudo $0)" >&2
  exit 1
fi

echo "==> building skiff (release)"
cargo build --release -p skiff
bin="${CARGO_TARGET_DIR:-target}/release/skiff"
data_dir="${SKIFF_DATA_DIR:-/var/lib/skiff}"
export KUBECONFIG="$data_dir/kubeconfig.yaml"

echo "==> building the demo image (docker.io/skiff/demo-web:v1) from busybox-static"
mkdir -p "$data_dir/agent/images"
# Tarballs in <data-dir>/agent/images are imported when the node starts (air-gap import).
scripts/demo-image.sh "$data_dir/agent/images/demo-web.tar"

"$bin" server --data-dir "$data_dir" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 300); do
  if [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; then break; fi
  kill -0 $pid 2>/dev/null || { echo "skiff server exited; see the messages above" >&2; exit 1; }
  sleep 0.1
done

echo "==> creating the demo workload (examples/demo.yaml)"
kubectl apply -f examples/demo.yaml
kubectl rollout status -n demo deployment/hello --timeout=120s || true
kubectl get pods -n demo -o wide || true
pod=$(kubectl get pods -n demo -l app=hello -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
ip=$(kubectl get pods -n demo -l app=hello -o jsonpath='{.items[0].status.podIP}' 2>/dev/null || true)
if [ -n "$ip" ]; then
  echo "==> the demo answers on its pod IP:"
  curl -s -m 5 "http://$ip:8080/" || true
fi
cat <<MSG

skiff is running; this machine is its node and the demo's pods are real containers.
In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl get pods -n demo -o wide
  curl http://${ip:-<pod IP>}:8080/
  kubectl logs -n demo ${pod:-<pod>}
  kubectl exec -n demo ${pod:-<pod>} -- ls /www
  kubectl port-forward -n demo pod/${pod:-<pod>} 8080:8080   # then curl http://127.0.0.1:8080/
Ctrl-C stops the cluster (the containers keep running, as upstream's kubelet leaves them).
MSG
wait $pid
