//! One BOSH session (XEP-0124 + XEP-0206), sans-IO: HTTP request bodies and
//! backend bytes in, response bodies, backend bytes and commands out; time
//! only as `now`.
//!
//! Requests are taken in rid order within a window of `hold + 1`; an early
//! rid waits for the gap to fill, a repeated one gets its kept response.
//! Held requests are answered when server stanzas arrive, after `wait`, or
//! when more than `hold` are held (the oldest). A session carries one or
//! more XMPP streams (§19), each with its own backend connection; one
//! response body carries the stanzas of one stream.
//!
//! Drain order after any input: [`Session::poll_response`],
//! [`Session::poll_command`], [`Session::backend_output`],
//! [`Session::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::body::{terminate_body, Body, Condition, Head, NS_XBOSH};
use super::replies::Replies;
use super::stream::{Ended, XmppStream};
use crate::backend;
use crate::destinations;
use crate::end::{End, Mistake, ServerSide};
use crate::ids;
use crate::xml;

/// An opaque id the reactor gives each HTTP request it holds.
pub type RequestHandle = u64;

/// A stream's slot in its session; 0 is the first (XEP-0124 §19). Slots of
/// closed streams are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub usize);

/// Names of streams closed lately, whose payloads are dropped quietly
/// (§19.3: the client may not have known yet).
const CLOSED_NAMES_KEPT: usize = 4;

/// Limits and timers, derived once from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest `wait` granted (XEP-0124 §7.1).
    pub max_wait: Duration,
    /// Most requests held at once.
    pub max_hold: u32,
    /// The inactivity granted is the client's clamped into these
    /// (node-xmpp-bosh's rule).
    pub default_inactivity: Duration,
    pub max_inactivity: Duration,
    /// The shortest interval allowed between polls (XEP-0124 §11, §12).
    pub polling: Duration,
    pub max_pause: Duration,
    /// Streams open at once in one session (§19).
    pub max_streams: usize,
    /// `route` values (`xmpp:host:port`) a client may ask for (§7.1); empty:
    /// `route` is ignored and the server is found from `to`.
    pub allowed_routes: Vec<String>,
    /// The backend stream must be ready within this.
    pub handshake_timeout: Duration,
    /// Server data held for the client before the backend stops being read.
    pub max_pending_bytes: usize,
    pub xml: xml::Limits,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Find and connect the server of `domain` for `stream`, at `route`
    /// (an allowed `xmpp:host:port`) when the client named one.
    Connect {
        stream: StreamId,
        domain: String,
        route: Option<String>,
    },
    /// The stream is closed: drop its connection once its output is out,
    /// then call [`Session::backend_released`].
    CloseBackend { stream: StreamId },
    /// The session is over.
    End(End),
}

/// An HTTP response body for a held request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The response to a request that has no session (unknown sid, bad body).
pub fn terminate_response(condition: Condition) -> Response {
    Response {
        status: 200,
        body: terminate_body(Some(condition), None, b""),
    }
}

/// What answering a held request tells the client besides payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    /// The session creation response (§7.1), for stream 0.
    Creation,
    /// The response to a request for another stream (§19.2).
    AddStream(StreamId),
}

struct Held {
    rid: u64,
    handle: RequestHandle,
    deadline: Instant,
    kind: Kind,
}

struct Queued {
    handle: RequestHandle,
    body: Body,
    payload: Vec<u8>,
}

pub struct Session {
    settings: Settings,
    sid: String,
    domain: String,
    wait: Duration,
    hold: u32,
    /// As granted at creation; a pause changes `inactivity` until the next
    /// request.
    granted_inactivity: Duration,
    inactivity: Duration,
    /// The client acknowledges responses (§9).
    acks: bool,
    /// The client sent no `ver`: HTTP error codes instead of some terminal
    /// conditions (§17.1).
    legacy: bool,
    /// The next rid to take.
    next_rid: u64,
    /// Requests ahead of a gap, with their rids (at most `hold + 1`). A
    /// plain Vec, freed when empty: a BTreeMap keeps a ~4 KiB node per
    /// idle session.
    queued: Vec<(u64, Queued)>,
    held: VecDeque<Held>,
    /// Held requests whose connection went away, unanswered (at most
    /// `hold + 1`; a plain Vec, freed when empty).
    orphans: Vec<Held>,
    replies: Replies,
    streams: Vec<Option<XmppStream>>,
    /// More than one stream was ever open: bodies name their stream.
    multiple: bool,
    closed_names: VecDeque<String>,
    /// Where the search for a stream with data starts, so that one busy
    /// stream does not starve the others.
    next_flush: usize,
    /// Terminate bodies of streams that ended while others go on.
    notices: VecDeque<Vec<u8>>,
    /// A `report` and `time` for the next response (§9.2).
    report: Option<(u64, u64)>,
    /// When the previous new request was taken (§11, §12).
    last_arrival: Option<Instant>,
    /// The rid of the last request answered without payloads.
    last_empty_answer: Option<u64>,
    /// Consecutive too-early polls; one is forgiven (a page reload).
    early_polls: u8,
    /// When the session last had no request held.
    idle_since: Option<Instant>,
    responses: VecDeque<(RequestHandle, Response)>,
    commands: VecDeque<Command>,
    ended: bool,
    /// Why the session ended, for requests that come after.
    end: Option<Response>,
}

