//! Server-side apply and `metadata.managedFields`, as upstream: structured-merge-diff v4
//! (`fieldpath`, `typed`, `merge`) and the API server's field manager
//! (`k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager`).
//!
//! - [`schema`]: how each node of a built-in kind merges (struct, granular or atomic map,
//!   atomic, set or map list), from k8s-openapi's schemas and the generated
//!   [`schema_table`](self) (`tools/gen_apply_schema.py`).
//! - [`fieldpath`]: paths, sets of them, their `FieldsV1` encoding.
//! - [`typed`]: field sets of objects, comparison, merge, removal.
//! - [`managed`]: the managed-fields bookkeeping of every write, apply with conflicts.
//!
//! Pure: objects in, objects out. Deciding the manager name from a request, answering a
//! conflict as a 409 Status and storing the result are the API server's.

pub mod fieldpath;
pub mod managed;
pub mod schema;
mod schema_table;
pub mod typed;

#[cfg(test)]
mod tests;

pub use fieldpath::{Path, PathElement, Set};
pub use managed::{
    apply, identity_of, manager_name, record_update, update, Applied, ApplyError, Conflict,
    Conflicts, ManagedFields, ManagerId, Operation, Write,
};
pub use schema::Ty;

/// What is wrong with an object or with managed fields.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The object does not fit its schema's merge rules (a list-map item without its key).
    #[error("{0}")]
    Invalid(String),
    /// A `fieldsV1` value that is not a field set.
    #[error("invalid fieldsV1: {0}")]
    FieldsV1(String),
    /// A `metadata.managedFields` that cannot be read.
    #[error("invalid managedFields: {0}")]
    ManagedFields(String),
    /// An apply configuration that sets managed fields itself.
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
