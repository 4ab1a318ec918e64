//! Server-side Table columns (being written).
