//! A hierarchical timing wheel, sans-IO: every timer of the process (HTTP
//! deadlines, backend handshakes, WebSocket pings, BOSH waits and
//! inactivity) lives here, and the reactor's poll timeout is
//! [`Wheel::next_deadline`].
//!
//! Contract: a timer fires on the first [`Wheel::advance`] to or past its
//! deadline rounded up to the tick (never early, at most one tick late); a
//! deadline already passed fires on the next advance. `next_deadline` is the
//! earliest of those ticks, or earlier only at the start of a turn of level 0
//! (`slots` ticks), where coarser timers cascade down. So an idle server
//! wakes for the timers that fire plus at most one cascade a turn, however
//! far ahead its deadlines lie.
//!
//! Layout: level 0 has one slot per tick of its turn, so each of its slots
//! holds only timers due at that very tick. Every level above has 64 slots,
//! each as long as a whole turn of the level below, up to the full range of
//! `u64` ticks. A timer sits on the lowest level whose current turn also
//! holds its tick (the highest bit in which its tick and the current one
//! differ picks it), and moves down when the clock reaches its slot. Entries
//! sit in a slab, each slot is an intrusive list and a bitmap marks the
//! occupied slots: insert and cancel are O(1), `next_deadline` reads one
//! word per level, and `advance` costs what it fires and cascades (each timer
//! moves down at most once per level), never the length of a jump in time.

use std::time::{Duration, Instant};

use slab::Slab;

/// The most level-0 slots: one summary word finds the first occupied one.
const MAX_SLOTS: usize = 64 * 64;
/// Each level above 0 has 64 slots: one bitmap word.
const UPPER_BITS: u32 = 6;
/// The end of a list.
const NIL: u32 = u32::MAX;
/// In an entry's `prev`, marks the first of its slot's list; the other bits
/// are the slot. Entry indices stay below it (2^31 entries would take
/// 64 GiB).
const HEAD: u32 = 1 << 31;

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
    /// The previous entry, or `HEAD | slot` for the first of a list.
    prev: u32,
    next: u32,
}

pub struct Wheel<T> {
    start: Instant,
    tick: Duration,
    /// The first tick [`Wheel::advance`] has not passed; no entry is due
    /// before it.
    current: u64,
    /// Level 0 has `1 << bits` slots.
    bits: u32,
    /// The first entry of every slot: level 0's, then 64 for each level
    /// above, lowest first.
    heads: Box<[u32]>,
    /// One bit per slot of `heads`, set while its list is not empty: level 0
    /// fills whole words, then one word per level above.
    occupied: Box<[u64]>,
    /// One bit per word of level 0 in `occupied`, set while it is not zero.
    summary: u64,
    entries: Slab<Entry<T>>,
    generation: u32,
}

