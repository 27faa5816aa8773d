//! The client loop: starts sessions at the ramp rate, logs them in, pairs
//! them, runs the echo traffic, counts everything, and stops by itself.
//!
//! Phases: setup (every session logged in, failed or timed out) → warm-up
//! (one round trip per pair) → messages (`duration`) → drain (until every
//! echo is back or the grace ends) → logout, if asked (until every session
//! is closed, or `LOGOUT_TIMEOUT`) → done; or, without traffic (memory
//! mode), setup → settle → done. Session `2p` sends to session `2p+1`,
//! which echoes; only the sender records latency, and only for messages
//! sent in the message phase.
//!
//! The warm-up is there because the ramp leaves early sessions idle for as
//! long as it lasts: a server closes their idle keep-alive connections
//! (switchboard after its HTTP read timeout, 10 s by default), and without
//! it the first messages of those pairs, a share that grows with the
//! session count, would pay a TCP connect inside the measurement.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use mio::{Events, Poll};
use switchboard_core::xml::ElementInfo;

use super::bosh::{Bosh, Cutter};
use super::conn::{FaultCounts, Net};
use super::tcp::Tcp;
use super::timeline::{Second, Timeline};
use super::ws::Ws;
use super::{slot_of, Flow, Outbox, Transport};
use crate::ledger::{Echo, Ledger, Totals};
use crate::net::Endpoint;
use crate::xmpp::{
    attr, child_text, is_stream_error, stream_error_condition, Auth, ErrorKind, Login, Step,
};

/// Highest latency the histogram holds, in microseconds (one hour).
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Sessions started in one wake-up at most, so a late ramp catches up in
/// bounded steps.
const MAX_STARTS_PER_WAKE: usize = 2_000;
/// Warm-up messages go out spread over this long: all at once, the pairs
/// whose idle connection the server is closing just then would race it.
const WARMUP_SPREAD: Duration = Duration::from_secs(1);
/// The message phase starts when every warm-up echo is back, or this long
/// after the warm-up started (a missing echo then shows as lost).
const WARMUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A session not closed this long after its logout began counts as a
/// `logout_timeout` error.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// What a session ends with when the server answers its logout: the
/// server's `<close/>` (then its close frame) or `</stream:stream>`, or a
/// BOSH terminate without a condition.
const CLEAN_ENDS: [&str; 2] = ["stream_closed", "bosh_terminate:none"];

/// Which transport each session uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Ws,
    Bosh,
    Tcp,
    /// Even sessions BOSH, odd WebSocket.
    Mix,
}

/// The echo traffic of `run`.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    pub duration: Duration,
    /// Messages per second per pair; 0 for closed loop.
    pub rate: f64,
    /// Messages in flight per pair in closed loop.
    pub window: u32,
    pub drain: Duration,
    /// After the drain, close every session cleanly.
    pub logout: bool,
}

/// Everything a run needs, checked.
#[derive(Clone, Debug)]
pub struct Plan {
    pub layout: Layout,
    pub ws: Option<Rc<Endpoint>>,
    pub bosh: Option<Rc<Endpoint>>,
    pub tcp: Option<Rc<Endpoint>>,
    pub domains: Vec<Rc<str>>,
    /// `None`: bind without SASL. Otherwise user prefix, first number,
    /// password.
    pub plain: Option<(String, u64, String)>,
    pub sources: Vec<IpAddr>,
    pub sessions: usize,
    pub ramp: f64,
    pub login_timeout: Duration,
    pub bosh_wait: u32,
    /// BOSH clients acknowledge responses (XEP-0124 §9).
    pub bosh_acks: bool,
    /// Cut this share of BOSH requests' connections, seeded.
    pub cuts: Option<Cuts>,
    /// `Some` for `run`, `None` for `memory`.
    pub traffic: Option<Traffic>,
    /// How long idle sessions stay open after setup (memory).
    pub settle: Duration,
    /// Print a progress line on stderr each second.
    pub progress: bool,
}

