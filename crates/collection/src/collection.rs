//! A collection: its config and its shards. Routes writes to shards by a stable hash of the
//! point id, fans reads out to every shard in parallel and merges the answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use qd_core::config::{CollectionConfig, CollectionParams, Datatype, VectorsConfig};
use qd_core::filter::{Filter, TextIndexes};
use qd_core::json_path::JsonPath;
use qd_core::vectors::{validate_vectors, NamedVectors, SparseVector, Vector, VectorSpec};
use qd_core::PointId;
use qd_segment::{IndexKind, PayloadIndexDef};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{CatalogEntry, PayloadIndexSpec};
use crate::error::{CollectionError, Result};
use crate::operations::{
    PointInsert, Record, SearchSettings, ShardHit, ShardQuery, ShardSearch, ShardStats, UpdateOp, UpdateResult,
    WithSelectors, WriteOrdering,
};
use crate::shard::Shard;
use crate::shard_set::{ReadScope, ShardKey, ShardSet};

/// Qdrant's `CollectionInfo`, plus per-shard figures.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionInfo {
    pub status: &'static str,
    pub optimizer_status: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Value>,
    pub indexed_vectors_count: usize,
    pub points_count: usize,
    pub segments_count: usize,
    pub config: CollectionConfig,
    pub payload_schema: BTreeMap<String, Value>,
    /// Beyond Qdrant: measured memory and disk use, and per-shard figures.
    pub shards: Vec<ShardStats>,
    pub created_at: String,
}

/// What a collection shares with its shards: config and payload indexes, both changeable at
/// run time (PATCH, index creation) and read by the optimizers.
#[derive(Debug)]
pub struct CollectionShared {
    pub config: RwLock<CollectionConfig>,
    pub payload_schema: RwLock<BTreeMap<String, PayloadIndexSpec>>,
    /// The analysers of the schema's full-text indexes, rebuilt with the schema: every filter a
    /// shard evaluates binds its text matches to them.
    text_indexes: RwLock<Arc<TextIndexes>>,
    /// The schema's payload indexes that segments build, with the analysers above.
    index_defs: RwLock<Arc<Vec<PayloadIndexDef>>>,
    /// Strict mode's rate limit buckets on this node.
    rates: parking_lot::Mutex<crate::rate_limit::RateLimits>,
}

impl CollectionShared {
    pub fn new(config: CollectionConfig, payload_schema: BTreeMap<String, PayloadIndexSpec>) -> Arc<Self> {
        let text = text_indexes(&payload_schema);
        let index_defs = RwLock::new(Arc::new(payload_index_defs(&payload_schema, &text)));
        Arc::new(CollectionShared {
            config: RwLock::new(config),
            payload_schema: RwLock::new(payload_schema),
            text_indexes: RwLock::new(Arc::new(text)),
            index_defs,
            rates: Default::default(),
        })
    }

    /// Replace the payload schema (and the full-text analysers built from it).
    pub fn set_payload_schema(&self, schema: BTreeMap<String, PayloadIndexSpec>) {
        let text = text_indexes(&schema);
        let defs = Arc::new(payload_index_defs(&schema, &text));
        let mut guard = self.payload_schema.write();
        *self.text_indexes.write() = Arc::new(text);
        *self.index_defs.write() = defs;
        *guard = schema;
    }

    /// The payload indexes segments build (by field, as paths display).
    pub fn payload_index_defs(&self) -> Arc<Vec<PayloadIndexDef>> {
        Arc::clone(&self.index_defs.read())
    }

    /// The full-text indexes of the schema, by field.
    pub fn text_indexes(&self) -> Arc<TextIndexes> {
        Arc::clone(&self.text_indexes.read())
    }
}

