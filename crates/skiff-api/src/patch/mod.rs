//! Patching: the per-field patch metadata (strategies and merge keys) the OpenAPI documents
//! publish. Upstream counterpart: the `patchStrategy`/`patchMergeKey` tags of `k8s.io/api`.

pub mod meta;
