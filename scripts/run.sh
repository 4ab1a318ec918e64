#!/usr/bin/env bash
# Builds skiff, starts a single-node cluster in the foreground and creates the demo workload
# (deploy/demo.yaml). Ctrl-C stops it; the state stays in the data dir for the next start.
#   SKIFF_DATA_DIR  where the cluster keeps its state (default /var/lib/skiff)
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/deps.sh
# protoc and its well-known types (libprotobuf-dev) build the etcd client's gRPC bindings.
need_debian_packages protoc:protobuf-compiler /usr/include/google/protobuf/descriptor.proto:libprotobuf-dev

echo "==> building skiff (release)"
cargo build --release -p skiff
bin="${CARGO_TARGET_DIR:-target}/release/skiff"
data_dir="${SKIFF_DATA_DIR:-/var/lib/skiff}"
export KUBECONFIG="$data_dir/kubeconfig.yaml"

# One simulated node (sim-0) until the kubelet runs real containers: the scheduler places
# the demo's pods on it and it reports them Running, without running anything.
"$bin" server --data-dir "$data_dir" --simulated-nodes 1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 300); do
  if [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; then break; fi
  kill -0 $pid 2>/dev/null || { echo "skiff server exited; see the messages above" >&2; exit 1; }
  sleep 0.1
done

echo "==> creating the demo workload (deploy/demo.yaml)"
kubectl get -f deploy/demo.yaml >/dev/null 2>&1 || kubectl create -f deploy/demo.yaml
kubectl rollout status -n demo deployment/hello --timeout=60s || true
kubectl get all -n demo -o wide || true
cat <<MSG

skiff is running. In another shell:
  export KUBECONFIG=$KUBECONFIG
  kubectl get all -A
The demo's pods are scheduled onto sim-0, a SIMULATED node: it reports them Running with
an address from its pod range, but no container runs yet (real containers come with the
node agent). Ctrl-C stops the cluster.
MSG
wait $pid
