//! WARN lines that a flood cannot turn into a flood of lines: each cause
//! is logged at most once a minute, with the count of the times it was
//! not.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often one cause is logged at most.
const EVERY: Duration = Duration::from_secs(60);
/// Causes remembered at once; beyond it the table starts afresh (at worst
/// a cause is logged once more than it should).
const MAX_CAUSES: usize = 1024;

#[derive(Default)]
pub(super) struct LogGate {
    /// When each cause was last logged, and how often it came since.
    causes: HashMap<String, (Instant, u64)>,
}

impl LogGate {
    /// Log `line` at WARN unless the same cause was logged within the
    /// minute.
    pub fn warn(&mut self, now: Instant, cause: &str, line: std::fmt::Arguments) {
        if let Some((at, unlogged)) = self.causes.get_mut(cause) {
            if now.saturating_duration_since(*at) < EVERY {
                *unlogged += 1;
                return;
            }
            let unlogged = std::mem::take(unlogged);
            *at = now;
            if unlogged > 0 {
                log::warn!("{line} ({unlogged} more times since the last report)");
            } else {
                log::warn!("{line}");
            }
            return;
        }
        if self.causes.len() >= MAX_CAUSES {
            self.causes = HashMap::new();
        }
        self.causes.insert(cause.to_string(), (now, 0));
        log::warn!("{line}");
    }

    #[cfg(test)]
    fn unlogged(&self, cause: &str) -> Option<u64> {
        self.causes.get(cause).map(|c| c.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_logged_once_a_minute_and_counted_between() {
        let t0 = Instant::now();
        let mut gate = LogGate::default();
        for i in 0..100 {
            gate.warn(t0 + Duration::from_millis(i), "refused", format_args!("x"));
        }
        assert_eq!(gate.unlogged("refused"), Some(99));
        gate.warn(t0 + EVERY, "refused", format_args!("x"));
        assert_eq!(
            gate.unlogged("refused"),
            Some(0),
            "logged again, count reset"
        );
        gate.warn(t0 + EVERY, "other", format_args!("y"));
        assert_eq!(
            gate.unlogged("other"),
            Some(0),
            "another cause has its own minute"
        );
    }

    #[test]
    fn the_table_of_causes_is_bounded() {
        let t0 = Instant::now();
        let mut gate = LogGate::default();
        for i in 0..(MAX_CAUSES * 3) {
            gate.warn(t0, &format!("cause {i}"), format_args!("z"));
        }
        assert!(gate.causes.len() <= MAX_CAUSES);
    }
}