impl<T> Wheel<T> {
    /// `slots` (level 0, one per tick of its turn) is kept within 64–4096
    /// and rounded up to a power of two; a zero `tick` counts as 1 µs.
    pub fn new(start: Instant, tick: Duration, slots: usize) -> Self {
        let slots = slots.clamp(64, MAX_SLOTS).next_power_of_two();
        let bits = slots.trailing_zeros();
        let upper = levels(bits) as usize - 1;
        Wheel {
            start,
            tick: tick.max(Duration::from_micros(1)),
            current: 0,
            bits,
            heads: vec![NIL; slots + 64 * upper].into(),
            occupied: vec![0; slots / 64 + upper].into(),
            summary: 0,
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
            prev: NIL,
            next: NIL,
        });
        debug_assert!(index < HEAD as usize);
        let index = index as u32;
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
        // Slots in time order: a level-0 slot fires, a higher one moves its
        // timers down (possibly into a level-0 slot due at this very tick).
        while let Some((tick, slot)) = self.next_event() {
            if tick > target {
                break;
            }
            self.current = tick;
            let mut cursor = self.take(slot);
            while cursor != NIL {
                let index = cursor;
                cursor = self.entries[index as usize].next;
                if slot < self.slots() {
                    expired.push(self.entries.remove(index as usize).value);
                } else {
                    self.link(index);
                }
            }
        }
        self.current = target.saturating_add(1);
    }

    /// When [`Wheel::advance`] next has something to do: the earliest
    /// deadline (rounded up to the tick), or before it the start of a turn
    /// of level 0 where timers cascade. `None` when empty, or when that tick
    /// is past what an `Instant` can hold.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (tick, _) = self.next_event()?;
        let nanos = self.tick.as_nanos().checked_mul(u128::from(tick))?;
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        let offset = Duration::new(secs, (nanos % 1_000_000_000) as u32);
        self.start.checked_add(offset)
    }

    fn ticks_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        u64::try_from(since.as_nanos() / self.tick.as_nanos()).unwrap_or(u64::MAX)
    }

    fn slots(&self) -> usize {
        1 << self.bits
    }

    /// The tick where `level` starts (its lowest bit), the bits it spans and
    /// its first slot in `heads`.
    fn level(&self, level: u32) -> (u32, u32, usize) {
        match level {
            0 => (0, self.bits, 0),
            _ => {
                let above = level - 1;
                let low = self.bits + UPPER_BITS * above;
                (low, UPPER_BITS, self.slots() + 64 * above as usize)
            }
        }
    }

    /// The earliest occupied slot of each level, at its start tick, and the
    /// earliest of those. Every occupied slot starts at or after `current`.
    /// The lowest level is not always the earliest: when `current` has just
    /// reached a higher slot's start, new timers inside it go below it.
    fn next_event(&self) -> Option<(u64, usize)> {
        let level0 = (self.summary != 0).then(|| {
            let word = self.summary.trailing_zeros() as usize;
            word * 64 + self.occupied[word].trailing_zeros() as usize
        });
        let words = self.slots() / 64;
        let upper = (1..levels(self.bits)).filter_map(|level| {
            let word = words + level as usize - 1;
            let bits = self.occupied[word];
            (bits != 0).then(|| (level, word * 64 + bits.trailing_zeros() as usize))
        });
        level0
            .map(|slot| (0, slot))
            .into_iter()
            .chain(upper)
            .map(|(level, slot)| {
                let (low, width, first) = self.level(level);
                let above = low + width;
                let turn = self.current.checked_shr(above).map_or(0, |t| t << above);
                (turn | ((slot - first) as u64) << low, slot)
            })
            .min()
    }

    /// The slot for `tick` (at or after `current`).
    fn slot_of(&self, tick: u64) -> usize {
        let differ = tick ^ self.current;
        let level = match differ >> self.bits {
            0 => 0,
            _ => (63 - differ.leading_zeros() - self.bits) / UPPER_BITS + 1,
        };
        let (low, width, first) = self.level(level);
        first + ((tick >> low) & ((1 << width) - 1)) as usize
    }

    fn mark(&mut self, slot: usize, occupied: bool) {
        let (word, bit) = (slot / 64, 1 << (slot % 64));
        if occupied {
            self.occupied[word] |= bit;
        } else {
            self.occupied[word] &= !bit;
        }
        if slot < self.slots() {
            let bit = 1 << word;
            if self.occupied[word] != 0 {
                self.summary |= bit;
            } else {
                self.summary &= !bit;
            }
        }
    }

    /// Empty a slot, returning the first entry of its former list.
    fn take(&mut self, slot: usize) -> u32 {
        self.mark(slot, false);
        std::mem::replace(&mut self.heads[slot], NIL)
    }

    fn link(&mut self, index: u32) {
        let slot = self.slot_of(self.entries[index as usize].tick);
        let head = self.heads[slot];
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        let entry = &mut self.entries[index as usize];
        entry.next = head;
        entry.prev = HEAD | slot as u32;
        self.heads[slot] = index;
        self.mark(slot, true);
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next)
        };
        if prev & HEAD == 0 {
            self.entries[prev as usize].next = next;
        } else {
            let slot = (prev & !HEAD) as usize;
            self.heads[slot] = next;
            if next == NIL {
                self.mark(slot, false);
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }
}

