//! Persisted segment indexes, in the shard database's `index` table, so a restart loads the
//! HNSW graphs instead of rebuilding them.
//!
//! ```text
//! seg/<id:016x>/desc                  u8 format=1, u32 n, n x (u8 key len, point key, u64 version)
//! seg/<id:016x>/g/<vector name>/<chunk:08x>   the graph's own versioned, checksummed bytes in 4 MiB chunks
//! seg/<id:016x>/q/<vector name>/<chunk:08x>   scalar-quantized vectors (own versioned, checksummed
//!                                             format, see qd_segment::quantized) in 4 MiB chunks
//! seg/<id:016x>/s/<vector name>/<chunk:08x>   sparse inverted index (own versioned, checksummed
//!                                             format, see qd_segment::sparse) in 4 MiB chunks
//! seg/<id:016x>/p/<field path>/<chunk:08x>    payload index (own versioned, checksummed format,
//!                                             see qd_segment::payload_index) in 4 MiB chunks
//! ```
//! A descriptor lists the segment's points in slot order with the version each had when the
//! segment was sealed. On load a point record lands in that slot only if its version still
//! matches; anything else was rewritten or deleted since and lives elsewhere (or nowhere).
//! A segment's keys are written in one batch and removed in one batch (`DeletePrefix`).

use std::collections::BTreeMap;
use std::sync::Arc;

use qd_core::PointId;
use qd_segment::hnsw::HnswGraph;
use qd_segment::SegmentData;
use qd_segment::SegmentIndex;
use qd_segment::{FieldIndex, InvertedIndex, QuantizedVectors};
use qd_storage::{KvStore, ScanControl, Table, WriteBatch};

use crate::error::{CollectionError, Result};

const PREFIX: &str = "seg/";
const FORMAT: u8 = 1;
const CHUNK: usize = 4 << 20;

fn seg_prefix(id: u64) -> String {
    format!("{PREFIX}{id:016x}/")
}

/// A persisted sealed segment as read back.
pub struct StoredSegment {
    pub id: u64,
    pub members: Vec<(PointId, u64)>,
    pub graphs: BTreeMap<String, HnswGraph>,
    pub quantized: BTreeMap<String, QuantizedVectors>,
    pub sparse: BTreeMap<String, InvertedIndex>,
    pub payload: BTreeMap<String, FieldIndex>,
}

/// Add the keys of one indexed segment to `batch`. The inverted indexes of sparse vectors
/// `in_file` names are left out: their segment's sparse file holds them (a restart without a
/// valid file rebuilds them from the vectors).
pub fn put_segment(
    batch: &mut WriteBatch,
    id: u64,
    data: &SegmentData,
    index: &SegmentIndex,
    in_file: impl Fn(&str) -> bool,
) -> Result<()> {
    let prefix = seg_prefix(id);
    let mut desc = vec![FORMAT];
    desc.extend_from_slice(&(data.len() as u32).to_le_bytes());
    for (pid, ver) in data.members() {
        let key = pid.to_key();
        desc.push(key.len() as u8);
        desc.extend_from_slice(&key);
        desc.extend_from_slice(&ver.to_le_bytes());
    }
    batch.put(Table::Index, format!("{prefix}desc").into_bytes(), desc);
    for (name, graph) in &index.graphs {
        let mut bytes = Vec::new();
        graph.write_to(&mut bytes).map_err(|e| CollectionError::Corrupt(format!("serialising graph: {e}")))?;
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            batch.put(Table::Index, format!("{prefix}g/{name}/{i:08x}").into_bytes(), chunk.to_vec());
        }
    }
    put_quantized(batch, id, &index.quantized);
    put_payload(batch, id, &index.payload);
    for (name, ix) in index.sparse.iter().filter(|(name, _)| !in_file(name)) {
        for (i, chunk) in ix.to_bytes().chunks(CHUNK).enumerate() {
            batch.put(Table::Index, format!("{prefix}s/{name}/{i:08x}").into_bytes(), chunk.to_vec());
        }
    }
    Ok(())
}

/// Add the quantized vectors of a segment to `batch`, replacing any stored before.
pub fn put_quantized(batch: &mut WriteBatch, id: u64, quantized: &BTreeMap<String, QuantizedVectors>) {
    let prefix = seg_prefix(id);
    batch.delete_prefix(Table::Index, format!("{prefix}q/").into_bytes());
    for (name, qv) in quantized {
        for (i, chunk) in qv.to_bytes().chunks(CHUNK).enumerate() {
            batch.put(Table::Index, format!("{prefix}q/{name}/{i:08x}").into_bytes(), chunk.to_vec());
        }
    }
}

