//! Timing wheel costs with the reactor's geometry (10 ms ticks, 4096
//! level-0 slots) and 10,000 timers whose deadlines lie 30–160 s ahead, like
//! the pings, BOSH waits and inactivity limits of idle sessions; a timer that
//! fires is re-armed at once, as the reactor does.
//!
//! - `insert_cancel`: re-arming one timer (cancel, then insert), the
//!   reactor's `rearm` after activity on a session.
//! - `advance_10ms`: the clock moving one tick at a time, as on a busy
//!   server that polls at least every tick.
//! - `idle_second`: one simulated second of an idle server, the clock
//!   moving only to `next_deadline()`: every wake-up it takes (about 77
//!   timers fire a second) and the work each one does.
//!
//! Baseline: the single-level hashed wheel this crate had before (the
//! numbers are in the commit that made the wheel hierarchical).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use switchboard_core::dns::FastRng;
use switchboard_core::wheel::{TimerId, Wheel};

const TICK: Duration = Duration::from_millis(10);
const SLOTS: usize = 4096;
const TIMERS: usize = 10_000;

struct Idle {
    wheel: Wheel<usize>,
    ids: Vec<TimerId>,
    now: Instant,
    rng: FastRng,
    fired: Vec<usize>,
}

impl Idle {
    fn new() -> Self {
        let now = Instant::now();
        let mut idle = Idle {
            wheel: Wheel::new(now, TICK, SLOTS),
            ids: Vec::with_capacity(TIMERS),
            now,
            rng: FastRng(7),
            fired: Vec::new(),
        };
        for i in 0..TIMERS {
            let at = idle.deadline();
            let id = idle.wheel.insert(at, i);
            idle.ids.push(id);
        }
        idle
    }

    fn deadline(&mut self) -> Instant {
        self.now + Duration::from_millis(30_000 + self.rng.next_u64() % 130_000)
    }

    fn advance(&mut self, now: Instant) -> usize {
        self.now = now;
        self.fired.clear();
        self.wheel.advance(now, &mut self.fired);
        for k in 0..self.fired.len() {
            let i = self.fired[k];
            let at = self.deadline();
            self.ids[i] = self.wheel.insert(at, i);
        }
        self.fired.len()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel");
    group.throughput(Throughput::Elements(1));

    let mut idle = Idle::new();
    let mut next = 0;
    group.bench_function("insert_cancel", |b| {
        b.iter(|| {
            next = (next + 1) % TIMERS;
            idle.wheel.cancel(black_box(idle.ids[next]));
            let at = idle.deadline();
            idle.ids[next] = idle.wheel.insert(black_box(at), next);
        })
    });

    let mut idle = Idle::new();
    group.bench_function("advance_10ms", |b| {
        b.iter(|| {
            let now = idle.now + TICK;
            black_box(idle.advance(now))
        })
    });

    let mut idle = Idle::new();
    group.bench_function("idle_second", |b| {
        b.iter(|| {
            let until = idle.now + Duration::from_secs(1);
            let mut wakes = 0;
            while let Some(now) = idle.wheel.next_deadline().filter(|&n| n <= until) {
                idle.advance(now);
                wakes += 1;
            }
            idle.now = until;
            black_box(wakes)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
