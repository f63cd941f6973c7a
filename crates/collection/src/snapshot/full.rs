//! Full-storage snapshots: every collection (each as a nested collection snapshot) and the
//! aliases, in one archive.
//!
//! Nested snapshots are written to temporary files first (a tar entry needs its size before
//! its data), in the storage's `tmp/` directory, which the server empties at start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use qd_storage::StorageError;
use serde_json::Value;

use super::format::{
    check_format, invalid, read_archive, ArchiveVisitor, ArchiveWriter, FullManifest, FORMAT_VERSION, FULL_FORMAT,
    MANIFEST,
};
use super::restore::{verify_collection, ArchiveReport, RestoreOptions};
use super::{no_progress, Progress, ProgressFn};
use crate::collection::Collection;
use crate::error::{CollectionError, Result};
use crate::registry::{AliasAction, Registry};

/// Path of the i-th collection inside a full snapshot.
pub fn nested_path(i: usize) -> String {
    format!("collections/{i}.snapshot")
}

fn parse_nested_path(path: &str) -> Option<usize> {
    path.strip_prefix("collections/")?.strip_suffix(".snapshot")?.parse().ok()
}

/// Writes the i-th collection's snapshot into the writer (the path names it in errors).
pub type WriteOne<'a> = &'a mut dyn FnMut(usize, &mut BufWriter<File>, &Path) -> Result<()>;

/// Removes a temporary file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Write a full snapshot of `collections` (name order kept) and `aliases` into `out`;
/// `write_one(i, writer, path)` writes the i-th collection's snapshot.
pub fn write_full<W: Write>(
    out: W,
    collections: &[String],
    aliases: BTreeMap<String, String>,
    tmp_dir: &Path,
    dest: &Path,
    write_one: WriteOne<'_>,
    progress: ProgressFn<'_>,
) -> Result<(W, u64, String)> {
    let now = chrono::Utc::now();
    let manifest = FullManifest {
        format: FULL_FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        snapshot_created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        collections: collections.to_vec(),
        aliases,
        software_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let io = |p: &Path, e: std::io::Error| CollectionError::Storage(StorageError::io(p, e));
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| CollectionError::Internal(format!("serialising: {e}")))?;
    let mut aw = ArchiveWriter::new(out, now.timestamp().max(0) as u64);
    aw.add(MANIFEST, &json, None).map_err(|e| io(dest, e))?;
    std::fs::create_dir_all(tmp_dir).map_err(|e| io(tmp_dir, e))?;
    for i in 0..collections.len() {
        let tmp = TempFile(tmp_dir.join(format!("full-{}-{i}.snapshot", uuid::Uuid::new_v4().simple())));
        let f = File::create(&tmp.0).map_err(|e| io(&tmp.0, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_one(i, &mut w, &tmp.0)?;
        let mut f = w.into_inner().map_err(|e| io(&tmp.0, e.into_error()))?;
        let size = f.stream_position().map_err(|e| io(&tmp.0, e))?;
        drop(f);
        let f = File::open(&tmp.0).map_err(|e| io(&tmp.0, e))?;
        aw.add_reader(&nested_path(i), size, std::io::BufReader::with_capacity(1 << 20, f)).map_err(|e| io(dest, e))?;
        progress(Progress { bytes: aw.bytes(), total: None, records: 0 });
    }
    aw.finish(Vec::new()).map_err(|e| io(dest, e))
}

/// Full snapshot of a running server: every collection (all must be loaded) and the aliases
/// that point at them. Each collection is a consistent point-in-time view of its own.
pub fn snapshot_registry<W: Write>(
    registry: &Registry,
    out: W,
    dest: &Path,
    progress: ProgressFn<'_>,
) -> Result<(W, u64, String)> {
    let names = registry.list();
    let collections: Vec<Arc<Collection>> = names.iter().map(|n| registry.get(n)).collect::<Result<_>>()?;
    let aliases = registry.aliases().into_iter().filter(|(_, c)| names.contains(c)).collect();
    let tmp = registry.layout().tmp_dir();
    write_full(
        out,
        &names,
        aliases,
        &tmp,
        dest,
        &mut |i, w, p| super::create::snapshot_collection(&collections[i], w, p, &mut no_progress).map(|_| ()),
        progress,
    )
}

/// What a full snapshot holds.
#[derive(Debug, Clone)]
pub struct FullReport {
    pub manifest: FullManifest,
    pub size: u64,
    pub sha256: Option<String>,
    pub collections: Vec<ArchiveReport>,
}

struct VerifyFull {
    manifest: Option<FullManifest>,
    reports: Vec<Option<ArchiveReport>>,
}

fn parse_full_manifest(v: Value) -> Result<FullManifest> {
    check_format(&v, FULL_FORMAT)?;
    let m: FullManifest =
        serde_json::from_value(v).map_err(|e| invalid(format!("manifest.json is unreadable: {e}")))?;
    Ok(m)
}

impl ArchiveVisitor for VerifyFull {
    fn manifest(&mut self, v: Value) -> Result<()> {
        let m = parse_full_manifest(v)?;
        self.reports = vec![None; m.collections.len()];
        self.manifest = Some(m);
        Ok(())
    }
    fn file(&mut self, path: &str, data: &mut dyn Read) -> Result<Option<u64>> {
        let i = parse_nested_path(path)
            .filter(|i| *i < self.reports.len())
            .ok_or_else(|| invalid(format!("unexpected file {path:?} in a full snapshot")))?;
        let report = verify_collection(data, None, &mut no_progress)
            .map_err(|e| invalid(format!("{path}: {}", strip_prefix(&e))))?;
        self.reports[i] = Some(report);
        Ok(None)
    }
}

fn strip_prefix(e: &CollectionError) -> String {
    match e {
        CollectionError::BadRequest(m) => m.trim_start_matches("Invalid snapshot: ").to_string(),
        other => other.to_string(),
    }
}

/// Read a full snapshot completely and check everything, nested snapshots included.
pub fn verify_full(source: &mut dyn Read, checksum: Option<&str>, progress: ProgressFn<'_>) -> Result<FullReport> {
    let mut v = VerifyFull { manifest: None, reports: Vec::new() };
    let summary = {
        let mut report = |bytes: u64| progress(Progress { bytes, total: None, records: 0 });
        read_archive(source, true, &mut v, &mut report)?
    };
    super::files::check_checksum(checksum, summary.sha256.as_deref())?;
    let manifest = v.manifest.ok_or_else(|| invalid("manifest.json is missing"))?;
    let mut collections = Vec::new();
    for (i, r) in v.reports.into_iter().enumerate() {
        collections.push(r.ok_or_else(|| invalid(format!("collection {i} is missing from the archive")))?);
    }
    Ok(FullReport { manifest, size: summary.size, sha256: summary.sha256, collections })
}

/// Outcome of a full restore.
#[derive(Debug, Clone, Default)]
pub struct FullRestoreReport {
    pub restored: Vec<String>,
    /// Collections that existed and were kept (no `replace_existing`).
    pub skipped: Vec<String>,
    pub aliases: usize,
}

struct RestoreFull<'a> {
    registry: &'a Registry,
    opts: RestoreOptions,
    manifest: Option<FullManifest>,
    report: FullRestoreReport,
}

impl ArchiveVisitor for RestoreFull<'_> {
    fn manifest(&mut self, v: Value) -> Result<()> {
        self.manifest = Some(parse_full_manifest(v)?);
        Ok(())
    }
    fn file(&mut self, path: &str, data: &mut dyn Read) -> Result<Option<u64>> {
        let name = parse_nested_path(path)
            .and_then(|i| self.manifest.as_ref().and_then(|m| m.collections.get(i)).cloned())
            .ok_or_else(|| invalid(format!("unexpected file {path:?} in a full snapshot")))?;
        match self.registry.restore_collection(&name, data, None, &self.opts, &mut no_progress) {
            Ok(_) => self.report.restored.push(name),
            Err(CollectionError::AlreadyExists(_)) if !self.opts.replace_existing => {
                tracing::warn!(collection = %name, "collection exists; not restored from the full snapshot (use --force-snapshot to replace it)");
                self.report.skipped.push(name);
            }
            Err(e) => return Err(e),
        }
        Ok(None)
    }
}