/// Add the payload indexes of a segment to `batch`, replacing any stored before.
pub fn put_payload(batch: &mut WriteBatch, id: u64, payload: &BTreeMap<String, FieldIndex>) {
    let prefix = seg_prefix(id);
    batch.delete_prefix(Table::Index, format!("{prefix}p/").into_bytes());
    for (field, ix) in payload {
        for (i, chunk) in ix.to_bytes().chunks(CHUNK).enumerate() {
            batch.put(Table::Index, format!("{prefix}p/{field}/{i:08x}").into_bytes(), chunk.to_vec());
        }
    }
}

pub fn delete_segment(batch: &mut WriteBatch, id: u64) {
    batch.delete_prefix(Table::Index, seg_prefix(id).into_bytes());
}

/// Remove the stored inverted index of sparse vector `name` of segment `id` (its segment's
/// sparse file holds it now; a restart without a valid file rebuilds it from the vectors).
pub fn delete_sparse(batch: &mut WriteBatch, id: u64, name: &str) {
    batch.delete_prefix(Table::Index, format!("{}s/{name}/", seg_prefix(id)).into_bytes());
}

/// A persisted index part of segment `segment` that cannot be read, with the decoder's error.
fn decode_error(
    segment: u64,
    part: String,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> CollectionError {
    CollectionError::IndexDecode { segment, part, source: source.into() }
}

fn decode_desc(id: u64, b: &[u8]) -> Result<Vec<(PointId, u64)>> {
    let bad = |what: &str| CollectionError::Corrupt(format!("segment {id:x} descriptor: {what}"));
    if b.first() != Some(&FORMAT) || b.len() < 5 {
        return Err(bad("unknown format or truncated header"));
    }
    let n = u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize;
    let mut pos = 5;
    let mut out = Vec::with_capacity(n.min(b.len() / 10));
    for _ in 0..n {
        let len = *b.get(pos).ok_or_else(|| bad("truncated"))? as usize;
        let key = b.get(pos + 1..pos + 1 + len).ok_or_else(|| bad("truncated key"))?;
        let pid = PointId::from_key(key).ok_or_else(|| bad("invalid point key"))?;
        let v = b.get(pos + 1 + len..pos + 9 + len).ok_or_else(|| bad("truncated version"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(v);
        out.push((pid, u64::from_le_bytes(a)));
        pos += 9 + len;
    }
    Ok(out)
}

/// Every persisted segment of a shard, with its graphs.
pub fn load_segments(store: &Arc<dyn KvStore>) -> Result<Vec<StoredSegment>> {
    // Collect raw keys first (descriptors and graph chunks arrive in key order).
    let mut descs: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut graph_bytes: BTreeMap<(u64, String), Vec<u8>> = BTreeMap::new();
    let mut quant_bytes: BTreeMap<(u64, String), Vec<u8>> = BTreeMap::new();
    let mut sparse_bytes: BTreeMap<(u64, String), Vec<u8>> = BTreeMap::new();
    let mut payload_bytes: BTreeMap<(u64, String), Vec<u8>> = BTreeMap::new();
    let mut err = None;
    store.scan(Table::Index, PREFIX.as_bytes(), None, &mut |k, v| {
        let key = String::from_utf8_lossy(k);
        let rest = &key[PREFIX.len()..];
        let parsed = rest.split_once('/').and_then(|(id, tail)| u64::from_str_radix(id, 16).ok().map(|id| (id, tail)));
        match parsed {
            Some((id, "desc")) => {
                descs.insert(id, v.to_vec());
            }
            Some((id, tail)) if tail.starts_with("g/") => {
                // g/<name>/<chunk>: the name may itself contain '/', the chunk never does.
                if let Some((name, _chunk)) = tail[2..].rsplit_once('/') {
                    graph_bytes.entry((id, name.to_string())).or_default().extend_from_slice(v);
                }
            }
            Some((id, tail)) if tail.starts_with("q/") => {
                if let Some((name, _chunk)) = tail[2..].rsplit_once('/') {
                    quant_bytes.entry((id, name.to_string())).or_default().extend_from_slice(v);
                }
            }
            Some((id, tail)) if tail.starts_with("s/") => {
                if let Some((name, _chunk)) = tail[2..].rsplit_once('/') {
                    sparse_bytes.entry((id, name.to_string())).or_default().extend_from_slice(v);
                }
            }
            Some((id, tail)) if tail.starts_with("p/") => {
                if let Some((field, _chunk)) = tail[2..].rsplit_once('/') {
                    payload_bytes.entry((id, field.to_string())).or_default().extend_from_slice(v);
                }
            }
            _ => {
                err = Some(CollectionError::Corrupt(format!("unexpected index key {key}")));
                return ScanControl::Stop;
            }
        }
        ScanControl::Continue
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let mut out = Vec::with_capacity(descs.len());
    for (id, bytes) in descs {
        let members = decode_desc(id, &bytes)?;
        let mut graphs = BTreeMap::new();
        for ((gid, name), bytes) in graph_bytes.range((id, String::new())..) {
            if *gid != id {
                break;
            }
            let g = HnswGraph::read_from(&mut bytes.as_slice())
                .map_err(|e| decode_error(id, format!("graph {name:?}"), e))?;
            graphs.insert(name.clone(), g);
        }
        let mut quantized = BTreeMap::new();
        for ((qid, name), bytes) in quant_bytes.range((id, String::new())..) {
            if *qid != id {
                break;
            }
            let q = QuantizedVectors::from_bytes(bytes)
                .map_err(|e| decode_error(id, format!("quantized vectors {name:?}"), e))?;
            quantized.insert(name.clone(), q);
        }
        let mut sparse = BTreeMap::new();
        for ((sid, name), bytes) in sparse_bytes.range((id, String::new())..) {
            if *sid != id {
                break;
            }
            let ix =
                InvertedIndex::from_bytes(bytes).map_err(|e| decode_error(id, format!("sparse index {name:?}"), e))?;
            sparse.insert(name.clone(), ix);
        }
        let mut payload = BTreeMap::new();
        for ((pid, field), bytes) in payload_bytes.range((id, String::new())..) {
            if *pid != id {
                break;
            }
            // Derived data: a damaged one is left out and rebuilt by the optimizer.
            match FieldIndex::from_bytes(bytes) {
                Ok(ix) => {
                    payload.insert(field.clone(), ix);
                }
                Err(e) => {
                    tracing::warn!(segment = id, field = %field, error = %e, "payload index unreadable; it will be rebuilt")
                }
            }
        }
        out.push(StoredSegment { id, members, graphs, quantized, sparse, payload });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qd_core::vectors::NamedVectors;
    use qd_core::Distance;
    use qd_segment::Segment;
    use qd_storage::{open_store, BackendKind};

    #[test]
    fn quantized_vectors_persist_and_reload() {
        for kind in [BackendKind::Sqlite, BackendKind::Rocksdb] {
            let dir = tempfile::tempdir().expect("tmp");
            let store = open_store(kind, &dir.path().join("db")).expect("open");
            let mut seg = Segment::new(3, &[qd_segment::ColumnSpec::dense("", 8, Distance::Dot)]);
            for i in 0..100u64 {
                let mut v = NamedVectors::new();
                let dense = (0..8).map(|j| ((i * 7 + j * 13) % 17) as f32 / 17.0 - 0.5).collect();
                v.insert(String::new(), qd_core::vectors::Vector::Dense(dense));
                seg.upsert(PointId::Num(i), i + 1, &v, None);
            }
            seg.seal();
            let data = seg.data().clone();
            let col = data.column("").expect("column");
            let qv = QuantizedVectors::build(col, Distance::Dot, 0.99);
            let mut index = SegmentIndex::default();
            index.quantized.insert(String::new(), qv.clone());
            let mut batch = WriteBatch::new();
            put_segment(&mut batch, 3, &data, &index, |_| false).expect("put");
            store.write(batch, true).expect("write");

            let loaded = load_segments(&store).expect("load");
            assert_eq!(loaded.len(), 1);
            assert_eq!(loaded[0].members.len(), 100);
            let back = loaded[0].quantized.get("").expect("quantized reloaded");
            assert_eq!(back.to_bytes(), qv.to_bytes());

            // Replacing them (after a config change) leaves no stale chunks; removing works too.
            let mut batch = WriteBatch::new();
            put_quantized(&mut batch, 3, &BTreeMap::new());
            store.write(batch, true).expect("write");
            assert!(load_segments(&store).expect("load")[0].quantized.is_empty());

            // A corrupt blob is an error, not a silently wrong index.
            let mut batch = WriteBatch::new();
            batch.put(Table::Index, format!("{}q//00000000", seg_prefix(3)).into_bytes(), b"garbage".to_vec());
            store.write(batch, true).expect("write");
            assert!(load_segments(&store).is_err());
        }
    }
}
