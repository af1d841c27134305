//! Locking shared by every simulator.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering from poisoning: a panicking test thread must not wedge the server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
