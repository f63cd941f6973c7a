//! Which shards a collection has and which of them an operation touches.
//!
//! Automatic sharding: shards `0..shard_number`, a point lives in
//! `shards[stable_hash(id) % n]`. Custom sharding: every shard key owns a group of shards
//! created with `PUT /collections/{name}/shards`; writes name their key(s) and go to
//! `group[stable_hash(id) % group.len()]` of each; reads without a key see every shard.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use qd_core::PointId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consistency::ReadConsistency;
use crate::error::{CollectionError, Result};
use crate::shard::{Shard, ShardId};

/// What a read covers: the shard keys in scope (`None`: every shard) and how many replicas of
/// each shard it asks.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadScope<'a> {
    pub keys: Option<&'a [ShardKey]>,
    pub consistency: ReadConsistency,
}

impl<'a> ReadScope<'a> {
    /// The shards of `keys`, one replica each.
    pub fn keys(keys: Option<&'a [ShardKey]>) -> Self {
        ReadScope { keys, consistency: ReadConsistency::default() }
    }
}

/// A user-defined shard key: a string or an unsigned integer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShardKey {
    Number(u64),
    Keyword(String),
}

impl ShardKey {
    pub fn from_json(v: &Value) -> Option<ShardKey> {
        match v {
            Value::String(s) => Some(ShardKey::Keyword(s.clone())),
            Value::Number(n) => n.as_u64().map(ShardKey::Number),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            ShardKey::Number(n) => Value::from(*n),
            ShardKey::Keyword(s) => Value::from(s.clone()),
        }
    }
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardKey::Number(n) => write!(f, "{n}"),
            ShardKey::Keyword(s) => write!(f, "{s:?}"),
        }
    }
}

/// A shard key and the shards it owns, as the catalog records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardKeyEntry {
    pub key: ShardKey,
    pub shards: Vec<ShardId>,
}

#[derive(Default)]
pub struct ShardSet {
    shards: BTreeMap<ShardId, Arc<dyn Shard>>,
    /// `None` for automatic sharding.
    keys: Option<BTreeMap<ShardKey, Vec<ShardId>>>,
}

/// Shards targeted by one write, each with the part of the ids it owns.
pub type Targets = Vec<(Arc<dyn Shard>, Option<Vec<PointId>>)>;

fn pick(group: &[ShardId], id: &PointId) -> ShardId {
    group[(id.stable_hash() % group.len() as u64) as usize]
}

impl ShardSet {
    pub fn auto(shards: Vec<Arc<dyn Shard>>) -> Self {
        ShardSet { shards: shards.into_iter().map(|s| (s.id(), s)).collect(), keys: None }
    }

    pub fn custom(shards: Vec<Arc<dyn Shard>>, keys: &[ShardKeyEntry]) -> Self {
        ShardSet {
            shards: shards.into_iter().map(|s| (s.id(), s)).collect(),
            keys: Some(keys.iter().map(|e| (e.key.clone(), e.shards.clone())).collect()),
        }
    }

    pub fn is_custom(&self) -> bool {
        self.keys.is_some()
    }

    pub fn all(&self) -> Vec<Arc<dyn Shard>> {
        self.shards.values().cloned().collect()
    }

    pub fn key_entries(&self) -> Vec<ShardKeyEntry> {
        self.keys.iter().flatten().map(|(k, s)| ShardKeyEntry { key: k.clone(), shards: s.clone() }).collect()
    }

    /// The key owning a shard (custom sharding).
    pub fn key_of(&self, shard: ShardId) -> Option<ShardKey> {
        self.keys.as_ref()?.iter().find(|(_, ids)| ids.contains(&shard)).map(|(k, _)| k.clone())
    }

    pub fn next_shard_id(&self) -> ShardId {
        self.shards.keys().next_back().map(|m| m + 1).unwrap_or(0)
    }

    fn group(&self, key: &ShardKey) -> Result<&Vec<ShardId>> {
        self.keys
            .as_ref()
            .and_then(|k| k.get(key))
            .ok_or_else(|| CollectionError::BadRequest(format!("Shard key {key} does not exist")))
    }

    fn get(&self, id: ShardId) -> Result<Arc<dyn Shard>> {
        self.shards.get(&id).cloned().ok_or_else(|| CollectionError::Internal(format!("shard {id} is not open")))
    }

