//! Which replicated writes a copy of a shard already holds.
//!
//! While a replica receives a copy (a shard transfer, a Dead replica's recovery), live writes
//! reach it too. The source reads each copied batch (or its snapshot) at one moment: a write
//! the source applied before then is in the copy, a later one is not. Writes whose effect
//! depends on what the points hold (by filter, partial updates by id, conditional upserts) are
//! not idempotent against data that already holds them: "delete where tag = x" then "set
//! tag = x where group = g" leaves group g's points with tag x, and running the delete again
//! over a copy holding both removes them. Over a snapshot this holds for every write.
//!
//! So each replicated write carries an id its coordinator chose. The source keeps the ids of
//! the writes it applied lately ([`RecentOps`]) and says, with each batch or snapshot, which of
//! them the copy holds; the receiver ([`Reflected`]) replays over the copy only the writes it
//! does not hold, and a write that reaches the receiver after a copy that holds it is applied
//! only to the points that copy did not bring.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use qd_core::PointId;
use serde::{Deserialize, Serialize};

/// The id a write's coordinator gives it; the same on every replica and on every retry.
pub type OpId = u64;

/// How long a source remembers a write's id. A receiver replays only writes it applied less
/// than twice the write timeout before its copy began (older ones the source has applied, or
/// it missed them and was marked Dead), so this covers them with room to spare.
pub const KEEP_OPS_FOR: Duration = Duration::from_secs(60);
/// At most this many ids per log (about 17 MiB with their times and lookup set), whatever the
/// write rate; a log fills only above 8,700 writes a second to one shard.
pub const MAX_RECENT_OPS: usize = 1 << 19;

/// Where a receiver stands in a source's [`RecentOps`]: what it was told up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCursor {
    /// The source's log since it started (a restart begins another).
    pub epoch: u64,
    /// The position after the last id reported.
    pub next: u64,
}

/// The ids of the writes a replica applied in the last [`KEEP_OPS_FOR`], in order.
#[derive(Debug)]
pub struct RecentOps {
    epoch: u64,
    /// Position of `ids[0]` since the log began.
    first: u64,
    ids: VecDeque<(OpId, Instant)>,
    present: HashSet<OpId>,
    /// When the newest id forgotten so far was applied.
    forgot: Option<Instant>,
    keep: Duration,
    cap: usize,
}

/// What a source reports since a cursor.
#[derive(Debug, PartialEq, Eq)]
pub struct Since {
    pub ids: Vec<OpId>,
    pub cursor: OpCursor,
    /// False when ids applied since the cursor may have been forgotten already.
    pub complete: bool,
}

impl RecentOps {
    pub fn new(keep: Duration, cap: usize) -> Self {
        RecentOps {
            epoch: rand::random(),
            first: 0,
            ids: VecDeque::new(),
            present: HashSet::new(),
            forgot: None,
            keep,
            cap: cap.max(1),
        }
    }

    /// Log `id` as applied at `now` (once: a retried write is logged when first applied).
    pub fn push(&mut self, id: OpId, now: Instant) {
        while let Some(&(old, at)) = self.ids.front() {
            if self.ids.len() < self.cap && now.saturating_duration_since(at) < self.keep {
                break;
            }
            self.ids.pop_front();
            self.present.remove(&old);
            self.forgot = Some(at);
            self.first += 1;
        }
        if self.present.insert(id) {
            self.ids.push_back((id, now));
        }
    }

    /// Whether every write applied here in the `window` before `now` is still known.
    pub fn covers(&self, window: Duration, now: Instant) -> bool {
        self.forgot.is_none_or(|at| now.saturating_duration_since(at) > window)
    }

    /// Whether write `id` was applied here lately.
    pub fn contains(&self, id: OpId) -> bool {
        self.present.contains(&id)
    }

    fn cursor(&self) -> OpCursor {
        OpCursor { epoch: self.epoch, next: self.first + self.ids.len() as u64 }
    }

    /// The ids applied after `after` (every id kept, for none).
    pub fn since(&self, after: Option<OpCursor>) -> Since {
        let (skip, complete) = match after {
            None => (0, true),
            Some(c) if c.epoch == self.epoch => match c.next.checked_sub(self.first) {
                Some(n) => (n.min(self.ids.len() as u64) as usize, true),
                None => (0, false),
            },
            // The source restarted: what it applied before is not known here any more.
            Some(_) => (0, false),
        };
        Since { ids: self.ids.iter().skip(skip).map(|(id, _)| *id).collect(), cursor: self.cursor(), complete }
    }
}

