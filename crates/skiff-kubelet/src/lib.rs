//! skiff's node agent. For now it holds [`sim`]: simulated nodes (as kwok simulates them)
//! that register, keep their Leases and report every pod bound to them as a kubelet would,
//! without running anything. The real kubelet (pod workers, the runtime, probes, volumes)
//! comes here later. [`pods`] is the real kubelet's pure core: a pod spec turned into the
//! runtime's container descriptions (env, user, security, cgroups), and observed container
//! states turned back into the pod's status, with the restart and back-off decisions.
//!
//! **Architecture invariant:** this crate talks to the cluster only through the Kubernetes
//! API (kube-rs); it never depends on `skiff-store` or `skiff-apiserver`.

pub mod kubelet;
pub mod node;
pub mod pods;
pub mod server;
pub mod probes;
pub mod sim;
pub mod volumes;
