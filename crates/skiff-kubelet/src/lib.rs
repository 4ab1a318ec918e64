//! skiff's node agent. For now it holds [`sim`]: simulated nodes (as kwok simulates them)
//! that register, keep their Leases and report every pod bound to them as a kubelet would,
//! without running anything. The real kubelet (pod workers, the runtime, probes, volumes)
//! comes here later.
//!
//! **Architecture invariant:** this crate talks to the cluster only through the Kubernetes
//! API (kube-rs); it never depends on `skiff-store` or `skiff-apiserver`.

pub mod sim;
