//! Images: the half of the runtime that containerd's image service, content store and
//! overlayfs snapshotter play for upstream's kubelet.
//!
//! - [`reference`]: image names normalised as Docker does (`nginx` is
//!   `docker.io/library/nginx:latest`), on `oci-client`'s parser.
//! - [`store`]: the content-addressed blob store (`blobs/sha256/<hex>`, digest-verified
//!   while streaming, fsynced, renamed into place) and the image records (names, manifest,
//!   config, layers, diff IDs, size, pinned, last used) in one atomically written index.
//! - [`unpack`] and [`snapshot`]: each layer unpacked once into `snapshots/<chainID>/fs`
//!   with whiteouts turned into overlay whiteouts, and a container's rootfs as an overlay
//!   mount over its image's snapshots.
//! - [`import`]: OCI image-layout and `docker save` archives (gzip or not), and the
//!   air-gap directory `<data-dir>/agent/images/`.
//! - [`pull`]: registry pull with `oci-client`, multi-arch indexes, dockerconfigjson
//!   credentials and a k3s-format `registries.yaml` (mirrors, auth, TLS, plain HTTP).
//!
//! This module decides nothing about when to pull or collect images: `imagePullPolicy`,
//! image GC thresholds and `status.images` are the kubelet's; it offers the operations.

pub mod import;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod snapshot;
pub mod store;
pub mod unpack;

use std::path::{Path, PathBuf};

pub use import::{import_archive, import_dir};
pub use pull::{pull, DockerConfigJson, PullOptions, RegistriesConfig};
pub use reference::{normalize, parse_reference};
pub use snapshot::{remove_rootfs, unmount_rootfs, Snapshots};
pub use store::{ImageRecord, Store};

/// The node's image store under a data dir: `<data-dir>/agent/images-store`.
pub fn store_root(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("images-store")
}

/// The air-gap directory whose tarballs are imported at start: `<data-dir>/agent/images`.
pub fn airgap_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("images")
}

/// The node's registries file (k3s's format): `<data-dir>/agent/registries.yaml`.
pub fn registries_file(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("registries.yaml")
}

/// What can go wrong with images. The pull variants ([`Error::NotFound`],
/// [`Error::Unauthorized`], [`Error::Unreachable`]) are kept apart because the kubelet's
/// `ErrImagePull` messages and retry decisions depend on which one it was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("invalid image archive {}: {reason}", path.display())]
    InvalidArchive { path: PathBuf, reason: String },
    #[error("invalid image content: {0}")]
    InvalidImage(String),
    #[error("layer entry {path:?} is unsafe: {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to resolve reference {reference:?}: {reference}: not found")]
    NotFound { reference: String, detail: String },
    #[error(
        "failed to resolve reference {reference:?}: pull access denied, repository does not exist or may require authorization: {detail}"
    )]
    Unauthorized { reference: String, detail: String },
    #[error("failed to do request for {reference:?}: registry unreachable: {detail}")]
    Unreachable { reference: String, detail: String },
    #[error("failed to pull {reference:?}: {detail}")]
    Registry { reference: String, detail: String },
    #[error("invalid registries file {}: {reason}", path.display())]
    RegistriesConfig { path: PathBuf, reason: String },
    #[error("invalid docker config json: {0}")]
    DockerConfig(String),
    #[error("mount {}: {source}", target.display())]
    Mount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an io error with the path it concerns (the messages users see name the file).
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
