//! Merges and vacuums copy live points without holding the shard's lock: writes that land while
//! they run (deletes, overwrites) must survive the swap, on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use qd_core::config::{CollectionDefaults, CreateCollection};
use qd_core::selectors::{PayloadSelector, VectorSelector};
use qd_core::vectors::{NamedVectors, Vector};
use qd_core::PointId;
use qd_storage::{open_store, BackendKind};
use serde_json::json;

use super::{LocalShard, Shard};
use crate::collection::CollectionShared;
use crate::operations::{PointInsert, PointSelection, UpdateOp, WithSelectors};

const DIM: usize = 16;

fn vector(id: u64, round: u64) -> Vec<f32> {
    (0..DIM).map(|d| (id * 31 + round * 7 + d as u64) as f32).collect()
}

fn upsert(ids: impl Iterator<Item = u64>, round: u64) -> UpdateOp {
    UpdateOp::Upsert(
        ids.map(|i| PointInsert {
            id: PointId::Num(i),
            vectors: NamedVectors::from([(String::new(), Vector::Dense(vector(i, round)))]),
            payload: None,
        })
        .collect(),
    )
}

/// A shard whose optimizer seals every few points and keeps one sealed segment, so it merges
/// and vacuums all the time.
fn open(dir: &std::path::Path, kind: BackendKind) -> LocalShard {
    let req: CreateCollection = serde_json::from_value(json!({
        "vectors": {"size": DIM, "distance": "Euclid"},
        "optimizers_config": {"indexing_threshold": 1, "default_segment_number": 1,
                              "deleted_threshold": 0.05, "vacuum_min_vector_number": 10},
        "hnsw_config": {"m": 4, "ef_construct": 8}
    }))
    .expect("request");
    let config = req.into_config(&CollectionDefaults::default()).expect("config");
    let shared = CollectionShared::new(config, Default::default());
    let store = open_store(kind, &dir.join("db")).expect("store");
    LocalShard::open(0, store, shared, dir.join("vectors")).expect("open shard")
}

fn contents(shard: &LocalShard) -> BTreeMap<u64, Vec<f32>> {
    let ids = shard.scroll_ids(None, None, usize::MAX).expect("scroll");
    let with = WithSelectors { payload: PayloadSelector::None, vector: VectorSelector::All };
    let mut out = BTreeMap::new();
    for r in shard.retrieve(&ids, &with).expect("retrieve") {
        let PointId::Num(id) = r.id else { panic!("numeric ids only") };
        match r.vector.as_ref().and_then(|v| v.get("")) {
            Some(Vector::Dense(v)) => out.insert(id, v.clone()),
            other => panic!("point {id}: {other:?}"),
        };
    }
    out
}

#[test]
fn writes_during_merges_survive_the_swap() {
    for kind in BackendKind::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let shard = Arc::new(open(dir.path(), kind));
        let mut expected: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for round in 0..60u64 {
            // New points, then overwrites and deletes of older ones, one operation each, so
            // the optimizer's merges keep running between them.
            let fresh = round * 20..round * 20 + 20;
            shard.update(upsert(fresh.clone(), round), true).expect("upsert");
            fresh.for_each(|i| {
                expected.insert(i, vector(i, round));
            });
            let older: Vec<u64> = expected.keys().copied().filter(|i| i % 7 == round % 7).take(10).collect();
            shard.update(upsert(older.iter().copied(), round + 1000), true).expect("overwrite");
            for i in &older {
                expected.insert(*i, vector(*i, round + 1000));
            }
            let gone: Vec<u64> = expected.keys().copied().filter(|i| i % 11 == round % 11).take(5).collect();
            let ids = gone.iter().map(|i| PointId::Num(*i)).collect();
            shard.update(UpdateOp::Delete(PointSelection::Ids(ids)), true).expect("delete");
            for i in &gone {
                expected.remove(i);
            }
        }
        // Let the optimizer finish, then compare every point.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while shard.stats().optimizing {
            assert!(std::time::Instant::now() < deadline, "{kind}: optimizer never settled");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let merges = shard.optimizations().1.iter().filter(|o| o.name == "merge" || o.name == "vacuum").count();
        assert!(merges > 0, "{kind}: no merge or vacuum ran");
        assert_eq!(contents(&shard), expected, "{kind}: after merges");
        shard.shutdown().expect("shutdown");
        drop(shard);
        let reopened = open(dir.path(), kind);
        assert_eq!(contents(&reopened), expected, "{kind}: after a restart");
        reopened.shutdown().expect("shutdown");
    }
}
