//! skiff: a Kubernetes distribution in one binary. The binary (`main.rs`) parses the command
//! line; this library wires the crates together, so tests can start a server in-process.

pub mod agent;
pub mod components;
pub mod join;
pub mod leader;
pub mod node_agent;
pub mod pki;
pub mod reset;
pub mod server;
