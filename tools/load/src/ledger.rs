//! Echo accounting: what each pair sent, what came back, and what did not.
//! Pure bookkeeping, no clock and no I/O; the driver reports to it.

/// One pair's counts. Sequence numbers are 0, 1, 2... in send order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pair {
    sent: u64,
    echoed: u64,
}

/// How an echo was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// An echo of a message sent, during the message phase.
    OnTime,
    /// An echo that came during the drain after the message phase.
    Late,
    /// More echoes than messages sent on this pair: counted nowhere else.
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
    pub duplicate: u64,
    pub unknown: u64,
}

impl Totals {
    /// Sent and never echoed.
    pub fn lost(&self) -> u64 {
        self.sent - self.echoed
    }
}

/// Sent/echoed/late/lost accounting for every pair.
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

    /// Count the echo of message `seq` on `pair`; `late` when the message
    /// phase is over.
    pub fn echoed(&mut self, pair: usize, seq: u64, late: bool) -> Echo {
        let Some(p) = self.pairs.get_mut(pair) else {
            self.totals.unknown += 1;
            return Echo::Unknown;
        };
        if seq >= p.sent {
            self.totals.unknown += 1;
            return Echo::Unknown;
        }
        if p.echoed >= p.sent {
            self.totals.duplicate += 1;
            return Echo::Duplicate;
        }
        p.echoed += 1;
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
        self.pairs.get(pair).map_or(0, |p| p.sent - p.echoed)
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
}
