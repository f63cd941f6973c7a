//! Memory-mapped vectors of sealed segments (`on_disk: true`), one file per segment and
//! vector name in the shard's vectors directory (named by `qd_storage::layout`).
//!
//! The files are derived data: the shard database stays the source of truth. A file is
//! written (and synced) before the segment's index is committed, removed after the segment is,
//! and checked against the segment when mapped; a missing or damaged file only means the
//! vectors stay in RAM until the optimizer writes it again.

use std::collections::HashSet;
use std::path::Path;

use qd_core::config::CollectionConfig;
use qd_segment::hnsw::VectorSource;
use qd_segment::{MappedVectors, Segment, SegmentData};
use qd_storage::layout::{segment_of_vectors_file, segment_vectors_file};

/// Whether the config asks for vector `name` to be kept on disk.
pub fn wanted(config: &CollectionConfig, name: &str) -> bool {
    config.params.vectors.get(name).and_then(|p| p.on_disk).unwrap_or(false)
}

/// Whether a sealed segment's columns are mapped exactly where the config asks for it.
pub fn in_place(seg: &Segment, config: &CollectionConfig) -> bool {
    seg.data().columns().all(|(name, col)| col.len() == 0 || col.is_mapped() == wanted(config, name))
}

/// Write the files of every column of `data` that should be on disk and is not yet (the
/// segment id is `id`). Errors name the file.
pub fn write_missing(dir: &Path, id: u64, data: &SegmentData, config: &CollectionConfig) -> Result<(), String> {
    for (name, col) in data.columns() {
        if col.len() == 0 || col.is_mapped() || !wanted(config, name) {
            continue;
        }
        let path = segment_vectors_file(dir, id, name);
        if MappedVectors::open(&path, id, col.dim(), col.len()).is_ok() {
            continue;
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        qd_segment::mapped::write(&path, id, col.dim(), col.present(), col.data())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Map the columns of `seg` whose config asks for it and whose file is valid; bring back into
/// RAM (and delete the file of) columns no longer on disk. Returns the first problem met.
pub fn apply(dir: &Path, seg: &mut Segment, config: &CollectionConfig) -> Result<(), String> {
    let id = seg.id();
    let columns: Vec<(String, usize, usize, bool)> =
        seg.data().columns().map(|(n, c)| (n.to_string(), c.dim(), c.len(), c.is_mapped())).collect();
    let mut problem = None;
    for (name, dim, slots, mapped) in columns {
        let path = segment_vectors_file(dir, id, &name);
        match (wanted(config, &name), mapped) {
            (true, false) if slots > 0 => match MappedVectors::open(&path, id, dim, slots) {
                Ok(m) => {
                    if !seg.map_column(&name, m) {
                        problem.get_or_insert(format!("{}: does not fit segment {id:x}", path.display()));
                    }
                }
                Err(e) => {
                    problem.get_or_insert(e.to_string());
                }
            },
            (false, true) => {
                seg.unmap_column(&name);
                let _ = std::fs::remove_file(&path);
            }
            (false, false) => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    problem.map_or(Ok(()), Err)
}

/// Remove the files of segment `id` (after the segment itself was removed).
pub fn remove_segment(dir: &Path, id: u64) {
    remove_where(dir, |seg, _| seg == id);
}

/// Remove files of segments the shard does not have (left by a crash between committing a
/// segment's removal and deleting its files) and half-written ones.
pub fn remove_orphans(dir: &Path, live: &HashSet<u64>) {
    remove_where(dir, |seg, name| name.ends_with(".tmp") || !live.contains(&seg));
}

fn remove_where(dir: &Path, doomed: impl Fn(u64, &str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if segment_of_vectors_file(&name).is_some_and(|seg| doomed(seg, &name)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
