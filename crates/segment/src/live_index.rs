//! Payload indexes of the appendable segment, kept current while points are written.
//!
//! A sealed segment's payload indexes are built once: its payloads never change. The
//! appendable segment changes on every write, and a [`FieldIndex`] (sorted arrays, postings in
//! offset order) cannot take one point at a time cheaply. So the appendable segment's slots are
//! indexed in *chunks*: each chunk is one [`FieldIndex`] per declared field over a range of
//! slots, built in one pass once [`MIN_CHUNK`] new slots have arrived. Two neighbouring chunks
//! are rebuilt as one while the older is less than twice the newer (up to [`MAX_CHUNK`] slots),
//! so there are few chunks and each slot is indexed a few times over its life in the segment.
//!
//! Slots past the last chunk, and slots written again after their chunk was built, are
//! *unsure*: the segment takes them as candidates of every indexed condition and checks the
//! whole filter on their payload. A chunk whose rewritten slots pass a share of its size is
//! rebuilt. How far the chunks lag is a matter of speed only, never of answers.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use qd_core::filter::FieldCheck;
use qd_core::json_path::JsonPath;
use serde_json::Value;

use crate::payload_index::{FieldIndex, IndexKind, IndexSpec};
use crate::payloads::PayloadReadError;
use crate::segment::SegmentData;

/// New slots indexed together (fewer stay unsure, checked on their payload).
pub const MIN_CHUNK: u32 = 512;
/// The largest chunk: bounds the work of one merge, done under the shard's write lock.
pub const MAX_CHUNK: u32 = 32_768;

/// One declared payload index: its field, type and, for full text, its analyser.
#[derive(Debug, Clone)]
pub struct PayloadIndexDef {
    pub path: JsonPath,
    pub kind: IndexKind,
    pub analyser: Option<Arc<qd_inference::TextIndex>>,
}

impl PayloadIndexDef {
    /// The field as indexes are keyed (the path as it displays).
    pub fn key(&self) -> String {
        self.path.to_string()
    }

    pub fn spec(&self) -> IndexSpec<'_> {
        match &self.analyser {
            Some(analyser) => IndexSpec::Text(&self.path, analyser),
            None => IndexSpec::Plain(self.kind, &self.path),
        }
    }

    /// Whether `f` is an index of this type (a text index also with these settings).
    pub fn matches(&self, f: &FieldIndex) -> bool {
        f.kind() == Some(self.kind) && f.text_settings() == self.analyser.as_ref().map(|a| a.fingerprint())
    }

    /// The same field, type and settings.
    pub fn same(&self, other: &PayloadIndexDef) -> bool {
        self.path == other.path
            && self.kind == other.kind
            && self.analyser.as_ref().map(|a| a.fingerprint()) == other.analyser.as_ref().map(|a| a.fingerprint())
    }
}

/// Whether two lists define the same indexes, in the same order.
pub fn same_defs(a: &[PayloadIndexDef], b: &[PayloadIndexDef]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
}

/// The fields' indexes over one range of slots.
#[derive(Debug, Clone)]
struct Chunk {
    slots: Range<u32>,
    /// One per definition, in the definitions' order.
    fields: Vec<FieldIndex>,
    /// Slots of this chunk written again since it was built.
    rewritten: u32,
}

impl Chunk {
    fn len(&self) -> u32 {
        self.slots.end - self.slots.start
    }

    /// Rebuild once more than a sixteenth of its slots (and at least 64) are unsure.
    fn worth_rebuilding(&self) -> bool {
        self.rewritten >= 64 && self.rewritten * 16 > self.len()
    }
}

/// The appendable segment's payload indexes (see the module's documentation).
#[derive(Debug, Clone)]
pub struct LiveIndex {
    defs: Vec<PayloadIndexDef>,
    /// Ascending, adjacent ranges from slot 0.
    chunks: Vec<Chunk>,
    /// Slots below it are in a chunk.
    covered: u32,
    /// Slots below `covered` written again since their chunk was built.
    rewritten: BTreeSet<u32>,
    /// [`MIN_CHUNK`] and [`MAX_CHUNK`] (smaller in tests).
    min_chunk: u32,
    max_chunk: u32,
}

