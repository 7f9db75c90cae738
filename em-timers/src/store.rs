//! Timer bookkeeping for one reactor, free of clocks and tasks: which timers
//! are pending, in which order they fire, and how a periodic timer re-arms.
//!
//! Deadlines are whole milliseconds since the reactor's timer origin
//! ("keys"). Pending timers live in a slab of [`Slot`]s (the job, its key,
//! and where its reference sits). The firing order lives in buckets, one per
//! key: a bucket is a `Vec` of slot numbers in insertion order, so equal
//! deadlines fire in creation order without a sequence number, and a
//! million timers spread over a second make only a thousand buckets.
//! Buckets for the next [`WINDOW`] milliseconds sit in a ring indexed by key
//! (with a bitmap to find the next one), so adding, cancelling and firing a
//! timer there costs no search; later ones wait in a `BTreeMap` and move to
//! the ring as the window moves on, before any timer can be added directly
//! to their ring bucket, which keeps creation order.
//!
//! Cancelling is O(1) and immediate: the slot is freed (the job is handed
//! back to be dropped) and its bucket entry becomes a tombstone, found
//! through the position the slot records. A bucket whose last live entry
//! goes is removed at once; a bucket where tombstones outnumber live entries
//! four to one is compacted, so cancelled timers never hold memory for long.
//!
//! A firing pass ([`Store::begin_pass`] .. [`Store::end_pass`]) pops every
//! timer due at or before its limit, in (deadline, insertion) order. Timers
//! added during a pass with a deadline at or before the limit wait in a side
//! list until the pass ends, so they fire in a later pass, never in the one
//! that created them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How many milliseconds of deadlines the ring of buckets covers.
pub(crate) const WINDOW: usize = 4096;
const MASK: u64 = WINDOW as u64 - 1;
/// A bucket entry whose timer was cancelled.
const TOMB: u32 = u32::MAX;
/// The end of the free list.
const NO_SLOT: u32 = u32::MAX;
/// `Slot::idx` of a repeating timer whose job is running.
const RUNNING: u32 = u32::MAX - 1;
/// The most slots (the values above are not slot numbers).
const MAX_SLOTS: u32 = u32::MAX - 2;
/// `Slot::idx` flag: the position is in the deferred list.
const DEFERRED: u32 = 1 << 31;
/// Emptied bucket vectors are kept for reuse up to this many entries of
/// capacity in all (4 MiB): freeing them as fast as the buckets empty makes
/// the allocator consolidate its free lists over and over.
const SPARE_ENTRIES: usize = 1 << 20;

/// Names one timer for as long as it is pending: its slot, the slot's
/// generation (which changes whenever the slot is freed), and the deadline
/// it was added with. A one-shot timer is matched on all three, so a stale
/// id never reaches a slot's later tenant, even after the 32-bit generation
/// wraps; a periodic timer, whose deadline moves, on the first two (its
/// handle forgets the id once it cancels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    slot: u32,
    gen: u32,
    key: u64,
}

/// What the store keeps for a timer: a job that either fires once or repeats.
pub(crate) trait Job {
    /// Whether the timer stays registered while its job runs, to be re-armed
    /// (periodic) or freed (one-shot) when popped.
    fn repeats(&self) -> bool;
}

/// One timer's entry: 32 bytes with a boxed job.
///
/// * pending: `job` is set, `key` is its deadline and `idx` its position in
///   the bucket for `key` (or, with `DEFERRED`, in the deferred list);
/// * running (a repeating job, out of the slot): no job, `idx == RUNNING`;
/// * vacant: no job, `idx` is the next free slot.
struct Slot<J> {
    job: Option<J>,
    key: u64,
    gen: u32,
    idx: u32,
}

impl<J> Slot<J> {
    fn is_vacant(&self) -> bool {
        self.job.is_none() && self.idx != RUNNING
    }
}

#[derive(Default)]
struct Bucket {
    /// Slot numbers in insertion order; `TOMB` for cancelled ones.
    refs: Vec<u32>,
    /// Entries before `head` have been popped.
    head: u32,
    /// Entries at or after `head` that are not tombstones.
    live: u32,
}

impl Bucket {
    fn tombs(&self) -> usize {
        self.refs.len() - self.head as usize - self.live as usize
    }
}