/// What a live write arriving at a receiving replica should still do.
#[derive(Debug, PartialEq, Eq)]
pub enum LiveWrite {
    /// Apply it: no copy holds it.
    All,
    /// Apply it except to these points: copied batches that hold it wrote them last.
    Outside(BTreeSet<PointId>),
    /// Apply it to these points only: the snapshot that replaced the replica holds it, and
    /// later batches that do not hold it wrote these.
    Only(BTreeSet<PointId>),
    /// Nothing: the snapshot holds it and nothing copied since replaced its points.
    Skip,
}

/// Still open: the copy in progress holds the write from some batch on.
const OPEN: u32 = u32::MAX;

/// A receiving replica's record of what its copies held: which writes the current copy's
/// source reported, which copied batches held each write, and which batch wrote each point
/// last. Batches are numbered over every copy since tracking began; an installed snapshot
/// counts as one batch that wrote every point.
#[derive(Debug, Default)]
pub struct Reflected {
    /// Ids the current copy's source reported applied before its last read: every later
    /// batch of this copy holds them too.
    held: HashSet<OpId>,
    /// The batches that hold each reported write, one range per copy.
    holding: HashMap<OpId, Vec<Range<u32>>>,
    /// The batch that wrote each point last.
    last: HashMap<PointId, u32>,
    /// The next batch's number.
    next: u32,
    /// The snapshot that replaced the replica: points not in `last` are as it wrote them.
    base: Option<u32>,
}

impl Reflected {
    /// A new copy begins (another source, or the same one again): what it holds is reported
    /// afresh. What earlier copies wrote stays known, for writes still on their way.
    pub fn start_copy(&mut self) {
        self.held.clear();
        for ranges in self.holding.values_mut() {
            if let Some(open) = ranges.last_mut().filter(|r| r.end == OPEN) {
                open.end = self.next;
            }
        }
    }

    /// Whether the current copy holds write `id` (a write without an id is never held).
    pub fn holds(&self, id: Option<OpId>) -> bool {
        id.is_some_and(|id| self.held.contains(&id))
    }

    fn hold(&mut self, id: OpId, from: u32) {
        self.held.insert(id);
        let ranges = self.holding.entry(id).or_default();
        if ranges.last().is_none_or(|r| r.end != OPEN) {
            ranges.push(from..OPEN);
        }
    }

    /// A copied batch was written: it holds the writes `held` (those its source reported
    /// since the previous batch) and wrote `points` (those skipped left out).
    pub fn batch_copied(&mut self, held: impl IntoIterator<Item = OpId>, points: impl IntoIterator<Item = PointId>) {
        let batch = self.next;
        for id in held {
            self.hold(id, batch);
        }
        for p in points {
            self.last.insert(p, batch);
        }
        self.next += 1;
    }

    /// A snapshot holding the writes `held` replaced the replica.
    pub fn snapshot_installed(&mut self, held: impl IntoIterator<Item = OpId>) {
        let batch = self.next;
        self.held.clear();
        self.holding.clear();
        self.last.clear();
        self.base = Some(batch);
        for id in held {
            self.hold(id, batch);
        }
        self.next += 1;
    }

    /// What the live write `id` should do now.
    pub fn live(&self, id: Option<OpId>) -> LiveWrite {
        let Some(ranges) = id.and_then(|id| self.holding.get(&id)) else { return LiveWrite::All };
        let holds = |batch: u32| ranges.iter().any(|r| r.contains(&batch));
        let points = |held: bool| -> BTreeSet<PointId> {
            self.last.iter().filter(|(_, b)| holds(**b) == held).map(|(p, _)| *p).collect()
        };
        if self.base.is_some_and(holds) {
            let rest = points(false);
            if rest.is_empty() {
                LiveWrite::Skip
            } else {
                LiveWrite::Only(rest)
            }
        } else {
            let copied = points(true);
            if copied.is_empty() {
                LiveWrite::All
            } else {
                LiveWrite::Outside(copied)
            }
        }
    }