/// The analyser of every `text` index of a schema whose settings parse. (Settings are checked
/// when the index is created; one stored by an older build that does not parse is left out,
/// so its field keeps plain word matching, and logged.)
fn text_indexes(schema: &BTreeMap<String, PayloadIndexSpec>) -> TextIndexes {
    let mut out = TextIndexes::new();
    for (field, spec) in schema.iter().filter(|(_, s)| s.data_type == "text") {
        let built = spec
            .text_params()
            .and_then(|p| qd_inference::TextIndex::new(p).map_err(|e| e.to_string()))
            .and_then(|ix| Ok((field.parse::<JsonPath>().map_err(|e| e.to_string())?, ix)));
        match built {
            Ok((path, index)) => {
                out.insert(path, Arc::new(index));
            }
            Err(e) => tracing::warn!(field, error = %e, "full-text index settings not understood; plain word matching"),
        }
    }
    out
}

/// The payload indexes of a schema that segments build, by field (as paths display; of two
/// spellings of one path, the later): types with an index structure, and full-text fields
/// with an analyser in `text`.
pub fn payload_index_defs(schema: &BTreeMap<String, PayloadIndexSpec>, text: &TextIndexes) -> Vec<PayloadIndexDef> {
    let defs = schema.iter().filter_map(|(field, spec)| {
        let path = field.parse::<JsonPath>().ok()?;
        let kind = IndexKind::from_schema(&spec.data_type)?;
        let analyser = match kind {
            IndexKind::Text => Some(Arc::clone(text.get(&path)?)),
            _ => None,
        };
        Some(PayloadIndexDef { path, kind, analyser })
    });
    let by_key: BTreeMap<String, PayloadIndexDef> = defs.map(|d| (d.key(), d)).collect();
    by_key.into_values().collect()
}

pub struct Collection {
    name: String,
    dir: String,
    created_at: String,
    shared: Arc<CollectionShared>,
    shards: RwLock<ShardSet>,
}

impl Collection {
    pub fn new(entry: &CatalogEntry, shared: Arc<CollectionShared>, shards: ShardSet) -> Self {
        Collection {
            name: entry.name.clone(),
            dir: entry.dir.clone(),
            created_at: entry.created_at.clone(),
            shared,
            shards: RwLock::new(shards),
        }
    }

    /// What the catalog records for this collection now.
    pub fn catalog_entry(&self) -> CatalogEntry {
        CatalogEntry {
            name: self.name.clone(),
            dir: self.dir.clone(),
            config: self.config(),
            created_at: self.created_at.clone(),
            payload_schema: self.payload_schema(),
            shard_keys: self.shards.read().key_entries(),
        }
    }

    pub fn payload_schema(&self) -> BTreeMap<String, PayloadIndexSpec> {
        self.shared.payload_schema.read().clone()
    }

