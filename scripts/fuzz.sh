#!/usr/bin/env bash
# Builds the coverage-guided fuzz targets of fuzz/ (libFuzzer, through the libfuzzer-sys
# crate) with the stable toolchain and runs each for a bounded time against a scratch copy of
# its seed corpus. Exits non-zero on any crash, timeout or out-of-memory, printing the input
# that caused it and the command that reproduces it. test.sh (so CI) runs it after cargo test.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 20 s, every target)
#
# Stable rustc has no -Zsanitizer, but LLVM's SanitizerCoverage pass is reachable through
# -Cpasses and -Cllvm-args: that is all libFuzzer needs to be guided by coverage (there is no
# AddressSanitizer, which safe Rust does without). The build goes to its own target directory,
# so these flags never mix with normal builds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

. scripts/deps.sh
# g++ builds libFuzzer itself (libfuzzer-sys compiles its C++ with the cc crate); protoc and
# the well-known types build the etcd client's gRPC bindings that skiff-apiserver links.
need_debian_packages g++:g++ protoc:protobuf-compiler /usr/include/google/protobuf/descriptor.proto:libprotobuf-dev

seconds=${1:-20}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

host=$(rustc -vV | sed -n 's/^host: //p')
target_dir="${CARGO_TARGET_DIR:-/var/tmp/skiff-target}/fuzz"
# What cargo-fuzz passes, minus the nightly-only -Zsanitizer: 8-bit edge counters and the PC
# table (libFuzzer's coverage, `cov:`/`ft:`), comparison tracing (how it learns magic bytes
# and keywords), `cfg(fuzzing)`, debug assertions and overflow checks.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

echo "==> building fuzz targets into $target_dir"
# --target: RUSTFLAGS then apply to the fuzzed code only, not to build scripts and proc
# macros (which would not link against the coverage callbacks). Not --locked: fuzz/Cargo.lock
# pins what it holds, and a dependency the crates gain later is added to it, not refused.
cargo build --manifest-path fuzz/Cargo.toml --release \
  --target "$host" --target-dir "$target_dir" --bins
bin_dir="$target_dir/$host/release"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  bin="$bin_dir/$t"
  if [ ! -x "$bin" ]; then
    echo "no fuzz target $t (targets: fuzz/fuzz_targets/*.rs)" >&2
    exit 2
  fi
  corpus="$scratch/$t"
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$t" ]; then cp -R "fuzz/corpus/$t/." "$corpus/"; fi
  artifacts="$root/fuzz/artifacts/$t"
  mkdir -p "$artifacts"
  log="$scratch/$t.log"
  echo "==> fuzzing $t for ${seconds}s ($(find "$corpus" -type f | wc -l) seeds)"
  status=0
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -dict=fuzz/fuzz.dict -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus" >"$log" 2>&1 || status=$?
  # The last status line (`#runs DONE cov: .. ft: .. corp: .. exec/s: ..`) and the totals.
  grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "!!! $t failed (libFuzzer exit $status); the end of its log:"
    tail -n 60 "$log"
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [ -n "$artifact" ]; then
      echo "!!! the input: $artifact"
      echo "!!! reproduce: scripts/fuzz.sh builds, then: RUST_BACKTRACE=1 $bin $artifact"
    fi
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found failures in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no failure"
