//! The registry of collections and aliases of one server (Qdrant calls it the table of
//! contents). It opens the storage root, lists collections from the catalog at once, loads
//! them in the background, and owns create / delete / alias changes.
//!
//! A collection that fails to load becomes `Broken` with a reason: it is reported with status
//! red and can be deleted, while every other collection serves.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use qd_core::config::{CollectionConfig, CollectionDefaults, CreateCollection};
use qd_storage::{open_store, BackendKind, StorageLayout};
use serde_json::Value;

use crate::catalog::{Catalog, CatalogChange, CatalogEntry, PayloadIndexSpec};
use crate::collection::{Collection, CollectionInfo, CollectionShared};
use crate::error::{CollectionError, Result};
use crate::shard::{LocalShard, Shard};
use crate::shard_set::{ShardKey, ShardSet};

enum Slot {
    Loading(CatalogEntry),
    Ready(Arc<Collection>),
    /// `retry`: the load failed for want of a resource (a full disk), so it is tried again
    /// (see [`Registry::retry_broken`]).
    Broken {
        reason: String,
        entry: Option<CatalogEntry>,
        retry: bool,
    },
}

/// A vector to add to a live collection (`PUT /collections/{name}/vectors/{vector}`).
#[derive(Debug, Clone, PartialEq)]
pub enum NewVector {
    Dense(qd_core::config::VectorParams),
    Sparse(qd_core::config::SparseVectorParams),
}

/// Where the shards of collections live when this server is a peer of a cluster: the cluster
/// layer says which shards have a replica here and wraps each shard (with its local replica,
/// if any) into the shard the collection talks to.
pub trait ShardPlacement: Send + Sync {
    fn is_local(&self, collection: &str, shard: crate::shard::ShardId) -> bool;
    /// `files` opens or removes replicas of this collection's shards on this peer later (a
    /// shard transfer adds one, a move or a dropped replica removes one).
    fn wrap(
        &self,
        collection: &str,
        shard: crate::shard::ShardId,
        local: Option<Arc<dyn Shard>>,
        files: Arc<LocalShards>,
    ) -> Arc<dyn Shard>;
}

/// Opens (creating if missing) and removes the local shard databases of one collection.
pub struct LocalShards {
    layout: StorageLayout,
    dir: String,
    shared: Arc<CollectionShared>,
}

impl LocalShards {
    pub fn open(&self, sid: crate::shard::ShardId) -> Result<Arc<dyn Shard>> {
        let path = self.layout.shard_db_path(&self.dir, sid);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| qd_storage::StorageError::io(parent, e))?;
        }
        let store = open_store(self.layout.backend(), &path)?;
        let vectors = self.layout.shard_vectors_dir(&self.dir, sid);
        Ok(Arc::new(LocalShard::open(sid, store, self.shared.clone(), vectors)?))
    }

    /// Delete a shard's files (the shard must be shut down first).
    pub fn remove(&self, sid: crate::shard::ShardId) -> Result<()> {
        let d = self.layout.shard_dir(&self.dir, sid);
        match std::fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(qd_storage::StorageError::io(&d, e).into()),
        }
    }

    /// Write the one shard a snapshot archive holds into scratch files beside this
    /// collection's shards (verified against `checksum`); [`install`](Self::install) puts it in
    /// place. The running shard is untouched until then.
    pub fn stage(&self, archive: &mut dyn std::io::Read, total: Option<u64>, checksum: &str) -> Result<StagedShard> {
        let no_progress = &mut crate::snapshot::no_progress;
        StagedShard::restore(&self.layout, "shard-transfer", archive, total, Some(checksum), no_progress)
            .map(|(staged, _)| staged)
    }

    /// Replace shard `sid`'s files with a staged shard (the shard must be shut down first).
    pub fn install(&self, staged: StagedShard, sid: crate::shard::ShardId) -> Result<()> {
        self.install_from(&staged.snapshot, staged.shard, sid)
    }

    /// Replace shard `sid`'s files with shard `from` of a staged snapshot (the shard must be
    /// shut down first); the staged shard's files move, so each is installed once.
    pub fn install_from(
        &self,
        staged: &StagedSnapshot,
        from: crate::shard::ShardId,
        sid: crate::shard::ShardId,
    ) -> Result<()> {
        let path = staged.shard_path(from);
        if !staged.restored.manifest.shard_ids.contains(&from) || !path.exists() {
            return Err(CollectionError::NotFound(format!("the snapshot holds no shard {from} (or it was installed)")));
        }
        self.remove(sid)?;
        let to = self.layout.shard_dir(&self.dir, sid);
        std::fs::rename(&path, &to).map_err(|e| qd_storage::StorageError::io(&path, e))?;
        Ok(())
    }
}

/// A snapshot archive (a collection's or one shard's) restored into a scratch directory, its
/// shards waiting to be installed; the directory goes when it is dropped.
pub struct StagedSnapshot {
    layout: StorageLayout,
    dir: String,
    restored: crate::snapshot::Restored,
}