    /// Whether no copy held any write (nothing to keep once tracking ends).
    pub fn is_empty(&self) -> bool {
        self.holding.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(cap: usize) -> RecentOps {
        RecentOps::new(Duration::from_secs(60), cap)
    }

    #[test]
    fn a_cursor_reports_what_came_after_it() {
        let now = Instant::now();
        let mut log = log(4);
        log.push(1, now);
        log.push(2, now);
        log.push(2, now);
        let first = log.since(None);
        assert_eq!(first.ids, vec![1, 2], "a retried write is logged once");
        assert!(first.complete && log.contains(2) && !log.contains(3));
        log.push(3, now);
        let next = log.since(Some(first.cursor));
        assert_eq!((next.ids, next.complete), (vec![3], true));
        let none = log.since(Some(next.cursor));
        assert!(none.ids.is_empty() && none.complete);
    }

    #[test]
    fn a_log_forgets_the_oldest_and_says_when_a_cursor_missed_some() {
        let now = Instant::now();
        let mut log = log(2);
        log.push(1, now);
        let cursor = log.since(None).cursor;
        for id in 2..=5 {
            log.push(id, now);
        }
        let late = log.since(Some(cursor));
        assert_eq!(late.ids, vec![4, 5]);
        assert!(!late.complete, "ids 2 and 3 were forgotten");
        assert!(!log.covers(Duration::from_secs(1), now), "they were applied within the last second");
        assert!(log.covers(Duration::from_secs(1), now + Duration::from_secs(2)));
        assert!(RecentOps::new(Duration::from_secs(60), 2).covers(Duration::MAX, now), "nothing forgotten yet");
        assert!(!log.contains(2) && log.contains(5));
        // Another epoch (the source restarted): what it has, and that this is not all.
        let other = OpCursor { epoch: cursor.epoch.wrapping_add(1), next: 1 };
        let restarted = log.since(Some(other));
        assert_eq!((restarted.ids, restarted.complete), (vec![4, 5], false));
    }

    #[test]
    fn a_log_forgets_ids_older_than_it_keeps() {
        let start = Instant::now();
        let mut log = RecentOps::new(Duration::from_secs(10), 100);
        log.push(1, start);
        log.push(2, start + Duration::from_secs(5));
        log.push(3, start + Duration::from_secs(12));
        assert_eq!(log.since(None).ids, vec![2, 3]);
    }

    #[test]
    fn reported_writes_are_not_replayed_and_late_ones_skip_the_batches_holding_them() {
        let (a, b, c) = (PointId::Num(1), PointId::Num(2), PointId::Num(3));
        let mut r = Reflected::default();
        r.start_copy();
        // Batch 0 was read before write 7 was applied at the source; batch 1 after.
        r.batch_copied([5], [a]);
        r.batch_copied([7], [b, c]);
        assert!(r.holds(Some(5)) && r.holds(Some(7)) && !r.holds(Some(8)) && !r.holds(None));
        assert_eq!(r.live(Some(7)), LiveWrite::Outside([b, c].into()));
        assert_eq!(r.live(Some(5)), LiveWrite::Outside([a, b, c].into()));
        assert_eq!(r.live(Some(8)), LiveWrite::All);
        assert_eq!(r.live(None), LiveWrite::All);
    }

    #[test]
    fn a_retried_copy_from_a_source_behind_does_not_hide_a_write() {
        let (a, b) = (PointId::Num(1), PointId::Num(2));
        let mut r = Reflected::default();
        r.start_copy();
        r.batch_copied([7], [a, b]);
        // The copy failed; another source, which had not applied write 7 yet, sends both
        // points again: they no longer hold it.
        r.start_copy();
        assert!(!r.holds(Some(7)));
        r.batch_copied([], [a]);
        assert_eq!(r.live(Some(7)), LiveWrite::Outside([b].into()));
        r.batch_copied([7], [b]);
        assert_eq!(r.live(Some(7)), LiveWrite::Outside([b].into()), "a is as a batch without 7 left it");
    }

    #[test]
    fn a_snapshot_holds_its_writes_for_the_points_it_wrote() {
        let (a, b) = (PointId::Num(1), PointId::Num(2));
        let mut r = Reflected::default();
        r.batch_copied([1], [a]);
        r.snapshot_installed([2, 3]);
        assert_eq!(r.live(Some(2)), LiveWrite::Skip);
        assert_eq!(r.live(Some(1)), LiveWrite::All, "the snapshot replaced what batches wrote");
        assert!(r.holds(Some(3)) && !r.is_empty());
        // A later copy that does not hold write 2 rewrote b: a late 2 still applies there.
        r.start_copy();
        r.batch_copied([], [b]);
        assert_eq!(r.live(Some(2)), LiveWrite::Only([b].into()));
    }
}
