//! Payload indexes of the appendable segment, kept current while points are written.
//!
//! A sealed segment's payload indexes are built once: its payloads never change. The
//! appendable segment changes on every write, and a [`FieldIndex`] (sorted arrays, postings in
//! offset order) cannot take one point at a time cheaply. So the appendable segment's slots are
//! indexed in *chunks*: each chunk is one [`FieldIndex`] per declared field over a range of
//! slots, built in one pass once [`MIN_CHUNK`] new slots have arrived. Two neighbouring chunks
//! are joined while the older is less than twice the newer (up to [`MAX_CHUNK`] slots), by
//! appending postings and merging sorted values, with no payload read; so there are few chunks,
//! their number growing with the log of the slots.
//!
//! Slots past the last chunk, and slots written again after their chunk was built, are
//! *unsure*: the segment takes them as candidates of every indexed condition and checks the
//! whole filter on their payload. A chunk with many rewritten slots is rebuilt from the
//! payloads. A field declared later is built chunk by chunk; until a chunk has it, the field's
//! conditions are read from payloads. How far the chunks lag is a matter of speed only, never
//! of answers.

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
/// The largest chunk: bounds a rebuild's payload reads (done a chunk per hold of the shard's
/// write lock).
pub const MAX_CHUNK: u32 = 32_768;
/// The most new slots the write path indexes in one write (more are left for the next write
/// or the optimizer thread).
const WRITE_PATH_TAIL: u32 = 8_192;

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
    /// One per definition, in the definitions' order; `None` until built (a field declared
    /// after the chunk was).
    fields: Vec<Option<FieldIndex>>,
    /// Slots of this chunk written again since it was built.
    rewritten: u32,
}

impl Chunk {
    fn len(&self) -> u32 {
        self.slots.end - self.slots.start
    }

    /// Rebuild once a sixteenth of its slots, or 512, are unsure (and at least 64).
    fn worth_rebuilding(&self) -> bool {
        self.rewritten >= 64 && (self.rewritten * 16 > self.len() || self.rewritten >= 512)
    }

    fn missing_field(&self) -> bool {
        self.fields.iter().any(Option::is_none)
    }

    /// Whether both chunks have the same fields built (a join keeps only fields both have).
    fn same_fields(&self, other: &Chunk) -> bool {
        self.fields.iter().zip(&other.fields).all(|(a, b)| a.is_some() == b.is_some())
    }
}

/// Offsets as a growable bitmap.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn get(&self, o: u32) -> bool {
        self.0.get(o as usize / 64).is_some_and(|w| w & (1 << (o % 64)) != 0)
    }
    fn set(&mut self, o: u32, on: bool) {
        let i = o as usize / 64;
        if i >= self.0.len() {
            self.0.resize(i + 1, 0);
        }
        if on {
            self.0[i] |= 1 << (o % 64);
        } else {
            self.0[i] &= !(1 << (o % 64));
        }
    }
}

