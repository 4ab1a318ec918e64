//! Patching: the strategic merge patch engine (`application/strategic-merge-patch+json`, what
//! `kubectl apply`, `set image`, `rollout restart` and `patch` send), the per-field patch
//! metadata it and the OpenAPI documents share, and the schema walk that tells the engine which
//! field it is in. Upstream counterpart: `k8s.io/apimachinery/pkg/util/strategicpatch`
//! (`patch.go`, `meta.go`) and the `patchStrategy`/`patchMergeKey` tags of `k8s.io/api`.
//!
//! Pure functions over `serde_json::Value`: no HTTP, no storage. JSON patch (RFC 6902) and
//! JSON merge patch (RFC 7386) are the `json-patch` crate's (the engine falls back to the
//! latter where no schema is known). Server-side apply is not here.

pub mod meta;
pub mod schema;
pub mod strategic;

pub use schema::{Schema, Schemas};
pub use strategic::{apply_strategic_merge_patch, SmpError};
