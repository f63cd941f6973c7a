//! A segment's point ids and their slots.
//!
//! While a segment takes writes the map is a B-tree. A segment that will not grow again
//! (sealed, or restored sealed) keeps it as one sorted array instead: a single allocation
//! instead of a tree node per dozen points. The nodes are allocated during ingest among
//! payloads and other short-lived data; once those are freed (payloads moved to disk, request
//! buffers), scattered surviving nodes keep their pages resident.

use std::collections::BTreeMap;

use qd_core::PointId;

#[derive(Debug, Clone)]
pub(crate) enum IdMap {
    Growing(BTreeMap<PointId, u32>),
    /// Sorted by id.
    Frozen(Vec<(PointId, u32)>),
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap::Growing(BTreeMap::new())
    }
}

impl IdMap {
    pub(crate) fn get(&self, id: &PointId) -> Option<u32> {
        match self {
            IdMap::Growing(m) => m.get(id).copied(),
            IdMap::Frozen(v) => v.binary_search_by(|(p, _)| p.cmp(id)).ok().map(|i| v[i].1),
        }
    }

    /// Map `id` to slot `o` (a frozen map grows again: it becomes a tree).
    pub(crate) fn insert(&mut self, id: PointId, o: u32) {
        if let IdMap::Frozen(v) = self {
            *self = IdMap::Growing(std::mem::take(v).into_iter().collect());
        }
        if let IdMap::Growing(m) = self {
            m.insert(id, o);
        }
    }

    /// `(id, slot)` in id order, from `from` (inclusive) when given.
    pub(crate) fn iter_from(&self, from: Option<&PointId>) -> Box<dyn Iterator<Item = (PointId, u32)> + '_> {
        match (self, from) {
            (IdMap::Growing(m), Some(f)) => Box::new(m.range(f..).map(|(p, o)| (*p, *o))),
            (IdMap::Growing(m), None) => Box::new(m.iter().map(|(p, o)| (*p, *o))),
            (IdMap::Frozen(v), f) => {
                let start = f.map_or(0, |f| v.partition_point(|(p, _)| p < f));
                Box::new(v[start..].iter().copied())
            }
        }
    }

    /// A frozen map of `(id, slot)` pairs (of an id listed twice, the later slot).
    pub(crate) fn frozen(pairs: impl Iterator<Item = (PointId, u32)>) -> Self {
        let mut v: Vec<(PointId, u32)> = pairs.collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        v.dedup_by_key(|e| e.0);
        v.shrink_to_fit();
        IdMap::Frozen(v)
    }

    /// Keep the map as one exact-size sorted array (see the module's documentation).
    pub(crate) fn freeze(&mut self) {
        if let IdMap::Growing(m) = self {
            let mut v = Vec::with_capacity(m.len());
            v.extend(std::mem::take(m));
            *self = IdMap::Frozen(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_answers_as_growing() {
        let mut grow = IdMap::default();
        for i in (0..500u64).rev().step_by(3) {
            grow.insert(PointId::Num(i), i as u32 * 2);
        }
        grow.insert(PointId::Uuid(uuid::Uuid::from_u128(7)), 1);
        let mut frozen = grow.clone();
        frozen.freeze();
        assert!(matches!(frozen, IdMap::Frozen(_)));
        for i in 0..502u64 {
            assert_eq!(frozen.get(&PointId::Num(i)), grow.get(&PointId::Num(i)));
            let from = Some(PointId::Num(i));
            let (a, b): (Vec<_>, Vec<_>) =
                (frozen.iter_from(from.as_ref()).collect(), grow.iter_from(from.as_ref()).collect());
            assert_eq!(a, b);
        }
        assert_eq!(frozen.iter_from(None).collect::<Vec<_>>(), grow.iter_from(None).collect::<Vec<_>>());
        let pairs = [(PointId::Num(3), 0), (PointId::Num(1), 1), (PointId::Num(3), 2)];
        let built = IdMap::frozen(pairs.into_iter());
        assert_eq!(built.iter_from(None).collect::<Vec<_>>(), vec![(PointId::Num(1), 1), (PointId::Num(3), 2)]);
        frozen.insert(PointId::Num(1), 9);
        assert_eq!(frozen.get(&PointId::Num(1)), Some(9));
        assert!(matches!(frozen, IdMap::Growing(_)));
    }
}
