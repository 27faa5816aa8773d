//! Latency over time: the message phase second by second (round trips and
//! p99 of each second, for the report), and a window the progress line
//! empties each second. The whole-run histogram hides a stall of one
//! second among twenty; these show when it happened.

use hdrhistogram::Histogram;

/// One second of the message phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Second {
    pub round_trips: u64,
    /// 99th percentile of that second's round trips, in microseconds (0
    /// for a second without any).
    pub p99_us: u64,
}

#[derive(Clone, Debug)]
pub struct Timeline {
    seconds: Vec<Second>,
    /// Round trips of the latest second, not yet folded into its p99.
    current: Histogram<u64>,
    /// Round trips since the progress line last asked.
    window: Histogram<u64>,
}

impl Timeline {
    pub fn new(max_us: u64) -> Result<Timeline, String> {
        // Two significant digits: a second's p99 needs no more, and a long
        // run keeps two small histograms, not one per second.
        let histogram = || Histogram::new_with_bounds(1, max_us, 2).map_err(|e| e.to_string());
        Ok(Timeline {
            seconds: Vec::new(),
            current: histogram()?,
            window: histogram()?,
        })
    }

    /// A round trip of `us` that ended in `second` of the message phase.
    /// Seconds come in order (they are read off a monotonic clock).
    pub fn record(&mut self, second: usize, us: u64) {
        if second >= self.seconds.len() {
            self.close_current();
            self.seconds.resize(second + 1, Second::default());
        }
        if let Some(s) = self.seconds.get_mut(second) {
            s.round_trips += 1;
        }
        let _ = self.current.record(us);
        let _ = self.window.record(us);
    }

    /// A round trip outside the per-second series (the drain): the
    /// progress line still counts it.
    pub fn record_window(&mut self, us: u64) {
        let _ = self.window.record(us);
    }

    /// p99 in microseconds of the round trips since the last call (0 if
    /// none), for the progress line.
    pub fn take_window_p99(&mut self) -> u64 {
        let p99 = self.window.value_at_quantile(0.99);
        self.window.reset();
        p99
    }

    /// Every second so far, the latest one included.
    pub fn seconds(&self) -> Vec<Second> {
        let mut seconds = self.seconds.clone();
        if let Some(last) = seconds.last_mut() {
            last.p99_us = self.current.value_at_quantile(0.99);
        }
        seconds
    }

    fn close_current(&mut self) {
        if let Some(last) = self.seconds.last_mut() {
            last.p99_us = self.current.value_at_quantile(0.99);
        }
        self.current.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_second_has_its_own_p99_and_a_stall_shows_in_its_second_only() {
        let mut t = Timeline::new(3_600_000_000).unwrap();
        for _ in 0..1000 {
            t.record(0, 300);
        }
        for i in 0..1000 {
            // One second with a 40 ms stall for 2% of its round trips.
            t.record(1, if i % 50 == 0 { 40_000 } else { 300 });
        }
        for _ in 0..10 {
            t.record(3, 500);
        }
        let s = t.seconds();
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.iter().map(|s| s.round_trips).collect::<Vec<_>>(),
            [1000, 1000, 0, 10]
        );
        let near = |v: u64, want: u64| v.abs_diff(want) * 100 <= want;
        assert!(near(s[0].p99_us, 300), "{s:?}");
        assert!(near(s[1].p99_us, 40_000), "{s:?}");
        assert_eq!(s[2].p99_us, 0);
        assert!(near(s[3].p99_us, 500), "{s:?}");
    }

    #[test]
    fn the_progress_window_forgets_what_it_reported() {
        let mut t = Timeline::new(3_600_000_000).unwrap();
        t.record(0, 50_000);
        assert!(t.take_window_p99().abs_diff(50_000) <= 500);
        t.record_window(200);
        assert_eq!(t.take_window_p99(), 200);
        assert_eq!(t.take_window_p99(), 0);
    }
}
