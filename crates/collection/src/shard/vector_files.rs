//! Memory-mapped vectors of sealed segments (`on_disk: true`), one file per segment and
//! vector name in the shard's vectors directory (named by `qd_storage::layout`). A sparse
//! vector whose index is `on_disk` keeps its vectors and its inverted index in one such file;
//! a multivector with `on_disk` its rows.
//!
//! The files are derived data: the shard database stays the source of truth. A file is
//! written (and synced) before the segment's index is committed, removed after the segment is,
//! and checked against the segment (id, members digest, shape, data checksum) when mapped; a
//! missing or damaged file only means the vectors stay in RAM until the optimizer writes it
//! again. File work happens in [`prepare`], without the shard lock; [`commit`] only swaps.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use qd_core::config::CollectionConfig;
use qd_segment::hnsw::VectorSource;
use qd_segment::{
    FileOwner, InvertedIndex, MappedMulti, MappedSparse, MappedVectors, MultiColumn, Segment, SegmentData,
    SegmentIndex, SparseColumn,
};
use qd_storage::layout::{segment_multi_file, segment_of_vectors_file, segment_sparse_file, segment_vectors_file};

/// Whether the config asks for vector `name` to be kept on disk.
pub fn wanted(config: &CollectionConfig, name: &str) -> bool {
    config.params.vectors.get(name).and_then(|p| p.on_disk).unwrap_or(false)
}

/// Whether the config asks for sparse vector `name`'s index (and vectors) to be kept on disk.
pub fn wanted_sparse(config: &CollectionConfig, name: &str) -> bool {
    config.params.sparse(name).and_then(|p| p.index.as_ref()).and_then(|i| i.on_disk).unwrap_or(false)
}

/// Whether a sealed segment's columns are mapped where the config asks for it (`may_map`:
/// false once mapping this segment failed; it then only counts columns to unmap).
pub fn in_place(seg: &Segment, config: &CollectionConfig, may_map: bool) -> bool {
    let fits = |len: usize, mapped: bool, wanted: bool| len == 0 || mapped == wanted || (!may_map && !mapped);
    seg.data().columns().all(|(name, col)| fits(col.len(), col.is_mapped(), wanted(config, name)))
        && seg.data().multi_columns().all(|(name, col)| fits(col.len(), col.mapping().is_some(), wanted(config, name)))
        && seg
            .data()
            .sparse_columns()
            .all(|(name, col)| fits(col.len(), col.mapping().is_some(), wanted_sparse(config, name)))
}

/// What bringing one segment's columns in line with `on_disk` takes, prepared without the
/// shard lock: files written and checked (a CRC over the whole file), mapped vectors copied
/// back into the heap. [`commit`] then only swaps storage under the lock.
pub struct Remapping {
    id: u64,
    maps: Vec<(String, MappedVectors)>,
    unmaps: Vec<(String, qd_segment::ElemVec)>,
    /// Files of columns kept in RAM, to delete.
    stale: Vec<String>,
    multi_maps: Vec<(String, Arc<MappedMulti>)>,
    multi_unmaps: Vec<(String, MultiColumn)>,
    multi_stale: Vec<String>,
    sparse_maps: Vec<(String, Arc<MappedSparse>)>,
    sparse_unmaps: Vec<(String, SparseColumn, InvertedIndex)>,
    sparse_stale: Vec<String>,
    problem: Option<String>,
}

impl Remapping {
    /// Whether sparse vector `name` will be served from its file once committed (its inverted
    /// index then need not be stored in the shard database: a restart maps the file, or
    /// rebuilds the index from the vectors if the file is lost).
    pub fn maps_sparse(&self, name: &str) -> bool {
        self.sparse_maps.iter().any(|(n, _)| n == name)
    }

