//! One lock per key (an image tag): concurrent workers that want the same image build it
//! once; different images build in parallel.
use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub(crate) struct KeyedLock {
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl KeyedLock {
    /// Wait for `key`'s lock; held until the guard drops.
    pub(crate) async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .await
            .entry(key.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }
}
