//! skiff's Kubernetes API logic, without I/O: the resource registry (which kinds exist, how
//! they are addressed), label and field selectors, and (later) defaulting, validation and
//! table columns. The API server calls into it; nothing here knows HTTP or storage.

pub mod registry;
pub mod selector;
pub mod table;
