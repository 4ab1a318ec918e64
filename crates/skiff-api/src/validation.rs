//! Upstream validation (being written).
