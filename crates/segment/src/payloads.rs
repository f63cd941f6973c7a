//! Where a segment's payloads live: in RAM beside the vectors, or (`on_disk_payload`, for a
//! sealed segment) read on demand from the shard's database, so that RAM does not grow with
//! payload size. A source may keep recently read ones in a [`PayloadCache`] (bounded, keyed by
//! point and version), beside the database's own cache.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use qd_core::{Payload, PointId};

/// Reads a point's current payload from durable storage.
pub trait PayloadSource: Send + Sync + fmt::Debug {
    /// The stored payload of `id`, which the asking slot holds at `version`; `None` when it
    /// has none or is gone.
    fn payload(&self, id: &PointId, version: u64) -> Result<Option<Payload>, PayloadReadError>;
}

/// Recently read payloads by `(point, version)` within a byte budget (estimated JSON size). Two
/// generations: a hit in the older one moves the entry to the current one; when the current one
/// is full it becomes the older one and the previous older one is dropped. A record of a given
/// version never changes, so an entry is never stale.
#[derive(Debug)]
pub struct PayloadCache {
    /// Bytes each generation may hold.
    generation_bytes: usize,
    inner: parking_lot::Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<(PointId, u64), Option<Payload>>,
    current_bytes: usize,
    older: HashMap<(PointId, u64), Option<Payload>>,
}

impl PayloadCache {
    /// A cache holding at most about `budget` bytes of payloads.
    pub fn new(budget: usize) -> Self {
        PayloadCache { generation_bytes: budget / 2, inner: Default::default() }
    }

    pub fn get(&self, id: &PointId, version: u64) -> Option<Option<Payload>> {
        let mut g = self.inner.lock();
        if let Some(hit) = g.current.get(&(*id, version)) {
            return Some(hit.clone());
        }
        let hit = g.older.remove(&(*id, version))?;
        Self::put(&mut g, self.generation_bytes, (*id, version), hit.clone());
        Some(hit)
    }

    pub fn insert(&self, id: &PointId, version: u64, payload: Option<Payload>) {
        Self::put(&mut self.inner.lock(), self.generation_bytes, (*id, version), payload);
    }

    fn put(g: &mut Generations, limit: usize, key: (PointId, u64), payload: Option<Payload>) {
        let bytes = 64 + size(&payload);
        if bytes > limit {
            return;
        }
        if g.current_bytes + bytes > limit {
            g.older = std::mem::take(&mut g.current);
            g.current_bytes = 0;
        }
        if g.current.insert(key, payload).is_none() {
            g.current_bytes += bytes;
        }
    }
}

/// A payload kept on disk could not be read. What persists or rewrites payloads (index builds,
/// merges, payload updates) fails on it; a query reads it as no payload (the source logs it).
#[derive(Debug, thiserror::Error)]
#[error("the payload of point {point} could not be read from disk: {cause}")]
pub struct PayloadReadError {
    pub point: PointId,
    #[source]
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

/// The payloads of one segment's slots.
#[derive(Debug, Clone, Default)]
pub(crate) struct Payloads {
    /// One entry per slot while in RAM; empty while `source` serves them.
    ram: Vec<Option<Payload>>,
    source: Option<Arc<dyn PayloadSource>>,
    /// Estimated JSON bytes of every stored payload, kept on each write (collection info must
    /// not serialise every payload to report it), wherever they are held.
    bytes: usize,
}

/// About the length of `v` written as JSON, without writing it (numbers count 8 bytes).
fn json_size(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_size(x) + 1).sum::<usize>(),
        Value::Object(m) => json_size_of_map(m),
    }
}

fn json_size_of_map(m: &Payload) -> usize {
    2 + m.iter().map(|(k, x)| k.len() + 4 + json_size(x)).sum::<usize>()
}

fn size(p: &Option<Payload>) -> usize {
    p.as_ref().map_or(0, json_size_of_map)
}

impl Payloads {
    /// A new slot (no payload yet).
    pub(crate) fn push_slot(&mut self) {
        if self.source.is_none() {
            self.ram.push(None);
        }
    }

    /// Store slot `o`'s payload (an empty one is none). While the source serves payloads only
    /// the byte estimate changes: the database already holds the record.
    pub(crate) fn set(&mut self, o: usize, payload: Option<Payload>) {
        let payload = payload.filter(|p| !p.is_empty());
        if self.source.is_some() {
            self.bytes += size(&payload);
            return;
        }
        let Some(slot) = self.ram.get_mut(o) else { return };
        self.bytes -= size(slot).min(self.bytes);
        *slot = payload;
        self.bytes += size(slot);
    }

    /// Whether slot `o` holds `payload` in RAM (an empty one is none).
    pub(crate) fn holds(&self, o: usize, payload: Option<&Payload>) -> bool {
        let payload = payload.filter(|p| !p.is_empty());
        self.source.is_none() && self.ram.get(o).is_some_and(|held| held.as_ref() == payload)
    }