impl Session {
    /// Session creation (XEP-0124 §7.1). The creation response comes out
    /// of [`Session::poll_response`] with the backend's stream features.
    pub fn create(
        now: Instant,
        settings: Settings,
        sid: String,
        handle: RequestHandle,
        body: &Body,
    ) -> Result<Session, Response> {
        let refuse = |end: End| terminate_response(end.bosh().unwrap_or(Condition::BadRequest));
        let Some(rid) = body.rid else {
            return Err(refuse(End::Client(Mistake::NoRid)));
        };
        let Some(domain) = body.to.as_deref().and_then(destinations::normalize) else {
            return Err(refuse(End::Client(Mistake::NoDomain)));
        };
        let route = check_route(&settings, body).map_err(|m| refuse(End::Client(m)))?;
        let name =
            ids::stream_name().map_err(|_| refuse(End::Internal("no random stream name")))?;
        let wait = Duration::from_secs(body.wait.unwrap_or(u64::MAX)).min(settings.max_wait);
        let hold = body.hold.unwrap_or(1).min(settings.max_hold);
        let inactivity = body
            .inactivity
            .map_or(settings.default_inactivity, Duration::from_secs)
            .clamp(settings.default_inactivity, settings.max_inactivity);
        let acks = body.ack.is_some();
        let mut session = Session {
            sid,
            domain: domain.clone(),
            wait,
            hold,
            granted_inactivity: inactivity,
            inactivity,
            acks,
            legacy: body.ver.is_none(),
            next_rid: rid.saturating_add(1),
            queued: Vec::new(),
            held: VecDeque::new(),
            orphans: Vec::new(),
            replies: Replies::new(hold as usize + 1, acks),
            // Most sessions keep one stream; a stream is large, so no spare
            // slots up front.
            streams: Vec::with_capacity(1),
            multiple: false,
            closed_names: VecDeque::new(),
            next_flush: 0,
            notices: VecDeque::new(),
            report: None,
            last_arrival: Some(now),
            last_empty_answer: None,
            early_polls: 0,
            idle_since: None,
            responses: VecDeque::new(),
            commands: VecDeque::new(),
            ended: false,
            end: None,
            settings,
        };
        session.open_stream(now, name, domain, body, route);
        session.held.push_back(Held {
            rid,
            handle,
            deadline: now + wait,
            kind: Kind::Creation,
        });
        Ok(session)
    }

    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The domain the session was created for, for log lines (its
    /// streams may all be gone by the time it ends).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The domain and language a stream's backend connection is for.
    pub fn stream_target(&self, id: StreamId) -> Option<(&str, &str)> {
        self.stream(id)
            .map(|s| (s.domain.as_str(), s.lang.as_str()))
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Once ended, what every request is answered with: why it ended.
    pub fn end_response(&self) -> Option<&Response> {
        self.end.as_ref()
    }

    /// The most requests the client may have outstanding (XEP-0124 §7.1
    /// `requests`): the window of rids taken and of responses kept.
    fn requests(&self) -> u64 {
        u64::from(self.hold) + 1
    }

    /// The responses a request sent again may still hear (§14.3: those
    /// kept within the request window below the highest rid answered),
    /// oldest first; after a terminate, the last is the terminate's own.
    pub fn last_replies(&self) -> Vec<(u64, Response)> {
        let Some(last) = self.replies.last_answered() else {
            return Vec::new();
        };
        let window = self.requests();
        self.replies
            .iter()
            .filter(|(rid, _)| last - rid < window)
            .map(|(rid, body)| {
                let body = body.to_vec();
                (rid, Response { status: 200, body })
            })
            .collect()
    }

    pub fn poll_response(&mut self) -> Option<(RequestHandle, Response)> {
        self.responses.pop_front()
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn backend_output(&self, id: StreamId) -> &[u8] {
        self.stream(id).map_or(&[], |s| s.output())
    }

    pub fn consume_backend_output(&mut self, id: StreamId, n: usize) {
        if let Some(s) = self.stream_mut(id) {
            s.consume_output(n);
        }
    }

    /// Bytes held for the client and the servers, for the endpoint's
    /// accounting.
    pub fn buffered_bytes(&self) -> usize {
        let streams: usize = self
            .streams
            .iter()
            .flatten()
            .map(XmppStream::buffered_bytes)
            .sum();
        let queued: usize = self.queued.iter().map(|(_, q)| q.payload.len()).sum();
        let notices: usize = self.notices.iter().map(Vec::len).sum();
        streams + queued + notices + self.replies.bytes()
    }

    /// Back-pressure: stop reading the server while this much waits.
    pub fn wants_backend_input(&self, id: StreamId) -> bool {
        self.stream(id)
            .is_some_and(|s| s.pending.len() < self.settings.max_pending_bytes)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let held = self.held.iter().map(|h| h.deadline);
        let idle = self.idle_since.map(|t| t + self.inactivity);
        let handshakes = self
            .streams
            .iter()
            .flatten()
            .filter_map(|s| s.handshake_deadline);
        held.chain(idle).chain(handshakes).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        for id in 0..self.streams.len() {
            let late = self.streams[id]
                .as_ref()
                .is_some_and(|s| s.handshake_deadline.is_some_and(|d| now >= d));
            if late {
                self.end_stream(StreamId(id), Ended::new(End::HandshakeTimeout));
                if self.ended {
                    return;
                }
            }
        }
        if self.idle_since.is_some_and(|t| now >= t + self.inactivity) {
            // No `</stream:stream>`: the server may resume (XEP-0198).
            return self.finish(End::Inactive, b"");
        }
        while self.held.front().is_some_and(|h| now >= h.deadline) {
            self.answer_oldest(now);
        }
        self.flush(now);
    }

    /// A request in this session (XEP-0124 §8-§14).
    pub fn handle_request(&mut self, now: Instant, handle: RequestHandle, body: &Body, raw: &[u8]) {
        if let Some(end) = self.end.as_ref() {
            self.responses.push_back((handle, end.clone()));
            return;
        }
        let Some(rid) = body.rid else {
            return self.refuse(handle, Mistake::NoRid);
        };
        if rid < self.next_rid {
            // A repeat: the kept response, byte for byte; or, for a request
            // still unanswered, the same request on a new connection
            // (§14.3: the client thinks the old one broke).
            if let Some(kept) = self.replies.find(rid) {
                let body = kept.to_vec();
                self.responses
                    .push_back((handle, Response { status: 200, body }));
            } else if !self.hold_again(now, rid, handle) {
                self.refuse(
                    handle,
                    Mistake::BadRid("repeated beyond the kept responses"),
                );
            }
            return;
        }
        if rid > self.next_rid + u64::from(self.hold) {
            return self.refuse(handle, Mistake::BadRid("outside the window"));
        }
        let payload = raw.get(body.payload.clone()).unwrap_or_default().to_vec();
        let request = Queued {
            handle,
            body: body.clone(),
            payload,
        };
        if rid == self.next_rid {
            self.next_rid += 1;
            self.take(now, rid, request);
        } else if let Some(at) = self.queued.iter().position(|(r, _)| *r == rid) {
            // Sent again (its connection broke, the client thinks): the new
            // copy waits for the gap; the old one is let go, answered empty.
            let old = std::mem::replace(&mut self.queued[at].1, request);
            let body = self.plain_head(None, rid).finish(&[]);
            self.responses
                .push_back((old.handle, Response { status: 200, body }));
        } else {
            self.queued.push((rid, request));
        }
        while let Some(at) = self.queued.iter().position(|(r, _)| *r == self.next_rid) {
            if self.ended {
                return;
            }
            let (rid, next) = self.queued.swap_remove(at);
            self.next_rid += 1;
            self.take(now, rid, next);
        }
        if self.queued.is_empty() {
            self.queued = Vec::new();
        }
    }

    /// The client closed the connection holding `handle` (a page reload).
    /// A held request is remembered unanswered, so that the client may
    /// send it again on another connection; with nothing held any more,
    /// the inactivity clock starts.
    pub fn request_gone(&mut self, now: Instant, handle: RequestHandle) {
        if let Some(at) = self.held.iter().position(|h| h.handle == handle) {
            if let Some(held) = self.held.remove(at) {
                if self.orphans.len() > self.hold as usize {
                    self.orphans.remove(0);
                }
                self.orphans.push(held);
            }
            self.note_idle(now);
        }
        self.queued.retain(|(_, q)| q.handle != handle);
    }

    /// An unanswered request sent again: it is held again on its new
    /// connection, in rid order; a copy still held on an old connection
    /// is answered empty, since the client has given up on it.
    fn hold_again(&mut self, now: Instant, rid: u64, handle: RequestHandle) -> bool {
        let again = if let Some(at) = self.orphans.iter().position(|h| h.rid == rid) {
            let held = self.orphans.swap_remove(at);
            if self.orphans.is_empty() {
                self.orphans = Vec::new();
            }
            held
        } else if let Some(at) = self.held.iter().position(|h| h.rid == rid) {
            let Some(old) = self.held.remove(at) else {
                return false;
            };
            let body = self.plain_head(None, rid).finish(&[]);
            self.responses
                .push_back((old.handle, Response { status: 200, body }));
            old
        } else {
            return false;
        };
        if self.replies.last_answered().is_some_and(|last| last > rid) {
            // A later request carried data already, and clients take
            // responses in rid order: this one can only be empty.
            let body = self.plain_head(None, rid).finish(&[]);
            self.respond(now, rid, handle, body);
            self.note_idle(now);
            return true;
        }
        let at = self
            .held
            .iter()
            .position(|h| h.rid > rid)
            .unwrap_or(self.held.len());
        self.held.insert(
            at,
            Held {
                handle,
                deadline: now + self.wait,
                ..again
            },
        );
        self.idle_since = None;
        while self.held.len() > self.hold as usize {
            self.answer_oldest(now);
        }
        self.flush(now);
        true
    }

    pub fn backend_connected(&mut self, _now: Instant, id: StreamId, settings: backend::Settings) {
        if self.ended {
            return;
        }
        if let Some(s) = self.stream_mut(id) {
            s.connected(settings);
        }
    }

    /// The endpoint will not connect this stream (its domain is not
    /// served).
    pub fn refuse_stream(&mut self, now: Instant, id: StreamId, end: End) {
        self.end_stream(id, Ended::new(end));
        self.flush(now);
    }

    pub fn backend_failed(&mut self, now: Instant, id: StreamId, why: String) {
        self.end_stream(id, Ended::failed(why));
        self.flush(now);
    }

    pub fn handle_backend_eof(&mut self, now: Instant, id: StreamId) {
        self.end_stream(id, Ended::failed("server closed the connection"));
        self.flush(now);
    }

    /// The reactor dropped a closed stream's connection: its slot is free.
    pub fn backend_released(&mut self, id: StreamId) {
        if let Some(slot) = self.streams.get_mut(id.0) {
            if slot.as_ref().is_some_and(|s| s.closing) {
                *slot = None;
            }
        }
    }

    pub fn handle_backend_input(&mut self, now: Instant, id: StreamId, bytes: &[u8]) {
        let max = self.settings.max_pending_bytes;
        let Some(stream) = self.stream_mut(id) else {
            return;
        };
        if let Err(ended) = stream.handle_input(bytes, max) {
            self.end_stream(id, ended);
        }
        self.flush(now);
    }

    /// The process is going down (§17.2 `system-shutdown`).
    pub fn shut_down(&mut self) {
        self.terminate(End::Shutdown);
    }

    /// The endpoint ends the session for `end` (a request too broken to
    /// reach the session named it).
    pub fn terminate(&mut self, end: End) {
        self.finish(end, b"");
    }

    /// Take one request, in rid order.
    fn take(&mut self, now: Instant, rid: u64, request: Queued) {
        self.idle_since = None;
        self.inactivity = self.granted_inactivity;
        let body = &request.body;
        if self.acks {
            // §9.2: no `ack` means every response so far arrived.
            let ack = body.ack.unwrap_or(rid - 1);
            self.report = self.replies.acknowledge(ack, now);
        }
        let target = match self.target(body) {
            Ok(target) => target,
            Err(()) => return self.refuse(request.handle, Mistake::UnknownStream),
        };
        if body.terminate {
            return self.take_terminate(now, rid, request.handle, target, body, &request.payload);
        }
        let empty = request.payload.is_empty() && !body.restart && body.pause.is_none();
        // XEP-0206 restarts carry `to` too; only a plain body with `to`
        // asks for a new stream.
        let adds_stream = body.to.is_some() && !body.restart;
        if empty && !adds_stream {
            if let Some(why) = self.overactive(now, rid) {
                return self.refuse(request.handle, Mistake::Overactive(why));
            }
        }
        self.last_arrival = Some(now);
        let mut kind = Kind::Plain;
        if adds_stream {
            match self.add_stream(now, body) {
                Ok(id) => kind = Kind::AddStream(id),
                Err(mistake) => return self.refuse(request.handle, mistake),
            }
        } else if body.restart {
            if let Err(why) = self.restart(target, body) {
                return self.refuse(request.handle, Mistake::BadStreamAttrs(why));
            }
        } else {
            self.send(target, &request.payload);
        }
        // Its own payload or restart ended the session: `finish` answered
        // what was held and queued, and this request hears the same.
        if let Some(end) = self.end.clone() {
            self.responses.push_back((request.handle, end));
            return;
        }
        if let Some(pause) = body.pause {
            // §10: answer everything at once; inactivity becomes the pause
            // until the next request. The pause response is not kept.
            self.inactivity = Duration::from_secs(pause).min(self.settings.max_pause);
            let body = self.plain_head(None, rid).finish(&[]);
            self.responses
                .push_back((request.handle, Response { status: 200, body }));
            while !self.held.is_empty() {
                self.answer_oldest(now);
            }
            self.note_idle(now);
            return;
        }
        self.held.push_back(Held {
            rid,
            handle: request.handle,
            deadline: now + self.wait,
            kind,
        });
        while self.held.len() > self.hold as usize {
            self.answer_oldest(now);
        }
        if self.report.is_some() && !self.held.is_empty() {
            // §9.2: tell the client now, not when data comes.
            self.answer_oldest(now);
        }
        self.flush(now);
    }

    /// §11 and §12: a client asking more often than `polling` allows.
    /// Requests whose connection went away (a page reload) are no longer
    /// held, so they do not count.
    fn overactive(&mut self, now: Instant, rid: u64) -> Option<&'static str> {
        let soon = self
            .last_arrival
            .is_some_and(|t| now.saturating_duration_since(t) < self.settings.polling);
        if self.hold == 0 || self.wait.is_zero() {
            let early = soon && self.last_empty_answer == Some(rid - 1);
            self.early_polls = if early { self.early_polls + 1 } else { 0 };
            return (self.early_polls > 1).then_some("polling too frequently");
        }
        (soon && self.held.len() >= self.hold as usize)
            .then_some("too many empty requests while others are held")
    }

    /// The stream a request is for (§19.3): the one it names, or every
    /// stream when it names none; a name closed a moment ago takes nothing.
    /// An unknown name is an error.
    fn target(&self, body: &Body) -> Result<Target, ()> {
        let Some(name) = body.stream.as_deref() else {
            return Ok(Target::All);
        };
        if let Some(id) = self.find_stream(name) {
            return Ok(Target::One(id));
        }
        if self.closed_names.iter().any(|n| n == name) {
            return Ok(Target::Nowhere);
        }
        Err(())
    }

    fn take_terminate(
        &mut self,
        now: Instant,
        rid: u64,
        handle: RequestHandle,
        target: Target,
        body: &Body,
        payload: &[u8],
    ) {
        let max = self.settings.max_pending_bytes;
        let open = self.open_streams().count();
        match target {
            Target::Nowhere => {
                // Already closed: say so again, the session goes on.
                let name = body.stream.as_deref();
                self.respond(now, rid, handle, terminate_body(None, name, b""));
                self.note_idle(now);
            }
            Target::One(id) if open > 1 => {
                // §19.4: one stream closes, the session goes on.
                let name = self.close_stream(id, payload, max);
                self.respond(now, rid, handle, terminate_body(None, Some(&name), b""));
                self.flush(now);
                self.note_idle(now);
            }
            _ => {
                // §13: the payload first, then a clean close of each stream.
                let ids: Vec<StreamId> = self.open_streams().collect();
                for id in ids {
                    self.close_stream(id, payload, max);
                }
                self.respond(now, rid, handle, terminate_body(None, None, b""));
                self.finish(End::ClientClosed, b"");
            }
        }
    }

    fn close_stream(&mut self, id: StreamId, payload: &[u8], max: usize) -> String {
        let Some(stream) = self.stream_mut(id) else {
            return String::new();
        };
        stream.close(payload, max);
        let name = stream.name.clone();
        self.remember_closed(name.clone());
        self.commands
            .push_back(Command::CloseBackend { stream: id });
        name
    }

    /// §19.2: another stream in this session.
    fn add_stream(&mut self, now: Instant, body: &Body) -> Result<StreamId, Mistake> {
        let Some(domain) = body.to.as_deref().and_then(destinations::normalize) else {
            return Err(Mistake::NoDomain);
        };
        if self.open_streams().count() >= self.settings.max_streams {
            return Err(Mistake::TooManyStreams);
        }
        let route = check_route(&self.settings, body)?;
        // Without a random name the stream cannot be told apart safely.
        let name = ids::stream_name().map_err(|_| Mistake::TooManyStreams)?;
        self.multiple = true;
        Ok(self.open_stream(now, name, domain, body, route))
    }

    fn open_stream(
        &mut self,
        now: Instant,
        name: String,
        domain: String,
        body: &Body,
        route: Option<String>,
    ) -> StreamId {
        let lang = body.lang.clone().unwrap_or_else(|| "en".into());
        let stream = XmppStream::new(
            name,
            domain.clone(),
            lang,
            body.from.clone(),
            now + self.settings.handshake_timeout,
        );
        let id = match self.streams.iter().position(Option::is_none) {
            Some(free) => {
                self.streams[free] = Some(stream);
                StreamId(free)
            }
            None => {
                self.streams.push(Some(stream));
                StreamId(self.streams.len() - 1)
            }
        };
        self.commands.push_back(Command::Connect {
            stream: id,
            domain,
            route,
        });
        id
    }

    fn restart(&mut self, target: Target, body: &Body) -> Result<(), String> {
        let extra = match body.stream_attrs.as_deref() {
            Some(json) => stream_attrs(json)?,
            None => Vec::new(),
        };
        for id in (0..self.streams.len()).map(StreamId) {
            let Some(stream) = self.stream_mut(id).filter(|s| target.selects(id, s)) else {
                continue;
            };
            if let Err(ended) = stream.restart(&extra) {
                self.end_stream(id, ended);
            }
        }
        Ok(())
    }

    fn send(&mut self, target: Target, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let max = self.settings.max_pending_bytes;
        for id in (0..self.streams.len()).map(StreamId) {
            let Some(stream) = self.stream_mut(id).filter(|s| target.selects(id, s)) else {
                continue;
            };
            if let Err(ended) = stream.send(payload, max) {
                self.end_stream(id, ended);
            }
        }
    }

    /// A stream is over. The last one ends the session; otherwise the
    /// client hears of it in a terminate body naming the stream (§19.5).
    fn end_stream(&mut self, id: StreamId, ended: Ended) {
        if self.ended {
            return;
        }
        if self.stream_mut(id).is_none_or(|s| s.closing) {
            return;
        }
        if self.open_streams().count() <= 1 {
            return self.finish(ended.end, &ended.content);
        }
        let max = self.settings.max_pending_bytes;
        let sid = &self.sid;
        let Some(stream) = self.streams.get_mut(id.0).and_then(Option::as_mut) else {
            return;
        };
        let name = stream.name.clone();
        log::debug!("bosh {sid} stream {name} ended: {}", ended.end);
        // The table of ends says whether the server hears `</stream:stream>`;
        // a closed stream keeps its slot until that is written.
        match ended.end.server_side() {
            ServerSide::Close => stream.close(b"", max),
            ServerSide::Drop => self.streams[id.0] = None,
        }
        self.commands
            .push_back(Command::CloseBackend { stream: id });
        let notice = terminate_body(ended.end.bosh(), Some(&name), &ended.content);
        self.notices.push_back(notice);
        self.remember_closed(name);
    }

    fn remember_closed(&mut self, name: String) {
        self.closed_names.push_back(name);
        while self.closed_names.len() > CLOSED_NAMES_KEPT {
            self.closed_names.pop_front();
        }
    }

    /// Give waiting data to held requests, oldest first.
    fn flush(&mut self, now: Instant) {
        while !self.held.is_empty() && self.has_news() {
            self.answer_oldest(now);
        }
    }

    fn has_news(&self) -> bool {
        !self.notices.is_empty() || self.open_streams_ref().any(|s| !s.pending.is_empty())
    }

    /// Answer the oldest held request with what there is for it.
    fn answer_oldest(&mut self, now: Instant) {
        let Some(held) = self.held.pop_front() else {
            return;
        };
        let kind = match held.kind {
            Kind::AddStream(id) if self.stream(id).is_none() => Kind::Plain,
            kind => kind,
        };
        let body = match kind {
            Kind::Creation => {
                let payload = self.take_pending(StreamId(0));
                self.creation_head(held.rid).finish(&payload)
            }
            Kind::AddStream(id) => {
                let payload = self.take_pending(id);
                self.stream_head(id).finish(&payload)
            }
            Kind::Plain => match self.notices.pop_front() {
                Some(notice) => notice,
                None => match self.busy_stream() {
                    Some(id) => {
                        let payload = self.take_pending(id);
                        let name = self.stream(id).map(|s| s.name.clone());
                        let name = name.filter(|_| self.multiple);
                        self.plain_head(name.as_deref(), held.rid).finish(&payload)
                    }
                    None => {
                        self.last_empty_answer = Some(held.rid);
                        self.plain_head(None, held.rid).finish(&[])
                    }
                },
            },
        };
        self.respond(now, held.rid, held.handle, body);
        self.note_idle(now);
    }

    fn busy_stream(&mut self) -> Option<StreamId> {
        let n = self.streams.len();
        let found = (0..n).map(|i| (self.next_flush + i) % n).find(|&i| {
            self.streams[i]
                .as_ref()
                .is_some_and(|s| !s.closing && !s.pending.is_empty())
        })?;
        self.next_flush = found + 1;
        Some(StreamId(found))
    }

    fn take_pending(&mut self, id: StreamId) -> Vec<u8> {
        self.stream_mut(id)
            .map(|s| std::mem::take(&mut s.pending))
            .unwrap_or_default()
    }

    fn note_idle(&mut self, now: Instant) {
        if self.held.is_empty() {
            self.idle_since = Some(now);
        }
    }

    fn respond(&mut self, now: Instant, rid: u64, handle: RequestHandle, body: Vec<u8>) {
        self.replies.record(rid, &body, now);
        self.responses
            .push_back((handle, Response { status: 200, body }));
    }

    /// A body with the session's per-response attributes: the stream its
    /// payloads are for, `ack` (§9.1) and `report`/`time` (§9.2).
    fn plain_head(&mut self, stream: Option<&str>, rid: u64) -> Head {
        let mut head = Head::new().attr("xmlns:stream", xml::NS_STREAMS);
        if let Some(name) = stream {
            head = head.stream(name);
        }
        // §9.1: the highest rid received with all before it, unless it is
        // the one answered.
        let received = self.next_rid - 1;
        if self.acks && received != rid {
            head = head.number("ack", received);
        }
        if let Some((report, time)) = self.report.take() {
            head = head.number("report", report).number("time", time);
        }
        head
    }

    /// XEP-0124 §7.1 and XEP-0206 §6: everything the client learns once.
    fn creation_head(&self, rid: u64) -> Head {
        let Some(first) = self.stream(StreamId(0)) else {
            return Head::new();
        };
        let mut head = Head::new()
            .attr("xmlns:xmpp", NS_XBOSH)
            .attr("xmlns:stream", xml::NS_STREAMS)
            .attr("sid", &self.sid)
            .number("wait", self.wait.as_secs())
            .number("hold", u64::from(self.hold))
            .number("requests", self.requests())
            .number("inactivity", self.granted_inactivity.as_secs())
            .number("polling", self.settings.polling.as_secs())
            .number("maxpause", self.settings.max_pause.as_secs())
            .attr("ver", "1.11")
            .attr("from", &first.domain)
            .attr("xmpp:version", "1.0")
            // §7.1: whether our hop to the server is encrypted.
            .attr("secure", if first.is_secure() { "true" } else { "false" })
            // §19.1: multiple streams are supported.
            .stream(&first.name);
        if self.acks {
            head = head.number("ack", rid);
        }
        if let Some(authid) = first.authid() {
            head = head.attr("authid", authid);
        }
        if let Some(from) = first.client_from.as_deref() {
            head = head.attr("to", from);
        }
        head
    }

    /// §19.2: the answer to a request for another stream.
    fn stream_head(&self, id: StreamId) -> Head {
        let Some(stream) = self.stream(id) else {
            return Head::new();
        };
        let mut head = Head::new()
            .attr("xmlns:stream", xml::NS_STREAMS)
            .stream(&stream.name)
            .attr("from", &stream.domain)
            .attr("secure", if stream.is_secure() { "true" } else { "false" });
        if let Some(authid) = stream.authid() {
            head = head.attr("authid", authid);
        }
        if let Some(from) = stream.client_from.as_deref() {
            head = head.attr("to", from);
        }
        head
    }

    /// A client mistake ends the session; the request that showed it is
    /// answered with it too.
    fn refuse(&mut self, handle: RequestHandle, mistake: Mistake) {
        let end = End::Client(mistake);
        self.responses.push_back((handle, self.end_body(&end, b"")));
        self.finish(end, b"");
    }

    /// §17.1: a client that sent no `ver` gets HTTP codes for these.
    fn terminal(&self, condition: Condition) -> Response {
        let legacy_status = match condition {
            Condition::BadRequest => 400,
            Condition::PolicyViolation => 403,
            Condition::ItemNotFound => 404,
            _ => 200,
        };
        if self.legacy && legacy_status != 200 {
            return Response {
                status: legacy_status,
                body: Vec::new(),
            };
        }
        terminate_response(condition)
    }

    /// The terminate response for `end` (XEP-0124 §17.2), with the
    /// server's stream error inside for remote-stream-error.
    fn end_body(&self, end: &End, content: &[u8]) -> Response {
        match end.bosh() {
            Some(condition) if content.is_empty() => self.terminal(condition),
            condition => Response {
                status: 200,
                body: terminate_body(condition, None, content),
            },
        }
    }

    /// The session is over: every held request gets the terminate body,
    /// and the server's streams are closed or dropped as the table of
    /// ends says.
    fn finish(&mut self, end: End, content: &[u8]) {
        if self.ended {
            return;
        }
        self.ended = true;
        let body = self.end_body(&end, content);
        self.end = Some(body.clone());
        let waiting = self.held.drain(..).map(|h| h.handle);
        let waiting: Vec<RequestHandle> = waiting
            .chain(
                std::mem::take(&mut self.queued)
                    .into_iter()
                    .map(|(_, q)| q.handle),
            )
            .collect();
        for handle in waiting {
            self.responses.push_back((handle, body.clone()));
        }
        let max = self.settings.max_pending_bytes;
        for stream in self.streams.iter_mut().flatten().filter(|s| !s.closing) {
            match end.server_side() {
                ServerSide::Close => stream.close(b"", max),
                ServerSide::Drop => stream.drop_backend(),
            }
        }
        for id in 0..self.streams.len() {
            let closing = self.streams[id].as_ref().is_some_and(|s| s.has_backend());
            if closing
                && !self.commands.contains(&Command::CloseBackend {
                    stream: StreamId(id),
                })
            {
                self.commands.push_back(Command::CloseBackend {
                    stream: StreamId(id),
                });
            }
        }
        self.commands.push_back(Command::End(end));
    }

    fn stream(&self, id: StreamId) -> Option<&XmppStream> {
        self.streams.get(id.0).and_then(Option::as_ref)
    }

    fn stream_mut(&mut self, id: StreamId) -> Option<&mut XmppStream> {
        self.streams.get_mut(id.0).and_then(Option::as_mut)
    }

    fn find_stream(&self, name: &str) -> Option<StreamId> {
        self.streams
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| !s.closing && s.name == name))
            .map(StreamId)
    }