impl LiveIndex {
    /// Indexes of `defs` with no slot indexed yet.
    pub fn new(defs: Vec<PayloadIndexDef>) -> Self {
        LiveIndex::with_chunk_sizes(defs, MIN_CHUNK, MAX_CHUNK)
    }

    fn with_chunk_sizes(defs: Vec<PayloadIndexDef>, min_chunk: u32, max_chunk: u32) -> Self {
        LiveIndex { defs, chunks: Vec::new(), covered: 0, rewritten: BTreeSet::new(), min_chunk, max_chunk }
    }

    pub fn defs(&self) -> &[PayloadIndexDef] {
        &self.defs
    }

    /// Slot `o`'s payload changed (an upsert into an existing slot, or a new slot).
    pub fn touch(&mut self, o: u32) {
        if o >= self.covered || !self.rewritten.insert(o) {
            return;
        }
        let i = self.chunks.partition_point(|c| c.slots.end <= o);
        if let Some(c) = self.chunks.get_mut(i) {
            c.rewritten += 1;
        }
    }

    /// Whether slot `o` must be checked on its payload.
    pub fn is_unsure(&self, o: u32) -> bool {
        o >= self.covered || self.rewritten.contains(&o)
    }

    /// The unsure slots of a segment of `slots` slots, ascending.
    pub fn unsure(&self, slots: u32) -> Vec<u32> {
        self.rewritten.iter().copied().chain(self.covered..slots).collect()
    }

    /// Whether [`Self::catch_up`] has work to do on a segment of `slots` slots.
    pub fn behind(&self, slots: u32) -> bool {
        slots.saturating_sub(self.covered) >= self.min_chunk || self.chunks.iter().any(Chunk::worth_rebuilding)
    }

    /// Index new slots and rebuild chunks with many rewritten slots, stopping once about
    /// `budget` slots were read (a chunk is never split). Returns whether work is left.
    pub fn catch_up(&mut self, data: &SegmentData, budget: usize) -> Result<bool, PayloadReadError> {
        let slots = data.len() as u32;
        let mut spent = 0usize;
        while spent < budget {
            if let Some(i) = self.chunks.iter().position(Chunk::worth_rebuilding) {
                let range = self.chunks[i].slots.clone();
                spent += range.len();
                self.chunks[i] = self.build(data, range)?;
                continue;
            }
            let tail = slots.saturating_sub(self.covered);
            if tail < self.min_chunk {
                break;
            }
            let range = self.covered..self.covered + tail.min(self.max_chunk);
            spent += range.len();
            let chunk = self.build(data, range)?;
            self.covered = chunk.slots.end;
            self.chunks.push(chunk);
            // Merge while the older neighbour is under twice the newer one: chunk sizes
            // then at least double going back, so their number grows with the log of the slots.
            while let [.., a, b] = &self.chunks[..] {
                if a.len() >= 2 * b.len() || a.len() + b.len() > self.max_chunk {
                    break;
                }
                let range = a.slots.start..b.slots.end;
                spent += range.len();
                let merged = self.build(data, range)?;
                self.chunks.truncate(self.chunks.len() - 2);
                self.chunks.push(merged);
            }
        }
        Ok(self.behind(slots))
    }

    /// A chunk over `range`, read from the current payloads (so its rewritten slots are sure
    /// again).
    fn build(&mut self, data: &SegmentData, range: Range<u32>) -> Result<Chunk, PayloadReadError> {
        let specs: Vec<IndexSpec<'_>> = self.defs.iter().map(PayloadIndexDef::spec).collect();
        let fields = FieldIndex::build_range(&specs, data, range.clone(), &|_| true)?;
        let stale: Vec<u32> = self.rewritten.range(range.clone()).copied().collect();
        stale.iter().for_each(|o| {
            self.rewritten.remove(o);
        });
        Ok(Chunk { slots: range, fields, rewritten: 0 })
    }

