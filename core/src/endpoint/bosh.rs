//! One BOSH session (XEP-0124/0206) as the endpoint holds it: the session
//! core and a backend link per stream (XEP-0124 §19). Requests reach it
//! from client connections and its responses go back to them through the
//! endpoint, since a session outlives the connections that carry it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use log::info;

use super::link::{Link, Progress};
use super::{Key, Owner, Shared, SocketId};
use crate::bosh::{self, Command, StreamId};
use crate::dns;
use crate::end::End;
use crate::wheel::TimerId;

struct StreamLink {
    link: Link,
    /// The core closed the stream: drop the link once its output is out.
    closing: bool,
}

pub(super) struct BoshEntry {
    pub key: Key,
    pub sid: String,
    number: u64,
    /// Where the session was created from, for the per-address count.
    pub ip: IpAddr,
    started: Instant,
    pub core: Box<bosh::Session>,
    /// By stream id.
    streams: Vec<Option<StreamLink>>,
    /// The session is over: its last bytes to the servers are flushed by
    /// this deadline, then it goes.
    pub ending: Option<(End, Instant)>,
    pub timer: Option<(TimerId, Instant)>,
    /// Bytes last reported to the accounting.
    pub buffered: usize,
}

impl BoshEntry {
    pub fn new(
        key: Key,
        sid: String,
        number: u64,
        ip: IpAddr,
        core: bosh::Session,
        now: Instant,
    ) -> Self {
        BoshEntry {
            key,
            sid,
            number,
            ip,
            started: now,
            core: Box::new(core),
            streams: Vec::new(),
            ending: None,
            timer: None,
            buffered: 0,
        }
    }

    pub fn log_end(&self, reason: &str, now: Instant) {
        info!(
            "session {} end: {} (bosh {}, domain {}, {} ms)",
            self.number,
            reason,
            self.sid,
            self.core.domain(),
            now.duration_since(self.started).as_millis()
        );
    }

    /// Every socket of the session's links, and whether it has output.
    pub fn sockets(&self) -> impl Iterator<Item = (SocketId, bool)> + '_ {
        self.streams.iter().enumerate().filter_map(|(id, s)| {
            let socket = s.as_ref()?.link.socket()?;
            Some((socket, !self.core.backend_output(StreamId(id)).is_empty()))
        })
    }

    /// Close every link (the session is gone).
    pub fn close_links(&mut self, shared: &mut Shared) {
        for stream in self.streams.iter_mut().flatten() {
            stream.link.close(shared);
        }
    }

    pub fn output(&self, stream: u8) -> &[u8] {
        self.core.backend_output(StreamId(usize::from(stream)))
    }

    pub fn consume_output(&mut self, stream: u8, n: usize) {
        self.core
            .consume_backend_output(StreamId(usize::from(stream)), n);
    }

    /// Back-pressure: the core holds server data for the client up to a cap.
    pub fn wants_read(&self, stream: u8) -> bool {
        let id = usize::from(stream);
        self.ending.is_none()
            && self.link(id).is_some_and(|l| l.connected().is_some())
            && self.core.wants_backend_input(StreamId(id))
    }

    pub fn handle_input(&mut self, now: Instant, stream: u8, bytes: &[u8]) {
        self.core
            .handle_backend_input(now, StreamId(usize::from(stream)), bytes);
    }

    pub fn handle_eof(&mut self, now: Instant, stream: u8) {
        self.core
            .handle_backend_eof(now, StreamId(usize::from(stream)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let links = self
            .streams
            .iter()
            .flatten()
            .filter_map(|s| s.link.deadline());
        links
            .chain(self.core.poll_timeout())
            .chain(self.ending.as_ref().map(|e| e.1))
            .min()
    }

    pub fn handle_timeout(&mut self, shared: &mut Shared) {
        for id in 0..self.streams.len() {
            if let Some(Some(s)) = self.streams.get_mut(id) {
                let progress = s.link.handle_timeout(shared);
                self.apply(StreamId(id), progress, shared);
            }
        }
        self.core.handle_timeout(shared.now);
    }

    pub fn handle_dns_answer(
        &mut self,
        stream: u8,
        answer: Result<dns::Answer, dns::Error>,
        shared: &mut Shared,
    ) {
        let id = usize::from(stream);
        if let Some(Some(s)) = self.streams.get_mut(id) {
            let progress = s.link.handle_dns_answer(answer, shared);
            self.apply(StreamId(id), progress, shared);
        }
    }

    pub fn handle_connected(
        &mut self,
        socket: SocketId,
        stream: u8,
        peer: std::net::SocketAddr,
        shared: &Shared,
    ) {
        let id = usize::from(stream);
        if let Some(Some(s)) = self.streams.get_mut(id) {
            let progress = s.link.handle_connected(socket, peer);
            self.apply(StreamId(id), progress, shared);
        }
    }

    pub fn handle_connect_failed(
        &mut self,
        socket: SocketId,
        stream: u8,
        why: &str,
        shared: &mut Shared,
    ) {
        let id = usize::from(stream);
        if let Some(Some(s)) = self.streams.get_mut(id) {
            let progress = s.link.handle_connect_failed(socket, why, shared);
            self.apply(StreamId(id), progress, shared);
        }
    }

    /// Carry out what the core asked for; release streams whose close is
    /// flushed. Once the core has ended, the session is `ending`.
    pub fn run_commands(&mut self, shared: &mut Shared) {
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Connect {
                    stream,
                    domain,
                    route,
                } => {
                    if !shared.settings.serves(&domain) {
                        self.core
                            .refuse_stream(shared.now, stream, End::NotServed(domain));
                        continue;
                    }
                    let Ok(token_stream) = u8::try_from(stream.0) else {
                        self.core
                            .backend_failed(shared.now, stream, "too many streams".into());
                        continue;
                    };
                    let owner = Owner::BoshBackend(self.key, token_stream);
                    let route = route.and_then(|r| shared.settings.bosh_routes.get(&r).cloned());
                    // A slot freed by a failed stream may still hold its link.
                    if let Some(Some(old)) = self.streams.get_mut(stream.0) {
                        old.link.close(shared);
                    }
                    let (link, progress) = Link::start(&domain, route, owner, shared);
                    if self.streams.len() <= stream.0 {
                        // Exactly: most sessions have one stream for life.
                        self.streams
                            .reserve_exact(stream.0 + 1 - self.streams.len());
                        self.streams.resize_with(stream.0 + 1, || None);
                    }
                    self.streams[stream.0] = Some(StreamLink {
                        link,
                        closing: false,
                    });
                    self.apply(stream, progress, shared);
                }
                Command::CloseBackend { stream } => {
                    if let Some(Some(s)) = self.streams.get_mut(stream.0) {
                        s.closing = true;
                    }
                }
                Command::End(reason) => {
                    shared.log_end(self.core.domain(), &reason);
                    let linger = shared.now + shared.settings.linger;
                    self.ending = Some((reason, linger));
                    for stream in self.streams.iter_mut().flatten() {
                        stream.closing = true;
                    }
                }
            }
        }
        for id in 0..self.streams.len() {
            let flushed = self.streams[id]
                .as_ref()
                .is_some_and(|s| s.closing && self.core.backend_output(StreamId(id)).is_empty());
            if flushed {
                if let Some(mut stream) = self.streams[id].take() {
                    stream.link.close(shared);
                }
                self.core.backend_released(StreamId(id));
            }
        }
    }

    /// The session has ended and its last bytes are out (or no longer
    /// awaited): `Some(reason)` to remove it.
    pub fn finished(&self, now: Instant) -> Option<String> {
        let (reason, deadline) = self.ending.as_ref()?;
        let flushed = self.streams.iter().all(Option::is_none);
        (flushed || now >= *deadline).then(|| reason.to_string())
    }

    /// The client ended the session itself.
    pub fn client_closed(&self) -> bool {
        matches!(self.ending, Some((End::ClientClosed, _)))
    }

    fn link(&self, id: usize) -> Option<&Link> {
        self.streams
            .get(id)
            .and_then(Option::as_ref)
            .map(|s| &s.link)
    }

    fn apply(&mut self, id: StreamId, progress: Progress, shared: &Shared) {
        match progress {
            Progress::Pending => {}
            Progress::Connected(peer) => {
                if let Some((domain, lang)) = self.core.stream_target(id) {
                    let settings = shared.settings.backend_settings(domain, lang, peer);
                    self.core.backend_connected(shared.now, id, settings);
                }
            }
            Progress::Failed(why) => self.core.backend_failed(shared.now, id, why),
        }
    }
}

