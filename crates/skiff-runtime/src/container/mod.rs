//! Containers: OCI bundles, the runtime driver, monitors and logs (see the crate docs).
