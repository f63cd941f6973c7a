//! What an update operation does to individual points, computed before anything is written:
//! a list of `(id, new record or None for delete)`. Computing effects first lets a shard reject
//! a whole operation (e.g. an unknown id in set_payload) without writing anything, then commit
//! the effects as one atomic batch.

use qd_core::json_path::{payload_depth, MAX_PAYLOAD_DEPTH};
use qd_core::{Payload, PointId};

use crate::error::{CollectionError, Result};
use crate::operations::{PointSelection, UpdateOp};
use crate::record::PointRecord;

pub type Effects = Vec<(PointId, Option<PointRecord>)>;

/// Current state of a point, as the effect computation needs it.
pub trait PointSource {
    /// The point's record (its payload left out unless `with_payload`); an error when the
    /// payload, kept on disk, cannot be read, which refuses the operation rather than rewrite
    /// the point without it. Operations that replace or drop the payload do not read it, so a
    /// point with an unreadable payload can still be deleted, cleared or overwritten.
    fn record(&self, id: &PointId, with_payload: bool) -> Result<Option<PointRecord>>;
    fn select(&self, filter: &qd_core::filter::Filter) -> Vec<PointId>;
}

fn existing(
    src: &dyn PointSource,
    sel: &PointSelection,
    strict: bool,
    with_payload: bool,
) -> Result<Vec<(PointId, PointRecord)>> {
    let ids = match sel {
        PointSelection::Ids(ids) => ids.clone(),
        PointSelection::Filter(f) => src.select(f),
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match src.record(&id, with_payload)? {
            Some(r) => out.push((id, r)),
            None if strict => return Err(CollectionError::NotFound(format!("No point with id {id} found"))),
            None => {}
        }
    }
    Ok(out)
}

fn with_payload(mut r: PointRecord, version: u64, f: impl FnOnce(&mut Payload)) -> Option<PointRecord> {
    let mut p = r.payload.take().unwrap_or_default();
    f(&mut p);
    r.payload = if p.is_empty() { None } else { Some(p) };
    r.version = version;
    Some(r)
}

/// Effects of `op` applied at operation number `version` on top of `src`. A payload that
/// would nest deeper than [`MAX_PAYLOAD_DEPTH`] refuses the whole operation: it could not be
/// read back from storage.
pub fn compute(src: &dyn PointSource, op: &UpdateOp, version: u64) -> Result<Effects> {
    let effects = compute_unchecked(src, op, version)?;
    for (id, rec) in &effects {
        let depth = rec.as_ref().and_then(|r| r.payload.as_ref()).map_or(0, payload_depth);
        if depth > MAX_PAYLOAD_DEPTH {
            return Err(CollectionError::BadRequest(format!(
                "payload of point {id} would nest {depth} levels deep; at most {MAX_PAYLOAD_DEPTH} are allowed"
            )));
        }
    }
    Ok(effects)
}

fn compute_unchecked(src: &dyn PointSource, op: &UpdateOp, version: u64) -> Result<Effects> {
    Ok(match op {
        UpdateOp::Conditional { op, condition } => {
            let mut out = Vec::new();
            for (id, rec) in compute_unchecked(src, op, version)? {
                if condition.allows(id, src.record(&id, true)?.as_ref()) {
                    out.push((id, rec));
                }
            }
            out
        }
        UpdateOp::Upsert(points) => points
            .iter()
            .map(|p| (p.id, Some(PointRecord { version, vectors: p.vectors.clone(), payload: p.payload.clone() })))
            .collect(),
        UpdateOp::Delete(sel) => existing(src, sel, false, false)?.into_iter().map(|(id, _)| (id, None)).collect(),
        UpdateOp::SetPayload { payload, selection, key } => existing(src, selection, true, true)?
            .into_iter()
            .map(|(id, r)| {
                (
                    id,
                    with_payload(r, version, |p| match key {
                        Some(path) => path.set(p, payload.clone()),
                        None => qd_core::json_path::merge_payload(p, payload),
                    }),
                )
            })
            .collect(),
        UpdateOp::OverwritePayload { payload, selection } => existing(src, selection, true, false)?
            .into_iter()
            .map(|(id, r)| (id, with_payload(r, version, |p| *p = payload.clone())))
            .collect(),
        UpdateOp::DeletePayload { keys, selection } => existing(src, selection, true, true)?
            .into_iter()
            .map(|(id, r)| {
                (
                    id,
                    with_payload(r, version, |p| {
                        for k in keys {
                            k.delete(p);
                        }
                    }),
                )
            })
            .collect(),
        UpdateOp::ClearPayload(sel) => existing(src, sel, true, false)?
            .into_iter()
            .map(|(id, r)| (id, with_payload(r, version, |p| p.clear())))
            .collect(),
        UpdateOp::UpdateVectors(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (id, vectors) in items {
                let mut r = src
                    .record(id, true)?
                    .ok_or_else(|| CollectionError::NotFound(format!("No point with id {id} found")))?;
                r.vectors.extend(vectors.iter().map(|(k, v)| (k.clone(), v.clone())));
                r.version = version;
                out.push((*id, Some(r)));
            }
            out
        }
        UpdateOp::DeleteVectors { selection, names } => existing(src, selection, true, true)?
            .into_iter()
            .map(|(id, mut r)| {
                r.vectors.retain(|k, _| !names.contains(k));
                r.version = version;
                (id, Some(r))
            })
            .collect(),
    })
}

/// Overlay of effects not yet applied to the segment, consulted first (group commit).
pub struct Overlay<'a> {
    pub base: &'a dyn PointSource,
    /// The latest pending record of each point written by the group so far.
    pub pending: &'a std::collections::HashMap<PointId, Option<PointRecord>>,
}

impl PointSource for Overlay<'_> {
    fn record(&self, id: &PointId, with_payload: bool) -> Result<Option<PointRecord>> {
        match self.pending.get(id) {
            Some(r) => Ok(r.clone()),
            None => self.base.record(id, with_payload),
        }
    }
    fn select(&self, filter: &qd_core::filter::Filter) -> Vec<PointId> {
        // Callers flush the overlay before a filter-selected operation, so base is current.
        self.base.select(filter)
    }
}
