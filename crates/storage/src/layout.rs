//! The one module that knows on-disk names. Nothing else builds a path under the storage root.
//!
//! ```text
//! STORAGE/
//!   storage.json                      marker: backend and format version (written last at init)
//!   catalog.sqlite | catalog.rocksdb/ collection configs and aliases (the commit point of
//!                                     create / delete / restore of a collection)
//!   consensus.sqlite | consensus.rocksdb/
//!                                     cluster mode only: this peer's id, the Raft vote, log
//!                                     and snapshot, the applied cluster metadata
//!   collections/<dir>/shards/<id>/data.sqlite | data.rocksdb/
//!                                     one database per shard: points, meta, index data
//!   collections/<dir>/shards/<id>/vectors/<segment:016x>-<hex(vector name)>.vec
//!                                     memory-mapped vectors of sealed segments (`on_disk`);
//!                                     derived from the database, rebuilt when missing
//!   tmp/                              scratch space (restores in progress); emptied at start
//! ```
//! `<dir>` is an id assigned when a collection is created or restored, not its name, so a
//! restore can build a new directory and switch the catalog entry to it atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::error::StorageError;

/// Version of the on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MARKER_FILE: &str = "storage.json";
const COLLECTIONS_DIR: &str = "collections";
const SHARDS_DIR: &str = "shards";
const TMP_DIR: &str = "tmp";
const VECTORS_DIR: &str = "vectors";
const VECTORS_EXT: &str = "vec";
const SPARSE_EXT: &str = "spv";
const MULTI_EXT: &str = "mvc";

/// Contents of `storage.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageMarker {
    pub backend: BackendKind,
    pub format_version: u32,
}

/// Paths under one storage root, for one backend.
#[derive(Clone, Debug)]
pub struct StorageLayout {
    root: PathBuf,
    backend: BackendKind,
}

fn db_name(kind: BackendKind, stem: &str) -> String {
    match kind {
        BackendKind::Sqlite => format!("{stem}.sqlite"),
        BackendKind::Rocksdb => format!("{stem}.rocksdb"),
    }
}

impl StorageLayout {
    /// Open the storage root for `backend`, creating it if missing. Refuses a root written by
    /// the other backend or by an unknown format version. If anything fails, directories this
    /// call created are removed again.
    pub fn open_or_init(root: &Path, backend: BackendKind) -> Result<Self, StorageError> {
        let existed = root.exists();
        match Self::open_or_init_inner(root, backend) {
            Ok(l) => Ok(l),
            Err(e) => {
                if !existed {
                    let _ = fs::remove_dir_all(root);
                }
                Err(e)
            }
        }
    }

