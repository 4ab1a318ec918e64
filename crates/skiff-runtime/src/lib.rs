//! skiff's container runtime, the layer containerd and runc play for upstream's kubelet.
//!
//! - [`image`]: image references, registry pull, tarball import, the content-addressed
//!   blob store, layers unpacked once into snapshots, overlayfs root filesystems.
//! - [`container`]: OCI bundles (config.json), the OCI runtime driver (runc by default),
//!   the per-container monitor process that outlives the kubelet, CRI-format logs.
//! - [`sandbox`]: pod sandboxes: pinned network/IPC/UTS namespaces, the pod network
//!   through CNI plugins, the pod's /etc/hosts, /etc/resolv.conf and /etc/hostname.
//!
//! - [`cri`]: the [`cri::PodRuntime`] trait the kubelet drives (CRI's runtime and image
//!   services as one trait).
//! - [`testing`]: [`testing::RecordingRuntime`], the in-memory double of that trait for
//!   the kubelet's unit tests.
//!
//! The kubelet hands this crate plain descriptions (what to run, with which limits); it
//! does not know Kubernetes API objects beyond that, and never the API server or store.

pub mod cgroups;
pub mod container;
pub mod cri;
pub mod exec;
pub mod image;
pub mod local;
pub mod sandbox;
pub mod testing;
