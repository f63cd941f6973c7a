//! Where a segment's payloads live: in RAM beside the vectors, or (`on_disk_payload`, for a
//! sealed segment) read on demand from the shard's database, so that RAM does not grow with
//! payload size. The database's own cache bounds what such reads keep in memory.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use qd_core::{Payload, PointId};

/// Reads a point's current payload from durable storage.
pub trait PayloadSource: Send + Sync + fmt::Debug {
    /// The stored payload of `id`; `None` when it has none or is gone.
    fn payload(&self, id: &PointId) -> Result<Option<Payload>, PayloadReadError>;
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

    /// Slot `o`'s payload; `id` is the point it holds (what the source is asked for).
    pub(crate) fn get(&self, o: usize, id: &PointId) -> Result<Option<Cow<'_, Payload>>, PayloadReadError> {
        match &self.source {
            Some(src) => Ok(src.payload(id)?.map(Cow::Owned)),
            None => Ok(self.ram.get(o).and_then(Option::as_ref).map(Cow::Borrowed)),
        }
    }

    /// Slot `o`'s payload if it is held in RAM: `Err(())` when the source must be asked.
    pub(crate) fn in_ram(&self, o: usize) -> Result<Option<&Payload>, ()> {
        match self.source {
            Some(_) => Err(()),
            None => Ok(self.ram.get(o).and_then(Option::as_ref)),
        }
    }

    pub(crate) fn source(&self) -> Option<&Arc<dyn PayloadSource>> {
        self.source.as_ref()
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
        fn payload(&self, id: &PointId) -> Result<Option<Payload>, PayloadReadError> {
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
        assert_eq!(p.get(1, &ids[1]).expect("read"), None, "an empty payload is none");

        let src = Arc::new(Map::default());
        src.0.lock().insert(ids[0], payload(json!({"a": "xyz"})).expect("object"));
        let taken = p.move_to(src.clone());
        assert_eq!(taken.len(), 2);
        assert_eq!(p.ram_bytes(), 0);
        assert_eq!(p.bytes(), bytes);
        assert!(p.in_ram(0).is_err());
        assert_eq!(p.get(0, &ids[0]).expect("read").map(Cow::into_owned), payload(json!({"a": "xyz"})));
        assert_eq!(*src.1.lock(), 1, "read on demand");

        p.move_to_ram(taken);
        assert_eq!(p.ram_bytes(), bytes);
        assert_eq!(p.in_ram(0).ok().flatten(), payload(json!({"a": "xyz"})).as_ref());
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
}
