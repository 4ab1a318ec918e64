//! (being written)
pub mod framework;
pub mod plugins;
pub mod resources;
pub mod schedule_one;
pub mod types;