/// Levels for a level 0 of `1 << bits` slots: enough 64-slot levels above
/// it to reach bit 63 of a tick.
fn levels(bits: u32) -> u32 {
    (63 - bits) / UPPER_BITS + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::FastRng;
    use std::collections::BTreeMap;

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
        // In a later turn: the turn comes first (a cascade), firing nothing.
        let mut w = wheel(t0);
        w.insert(t0 + 700 * MS, 3);
        let early = w.next_deadline().unwrap();
        assert!(early <= t0 + 700 * MS);
        assert_eq!(fired(&mut w, early), Vec::<u32>::new());
        assert_eq!(w.next_deadline(), Some(t0 + 700 * MS));
    }

    #[test]
    fn a_deadline_in_the_next_turn_comes_down_at_the_turn() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        fired(&mut w, t0 + 600 * MS);
        // Level 0's turn is 64 ticks (640 ms): 650 ms lies in the next one.
        w.insert(t0 + 650 * MS, 1);
        assert_eq!(w.next_deadline(), Some(t0 + 640 * MS));
        assert_eq!(fired(&mut w, t0 + 640 * MS), Vec::<u32>::new());
        assert_eq!(w.next_deadline(), Some(t0 + 650 * MS));
        assert_eq!(fired(&mut w, t0 + 650 * MS), vec![1]);
    }

    #[test]
    fn a_process_paused_for_minutes_fires_what_came_due_and_keeps_the_rest() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0, 10 * MS, 4096);
        let s = Duration::from_secs(1);
        w.insert(t0 + 30 * s, 1);
        w.insert(t0 + 90 * s, 2);
        w.insert(t0 + 300 * s, 3);
        w.insert(t0 + 3600 * s + 5 * MS, 4);
        w.insert(t0 + 86_400 * 400 * s, 5);
        assert_eq!(fired(&mut w, t0 + 360 * s), vec![1, 2, 3]);
        let mut wakes = 0;
        while let Some(next) = w.next_deadline().filter(|&n| n <= t0 + 3600 * s) {
            assert_eq!(fired(&mut w, next), Vec::<u32>::new());
            wakes += 1;
        }
        assert!(
            wakes <= 2,
            "one cascade per level it comes down, not {wakes}"
        );
        assert_eq!(w.next_deadline(), Some(t0 + 3600 * s + 10 * MS));
        assert_eq!(fired(&mut w, t0 + 3600 * s + 10 * MS), vec![4]);
        assert_eq!(fired(&mut w, t0 + 86_400 * 399 * s), Vec::<u32>::new());
        assert_eq!(fired(&mut w, t0 + 86_400 * 400 * s), vec![5]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_timer_costs_32_bytes_and_the_reactors_wheel_under_19_kib() {
        // A value of 12 bytes, like the reactor's (owner kind, slab key).
        assert_eq!(std::mem::size_of::<Entry<[u32; 3]>>(), 32);
        let w: Wheel<[u32; 3]> = Wheel::new(Instant::now(), 10 * MS, 4096);
        let fixed = w.heads.len() * 4 + w.occupied.len() * 8;
        assert!(fixed <= 19 * 1024, "{fixed} bytes");
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

    /// 1,000 timers 30–160 s ahead, each re-armed when it fires (pings,
    /// BOSH waits, inactivity), on the reactor's geometry; the clock moves
    /// only to `next_deadline()`, as on an idle server.
    #[test]
    fn an_idle_server_wakes_for_due_timers_and_one_cascade_a_turn() {
        const TIMERS: u32 = 1000;
        const MINUTES: u64 = 10;
        let t0 = Instant::now();
        let mut w = Wheel::new(t0, 10 * MS, 4096);
        let mut rng = FastRng(1);
        let ahead = |rng: &mut FastRng| Duration::from_millis(30_000 + rng.next_u64() % 130_000);
        for i in 0..TIMERS {
            w.insert(t0 + ahead(&mut rng), i);
        }
        let end = t0 + Duration::from_secs(MINUTES * 60);
        let (mut wakes, mut idle, mut fired) = (0u64, 0u64, 0usize);
        let mut out = Vec::new();
        let mut now = t0;
        while now < end {
            now = w.next_deadline().unwrap();
            out.clear();
            w.advance(now, &mut out);
            wakes += 1;
            if out.is_empty() {
                idle += 1;
            }
            fired += out.len();
            for &i in &out {
                w.insert(now + ahead(&mut rng), i);
            }
        }
        assert_eq!(w.len(), TIMERS as usize);
        // The target is at most one wake-up that fires nothing per second
        // per 1,000 timers; the design gives one a turn (a cascade).
        let allowed = MINUTES * 60 * u64::from(TIMERS) / 1000;
        let turns = (MINUTES * 60 * 100).div_ceil(4096);
        assert!(
            idle <= allowed.min(turns),
            "{idle} of {wakes} wake-ups fired nothing ({fired} timers fired); \
             allowed {allowed}, turns {turns}"
        );
    }

    /// The contract in plain terms, for the seeded comparison: a timer is
    /// due at its deadline rounded up to the tick, or at the first tick not
    /// yet advanced over if that is later, and fires on the first advance to
    /// or past that tick.
    struct Reference {
        /// The first tick not advanced over.
        current: u64,
        /// (due tick, value) of every live timer.
        due: BTreeMap<(u64, u32), TimerId>,
    }

    /// The simulation's tick, a millisecond (spans are written in ms), and
    /// 64 level-0 slots, so that timers spread over many levels.
    const SIM_TICK: Duration = MS;
    const SIM_SLOTS: u64 = 64;

    struct Sim {
        seed: u64,
        rng: FastRng,
        t0: Instant,
        wheel: Wheel<u32>,
        reference: Reference,
        /// Time since `t0` of the latest advance.
        clock: Duration,
        next_value: u32,
        stale: Vec<TimerId>,
    }

    impl Sim {
        fn new(seed: u64) -> Sim {
            let t0 = Instant::now();
            Sim {
                seed,
                rng: FastRng(seed),
                t0,
                wheel: Wheel::new(t0, SIM_TICK, SIM_SLOTS as usize),
                reference: Reference {
                    current: 0,
                    due: BTreeMap::new(),
                },
                clock: Duration::ZERO,
                next_value: 0,
                stale: Vec::new(),
            }
        }

        /// `ticks` ticks and a random part of one more.
        fn span(&mut self, ticks: u64) -> Duration {
            let part = self.rng.next_u64() % SIM_TICK.as_nanos() as u64;
            Duration::from_millis(ticks) + Duration::from_nanos(part)
        }

        /// A random number of ticks: mostly within a few turns, sometimes
        /// up to 2^43 (level k of a 64-slot wheel turns in 64^(k+1) ticks).
        fn ticks(&mut self) -> u64 {
            let r = self.rng.next_u64();
            match r % 8 {
                0..=2 => r % 64,
                3..=5 => r % (64 * 64 * 2),
                _ => r % (1 << (r % 44)),
            }
        }

        fn ticks_of(&self, at: Duration) -> u128 {
            at.as_nanos() / SIM_TICK.as_nanos()
        }

        fn insert(&mut self) {
            // From a little before the clock (already due) to far ahead.
            let back = self.rng.next_u64() % 4;
            let ahead = self.ticks();
            let at = (self.clock + self.span(ahead)).saturating_sub(self.span(back));
            let value = self.next_value;
            self.next_value += 1;
            let id = self.wheel.insert(self.t0 + at, value);
            let due = at.as_nanos().div_ceil(SIM_TICK.as_nanos()) as u64;
            let due = due.max(self.reference.current);
            self.reference.due.insert((due, value), id);
        }

        fn cancel(&mut self) {
            if self.reference.due.is_empty() {
                return;
            }
            let nth = self.rng.next_u64() as usize % self.reference.due.len();
            let key = *self.reference.due.keys().nth(nth).unwrap();
            let id = self.reference.due.remove(&key).unwrap();
            assert_eq!(self.wheel.cancel(id), Some(key.1), "seed {}", self.seed);
            self.stale.push(id);
        }

        fn cancel_stale(&mut self) {
            if self.stale.is_empty() {
                return;
            }
            let id = self.stale[self.rng.next_u64() as usize % self.stale.len()];
            assert_eq!(self.wheel.cancel(id), None, "seed {}", self.seed);
        }

        fn advance_to(&mut self, clock: Duration) {
            let mut fired = Vec::new();
            self.wheel.advance(self.t0 + clock, &mut fired);
            fired.sort();
            let target = self.ticks_of(clock) as u64;
            let mut expected = Vec::new();
            if target >= self.reference.current {
                let later = self.reference.due.split_off(&(target + 1, 0));
                for ((_, value), id) in std::mem::replace(&mut self.reference.due, later) {
                    expected.push(value);
                    self.stale.push(id);
                }
                self.reference.current = target + 1;
            }
            expected.sort();
            assert_eq!(fired, expected, "seed {} advancing to {clock:?}", self.seed);
            self.clock = self.clock.max(clock);
        }

        fn advance(&mut self) {
            let r = self.rng.next_u64();
            let ticks = match r % 10 {
                // Jumps past all or nearly all deadlines, over many levels.
                0 => 1 << (40 + r % 5),
                1..=4 => self.ticks(),
                _ => r % 3,
            };
            // Sometimes a little backwards: the clock given may be stale.
            let back = r % 2;
            let clock = (self.clock + self.span(ticks)).saturating_sub(self.span(back));
            self.advance_to(clock);
        }

        fn advance_to_next_deadline(&mut self) {
            if let Some(next) = self.wheel.next_deadline() {
                self.advance_to(next.duration_since(self.t0));
            }
        }

        /// `next_deadline` is never after the earliest due timer, never in
        /// the past, and earlier only at a turn of level 0 (a cascade).
        fn check(&self) {
            let seed = self.seed;
            assert_eq!(self.wheel.len(), self.reference.due.len(), "seed {seed}");
            let next = self.wheel.next_deadline();
            let Some((&(due, _), _)) = self.reference.due.first_key_value() else {
                assert_eq!(next, None, "seed {seed}");
                return;
            };
            let since = next.expect("a timer is live").duration_since(self.t0);
            let tick = self.ticks_of(since) as u64;
            assert_eq!(since, Duration::from_millis(tick), "seed {seed}: on a tick");
            assert!(
                tick <= due,
                "seed {seed}: next deadline {tick} after due {due}"
            );
            assert!(tick >= self.reference.current, "seed {seed}: in the past");
            assert!(
                tick == due || tick.is_multiple_of(SIM_SLOTS),
                "seed {seed}: wake-up at {tick}, neither due ({due}) nor a turn"
            );
        }
    }

    #[test]
    fn random_operations_match_a_reference_model() {
        for seed in 0..200 {
            let mut sim = Sim::new(seed);
            for _ in 0..2000 {
                match sim.rng.next_u64() % 100 {
                    0..=39 => sim.insert(),
                    40..=54 => sim.cancel(),
                    55..=59 => sim.cancel_stale(),
                    60..=79 => sim.advance_to_next_deadline(),
                    _ => sim.advance(),
                }
                sim.check();
            }
        }
    }
}