    /// Shards a read looks at: all, or those of the given keys.
    pub fn for_read(&self, keys: Option<&[ShardKey]>) -> Result<Vec<Arc<dyn Shard>>> {
        match keys {
            None => Ok(self.all()),
            Some(keys) => {
                if !self.is_custom() {
                    return Err(CollectionError::BadRequest(
                        "shard_key can only be used with a collection created with sharding_method: custom".into(),
                    ));
                }
                let mut ids: Vec<ShardId> = Vec::new();
                for k in keys {
                    ids.extend(self.group(k)?);
                }
                ids.sort_unstable();
                ids.dedup();
                ids.into_iter().map(|i| self.get(i)).collect()
            }
        }
    }

    /// Shards a write goes to, with the ids each owns (`None` = the whole operation, for
    /// filter-selected writes that every shard in scope must evaluate).
    pub fn for_write(&self, keys: Option<&[ShardKey]>, ids: Option<&[PointId]>) -> Result<Targets> {
        let groups: Vec<Vec<ShardId>> = match (&self.keys, keys) {
            (None, None) => vec![self.shards.keys().copied().collect()],
            (None, Some(_)) => {
                return Err(CollectionError::BadRequest(
                    "shard_key can only be used with a collection created with sharding_method: custom".into(),
                ))
            }
            (Some(_), None) if ids.is_some() => {
                return Err(CollectionError::BadRequest(
                    "Shard key not specified: this collection uses custom sharding, give shard_key".into(),
                ))
            }
            // A filter-selected write without a key applies to every shard.
            (Some(_), None) => vec![self.shards.keys().copied().collect()],
            (Some(_), Some(keys)) => keys.iter().map(|k| self.group(k).cloned()).collect::<Result<_>>()?,
        };
        let mut per_shard: BTreeMap<ShardId, Option<Vec<PointId>>> = BTreeMap::new();
        for group in groups.iter().filter(|g| !g.is_empty()) {
            match ids {
                None => {
                    for s in group {
                        per_shard.insert(*s, None);
                    }
                }
                Some(ids) => {
                    for id in ids {
                        if let Some(list) = per_shard.entry(pick(group, id)).or_insert_with(|| Some(Vec::new())) {
                            list.push(*id);
                        }
                    }
                }
            }
        }
        per_shard.into_iter().map(|(s, ids)| Ok((self.get(s)?, ids))).collect()
    }

    /// The shard owning an id for reads by id: automatic sharding knows it; custom sharding
    /// may hold the id under several keys, so every shard in scope is asked.
    pub fn owners(&self, keys: Option<&[ShardKey]>, id: &PointId) -> Result<Vec<Arc<dyn Shard>>> {
        match &self.keys {
            None => {
                let all: Vec<ShardId> = self.shards.keys().copied().collect();
                if keys.is_some() {
                    return self.for_read(keys);
                }
                Ok(vec![self.get(pick(&all, id))?])
            }
            Some(_) => self.for_read(keys),
        }
    }

    pub fn add_key(&mut self, key: ShardKey, shards: Vec<Arc<dyn Shard>>) {
        let ids: Vec<ShardId> = shards.iter().map(|s| s.id()).collect();
        for s in shards {
            self.shards.insert(s.id(), s);
        }
        self.keys.get_or_insert_with(BTreeMap::new).insert(key, ids);
    }

    /// Remove a key; returns its shards (to be shut down and deleted by the caller).
    pub fn remove_key(&mut self, key: &ShardKey) -> Result<Vec<Arc<dyn Shard>>> {
        let ids = self
            .keys
            .as_mut()
            .and_then(|k| k.remove(key))
            .ok_or_else(|| CollectionError::NotFound(format!("Shard key {key} does not exist")))?;
        Ok(ids.into_iter().filter_map(|i| self.shards.remove(&i)).collect())
    }

    /// Remove a shard from service (its slot stays reserved: put one back with `replace`).
    pub fn take(&mut self, id: ShardId) -> Option<Arc<dyn Shard>> {
        self.shards.remove(&id)
    }

    /// Put `shard` in place of the shard with the same id; returns the one it replaces.
    pub fn replace(&mut self, shard: Arc<dyn Shard>) -> Option<Arc<dyn Shard>> {
        self.shards.insert(shard.id(), shard)
    }

    pub fn has_key(&self, key: &ShardKey) -> bool {
        self.keys.as_ref().is_some_and(|k| k.contains_key(key))
    }
}
