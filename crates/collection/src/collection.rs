//! A collection: its config and its shards. Routes writes to shards by a stable hash of the
//! point id, fans reads out to every shard in parallel and merges the answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use qd_core::config::{CollectionConfig, VectorsConfig};
use qd_core::filter::Filter;
use qd_core::vectors::{validate_vectors, NamedVectors};
use qd_core::PointId;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{CatalogEntry, PayloadIndexSpec};
use crate::error::{CollectionError, Result};
use crate::operations::{
    Record, ScoredPoint, ShardHit, ShardQuery, ShardSearch, ShardStats, UpdateOp, UpdateResult, WithSelectors,
};
use crate::shard::Shard;

/// A nearest-neighbour search as the collection receives it (vector not yet preprocessed).
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub vector_name: String,
    pub vector: Vec<f32>,
    pub filter: Option<Filter>,
    pub limit: usize,
    pub offset: usize,
    /// User-facing threshold (a distance for Euclid/Manhattan).
    pub score_threshold: Option<f32>,
    pub with: WithSelectors,
    pub hnsw_ef: Option<usize>,
    pub exact: bool,
}

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
}

impl CollectionShared {
    pub fn new(config: CollectionConfig, payload_schema: BTreeMap<String, PayloadIndexSpec>) -> Arc<Self> {
        Arc::new(CollectionShared { config: RwLock::new(config), payload_schema: RwLock::new(payload_schema) })
    }
}

pub struct Collection {
    name: String,
    dir: String,
    created_at: String,
    shared: Arc<CollectionShared>,
    shards: Vec<Arc<dyn Shard>>,
}

impl Collection {
    pub fn new(entry: &CatalogEntry, shared: Arc<CollectionShared>, shards: Vec<Arc<dyn Shard>>) -> Self {
        Collection {
            name: entry.name.clone(),
            dir: entry.dir.clone(),
            created_at: entry.created_at.clone(),
            shared,
            shards,
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
        }
    }

    pub fn payload_schema(&self) -> BTreeMap<String, PayloadIndexSpec> {
        self.shared.payload_schema.read().clone()
    }