impl StagedSnapshot {
    /// Write every shard a snapshot archive (a collection's or one shard's) holds into a
    /// scratch directory of `layout`, verified against `checksum` when given;
    /// [`LocalShards::install_from`] puts shards in place one by one.
    pub fn stage(
        layout: &StorageLayout,
        archive: &mut dyn std::io::Read,
        total: Option<u64>,
        checksum: Option<&str>,
    ) -> Result<StagedSnapshot> {
        Self::restore(layout, "snapshot-recovery", archive, total, checksum, &mut crate::snapshot::no_progress)
    }

    /// Restore the archive into a scratch directory named from `prefix` (removed again on any
    /// error).
    fn restore(
        layout: &StorageLayout,
        prefix: &str,
        archive: &mut dyn std::io::Read,
        total: Option<u64>,
        checksum: Option<&str>,
        progress: crate::snapshot::ProgressFn<'_>,
    ) -> Result<StagedSnapshot> {
        let dir = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        match crate::snapshot::restore::restore_into_dir(layout, &dir, archive, total, checksum, progress) {
            Ok(restored) => Ok(StagedSnapshot { layout: layout.clone(), dir, restored }),
            Err(e) => {
                if let Err(rm) = layout.remove_collection_dir(&dir) {
                    tracing::warn!(dir = %dir, error = %rm, "could not remove a failed restore's scratch directory");
                }
                Err(e)
            }
        }
    }

    /// The shards the snapshot holds.
    pub fn shard_ids(&self) -> &[crate::shard::ShardId] {
        &self.restored.manifest.shard_ids
    }

    /// The config of the collection the snapshot was taken from.
    pub fn config(&self) -> &qd_core::config::CollectionConfig {
        &self.restored.config
    }

    /// The payload indexes the snapshot's collection declared.
    pub fn payload_schema(&self) -> BTreeMap<String, crate::catalog::PayloadIndexSpec> {
        self.restored.catalog_entry("", "").map(|e| e.payload_schema).unwrap_or_default()
    }

    /// A shard's directory (whole shard directories move: SQLite keeps -wal/-shm files beside
    /// its database).
    fn shard_path(&self, sid: crate::shard::ShardId) -> std::path::PathBuf {
        self.layout.shard_dir(&self.dir, sid)
    }
}

impl Drop for StagedSnapshot {
    fn drop(&mut self) {
        if let Err(e) = self.layout.remove_collection_dir(&self.dir) {
            tracing::warn!(dir = %self.dir, error = %e, "could not remove a staged snapshot's scratch directory");
        }
    }
}

/// The one shard of a shard snapshot, restored into a scratch directory, waiting to be
/// installed; the directory goes when it is dropped.
pub struct StagedShard {
    snapshot: StagedSnapshot,
    shard: crate::shard::ShardId,
}

impl StagedShard {
    /// Restore the one shard a snapshot archive holds into a scratch directory named from
    /// `prefix` (removed again on any error).
    fn restore(
        layout: &StorageLayout,
        prefix: &str,
        archive: &mut dyn std::io::Read,
        total: Option<u64>,
        checksum: Option<&str>,
        progress: crate::snapshot::ProgressFn<'_>,
    ) -> Result<(StagedShard, crate::snapshot::Restored)> {
        let snapshot = StagedSnapshot::restore(layout, prefix, archive, total, checksum, progress)?;
        let shard = match snapshot.shard_ids() {
            [one] => *one,
            ids => {
                return Err(CollectionError::BadRequest(format!(
                    "a shard snapshot must hold exactly one shard, this one holds {}",
                    ids.len()
                )))
            }
        };
        let restored = snapshot.restored.clone();
        Ok((StagedShard { snapshot, shard }, restored))
    }

    /// The staged shard's directory.
    fn path(&self) -> std::path::PathBuf {
        self.snapshot.shard_path(self.shard)
    }
}

pub struct Registry {
    layout: StorageLayout,
    /// Cluster mode only.
    placement: RwLock<Option<Arc<dyn ShardPlacement>>>,
    catalog: Catalog,
    defaults: CollectionDefaults,
    slots: RwLock<BTreeMap<String, Slot>>,
    aliases: RwLock<BTreeMap<String, String>>,
    ready: AtomicBool,
    /// Set when shutdown begins: nothing is loaded any more.
    stopping: AtomicBool,
    /// Serialises structural changes (create, delete, aliases) so checks and commits agree.
    structure: Mutex<()>,
}

/// Characters Qdrant refuses in collection names (they would break paths or URLs).
const FORBIDDEN: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0'];

