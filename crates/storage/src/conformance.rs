//! One conformance suite, instantiated for every backend: whatever the engine relies on from a
//! [`KvStore`] is asserted here for SQLite and RocksDB alike.

use std::path::Path;
use std::sync::Arc;

use crate::{open_store, BackendKind, KvStore, ScanControl, Table, WriteBatch};

fn store(kind: BackendKind, dir: &Path) -> Arc<dyn KvStore> {
    let path = dir.join(match kind {
        BackendKind::Sqlite => "db.sqlite",
        BackendKind::Rocksdb => "db.rocksdb",
    });
    open_store(kind, &path).expect("open")
}

fn collect(s: &dyn KvStore, t: Table, prefix: &[u8], start: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.scan(t, prefix, start, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ScanControl::Continue
    })
    .expect("scan");
    out
}

fn put_get_delete(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    assert_eq!(s.kind(), kind);
    assert_eq!(s.get(Table::Points, b"a").expect("get"), None);
    let mut b = WriteBatch::new();
    b.put(Table::Points, b"a".to_vec(), b"1".to_vec());
    b.put(Table::Meta, b"a".to_vec(), b"meta".to_vec());
    s.write(b, true).expect("write");
    assert_eq!(s.get(Table::Points, b"a").expect("get"), Some(b"1".to_vec()));
    assert_eq!(s.get(Table::Meta, b"a").expect("get"), Some(b"meta".to_vec()), "tables are separate");
    let mut b = WriteBatch::new();
    b.put(Table::Points, b"a".to_vec(), b"2".to_vec());
    s.write(b, false).expect("overwrite");
    assert_eq!(s.get(Table::Points, b"a").expect("get"), Some(b"2".to_vec()));
    let mut b = WriteBatch::new();
    b.delete(Table::Points, b"a".to_vec());
    b.delete(Table::Points, b"never-existed".to_vec());
    s.write(b, true).expect("delete");
    assert_eq!(s.get(Table::Points, b"a").expect("get"), None);
    assert_eq!(s.get(Table::Meta, b"a").expect("get"), Some(b"meta".to_vec()));
}

fn batch_order_within_batch(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    let mut b = WriteBatch::new();
    b.put(Table::Points, b"k".to_vec(), b"first".to_vec());
    b.delete(Table::Points, b"k".to_vec());
    b.put(Table::Points, b"k".to_vec(), b"last".to_vec());
    s.write(b, true).expect("write");
    assert_eq!(s.get(Table::Points, b"k").expect("get"), Some(b"last".to_vec()));
}

fn scan_order_prefix_start(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    let mut b = WriteBatch::new();
    for k in [&b"b2"[..], b"a1", b"b1", b"b\xff", b"c", b"b10"] {
        b.put(Table::Index, k.to_vec(), k.to_vec());
    }
    s.write(b, true).expect("write");
    let keys: Vec<_> = collect(s.as_ref(), Table::Index, b"b", None).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"b1".to_vec(), b"b10".to_vec(), b"b2".to_vec(), b"b\xff".to_vec()]);
    let keys: Vec<_> = collect(s.as_ref(), Table::Index, b"b", Some(b"b2")).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"b2".to_vec(), b"b\xff".to_vec()]);
    let all = collect(s.as_ref(), Table::Index, b"", None);
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "byte-wise order");
    // early stop
    let mut n = 0;
    s.scan(Table::Index, b"", None, &mut |_, _| {
        n += 1;
        if n == 2 {
            ScanControl::Stop
        } else {
            ScanControl::Continue
        }
    })
    .expect("scan");
    assert_eq!(n, 2);
}