    /// Slot `o`'s payload; `id` and `version` are the point it holds (what the source is asked
    /// for).
    pub(crate) fn get(
        &self,
        o: usize,
        id: &PointId,
        version: u64,
    ) -> Result<Option<Cow<'_, Payload>>, PayloadReadError> {
        match &self.source {
            Some(src) => Ok(src.payload(id, version)?.map(Cow::Owned)),
            None => Ok(self.ram.get(o).and_then(Option::as_ref).map(Cow::Borrowed)),
        }
    }

    /// Whether the source serves the payloads.
    pub(crate) fn on_disk(&self) -> bool {
        self.source.is_some()
    }

    /// Serve payloads from `source` from now on; gives back what RAM held (to be dropped
    /// outside any lock).
    pub(crate) fn move_to(&mut self, source: Arc<dyn PayloadSource>) -> Vec<Option<Payload>> {
        self.source = Some(source);
        std::mem::take(&mut self.ram)
    }

    /// Hold `ram` (one entry per slot) in RAM again instead of asking the source.
    pub(crate) fn move_to_ram(&mut self, ram: Vec<Option<Payload>>) {
        self.bytes = ram.iter().map(size).sum();
        self.ram = ram;
        self.source = None;
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.ram.shrink_to_fit();
    }

    /// Estimated bytes of every stored payload.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Estimated bytes of payloads held in RAM.
    pub(crate) fn ram_bytes(&self) -> usize {
        if self.source.is_some() {
            0
        } else {
            self.bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Debug, Default)]
    struct Map(Mutex<HashMap<PointId, Payload>>, Mutex<usize>);
    impl PayloadSource for Map {
        fn payload(&self, id: &PointId, _version: u64) -> Result<Option<Payload>, PayloadReadError> {
            *self.1.lock() += 1;
            Ok(self.0.lock().get(id).cloned())
        }
    }

    fn payload(v: serde_json::Value) -> Option<Payload> {
        v.as_object().cloned()
    }

    #[test]
    fn moving_to_a_source_keeps_answers_and_the_byte_count_and_frees_ram() {
        let mut p = Payloads::default();
        let ids = [PointId::Num(1), PointId::Num(2)];
        p.push_slot();
        p.push_slot();
        p.set(0, payload(json!({"a": "xyz"})));
        p.set(1, payload(json!({})));
        let bytes = p.bytes();
        assert!(bytes > 0);
        assert_eq!(p.ram_bytes(), bytes);
        assert_eq!(p.get(1, &ids[1], 1).expect("read"), None, "an empty payload is none");

        let src = Arc::new(Map::default());
        src.0.lock().insert(ids[0], payload(json!({"a": "xyz"})).expect("object"));
        let taken = p.move_to(src.clone());
        assert_eq!(taken.len(), 2);
        assert_eq!(p.ram_bytes(), 0);
        assert_eq!(p.bytes(), bytes);
        assert!(p.on_disk());
        assert_eq!(p.get(0, &ids[0], 1).expect("read").map(Cow::into_owned), payload(json!({"a": "xyz"})));
        assert_eq!(*src.1.lock(), 1, "read on demand");

        p.move_to_ram(taken);
        assert_eq!(p.ram_bytes(), bytes);
        assert!(!p.on_disk());
        let back = p.get(0, &ids[0], 1).expect("read");
        assert!(matches!(back, Some(Cow::Borrowed(_))), "held in RAM again");
        assert_eq!(back.map(Cow::into_owned), payload(json!({"a": "xyz"})));
        assert_eq!(*src.1.lock(), 1, "the source is no longer asked");
    }

    #[test]
    fn a_served_segment_counts_restored_payloads_without_holding_them() {
        let mut p = Payloads::default();
        p.move_to(Arc::new(Map::default()));
        p.push_slot();
        p.set(0, payload(json!({"k": 1})));
        assert!(p.ram.is_empty());
        assert_eq!(p.bytes(), json_size_of_map(&payload(json!({"k": 1})).expect("object")));
    }

    #[test]
    fn the_cache_keeps_recent_versions_within_its_budget() {
        let one = payload(json!({"body": "x".repeat(100)}));
        let entry = 64 + size(&one);
        let cache = PayloadCache::new(entry * 4); // two entries per generation
        let id = |i: u64| PointId::Num(i);
        cache.insert(&id(1), 7, one.clone());
        assert_eq!(cache.get(&id(1), 7), Some(one.clone()));
        assert_eq!(cache.get(&id(1), 8), None, "another version is another record");
        cache.insert(&id(2), 1, None);
        assert_eq!(cache.get(&id(2), 1), Some(None), "no payload is remembered too");
        // A third entry starts a new generation; the first two stay readable in the older one.
        cache.insert(&id(3), 1, one.clone());
        assert_eq!(cache.get(&id(1), 7), Some(one.clone()), "a hit in the older generation moves it");
        cache.insert(&id(4), 1, one.clone());
        cache.insert(&id(5), 1, one.clone());
        let held = {
            let g = cache.inner.lock();
            g.current_bytes + g.older.values().map(|p| 64 + size(p)).sum::<usize>()
        };
        assert!(held <= entry * 4, "{held} > {}", entry * 4);
        assert_eq!(cache.get(&id(2), 1), None, "the oldest entries are dropped");
        let huge = payload(json!({"body": "x".repeat(10 * entry)}));
        cache.insert(&id(6), 1, huge);
        assert_eq!(cache.get(&id(6), 1), None, "a payload over a generation's budget is not kept");
    }
}
