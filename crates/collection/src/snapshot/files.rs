//! Snapshot files on disk: `<snapshots_path>/<collection>/<name>.snapshot` for collections,
//! `<snapshots_path>/<name>.snapshot` for full-storage snapshots, each with a
//! `<name>.snapshot.checksum` file holding its sha256 (hex), as Qdrant does.
//!
//! A snapshot is written as `<name>.snapshot.partial`, synced, then renamed: listings never
//! show a half-written file, and a failed creation removes its partial file.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::format::invalid;
use crate::error::{CollectionError, Result};
use qd_storage::StorageError;

pub const SNAPSHOT_EXT: &str = ".snapshot";
const CHECKSUM_EXT: &str = ".checksum";
const PARTIAL_EXT: &str = ".partial";

/// Qdrant's `SnapshotDescription`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SnapshotDescription {
    pub name: String,
    pub creation_time: Option<String>,
    pub size: u64,
    pub checksum: Option<String>,
}

/// The snapshots directory of a server (or of the offline CLI).
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    root: PathBuf,
}

fn io_err(path: &Path, e: std::io::Error) -> CollectionError {
    CollectionError::Storage(StorageError::io(path, e))
}

/// A file name that stays inside its directory.
fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.starts_with('.')
        || name.len() > 255
    {
        return Err(CollectionError::BadRequest(format!("invalid snapshot name {name:?}")));
    }
    Ok(())
}

impl SnapshotDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SnapshotDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Remove the `.partial` files of snapshots whose writer was killed (at start-up, when no
    /// snapshot can be in progress); they are never listed, so nothing else would remove them.
    /// Returns how many were removed.
    pub fn remove_partials(&self) -> usize {
        // The root (full snapshots), each collection's directory and its shards/<id> directories.
        let mut dirs = vec![self.root.clone()];
        let mut removed = 0;
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() && path.strip_prefix(&self.root).map_or(0, |p| p.components().count()) <= 3 {
                    dirs.push(path);
                } else if kind.is_file() && path.to_string_lossy().ends_with(PARTIAL_EXT) {
                    match fs::remove_file(&path) {
                        Ok(()) => removed += 1,
                        Err(e) => tracing::warn!(path = %path.display(), error = %e, "stale partial snapshot kept"),
                    }
                }
            }
        }
        removed
    }

    /// Directory of one collection's snapshots.
    pub fn collection_dir(&self, collection: &str) -> Result<PathBuf> {
        if collection.is_empty() || collection == "." || collection == ".." || collection.contains(['/', '\\', '\0']) {
            return Err(CollectionError::BadRequest(format!(
                "collection name {collection:?} cannot be used as a snapshot directory"
            )));
        }
        Ok(self.root.join(collection))
    }

    /// Where snapshots of one shard of `collection` are filed.
    pub fn shard_dir(&self, collection: &str, shard_id: u32) -> Result<PathBuf> {
        Ok(self.collection_dir(collection)?.join("shards").join(shard_id.to_string()))
    }

    /// Snapshots in `dir` (the root for full snapshots), by name.
    pub fn list(dir: &Path) -> Result<Vec<SnapshotDescription>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if !name.ends_with(SNAPSHOT_EXT) || name.starts_with('.') {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            out.push(describe(dir, &name, &meta));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Path of an existing snapshot `name` in `dir`; 404 if there is none.
    pub fn existing(dir: &Path, name: &str) -> Result<PathBuf> {
        check_file_name(name)?;
        let p = dir.join(name);
        if !name.ends_with(SNAPSHOT_EXT) || !p.is_file() {
            return Err(CollectionError::NotFound(format!("Snapshot {name} not found")));
        }
        Ok(p)
    }

    /// Description of an existing snapshot file.
    pub fn describe(path: &Path) -> Result<SnapshotDescription> {
        let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(describe(dir, name, &meta))
    }

    /// Delete snapshot `name` in `dir` and its checksum file; 404 if there is none.
    pub fn delete(dir: &Path, name: &str) -> Result<()> {
        let p = Self::existing(dir, name)?;
        fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
        let _ = fs::remove_file(dir.join(format!("{name}{CHECKSUM_EXT}")));
        Ok(())
    }

    /// Create a new snapshot file `<base>.snapshot` in `dir` (with `-2`, `-3`... if taken):
    /// `write` fills it and returns (size, sha256); the file is synced, renamed into place and
    /// its checksum file written. On failure nothing is left behind. `expected` is about the
    /// bytes the snapshot will take (with its scratch files): without that much free beside
    /// the writes' reserve it is refused before it starts.
    pub fn write_new(
        dir: &Path,
        base: &str,
        expected: u64,
        write: impl FnOnce(&mut SnapshotWriter, &Path) -> Result<(u64, String)>,
    ) -> Result<SnapshotDescription> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let needed = expected.saturating_add(qd_storage::disk::MIN_FREE_DISK_BYTES);
        crate::error::ensure_free_space(dir, needed, "the snapshot needs about")?;
        let (name, partial, file) = reserve(dir, base)?;
        let result = (|| {
            let mut w = BufWriter::with_capacity(1 << 20, WritebackFile { file, written: 0, started: 0 });
            let (size, sha) = write(&mut w, &partial)?;
            w.flush().map_err(|e| io_err(&partial, e))?;
            let f = w.into_inner().map_err(|e| io_err(&partial, e.into_error()))?.file;
            f.sync_all().map_err(|e| io_err(&partial, e))?;
            drop(f);
            let final_path = dir.join(&name);
            qd_storage::layout::write_file_atomic(&dir.join(format!("{name}{CHECKSUM_EXT}")), sha.as_bytes())?;
            fs::rename(&partial, &final_path).map_err(|e| io_err(&final_path, e))?;
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            // Described from the file itself, so listings later show exactly this.
            let meta = fs::metadata(&final_path).map_err(|e| io_err(&final_path, e))?;
            let mut d = describe(dir, &name, &meta);
            d.size = size;
            d.checksum = Some(sha);
            Ok(d)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_file(dir.join(format!("{name}{CHECKSUM_EXT}")));
        }
        result
    }

    /// The local file a restore may read for `location` (`file:///abs/path`, an absolute path,
    /// or a path relative to the snapshots directory). Only files inside the snapshots
    /// directory or `tmp_dir` (the storage's scratch directory) are allowed: anything else is
    /// refused with a 400, a missing file is a 404.
    pub fn resolve_local(&self, location: &str, tmp_dir: &Path) -> Result<PathBuf> {
        let raw = location.strip_prefix("file://").unwrap_or(location);
        let raw = percent_decode(raw);
        if raw.is_empty() {
            return Err(CollectionError::BadRequest("empty snapshot location".into()));
        }
        let p = PathBuf::from(&raw);
        let p = if p.is_absolute() { p } else { self.root.join(p) };
        let real = match fs::canonicalize(&p) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CollectionError::NotFound(format!("Snapshot file {} does not exist", p.display())))
            }
            Err(e) => return Err(io_err(&p, e)),
        };
        let _ = fs::create_dir_all(&self.root);
        let allowed: Vec<PathBuf> =
            [self.root.as_path(), tmp_dir].iter().filter_map(|d| fs::canonicalize(d).ok()).collect();
        if !allowed.iter().any(|a| real.starts_with(a)) {
            return Err(CollectionError::BadRequest(format!(
                "snapshot location {} is outside the allowed directories (the snapshots path {} \
                 and the storage's tmp directory {}); copy the file there or upload it",
                p.display(),
                self.root.display(),
                tmp_dir.display()
            )));
        }
        if !real.is_file() {
            return Err(CollectionError::BadRequest(format!("{} is not a file", p.display())));
        }
        Ok(real)
    }
}

