//! Upstream defaulting (being written).