    fn open_streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.streams
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| !s.closing))
            .map(|(i, _)| StreamId(i))
    }

    fn open_streams_ref(&self) -> impl Iterator<Item = &XmppStream> + '_ {
        self.streams.iter().flatten().filter(|s| !s.closing)
    }
}

/// Where a request's payload goes.
#[derive(Clone, Copy)]
enum Target {
    One(StreamId),
    All,
    /// A stream closed a moment ago.
    Nowhere,
}

impl Target {
    fn selects(self, id: StreamId, stream: &XmppStream) -> bool {
        match self {
            Target::One(one) => one == id,
            Target::All => !stream.closing,
            Target::Nowhere => false,
        }
    }
}

/// §7.1 `route`: ignored unless the configuration allows routes; then only
/// an allowed one is taken, anything else is `host-unknown`.
fn check_route(settings: &Settings, body: &Body) -> Result<Option<String>, Mistake> {
    match body.route.as_deref() {
        Some(route) if !settings.allowed_routes.is_empty() => settings
            .allowed_routes
            .iter()
            .find(|allowed| allowed.as_str() == route)
            .cloned()
            .map(Some)
            .ok_or(Mistake::RouteNotAllowed),
        _ => Ok(None),
    }
}

/// node-xmpp-bosh's `stream_attrs`: a JSON object whose members become
/// attributes of the restarted stream header. Names must be plain XML
/// names; namespace declarations and `version` stay ours, since changing
/// them would break the stream.
fn stream_attrs(json: &str) -> Result<Vec<(String, String)>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("stream_attrs: {e}"))?;
    let mut attrs = Vec::new();
    for (name, value) in map {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            && name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !plain || name == "version" || name.starts_with("xmlns") {
            return Err(format!("stream_attrs: attribute {name:?} not allowed"));
        }
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(format!("stream_attrs: {name} is not a string")),
        };
        attrs.push((name, value));
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests;
