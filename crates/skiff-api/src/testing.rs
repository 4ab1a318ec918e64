//! Helpers for tests (this crate's, and other crates' with the `testing` feature).

use rand::{Rng as _, SeedableRng};

/// The random source of the bounded random-input tests: seeded, so a failure reproduces.
pub struct Rng(rand::rngs::StdRng);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(rand::rngs::StdRng::seed_from_u64(seed))
    }

    pub fn word(&mut self) -> u64 {
        self.0.random()
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }
}
