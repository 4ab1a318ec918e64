//! skiff's node agent: the real kubelet and the simulated nodes.
//!
//! - [`kubelet`]: the pod manager and pod workers that run the node's pods on the
//!   [`PodRuntime`](skiff_runtime::cri::PodRuntime).
//! - [`pods`]: the pure core (a pod spec turned into container descriptions, observed
//!   container states turned back into the pod's status, restart and back-off decisions).
//! - [`node`]: the node's registration, status, Lease, image GC and air-gap import.
//! - [`volumes`], [`probes`]: the volume manager; probes and lifecycle hooks.
//! - [`podnet`]: the pod network across nodes (routes to other nodes' pod ranges, the
//!   masquerade of pod traffic leaving the cluster network).
//! - [`server`]: the kubelet's HTTPS server on 10250 (logs, exec, attach).
//! - [`sim`]: simulated nodes (as kwok simulates them) that register, keep their Leases and
//!   report every pod bound to them as a kubelet would, without running anything.
//!
//! **Architecture invariant:** this crate talks to the cluster only through the Kubernetes
//! API (kube-rs); it never depends on `skiff-store` or `skiff-apiserver`.

pub mod kubelet;
pub mod node;
pub mod podnet;
pub mod pods;
pub mod probes;
pub mod server;
pub mod sim;
pub mod volumes;