/// What a snapshot is written through.
pub type SnapshotWriter = BufWriter<WritebackFile>;

/// Start the disk write of each this many bytes as soon as they are written.
const WRITEBACK_STEP: u64 = 16 << 20;

/// A snapshot file being written: asks the kernel to start writing each 16 MiB back to disk
/// as soon as it is written (Linux `sync_file_range`, which does not wait), so the disk works
/// while the snapshot is still being produced and the final fsync has little left to do.
pub struct WritebackFile {
    file: File,
    written: u64,
    started: u64,
}

impl WritebackFile {
    fn start_writeback(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let len = (self.written - self.started) as i64;
            // SAFETY: a plain syscall on an open descriptor we own; it only schedules writeback
            // of a range already written (errors surface at the final fsync anyway).
            unsafe {
                libc::sync_file_range(self.file.as_raw_fd(), self.started as i64, len, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
        self.started = self.written;
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_STEP {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn reserve(dir: &Path, base: &str) -> Result<(String, PathBuf, File)> {
    for n in 1..10_000u32 {
        let name = if n == 1 { format!("{base}{SNAPSHOT_EXT}") } else { format!("{base}-{n}{SNAPSHOT_EXT}") };
        check_file_name(&name)?;
        if dir.join(&name).exists() {
            continue;
        }
        let partial = dir.join(format!("{name}{PARTIAL_EXT}"));
        match OpenOptions::new().write(true).create_new(true).open(&partial) {
            Ok(f) => return Ok((name, partial, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&partial, e)),
        }
    }
    Err(CollectionError::BadRequest(format!("too many snapshots named {base}")))
}

fn describe(dir: &Path, name: &str, meta: &fs::Metadata) -> SnapshotDescription {
    let creation_time = meta.modified().ok().map(|t| super::creation_time(chrono::DateTime::<chrono::Utc>::from(t)));
    let checksum = fs::read_to_string(dir.join(format!("{name}{CHECKSUM_EXT}")))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    SnapshotDescription { name: name.to_string(), creation_time, size: meta.len(), checksum }
}

/// `%XX` escapes of a `file://` URL.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Check the sha256 the client expects against the one computed.
pub fn check_checksum(expected: Option<&str>, actual: Option<&str>) -> Result<()> {
    if let (Some(want), Some(got)) = (expected, actual) {
        if !want.trim().eq_ignore_ascii_case(got) {
            return Err(invalid(format!("checksum mismatch: expected {}, the file has {got}", want.trim())));
        }
    }
    Ok(())
}
