//! Echo accounting: what each pair sent, what came back, what came twice
//! and what did not come at all. Pure bookkeeping, no clock and no I/O;
//! the driver reports to it.
//!
//! Every message is known by its sequence number on its pair, so a loss
//! or a duplicate is found per stanza, on either hop: the probe from the
//! sender to the echoing side, and the echo back.

use std::collections::BTreeSet;

/// The sequence numbers seen on one hop of one pair: every number below
/// `below`, and the ones in `above`. Messages mostly come in order, so
/// `above` stays small (it is empty, and allocates nothing, while they do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Seen {
    below: u64,
    above: BTreeSet<u64>,
}

impl Seen {
    /// Note `seq`; false when it was seen before.
    fn insert(&mut self, seq: u64) -> bool {
        if seq < self.below || !self.above.insert(seq) {
            return false;
        }
        while self.above.first() == Some(&self.below) {
            self.above.pop_first();
            self.below += 1;
        }
        true
    }

    fn count(&self) -> u64 {
        self.below + self.above.len() as u64
    }
}

/// One pair's counts. Sequence numbers are 0, 1, 2... in send order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pair {
    sent: u64,
    /// Probes that reached the echoing side.
    probes: Seen,
    /// Echoes that reached the sender.
    echoes: Seen,
}

/// How an echo, or a probe, was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// An echo of a message sent, during the message phase (for a probe:
    /// its first arrival, at any time).
    OnTime,
    /// An echo that came during the drain after the message phase.
    Late,
    /// A sequence number that came before: counted nowhere else.
    Duplicate,
    /// A sequence number never sent on this pair.
    Unknown,
}

/// Totals over all pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    /// On time and late echoes.
    pub echoed: u64,
    pub late: u64,
    /// Probes and echoes that arrived a second time.
    pub duplicate: u64,
    pub unknown: u64,
}

impl Totals {
    /// Sent and never echoed.
    pub fn lost(&self) -> u64 {
        self.sent - self.echoed
    }
}

/// Sent/echoed/late/duplicate/lost accounting for every pair.
#[derive(Clone, Debug)]
pub struct Ledger {
    pairs: Vec<Pair>,
    totals: Totals,
}

impl Ledger {
    pub fn new(pairs: usize) -> Self {
        Ledger {
            pairs: vec![Pair::default(); pairs],
            totals: Totals::default(),
        }
    }

    /// Count a message sent on `pair`; returns its sequence number.
    pub fn sent(&mut self, pair: usize) -> u64 {
        let Some(p) = self.pairs.get_mut(pair) else {
            return u64::MAX;
        };
        let seq = p.sent;
        p.sent += 1;
        self.totals.sent += 1;
        seq
    }

    /// Count probe `seq` of `pair` reaching the echoing side: `OnTime`
    /// the first time, when it is to be echoed.
    pub fn probed(&mut self, pair: usize, seq: u64) -> Echo {
        let Some(p) = self.pairs.get_mut(pair).filter(|p| seq < p.sent) else {
            self.totals.unknown += 1;
            return Echo::Unknown;
        };
        if p.probes.insert(seq) {
            Echo::OnTime
        } else {
            self.totals.duplicate += 1;
            Echo::Duplicate
        }
    }

    /// Count the echo of message `seq` on `pair`; `late` when the message
    /// phase is over.
    pub fn echoed(&mut self, pair: usize, seq: u64, late: bool) -> Echo {
        let Some(p) = self.pairs.get_mut(pair).filter(|p| seq < p.sent) else {
            self.totals.unknown += 1;
            return Echo::Unknown;
        };
        if !p.echoes.insert(seq) {
            self.totals.duplicate += 1;
            return Echo::Duplicate;
        }
        self.totals.echoed += 1;
        if late {
            self.totals.late += 1;
            Echo::Late
        } else {
            Echo::OnTime
        }
    }

    /// Messages of `pair` sent and not echoed yet.
    pub fn in_flight(&self, pair: usize) -> u64 {
        self.pairs
            .get(pair)
            .map_or(0, |p| p.sent - p.echoes.count())
    }

    /// Messages of all pairs sent and not echoed yet.
    pub fn total_in_flight(&self) -> u64 {
        self.totals.lost()
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_balance_sends_and_the_rest_is_lost() {
        let mut ledger = Ledger::new(2);
        let a0 = ledger.sent(0);
        let a1 = ledger.sent(0);
        let b0 = ledger.sent(1);
        assert_eq!((a0, a1, b0), (0, 1, 0));
        assert_eq!(ledger.in_flight(0), 2);
        assert_eq!(ledger.echoed(0, a0, false), Echo::OnTime);
        assert_eq!(ledger.echoed(1, b0, true), Echo::Late);
        assert_eq!(ledger.in_flight(0), 1);
        assert_eq!(ledger.in_flight(1), 0);
        let t = ledger.totals();
        assert_eq!((t.sent, t.echoed, t.late, t.lost()), (3, 2, 1, 1));
        assert_eq!(ledger.total_in_flight(), 1);
    }

    #[test]
    fn unknown_and_duplicate_echoes_are_not_counted_as_received() {
        let mut ledger = Ledger::new(1);
        let seq = ledger.sent(0);
        assert_eq!(ledger.echoed(0, 7, false), Echo::Unknown);
        assert_eq!(ledger.echoed(3, 0, false), Echo::Unknown, "no such pair");
        assert_eq!(ledger.echoed(0, seq, false), Echo::OnTime);
        assert_eq!(ledger.echoed(0, seq, false), Echo::Duplicate);
        let t = ledger.totals();
        assert_eq!(
            (t.sent, t.echoed, t.duplicate, t.unknown, t.lost()),
            (1, 1, 1, 2, 0)
        );
    }

    #[test]
    fn a_duplicate_is_found_by_its_number_while_later_messages_are_in_flight() {
        // Counting alone cannot see this one: 0 twice and 1 missing make as
        // many echoes as 0 and 1.
        let mut ledger = Ledger::new(1);
        for _ in 0..4 {
            ledger.sent(0);
        }
        assert_eq!(ledger.echoed(0, 2, false), Echo::OnTime, "out of order");
        assert_eq!(ledger.echoed(0, 0, false), Echo::OnTime);
        assert_eq!(ledger.echoed(0, 0, false), Echo::Duplicate);
        assert_eq!(ledger.echoed(0, 2, false), Echo::Duplicate);
        assert_eq!(ledger.echoed(0, 1, false), Echo::OnTime);
        let t = ledger.totals();
        assert_eq!((t.echoed, t.duplicate, t.lost()), (3, 2, 1));
        assert_eq!(ledger.in_flight(0), 1, "3 is still out");
    }

    #[test]
    fn probes_are_counted_once_and_their_duplicates_apart() {
        let mut ledger = Ledger::new(1);
        let seq = ledger.sent(0);
        assert_eq!(ledger.probed(0, seq), Echo::OnTime);
        assert_eq!(ledger.probed(0, seq), Echo::Duplicate);
        assert_eq!(ledger.probed(0, seq + 1), Echo::Unknown, "never sent");
        let t = ledger.totals();
        assert_eq!((t.duplicate, t.unknown, t.echoed), (1, 1, 0));
    }
}
