//! The commit-failure branches of a shard's writes, driven by a store that fails chosen writes
//! as a full disk or an exhausted file table does, over both real backends.

use std::sync::Arc;

use qd_core::config::{CollectionDefaults, CreateCollection};
use qd_core::vectors::{NamedVectors, Vector};
use qd_core::PointId;
use qd_storage::faulty::{Fault, FaultyStore};
use qd_storage::{open_store, BackendKind, KvStore, Resource};
use serde_json::json;

use super::{LocalShard, Shard};
use crate::collection::CollectionShared;
use crate::error::CollectionError;
use crate::operations::{PointInsert, PointSelection, UpdateOp, WithSelectors};
use qd_core::selectors::{PayloadSelector, VectorSelector};

fn upsert(ids: std::ops::Range<u64>) -> UpdateOp {
    UpdateOp::Upsert(
        ids.map(|i| PointInsert {
            id: PointId::Num(i),
            vectors: NamedVectors::from([(String::new(), Vector::Dense(vec![i as f32, 1.0]))]),
            payload: None,
        })
        .collect(),
    )
}

fn open(dir: &std::path::Path, store: Arc<dyn KvStore>) -> LocalShard {
    let req: CreateCollection =
        serde_json::from_value(json!({"vectors": {"size": 2, "distance": "Dot"}})).expect("request");
    let config = req.into_config(&CollectionDefaults::default()).expect("config");
    let shared = CollectionShared::new(config, Default::default());
    LocalShard::open(0, store, shared, dir.join("vectors")).expect("open shard")
}

#[test]
fn a_failed_commit_applies_nothing_and_writes_resume_once_the_store_does() {
    for kind in BackendKind::ALL {
        for resource in [Resource::Disk, Resource::OpenFiles] {
            let dir = tempfile::tempdir().expect("tempdir");
            let faulty = Arc::new(FaultyStore::new(open_store(kind, &dir.path().join("db")).expect("store")));
            let shard = open(dir.path(), faulty.clone());
            shard.update(upsert(0..10), true).expect("first write");

            faulty.set(Fault { resource: Some(resource), from: 1, count: u64::MAX });
            let err = shard.update(upsert(10..20), true).expect_err("commit fails");
            match &err {
                CollectionError::CommitFailed { shard: 0, source } => assert_eq!(source.exhausted(), Some(resource)),
                other => panic!("{kind}: expected CommitFailed, got {other:?}"),
            }
            assert!(err.to_string().starts_with(&format!("Service internal error: {}", resource.message())), "{err}");
            assert_eq!(err.exhausted(), Some(resource));
            assert_eq!(shard.count(None).expect("count"), 10, "{kind}: nothing of the failed batch is visible");
            // While the store still refuses, the recovery probe fails with the store's error.
            let err = shard.update(upsert(20..30), true).expect_err("still failing");
            assert!(matches!(err, CollectionError::CommitFailed { .. }), "{err:?}");

            faulty.clear();
            shard.update(upsert(30..40), true).expect("writes resume without a restart");
            assert_eq!(shard.count(None).expect("count"), 20);
            shard.shutdown().expect("shutdown");
            drop((shard, faulty));

            // Reopened on the plain store: exactly the acknowledged writes.
            let store = open_store(kind, &dir.path().join("db")).expect("reopen");
            let shard = open(dir.path(), store);
            assert_eq!(shard.count(None).expect("count"), 20, "{kind}");
            for id in [0, 9, 30, 39] {
                assert_eq!(shard.retrieve(&[PointId::Num(id)], &Default::default()).expect("get").len(), 1);
            }
            assert!(shard.retrieve(&[PointId::Num(15)], &Default::default()).expect("get").is_empty());
            shard.shutdown().expect("shutdown");
        }
    }
}

#[test]
fn an_io_error_in_a_commit_stops_writes_until_restart() {
    for kind in BackendKind::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let faulty = Arc::new(FaultyStore::new(open_store(kind, &dir.path().join("db")).expect("store")));
        let shard = open(dir.path(), faulty.clone());
        shard.update(upsert(0..5), true).expect("first");
        // One EIO (a failed fsync): the disk's state is unknown, so no probe may resume writes.
        faulty.set(Fault { resource: None, from: 1, count: 1 });
        assert!(matches!(shard.update(upsert(5..10), true), Err(CollectionError::CommitFailed { .. })));
        let err = shard.update(upsert(10..15), true).expect_err("stopped");
        assert!(matches!(err, CollectionError::ShardStopped { shard: 0, .. }), "{kind}: {err:?}");
        assert!(err.to_string().contains("restart the server"), "{err}");
        assert_eq!(shard.count(None).expect("reads go on"), 5);
        shard.shutdown().expect("shutdown");
        drop((shard, faulty));
        let shard = open(dir.path(), open_store(kind, &dir.path().join("db")).expect("reopen"));
        shard.update(upsert(10..15), true).expect("a restart takes writes again");
        assert_eq!(shard.count(None).expect("count"), 10, "{kind}");
        shard.shutdown().expect("shutdown");
    }
}

