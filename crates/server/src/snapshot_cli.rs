//! `qdrant snapshot create|restore|inspect|verify`: snapshots of a storage directory with the
//! server stopped, and the start-up restores (`--snapshot FILE:COLLECTION`,
//! `--storage-snapshot FILE`).
//!
//! The storage path, snapshots path and backend come from the usual settings (flags, env,
//! config file); an existing storage directory is always opened with the backend it was
//! created with. Long operations draw a progress line on stderr when it is a terminal.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use qd_collection::snapshot::{self, full, offline, Progress, RestoreOptions, SnapshotDir};
use qd_collection::Registry;
use qd_storage::StorageLayout;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot one collection (`--collection`), or the whole storage without it. Written to
    /// the snapshots path (where a server started later lists it) unless `--output` is given.
    Create {
        #[arg(long)]
        collection: Option<String>,
        /// Output file (must not exist yet).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Restore a snapshot file into the storage: a collection snapshot (as `--collection`, by
    /// default the name it was taken from), or a full-storage snapshot.
    Restore {
        file: PathBuf,
        #[arg(long)]
        collection: Option<String>,
        /// Replace collections (and aliases) that already exist.
        #[arg(long)]
        force: bool,
        /// sha256 the file must have.
        #[arg(long)]
        checksum: Option<String>,
    },
    /// Show what a snapshot file holds (fast: reads its manifest and checksums only).
    Inspect {
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a snapshot file completely and check every checksum and record; exit 1 if damaged.
    Verify {
        file: PathBuf,
        /// sha256 the file must have.
        #[arg(long)]
        checksum: Option<String>,
    },
}

/// Draws `\r  42% [########            ] 1.2 GiB / 2.9 GiB  310 MiB/s` on a terminal.
struct Bar {
    tty: bool,
    started: Instant,
    last: Instant,
    label: &'static str,
}

fn mib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

impl Bar {
    fn new(label: &'static str) -> Self {
        let now = Instant::now();
        Bar { tty: std::io::stderr().is_terminal(), started: now, last: now - Duration::from_secs(1), label }
    }

    fn update(&mut self, p: Progress) {
        if !self.tty || self.last.elapsed() < Duration::from_millis(150) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = format!("{}/s", mib((p.bytes as f64 / secs) as u64));
        let line = match p.total.filter(|t| *t > 0) {
            Some(total) => {
                let frac = (p.bytes as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (frac * 30.0) as usize;
                format!(
                    "{} {:>3.0}% [{}{}] {} / {}  {rate}",
                    self.label,
                    frac * 100.0,
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    mib(p.bytes),
                    mib(total)
                )
            }
            None if p.records > 0 => format!("{} {}  {} records  {rate}", self.label, mib(p.bytes), p.records),
            None => format!("{} {}  {rate}", self.label, mib(p.bytes)),
        };
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{line:<80}");
        let _ = err.flush();
    }

    fn done(&self) {
        if self.tty {
            eprint!("\r{:<80}\r", "");
        }
    }
}

pub fn run(cmd: &SnapshotCommand, settings: &Settings) -> ExitCode {
    let result = match cmd {
        SnapshotCommand::Create { collection, output } => create(settings, collection.as_deref(), output.as_deref()),
        SnapshotCommand::Restore { file, collection, force, checksum } => {
            restore(settings, file, collection.as_deref(), *force, checksum.clone())
        }
        SnapshotCommand::Inspect { file, json } => inspect(file, *json),
        SnapshotCommand::Verify { file, checksum } => verify(file, checksum.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qdrant snapshot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn create(settings: &Settings, collection: Option<&str>, output: Option<&Path>) -> anyhow::Result<()> {
    let storage = offline::OfflineStorage::open(&settings.storage.storage_path)?;
    let dirs = SnapshotDir::new(settings.storage.snapshots_path.clone());
    let (dir, base) = match output {
        Some(out) => {
            if out.exists() {
                anyhow::bail!("{} exists already", out.display());
            }
            let name = out.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow::anyhow!("bad output path"))?;
            let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
            (dir, name.strip_suffix(".snapshot").unwrap_or(name).to_string())
        }
        None => {
            let ts = snapshot::name_timestamp(chrono::Utc::now());
            match collection {
                Some(c) => (dirs.collection_dir(c)?, format!("{c}-{ts}")),
                None => (dirs.root().to_path_buf(), format!("full-snapshot-{ts}")),
            }
        }
    };
    let mut bar = Bar::new("creating");
    let t = Instant::now();
    // Offline, with a person watching: only the reserve is checked up front.
    let desc = SnapshotDir::write_new(&dir, &base, 0, |w, path| {
        let mut progress = |p: Progress| bar.update(p);
        let (_, size, sha) = match collection {
            Some(c) => storage.snapshot_collection(c, w, path, &mut progress)?,
            None => storage.snapshot_full(w, path, &mut progress)?,
        };
        Ok((size, sha))
    })?;
    bar.done();
    println!(
        "created {} ({}, {:.1} s)\nsha256 {}",
        dir.join(&desc.name).display(),
        mib(desc.size),
        t.elapsed().as_secs_f64(),
        desc.checksum.unwrap_or_default()
    );
    Ok(())
}

fn restore(
    settings: &Settings,
    file: &Path,
    collection: Option<&str>,
    force: bool,
    checksum: Option<String>,
) -> anyhow::Result<()> {
    let root = &settings.storage.storage_path;
    let backend = match StorageLayout::read_marker(root)? {
        Some(m) => m.backend,
        None => settings.backend().map_err(anyhow::Error::msg)?,
    };
    let registry = Registry::open(root, backend, settings.collection_defaults())?;
    let opts = RestoreOptions { checksum, replace_existing: force, at_startup: true };
    let t = Instant::now();
    let result = restore_file(&registry, file, collection, &opts, "restoring");
    registry.shutdown();
    let summary = result?;
    println!("{summary} into {} ({backend}) in {:.1} s", root.display(), t.elapsed().as_secs_f64());
    Ok(())
}

/// Restore one file (collection or full snapshot) into an open registry; returns a summary.
fn restore_file(
    registry: &Registry,
    file: &Path,
    collection: Option<&str>,
    opts: &RestoreOptions,
    label: &'static str,
) -> anyhow::Result<String> {
    let mut bar = Bar::new(label);
    let mut progress = |p: Progress| bar.update(p);
    let out = if offline::is_full_snapshot(file)? {
        if collection.is_some() {
            anyhow::bail!(
                "{} is a full-storage snapshot: it restores every collection, drop --collection",
                file.display()
            );
        }
        let r = full::restore_full(registry, file, opts, &mut progress)?;
        let mut s = format!("restored {} collection(s) and {} alias(es)", r.restored.len(), r.aliases);
        if !r.skipped.is_empty() {
            s.push_str(&format!("; kept existing {:?} (use --force to replace)", r.skipped));
        }
        s
    } else {
        let mut f = File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let name = match collection {
            Some(c) => c.to_string(),
            None => offline::read_manifest(&mut f)?
                .get("collection")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("the snapshot names no collection; give --collection"))?,
        };
        let mut f = File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let total = f.metadata().ok().map(|m| m.len());
        let r = registry.restore_collection(&name, &mut f, total, opts, &mut progress)?;
        format!("restored collection `{name}` ({} records, {})", r.records, mib(r.size))
    };
    bar.done();
    Ok(out)
}

fn inspect(file: &Path, as_json: bool) -> anyhow::Result<()> {
    let v = offline::inspect(file)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let m = &v["manifest"];
    println!("file:      {} ({})", file.display(), mib(v["size"].as_u64().unwrap_or(0)));
    println!("format:    {} version {}", m["format"].as_str().unwrap_or("?"), m["format_version"]);
    println!(
        "taken:     {} by version {}",
        m["snapshot_created_at"].as_str().unwrap_or("?"),
        m["software_version"].as_str().unwrap_or("?")
    );
    if let Some(c) = m["collection"].as_str() {
        println!(
            "collection: {c} (created {}), from a {} storage",
            m["created_at"].as_str().unwrap_or("?"),
            m["source_backend"].as_str().unwrap_or("?")
        );
        println!("vectors:   {}", m["config"]["params"]["vectors"]);
        println!("records:   {} in {} data bytes", v["records"], v["data_bytes"]);
        for s in v["shards"].as_array().into_iter().flatten() {
            println!("  shard {}: {}", s["shard_id"], s["records"]);
        }
    } else {
        println!("collections: {}", m["collections"]);
        println!("aliases:   {}", m["aliases"]);
    }
    println!(
        "complete:  {}",
        if v["complete"].as_bool() == Some(true) {
            "yes (checksums.json present; run verify to check the data)"
        } else {
            "NO: checksums.json missing (truncated?)"
        }
    );
    Ok(())
}

fn verify(file: &Path, checksum: Option<&str>) -> anyhow::Result<()> {
    let total = std::fs::metadata(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?.len();
    let mut bar = Bar::new("verifying");
    let mut progress = |mut p: Progress| {
        p.total = Some(total);
        bar.update(p)
    };
    let mut f = File::open(file)?;
    let summary = if offline::is_full_snapshot(file)? {
        let r = full::verify_full(&mut f, checksum, &mut progress)?;
        let records: u64 = r.collections.iter().map(|c| c.records).sum();
        format!(
            "full snapshot, {} collection(s), {records} records, sha256 {}",
            r.collections.len(),
            r.sha256.unwrap_or_default()
        )
    } else {
        let r = snapshot::verify_collection(&mut f, checksum, &mut progress)?;
        format!(
            "collection `{}`, {} shard(s), {} records, sha256 {}",
            r.manifest.collection,
            r.shards.len(),
            r.records,
            r.sha256.unwrap_or_default()
        )
    };
    bar.done();
    println!("OK: {}: {summary}", file.display());
    Ok(())
}

/// Restores asked for on the command line of the server, run before collections load.
#[derive(Debug, Clone, Default)]
pub struct StartupRestores {
    /// (file, collection)
    pub collections: Vec<(PathBuf, String)>,
    pub storage: Option<PathBuf>,
    pub force: bool,
}

impl StartupRestores {
    pub fn is_empty(&self) -> bool {
        self.collections.is_empty() && self.storage.is_none()
    }

    /// Parse `--snapshot FILE:COLLECTION` values (split at the last `:`).
    pub fn parse(snapshots: &[String], storage: Option<PathBuf>, force: bool) -> Result<Self, String> {
        let mut collections = Vec::new();
        for s in snapshots {
            let (file, name) = s
                .rsplit_once(':')
                .filter(|(f, n)| !f.is_empty() && !n.is_empty())
                .ok_or_else(|| format!("--snapshot {s:?}: expected FILE:COLLECTION"))?;
            collections.push((PathBuf::from(file), name.to_string()));
        }
        Ok(StartupRestores { collections, storage, force })
    }
}

/// Run the start-up restores. A collection that exists is kept unless `--force-snapshot`.
pub fn startup_restore(registry: &Registry, r: &StartupRestores) -> anyhow::Result<()> {
    let opts = RestoreOptions { checksum: None, replace_existing: r.force, at_startup: true };
    if let Some(file) = &r.storage {
        let summary = restore_file(registry, file, None, &opts, "restoring storage")
            .map_err(|e| anyhow::anyhow!("--storage-snapshot {}: {e:#}", file.display()))?;
        tracing::info!(file = %file.display(), "{summary}");
    }
    for (file, name) in &r.collections {
        match restore_file(registry, file, Some(name), &opts, "restoring") {
            Ok(summary) => tracing::info!(file = %file.display(), "{summary}"),
            Err(e)
                if !r.force
                    && e.downcast_ref::<qd_collection::CollectionError>()
                        .is_some_and(|e| matches!(e, qd_collection::CollectionError::AlreadyExists(_))) =>
            {
                tracing::warn!(collection = %name, "collection exists; snapshot {} not restored (use --force-snapshot to replace it)", file.display());
            }
            Err(e) => anyhow::bail!("--snapshot {}:{name}: {e:#}", file.display()),
        }
    }
    Ok(())
}
