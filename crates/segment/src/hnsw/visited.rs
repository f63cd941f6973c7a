//! Per-search scratch: a visited list with generation counters, the two heaps and small
//! buffers, pooled so searches allocate nothing in the steady state.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use parking_lot::Mutex;

/// Visited marks as `u16` generation tags: starting a search bumps the generation instead of
/// clearing the array; the array is cleared only when the counter wraps (every 65535 uses).
pub(crate) struct VisitedList {
    tags: Vec<u16>,
    generation: u16,
}

impl VisitedList {
    pub fn new(n: usize) -> Self {
        VisitedList { tags: vec![0; n], generation: 0 }
    }

    /// Starts a new search over `n` nodes.
    #[inline]
    pub fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.tags.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `i`; returns whether it was already marked in this search.
    #[inline(always)]
    pub fn check_and_mark(&mut self, i: u32) -> bool {
        let t = &mut self.tags[i as usize];
        if *t == self.generation {
            true
        } else {
            *t = self.generation;
            false
        }
    }
}

/// Hint the CPU to load the cache line at `p`. Never dereferences.
#[inline(always)]
pub(crate) fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: prefetch is a hint and never faults, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetch the cache lines of a slice (capped at 8 lines; the hardware prefetcher follows).
#[inline(always)]
pub(crate) fn prefetch_slice(s: &[f32]) {
    prefetch_bytes(s.as_ptr() as *const u8, std::mem::size_of_val(s));
}

/// Prefetch the cache lines of `len` bytes at `p` (capped at 8 lines, as [`prefetch_slice`]).
#[inline(always)]
pub(crate) fn prefetch_bytes(p: *const u8, len: usize) {
    let bytes = len.min(512);
    let mut off = 0;
    while off < bytes {
        prefetch_ptr(p.wrapping_add(off));
        off += 64;
    }
}

/// Heap entry ordered so the *best* (largest score) is on top of a `BinaryHeap`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Near {
    pub score: f32,
    pub id: u32,
}

impl PartialEq for Near {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then_with(|| o.id.cmp(&self.id))
    }
}

/// Heap entry ordered so the *worst* (smallest score) is on top of a `BinaryHeap`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Far {
    pub score: f32,
    pub id: u32,
}

impl PartialEq for Far {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Far {}
impl PartialOrd for Far {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Far {
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        o.score.total_cmp(&self.score).then_with(|| self.id.cmp(&o.id))
    }
}

/// Everything one search (or one insertion) needs.
pub(crate) struct Scratch {
    pub visited: VisitedList,
    /// Candidates to expand, best on top.
    pub candidates: BinaryHeap<Near>,
    /// Current results, worst on top.
    pub results: BinaryHeap<Far>,
    /// Unvisited neighbours of the node being expanded.
    pub pending: Vec<u32>,
    /// Sorted results / heuristic input.
    pub sorted: Vec<Near>,
    /// Heuristic output.
    pub selected: Vec<Near>,
    /// Heuristic output while re-pruning a neighbour's list.
    pub tmp: Vec<Near>,
}

impl Scratch {
    pub fn new(n: usize) -> Self {
        Scratch {
            visited: VisitedList::new(n),
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            pending: Vec::new(),
            sorted: Vec::new(),
            selected: Vec::new(),
            tmp: Vec::new(),
        }
    }
}

/// A pool of [`Scratch`] for `n` nodes.
pub(crate) struct ScratchPool {
    n: usize,
    free: Mutex<Vec<Scratch>>,
}

impl ScratchPool {
    pub fn new(n: usize) -> Self {
        ScratchPool { n, free: Mutex::new(Vec::new()) }
    }

    pub fn get(&self) -> Scratch {
        self.free.lock().pop().unwrap_or_else(|| Scratch::new(self.n))
    }

    pub fn put(&self, s: Scratch) {
        let mut free = self.free.lock();
        // Bound the pool (one per concurrent searcher is all that is ever reused).
        if free.len() < 256 {
            free.push(s);
        }
    }
}
