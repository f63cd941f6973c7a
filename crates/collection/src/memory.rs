//! Handing freed memory back to the system when a thread goes idle.
//!
//! The allocator is the binary's choice (the server uses mimalloc), and what returns its free
//! pages differs per allocator, so the binary registers it here. Freed memory stays with the
//! heap of the thread that allocated it: a shard's update worker allocates the appendable
//! segment (payloads, its payload indexes' chunks) and the optimizer frees much of it when it
//! seals the segment. Measured in docs/benchmarks.md: without a release when the writer goes
//! idle, a 100k load kept about 175 MiB of freed memory resident.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Register how the process's allocator returns free memory (once; later calls are ignored).
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Return the calling thread's free memory to the system, if the binary said how; glibc's
/// arenas are trimmed too (RocksDB's C++ allocations stay on glibc's malloc).
pub(crate) fn release_free() {
    if let Some(release) = RELEASE.get() {
        release();
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
