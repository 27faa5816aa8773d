//! The responses a session keeps for repeated requests (XEP-0124 §14.3)
//! and, when the client acknowledges responses (§9.2), until it has them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// With acks, the most unacknowledged responses kept: a client that never
/// acknowledges cannot make the session grow without bound.
const MAX_UNACKED: usize = 16;

/// How long a response may stay unacknowledged before the client is told
/// with `report` (§9.2): shorter and every response still in flight to a
/// client that just sent its next request would be reported.
pub const REPORT_AFTER: Duration = Duration::from_secs(2);

struct Reply {
    rid: u64,
    body: Vec<u8>,
    sent: Instant,
}

pub(super) struct Replies {
    kept: VecDeque<Reply>,
    /// Without acks: the last this many; with acks: until acknowledged.
    keep: usize,
    acks: bool,
    /// The highest rid answered so far.
    last_answered: Option<u64>,
}

impl Replies {
    pub fn new(requests: usize, acks: bool) -> Self {
        Replies {
            kept: VecDeque::new(),
            keep: if acks { MAX_UNACKED } else { requests },
            acks,
            last_answered: None,
        }
    }

    pub fn record(&mut self, rid: u64, body: &[u8], now: Instant) {
        self.last_answered = Some(self.last_answered.map_or(rid, |r| r.max(rid)));
        self.kept.push_back(Reply {
            rid,
            body: body.to_vec(),
            sent: now,
        });
        while self.kept.len() > self.keep {
            self.kept.pop_front();
        }
    }

    /// The highest rid answered so far.
    pub fn last_answered(&self) -> Option<u64> {
        self.last_answered
    }

    /// Bytes of the responses kept.
    pub fn bytes(&self) -> usize {
        self.kept.iter().map(|r| r.body.len()).sum()
    }

    /// Each response kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.kept.iter().map(|r| (r.rid, r.body.as_slice()))
    }

    pub fn find(&self, rid: u64) -> Option<&[u8]> {
        self.kept
            .iter()
            .find(|r| r.rid == rid)
            .map(|r| r.body.as_slice())
    }

    /// The client has every response up to `ack` (§9.2): drop them. When
    /// it lacks one sent a while ago, the `report` and `time` to send it.
    pub fn acknowledge(&mut self, ack: u64, now: Instant) -> Option<(u64, u64)> {
        if !self.acks {
            return None;
        }
        self.kept.retain(|r| r.rid > ack);
        if self.last_answered.is_none_or(|last| ack >= last) {
            return None;
        }
        let missing = self.kept.iter().find(|r| r.rid == ack + 1)?;
        let age = now.saturating_duration_since(missing.sent);
        (age >= REPORT_AFTER).then_some((missing.rid, age.as_millis() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_acks_the_last_requests_responses_are_kept() {
        let now = Instant::now();
        let mut replies = Replies::new(2, false);
        for rid in 1..=3 {
            replies.record(rid, format!("r{rid}").as_bytes(), now);
        }
        assert_eq!(replies.find(1), None);
        assert_eq!(replies.find(2), Some(&b"r2"[..]));
        assert_eq!(replies.find(3), Some(&b"r3"[..]));
        assert_eq!(replies.acknowledge(1, now), None, "acks are off");
        assert_eq!(replies.find(2), Some(&b"r2"[..]));
    }

    #[test]
    fn acknowledged_responses_are_released_and_missing_ones_reported() {
        let now = Instant::now();
        let mut replies = Replies::new(2, true);
        for rid in 1..=5 {
            replies.record(rid, b"x", now);
        }
        assert!(replies.find(1).is_some(), "kept until acknowledged");
        assert_eq!(replies.acknowledge(3, now), None, "4 is too recent");
        assert_eq!((replies.find(3), replies.find(4).is_some()), (None, true));
        let later = now + Duration::from_millis(2500);
        assert_eq!(replies.acknowledge(3, later), Some((4, 2500)));
        assert_eq!(replies.acknowledge(5, later), None, "all received");
        assert_eq!(replies.find(5), None);
    }

    #[test]
    fn unacknowledged_responses_are_bounded() {
        let now = Instant::now();
        let mut replies = Replies::new(2, true);
        for rid in 0..100 {
            replies.record(rid, b"x", now);
        }
        assert_eq!(replies.kept.len(), MAX_UNACKED);
    }
}
