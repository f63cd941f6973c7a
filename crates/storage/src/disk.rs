//! Free space on the filesystem that holds the data, read before writes so a nearly full disk
//! refuses new data cleanly instead of failing half-way inside a backend.

use std::path::Path;

/// Free space kept in reserve: writes are refused below it (Qdrant's "No space left on
/// device"), so a nearly full disk never fails a commit half-way inside a backend. Enough for
/// a large batch plus a RocksDB memtable flush or a SQLite checkpoint.
pub const MIN_FREE_DISK_BYTES: u64 = 32 << 20;

/// Free bytes on the filesystem of `path` or, when it does not exist yet, of its nearest
/// existing ancestor.
pub fn free_bytes_near(path: &Path) -> Option<u64> {
    path.ancestors().find_map(free_bytes)
}

/// Bytes available to this process on the filesystem holding `path` (None if it cannot be
/// read, e.g. the path does not exist yet).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a pointer to writable memory of the right size.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_existing_paths_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert_eq!(free_bytes(&dir.path().join("missing")), None);
        assert!(free_bytes_near(&dir.path().join("missing/deeper")).is_some_and(|b| b > 0));
    }
}