/// Restore every collection and alias of a full snapshot file. The file is verified
/// completely first, so a damaged archive restores nothing.
pub fn restore_full(
    registry: &Registry,
    path: &Path,
    opts: &RestoreOptions,
    progress: ProgressFn<'_>,
) -> Result<FullRestoreReport> {
    let open = || File::open(path).map_err(|e| CollectionError::NotFound(format!("{}: {e}", path.display())));
    verify_full(&mut open()?, opts.checksum.as_deref(), progress)?;
    let mut v = RestoreFull {
        registry,
        opts: RestoreOptions { checksum: None, ..opts.clone() },
        manifest: None,
        report: FullRestoreReport::default(),
    };
    read_archive(&mut open()?, false, &mut v, &mut |_| {})?;
    let aliases = v.manifest.map(|m| m.aliases).unwrap_or_default();
    let existing = registry.aliases();
    for (alias, collection) in aliases {
        if !registry.exists(&collection) {
            continue;
        }
        let mut actions = Vec::new();
        match existing.get(&alias) {
            Some(c) if *c == collection => continue,
            Some(_) if !opts.replace_existing => {
                tracing::warn!(alias = %alias, "alias exists; kept (use --force-snapshot to replace it)");
                continue;
            }
            Some(_) => actions.push(AliasAction::Delete { alias: alias.clone() }),
            None => {}
        }
        actions.push(AliasAction::Create { alias: alias.clone(), collection });
        match registry.update_aliases(actions) {
            Ok(()) => v.report.aliases += 1,
            Err(e) => tracing::warn!(alias = %alias, error = %e, "alias from the full snapshot not restored"),
        }
    }
    Ok(v.report)
}
