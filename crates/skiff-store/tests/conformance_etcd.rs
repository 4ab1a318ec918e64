//! The shared conformance suite against the etcd backend, each case on its own real etcd
//! (`/usr/bin/etcd`, from Debian's etcd-server) on random loopback ports.

use std::sync::Arc;

use skiff_store::conformance::TestStore;
use skiff_store::testing::EtcdProcess;

async fn etcd() -> TestStore {
    let etcd = EtcdProcess::start().await.expect("start etcd");
    let store = etcd.store("/registry").await.expect("connect");
    TestStore {
        store: Arc::new(store),
        guard: Box::new(etcd),
    }
}

skiff_store::conformance_tests!(etcd);
