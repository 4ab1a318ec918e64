//! Images: references, pull, import, content store, snapshots (see the crate docs).