    fn field(&self, key: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.path.to_string() == key)
    }

    /// Whether `key` has an index here.
    pub fn has(&self, key: &str) -> bool {
        self.field(key).is_some()
    }

    /// The chunked slots satisfying `check` on `key` (ascending; unsure ones may be among
    /// them or not: the caller adds [`Self::unsure`] and checks those on the payload); `None`
    /// where the index cannot tell (see [`FieldIndex::answer`]).
    pub fn answer(&self, key: &str, check: &FieldCheck) -> Option<Vec<u32>> {
        let f = self.field(key)?;
        let mut out = Vec::new();
        for c in &self.chunks {
            out.extend(c.fields[f].answer(check)?);
        }
        if self.chunks.is_empty() {
            // What an index can answer does not depend on its contents: ask an empty one.
            FieldIndex::empty(self.defs[f].spec(), 0).answer(check)?;
        }
        Some(out)
    }

    /// Every chunk's facet values of `key` with their postings; `None` when a chunk's cannot
    /// be counted from the index ([`FieldIndex::facet_values`]).
    pub fn facet_values(&self, key: &str) -> Option<Vec<(Value, &[u32])>> {
        let f = self.field(key)?;
        let mut out = Vec::new();
        for c in &self.chunks {
            out.extend(c.fields[f].facet_values()?);
        }
        Some(out)
    }

    /// Every chunk's `order_by` entries of `key`; `None` when a chunk's are incomplete
    /// ([`FieldIndex::order_entries`]).
    pub fn order_entries(&self, key: &str) -> Option<Vec<(f64, u32)>> {
        let f = self.field(key)?;
        let mut out = Vec::new();
        for c in &self.chunks {
            out.extend(c.fields[f].order_entries()?);
        }
        Some(out)
    }

    pub fn ram_bytes(&self) -> usize {
        self.chunks.iter().flat_map(|c| &c.fields).map(FieldIndex::ram_bytes).sum::<usize>() + self.rewritten.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use qd_core::vectors::{NamedVectors, Vector};
    use qd_core::{Distance, PointId};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::payload_index::tests::{assert_same_answers, filter, payload};
    use crate::segment::{ColumnSpec, Segment};

    fn defs() -> Vec<PayloadIndexDef> {
        let text_schema = json!({"type": "text", "stopwords": "english", "phrase_matching": true,
                                 "stemmer": {"type": "snowball", "language": "english"}});
        let analyser = Arc::new(
            qd_inference::TextIndex::new(qd_inference::TextIndexParams::from_schema(&text_schema).expect("params"))
                .expect("analyser"),
        );
        let plain = |f: &str, kind| PayloadIndexDef { path: f.parse().expect("path"), kind, analyser: None };
        vec![
            plain("k", IndexKind::Keyword),
            plain("i", IndexKind::Integer),
            plain("f", IndexKind::Float),
            plain("b", IndexKind::Bool),
            plain("d", IndexKind::Datetime),
            plain("nested.k", IndexKind::Keyword),
            plain("g", IndexKind::Geo),
            PayloadIndexDef { path: "t".parse().expect("path"), kind: IndexKind::Text, analyser: Some(analyser) },
        ]
    }

    /// An appendable segment whose indexes lag, catch up in steps, and see rewrites, deletes
    /// and re-inserts answers every filter as the same segment without indexes.
    #[test]
    fn appendable_indexes_answer_as_the_payloads_do() {
        let mut rng = StdRng::seed_from_u64(11);
        let cols = [ColumnSpec::dense("", 2, Distance::Dot)];
        let defs = defs();
        let text_indexes: qd_core::filter::TextIndexes =
            defs.iter().filter_map(|d| Some((d.path.clone(), d.analyser.clone()?))).collect();
        let mut seg = Segment::new(1, &cols);
        // Small chunks, so that answers span several.
        seg.live_index = Some(LiveIndex::with_chunk_sizes(defs.clone(), 64, 1024));
        let mut plain = Segment::new(1, &cols);
        let mut narrowed = 0;
        let mut version = 0;
        for round in 0..12 {
            // New points, rewrites of old ones (in chunks by now) and deletions.
            let n = [300, 700, 20, 1200][round % 4];
            let top = plain.slots() as u64;
            for _ in 0..n {
                version += 1;
                let id =
                    if rng.gen_bool(0.7) { top + rng.gen_range(0..n as u64) } else { rng.gen_range(0..top.max(1)) };
                let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0, (id % 97) as f32]))]);
                let p = payload(&mut rng);
                seg.upsert(PointId::Num(id), version, &v, p.as_object().cloned());
                plain.upsert(PointId::Num(id), version, &v, p.as_object().cloned());
                if rng.gen_bool(0.05) {
                    let gone = PointId::Num(rng.gen_range(0..top.max(1)));
                    seg.delete(&gone);
                    plain.delete(&gone);
                }
            }
            // Catch up partly (or not at all) before asking.
            let budget = [0, 600, usize::MAX][round % 3];
            seg.index_payloads(budget).expect("in RAM");
            for _ in 0..40 {
                let f = filter(&mut rng);
                let f = f.with_text_indexes(&text_indexes).unwrap_or(f);
                narrowed += usize::from(seg.plan(Some(&f)).candidate_list().is_some());
                assert_same_answers(&seg, &plain, &f);
            }
        }
        assert!(narrowed > 200, "indexes narrowed only {narrowed} of 480 filters");
        let ix = seg.live_index.as_ref().expect("kept");
        assert!(ix.chunks.len() > 3 && ix.chunks.len() < 16, "{} chunks", ix.chunks.len());
        // Caught up: what is left unsure is less than a chunk, and chunks tile the slots.
        seg.index_payloads(usize::MAX).expect("in RAM");
        let ix = seg.live_index.as_ref().expect("kept");
        assert!(!ix.behind(seg.slots() as u32));
        assert!(ix.unsure(seg.slots() as u32).len() < 64 + 64);
        assert!(ix.chunks.windows(2).all(|w| w[0].slots.end == w[1].slots.start));
        // Other definitions start over; sealing drops them.
        seg.set_payload_indexes(&defs[..1]);
        assert_eq!(seg.live_index.as_ref().map(|ix| ix.chunks.len()), Some(0));
        seg.set_payload_indexes(&defs[..1]);
        seg.index_payloads(usize::MAX).expect("in RAM");
        assert!(!seg.live_index.as_ref().expect("kept").chunks.is_empty());
        seg.seal();
        assert!(seg.live_index.is_none());
    }

    #[test]
    fn chunks_merge_into_few() {
        let cols = [ColumnSpec::dense("", 1, Distance::Dot)];
        let mut seg = Segment::new(1, &cols);
        seg.set_payload_indexes(&defs()[..1]);
        for i in 0..100_000u64 {
            let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0]))]);
            seg.upsert(PointId::Num(i), 1, &v, json!({"k": format!("v{}", i % 10)}).as_object().cloned());
            if seg.payload_indexes_behind() {
                seg.index_payloads(MAX_CHUNK as usize).expect("in RAM");
            }
        }
        let ix = seg.live_index.as_ref().expect("kept");
        let sizes: Vec<u32> = ix.chunks.iter().map(Chunk::len).collect();
        assert!(sizes.len() <= 12, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= MAX_CHUNK), "{sizes:?}");
        assert_eq!(
            ix.answer("k", &qd_core::filter::FieldCheck::IsEmpty(false)).map(|l| l.len()),
            Some(ix.covered as usize)
        );
    }
}
