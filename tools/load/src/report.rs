//! The report of a run: summary text, the JSON object of the contract
//! (LOAD_CONTRACT.md), and the numbers the HTML page draws.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::conn::FaultCounts;
use crate::client::driver::{Ends, Outcome};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub transport: String,
    pub target: String,
    pub sessions_requested: usize,
    pub sessions_established: usize,
    /// Sessions closed cleanly by `--logout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_closed: Option<usize>,
    pub setup_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Probes and echoes that arrived a second time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicated: Option<u64>,
    /// Connections the client had to open again during the message phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
    pub errors: BTreeMap<String, u64>,
    /// The errors with the wall-clock time of the first and the last.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ends: BTreeMap<String, Ends>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<Faults>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Tick>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

/// Round-trip latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_histogram(us: &Histogram<u64>) -> Latency {
        let ms = |v: u64| v as f64 / 1000.0;
        Latency {
            p50: ms(us.value_at_quantile(0.50)),
            p90: ms(us.value_at_quantile(0.90)),
            p99: ms(us.value_at_quantile(0.99)),
            p999: ms(us.value_at_quantile(0.999)),
            max: ms(us.max()),
            mean: us.mean() / 1000.0,
        }
    }
}

/// One second of the message phase: round trips echoed in it and the p99
/// of their latency (0 without any).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tick {
    pub t: u64,
    pub round_trips: u64,
    pub p99_ms: f64,
}

/// `--cut-connections`: what was cut, and how the clients recovered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Faults {
    pub cut_share: f64,
    pub seed: u64,
    /// Connections cut, every kind together.
    pub cuts: u64,
    #[serde(flatten)]
    pub counts: FaultCounts,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memory {
    pub pids: Vec<u32>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_session: f64,
}

fn setup_rate(outcome: &Outcome) -> f64 {
    if outcome.setup_secs > 0.0 {
        outcome.sessions_established as f64 / outcome.setup_secs
    } else {
        0.0
    }
}