/// `--cut-connections`: the share of BOSH requests whose connection is
/// cut, and the seed that picks them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cuts {
    pub share: f64,
    pub seed: u64,
}

/// When sessions ended, by what ended them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Ends {
    pub count: u64,
    /// Wall-clock milliseconds since the Unix epoch of the first and the
    /// last, so that a script can set them against the moment it made a
    /// fault.
    pub first_unix_ms: u64,
    pub last_unix_ms: u64,
}

/// What a finished run counted.
#[derive(Debug)]
pub struct Outcome {
    pub sessions_requested: usize,
    pub sessions_established: usize,
    /// Sessions closed cleanly by the logout, if there was one.
    pub sessions_closed: usize,
    pub logout: bool,
    /// From the first start to the last session logged in.
    pub setup_secs: f64,
    pub message_secs: f64,
    /// Connections the client had to open during the message phase (a
    /// server closed an idle keep-alive one): each put a TCP connect into
    /// a measured round trip.
    pub reconnects: u64,
    pub totals: Totals,
    /// Echoes received during the message phase.
    pub on_time: u64,
    pub errors: BTreeMap<String, u64>,
    /// The errors again, with when they happened.
    pub ends: BTreeMap<String, Ends>,
    /// Connection cuts and how the BOSH clients recovered.
    pub faults: FaultCounts,
    pub cuts: Option<Cuts>,
    /// Round-trip latency in microseconds.
    pub latency_us: Histogram<u64>,
    /// Echoes and p99 per second of the message phase.
    pub timeline: Vec<Second>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    LoggingIn,
    Ready,
    /// Logged out cleanly.
    Closed,
    Failed,
}

struct Session {
    transport: Transport,
    login: Login,
    state: State,
    dirty: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Setup,
    Warmup { until: u64 },
    Messages { start: u64, until: u64 },
    Drain { start: u64, until: u64 },
    Logout { start: u64, until: u64 },
    Settle { until: u64 },
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    LoginDeadline,
    Warmup,
    PairSend,
    /// A wake-up a session's transport asked for.
    Wake,
}

/// Counters the handlers update, kept apart from the sessions so that a
/// handler can borrow them while its session's transport is borrowed.
struct Tally {
    ledger: Ledger,
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    ends: BTreeMap<String, Ends>,
    timeline: Timeline,
    on_time: u64,
    echoes: u64,
    established: usize,
    closed: usize,
    resolved: usize,
    up: usize,
    last_ready_ns: u64,
    /// `net.opened` when the message phase started, and how many more had
    /// been opened when it ended.
    opened_before_messages: u64,
    reconnects: u64,
}

pub struct Driver {
    plan: Plan,
    poll: Poll,
    net: Net,
    sessions: Vec<Session>,
    /// Full JIDs of logged-in sessions.
    jids: Vec<Option<Box<[u8]>>>,
    tally: Tally,
    outbox: Outbox,
    dirty: Vec<usize>,
    timers: BinaryHeap<Reverse<(u64, Timer, usize)>>,
    phase: Phase,
    started: usize,
    /// Pairs whose warm-up message is not sent yet.
    warmup_unsent: usize,
    epoch: Instant,
    next_progress_ns: u64,
    last_progress_echoes: u64,
}

