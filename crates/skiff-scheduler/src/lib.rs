//! skiff's scheduler: upstream kube-scheduler's framework (plugin traits per extension
//! point), node/pod snapshot, default filter and score plugins and the pure scheduling cycle,
//! as a client of the Kubernetes API only: the cache and the queue, and the loop that binds
//! pods through the API ([`scheduler::run`]).

// `ScheduleError::Fit` carries the cycle's whole diagnosis for preemption; it is built only
// when a pod fits nowhere, where its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]
pub mod cache;
pub mod framework;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod schedule_one;
pub mod scheduler;
pub mod types;
pub mod workloads;
pub mod zone_counts;

pub use scheduler::{run, Config, Error};
