//! Containers: OCI bundles, the runtime driver, monitors and logs (see the crate docs).
//!
//! - [`spec`]: the container description the kubelet hands over and its config.json.
//! - [`runtime`]: the OCI runtime CLI (runc by default, crun or any compatible binary).
//! - [`monitor`]: the per-container monitor process (conmon's role) and its library side.
//! - [`logs`]: reading CRI-format log files (tail, since, follow).

pub mod logs;
pub mod monitor;
pub mod runtime;
pub mod spec;