#[test]
fn a_single_failed_write_in_a_stream_fails_only_its_own_callers() {
    for kind in BackendKind::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let faulty = Arc::new(FaultyStore::new(open_store(kind, &dir.path().join("db")).expect("store")));
        let shard = open(dir.path(), faulty.clone());
        // The second commit fails once; the probe and every later write pass.
        faulty.set(Fault { resource: Some(Resource::Disk), from: 2, count: 1 });
        shard.update(upsert(0..5), true).expect("first");
        assert!(shard.update(upsert(5..10), true).is_err());
        shard.update(upsert(10..15), true).expect("third");
        assert_eq!(faulty.failures(), 1);
        assert_eq!(shard.count(None).expect("count"), 10, "{kind}");
        shard.shutdown().expect("shutdown");
    }
}

/// A payload kept on disk that cannot be read refuses a payload update of its point (the
/// update would otherwise rewrite the point without its other keys) and a retrieve asking for
/// it; delete, overwrite and clear still work. Once reads work again the point has its payload,
/// unchanged.
#[test]
fn an_unreadable_payload_on_disk_refuses_updates_and_loses_nothing() {
    for kind in BackendKind::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let faulty = Arc::new(FaultyStore::new(open_store(kind, &dir.path().join("db")).expect("store")));
        let req: CreateCollection = serde_json::from_value(json!({
            "vectors": {"size": 2, "distance": "Dot"}, "on_disk_payload": true,
            "optimizers_config": {"indexing_threshold": 1}
        }))
        .expect("request");
        let config = req.into_config(&CollectionDefaults::default()).expect("config");
        let shard = LocalShard::open(
            0,
            faulty.clone(),
            CollectionShared::new(config, Default::default()),
            dir.path().join("vectors"),
        )
        .expect("open shard");
        let points = (0..300u64)
            .map(|i| PointInsert {
                id: PointId::Num(i),
                vectors: NamedVectors::from([(String::new(), Vector::Dense(vec![i as f32, 1.0]))]),
                payload: json!({"keep": i, "tag": "a"}).as_object().cloned(),
            })
            .collect();
        shard.update(UpdateOp::Upsert(points), true).expect("upsert");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while shard.stats().optimizing || shard.stats().ram_payload_bytes > 0 {
            assert!(std::time::Instant::now() < deadline, "{kind}: payloads never moved to disk");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let with = WithSelectors { payload: PayloadSelector::All, vector: VectorSelector::None };
        let payload_of = |id: u64| shard.retrieve(&[PointId::Num(id)], &with).expect("retrieve")[0].payload.clone();

        faulty.fail_reads(true);
        let set = UpdateOp::SetPayload {
            payload: json!({"new": 1}).as_object().cloned().expect("object"),
            selection: PointSelection::Ids(vec![PointId::Num(3)]),
            key: None,
        };
        let err = shard.update(set, true).expect_err("the point's payload cannot be read");
        assert!(err.to_string().contains("could not be read"), "{kind}: {err}");
        // A retrieve asking for payloads fails (a transfer must not copy the point without one);
        // operations that drop or replace the payload still work, to repair such a point.
        assert!(shard.retrieve(&[PointId::Num(3)], &with).is_err(), "{kind}");
        let without = WithSelectors { payload: PayloadSelector::None, vector: VectorSelector::All };
        assert_eq!(shard.retrieve(&[PointId::Num(3)], &without).expect("vectors only").len(), 1);
        shard.update(UpdateOp::Delete(PointSelection::Ids(vec![PointId::Num(5)])), true).expect("delete");
        let overwrite = UpdateOp::OverwritePayload {
            payload: json!({"fixed": true}).as_object().cloned().expect("object"),
            selection: PointSelection::Ids(vec![PointId::Num(6)]),
        };
        shard.update(overwrite, true).expect("overwrite");
        shard.update(UpdateOp::ClearPayload(PointSelection::Ids(vec![PointId::Num(7)])), true).expect("clear");

        faulty.fail_reads(false);
        assert_eq!(payload_of(3), json!({"keep": 3, "tag": "a"}).as_object().cloned(), "{kind}: nothing lost");
        assert!(shard.retrieve(&[PointId::Num(5)], &with).expect("retrieve").is_empty(), "{kind}: deleted");
        assert_eq!(payload_of(6), json!({"fixed": true}).as_object().cloned(), "{kind}: overwritten");
        assert_eq!(payload_of(7), Some(Default::default()), "{kind}: cleared");
        shard.shutdown().expect("shutdown");
    }
}