/// A timer popped by a pass: its id, the deadline it fired for, its job.
pub(crate) struct Due<J> {
    pub(crate) id: TimerId,
    pub(crate) key: u64,
    pub(crate) job: J,
}

/// Adding a timer would pass the cap, which is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full(pub(crate) usize);

/// The pass under way.
#[derive(Debug, Clone, Copy)]
struct Pass {
    limit: u64,
    /// The key being drained; every bucket before it is done.
    cursor: u64,
    done: bool,
}

/// The pending timers of one reactor.
pub(crate) struct Store<J> {
    slots: Vec<Slot<J>>,
    free: u32,
    /// Pending plus running timers: what `max` caps.
    live: usize,
    max: Option<usize>,
    /// The generation new slots start with (above every generation handed
    /// out before `take_all`).
    gen_floor: u32,
    max_gen: u32,
    /// The ring covers keys `base .. base + WINDOW`; no timer is due before
    /// `base`.
    base: u64,
    ring: Box<[Bucket]>,
    /// One bit per ring bucket that holds entries.
    occupied: Box<[u64]>,
    /// Buckets for keys at or past `base + WINDOW`.
    far: BTreeMap<u64, Bucket>,
    pass: Option<Pass>,
    /// Timers added during the pass and due by its limit, in insertion order.
    deferred: Vec<(u64, u32)>,
    spare: Vec<Vec<u32>>,
    /// The capacity held in `spare`, in entries.
    spare_entries: usize,
}

impl<J: Job> Store<J> {
    /// An empty store allowing at most `max` pending timers.
    pub(crate) fn new(max: Option<usize>) -> Self {
        Store {
            slots: Vec::new(),
            free: NO_SLOT,
            live: 0,
            max,
            gen_floor: 0,
            max_gen: 0,
            base: 0,
            ring: (0..WINDOW).map(|_| Bucket::default()).collect(),
            occupied: vec![0; WINDOW / 64].into_boxed_slice(),
            far: BTreeMap::new(),
            pass: None,
            deferred: Vec::new(),
            spare: Vec::new(),
            spare_entries: 0,
        }
    }

    /// How many timers are pending or running (what `max` caps).
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether `id` names a timer that is pending or running.
    #[cfg(test)]
    fn contains(&self, id: TimerId) -> bool {
        self.matching(id).is_some()
    }

    /// The slot `id` names, if it still does.
    fn matching(&self, id: TimerId) -> Option<&Slot<J>> {
        let s = self.slots.get(id.slot as usize)?;
        if s.gen != id.gen || s.is_vacant() {
            return None;
        }
        match &s.job {
            Some(job) if !job.repeats() && s.key != id.key => None,
            _ => Some(s),
        }
    }

    /// Adds a timer due at `key`, its job made from its id. Fails when the
    /// cap is reached, handing `job` back unused (for the caller to drop
    /// outside any borrow).
    pub(crate) fn insert_with<F: FnOnce(TimerId) -> J>(
        &mut self,
        key: u64,
        job: F,
    ) -> Result<TimerId, (Full, F)> {
        if let Some(max) = self.max {
            if self.live >= max {
                return Err((Full(max), job));
            }
        }
        // Nothing is due before the base (a key there would be a bug of the
        // caller's clock); never file one behind the ring.
        let key = key.max(self.base);
        let slot = if self.free != NO_SLOT {
            let slot = self.free;
            self.free = self.slots[slot as usize].idx;
            slot
        } else {
            let slot = self.slots.len() as u32;
            if slot >= MAX_SLOTS {
                return Err((Full(self.live), job));
            }
            self.slots.push(Slot {
                job: None,
                key: 0,
                gen: self.gen_floor,
                idx: NO_SLOT,
            });
            slot
        };
        let s = &mut self.slots[slot as usize];
        let id = TimerId {
            slot,
            gen: s.gen,
            key,
        };
        s.job = Some(job(id));
        self.live += 1;
        self.link(slot, key);
        Ok(id)
    }

