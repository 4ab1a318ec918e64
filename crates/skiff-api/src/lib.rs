//! skiff's Kubernetes API logic, without I/O: the resource registry (which kinds exist, how
//! they are addressed), conversion between served and stored versions, label and field
//! selectors, defaulting, validation and table columns. The API server calls into it; nothing here knows HTTP or storage.

// `ApiError` carries upstream's whole `Status` (details, causes); it is built only on the
// error path, where its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod conversion;
pub mod defaults;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quota;
pub mod registry;
pub mod selector;
pub mod status;
pub mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validation;

/// The Kubernetes version skiff serves (`/version`'s `gitVersion`), also the kubelet's
/// `nodeInfo.kubeletVersion`.
pub const GIT_VERSION: &str = "v1.33.0+skiff";
