//! A hashed timing wheel, sans-IO: every timer of the process (HTTP read
//! deadlines, backend handshakes, WebSocket pings) lives here, and the
//! reactor's poll timeout is [`Wheel::next_deadline`].
//!
//! Insert and cancel are O(1): entries sit in a slab and each slot holds an
//! intrusive doubly linked list. A deadline more than one turn away stays in
//! its slot until its own turn comes. A bitmap of occupied slots makes the
//! next deadline a scan of at most `slots / 64` words.
//!
//! Deadlines are rounded up to the tick: a timer never fires early, and at
//! most one tick late.

use std::time::{Duration, Instant};

use slab::Slab;

/// A timer's handle. The generation makes cancelling a fired timer, or one
/// whose slab slot was reused since, a harmless no-op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

struct Entry<T> {
    value: T,
    /// The tick at or after which the timer fires.
    tick: u64,
    generation: u32,
    prev: Option<u32>,
    next: Option<u32>,
}

pub struct Wheel<T> {
    start: Instant,
    tick: Duration,
    /// The next tick [`Wheel::advance`] has to look at.
    current: u64,
    heads: Vec<Option<u32>>,
    occupied: Vec<u64>,
    entries: Slab<Entry<T>>,
    generation: u32,
}

impl<T> Wheel<T> {
    /// `slots` is rounded up to a multiple of 64; `tick` must not be zero.
    pub fn new(start: Instant, tick: Duration, slots: usize) -> Self {
        let slots = slots.max(64).next_multiple_of(64);
        Wheel {
            start,
            tick: tick.max(Duration::from_micros(1)),
            current: 0,
            heads: vec![None; slots],
            occupied: vec![0; slots / 64],
            entries: Slab::new(),
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let since = deadline.saturating_duration_since(self.start);
        let tick = since.as_nanos().div_ceil(self.tick.as_nanos());
        let tick = u64::try_from(tick).unwrap_or(u64::MAX).max(self.current);
        self.generation = self.generation.wrapping_add(1);
        let index = self.entries.insert(Entry {
            value,
            tick,
            generation: self.generation,
            prev: None,
            next: None,
        }) as u32;
        self.link(index);
        TimerId {
            index,
            generation: self.generation,
        }
    }

    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let live = self
            .entries
            .get(id.index as usize)
            .is_some_and(|e| e.generation == id.generation);
        if !live {
            return None;
        }
        self.unlink(id.index);
        Some(self.entries.remove(id.index as usize).value)
    }

    /// Move to `now`, pushing the values of every timer due by then.
    pub fn advance(&mut self, now: Instant, expired: &mut Vec<T>) {
        let target = self.ticks_at(now);
        if target < self.current {
            return;
        }
        let slots = self.heads.len() as u64;
        // Past one whole turn, every slot is visited once.
        let steps = (target - self.current + 1).min(slots);
        for step in 0..steps {
            let slot = ((self.current + step) % slots) as usize;
            let mut cursor = self.heads[slot];
            while let Some(index) = cursor {
                let entry = &self.entries[index as usize];
                cursor = entry.next;
                if entry.tick <= target {
                    self.unlink(index);
                    expired.push(self.entries.remove(index as usize).value);
                }
            }
        }
        self.current = target + 1;
    }

