//! The shared conformance suite against the embedded backend.

use std::sync::Arc;

use skiff_store::conformance::TestStore;
use skiff_store::{EmbeddedConfig, EmbeddedStore};

async fn embedded() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmbeddedConfig::new(dir.path());
    // Compaction in these tests is explicit.
    config.compaction_interval = None;
    let store = EmbeddedStore::open(config).expect("open embedded store");
    TestStore {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
}

skiff_store::conformance_tests!(embedded);
