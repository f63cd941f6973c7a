//! Link storage: flat fixed-size blocks of `[count, ids..]` per node and level.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use rand::{Rng, SeedableRng};

/// Hard cap on levels (a level is a `u8`; with `m >= 2` a level above ~30 never occurs).
pub(crate) const MAX_LEVEL: usize = 32;

/// Links of all levels. See the module docs of `hnsw` for the layout.
pub(crate) struct Links {
    pub m: usize,
    pub m0: usize,
    pub max_level: usize,
    /// `n * (m0 + 1)` slots.
    pub level0: Vec<AtomicU32>,
    /// Level of each node.
    pub levels: Vec<u8>,
    /// Per node: start of its first upper block in `upper` (unused for level-0 nodes).
    pub upper_start: Vec<u32>,
    /// Blocks of `m + 1` slots; node `i` owns `levels[i]` consecutive blocks.
    pub upper: Vec<AtomicU32>,
}

impl Clone for Links {
    fn clone(&self) -> Self {
        Links {
            m: self.m,
            m0: self.m0,
            max_level: self.max_level,
            level0: clone_atomic(&self.level0),
            levels: self.levels.clone(),
            upper_start: self.upper_start.clone(),
            upper: clone_atomic(&self.upper),
        }
    }
}

fn clone_atomic(v: &[AtomicU32]) -> Vec<AtomicU32> {
    v.iter().map(|a| AtomicU32::new(a.load(Relaxed))).collect()
}

pub(crate) fn atomic_vec(len: usize) -> Vec<AtomicU32> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, || AtomicU32::new(0));
    v
}

/// Draws HNSW levels: `floor(-ln(U) / ln(m))`, capped.
pub(crate) fn random_levels(n: usize, m: usize, seed: u64) -> Vec<u8> {
    let mult = 1.0 / (m.max(2) as f64).ln();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
            let level = (-u.ln() * mult).floor();
            (level as usize).min(MAX_LEVEL) as u8
        })
        .collect()
}

/// Per-node start of the upper blocks, total upper slots and the highest level.
fn upper_layout(m: usize, levels: &[u8]) -> Option<(Vec<u32>, usize, usize)> {
    let mut upper_start = Vec::with_capacity(levels.len());
    let mut next: u64 = 0;
    let mut max_level = 0usize;
    for &l in levels {
        upper_start.push(u32::try_from(next).ok()?);
        next += l as u64 * (m as u64 + 1);
        max_level = max_level.max(l as usize);
    }
    u32::try_from(next).ok()?;
    Some((upper_start, next as usize, max_level))
}

impl Links {
    /// Empty lists for nodes with the given levels; `None` if the upper array would not be
    /// addressable by `u32`.
    pub fn new(m: usize, m0: usize, levels: Vec<u8>) -> Option<Links> {
        let (upper_start, upper_len, max_level) = upper_layout(m, &levels)?;
        Some(Links {
            m,
            m0,
            max_level,
            level0: atomic_vec(levels.len().checked_mul(m0 + 1)?),
            levels,
            upper_start,
            upper: atomic_vec(upper_len),
        })
    }

    /// `n` level-0 nodes with no room for links (`m = 0`): the main graph of a groups-only
    /// graph, whose links are all group links.
    pub fn unlinked(n: usize) -> Links {
        Links {
            m: 0,
            m0: 0,
            max_level: 0,
            level0: atomic_vec(n),
            levels: vec![0; n],
            upper_start: vec![0; n],
            upper: Vec::new(),
        }
    }

    /// Lists from stored slots; `None` if the sizes do not match the levels.
    pub fn from_slots(m: usize, m0: usize, levels: Vec<u8>, level0: Vec<u32>, upper: Vec<u32>) -> Option<Links> {
        let (upper_start, upper_len, max_level) = upper_layout(m, &levels)?;
        if upper.len() != upper_len || Some(level0.len()) != levels.len().checked_mul(m0 + 1) {
            return None;
        }
        Some(Links {
            m,
            m0,
            max_level,
            level0: level0.into_iter().map(AtomicU32::new).collect(),
            levels,
            upper_start,
            upper: upper.into_iter().map(AtomicU32::new).collect(),
        })
    }

    /// These lists followed by empty ones for new nodes with `extra` levels: the old nodes'
    /// blocks keep their positions (both arrays are laid out in node order).
    pub fn extended(&self, extra: &[u8]) -> Option<Links> {
        let levels: Vec<u8> = self.levels.iter().chain(extra).copied().collect();
        let out = Links::new(self.m, self.m0, levels)?;
        for (dst, src) in out.level0.iter().zip(&self.level0) {
            dst.store(src.load(Relaxed), Relaxed);
        }
        for (dst, src) in out.upper.iter().zip(&self.upper) {
            dst.store(src.load(Relaxed), Relaxed);
        }
        Some(out)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    #[inline]
    pub fn level_of(&self, node: u32) -> usize {
        self.levels[node as usize] as usize
    }

    #[inline]
    pub fn cap(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// The block `[count, ids..]` of `node` at `level` (the node must have that level).
    #[inline]
    pub fn block(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let w = self.m0 + 1;
            let s = node as usize * w;
            &self.level0[s..s + w]
        } else {
            let w = self.m + 1;
            let s = self.upper_start[node as usize] as usize + (level - 1) * w;
            &self.upper[s..s + w]
        }
    }

    /// Calls `f` for each neighbour (lock-free read).
    #[inline]
    pub fn for_each(&self, node: u32, level: usize, mut f: impl FnMut(u32)) {
        let b = self.block(node, level);
        let cnt = (b[0].load(Relaxed) as usize).min(b.len() - 1);
        for slot in &b[1..1 + cnt] {
            f(slot.load(Relaxed));
        }
    }

    /// Overwrites the list (caller holds the node's lock while building). Ids past the
    /// capacity are dropped. Slots are written before the count.
    pub fn write(&self, node: u32, level: usize, ids: impl IntoIterator<Item = u32>) {
        let b = self.block(node, level);
        let mut cnt = 0usize;
        for id in ids.into_iter().take(b.len() - 1) {
            b[1 + cnt].store(id, Relaxed);
            cnt += 1;
        }
        b[0].store(cnt as u32, Relaxed);
    }

    pub fn memory_bytes(&self) -> usize {
        (self.level0.capacity() + self.upper.capacity() + self.upper_start.capacity()) * 4 + self.levels.capacity()
    }
}