fn delete_prefix(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    let mut b = WriteBatch::new();
    for k in [&b"g1/a"[..], b"g1/b", b"g2/a", b"\xff\xffx", b"\xff\xff"] {
        b.put(Table::Index, k.to_vec(), b"v".to_vec());
    }
    s.write(b, true).expect("write");
    let mut b = WriteBatch::new();
    b.delete_prefix(Table::Index, b"g1/".to_vec());
    b.delete_prefix(Table::Index, b"\xff\xff".to_vec());
    s.write(b, true).expect("delete prefix");
    let keys: Vec<_> = collect(s.as_ref(), Table::Index, b"", None).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"g2/a".to_vec()]);
}

fn persists_across_reopen(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let s = store(kind, dir.path());
        let mut b = WriteBatch::new();
        b.put(Table::Points, vec![1u8; 9], vec![7u8; 100_000]);
        s.write(b, true).expect("write");
    }
    let s = store(kind, dir.path());
    assert_eq!(s.get(Table::Points, &[1u8; 9]).expect("get"), Some(vec![7u8; 100_000]));
    s.flush().expect("flush");
    assert!(s.disk_usage_bytes() > 0);
}

fn empty_batch_is_noop(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    s.write(WriteBatch::new(), true).expect("empty");
    assert!(collect(s.as_ref(), Table::Points, b"", None).is_empty());
}

fn concurrent_writers(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    std::thread::scope(|sc| {
        for t in 0..4u8 {
            let s = s.clone();
            sc.spawn(move || {
                for i in 0..50u8 {
                    let mut b = WriteBatch::new();
                    b.put(Table::Points, vec![t, i], vec![i]);
                    s.write(b, false).expect("write");
                }
            });
        }
    });
    assert_eq!(collect(s.as_ref(), Table::Points, b"", None).len(), 200);
}

/// A read view sees the state when it was opened, across tables, while writes go on.
fn read_view_is_point_in_time(kind: BackendKind) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(kind, dir.path());
    let mut b = WriteBatch::new();
    for i in 0..100u8 {
        b.put(Table::Points, vec![i], vec![i]);
    }
    b.put(Table::Meta, b"last".to_vec(), b"1".to_vec());
    s.write(b, true).expect("write");
    let view = s.read_view().expect("view");
    let mut b = WriteBatch::new();
    b.delete_prefix(Table::Points, Vec::new());
    b.put(Table::Points, b"new".to_vec(), b"x".to_vec());
    b.put(Table::Meta, b"last".to_vec(), b"2".to_vec());
    s.write(b, true).expect("write after view");
    let mut seen = Vec::new();
    view.scan(Table::Points, b"", None, &mut |k, _| {
        seen.push(k.to_vec());
        ScanControl::Continue
    })
    .expect("scan view");
    assert_eq!(seen, (0..100u8).map(|i| vec![i]).collect::<Vec<_>>());
    let mut meta = Vec::new();
    view.scan(Table::Meta, b"", None, &mut |k, v| {
        meta.push((k.to_vec(), v.to_vec()));
        ScanControl::Continue
    })
    .expect("scan meta");
    assert_eq!(meta, vec![(b"last".to_vec(), b"1".to_vec())]);
    // Prefix and start work as in `scan`; the live store sees the new state.
    let mut some = Vec::new();
    view.scan(Table::Points, &[5], None, &mut |k, _| {
        some.push(k.to_vec());
        ScanControl::Continue
    })
    .expect("prefix");
    assert_eq!(some, vec![vec![5u8]]);
    drop(view);
    assert_eq!(collect(s.as_ref(), Table::Points, b"", None).len(), 1);
}

macro_rules! conformance {
    ($($name:ident),*) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(crate::BackendKind::Sqlite) } )*
        }
        mod rocksdb {
            $( #[test] fn $name() { super::$name(crate::BackendKind::Rocksdb) } )*
        }
    };
}

conformance!(
    put_get_delete,
    batch_order_within_batch,
    scan_order_prefix_start,
    delete_prefix,
    persists_across_reopen,
    empty_batch_is_noop,
    concurrent_writers,
    read_view_is_point_in_time
);