impl Driver {
    pub fn new(plan: Plan) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let net = Net::new(poll.registry().try_clone()?, plan.sources.clone());
        let sessions = (0..plan.sessions)
            .map(|i| new_session(&plan, i))
            .collect::<Result<Vec<_>, _>>()?;
        let latency_us = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let timeline = Timeline::new(MAX_LATENCY_US).map_err(io::Error::other)?;
        Ok(Driver {
            jids: vec![None; plan.sessions],
            tally: Tally {
                ledger: Ledger::new(plan.sessions / 2),
                latency_us,
                errors: BTreeMap::new(),
                ends: BTreeMap::new(),
                timeline,
                on_time: 0,
                echoes: 0,
                established: 0,
                closed: 0,
                resolved: 0,
                up: 0,
                last_ready_ns: 0,
                opened_before_messages: 0,
                reconnects: 0,
            },
            plan,
            poll,
            net,
            sessions,
            outbox: Outbox::default(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            phase: Phase::Setup,
            started: 0,
            warmup_unsent: 0,
            epoch: Instant::now(),
            next_progress_ns: 1_000_000_000,
            last_progress_echoes: 0,
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Run every phase to the end. Sessions stay open until the driver is
    /// dropped (memory mode reads RSS in between).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(4096);
        loop {
            let now = self.now();
            self.ramp(now);
            self.fire_timers(now);
            self.advance(now);
            self.flush_dirty();
            self.schedule_wakes(now);
            if self.phase == Phase::Done {
                return Ok(());
            }
            if self.plan.progress && now >= self.next_progress_ns {
                self.progress(now);
            }
            let timeout = self.next_wake(self.now());
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let (session, slot) = slot_of(event.token());
                self.net.hangup = event.is_read_closed() || event.is_error();
                self.on_ready(session, slot);
            }
        }
    }

    /// The counts, once `run` returned.
    pub fn outcome(&self) -> Outcome {
        let message_secs = self.plan.traffic.map_or(0.0, |t| t.duration.as_secs_f64());
        let setup_start = 0;
        Outcome {
            sessions_requested: self.plan.sessions,
            sessions_established: self.tally.established,
            sessions_closed: self.tally.closed,
            logout: self.plan.traffic.is_some_and(|t| t.logout),
            setup_secs: (self.tally.last_ready_ns - setup_start) as f64 / 1e9,
            message_secs,
            reconnects: self.tally.reconnects,
            totals: self.tally.ledger.totals(),
            on_time: self.tally.on_time,
            errors: self.tally.errors.clone(),
            ends: self.tally.ends.clone(),
            faults: self.net.faults,
            cuts: self.plan.cuts,
            latency_us: self.tally.latency_us.clone(),
            timeline: self.tally.timeline.seconds(),
        }
    }

    fn ramp(&mut self, now: u64) {
        if self.started >= self.plan.sessions {
            return;
        }
        let due = ((now as f64 / 1e9) * self.plan.ramp) as usize + 1;
        let due = due
            .min(self.plan.sessions)
            .min(self.started + MAX_STARTS_PER_WAKE);
        while self.started < due {
            let s = self.started;
            self.started += 1;
            let session = &mut self.sessions[s];
            session.state = State::LoggingIn;
            match session.transport.start(&mut self.net, s) {
                Ok(()) => {
                    let deadline = now + self.plan.login_timeout.as_nanos() as u64;
                    self.timers
                        .push(Reverse((deadline, Timer::LoginDeadline, s)));
                    self.mark_dirty(s);
                }
                Err(kind) => self.fail(s, kind),
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
        while let Some(&Reverse((at, timer, index))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            match timer {
                Timer::LoginDeadline => {
                    if self.sessions[index].state == State::LoggingIn {
                        self.fail(index, "login_timeout".into());
                    }
                }
                Timer::Warmup => {
                    self.warmup_unsent -= 1;
                    if let Phase::Warmup { .. } = self.phase {
                        self.send_from(index, now);
                    }
                }
                Timer::Wake => {
                    let session = &mut self.sessions[index];
                    if matches!(session.state, State::LoggingIn | State::Ready) {
                        if let Err(kind) = session.transport.on_wake(&mut self.net, index) {
                            self.fail(index, kind);
                        }
                    }
                }
                Timer::PairSend => {
                    if let (Phase::Messages { .. }, Some(t)) = (self.phase, self.plan.traffic) {
                        if self.send_from(index, now) {
                            let interval = (1e9 / t.rate) as u64;
                            self.timers.push(Reverse((
                                at + interval.max(1),
                                Timer::PairSend,
                                index,
                            )));
                        }
                    }
                }
            }
        }
    }

    fn advance(&mut self, now: u64) {
        match self.phase {
            Phase::Setup => {
                if self.tally.resolved < self.plan.sessions {
                    return;
                }
                if self.tally.established == 0 {
                    self.phase = Phase::Done;
                    return;
                }
                match self.plan.traffic {
                    Some(_) => {
                        let until = now + WARMUP_TIMEOUT.as_nanos() as u64;
                        self.phase = Phase::Warmup { until };
                        let pairs = self.plan.sessions / 2;
                        let spread = WARMUP_SPREAD.as_nanos() as u64;
                        for pair in 0..pairs {
                            let at = now + spread * pair as u64 / pairs as u64;
                            self.timers.push(Reverse((at, Timer::Warmup, pair)));
                        }
                        self.warmup_unsent = pairs;
                    }
                    None => {
                        let until = now + self.plan.settle.as_nanos() as u64;
                        self.phase = Phase::Settle { until };
                    }
                }
            }
            Phase::Warmup { until }
                if now >= until
                    || (self.warmup_unsent == 0 && self.tally.ledger.total_in_flight() == 0) =>
            {
                let Some(t) = self.plan.traffic else {
                    return;
                };
                let until = now + t.duration.as_nanos() as u64;
                self.phase = Phase::Messages { start: now, until };
                self.tally.opened_before_messages = self.net.opened;
                self.start_traffic(t, now);
            }
            Phase::Messages { start, until } if now >= until => {
                self.tally.reconnects = self.net.opened - self.tally.opened_before_messages;
                let drain = self.plan.traffic.map_or(0, |t| t.drain.as_nanos() as u64);
                self.phase = Phase::Drain {
                    start,
                    until: now + drain,
                };
            }
            Phase::Drain { start, until }
                if now >= until || self.tally.ledger.total_in_flight() == 0 =>
            {
                if self.plan.traffic.is_some_and(|t| t.logout) {
                    self.phase = Phase::Logout {
                        start,
                        until: now + LOGOUT_TIMEOUT.as_nanos() as u64,
                    };
                    for s in 0..self.sessions.len() {
                        if self.sessions[s].state == State::Ready {
                            self.sessions[s].transport.logout();
                            self.mark_dirty(s);
                        }
                    }
                } else {
                    self.phase = Phase::Done;
                }
            }
            Phase::Logout { until, .. } if self.tally.up == 0 || now >= until => {
                for s in 0..self.sessions.len() {
                    if self.sessions[s].state == State::Ready {
                        self.fail(s, "logout_timeout".into());
                    }
                }
                self.phase = Phase::Done;
            }
            Phase::Settle { until } if now >= until => self.phase = Phase::Done,
            _ => {}
        }
    }

    fn start_traffic(&mut self, traffic: Traffic, now: u64) {
        let pairs = self.plan.sessions / 2;
        for pair in 0..pairs {
            if traffic.rate > 0.0 {
                let interval = 1e9 / traffic.rate;
                let offset = (interval * pair as f64 / pairs as f64) as u64;
                self.timers
                    .push(Reverse((now + offset, Timer::PairSend, pair)));
            } else {
                for _ in 0..traffic.window {
                    if !self.send_from(pair, now) {
                        break;
                    }
                }
            }
        }
    }

    /// Send one message on `pair`; false when the pair is not up.
    fn send_from(&mut self, pair: usize, now: u64) -> bool {
        let (a, b) = (2 * pair, 2 * pair + 1);
        if self.sessions[a].state != State::Ready || self.sessions[b].state != State::Ready {
            return false;
        }
        let Some(to) = self.jids[b].as_deref() else {
            return false;
        };
        let seq = self.tally.ledger.sent(pair);
        self.net.scratch.clear();
        write_message(&mut self.net.scratch, to, b'p', now, seq);
        self.sessions[a].transport.send(&self.net.scratch);
        self.mark_dirty(a);
        true
    }

    fn on_ready(&mut self, s: usize, slot: usize) {
        let Some(session) = self.sessions.get_mut(s) else {
            return;
        };
        if !matches!(session.state, State::LoggingIn | State::Ready) {
            return;
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        let phase = self.phase;
        let window = self
            .plan
            .traffic
            .filter(|t| t.rate == 0.0)
            .map(|t| u64::from(t.window));
        let tally = &mut self.tally;
        let jids = &mut self.jids;
        let login = &mut session.login;
        let state = &mut session.state;
        let mut handler = |element: &[u8], info: &ElementInfo, out: &mut Outbox| -> Flow {
            if *state == State::LoggingIn {
                let mut step = Step::Wait;
                out.push(|buf| step = login.handle(element, info, buf));
                return match step {
                    Step::Wait | Step::Send => Flow::Continue,
                    Step::Restart => Flow::Restart,
                    Step::Ready(jid) => {
                        jids[s] = Some(jid.into_bytes().into_boxed_slice());
                        *state = State::Ready;
                        tally.established += 1;
                        tally.resolved += 1;
                        tally.up += 1;
                        tally.last_ready_ns = now;
                        Flow::Continue
                    }
                    Step::Fail(kind) => Flow::Fail(kind),
                };
            }
            traffic(s, element, info, out, now, phase, window, tally, jids)
        };
        let result =
            session
                .transport
                .on_ready(&mut self.net, s, slot, &mut self.outbox, &mut handler);
        if let Err(kind) = result {
            self.outbox.drain(|_| {});
            self.fail(s, kind);
        }
    }

    /// Move the wake-ups transports asked for onto the timers.
    fn schedule_wakes(&mut self, now: u64) {
        for (session, after) in self.net.wakes.drain(..) {
            let at = now + after.as_nanos() as u64;
            self.timers.push(Reverse((at, Timer::Wake, session)));
        }
    }

    fn mark_dirty(&mut self, s: usize) {
        if !self.sessions[s].dirty {
            self.sessions[s].dirty = true;
            self.dirty.push(s);
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &s in &dirty {
            let session = &mut self.sessions[s];
            session.dirty = false;
            if !matches!(session.state, State::LoggingIn | State::Ready) {
                continue;
            }
            if let Err(kind) = session.transport.flush(&mut self.net, s) {
                self.fail(s, kind);
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn fail(&mut self, s: usize, kind: ErrorKind) {
        let session = &mut self.sessions[s];
        match session.state {
            State::Ready => self.tally.up -= 1,
            State::LoggingIn | State::NotStarted => self.tally.resolved += 1,
            State::Closed | State::Failed => return,
        }
        session.transport.close();
        self.jids[s] = None;
        if matches!(self.phase, Phase::Logout { .. }) && CLEAN_ENDS.contains(&kind.as_ref()) {
            session.state = State::Closed;
            self.tally.closed += 1;
            return;
        }
        session.state = State::Failed;
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let ends = self.tally.ends.entry(kind.to_string()).or_insert(Ends {
            count: 0,
            first_unix_ms: unix_ms,
            last_unix_ms: unix_ms,
        });
        ends.count += 1;
        ends.last_unix_ms = unix_ms;
        *self.tally.errors.entry(kind.into_owned()).or_default() += 1;
    }

    fn next_wake(&self, now: u64) -> Duration {
        let mut wake = now + 1_000_000_000;
        if self.started < self.plan.sessions {
            let next = ((self.started as f64) / self.plan.ramp * 1e9) as u64;
            wake = wake.min(next.max(now + 1_000_000));
        }
        if let Some(Reverse((at, _, _))) = self.timers.peek() {
            wake = wake.min(*at);
        }
        match self.phase {
            Phase::Warmup { until }
            | Phase::Messages { until, .. }
            | Phase::Drain { until, .. }
            | Phase::Logout { until, .. }
            | Phase::Settle { until } => {
                wake = wake.min(until);
            }
            Phase::Setup | Phase::Done => {}
        }
        if self.plan.progress {
            wake = wake.min(self.next_progress_ns);
        }
        Duration::from_nanos(wake.saturating_sub(now))
    }

    fn progress(&mut self, now: u64) {
        let echoes = self.tally.echoes - self.last_progress_echoes;
        self.last_progress_echoes = self.tally.echoes;
        let p99 = self.tally.timeline.take_window_p99() as f64 / 1000.0;
        let errors: u64 = self.tally.errors.values().sum();
        let phase = match self.phase {
            Phase::Setup => "setup",
            Phase::Warmup { .. } => "warm-up",
            Phase::Messages { .. } => "messages",
            Phase::Drain { .. } => "drain",
            Phase::Logout { .. } => "logout",
            Phase::Settle { .. } => "settle",
            Phase::Done => "done",
        };
        let _ = writeln!(
            io::stderr(),
            "[{:>4}s] {phase:<8} up {}/{}  round trips/s {echoes}  p99 {p99:.2} ms (this second)  errors {errors}",
            now / 1_000_000_000,
            self.tally.up,
            self.plan.sessions,
        );
        self.next_progress_ns += 1_000_000_000;
        if self.next_progress_ns <= now {
            self.next_progress_ns = now + 1_000_000_000;
        }
    }
}

fn new_session(plan: &Plan, i: usize) -> io::Result<Session> {
    let missing =
        |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("no {what} endpoint"));
    let domain = plan.domains[i % plan.domains.len()].clone();
    let seed = i as u64 + 1;
    let bosh = match plan.layout {
        Layout::Bosh => true,
        Layout::Mix => i.is_multiple_of(2),
        Layout::Ws | Layout::Tcp => false,
    };
    let transport = if plan.layout == Layout::Tcp {
        let tcp = plan.tcp.clone().ok_or_else(|| missing("tcp"))?;
        Transport::Tcp(Box::new(Tcp::new(tcp, domain)))
    } else if bosh {
        let bosh = plan.bosh.clone().ok_or_else(|| missing("bosh"))?;
        // Each session its own cuts, all from the run's one seed.
        let cutter = plan
            .cuts
            .map(|c| Cutter::new(c.share, c.seed ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93)));
        Transport::Bosh(Box::new(Bosh::new(
            bosh,
            domain,
            plan.bosh_wait,
            seed,
            plan.bosh_acks,
            cutter,
        )))
    } else {
        let ws = plan.ws.clone().ok_or_else(|| missing("websocket"))?;
        Transport::Ws(Box::new(Ws::new(ws, domain, seed)))
    };
    let auth = match &plan.plain {
        Some((user, first, password)) => Auth::Plain {
            user: format!("{user}{}", first + i as u64),
            password: password.clone(),
        },
        None => Auth::None,
    };
    Ok(Session {
        transport,
        login: Login::new(auth),
        state: State::NotStarted,
        dirty: false,
    })
}

/// Handle one element of a logged-in session: echo a probe, count an echo
/// (and send the next in closed loop), answer an iq.
#[allow(clippy::too_many_arguments)]
fn traffic(
    s: usize,
    element: &[u8],
    info: &ElementInfo,
    out: &mut Outbox,
    now: u64,
    phase: Phase,
    window: Option<u64>,
    tally: &mut Tally,
    jids: &[Option<Box<[u8]>>],
) -> Flow {
    match info.local_name(element) {
        "message" => {
            let Some(body) = child_text(element, b"<body>", b"</body>") else {
                return Flow::Continue;
            };
            let Some((kind, sent_at, seq)) = parse_probe(body) else {
                return Flow::Continue;
            };
            let pair = s / 2;
            let partner = s ^ 1;
            match kind {
                b'p' => {
                    // A probe that came twice is counted, not echoed: each
                    // hop's duplicates are then counted once.
                    let first = tally.ledger.probed(pair, seq) == Echo::OnTime;
                    if let (true, Some(to)) = (first, jids[partner].as_deref()) {
                        out.push(|buf| write_message(buf, to, b'e', sent_at, seq));
                    }
                }
                b'e' => {
                    let warmup = match phase {
                        Phase::Messages { start, .. }
                        | Phase::Drain { start, .. }
                        | Phase::Logout { start, .. } => sent_at < start,
                        Phase::Setup
                        | Phase::Warmup { .. }
                        | Phase::Settle { .. }
                        | Phase::Done => true,
                    };
                    let late = !matches!(phase, Phase::Messages { .. }) && !warmup;
                    let echo = tally.ledger.echoed(pair, seq, late);
                    if !warmup && matches!(echo, Echo::OnTime | Echo::Late) {
                        let us = (now.saturating_sub(sent_at) / 1000).clamp(1, MAX_LATENCY_US);
                        let _ = tally.latency_us.record(us);
                        tally.echoes += 1;
                        if let (Echo::OnTime, Phase::Messages { start, until }) = (echo, phase) {
                            tally.on_time += 1;
                            // The phase ends at the first wake-up after
                            // `until`: its last instants count in the last
                            // whole second.
                            let last = until.saturating_sub(start + 1) / 1_000_000_000;
                            let second =
                                (now.saturating_sub(start) / 1_000_000_000).min(last) as usize;
                            tally.timeline.record(second, us);
                        } else {
                            tally.timeline.record_window(us);
                        }
                    }
                    if let (Some(window), Phase::Messages { .. }) = (window, phase) {
                        if let Some(to) = jids[partner].as_deref() {
                            while tally.ledger.in_flight(pair) < window {
                                let seq = tally.ledger.sent(pair);
                                out.push(|buf| write_message(buf, to, b'p', now, seq));
                            }
                        }
                    }
                }
                _ => {}
            }
            Flow::Continue
        }
        "iq" => {
            let kind = attr(element, b"type");
            if kind == Some(b"get") || kind == Some(b"set") {
                let id = attr(element, b"id").unwrap_or_default();
                let from = attr(element, b"from");
                out.push(|buf| {
                    buf.extend_from_slice(b"<iq xmlns='jabber:client' type='result' id='");
                    buf.extend_from_slice(id);
                    if let Some(from) = from {
                        buf.extend_from_slice(b"' to='");
                        buf.extend_from_slice(from);
                    }
                    buf.extend_from_slice(b"'/>");
                });
            }
            Flow::Continue
        }
        "close" => Flow::Fail("stream_closed".into()),
        _ if is_stream_error(element, info) => {
            Flow::Fail(format!("stream_error:{}", stream_error_condition(element)).into())
        }
        _ => Flow::Continue,
    }
}

/// `<message xmlns='jabber:client' to='..' type='chat'><body>{kind}{sent_at}:{seq}</body></message>`.
/// The namespace is spelled out: in a BOSH `<body/>` or an RFC 7395 frame
/// the default namespace is not `jabber:client`, and servers' own
/// endpoints (Prosody's) refuse stanzas outside it.
pub fn write_message(out: &mut Vec<u8>, to: &[u8], kind: u8, sent_at: u64, seq: u64) {
    out.extend_from_slice(b"<message xmlns='jabber:client' to='");
    out.extend_from_slice(to);
    out.extend_from_slice(b"' type='chat'><body>");
    out.push(kind);
    let _ = write!(out, "{sent_at}:{seq}");
    out.extend_from_slice(b"</body></message>");
}

/// The kind, send time and sequence number of a probe body.
pub fn parse_probe(body: &[u8]) -> Option<(u8, u64, u64)> {
    let (&kind, rest) = body.split_first()?;
    let colon = rest.iter().position(|&b| b == b':')?;
    Some((kind, number(&rest[..colon])?, number(&rest[colon + 1..])?))
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip_through_their_text() {
        let mut out = Vec::new();
        write_message(&mut out, b"b@localhost/load", b'p', 123_456_789, 42);
        assert_eq!(
            out,
            b"<message xmlns='jabber:client' to='b@localhost/load' type='chat'><body>p123456789:42</body></message>"
        );
        let body = child_text(&out, b"<body>", b"</body>").unwrap();
        assert_eq!(parse_probe(body), Some((b'p', 123_456_789, 42)));
        assert_eq!(parse_probe(b"e1:"), None);
        assert_eq!(parse_probe(b"hello"), None);
        assert_eq!(parse_probe(b"e99999999999999999999:1"), None, "overflow");
    }
}
