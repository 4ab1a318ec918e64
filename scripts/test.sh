#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine and runs all of it:
# formatting, lints, and every tier of tests (unit, integration, etcd, crash). CI runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/deps.sh
# protoc and its well-known types (libprotobuf-dev) build the etcd client's gRPC bindings; a real etcd serves the etcd backend's tests.
need_debian_packages protoc:protobuf-compiler /usr/include/google/protobuf/descriptor.proto:libprotobuf-dev "${SKIFF_ETCD_BIN:-/usr/bin/etcd}:etcd-server" python3:python3 openssl:openssl runc:runc crun:crun /bin/busybox:busybox-static umoci:umoci skopeo:skopeo docker-registry:docker-registry /usr/lib/cni/bridge:containernetworking-plugins nft:nftables dig:dnsutils

# Rust components (present with a rustup toolchain; added when missing).
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> cargo test"
cargo test --workspace --all-features
./scripts/fuzz.sh 15 # coverage-guided fuzz targets of fuzz/, 15 s each