    pub fn set_payload_schema(&self, schema: BTreeMap<String, PayloadIndexSpec>) {
        *self.shared.payload_schema.write() = schema;
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

    pub fn config(&self) -> CollectionConfig {
        self.shared.config.read().clone()
    }

    pub fn set_config(&self, config: CollectionConfig) {
        *self.shared.config.write() = config;
    }

    pub fn shards(&self) -> &[Arc<dyn Shard>] {
        &self.shards
    }

    /// The shard a point id belongs to. Must never change for a given id and shard count.
    pub fn shard_index(&self, id: &PointId) -> usize {
        (id.stable_hash() % self.shards.len() as u64) as usize
    }

    /// Validate vectors against the config and preprocess them (Cosine normalisation).
    fn prepare_vectors(vectors: &mut NamedVectors, config: &VectorsConfig, require_default: bool) -> Result<()> {
        validate_vectors(vectors, config)?;
        if require_default {
            if let VectorsConfig::Single(_) = config {
                if vectors.is_empty() {
                    return Err(CollectionError::BadRequest("Wrong input: point has no vector".into()));
                }
            }
        }
        for (name, v) in vectors.iter_mut() {
            if let Some(p) = config.get(name) {
                p.distance.preprocess(v);
            }
        }
        Ok(())
    }

    /// Validate and normalise an update before it is routed; rejects the whole request on the
    /// first problem so nothing is half-written.
    fn prepare(&self, op: &mut UpdateOp) -> Result<()> {
        let config = self.shared.config.read();
        let vectors = &config.params.vectors;
        match op {
            UpdateOp::Upsert(points) => {
                for p in points.iter_mut() {
                    Self::prepare_vectors(&mut p.vectors, vectors, true)
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
                    Self::prepare_vectors(v, vectors, false)
                        .map_err(|e| CollectionError::BadRequest(format!("point {id}: {}", strip(e))))?;
                }
            }
            UpdateOp::DeleteVectors { names, .. } => {
                if let Some(n) = names.iter().find(|n| vectors.get(n).is_none()) {
                    return Err(CollectionError::BadRequest(format!(
                        "Wrong input: Not existing vector name error: {n}"
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Apply an update: split by shard for ids, broadcast for filters.
    pub fn update(&self, mut op: UpdateOp, wait: bool) -> Result<UpdateResult> {
        self.prepare(&mut op)?;
        let targets: Vec<(usize, UpdateOp)> = match (op.explicit_ids(), self.shards.len()) {
            (_, 1) => vec![(0, op)],
            (Some(ids), n) => {
                let mut hit = vec![false; n];
                for id in &ids {
                    hit[self.shard_index(id)] = true;
                }
                (0..n).filter(|i| hit[*i]).map(|i| (i, op.restrict_to(&|id| self.shard_index(id) == i))).collect()
            }
            (None, n) => (0..n).map(|i| (i, op.clone())).collect(),
        };
        let mut result: Option<UpdateResult> = None;
        for (i, part) in targets {
            let r = self.shards[i].update(part, wait)?;
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

    /// Run `f` on every shard, in parallel when there are several.
    fn fan_out<T: Send>(&self, f: impl Fn(&dyn Shard) -> Result<T> + Sync) -> Result<Vec<T>> {
        if self.shards.len() == 1 {
            return Ok(vec![f(self.shards[0].as_ref())?]);
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = self.shards.iter().map(|sh| s.spawn(|| f(sh.as_ref()))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(CollectionError::Corrupt("shard task panicked".into()))))
                .collect()
        })
    }

    /// Distance of a configured vector, or a 400 naming the unknown vector.
    pub fn distance_of(&self, vector_name: &str) -> Result<qd_core::Distance> {
        let config = self.shared.config.read();
        config.params.vectors.get(vector_name).map(|p| p.distance).ok_or_else(|| {
            CollectionError::BadRequest(format!("Wrong input: Not existing vector name error: {vector_name}"))
        })
    }

    pub fn check_dim(&self, vector_name: &str, got: usize) -> Result<()> {
        let config = self.shared.config.read();
        let params = config.params.vectors.get(vector_name).ok_or_else(|| {
            CollectionError::BadRequest(format!("Wrong input: Not existing vector name error: {vector_name}"))
        })?;
        if got as u64 != params.size {
            return Err(CollectionError::BadRequest(format!(
                "Wrong input: Vector dimension error: expected dim: {}, got {got}",
                params.size
            )));
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
        hnsw_ef: Option<usize>,
        exact: bool,
    ) -> Result<Vec<ShardHit>> {
        let shard_req =
            ShardSearch { vector_name: vector_name.to_string(), query, filter, top, threshold, hnsw_ef, exact };
        let mut hits: Vec<ShardHit> = self.fan_out(|s| s.search(&shard_req))?.into_iter().flatten().collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(top);
        Ok(hits)
    }

    /// Classic search (`/points/search`): nearest to one vector.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.check_dim(&req.vector_name, req.vector.len())?;
        let distance = self.distance_of(&req.vector_name)?;
        let mut vector = req.vector.clone();
        distance.preprocess(&mut vector);
        let hits = self.search_points(
            &req.vector_name,
            ShardQuery::Nearest(vector),
            req.filter.clone(),
            req.offset.saturating_add(req.limit),
            req.score_threshold.map(|t| distance.preprocess_threshold(t)),
            req.hnsw_ef,
            req.exact,
        )?;
        let points = hits
            .into_iter()
            .skip(req.offset)
            .map(|h| ScoredPoint {
                id: h.id,
                version: h.version,
                score: distance.postprocess(h.score),
                payload: None,
                vector: None,
                shard_key: None,
                order_value: None,
            })
            .collect();
        self.attach(points, &req.with)
    }

    /// Points by id in the order asked (duplicates and unknown ids dropped).
    pub fn retrieve(&self, ids: &[PointId], with: &WithSelectors) -> Result<Vec<Record>> {
        let mut per_shard: Vec<Vec<PointId>> = vec![Vec::new(); self.shards.len()];
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if seen.insert(*id) {
                per_shard[self.shard_index(id)].push(*id);
            }
        }
        let mut found: BTreeMap<PointId, Record> = BTreeMap::new();
        for (i, part) in per_shard.iter().enumerate() {
            if !part.is_empty() {
                for r in self.shards[i].retrieve(part, with)? {
                    found.insert(r.id, r);
                }
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
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        let fetch = limit.saturating_add(1);
        let mut ids: Vec<PointId> =
            self.fan_out(|s| s.scroll_ids(from, filter, fetch))?.into_iter().flatten().collect();
        ids.sort();
        ids.truncate(fetch);
        let next = if ids.len() > limit { ids.pop() } else { None };
        Ok((self.retrieve(&ids, with)?, next))
    }

    pub fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        Ok(self.fan_out(|s| s.count(filter))?.into_iter().sum())
    }

    pub fn info(&self) -> CollectionInfo {
        let shards: Vec<ShardStats> = self.shards.iter().map(|s| s.stats()).collect();
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
                        let f = Filter::must_not(vec![qd_core::filter::Condition::IsEmpty(path)]);
                        self.count(Some(&f)).ok()
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
        for s in &self.shards {
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
        for s in &self.shards {
            if let Err(e) = s.shutdown() {
                tracing::warn!(collection = %self.name, shard = s.id(), error = %e, "shard shutdown failed");
            }
        }
    }
}

/// Message of an error without its category prefix, for embedding in another message.
fn strip(e: CollectionError) -> String {
    match e {
        CollectionError::BadRequest(m) => m,
        other => other.to_string(),
    }
}