pub fn validate_collection_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(CollectionError::BadRequest(
            "Validation error in path parameters: [name: length must be between 1 and 255]".into(),
        ));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c) || c.is_control()) {
        return Err(CollectionError::BadRequest(format!(
            "Validation error in path parameters: [name: collection name cannot contain {c:?} char]"
        )));
    }
    Ok(())
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Registry {
    /// Open the storage root and read the catalog; collections are listed but not loaded yet
    /// (see [`Registry::load_all`]).
    pub fn open(root: &Path, backend: BackendKind, defaults: CollectionDefaults) -> Result<Arc<Self>> {
        let layout = StorageLayout::open_or_init(root, backend)?;
        layout.clear_tmp()?;
        let catalog = Catalog::new(open_store(backend, &layout.catalog_path())?);
        let mut slots = BTreeMap::new();
        let mut dirs_in_use = std::collections::HashSet::new();
        for entry in catalog.collections()? {
            match entry {
                Ok(e) => {
                    dirs_in_use.insert(e.dir.clone());
                    slots.insert(e.name.clone(), Slot::Loading(e));
                }
                Err((name, reason)) => {
                    slots.insert(name, Slot::Broken { reason, entry: None, retry: false });
                }
            }
        }
        let has_unreadable = slots.values().any(|s| matches!(s, Slot::Broken { entry: None, .. }));
        // Directories no catalog entry points at are left-overs of an interrupted create or
        // delete: the catalog commit never happened (or did, for a delete), so remove them.
        // With an unreadable entry we cannot tell which directory is its own: keep all.
        if !has_unreadable {
            for dir in layout.list_collection_dirs()? {
                if !dirs_in_use.contains(&dir) {
                    tracing::info!(dir = %dir, "removing collection directory not referenced by the catalog");
                    layout.remove_collection_dir(&dir)?;
                }
            }
        }
        let aliases = catalog.aliases()?;
        Ok(Arc::new(Registry {
            layout,
            placement: RwLock::new(None),
            catalog,
            defaults,
            slots: RwLock::new(slots),
            aliases: RwLock::new(aliases),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            structure: Mutex::new(()),
        }))
    }

    /// Enter cluster mode (before [`Registry::load_all`]).
    pub fn set_placement(&self, placement: Arc<dyn ShardPlacement>) {
        *self.placement.write() = Some(placement);
    }

    pub fn is_clustered(&self) -> bool {
        self.placement.read().is_some()
    }

    pub fn layout(&self) -> &StorageLayout {
        &self.layout
    }

    pub fn defaults(&self) -> &CollectionDefaults {
        &self.defaults
    }

    /// Load every listed collection. Returns (loaded, broken) counts.
    pub fn load_all(&self) -> (usize, usize) {
        let pending: Vec<CatalogEntry> = self
            .slots
            .read()
            .values()
            .filter_map(|s| match s {
                Slot::Loading(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        let (mut ok, mut bad) = (0, 0);
        for entry in pending {
            let name = entry.name.clone();
            let slot = match self.open_collection(&entry) {
                Ok(c) => {
                    ok += 1;
                    tracing::info!(collection = %name, points = c.info().points_count, "collection loaded");
                    Slot::Ready(Arc::new(c))
                }
                Err(e) => {
                    bad += 1;
                    tracing::error!(collection = %name, error = %e, "collection failed to load; marked red");
                    Slot::Broken { reason: e.to_string(), entry: Some(entry), retry: e.exhausted().is_some() }
                }
            };
            self.slots.write().insert(name, slot);
        }
        bad += self.slots.read().values().filter(|s| matches!(s, Slot::Broken { entry: None, .. })).count();
        self.ready.store(true, Ordering::SeqCst);
        (ok, bad)
    }

    /// Load again the collections that failed to load for want of a resource (a disk too full
    /// to open a database); the ones that load now serve without a restart. Returns how many.
    pub fn retry_broken(&self) -> usize {
        // Not beside a create, delete or restore of the same names, nor after shutdown began.
        let _g = self.structure.lock();
        if self.is_shutting_down() {
            return 0;
        }
        let waiting: Vec<CatalogEntry> = self
            .slots
            .read()
            .values()
            .filter_map(|s| match s {
                Slot::Broken { entry: Some(e), retry: true, .. } => Some(e.clone()),
                _ => None,
            })
            .collect();
        let mut loaded = 0;
        for entry in waiting {
            let opened = self.open_collection(&entry);
            let mut slots = self.slots.write();
            // The slot may have changed meanwhile (deleted, recreated, restored): leave it then.
            let unchanged =
                matches!(slots.get(&entry.name), Some(Slot::Broken { entry: Some(e), .. }) if e.dir == entry.dir);
            match opened {
                Ok(c) if unchanged => {
                    tracing::info!(collection = %entry.name, "collection loaded after a resource came back");
                    slots.insert(entry.name.clone(), Slot::Ready(Arc::new(c)));
                    loaded += 1;
                }
                Ok(c) => {
                    drop(slots);
                    c.shutdown();
                }
                Err(e) if unchanged => {
                    let retry = e.exhausted().is_some();
                    slots.insert(entry.name.clone(), Slot::Broken { reason: e.to_string(), entry: Some(entry), retry });
                }
                Err(_) => {}
            }
        }
        loaded
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn local_shards(&self, dir: &str, shared: &Arc<CollectionShared>) -> LocalShards {
        LocalShards { layout: self.layout.clone(), dir: dir.to_string(), shared: shared.clone() }
    }

    fn open_shard(&self, dir: &str, sid: u32, shared: &Arc<CollectionShared>) -> Result<Arc<dyn Shard>> {
        self.local_shards(dir, shared).open(sid)
    }

    /// Open shard `sid` of a collection: its local database, wrapped by the cluster placement
    /// in cluster mode (where the shard may have no replica on this peer).
    fn open_placed_shard(
        &self,
        entry: &CatalogEntry,
        sid: u32,
        shared: &Arc<CollectionShared>,
    ) -> Result<Arc<dyn Shard>> {
        let placement = self.placement.read().clone();
        match placement {
            None => self.open_shard(&entry.dir, sid, shared),
            Some(p) => {
                let files = Arc::new(self.local_shards(&entry.dir, shared));
                let local = if p.is_local(&entry.name, sid) { Some(files.open(sid)?) } else { None };
                Ok(p.wrap(&entry.name, sid, local, files))
            }
        }
    }

    fn open_collection(&self, entry: &CatalogEntry) -> Result<Collection> {
        let shared = CollectionShared::new(entry.config.clone(), entry.payload_schema.clone());
        let custom = entry.config.params.sharding_method == Some(qd_core::config::ShardingMethod::Custom);
        let set = if custom {
            let mut shards = Vec::new();
            for k in &entry.shard_keys {
                for sid in &k.shards {
                    shards.push(self.open_placed_shard(entry, *sid, &shared)?);
                }
            }
            ShardSet::custom(shards, &entry.shard_keys)
        } else {
            let mut shards = Vec::new();
            for sid in 0..entry.config.params.shard_number {
                shards.push(self.open_placed_shard(entry, sid, &shared)?);
            }
            ShardSet::auto(shards)
        };
        Ok(Collection::new(entry, shared, set))
    }

    /// `PUT /collections/{name}/shards`: create the shards of a new shard key.
    pub fn create_shard_key(&self, name: &str, key: ShardKey, shards_number: Option<u32>) -> Result<()> {
        let _g = self.structure.lock();
        let c = self.get(name)?;
        let n = shards_number.unwrap_or(c.config().params.shard_number).max(1);
        qd_core::limits::shard_count("shards_number", n)?;
        let first = c.shard_set().read().next_shard_id();
        self.add_key_locked(&c, key, (first..first + n).collect())
    }

    /// Add shard key `key` owning the new shards `ids` (in cluster mode, those consensus
    /// placed; this peer opens the replicas placed on it).
    pub fn add_shard_key(&self, name: &str, key: ShardKey, ids: Vec<crate::shard::ShardId>) -> Result<()> {
        let _g = self.structure.lock();
        let c = self.get(name)?;
        self.add_key_locked(&c, key, ids)
    }

    fn add_key_locked(&self, c: &Collection, key: ShardKey, ids: Vec<crate::shard::ShardId>) -> Result<()> {
        let name = c.name();
        let config = c.config();
        if config.params.sharding_method != Some(qd_core::config::ShardingMethod::Custom) {
            return Err(CollectionError::BadRequest(format!(
                "collection `{name}` does not use sharding_method: custom"
            )));
        }
        if c.shard_set().read().has_key(&key) {
            return Err(CollectionError::AlreadyExists(format!("Bad request: Shard key {key} already exists")));
        }
        let mut entry = c.catalog_entry();
        let shared = c.shared();
        let mut opened = Vec::new();
        let discard = |opened: &[Arc<dyn Shard>]| {
            for s in opened {
                let _ = s.shutdown();
                let _ = std::fs::remove_dir_all(self.layout.shard_dir(c.dir(), s.id()));
            }
        };
        for sid in &ids {
            match self.open_placed_shard(&entry, *sid, &shared) {
                Ok(s) => opened.push(s),
                Err(e) => {
                    discard(&opened);
                    return Err(e);
                }
            }
        }
        entry.shard_keys.push(crate::shard_set::ShardKeyEntry { key: key.clone(), shards: ids });
        if let Err(e) = self.catalog.apply(vec![CatalogChange::PutCollection(Box::new(entry))]) {
            discard(&opened);
            return Err(e);
        }
        c.shard_set().write().add_key(key, opened);
        Ok(())
    }

    /// `POST /collections/{name}/shards/delete`: drop a shard key and its shards' data.
    pub fn delete_shard_key(&self, name: &str, key: &ShardKey) -> Result<()> {
        let _g = self.structure.lock();
        let c = self.get(name)?;
        let mut entry = c.catalog_entry();
        let before = entry.shard_keys.len();
        entry.shard_keys.retain(|e| &e.key != key);
        if entry.shard_keys.len() == before {
            return Err(CollectionError::NotFound(format!("Shard key {key} does not exist")));
        }
        self.catalog.apply(vec![CatalogChange::PutCollection(Box::new(entry))])?;
        let removed = c.shard_set().write().remove_key(key)?;
        for s in removed {
            let _ = s.shutdown();
            if let Err(e) = std::fs::remove_dir_all(self.layout.shard_dir(c.dir(), s.id())) {
                tracing::warn!(shard = s.id(), error = %e, "could not remove the data of a deleted shard key");
            }
        }
        Ok(())
    }

    fn resolve(&self, name: &str) -> String {
        self.aliases.read().get(name).cloned().unwrap_or_else(|| name.to_string())
    }

    /// A ready collection by name or alias.
    pub fn get(&self, name: &str) -> Result<Arc<Collection>> {
        let name = self.resolve(name);
        match self.slots.read().get(&name) {
            Some(Slot::Ready(c)) => Ok(c.clone()),
            Some(Slot::Loading(_)) => {
                Err(CollectionError::Unavailable(format!("Collection `{name}` is still loading")))
            }
            Some(Slot::Broken { reason, .. }) => {
                Err(CollectionError::Unavailable(format!("Collection `{name}` is damaged: {reason}")))
            }
            None => Err(CollectionError::NotFound(format!("Collection `{name}` doesn't exist!"))),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        let name = self.resolve(name);
        self.slots.read().contains_key(&name)
    }

    pub fn list(&self) -> Vec<String> {
        self.slots.read().keys().cloned().collect()
    }

    /// Collection info; a damaged collection is reported red with the reason as a warning.
    pub fn info(&self, name: &str) -> Result<CollectionInfo> {
        let name = self.resolve(name);
        let broken = match self.slots.read().get(&name) {
            Some(Slot::Ready(c)) => return Ok(c.info()),
            Some(Slot::Loading(e)) => Some(("grey", "collection is loading".to_string(), Some(e.clone()))),
            Some(Slot::Broken { reason, entry, .. }) => Some(("red", reason.clone(), entry.clone())),
            None => None,
        };
        match broken {
            Some((status, reason, Some(entry))) => Ok(CollectionInfo {
                status,
                optimizer_status: serde_json::json!({ "error": reason.clone() }),
                warnings: vec![serde_json::json!({ "message": reason })],
                indexed_vectors_count: 0,
                points_count: 0,
                segments_count: 0,
                config: entry.config,
                payload_schema: BTreeMap::new(),
                shards: Vec::new(),
                created_at: entry.created_at,
            }),
            Some((_, reason, None)) => {
                Err(CollectionError::Unavailable(format!("Collection `{name}` is damaged: {reason}")))
            }
            None => Err(CollectionError::NotFound(format!("Collection `{name}` doesn't exist!"))),
        }
    }

    /// Check a create request and turn it into the collection's config.
    pub fn prepare_create(&self, name: &str, request: CreateCollection) -> Result<CollectionConfig> {
        validate_collection_name(name)?;
        let config = request.into_config(&self.defaults)?;
        qd_core::limits::shard_count("shard_number", config.params.shard_number)?;
        Ok(config)
    }

    pub fn create(&self, name: &str, request: CreateCollection) -> Result<()> {
        let config = self.prepare_create(name, request)?;
        self.create_with(name, config, now_rfc3339())
    }

    /// Create a collection consensus agreed on, unless it exists already (cluster mode applies
    /// the same change more than once after a restart).
    pub fn create_from_cluster(&self, name: &str, config: CollectionConfig, created_at: &str) -> Result<()> {
        if self.exists(name) {
            return Ok(());
        }
        self.create_with(name, config, created_at.to_string())
    }

    fn create_with(&self, name: &str, config: CollectionConfig, created_at: String) -> Result<()> {
        let _g = self.structure.lock();
        if self.slots.read().contains_key(name) {
            return Err(CollectionError::AlreadyExists(format!("Wrong input: Collection `{name}` already exists!")));
        }
        if self.aliases.read().contains_key(name) {
            return Err(CollectionError::AlreadyExists(format!("Wrong input: Alias `{name}` already exists!")));
        }
        let entry = CatalogEntry {
            name: name.to_string(),
            dir: uuid::Uuid::new_v4().simple().to_string(),
            config,
            created_at,
            payload_schema: Default::default(),
            shard_keys: Vec::new(),
        };
        let collection = match self.open_collection(&entry) {
            Ok(c) => c,
            Err(e) => {
                let _ = self.layout.remove_collection_dir(&entry.dir);
                return Err(e);
            }
        };
        // The catalog commit is the point where the collection starts to exist.
        if let Err(e) = self.catalog.apply(vec![CatalogChange::PutCollection(Box::new(entry.clone()))]) {
            collection.shutdown();
            let _ = self.layout.remove_collection_dir(&entry.dir);
            return Err(e);
        }
        self.slots.write().insert(name.to_string(), Slot::Ready(Arc::new(collection)));
        Ok(())
    }

    /// Delete a collection and its aliases. `Ok(false)` if it did not exist.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let _g = self.structure.lock();
        let dir = match self.slots.read().get(name) {
            None => return Ok(false),
            Some(Slot::Ready(c)) => Some(c.dir().to_string()),
            Some(Slot::Loading(e)) | Some(Slot::Broken { entry: Some(e), .. }) => Some(e.dir.clone()),
            Some(Slot::Broken { entry: None, .. }) => None,
        };
        let dead_aliases: Vec<String> =
            self.aliases.read().iter().filter(|(_, c)| c.as_str() == name).map(|(a, _)| a.clone()).collect();
        let mut changes = vec![CatalogChange::DeleteCollection(name.to_string())];
        changes.extend(dead_aliases.iter().cloned().map(CatalogChange::DeleteAlias));
        self.catalog.apply(changes)?;
        {
            let mut aliases = self.aliases.write();
            for a in &dead_aliases {
                aliases.remove(a);
            }
        }
        let slot = self.slots.write().remove(name);
        if let Some(Slot::Ready(c)) = slot {
            c.shutdown();
        }
        if let Some(dir) = dir {
            self.layout.remove_collection_dir(&dir)?;
        }
        Ok(true)
    }

    /// Replace a collection's config (PATCH), persisting it in the catalog first.
    pub fn update_config(
        &self,
        name: &str,
        f: impl FnOnce(&CollectionConfig) -> Result<CollectionConfig>,
    ) -> Result<()> {
        let _g = self.structure.lock();
        let c = self.get(name)?;
        let new_config = f(&c.config())?;
        let mut entry = c.catalog_entry();
        entry.config = new_config.clone();
        self.catalog.apply(vec![CatalogChange::PutCollection(Box::new(entry))])?;
        c.set_config(new_config);
        Ok(())
    }

    /// Add a named vector (dense, multi or sparse) to a live collection, or drop one (`None`);
    /// persisted in the catalog first, then every shard reshapes its segments. Dropping
    /// removes the vector from every point.
    pub fn set_vector(&self, name: &str, vector: &str, spec: Option<NewVector>) -> Result<()> {
        if spec.is_none() {
            // Remove the vector from the points first, so that nothing of it survives in the
            // stored records (a vector added later under the same name starts empty).
            let c = self.get(name)?;
            if c.config().params.has_vector(vector) {
                let has =
                    qd_core::filter::Filter::must(vec![qd_core::filter::Condition::HasVector(vector.to_string())]);
                let op = crate::operations::UpdateOp::DeleteVectors {
                    selection: crate::operations::PointSelection::Filter(has),
                    names: vec![vector.to_string()],
                };
                c.update(op, true, None)?;
            }
        }
        self.update_config(name, |cfg| with_vector(cfg, vector, spec.as_ref()))?;
        let c = self.get(name)?;
        let params = c.config().params;
        for shard in c.shards() {
            shard.vectors_changed(&params);
        }
        Ok(())
    }

    /// Declare (`Some`) or drop (`None`) a payload index; persisted in the catalog.
    pub fn set_payload_index(&self, name: &str, field: &str, spec: Option<PayloadIndexSpec>) -> Result<()> {
        let _g = self.structure.lock();
        let c = self.get(name)?;
        let mut schema = c.payload_schema();
        match spec {
            Some(s) => {
                if !schema.contains_key(field) {
                    c.check_strict(|strict| strict.new_index(schema.len()))?;
                }
                schema.insert(field.to_string(), s);
            }
            None => {
                schema.remove(field);
            }
        }
        let mut entry = c.catalog_entry();
        entry.payload_schema = schema.clone();
        self.catalog.apply(vec![CatalogChange::PutCollection(Box::new(entry))])?;
        c.set_payload_schema(schema);
        Ok(())
    }

    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.aliases.read().clone()
    }

    /// Apply alias actions atomically: all succeed or none is applied.
    pub fn update_aliases(&self, actions: Vec<AliasAction>) -> Result<()> {
        let _g = self.structure.lock();
        let mut next = self.aliases.read().clone();
        let mut changes = Vec::new();
        for a in actions {
            match a {
                AliasAction::Create { alias, collection } => {
                    if !self.slots.read().contains_key(&collection) {
                        return Err(CollectionError::NotFound(format!("Collection `{collection}` doesn't exist!")));
                    }
                    if self.slots.read().contains_key(&alias) {
                        return Err(CollectionError::AlreadyExists(format!(
                            "Wrong input: Collection `{alias}` already exists!"
                        )));
                    }
                    next.insert(alias.clone(), collection.clone());
                    changes.push(CatalogChange::PutAlias { alias, collection });
                }
                AliasAction::Delete { alias } => {
                    if next.remove(&alias).is_none() {
                        return Err(CollectionError::NotFound(format!("Alias `{alias}` doesn't exist!")));
                    }
                    changes.push(CatalogChange::DeleteAlias(alias));
                }
                AliasAction::Rename { old, new } => {
                    let target = next
                        .remove(&old)
                        .ok_or_else(|| CollectionError::NotFound(format!("Alias `{old}` doesn't exist!")))?;
                    next.insert(new.clone(), target.clone());
                    changes.push(CatalogChange::DeleteAlias(old));
                    changes.push(CatalogChange::PutAlias { alias: new, collection: target });
                }
            }
        }
        self.catalog.apply(changes)?;
        *self.aliases.write() = next;
        Ok(())
    }

    /// Stop every collection: drain update queues and flush.
    /// Whether [`Registry::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // A reload of a red collection in progress finishes first (and is then shut down here).
        drop(self.structure.lock());
        let slots = std::mem::take(&mut *self.slots.write());
        for (_, s) in slots {
            if let Slot::Ready(c) = s {
                c.shutdown();
            }
        }
    }

    /// Summary for logs and telemetry: (collections, broken).
    pub fn summary(&self) -> Value {
        let slots = self.slots.read();
        serde_json::json!({
            "collections": slots.len(),
            "broken": slots.values().filter(|s| matches!(s, Slot::Broken { .. })).count(),
        })
    }

    // ---- snapshots (see crate::snapshot) ----

    /// Restore a collection snapshot read from `source` as collection `name`.
    ///
    /// The archive is streamed into a new collection directory (with this server's backend),
    /// checked end to end, and opened; only then is the catalog entry switched to the new
    /// directory in one synced write, and the in-memory collection swapped. Readers see the old
    /// collection or the new one, never a mix. On any failure before the switch the new
    /// directory is removed and an existing collection of that name is untouched. After the
    /// switch the old collection is shut down and its directory removed.
    pub fn restore_collection(
        &self,
        name: &str,
        source: &mut dyn std::io::Read,
        total: Option<u64>,
        opts: &crate::snapshot::RestoreOptions,
        progress: crate::snapshot::ProgressFn<'_>,
    ) -> Result<crate::snapshot::Restored> {
        validate_collection_name(name)?;
        self.check_restore_target(name, opts)?;
        let dir = uuid::Uuid::new_v4().simple().to_string();
        let cleanup = |e: CollectionError| {
            if let Err(rm) = self.layout.remove_collection_dir(&dir) {
                tracing::warn!(dir = %dir, error = %rm, "could not remove the directory of a failed restore");
            }
            e
        };
        let restored = crate::snapshot::restore::restore_into_dir(
            &self.layout,
            &dir,
            source,
            total,
            opts.checksum.as_deref(),
            progress,
        )
        .map_err(cleanup)?;
        let entry = restored.catalog_entry(name, &dir).map_err(cleanup)?;
        let collection = self.open_collection(&entry).map_err(cleanup)?;
        let old_dir = {
            let _g = self.structure.lock();
            if let Err(e) = self.check_restore_target(name, opts) {
                collection.shutdown();
                return Err(cleanup(e));
            }
            let old_dir = match self.slots.read().get(name) {
                Some(Slot::Ready(c)) => Some(c.dir().to_string()),
                Some(Slot::Loading(e)) | Some(Slot::Broken { entry: Some(e), .. }) => Some(e.dir.clone()),
                Some(Slot::Broken { entry: None, .. }) | None => None,
            };
            // The catalog commit is the switch: before it the old collection is intact.
            if let Err(e) = self.catalog.apply(vec![CatalogChange::PutCollection(Box::new(entry))]) {
                collection.shutdown();
                return Err(cleanup(e));
            }
            let old = self.slots.write().insert(name.to_string(), Slot::Ready(Arc::new(collection)));
            if let Some(Slot::Ready(c)) = old {
                c.shutdown();
            }
            old_dir
        };
        if let Some(old) = old_dir.filter(|d| *d != dir) {
            if let Err(e) = self.layout.remove_collection_dir(&old) {
                // Unreferenced now: the next start removes it.
                tracing::warn!(dir = %old, error = %e, "could not remove the replaced collection's directory");
            }
        }
        tracing::info!(collection = %name, records = restored.records, bytes = restored.size, "collection restored from snapshot");
        Ok(restored)
    }

    /// Whether `name` may receive a restore now (checked before and again at the switch).
    fn check_restore_target(&self, name: &str, opts: &crate::snapshot::RestoreOptions) -> Result<()> {
        if self.aliases.read().contains_key(name) {
            return Err(CollectionError::BadRequest(format!("`{name}` is an alias; restore into a collection name")));
        }
        match self.slots.read().get(name) {
            None => Ok(()),
            Some(_) if !opts.replace_existing => {
                Err(CollectionError::AlreadyExists(format!("Wrong input: Collection `{name}` already exists!")))
            }
            Some(Slot::Loading(_)) if !opts.at_startup => {
                Err(CollectionError::Unavailable(format!("Collection `{name}` is still loading; retry when ready")))
            }
            Some(_) => Ok(()),
        }
    }

    /// Open a shard, retrying for a few seconds while a request that still held the previous
    /// shard at this path lets go of its database.
    fn open_shard_patiently(&self, dir: &str, sid: u32, shared: &Arc<CollectionShared>) -> Result<Arc<dyn Shard>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.open_shard(dir, sid, shared) {
                Ok(s) => return Ok(s),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    /// Replace one shard of a live collection with the shard held by a snapshot (a shard
    /// snapshot, or a collection snapshot of one shard). The archive is verified and written
    /// into a fresh database first; the running shard is swapped only after that succeeded, and
    /// its old database is kept until the new one opened.
    pub fn restore_shard(
        &self,
        name: &str,
        shard_id: u32,
        source: &mut dyn std::io::Read,
        total: Option<u64>,
        checksum: Option<&str>,
        progress: crate::snapshot::ProgressFn<'_>,
    ) -> Result<crate::snapshot::Restored> {
        let c = self.get(name)?;
        if !c.shards().iter().any(|s| s.id() == shard_id) {
            return Err(CollectionError::NotFound(format!("Shard {shard_id} of collection `{name}` does not exist")));
        }
        let (staged, restored) =
            StagedShard::restore(&self.layout, "shard-restore", source, total, checksum, progress)?;
        if restored.config.params.vectors != c.config().params.vectors {
            return Err(CollectionError::BadRequest(format!(
                "the snapshot's vectors config does not match collection `{name}`"
            )));
        }
        // The scratch directory goes when `staged` does, at the end, whatever happens.
        let staged_dir = staged.path();
        let target = self.layout.shard_dir(c.dir(), shard_id);
        let old = target.with_extension("replaced");
        let io = |p: &std::path::Path, e| CollectionError::Storage(qd_storage::StorageError::io(p, e));
        let _g = self.structure.lock();
        // Requests wait on the shard set while the shard is swapped (seconds at most).
        let mut set = c.shard_set().write();
        let Some(previous) = set.take(shard_id) else {
            return Err(CollectionError::NotFound(format!("Shard {shard_id} of collection `{name}` does not exist")));
        };
        // Drain and close the old shard: its database must be closed before a new one opens
        // at the same path (RocksDB refuses a path this process still has open).
        let stopped = previous.shutdown();
        drop(previous);
        if let Err(e) = stopped {
            set.replace(self.open_shard(c.dir(), shard_id, &c.shared())?);
            return Err(e);
        }
        let _ = std::fs::remove_dir_all(&old);
        let reopen_old = |set: &mut crate::shard_set::ShardSet| {
            if let Ok(shard) = self.open_shard_patiently(c.dir(), shard_id, &c.shared()) {
                set.replace(shard);
            }
        };
        if let Err(e) = std::fs::rename(&target, &old) {
            reopen_old(&mut set);
            return Err(io(&target, e));
        }
        let swapped = std::fs::rename(&staged_dir, &target)
            .map_err(|e| io(&staged_dir, e))
            .and_then(|_| self.open_shard_patiently(c.dir(), shard_id, &c.shared()));
        match swapped {
            Ok(shard) => {
                set.replace(shard);
                let _ = std::fs::remove_dir_all(&old);
                Ok(restored)
            }
            Err(e) => {
                // Put the old database back and serve it again.
                let _ = std::fs::remove_dir_all(&target);
                if std::fs::rename(&old, &target).is_ok() {
                    reopen_old(&mut set);
                }
                Err(e)
            }
        }
    }
}

/// `cfg` with named vector `vector` added (`Some`) or dropped (`None`): the config change of
/// `PUT`/`DELETE /collections/{name}/vectors/{vector}`, checked.
pub fn with_vector(cfg: &CollectionConfig, vector: &str, spec: Option<&NewVector>) -> Result<CollectionConfig> {
    let mut cfg = cfg.clone();
    let params = &mut cfg.params;
    match spec {
        Some(spec) => {
            if params.has_vector(vector) {
                return Err(CollectionError::BadRequest(format!(
                    "Wrong input: Vector with name `{vector}` already exists"
                )));
            }
            if vector.is_empty() {
                return Err(CollectionError::BadRequest("Wrong input: vector name must not be empty".into()));
            }
            match spec {
                NewVector::Dense(p) => {
                    p.validate(vector)?;
                    match &mut params.vectors {
                        qd_core::config::VectorsConfig::Multi(m) => {
                            m.insert(vector.to_string(), p.clone());
                        }
                        qd_core::config::VectorsConfig::Single(_) => return Err(CollectionError::BadRequest(
                            "Wrong input: this collection has one unnamed vector; named vectors cannot be added to it"
                                .into(),
                        )),
                    }
                }
                NewVector::Sparse(p) => {
                    params.sparse_vectors.get_or_insert_with(BTreeMap::new).insert(vector.to_string(), *p);
                }
            }
            params.validate_names()?;
        }
        None => {
            let removed = match &mut params.vectors {
                qd_core::config::VectorsConfig::Multi(m) => m.remove(vector).is_some(),
                qd_core::config::VectorsConfig::Single(_) => false,
            } || params.sparse_vectors.as_mut().is_some_and(|s| s.remove(vector).is_some());
            if !removed {
                return Err(CollectionError::NotFound(format!(
                    "Wrong input: Not existing vector name error: {vector}"
                )));
            }
            if params.sparse_vectors.as_ref().is_some_and(BTreeMap::is_empty) {
                params.sparse_vectors = None;
            }
        }
    }
    Ok(cfg)
}

/// The named vectors of a config that [`with_vector`] can add or drop, with their specs.
pub fn named_vectors(cfg: &CollectionConfig) -> BTreeMap<String, NewVector> {
    let mut out = BTreeMap::new();
    if let qd_core::config::VectorsConfig::Multi(m) = &cfg.params.vectors {
        for (name, p) in m {
            out.insert(name.clone(), NewVector::Dense(p.clone()));
        }
    }
    for (name, p) in cfg.params.sparse_vectors.iter().flatten() {
        out.insert(name.clone(), NewVector::Sparse(*p));
    }
    out
}

/// One action of `POST /collections/aliases`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum AliasAction {
    Create { alias: String, collection: String },
    Delete { alias: String },
    Rename { old: String, new: String },
}