/// The appendable segment's payload indexes (see the module's documentation).
#[derive(Debug, Clone)]
pub struct LiveIndex {
    defs: Vec<PayloadIndexDef>,
    /// The definitions' keys ([`PayloadIndexDef::key`]), in their order.
    keys: Vec<String>,
    /// Ascending, adjacent ranges from slot 0.
    chunks: Vec<Chunk>,
    /// Slots below it are in a chunk.
    covered: u32,
    /// Slots below `covered` written again since their chunk was built: in order, and as a
    /// bitmap (checked for every candidate).
    rewritten: BTreeSet<u32>,
    rewritten_bits: Bits,
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
        LiveIndex {
            keys: defs.iter().map(PayloadIndexDef::key).collect(),
            defs,
            chunks: Vec::new(),
            covered: 0,
            rewritten: BTreeSet::new(),
            rewritten_bits: Bits::default(),
            min_chunk,
            max_chunk,
        }
    }

    pub fn defs(&self) -> &[PayloadIndexDef] {
        &self.defs
    }

    /// Index `defs` from now on: chunks keep the fields defined the same way, the others are
    /// built by [`Self::catch_up`].
    pub fn set_defs(&mut self, defs: Vec<PayloadIndexDef>) {
        for c in &mut self.chunks {
            let mut old = std::mem::take(&mut c.fields);
            c.fields =
                defs.iter().map(|d| self.defs.iter().position(|o| o.same(d)).and_then(|i| old[i].take())).collect();
        }
        self.keys = defs.iter().map(PayloadIndexDef::key).collect();
        self.defs = defs;
    }

    /// Slots below it are in a chunk (a write past it needs no [`Self::touch`]).
    pub fn covered(&self) -> u32 {
        self.covered
    }

    /// Slot `o`'s payload changed (an upsert into an existing slot, or a new slot).
    pub fn touch(&mut self, o: u32) {
        if o >= self.covered || !self.rewritten.insert(o) {
            return;
        }
        self.rewritten_bits.set(o, true);
        let i = self.chunks.partition_point(|c| c.slots.end <= o);
        if let Some(c) = self.chunks.get_mut(i) {
            c.rewritten += 1;
        }
    }

    /// Whether slot `o` must be checked on its payload.
    pub fn is_unsure(&self, o: u32) -> bool {
        o >= self.covered || self.rewritten_bits.get(o)
    }

    /// The unsure slots of a segment of `slots` slots, ascending.
    pub fn unsure(&self, slots: u32) -> Vec<u32> {
        self.rewritten.iter().copied().chain(self.covered..slots).collect()
    }

    /// Whether [`Self::catch_up`] has work to do on a segment of `slots` slots.
    pub fn behind(&self, slots: u32) -> bool {
        slots.saturating_sub(self.covered) >= self.min_chunk
            || self.join_due()
            || self.chunks.iter().any(|c| c.worth_rebuilding() || c.missing_field())
    }

    /// Whether the write path has work to do: new slots to index or chunks to join.
    pub fn tail_due(&self, slots: u32) -> bool {
        slots.saturating_sub(self.covered) >= self.min_chunk || self.join_due()
    }

    /// The write path's share: index new slots (at most [`WRITE_PATH_TAIL`]) and join chunks
    /// (no payload read). Rebuilds and fields declared later are left to [`Self::catch_up`].
    pub fn index_tail(&mut self, data: &SegmentData) -> Result<(), PayloadReadError> {
        if (data.len() as u32).saturating_sub(self.covered) >= self.min_chunk {
            self.push_tail(data, WRITE_PATH_TAIL)?;
        }
        self.join();
        Ok(())
    }

    /// Bring the chunks up to date, a step at a time (a rebuild, a missing field, new slots,
    /// then joins), until about `budget` payloads were read (a step is never split; at least
    /// one step is taken). Returns whether work is left.
    pub fn catch_up(&mut self, data: &SegmentData, budget: usize) -> Result<bool, PayloadReadError> {
        let slots = data.len() as u32;
        let mut spent = 0usize;
        loop {
            if let Some(i) = self.chunks.iter().position(Chunk::worth_rebuilding) {
                spent += self.chunks[i].len() as usize;
                self.rebuild(data, i)?;
            } else if let Some(i) = self.chunks.iter().position(Chunk::missing_field) {
                spent += self.chunks[i].len() as usize;
                self.fill(data, i)?;
            } else if slots.saturating_sub(self.covered) >= self.min_chunk {
                spent += self.push_tail(data, self.max_chunk)? as usize;
            } else {
                self.join();
                break;
            }
            self.join();
            if spent >= budget {
                break;
            }
        }
        Ok(self.behind(slots))
    }

    /// Index the slots past the last chunk (at most `most`, and a chunk's worth) as a new
    /// chunk; returns how many.
    fn push_tail(&mut self, data: &SegmentData, most: u32) -> Result<u32, PayloadReadError> {
        let tail = (data.len() as u32).saturating_sub(self.covered).min(most).min(self.max_chunk);
        let range = self.covered..self.covered + tail;
        let fields = self.build(data, range.clone())?;
        self.covered = range.end;
        self.chunks.push(Chunk { slots: range, fields, rewritten: 0 });
        Ok(tail)
    }

    /// Rebuild chunk `i` from the current payloads: its slots are sure again.
    fn rebuild(&mut self, data: &SegmentData, i: usize) -> Result<(), PayloadReadError> {
        let range = self.chunks[i].slots.clone();
        let fields = self.build(data, range.clone())?;
        let stale: Vec<u32> = self.rewritten.range(range.clone()).copied().collect();
        for o in stale {
            self.rewritten.remove(&o);
            self.rewritten_bits.set(o, false);
        }
        self.chunks[i] = Chunk { slots: range, fields, rewritten: 0 };
        Ok(())
    }

    /// Build the fields chunk `i` lacks (its rewritten slots stay unsure: the other fields
    /// still hold their old values).
    fn fill(&mut self, data: &SegmentData, i: usize) -> Result<(), PayloadReadError> {
        let chunk = &self.chunks[i];
        let missing: Vec<usize> = (0..self.defs.len()).filter(|&f| chunk.fields[f].is_none()).collect();
        let specs: Vec<IndexSpec<'_>> = missing.iter().map(|&f| self.defs[f].spec()).collect();
        let built = FieldIndex::build_range(&specs, data, chunk.slots.clone(), &|_| true)?;
        for (f, ix) in missing.into_iter().zip(built) {
            self.chunks[i].fields[f] = Some(ix);
        }
        Ok(())
    }

    /// Every field over `range`, read from the current payloads.
    fn build(&self, data: &SegmentData, range: Range<u32>) -> Result<Vec<Option<FieldIndex>>, PayloadReadError> {
        let specs: Vec<IndexSpec<'_>> = self.defs.iter().map(PayloadIndexDef::spec).collect();
        Ok(FieldIndex::build_range(&specs, data, range, &|_| true)?.into_iter().map(Some).collect())
    }

    /// Whether the last two chunks are due to be joined: the older is under twice the newer,
    /// both fit one chunk, and they have the same fields built (else one waits for its fill).
    fn join_due(&self) -> bool {
        matches!(&self.chunks[..], [.., a, b]
            if a.len() < 2 * b.len() && a.len() + b.len() <= self.max_chunk && a.same_fields(b))
    }

    /// Join the last two chunks while due ([`FieldIndex::append`]: no payload is read).
    fn join(&mut self) {
        while self.join_due() {
            let (Some(b), Some(a)) = (self.chunks.pop(), self.chunks.pop()) else { return };
            let fields = a
                .fields
                .into_iter()
                .zip(b.fields)
                .map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => Some(x.append(y)),
                    _ => None,
                })
                .collect();
            let slots = a.slots.start..b.slots.end;
            self.chunks.push(Chunk { slots, fields, rewritten: a.rewritten + b.rewritten });
        }
    }

    fn field(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// The chunked slots satisfying `check` on `key` (ascending; unsure ones may be among
    /// them or not: the caller adds [`Self::unsure`] and checks those on the payload); `None`
    /// where the index cannot tell (see [`FieldIndex::answer`]) or a chunk lacks the field.
    pub fn answer(&self, key: &str, check: &FieldCheck) -> Option<Vec<u32>> {
        let f = self.field(key)?;
        let mut out = Vec::new();
        for c in &self.chunks {
            out.extend(c.fields[f].as_ref()?.answer(check)?);
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
            out.extend(c.fields[f].as_ref()?.facet_values()?);
        }
        Some(out)
    }

    /// Every chunk's `order_by` entries of `key`; `None` when a chunk's are incomplete
    /// ([`FieldIndex::order_entries`]).
    pub fn order_entries(&self, key: &str) -> Option<Vec<(f64, u32)>> {
        let f = self.field(key)?;
        let mut out = Vec::new();
        for c in &self.chunks {
            out.extend(c.fields[f].as_ref()?.order_entries()?);
        }
        Some(out)
    }

    pub fn ram_bytes(&self) -> usize {
        let fields: usize = self.chunks.iter().flat_map(|c| c.fields.iter().flatten()).map(FieldIndex::ram_bytes).sum();
        // A B-tree entry and its share of a node, and the bitmap.
        fields + self.rewritten.len() * 16 + self.rewritten_bits.0.capacity() * 8
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

    /// An appendable segment whose indexes lag, catch up in steps (on the write path and as
    /// the optimizer does), gain a field later, and see rewrites, vector-only updates, deletes
    /// and re-inserts answers every filter as the same segment without indexes.
    #[test]
    fn appendable_indexes_answer_as_the_payloads_do() {
        let mut rng = StdRng::seed_from_u64(11);
        let cols = [ColumnSpec::dense("", 2, Distance::Dot)];
        let defs = defs();
        let text_indexes: qd_core::filter::TextIndexes =
            defs.iter().filter_map(|d| Some((d.path.clone(), d.analyser.clone()?))).collect();
        let mut seg = Segment::new(1, &cols);
        // Small chunks, so that answers span several; the text field is declared later.
        seg.live_index = Some(LiveIndex::with_chunk_sizes(defs[..defs.len() - 1].to_vec(), 64, 1024));
        let mut plain = Segment::new(1, &cols);
        let mut narrowed = 0;
        let mut version = 0;
        for round in 0..12 {
            if round == 6 {
                seg.set_payload_indexes(&defs);
                assert!(seg.payload_indexes_behind(), "the new field is missing from every chunk");
            }
            // New points, rewrites of old ones (in chunks by now) and deletions.
            let n = [300, 700, 20, 1200][round % 4];
            let top = plain.slots() as u64;
            for step in 0..n {
                version += 1;
                let id =
                    if rng.gen_bool(0.7) { top + rng.gen_range(0..n as u64) } else { rng.gen_range(0..top.max(1)) };
                let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0, (id % 97) as f32]))]);
                let p = if rng.gen_bool(0.1) {
                    plain.payload(&PointId::Num(id)).map(|p| p.into_owned()) // a vector update
                } else {
                    payload(&mut rng).as_object().cloned()
                };
                seg.upsert(PointId::Num(id), version, &v, p.clone());
                plain.upsert(PointId::Num(id), version, &v, p);
                if rng.gen_bool(0.05) {
                    let gone = PointId::Num(rng.gen_range(0..top.max(1)));
                    seg.delete(&gone);
                    plain.delete(&gone);
                }
                if step % 100 == 99 && round % 2 == 0 {
                    seg.index_new_payloads().expect("in RAM");
                }
            }
            // Catch up partly (or not at all) before asking.
            match round % 3 {
                0 => {}
                1 => drop(seg.index_payloads(600).expect("in RAM")),
                _ => drop(seg.index_payloads(usize::MAX).expect("in RAM")),
            }
            for _ in 0..40 {
                let f = filter(&mut rng);
                let f = f.with_text_indexes(&text_indexes).unwrap_or(f);
                narrowed += usize::from(seg.plan(Some(&f)).candidate_list().is_some());
                assert_same_answers(&seg, &plain, &f);
            }
        }
        assert!(narrowed > 200, "indexes narrowed only {narrowed} of 480 filters");
        // Caught up: what is left unsure is less than a chunk, and chunks tile the slots.
        assert!(!seg.index_payloads(usize::MAX).expect("in RAM"));
        let ix = seg.live_index.as_ref().expect("kept");
        assert!(ix.chunks.len() > 3 && ix.chunks.len() < 16, "{} chunks", ix.chunks.len());
        assert!(!ix.behind(seg.slots() as u32));
        assert!(ix.unsure(seg.slots() as u32).len() < 64 + 64);
        assert!(ix.chunks.windows(2).all(|w| w[0].slots.end == w[1].slots.start));
        assert!(ix.chunks.iter().all(|c| !c.missing_field()));
        // A dropped field leaves the others built; sealing drops them all.
        let chunks = ix.chunks.len();
        seg.set_payload_indexes(&defs[..1]);
        let ix = seg.live_index.as_ref().expect("kept");
        assert_eq!(ix.chunks.len(), chunks);
        assert!(!ix.behind(seg.slots() as u32));
        seg.set_payload_indexes(&[]);
        assert!(seg.live_index.is_none());
        seg.set_payload_indexes(&defs[..1]);
        seg.seal();
        assert!(seg.live_index.is_none());
    }

    /// Chunks joined by appending are what one build over their slots gives.
    #[test]
    fn chunks_join_into_few_and_equal_a_whole_build() {
        let cols = [ColumnSpec::dense("", 1, Distance::Dot)];
        let mut rng = StdRng::seed_from_u64(3);
        let mut seg = Segment::new(1, &cols);
        let defs = defs();
        seg.set_payload_indexes(&defs);
        for i in 0..100_000u64 {
            let v = NamedVectors::from([(String::new(), Vector::Dense(vec![1.0]))]);
            seg.upsert(PointId::Num(i), 1, &v, payload(&mut rng).as_object().cloned());
            seg.index_new_payloads().expect("in RAM");
        }
        let ix = seg.live_index.as_ref().expect("kept");
        let sizes: Vec<u32> = ix.chunks.iter().map(Chunk::len).collect();
        assert!(sizes.len() <= 12, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= MAX_CHUNK), "{sizes:?}");
        let first = &ix.chunks[0];
        let whole = ix.build(seg.data(), first.slots.clone()).expect("in RAM");
        for (joined, built) in first.fields.iter().zip(whole) {
            let (joined, built) = (joined.as_ref().expect("built"), built.expect("built"));
            // The same bytes between the header (magic, kind and the slot count at build time)
            // and the checksum.
            let (a, b) = (joined.to_bytes(), built.to_bytes());
            assert_eq!(a.len(), b.len());
            assert!(a[17..a.len() - 4] == b[17..b.len() - 4], "{:?}", joined.kind());
        }
    }
}