    /// Cancels `id`: from now on it does not fire and does not count toward
    /// the cap. Returns its job, to be dropped by the caller outside any
    /// borrow, when it was pending; `None` when it was running (its job is
    /// out), or is unknown, fired or already cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<J> {
        let s = self.matching(id)?;
        if s.job.is_some() {
            let (key, idx) = (s.key, s.idx);
            self.unlink(key, idx);
        }
        self.release(id.slot)
    }

    /// The earliest deadline of a pending timer (outside a pass).
    pub(crate) fn first_key(&self) -> Option<u64> {
        self.next_key(self.base)
    }

    /// The first key at or after `from` with a bucket.
    fn next_key(&self, from: u64) -> Option<u64> {
        let end = self.base.saturating_add(WINDOW as u64);
        let mut k = from.max(self.base);
        while k < end {
            let pos = (k & MASK) as usize;
            let bits = self.occupied[pos / 64] >> (pos % 64);
            if bits != 0 {
                let found = k + u64::from(bits.trailing_zeros());
                if found < end {
                    return Some(found);
                }
                break;
            }
            k += 64 - (pos % 64) as u64;
        }
        self.far.range(from.max(end)..).next().map(|(&k, _)| k)
    }

    fn in_ring(&self, key: u64) -> bool {
        key >= self.base && key - self.base < WINDOW as u64
    }

    fn bucket_mut(&mut self, key: u64) -> Option<&mut Bucket> {
        if self.in_ring(key) {
            let pos = (key & MASK) as usize;
            (self.occupied[pos / 64] & (1 << (pos % 64)) != 0).then(|| &mut self.ring[pos])
        } else {
            self.far.get_mut(&key)
        }
    }

    /// Drops the (emptied) bucket for `key`.
    fn remove_bucket(&mut self, key: u64) {
        let refs = if self.in_ring(key) {
            let pos = (key & MASK) as usize;
            self.occupied[pos / 64] &= !(1 << (pos % 64));
            std::mem::take(&mut self.ring[pos]).refs
        } else {
            match self.far.remove(&key) {
                Some(bucket) => bucket.refs,
                None => return,
            }
        };
        self.recycle(refs);
    }

    fn recycle(&mut self, mut refs: Vec<u32>) {
        if refs.capacity() > 0 && self.spare_entries + refs.capacity() <= SPARE_ENTRIES {
            refs.clear();
            self.spare_entries += refs.capacity();
            self.spare.push(refs);
        }
    }

    fn new_refs(spare: &mut Vec<Vec<u32>>, spare_entries: &mut usize) -> Vec<u32> {
        let refs = spare.pop().unwrap_or_default();
        *spare_entries -= refs.capacity();
        refs
    }

    /// Starts a pass that fires every timer due at or before `limit`.
    pub(crate) fn begin_pass(&mut self, limit: u64) {
        debug_assert!(self.pass.is_none(), "passes do not nest");
        self.pass = Some(Pass {
            limit,
            cursor: self.base,
            done: false,
        });
    }

    /// The next timer of the pass, in (deadline, insertion) order, or `None`
    /// when the pass is done. A one-shot timer is gone from the store when
    /// it is returned; a repeating one stays registered (and cancellable)
    /// until [`rearm`](Store::rearm) puts its job back.
    pub(crate) fn pop_due(&mut self) -> Option<Due<J>> {
        let mut pass = self.pass?;
        let due = loop {
            if pass.done || pass.cursor > pass.limit {
                pass.done = true;
                break None;
            }
            let key = pass.cursor;
            let Some(bucket) = self.bucket_mut(key) else {
                match self.next_key(key + 1) {
                    Some(next) => pass.cursor = next,
                    None => pass.done = true,
                }
                continue;
            };
            let Some(&slot) = bucket.refs.get(bucket.head as usize) else {
                self.remove_bucket(key);
                continue;
            };
            bucket.head += 1;
            if slot == TOMB {
                continue;
            }
            bucket.live -= 1;
            if bucket.live == 0 {
                self.remove_bucket(key);
            }
            let s = &mut self.slots[slot as usize];
            let id = TimerId {
                slot,
                gen: s.gen,
                key: s.key,
            };
            let job = s.job.take().expect("a bucket entry names a pending timer");
            if job.repeats() {
                s.idx = RUNNING;
            } else {
                let _ = self.release(slot);
            }
            break Some(Due { id, key, job });
        };
        self.pass = Some(pass);
        due
    }

    /// Puts a repeating timer's job back, due at `key`. Hands the job back
    /// when the timer was cancelled while it ran.
    pub(crate) fn rearm(&mut self, id: TimerId, key: u64, job: J) -> Result<(), J> {
        match self.slots.get_mut(id.slot as usize) {
            Some(s) if s.gen == id.gen && s.job.is_none() && s.idx == RUNNING => {
                s.job = Some(job);
                let key = key.max(self.base);
                self.link(id.slot, key);
                Ok(())
            }
            _ => Err(job),
        }
    }

    /// Ends the pass. When it ran to its end, the ring moves on to start at
    /// its limit, and buckets that come into the window leave the map. Then
    /// timers added during the pass and due by its limit join their
    /// buckets, behind everything already there.
    pub(crate) fn end_pass(&mut self) {
        let Some(pass) = self.pass.take() else { return };
        if pass.done && pass.limit > self.base {
            self.base = pass.limit;
            let end = self.base.saturating_add(WINDOW as u64);
            while let Some(entry) = self.far.first_entry() {
                let key = *entry.key();
                if key >= end {
                    break;
                }
                let bucket = entry.remove();
                let pos = (key & MASK) as usize;
                debug_assert!(self.ring[pos].refs.is_empty());
                for (i, &slot) in bucket.refs.iter().enumerate().skip(bucket.head as usize) {
                    if slot != TOMB {
                        // Same key, same position: only the home changes.
                        debug_assert_eq!(self.slots[slot as usize].idx, i as u32);
                    }
                }
                self.ring[pos] = bucket;
                self.occupied[pos / 64] |= 1 << (pos % 64);
            }
        }
        let mut deferred = std::mem::take(&mut self.deferred);
        for &(key, slot) in &deferred {
            if slot != TOMB {
                // Nothing is due before the base, which may have moved past
                // `key` (a periodic timer re-armed on schedule while late):
                // such a timer is due now, on the next pass.
                self.link(slot, key.max(self.base));
            }
        }
        deferred.clear();
        self.deferred = deferred;
    }

    /// Files `slot` under `key`.
    fn link(&mut self, slot: u32, key: u64) {
        let idx = if self.pass.is_some_and(|p| key <= p.limit) {
            self.deferred.push((key, slot));
            (self.deferred.len() - 1) as u32 | DEFERRED
        } else {
            let in_ring = self.in_ring(key);
            let (spare, spare_entries) = (&mut self.spare, &mut self.spare_entries);
            let bucket = if in_ring {
                let pos = (key & MASK) as usize;
                let word = &mut self.occupied[pos / 64];
                let bucket = &mut self.ring[pos];
                if *word & (1 << (pos % 64)) == 0 {
                    *word |= 1 << (pos % 64);
                    bucket.refs = Self::new_refs(spare, spare_entries);
                }
                bucket
            } else {
                self.far.entry(key).or_insert_with(|| Bucket {
                    refs: Self::new_refs(spare, spare_entries),
                    head: 0,
                    live: 0,
                })
            };
            bucket.refs.push(slot);
            bucket.live += 1;
            (bucket.refs.len() - 1) as u32
        };
        let s = &mut self.slots[slot as usize];
        s.key = key;
        s.idx = idx;
    }

    /// Turns the entry of the pending timer at (`key`, `idx`) into a
    /// tombstone.
    fn unlink(&mut self, key: u64, idx: u32) {
        if idx & DEFERRED != 0 {
            self.deferred[(idx & !DEFERRED) as usize].1 = TOMB;
            return;
        }
        let bucket = self
            .bucket_mut(key)
            .expect("a pending timer's bucket exists");
        bucket.refs[idx as usize] = TOMB;
        bucket.live -= 1;
        if bucket.live == 0 {
            self.remove_bucket(key);
        } else if bucket.tombs() > 4 * bucket.live as usize + 16 {
            let bucket = if self.in_ring(key) {
                &mut self.ring[(key & MASK) as usize]
            } else {
                self.far.get_mut(&key).expect("checked above")
            };
            Self::compact(bucket, &mut self.slots);
        }
    }

    /// Drops a bucket's tombstones and popped entries, keeping the order.
    fn compact(bucket: &mut Bucket, slots: &mut [Slot<J>]) {
        let head = bucket.head as usize;
        let mut kept = 0;
        for i in head..bucket.refs.len() {
            let slot = bucket.refs[i];
            if slot != TOMB {
                bucket.refs[kept] = slot;
                slots[slot as usize].idx = kept as u32;
                kept += 1;
            }
        }
        bucket.refs.truncate(kept);
        bucket.head = 0;
        if bucket.refs.capacity() > 4 * kept.max(16) {
            bucket.refs.shrink_to(2 * kept);
        }
    }

    /// Frees `slot`, returning its job if it was pending.
    fn release(&mut self, slot: u32) -> Option<J> {
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        self.max_gen = self.max_gen.max(s.gen);
        s.idx = self.free;
        self.free = slot;
        self.live -= 1;
        s.job.take()
    }

    /// Empties the store, returning the old contents for the caller to drop
    /// outside any borrow. Ids issued before never match again.
    pub(crate) fn take_all(&mut self) -> Store<J> {
        let mut next = Store::new(self.max);
        next.gen_floor = self.max_gen.wrapping_add(1);
        next.max_gen = next.gen_floor;
        next.base = self.base;
        std::mem::replace(self, next)
    }
}