    fn open_or_init_inner(root: &Path, backend: BackendKind) -> Result<Self, StorageError> {
        if root.exists() && !root.is_dir() {
            return Err(StorageError::io(
                root,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "storage path is not a directory"),
            ));
        }
        fs::create_dir_all(root).map_err(|e| StorageError::io(root, e))?;
        let layout = StorageLayout { root: root.to_path_buf(), backend };
        let marker_path = root.join(MARKER_FILE);
        if marker_path.exists() {
            let bytes = fs::read(&marker_path).map_err(|e| StorageError::io(&marker_path, e))?;
            let marker: StorageMarker = serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                what: marker_path.display().to_string(),
                detail: e.to_string(),
            })?;
            if marker.backend != backend {
                return Err(StorageError::BackendMismatch {
                    path: root.to_path_buf(),
                    found: marker.backend,
                    requested: backend,
                });
            }
            if marker.format_version != FORMAT_VERSION {
                return Err(StorageError::UnsupportedFormat {
                    path: root.to_path_buf(),
                    found: marker.format_version,
                    supported: FORMAT_VERSION,
                });
            }
        } else {
            // A catalog of the other backend without a marker means a damaged root: refuse.
            let other = BackendKind::ALL.into_iter().find(|k| *k != backend).unwrap_or(backend);
            if root.join(db_name(other, "catalog")).exists() {
                return Err(StorageError::BackendMismatch {
                    path: root.to_path_buf(),
                    found: other,
                    requested: backend,
                });
            }
            let marker = StorageMarker { backend, format_version: FORMAT_VERSION };
            let json = serde_json::to_vec_pretty(&marker)
                .map_err(|e| StorageError::Corrupt { what: "storage marker".into(), detail: e.to_string() })?;
            write_file_atomic(&marker_path, &json)?;
        }
        for d in [layout.collections_root(), layout.tmp_dir()] {
            fs::create_dir_all(&d).map_err(|e| StorageError::io(&d, e))?;
        }
        Ok(layout)
    }

    /// The marker of an existing storage root (`None` if `root` holds no storage yet). Lets
    /// offline tools find the backend a root was created with.
    pub fn read_marker(root: &Path) -> Result<Option<StorageMarker>, StorageError> {
        let marker_path = root.join(MARKER_FILE);
        match fs::read(&marker_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StorageError::Corrupt { what: marker_path.display().to_string(), detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&marker_path, e)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.root.join(db_name(self.backend, "catalog"))
    }

    /// The consensus database (cluster mode).
    pub fn consensus_path(&self) -> PathBuf {
        self.root.join(db_name(self.backend, "consensus"))
    }

    pub fn collections_root(&self) -> PathBuf {
        self.root.join(COLLECTIONS_DIR)
    }

    pub fn collection_dir(&self, dir_id: &str) -> PathBuf {
        self.collections_root().join(dir_id)
    }

    pub fn shard_dir(&self, dir_id: &str, shard_id: u32) -> PathBuf {
        self.collection_dir(dir_id).join(SHARDS_DIR).join(shard_id.to_string())
    }

    /// The shard's database (a file for SQLite, a directory for RocksDB).
    pub fn shard_db_path(&self, dir_id: &str, shard_id: u32) -> PathBuf {
        self.shard_dir(dir_id, shard_id).join(db_name(self.backend, "data"))
    }

    /// Where the shard keeps memory-mapped vector files (see [`segment_vectors_file`]).
    pub fn shard_vectors_dir(&self, dir_id: &str, shard_id: u32) -> PathBuf {
        self.shard_dir(dir_id, shard_id).join(VECTORS_DIR)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    /// Collection directory ids present on disk.
    pub fn list_collection_dirs(&self) -> Result<Vec<String>, StorageError> {
        let root = self.collections_root();
        let rd = fs::read_dir(&root).map_err(|e| StorageError::io(&root, e))?;
        let mut out = Vec::new();
        for entry in rd.flatten() {
            if entry.path().is_dir() {
                if let Some(name) = entry.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn remove_collection_dir(&self, dir_id: &str) -> Result<(), StorageError> {
        let d = self.collection_dir(dir_id);
        match fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&d, e)),
        }
    }

    /// Empty the scratch directory (left-overs of restores interrupted by a crash).
    pub fn clear_tmp(&self) -> Result<(), StorageError> {
        let d = self.tmp_dir();
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).map_err(|e| StorageError::io(&d, e))
    }
}

/// The file holding vector `name` of sealed segment `segment` in a shard's vectors directory.
/// The name is hex-encoded (vector names may hold any character); a long name keeps its first
/// 32 bytes plus a 64-bit FNV-1a hash of the whole, so file names stay within limits.
pub fn segment_vectors_file(vectors_dir: &Path, segment: u64, name: &str) -> PathBuf {
    segment_file(vectors_dir, segment, name, VECTORS_EXT)
}

/// The file holding sparse vector `name` of sealed segment `segment` (its vectors and inverted
/// index, `index.on_disk: true`), named as [`segment_vectors_file`] names dense ones.
pub fn segment_sparse_file(vectors_dir: &Path, segment: u64, name: &str) -> PathBuf {
    segment_file(vectors_dir, segment, name, SPARSE_EXT)
}