    /// The sparse vectors this remapping serves from their files.
    pub fn sparse_mapped(&self) -> Vec<String> {
        self.sparse_maps.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Prepare the remapping of segment `id` whose data is `data` and index `index` (`may_map` as
/// for [`in_place`]). Writes missing or invalid files of columns that should be on disk.
pub fn prepare(
    dir: &Path,
    id: u64,
    data: &SegmentData,
    index: &SegmentIndex,
    config: &CollectionConfig,
    may_map: bool,
) -> Remapping {
    prepare_with(dir, id, data, Some(index), config, may_map)
}

/// Like [`prepare`] but only maps files that are already there and valid (at start-up, before
/// the segment's vectors and index are loaded, nothing may be written from them).
pub fn prepare_existing(dir: &Path, id: u64, data: &SegmentData, config: &CollectionConfig) -> Remapping {
    prepare_with(dir, id, data, None, config, true)
}

/// `index`: `None` at start-up, where nothing may be written.
fn prepare_with(
    dir: &Path,
    id: u64,
    data: &SegmentData,
    index: Option<&SegmentIndex>,
    config: &CollectionConfig,
    may_map: bool,
) -> Remapping {
    let may_write = index.is_some();
    let owner = FileOwner { segment: id, members_digest: data.members_digest() };
    let mut r = Remapping {
        id,
        maps: Vec::new(),
        unmaps: Vec::new(),
        stale: Vec::new(),
        multi_maps: Vec::new(),
        multi_unmaps: Vec::new(),
        multi_stale: Vec::new(),
        sparse_maps: Vec::new(),
        sparse_unmaps: Vec::new(),
        sparse_stale: Vec::new(),
        problem: None,
    };
    for (name, col) in data.columns() {
        let path = segment_vectors_file(dir, id, name);
        match (wanted(config, name), col.mapping()) {
            (true, None) if col.len() > 0 && may_map => {
                let write = may_write
                    .then_some(|| qd_segment::mapped::write(&path, owner, col.dim(), col.present(), col.data()));
                let open = || MappedVectors::open(&path, owner, col.dim(), col.len(), col.element());
                if let Some(m) = open_or_write(dir, &path, open, write, &mut r.problem) {
                    r.maps.push((name.to_string(), m));
                }
            }
            (false, Some(m)) => r.unmaps.push((name.to_string(), m.data().to_owned_elems())),
            (false, None) => r.stale.push(name.to_string()),
            _ => {}
        }
    }
    for (name, col) in data.multi_columns() {
        let path = segment_multi_file(dir, id, name);
        match (wanted(config, name), col.mapping()) {
            (true, None) if !col.is_empty() && may_map => {
                let write = may_write.then_some(|| qd_segment::multi_file::write(&path, owner, col));
                let open = || MappedMulti::open(&path, owner, col.dim(), col.len(), col.element());
                if let Some(m) = open_or_write(dir, &path, open, write, &mut r.problem) {
                    r.multi_maps.push((name.to_string(), Arc::new(m)));
                }
            }
            (false, Some(_)) => r.multi_unmaps.push((name.to_string(), col.to_heap())),
            (false, None) => r.multi_stale.push(name.to_string()),
            _ => {}
        }
    }
    for (name, col) in data.sparse_columns() {
        let path = segment_sparse_file(dir, id, name);
        let built = index.and_then(|ix| ix.sparse.get(name)).filter(|ix| ix.slots() == col.len());
        match (wanted_sparse(config, name), col.mapping()) {
            (true, None) if !col.is_empty() && may_map => {
                let write = built.map(|ix| {
                    let path = &path;
                    move || qd_segment::sparse_file::write(path, owner, col, ix)
                });
                let open = || MappedSparse::open(&path, owner, col.len());
                if let Some(m) = open_or_write(dir, &path, open, write, &mut r.problem) {
                    r.sparse_maps.push((name.to_string(), Arc::new(m)));
                }
            }
            (false, Some(_)) => {
                let heap = col.to_heap();
                let ix = built.map_or_else(|| InvertedIndex::build(&heap), InvertedIndex::to_heap);
                r.sparse_unmaps.push((name.to_string(), heap, ix));
            }
            (false, None) => r.sparse_stale.push(name.to_string()),
            _ => {}
        }
    }
    r
}

/// Map the file at `path` with `open`; if that fails and `write` is given, write the file with
/// it and open again. A failure is recorded in `problem` (the first one is kept).
fn open_or_write<M>(
    dir: &Path,
    path: &Path,
    open: impl Fn() -> std::io::Result<M>,
    write: Option<impl FnOnce() -> std::io::Result<()>>,
    problem: &mut Option<String>,
) -> Option<M> {
    let opened = open().or_else(|e| {
        let Some(write) = write else { return Err(e) };
        std::fs::create_dir_all(dir)?;
        write()?;
        open()
    });
    match opened {
        Ok(m) => Some(m),
        Err(e) => {
            problem.get_or_insert(format!("{}: {e}", path.display()));
            None
        }
    }
}

/// Apply a prepared remapping to `seg` (under the shard's write lock; cheap). Returns the
/// first problem met while preparing or swapping.
pub fn commit(dir: &Path, seg: &mut Segment, r: Remapping) -> Result<(), String> {
    let mut problem = r.problem;
    if seg.id() != r.id {
        return Err(format!("remapping prepared for segment {:x}, not {:x}", r.id, seg.id()));
    }
    for (name, m) in r.maps {
        if !seg.map_column(&name, m) {
            problem.get_or_insert(format!("segment {:x}: vector {name:?} could not be mapped", r.id));
        }
    }
    for (name, data) in r.unmaps {
        if seg.unmap_column(&name, data) {
            let _ = std::fs::remove_file(segment_vectors_file(dir, r.id, &name));
        } else {
            problem.get_or_insert(format!("segment {:x}: vector {name:?} could not be unmapped", r.id));
        }
    }
    for name in r.stale {
        let _ = std::fs::remove_file(segment_vectors_file(dir, r.id, &name));
    }
    for (name, m) in r.multi_maps {
        if !seg.map_multi(&name, m) {
            problem.get_or_insert(format!("segment {:x}: multivector {name:?} could not be mapped", r.id));
        }
    }
    for (name, col) in r.multi_unmaps {
        if seg.unmap_multi(&name, col) {
            let _ = std::fs::remove_file(segment_multi_file(dir, r.id, &name));
        } else {
            problem.get_or_insert(format!("segment {:x}: multivector {name:?} could not be unmapped", r.id));
        }
    }
    for name in r.multi_stale {
        let _ = std::fs::remove_file(segment_multi_file(dir, r.id, &name));
    }
    for (name, m) in r.sparse_maps {
        if !seg.map_sparse(&name, m) {
            problem.get_or_insert(format!("segment {:x}: sparse vector {name:?} could not be mapped", r.id));
        }
    }
    for (name, col, ix) in r.sparse_unmaps {
        if seg.unmap_sparse(&name, col, ix) {
            let _ = std::fs::remove_file(segment_sparse_file(dir, r.id, &name));
        } else {
            problem.get_or_insert(format!("segment {:x}: sparse vector {name:?} could not be unmapped", r.id));
        }
    }
    for name in r.sparse_stale {
        let _ = std::fs::remove_file(segment_sparse_file(dir, r.id, &name));
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
            if let Err(err) = std::fs::remove_file(e.path()) {
                tracing::warn!(file = %e.path().display(), error = %err, "could not remove a vector file");
            }
        }
    }
}