/// Sessions that ended lately, by sid: a session may end with no request
/// held to tell the client, so its next request hears why, not just
/// `item-not-found`. Kept for a grace period, at most `max` of them.
pub(super) struct Ended {
    by_sid: HashMap<String, Tombstone>,
    /// When each entry goes, oldest first.
    order: VecDeque<(Instant, String)>,
    max: usize,
}

/// What the next request to an ended session hears.
enum Tombstone {
    /// Why it ended, whatever the request.
    Ended(bosh::Response),
    /// Its client terminated it: a request sent again with a rid up to the
    /// terminate's hears its kept answer, or else the terminate's (the
    /// session ended as the client asked); later ones item-not-found.
    Terminated {
        rid: u64,
        answer: bosh::Response,
        kept: Vec<(u64, bosh::Response)>,
    },
}

impl Ended {
    pub fn new(max: usize) -> Self {
        Ended {
            by_sid: HashMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.by_sid.len()
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// A session that ended for `why`.
    pub fn insert(&mut self, sid: String, why: bosh::Response, until: Instant) {
        self.keep(sid, Tombstone::Ended(why), until);
    }

    /// A session its client terminated, with the answers it kept (the
    /// terminate's last).
    pub fn insert_terminated(
        &mut self,
        sid: String,
        mut kept: Vec<(u64, bosh::Response)>,
        until: Instant,
    ) {
        kept.sort_by_key(|(rid, _)| *rid);
        if let Some((rid, answer)) = kept.pop() {
            self.keep(sid, Tombstone::Terminated { rid, answer, kept }, until);
        }
    }

    fn keep(&mut self, sid: String, tombstone: Tombstone, until: Instant) {
        while self.order.len() >= self.max {
            self.pop();
        }
        self.order.push_back((until, sid.clone()));
        self.by_sid.insert(sid, tombstone);
    }

    pub fn get(&self, sid: &str, rid: Option<u64>) -> Option<&bosh::Response> {
        match self.by_sid.get(sid)? {
            Tombstone::Ended(why) => Some(why),
            Tombstone::Terminated {
                rid: last,
                answer,
                kept,
            } => {
                let rid = rid.filter(|rid| rid <= last)?;
                let kept = kept.iter().find(|(r, _)| *r == rid);
                Some(kept.map_or(answer, |(_, response)| response))
            }
        }
    }

    pub fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(until, _)| *until <= now) {
            self.pop();
        }
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|(until, _)| *until)
    }

    fn pop(&mut self) {
        if let Some((_, sid)) = self.order.pop_front() {
            self.by_sid.remove(&sid);
        }
        if self.order.is_empty() {
            self.order = VecDeque::new();
            self.by_sid = HashMap::new();
        }
    }
}