/// The file holding multivector `name` of sealed segment `segment` (its rows, `on_disk: true`).
pub fn segment_multi_file(vectors_dir: &Path, segment: u64, name: &str) -> PathBuf {
    segment_file(vectors_dir, segment, name, MULTI_EXT)
}

fn segment_file(vectors_dir: &Path, segment: u64, name: &str, ext: &str) -> PathBuf {
    const KEEP: usize = 32;
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let encoded = if name.len() <= KEEP {
        hex(name.as_bytes())
    } else {
        let fnv = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        format!("{}~{fnv:016x}", hex(&name.as_bytes()[..KEEP]))
    };
    vectors_dir.join(format!("{segment:016x}-{encoded}.{ext}"))
}

/// The segment id a file in a shard's vectors directory belongs to, if it is one of ours
/// (finished or left half-written by a crash).
pub fn segment_of_vectors_file(file_name: &str) -> Option<u64> {
    let (seg, _) = file_name.split_once('-')?;
    let is_ours = [VECTORS_EXT, SPARSE_EXT, MULTI_EXT]
        .iter()
        .any(|ext| file_name.ends_with(&format!(".{ext}")) || file_name.ends_with(&format!(".{ext}.tmp")));
    if seg.len() != 16 || !is_ours {
        return None;
    }
    u64::from_str_radix(seg, 16).ok()
}

/// Write a small file so that readers see the old or the new content, never a torn one.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| StorageError::io(&tmp, e))?;
    f.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_file_names() {
        let dir = Path::new("/v");
        let short = segment_vectors_file(dir, 0x2a, "image");
        assert_eq!(short, Path::new("/v/000000000000002a-696d616765.vec"));
        assert_eq!(segment_of_vectors_file("000000000000002a-696d616765.vec"), Some(0x2a));
        assert_eq!(segment_of_vectors_file("000000000000002a-.vec.tmp"), Some(0x2a));
        assert_eq!(segment_of_vectors_file("notes.txt"), None);
        let sparse = segment_sparse_file(dir, 0x2a, "text");
        assert_eq!(sparse.file_name().and_then(|n| n.to_str()), Some("000000000000002a-74657874.spv"));
        assert_eq!(segment_of_vectors_file("000000000000002a-74657874.spv.tmp"), Some(0x2a));
        assert_eq!(segment_of_vectors_file("000000000000002a-74657874.mvc"), Some(0x2a));
        // Long names stay short and distinct.
        let a = segment_vectors_file(dir, 1, &"x".repeat(300));
        let b = segment_vectors_file(dir, 1, &format!("{}y", "x".repeat(299)));
        assert_ne!(a, b);
        let name = a.file_name().and_then(|n| n.to_str()).expect("utf8");
        assert!(name.len() < 120, "{name}");
        assert_eq!(segment_of_vectors_file(name), Some(1));
    }

    #[test]
    fn marker_guards_backend() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("s");
        StorageLayout::open_or_init(&root, BackendKind::Sqlite).expect("init");
        StorageLayout::open_or_init(&root, BackendKind::Sqlite).expect("reopen");
        let err = StorageLayout::open_or_init(&root, BackendKind::Rocksdb).expect_err("mismatch");
        assert!(matches!(err, StorageError::BackendMismatch { .. }), "{err}");
    }

    #[test]
    fn failed_init_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("f");
        fs::write(&file, b"x").expect("write");
        // A path below a regular file cannot be created.
        let root = file.join("sub");
        assert!(StorageLayout::open_or_init(&root, BackendKind::Rocksdb).is_err());
        assert!(!root.exists());
        // A regular file as the root is refused and left alone.
        assert!(StorageLayout::open_or_init(&file, BackendKind::Rocksdb).is_err());
        assert_eq!(fs::read(&file).expect("read"), b"x");
    }
}