    /// When [`Wheel::advance`] may next have something to do: the start of
    /// the first occupied slot, never later than the earliest deadline
    /// (rounded up to the tick). `None` when empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.entries.is_empty() {
            return None;
        }
        let slots = self.heads.len() as u64;
        let from = (self.current % slots) as usize;
        let distance = self.first_occupied_from(from)?;
        let tick = self.current + distance as u64;
        let nanos = self.tick.as_nanos().saturating_mul(u128::from(tick));
        let offset = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Some(self.start + offset)
    }

    fn ticks_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        u64::try_from(since.as_nanos() / self.tick.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Slots from `from` (circularly) to the first occupied one.
    fn first_occupied_from(&self, from: usize) -> Option<usize> {
        let slots = self.heads.len();
        let words = self.occupied.len();
        let first_word = from / 64;
        // The first word masked below `from`, then every word in turn, then
        // the first word's low bits again (wrapping around).
        for step in 0..=words {
            let w = (first_word + step) % words;
            let mut bits = self.occupied[w];
            if step == 0 {
                bits &= u64::MAX << (from % 64);
            } else if step == words {
                bits &= !(u64::MAX << (from % 64));
            }
            if bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                return Some((slot + slots - from) % slots);
            }
        }
        None
    }

    fn slot_of(&self, tick: u64) -> usize {
        (tick % self.heads.len() as u64) as usize
    }

    fn link(&mut self, index: u32) {
        let slot = self.slot_of(self.entries[index as usize].tick);
        let head = self.heads[slot];
        if let Some(head) = head {
            self.entries[head as usize].prev = Some(index);
        }
        let entry = &mut self.entries[index as usize];
        entry.next = head;
        entry.prev = None;
        self.heads[slot] = Some(index);
        self.occupied[slot / 64] |= 1 << (slot % 64);
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, tick) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.tick)
        };
        let slot = self.slot_of(tick);
        match prev {
            Some(prev) => self.entries[prev as usize].next = next,
            None => self.heads[slot] = next,
        }
        if let Some(next) = next {
            self.entries[next as usize].prev = prev;
        }
        if self.heads[slot].is_none() {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn wheel(start: Instant) -> Wheel<u32> {
        Wheel::new(start, 10 * MS, 64)
    }

    fn fired(w: &mut Wheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out.sort();
        out
    }

    #[test]
    fn timers_fire_at_their_deadline_never_before() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        w.insert(t0 + 25 * MS, 1);
        w.insert(t0 + 10 * MS, 2);
        assert_eq!(fired(&mut w, t0 + 9 * MS), Vec::<u32>::new());
        assert_eq!(fired(&mut w, t0 + 10 * MS), vec![2]);
        assert_eq!(fired(&mut w, t0 + 29 * MS), Vec::<u32>::new());
        assert_eq!(fired(&mut w, t0 + 30 * MS), vec![1]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_own_turn() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        // One turn is 64 slots of 10 ms = 640 ms.
        w.insert(t0 + 650 * MS, 1);
        w.insert(t0 + 10 * MS, 2);
        assert_eq!(fired(&mut w, t0 + 10 * MS), vec![2]);
        assert_eq!(fired(&mut w, t0 + 640 * MS), Vec::<u32>::new());
        assert_eq!(fired(&mut w, t0 + 650 * MS), vec![1]);
    }

    #[test]
    fn a_long_jump_fires_everything_due() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        for i in 0..200 {
            w.insert(t0 + (i * 7) * MS, i);
        }
        let all = fired(&mut w, t0 + 5000 * MS);
        assert_eq!(all, (0..200).collect::<Vec<u32>>());
    }

    #[test]
    fn cancel_removes_and_a_stale_id_is_harmless() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        let a = w.insert(t0 + 10 * MS, 1);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        // The slab slot is reused by a new timer: the old id cannot touch it.
        let b = w.insert(t0 + 20 * MS, 2);
        assert_eq!(w.cancel(a), None);
        assert_eq!(fired(&mut w, t0 + 20 * MS), vec![2]);
        assert_eq!(w.cancel(b), None, "cancel after fire is a no-op");
    }

    #[test]
    fn cancel_in_the_middle_of_a_slot_list_keeps_the_others() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        let ids: Vec<TimerId> = (0..5).map(|i| w.insert(t0 + 10 * MS, i)).collect();
        w.cancel(ids[2]);
        w.cancel(ids[0]);
        w.cancel(ids[4]);
        assert_eq!(fired(&mut w, t0 + 10 * MS), vec![1, 3]);
    }

    #[test]
    fn next_deadline_is_never_after_the_earliest_timer() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        assert_eq!(w.next_deadline(), None);
        w.insert(t0 + 95 * MS, 1);
        assert_eq!(w.next_deadline(), Some(t0 + 100 * MS));
        w.insert(t0 + 30 * MS, 2);
        assert_eq!(w.next_deadline(), Some(t0 + 30 * MS));
        assert_eq!(fired(&mut w, t0 + 30 * MS), vec![2]);
        assert_eq!(w.next_deadline(), Some(t0 + 100 * MS));
        // Past a turn: the slot comes up early, and advance then finds nothing.
        let mut w = wheel(t0);
        w.insert(t0 + 700 * MS, 3);
        let early = w.next_deadline().unwrap();
        assert!(early <= t0 + 700 * MS);
        assert_eq!(fired(&mut w, early), Vec::<u32>::new());
        assert_eq!(w.next_deadline(), Some(t0 + 700 * MS));
    }

    #[test]
    fn next_deadline_wraps_around_the_wheel() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        fired(&mut w, t0 + 600 * MS);
        w.insert(t0 + 650 * MS, 1);
        assert_eq!(w.next_deadline(), Some(t0 + 650 * MS));
        assert_eq!(fired(&mut w, t0 + 650 * MS), vec![1]);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_advance() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        fired(&mut w, t0 + 100 * MS);
        w.insert(t0, 1);
        assert_eq!(w.next_deadline(), Some(t0 + 110 * MS));
        assert_eq!(fired(&mut w, t0 + 110 * MS), vec![1]);
    }

    #[test]
    fn many_timers_fire_in_deadline_batches() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0, MS, 1024);
        let mut ids = Vec::new();
        for i in 0..10_000u32 {
            ids.push(w.insert(t0 + (i % 3000) * MS, i));
        }
        for id in ids.iter().step_by(2) {
            w.cancel(*id);
        }
        let mut seen = 0;
        let mut out = Vec::new();
        for ms in 0..=3000u32 {
            out.clear();
            w.advance(t0 + ms * MS, &mut out);
            assert!(out.iter().all(|v| v % 3000 == ms % 3000 || v % 3000 <= ms));
            seen += out.len();
        }
        assert_eq!(seen, 5000);
        assert!(w.is_empty());
    }
}