    pub fn set_payload_schema(&self, schema: BTreeMap<String, PayloadIndexSpec>) {
        self.shared.set_payload_schema(schema);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// Run `check` against this collection's strict mode, if it is enabled (crate::strict).
    pub fn check_strict(&self, check: impl FnOnce(&crate::strict::Strict<'_>) -> Result<()>) -> Result<()> {
        if self.shared.config.read().strict_mode_config.enabled != Some(true) {
            return Ok(());
        }
        let config = self.config();
        match crate::strict::Strict::new(&config.strict_mode_config, self.payload_schema().into_keys()) {
            Some(s) => check(&s),
            None => Ok(()),
        }
    }

    /// Live points in the collection now.
    pub fn points_count(&self) -> usize {
        self.count(None, ReadScope::default()).unwrap_or(0)
    }

    /// The analysers of the collection's full-text indexes, by field.
    pub(crate) fn text_indexes(&self) -> Arc<TextIndexes> {
        self.shared.text_indexes()
    }

    /// The declared index of `key`, if any.
    fn index_of(&self, key: &JsonPath) -> Option<PayloadIndexSpec> {
        self.shared
            .payload_schema
            .read()
            .iter()
            .find(|(field, _)| field.parse::<JsonPath>().ok().as_ref() == Some(key))
            .map(|(_, spec)| spec.clone())
    }

    /// Facets need an index that answers `match` on the key (keyword, uuid, bool, integer with
    /// `lookup`), as in Qdrant.
    pub fn require_facet_index(&self, key: &JsonPath) -> Result<()> {
        let ok = self.index_of(key).is_some_and(|spec| match spec.data_type.as_str() {
            "keyword" | "uuid" | "bool" => true,
            "integer" => spec.flag("lookup"),
            _ => false,
        });
        if ok {
            return Ok(());
        }
        Err(CollectionError::BadRequest(format!(
            "No appropriate index for faceting: `{key}`. Please create one to facet on this field. Check \
             https://qdrant.tech/documentation/concepts/indexing/#payload-index to see which payload schemas support \
             Match conditions"
        )))
    }

    /// `order_by` needs an index that answers ranges on the key (integer with `range`, float,
    /// datetime), as in Qdrant.
    pub fn require_order_index(&self, key: &JsonPath) -> Result<()> {
        let ok = self.index_of(key).is_some_and(|spec| match spec.data_type.as_str() {
            "float" | "datetime" => true,
            "integer" => spec.flag("range"),
            _ => false,
        });
        if ok {
            return Ok(());
        }
        Err(CollectionError::BadRequest(format!(
            "No range index for `order_by` key: `{key}`. Please create one to use `order_by`. Check \
             https://qdrant.tech/documentation/concepts/indexing/#payload-index to see which payload schemas support \
             Range conditions"
        )))
    }

    /// What the collection holds now, for strict mode's caps on writes.
    pub fn usage(&self) -> crate::strict::Usage {
        let (vector_bytes, payload_bytes) =
            self.shards().iter().map(|s| s.stored_bytes()).fold((0, 0), |(v, p), (sv, sp)| (v + sv, p + sp));
        crate::strict::Usage { points: self.points_count(), vector_bytes, payload_bytes }
    }

    /// Charge `cost` tokens to strict mode's read or write rate limit (when strict mode is on
    /// and that limit is set); 429 when the bucket cannot pay.
    pub fn charge(&self, access: crate::rate_limit::Access, cost: usize) -> Result<()> {
        let limit = {
            let cfg = self.shared.config.read();
            let strict = &cfg.strict_mode_config;
            match access {
                _ if strict.enabled != Some(true) => None,
                crate::rate_limit::Access::Read => strict.read_rate_limit,
                crate::rate_limit::Access::Write => strict.write_rate_limit,
            }
        };
        self.shared.rates.lock().charge(access, limit, cost as u64)
    }

    pub fn config(&self) -> CollectionConfig {
        self.shared.config.read().clone()
    }

    pub fn set_config(&self, config: CollectionConfig) {
        *self.shared.config.write() = config;
    }

    /// The shard keys of a collection with custom sharding (in key order); `None` with
    /// automatic sharding, where keys do not exist (Qdrant's `GET .../shards` says `null`).
    pub fn shard_keys(&self) -> Option<Vec<ShardKey>> {
        let set = self.shards.read();
        set.is_custom().then(|| set.key_entries().into_iter().map(|e| e.key).collect())
    }

    /// Every shard of the collection.
    pub fn shards(&self) -> Vec<Arc<dyn Shard>> {
        self.shards.read().all()
    }

    /// Bytes the databases of the shards stored on this node take on disk (`only`: one shard),
    /// about what a snapshot of them takes: the free-space check before one starts. Read from
    /// the local databases only (never a remote peer).
    pub fn local_disk_bytes(&self, only: Option<u32>) -> u64 {
        self.shards()
            .iter()
            .filter(|s| only.is_none_or(|id| s.id() == id))
            .filter_map(|s| s.snapshot_source())
            .map(|src| src.store.disk_usage_bytes())
            .sum()
    }

    pub fn shared(&self) -> Arc<CollectionShared> {
        self.shared.clone()
    }

    pub fn shard_set(&self) -> &RwLock<ShardSet> {
        &self.shards
    }

    /// Validate vectors against the config and preprocess them (Cosine normalisation, row by
    /// row for multivectors).
    fn prepare_vectors(vectors: &mut NamedVectors, params: &CollectionParams, require_default: bool) -> Result<()> {
        validate_vectors(vectors, params)?;
        if require_default {
            if let VectorsConfig::Single(_) = params.vectors {
                if vectors.is_empty() {
                    return Err(CollectionError::BadRequest("Wrong input: point has no vector".into()));
                }
            }
        }
        for (name, v) in vectors.iter_mut() {
            if let Some(p) = params.vectors.get(name) {
                preprocess_stored((p.distance, p.datatype), v);
            }
        }
        Ok(())
    }

    /// Validate and normalise an update before it is routed; rejects the whole request on the
    /// first problem so nothing is half-written.
    fn prepare(&self, op: &mut UpdateOp) -> Result<()> {
        let config = self.shared.config.read();
        let params = &config.params;
        match op {
            UpdateOp::Upsert(points) => {
                for p in points.iter_mut() {
                    Self::prepare_vectors(&mut p.vectors, params, true)
                        .map_err(|e| CollectionError::BadRequest(format!("point {}: {}", p.id, strip(e))))?;
                }
                // Later duplicates of an id win, as if applied one after another.
                let mut seen = std::collections::HashSet::new();
                let mut dedup: Vec<_> = points.drain(..).rev().filter(|p| seen.insert(p.id)).collect();
                dedup.reverse();
                *points = dedup;
            }
            UpdateOp::UpdateVectors(items) => {
                for (id, v) in items.iter_mut() {
                    if v.is_empty() {
                        return Err(CollectionError::BadRequest(format!("point {id}: no vectors to update")));
                    }
                    Self::prepare_vectors(v, params, false)
                        .map_err(|e| CollectionError::BadRequest(format!("point {id}: {}", strip(e))))?;
                }
            }
            UpdateOp::Conditional { op, .. } => {
                drop(config);
                return self.prepare(op);
            }
            UpdateOp::DeleteVectors { names, .. } => {
                if let Some(n) = names.iter().find(|n| !params.has_vector(n)) {
                    return Err(CollectionError::BadRequest(format!(
                        "Wrong input: Not existing vector name error: {n}"
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Check that an update would be accepted (vectors, names, shard keys) without applying it.
    pub fn validate_update(&self, op: &UpdateOp, keys: Option<&[ShardKey]>) -> Result<()> {
        let mut op = op.clone();
        self.prepare(&mut op)?;
        self.shards.read().for_write(keys, op.explicit_ids().as_deref())?;
        Ok(())
    }

    /// Copy the points of shard key `from` that pass `filter` into the shards of key `to`
    /// (Qdrant's `replicate_points`, used to promote a tenant to shards of its own), page by
    /// page through the normal write path; returns how many were copied. A point written to
    /// `from` while the copy runs may be copied as it was before that write.
    pub fn copy_points_between_keys(&self, from: &ShardKey, to: &ShardKey, filter: Option<&Filter>) -> Result<usize> {
        const PAGE: usize = 1024;
        if from == to {
            return Err(CollectionError::BadRequest("from_shard_key and to_shard_key must differ".into()));
        }
        let (source, target) = (std::slice::from_ref(from), std::slice::from_ref(to));
        {
            let shards = self.shards.read();
            shards.for_read(Some(source))?;
            shards.for_read(Some(target))?;
        }
        let with = WithSelectors::whole();
        let (mut next, mut copied) = (None, 0);
        loop {
            let (records, after) = self.scroll(next, filter, PAGE, &with, ReadScope::keys(Some(source)))?;
            if !records.is_empty() {
                copied += records.len();
                let points = records
                    .into_iter()
                    .map(|r| PointInsert { id: r.id, vectors: r.vector.unwrap_or_default(), payload: r.payload })
                    .collect();
                self.update(UpdateOp::Upsert(points), true, Some(target))?;
            }
            match after {
                Some(a) => next = Some(a),
                None => return Ok(copied),
            }
        }
    }

    /// Apply an update: split by owning shard for ids, every shard in scope for filters.
    pub fn update(&self, op: UpdateOp, wait: bool, keys: Option<&[ShardKey]>) -> Result<UpdateResult> {
        self.update_ordered(op, wait, keys, WriteOrdering::Weak)
    }

    /// [`update`](Self::update) with Qdrant's write `ordering` (acted on by replicated shards).
    pub fn update_ordered(
        &self,
        mut op: UpdateOp,
        wait: bool,
        keys: Option<&[ShardKey]>,
        ordering: WriteOrdering,
    ) -> Result<UpdateResult> {
        self.prepare(&mut op)?;
        let targets = self.shards.read().for_write(keys, op.explicit_ids().as_deref())?;
        let single = targets.len() == 1;
        let parts: Vec<(Arc<dyn Shard>, UpdateOp)> = targets
            .into_iter()
            .map(|(shard, ids)| match ids {
                Some(ids) if !single => {
                    let set: std::collections::HashSet<PointId> = ids.into_iter().collect();
                    let part = op.restrict_to(&|id| set.contains(id));
                    (shard, part)
                }
                _ => (shard, op.clone()),
            })
            .collect();
        // Shards commit in parallel (each has its own writer and fsync).
        let results: Vec<Result<UpdateResult>> = if parts.len() == 1 {
            parts.into_iter().map(|(s, part)| s.update_ordered(part, wait, ordering)).collect()
        } else {
            std::thread::scope(|sc| {
                let handles: Vec<_> = parts
                    .into_iter()
                    .map(|(s, part)| sc.spawn(move || s.update_ordered(part, wait, ordering)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| Err(CollectionError::Internal("shard update panicked".into())))
                    })
                    .collect()
            })
        };
        let mut result: Option<UpdateResult> = None;
        for r in results {
            let r = r?;
            result = Some(match result {
                None => r,
                Some(prev) => UpdateResult { operation_id: prev.operation_id.max(r.operation_id), status: r.status },
            });
        }
        Ok(result.unwrap_or(UpdateResult {
            operation_id: None,
            status: if wait {
                crate::operations::UpdateStatus::Completed
            } else {
                crate::operations::UpdateStatus::Acknowledged
            },
        }))
    }

    /// Run `f` on the given shards, in parallel when there are several.
    fn fan_out<T: Send>(shards: &[Arc<dyn Shard>], f: impl Fn(&dyn Shard) -> Result<T> + Sync) -> Result<Vec<T>> {
        if shards.len() == 1 {
            return Ok(vec![f(shards[0].as_ref())?]);
        }
        // Rayon's pool: no thread is started per request, and shard searches of concurrent
        // requests share the cores instead of oversubscribing them.
        use rayon::prelude::*;
        shards.par_iter().map(|sh| f(sh.as_ref())).collect()
    }

    /// Distance of a configured vector (Dot for sparse vectors), or a 400 naming the unknown
    /// vector.
    pub fn distance_of(&self, vector_name: &str) -> Result<qd_core::Distance> {
        let config = self.shared.config.read();
        match VectorSpec::of(&config.params, vector_name) {
            Some(VectorSpec::Dense(p)) => Ok(p.distance),
            Some(VectorSpec::Sparse(_)) => Ok(qd_core::Distance::Dot),
            None => Err(VectorSpec::unknown(vector_name).into()),
        }
    }

    /// How query vectors for `vector_name` are prepared ([`preprocess`]).
    pub(crate) fn prep_of(&self, vector_name: &str) -> Result<Prep> {
        let config = self.shared.config.read();
        match VectorSpec::of(&config.params, vector_name) {
            Some(VectorSpec::Dense(p)) => Ok((p.distance, p.datatype)),
            Some(VectorSpec::Sparse(_)) => Ok((qd_core::Distance::Dot, None)),
            None => Err(VectorSpec::unknown(vector_name).into()),
        }
    }

    /// Check a query vector against vector `vector_name`'s config (kind and dimension).
    pub fn check_vector(&self, vector_name: &str, v: &Vector) -> Result<()> {
        let config = self.shared.config.read();
        let spec = VectorSpec::of(&config.params, vector_name).ok_or_else(|| VectorSpec::unknown(vector_name))?;
        Ok(spec.check(vector_name, v)?)
    }

    /// Scale a sparse query's weights by IDF when vector `vector_name` has the `idf` modifier:
    /// `ln((n - df + 0.5) / (df + 0.5) + 1)` with `n` the live points holding that vector and
    /// `df` those among them holding the index, over every shard in scope (as Qdrant).
    pub(crate) fn apply_idf(&self, vector_name: &str, q: &mut SparseVector, scope: ReadScope<'_>) -> Result<()> {
        let idf = self.shared.config.read().params.sparse(vector_name).is_some_and(|p| p.idf());
        if !idf || q.is_empty() {
            return Ok(());
        }
        let shards = self.shards.read().for_read(scope.keys)?;
        let parts = Self::fan_out(&shards, |s| s.sparse_df(vector_name, &q.indices))?;
        let mut df = vec![0usize; q.indices.len()];
        let mut n = 0usize;
        for (d, with) in parts {
            df.iter_mut().zip(d).for_each(|(a, b)| *a += b);
            n += with;
        }
        for (v, d) in q.values.iter_mut().zip(df) {
            let (n, d) = (n as f64, d as f64);
            *v = (*v as f64 * ((n - d + 0.5) / (d + 0.5) + 1.0).ln()) as f32;
        }
        Ok(())
    }

    /// Top `top` ids by score across all shards (scores internal), best first, ties by id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search_points(
        &self,
        vector_name: &str,
        query: ShardQuery,
        filter: Option<Filter>,
        top: usize,
        threshold: Option<f32>,
        settings: &SearchSettings,
        scope: ReadScope<'_>,
    ) -> Result<Vec<ShardHit>> {
        let shard_req =
            ShardSearch { vector_name: vector_name.to_string(), query, filter, top, threshold, settings: *settings };
        let shards = self.shards.read().for_read(scope.keys)?;
        let mut hits: Vec<ShardHit> = Self::fan_out(&shards, |s| s.search_consistent(&shard_req, scope.consistency))?
            .into_iter()
            .flatten()
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        // The same id may live under several shard keys: keep its best hit once.
        let mut seen = std::collections::HashSet::new();
        hits.retain(|h| seen.insert(h.id));
        hits.truncate(top);
        Ok(hits)
    }

    /// Points by id in the order asked (duplicates and unknown ids dropped).
    pub fn retrieve(&self, ids: &[PointId], with: &WithSelectors, scope: ReadScope<'_>) -> Result<Vec<Record>> {
        let mut per_shard: BTreeMap<u32, (Arc<dyn Shard>, Vec<PointId>)> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        {
            let set = self.shards.read();
            for id in ids {
                if seen.insert(*id) {
                    for shard in set.owners(scope.keys, id)? {
                        per_shard.entry(shard.id()).or_insert_with(|| (shard.clone(), Vec::new())).1.push(*id);
                    }
                }
            }
        }
        let mut found: BTreeMap<PointId, Record> = BTreeMap::new();
        for (_, (shard, part)) in per_shard {
            for r in shard.retrieve_consistent(&part, with, scope.consistency)? {
                found.entry(r.id).or_insert(r);
            }
        }
        let mut seen = std::collections::HashSet::new();
        Ok(ids.iter().filter(|id| seen.insert(**id)).filter_map(|id| found.remove(id)).collect())
    }

    /// One page in id order: the points and the id where the next page starts.
    pub fn scroll(
        &self,
        from: Option<PointId>,
        filter: Option<&Filter>,
        limit: usize,
        with: &WithSelectors,
        scope: ReadScope<'_>,
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        let fetch = limit.saturating_add(1);
        let shards = self.shards.read().for_read(scope.keys)?;
        let mut ids: Vec<PointId> =
            Self::fan_out(&shards, |s| s.scroll_ids_consistent(from, filter, fetch, scope.consistency))?
                .into_iter()
                .flatten()
                .collect();
        ids.sort();
        ids.dedup();
        ids.truncate(fetch);
        let next = if ids.len() > limit { ids.pop() } else { None };
        Ok((self.retrieve(&ids, with, scope)?, next))
    }

    /// Every live id passing the filter, ascending, deduplicated across shard keys.
    pub fn all_ids(&self, filter: Option<&Filter>, scope: ReadScope<'_>) -> Result<Vec<PointId>> {
        let shards = self.shards.read().for_read(scope.keys)?;
        let mut ids: Vec<PointId> =
            Self::fan_out(&shards, |s| s.scroll_ids_consistent(None, filter, usize::MAX, scope.consistency))?
                .into_iter()
                .flatten()
                .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// `(order value, id)` entries of the shards in scope; `None` when ids may repeat across
    /// shards (custom sharding over several keys).
    pub fn order_entries_by_shard(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
        scope: ReadScope<'_>,
    ) -> Result<Option<Vec<(f64, PointId)>>> {
        let parts = self.fan_out_disjoint(scope, |s| s.order_entries_consistent(key, filter, scope.consistency))?;
        Ok(parts.map(|p| p.into_iter().flatten().collect()))
    }

    /// Facet counts summed over the shards in scope; `None` when ids may repeat across shards
    /// (custom sharding over several keys).
    pub fn facet_by_shard(
        &self,
        key: &qd_core::json_path::JsonPath,
        filter: Option<&Filter>,
        scope: ReadScope<'_>,
    ) -> Result<Option<Vec<(Value, usize)>>> {
        let parts = self.fan_out_disjoint(scope, |s| s.facet_consistent(key, filter, scope.consistency))?;
        Ok(parts.map(|p| crate::shard::merge_facets(p.into_iter())))
    }

    /// `f` on every shard in scope, when those shards hold disjoint sets of points; `None` under
    /// custom sharding over several keys, where one id may be in several shards.
    fn fan_out_disjoint<T: Send>(
        &self,
        scope: ReadScope<'_>,
        f: impl Fn(&dyn Shard) -> Result<T> + Sync,
    ) -> Result<Option<Vec<T>>> {
        let set = self.shards.read();
        if set.is_custom() && scope.keys.is_none_or(|k| k.len() > 1) {
            return Ok(None);
        }
        let shards = set.for_read(scope.keys)?;
        drop(set);
        Self::fan_out(&shards, f).map(Some)
    }

    pub fn count(&self, filter: Option<&Filter>, scope: ReadScope<'_>) -> Result<usize> {
        match self.fan_out_disjoint(scope, |s| s.count_consistent(filter, scope.consistency))? {
            Some(counts) => Ok(counts.into_iter().sum()),
            // Ids may repeat across keys: count distinct ids.
            None => Ok(self.all_ids(filter, scope)?.len()),
        }
    }

    /// Figures of every shard with its key, without the collection-wide counts `info` adds.
    pub fn shard_stats(&self) -> Vec<ShardStats> {
        let set = self.shards.read();
        set.all()
            .iter()
            .map(|s| {
                let mut st = s.stats();
                st.shard_key = set.key_of(s.id()).map(|k| k.to_json());
                st
            })
            .collect()
    }

    pub fn info(&self) -> CollectionInfo {
        let shards = self.shard_stats();
        let optimizing = shards.iter().any(|s| s.optimizing);
        let errors: Vec<String> = shards.iter().filter_map(|s| s.optimizer_error.clone()).collect();
        CollectionInfo {
            status: if !errors.is_empty() {
                "red"
            } else if optimizing {
                "yellow"
            } else {
                "green"
            },
            optimizer_status: match errors.first() {
                Some(e) => serde_json::json!({ "error": e }),
                None => Value::String("ok".into()),
            },
            warnings: errors.iter().map(|e| serde_json::json!({ "message": format!("optimizer: {e}") })).collect(),
            indexed_vectors_count: shards.iter().map(|s| s.indexed_vectors_count).sum(),
            points_count: shards.iter().map(|s| s.points_count).sum(),
            segments_count: shards.iter().map(|s| s.segments_count).sum(),
            config: self.config(),
            payload_schema: self.payload_schema_info(),
            shards,
            created_at: self.created_at.clone(),
        }
    }

    /// `payload_schema` of collection info: each index with the number of points holding a value.
    fn payload_schema_info(&self) -> BTreeMap<String, Value> {
        self.payload_schema()
            .into_iter()
            .map(|(field, spec)| {
                let points = field
                    .parse::<qd_core::json_path::JsonPath>()
                    .ok()
                    .and_then(|path| {
                        // `is_empty: false` in `must`: answered by the field's payload index in
                        // every segment, reading only the payloads of the appendable segment's
                        // newest slots.
                        let present = qd_core::filter::FieldCondition {
                            key: path,
                            check: qd_core::filter::FieldCheck::IsEmpty(false),
                        };
                        let f = Filter { must: vec![qd_core::filter::Condition::Field(present)], ..Filter::default() };
                        self.count(Some(&f), ReadScope::default()).ok()
                    })
                    .unwrap_or(0);
                let mut v = serde_json::json!({ "data_type": spec.data_type, "points": points });
                if let Some(p) = spec.params {
                    v["params"] = p;
                }
                (field, v)
            })
            .collect()
    }

    /// `GET /collections/{name}/optimizations`: running and recent optimizations per shard.
    pub fn optimizations(&self) -> Value {
        let mut running = Vec::new();
        let mut completed = Vec::new();
        for s in self.shards() {
            let (r, c) = s.optimizations();
            running.extend(r.map(|mut r| {
                r.name = format!("shard {}: {}", s.id(), r.name);
                r
            }));
            completed.extend(c.into_iter().map(|mut c| {
                c.name = format!("shard {}: {}", s.id(), c.name);
                c
            }));
        }
        serde_json::json!({ "running": running, "completed": completed })
    }

    pub fn shutdown(&self) {
        for s in self.shards() {
            if let Err(e) = s.shutdown() {
                tracing::warn!(collection = %self.name, shard = s.id(), error = %e, "shard shutdown failed");
            }
        }
    }
}

/// How a dense vector's values are prepared: its metric and its storage datatype.
pub(crate) type Prep = (qd_core::Distance, Option<Datatype>);

/// Preprocessing of a stored or query vector, per row of a multivector: the metric's (Cosine:
/// unit length) and the datatype's values, in Qdrant's order (`uint8` values are taken before
/// normalising, `float16` ones after). Sparse vectors are used as given.
pub(crate) fn preprocess((distance, datatype): Prep, v: &mut Vector) {
    let prep = |r: &mut [f32]| match datatype {
        Some(Datatype::Uint8) => {
            Datatype::Uint8.round(r);
            distance.preprocess(r);
        }
        other => {
            distance.preprocess(r);
            if let Some(dt) = other {
                dt.round(r);
            }
        }
    };
    match v {
        Vector::Dense(d) => prep(d),
        Vector::Multi(m) => m.rows_mut().for_each(prep),
        Vector::Sparse(_) => {}
    }
}

/// Preprocessing of a vector to store: [`preprocess`], except that Cosine `uint8` vectors keep
/// their whole numbers, as Qdrant stores them (the segment reads them normalised for scoring,
/// and a read returns them as written).
pub(crate) fn preprocess_stored(prep: Prep, v: &mut Vector) {
    match prep {
        (qd_core::Distance::Cosine, Some(Datatype::Uint8)) => preprocess((qd_core::Distance::Dot, prep.1), v),
        _ => preprocess(prep, v),
    }
}

/// A stored vector (read back from a point) made a query vector: what [`preprocess_stored`]
/// left out (the normalisation of Cosine `uint8` vectors); others were stored preprocessed.
pub(crate) fn stored_as_query(prep: Prep, v: &mut Vector) {
    if prep == (qd_core::Distance::Cosine, Some(Datatype::Uint8)) {
        preprocess(prep, v);
    }
}

/// Message of an error without its category prefix, for embedding in another message.
fn strip(e: CollectionError) -> String {
    match e {
        CollectionError::BadRequest(m) => m,
        other => other.to_string(),
    }
}