impl<J> fmt::Debug for Store<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("live", &self.live)
            .field("max", &self.max)
            .field("base", &self.base)
            .field("far_buckets", &self.far.len())
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// Whole milliseconds in `d`, rounded down (saturating).
pub(crate) fn ms_floor(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole milliseconds in `d`, rounded up (saturating).
pub(crate) fn ms_ceil(d: Duration) -> u64 {
    ms_floor(d).saturating_add(u64::from(!d.subsec_nanos().is_multiple_of(1_000_000)))
}

/// When a periodic timer that was due at `prev` fires next, given its
/// interval and the times its callback started and returned (all since the
/// origin).
///
/// * A **slow** callback (it ran for an interval or more) fires next one
///   full interval after it returned (EventMachine's re-arm): a slow
///   callback never makes the timer burst.
/// * A **fast** callback keeps the schedule, `prev + interval`, so the timer
///   never drifts, even when the fire itself came late (at a 1 ms interval
///   a fire often comes one timer tick late: that is not a slow callback).
///   The next fire may then be due already, and runs on the next pass.
/// * Unless the timer is behind by a whole interval or more (the reactor
///   was held up): the missed fires are skipped, not made up in a burst,
///   and the next one comes an interval after the callback returned.
pub(crate) fn next_periodic_key(prev: u64, interval: u64, started: Duration, end: Duration) -> u64 {
    let on_schedule = prev.saturating_add(interval);
    let interval_d = Duration::from_millis(interval);
    let slow = end.saturating_sub(started) >= interval_d && interval > 0;
    let behind =
        end.saturating_sub(Duration::from_millis(on_schedule)) >= interval_d && interval > 0;
    if slow || behind {
        ms_ceil(end).saturating_add(interval)
    } else {
        on_schedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test job: a name, and whether it repeats.
    #[derive(Debug, Clone, PartialEq)]
    struct J(&'static str, bool);

    impl Job for J {
        fn repeats(&self) -> bool {
            self.1
        }
    }

    fn once(name: &'static str) -> impl FnOnce(TimerId) -> J {
        move |_| J(name, false)
    }

    /// Runs a whole pass, re-arming nothing; the names in firing order.
    fn pass(store: &mut Store<J>, limit: u64) -> Vec<&'static str> {
        store.begin_pass(limit);
        let mut fired = Vec::new();
        while let Some(due) = store.pop_due() {
            fired.push(due.job.0);
        }
        store.end_pass();
        fired
    }

    #[test]
    fn fires_in_deadline_then_insertion_order() {
        let mut s = Store::new(None);
        for (key, name) in [(5, "a"), (3, "b"), (5, "c"), (1, "d"), (3, "e")] {
            s.insert_with(key, once(name)).map_err(|e| e.0).unwrap();
        }
        assert_eq!(s.first_key(), Some(1));
        assert_eq!(pass(&mut s, 3), ["d", "b", "e"]);
        assert_eq!(s.len(), 2);
        assert_eq!(pass(&mut s, 10), ["a", "c"]);
        assert_eq!(s.len(), 0);
        assert_eq!(s.first_key(), None);
    }

    #[test]
    fn cancel_is_immediate_idempotent_and_frees_the_cap() {
        let mut s = Store::new(Some(2));
        let a = s.insert_with(5, once("a")).map_err(|e| e.0).unwrap();
        let _b = s.insert_with(5, once("b")).map_err(|e| e.0).unwrap();
        assert_eq!(s.insert_with(5, once("c")).map_err(|e| e.0), Err(Full(2)));
        assert_eq!(s.cancel(a), Some(J("a", false)));
        assert_eq!(s.cancel(a), None);
        assert!(!s.contains(a));
        assert_eq!(s.len(), 1);
        let c = s.insert_with(5, once("c")).map_err(|e| e.0).unwrap();
        // The freed slot is reused, under a new generation.
        assert_eq!(c.slot, a.slot);
        assert_ne!(c, a);
        assert_eq!(s.cancel(a), None, "a stale id never reaches the new tenant");
        assert_eq!(pass(&mut s, 5), ["b", "c"]);
        assert_eq!(s.cancel(c), None, "cancel after firing is a no-op");
    }

    #[test]
    fn cancelling_the_last_live_entry_removes_the_bucket() {
        let mut s = Store::new(None);
        let a = s.insert_with(7, once("a")).map_err(|e| e.0).unwrap();
        let b = s.insert_with(9, once("b")).map_err(|e| e.0).unwrap();
        s.cancel(a);
        assert_eq!(s.first_key(), Some(9));
        s.cancel(b);
        assert_eq!(s.first_key(), None);
        assert!(s.far.is_empty());
        assert!(s.occupied.iter().all(|&w| w == 0));
    }

    #[test]
    fn compaction_keeps_order_and_positions() {
        let mut s = Store::new(None);
        let ids: Vec<_> = (0..200)
            .map(|i| s.insert_with(1, move |_| J(if i % 50 == 0 { "keep" } else { "x" }, false)))
            .map(|r| r.map_err(|e| e.0).unwrap())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if i % 50 != 0 && i % 7 != 0 {
                s.cancel(*id);
            }
        }
        let bucket = &s.ring[1];
        assert!(bucket.refs.len() < 200, "the bucket was compacted");
        // Positions still right: cancel what is left among the `x`s.
        for (i, id) in ids.iter().enumerate() {
            if i % 50 != 0 && i % 7 == 0 {
                assert_eq!(s.cancel(*id), Some(J("x", false)));
            }
        }
        assert_eq!(pass(&mut s, 1), ["keep"; 4]);
    }

    #[test]
    fn timers_added_during_a_pass_wait_for_the_next() {
        let mut s = Store::new(None);
        s.insert_with(4, once("a")).map_err(|e| e.0).unwrap();
        s.insert_with(4, once("b")).map_err(|e| e.0).unwrap();
        s.begin_pass(4);
        let first = s.pop_due().unwrap();
        assert_eq!(first.job.0, "a");
        // Added by a's callback: due now, and later than the pass.
        let late = s
            .insert_with(4, once("zero-delay"))
            .map_err(|e| e.0)
            .unwrap();
        let cancelled = s
            .insert_with(3, once("cancelled"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(6, once("later")).map_err(|e| e.0).unwrap();
        s.cancel(cancelled);
        assert_eq!(s.pop_due().unwrap().job.0, "b");
        assert!(s.pop_due().is_none());
        s.end_pass();
        assert!(s.contains(late));
        assert_eq!(pass(&mut s, 4), ["zero-delay"]);
        assert_eq!(pass(&mut s, 6), ["later"]);
    }

    #[test]
    fn cancel_during_a_pass_skips_the_timer() {
        let mut s = Store::new(None);
        s.insert_with(2, once("a")).map_err(|e| e.0).unwrap();
        let b = s.insert_with(2, once("b")).map_err(|e| e.0).unwrap();
        s.insert_with(2, once("c")).map_err(|e| e.0).unwrap();
        s.begin_pass(2);
        assert_eq!(s.pop_due().unwrap().job.0, "a");
        assert_eq!(s.cancel(b), Some(J("b", false)));
        assert_eq!(s.pop_due().unwrap().job.0, "c");
        assert!(s.pop_due().is_none());
        s.end_pass();
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn repeating_jobs_stay_registered_while_running() {
        let mut s = Store::new(Some(1));
        let p = s
            .insert_with(10, |_| J("p", true))
            .map_err(|e| e.0)
            .unwrap();
        s.begin_pass(10);
        let due = s.pop_due().unwrap();
        assert_eq!((due.id, due.key), (p, 10));
        assert!(s.contains(p));
        assert_eq!(
            s.insert_with(1, once("x")).map_err(|e| e.0),
            Err(Full(1)),
            "still counted"
        );
        s.rearm(p, 20, due.job).unwrap();
        s.end_pass();
        assert_eq!(s.first_key(), Some(20));

        // Cancelled while running: the job comes back from rearm.
        s.begin_pass(20);
        let due = s.pop_due().unwrap();
        assert_eq!(s.cancel(p), None, "the running job is out of the store");
        assert_eq!(s.len(), 0);
        assert_eq!(s.rearm(p, 30, due.job), Err(J("p", true)));
        s.end_pass();
        assert_eq!(s.first_key(), None);
    }

    #[test]
    fn take_all_empties_and_keeps_ids_stale() {
        let mut s = Store::new(None);
        let a = s.insert_with(1, once("a")).map_err(|e| e.0).unwrap();
        let old = s.take_all();
        assert_eq!(old.len(), 1);
        assert_eq!(s.len(), 0);
        assert_eq!(s.cancel(a), None);
        let b = s.insert_with(1, once("b")).map_err(|e| e.0).unwrap();
        assert_ne!(a, b);
        assert_eq!(pass(&mut s, 1), ["b"]);
    }

    #[test]
    fn far_buckets_join_the_ring_before_direct_inserts() {
        let far = WINDOW as u64 + 5;
        let mut s = Store::new(None);
        s.insert_with(far, once("far, added first"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(10, once("near")).map_err(|e| e.0).unwrap();
        assert_eq!(s.first_key(), Some(10));
        assert_eq!(pass(&mut s, 10), ["near"]);
        // The window moved to start at 10: `far` is in the ring now, and a
        // timer added for the same deadline goes behind the one added first.
        assert!(s.far.is_empty());
        s.insert_with(far, once("same deadline, added later"))
            .map_err(|e| e.0)
            .unwrap();
        assert_eq!(s.first_key(), Some(far));
        assert_eq!(pass(&mut s, far - 1), Vec::<&str>::new());
        assert_eq!(
            pass(&mut s, far),
            ["far, added first", "same deadline, added later"]
        );
    }

    #[test]
    fn a_pass_past_the_window_fires_ring_then_map_in_order() {
        let w = WINDOW as u64;
        let mut s = Store::new(None);
        for (key, name) in [
            (9_000, "9000 a"),
            (1, "1"),
            (w, "window"),
            (w - 1, "window - 1"),
            (9_000, "9000 b"),
            (3 * w, "3 windows"),
        ] {
            s.insert_with(key, once(name)).map_err(|e| e.0).unwrap();
        }
        assert_eq!(
            pass(&mut s, 10_000),
            ["1", "window - 1", "window", "9000 a", "9000 b"]
        );
        assert_eq!(s.first_key(), Some(3 * w));
        assert_eq!(pass(&mut s, 3 * w), ["3 windows"]);
    }

    #[test]
    fn the_ring_wraps_around() {
        let w = WINDOW as u64;
        let mut s = Store::new(None);
        s.insert_with(w - 10, once("start"))
            .map_err(|e| e.0)
            .unwrap();
        assert_eq!(pass(&mut s, w - 10), ["start"]);
        // Window [w - 10, 2w - 10): these keys wrap to the ring's start.
        let a = s
            .insert_with(w + 5, once("wrapped a"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(w - 3, once("before the wrap"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(2 * w - 11, once("window end"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(2 * w - 10, once("past the window"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(w + 5, once("wrapped b"))
            .map_err(|e| e.0)
            .unwrap();
        assert_eq!(s.first_key(), Some(w - 3));
        s.cancel(a);
        assert_eq!(
            pass(&mut s, 2 * w),
            [
                "before the wrap",
                "wrapped b",
                "window end",
                "past the window"
            ]
        );
        assert_eq!(s.len(), 0);
        assert_eq!(s.first_key(), None);
    }

    #[test]
    fn cancel_in_the_map() {
        let mut s = Store::new(None);
        let far = s
            .insert_with(100_000, once("far"))
            .map_err(|e| e.0)
            .unwrap();
        s.insert_with(200_000, once("farther"))
            .map_err(|e| e.0)
            .unwrap();
        assert_eq!(s.first_key(), Some(100_000));
        assert_eq!(s.cancel(far), Some(J("far", false)));
        assert_eq!(s.first_key(), Some(200_000));
        assert_eq!(pass(&mut s, 300_000), ["farther"]);
    }

    #[test]
    fn a_stale_one_shot_id_misses_even_when_the_generation_wraps() {
        let mut s = Store::new(None);
        let old = s.insert_with(5, once("old")).map_err(|e| e.0).unwrap();
        s.cancel(old);
        let new = s.insert_with(7, once("new")).map_err(|e| e.0).unwrap();
        assert_eq!(new.slot, old.slot);
        // Pretend the slot's generation went all the way round.
        s.slots[new.slot as usize].gen = old.gen;
        assert_eq!(
            s.cancel(old),
            None,
            "a different deadline: not the same timer"
        );
        assert_eq!(pass(&mut s, 7), ["new"]);
    }

    #[test]
    fn spare_bucket_vectors_stay_within_budget() {
        let mut s = Store::new(None);
        // 1,100 buckets of 1,024 entries of capacity: more than the budget.
        for key in 0..1_100u64 {
            for _ in 0..520 {
                s.insert_with(key, once("x")).map_err(|e| e.0).unwrap();
            }
        }
        let _ = pass(&mut s, 1_100);
        assert!(s.spare_entries <= SPARE_ENTRIES);
        let held: usize = s.spare.iter().map(Vec::capacity).sum();
        assert_eq!(held, s.spare_entries);
    }

    #[test]
    fn a_slot_is_32_bytes() {
        // A boxed closure (a fat pointer), the deadline, generation and position.
        assert_eq!(std::mem::size_of::<Slot<Box<dyn FnOnce()>>>(), 32);
    }

    #[test]
    fn a_timer_rearmed_before_the_pass_limit_fires_on_the_next_pass() {
        let mut s = Store::new(None);
        let id = s.insert_with(10, |_| J("p", true)).ok().unwrap();
        s.begin_pass(20);
        let due = s.pop_due().expect("due at 10");
        assert_eq!(due.id, id);
        // Re-armed on schedule, at 15: before the pass's limit of 20.
        assert!(s.rearm(due.id, 15, due.job).is_ok());
        assert!(s.pop_due().is_none(), "not in the same pass");
        s.end_pass();
        // The base moved to 20: the timer is due there, not lost below it.
        assert_eq!(s.first_key(), Some(20));
        s.begin_pass(20);
        assert_eq!(s.pop_due().map(|d| d.job), Some(J("p", true)));
        s.end_pass();
    }

    #[test]
    fn periodic_rule_no_drift_no_burst() {
        // Fast callback: back on schedule.
        let us = Duration::from_micros;
        // Fast callback, on time: on schedule.
        assert_eq!(next_periodic_key(10, 10, us(10_000), us(12_300)), 20);
        // Slow callback (ran 15.3 ms): one full interval past its end,
        // rounded up to ms.
        assert_eq!(next_periodic_key(10, 10, us(10_000), us(25_300)), 36);
        // Running exactly an interval counts as slow.
        assert_eq!(next_periodic_key(10, 10, us(10_000), us(20_000)), 30);
        // A 1 ms timer whose fire came a tick late, with a fast callback:
        // still on schedule (due already; it fires on the next pass). This
        // used to count as slow and cut the rate to a third.
        assert_eq!(next_periodic_key(10, 1, us(11_200), us(11_250)), 11);
        // Behind by a whole interval or more (the reactor was held up):
        // skip, never burst.
        assert_eq!(next_periodic_key(10, 1, us(12_500), us(12_600)), 14);
        // A zero interval fires on every pass.
        assert_eq!(next_periodic_key(10, 0, us(10_000), us(10_000)), 10);
        // Far deadlines saturate instead of overflowing.
        assert_eq!(
            next_periodic_key(u64::MAX - 1, 10, Duration::ZERO, Duration::ZERO),
            u64::MAX
        );
    }

    #[test]
    fn millisecond_rounding() {
        assert_eq!(ms_floor(Duration::from_micros(1_999)), 1);
        assert_eq!(ms_ceil(Duration::from_micros(1_001)), 2);
        assert_eq!(ms_ceil(Duration::from_millis(3)), 3);
        assert_eq!(ms_floor(Duration::MAX), u64::MAX);
        assert_eq!(ms_ceil(Duration::MAX), u64::MAX);
    }
}
