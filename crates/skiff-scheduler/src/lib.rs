//! skiff's scheduler: upstream kube-scheduler's framework (plugin traits per extension
//! point), node/pod snapshot, default filter and score plugins and the pure scheduling cycle,
//! as a client of the Kubernetes API only. The queue and the binding loop are being written.

// `ScheduleError::Fit` carries the cycle's whole diagnosis for preemption; it is built only
// when a pod fits nowhere, where its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]
pub mod framework;
pub mod plugins;
pub mod resources;
pub mod schedule_one;
pub mod types;