impl Report {
    /// The report of a `run`.
    pub fn run(transport: &str, target: &str, outcome: &Outcome) -> Report {
        let totals = outcome.totals;
        let throughput = if outcome.message_secs > 0.0 {
            outcome.on_time as f64 / outcome.message_secs
        } else {
            0.0
        };
        Report {
            mode: "run",
            transport: transport.into(),
            target: target.into(),
            sessions_requested: outcome.sessions_requested,
            sessions_established: outcome.sessions_established,
            sessions_closed: outcome.logout.then_some(outcome.sessions_closed),
            setup_per_s: setup_rate(outcome),
            duration_s: Some(outcome.message_secs),
            sent: Some(totals.sent),
            received: Some(totals.echoed),
            lost: Some(totals.lost()),
            duplicated: Some(totals.duplicate),
            reconnects: Some(outcome.reconnects),
            errors: outcome.errors.clone(),
            ends: outcome.ends.clone(),
            faults: outcome.cuts.map(|cuts| Faults {
                cut_share: cuts.share,
                seed: cuts.seed,
                cuts: outcome.faults.cuts(),
                counts: outcome.faults,
            }),
            throughput_per_s: Some(throughput),
            latency_ms: (!outcome.latency_us.is_empty())
                .then(|| Latency::from_histogram(&outcome.latency_us)),
            timeline: Some(
                outcome
                    .timeline
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Tick {
                        t: i as u64 + 1,
                        round_trips: s.round_trips,
                        p99_ms: s.p99_us as f64 / 1000.0,
                    })
                    .collect(),
            ),
            memory: None,
        }
    }

    /// The report of a `memory` run.
    pub fn memory(transport: &str, target: &str, outcome: &Outcome, memory: Memory) -> Report {
        Report {
            mode: "memory",
            transport: transport.into(),
            target: target.into(),
            sessions_requested: outcome.sessions_requested,
            sessions_established: outcome.sessions_established,
            setup_per_s: setup_rate(outcome),
            errors: outcome.errors.clone(),
            memory: Some(memory),
            ..Report::default()
        }
    }

    /// The human summary printed on stdout.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} over {} to {}",
            self.mode, self.transport, self.target
        );
        let _ = writeln!(
            s,
            "sessions   {}/{} established, setup {:.0}/s",
            self.sessions_established, self.sessions_requested, self.setup_per_s
        );
        if let Some(closed) = self.sessions_closed {
            let _ = writeln!(s, "logout     {closed} sessions closed cleanly");
        }
        if let (Some(sent), Some(received), Some(lost)) = (self.sent, self.received, self.lost) {
            let duplicated = self.duplicated.unwrap_or(0);
            let _ = writeln!(
                s,
                "messages   sent {sent}, echoed {received}, lost {lost}, duplicated {duplicated}"
            );
        }
        if let Some(faults) = &self.faults {
            let f = &faults.counts;
            let _ = writeln!(
                s,
                "faults     {} connections cut ({:.0}% of requests, seed {}): {} before the \
                 request, {} mid-request, {} held, {} mid-response; {} requests sent again, \
                 {} connections closed by the server, {} reports",
                faults.cuts,
                faults.cut_share * 100.0,
                faults.seed,
                f.cut_before_request,
                f.cut_mid_request,
                f.cut_held,
                f.cut_mid_response,
                f.resent,
                f.server_closed,
                f.reports
            );
        }
        if let Some(n) = self.reconnects.filter(|&n| n > 0) {
            let _ = writeln!(
                s,
                "reconnects {n} connections opened again during the message phase \
                 (their round trips include a TCP connect)"
            );
        }
        if let Some(t) = self.throughput_per_s {
            let _ = writeln!(
                s,
                "throughput {t:.0} round trips/s over {:.1} s",
                self.duration_s.unwrap_or(0.0)
            );
        }
        if let Some(l) = self.latency_ms {
            let _ = writeln!(
                s,
                "latency ms p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                s,
                "memory     VmRSS {} KiB before, {} KiB after: {:.1} KiB per session (pids {:?})",
                m.rss_before_kib, m.rss_after_kib, m.kib_per_session, m.pids
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(s, "errors     none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "errors     {}", list.join(", "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_uniform_distribution() {
        // 1..=1000 ms, once each.
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for ms in 1..=1000u64 {
            h.record(ms * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(near(l.p50, 500.0), "p50 {}", l.p50);
        assert!(near(l.p90, 900.0), "p90 {}", l.p90);
        assert!(near(l.p99, 990.0), "p99 {}", l.p99);
        assert!(near(l.p999, 999.0), "p999 {}", l.p999);
        assert!(near(l.max, 1000.0), "max {}", l.max);
        assert!(near(l.mean, 500.5), "mean {}", l.mean);
    }

    #[test]
    fn a_tail_shows_only_in_the_high_percentiles() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        h.record_n(2_000, 9_980).unwrap(); // 2 ms
        h.record_n(250_000, 20).unwrap(); // 250 ms: the slowest 0.2%
        let l = Latency::from_histogram(&h);
        assert_eq!(l.p50, 2.0);
        assert_eq!(l.p99, 2.0);
        assert!((l.p999 - 250.0).abs() < 0.25, "p999 {}", l.p999);
        assert!((l.max - 250.0).abs() < 0.25);
    }

    #[test]
    fn json_has_the_contract_fields_and_omits_what_does_not_apply() {
        let report = Report {
            mode: "memory",
            transport: "ws".into(),
            target: "ws://127.0.0.1:17280/xmpp-websocket".into(),
            sessions_requested: 10,
            sessions_established: 9,
            setup_per_s: 100.0,
            errors: BTreeMap::from([("connect_refused".to_string(), 1)]),
            memory: Some(Memory {
                pids: vec![42],
                rss_before_kib: 1000,
                rss_after_kib: 1090,
                kib_per_session: 10.0,
            }),
            ..Report::default()
        };
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "memory");
        assert_eq!(json["sessions_established"], 9);
        assert_eq!(json["errors"]["connect_refused"], 1);
        assert_eq!(json["memory"]["kib_per_session"], 10.0);
        assert!(json.get("latency_ms").is_none());
        assert!(json.get("sent").is_none());
    }
}
