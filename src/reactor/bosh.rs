//! One BOSH session (XEP-0124/0206) as the reactor holds it: the sans-IO
//! core and a backend link per stream (XEP-0124 §19). HTTP requests reach it
//! from client connections and its responses go back to them through the
//! reactor, since a session outlives the connections that carry it.

use std::time::Instant;

use log::info;
use mio::Registry;

use super::conn::{Outcome, Shared};
use super::io::{self, Io};
use super::link::{Link, Progress, Readiness};
use super::token::{Key, Owner};
use switchboard_core::bosh::{self, Command, StreamId};
use switchboard_core::dns;
use switchboard_core::wheel::TimerId;

/// Reads per backend per wake-up before yielding.
const READ_BUDGET: usize = 16;

struct Stream {
    link: Link,
    /// The core asked to close it: drop the link once its output is out.
    closing: bool,
}

pub struct BoshEntry {
    pub key: Key,
    pub sid: String,
    number: u64,
    started: Instant,
    pub core: Box<bosh::Session>,
    /// By stream id.
    streams: Vec<Option<Stream>>,
    pub timer: Option<(TimerId, Instant)>,
}

impl BoshEntry {
    pub fn new(key: Key, sid: String, number: u64, core: bosh::Session, now: Instant) -> Self {
        BoshEntry {
            key,
            sid,
            number,
            started: now,
            core: Box::new(core),
            streams: Vec::new(),
            timer: None,
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

    pub fn deregister(&mut self, registry: &Registry) {
        for stream in self.streams.iter_mut().flatten() {
            stream.link.deregister(registry);
        }
    }

    pub fn mark_ready(&mut self, stream: u8, ready: Readiness) {
        if let Some(Some(s)) = self.streams.get_mut(usize::from(stream)) {
            s.link.mark_ready(ready);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let links = self
            .streams
            .iter()
            .flatten()
            .filter_map(|s| s.link.deadline());
        links.chain(self.core.poll_timeout()).min()
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

    /// Do what readiness and the core allow, within a budget.
    pub fn drive(&mut self, shared: &mut Shared) -> Outcome {
        for _ in 0..READ_BUDGET {
            let mut progress = false;
            for id in 0..self.streams.len() {
                progress |= self.drive_stream(StreamId(id), shared);
            }
            if let Some(why) = self.run_commands(shared) {
                return Outcome::Finish(why);
            }
            if !progress {
                return Outcome::Keep;
            }
        }
        Outcome::Again
    }

    /// Connect check, flush and one read on one stream's link.
    fn drive_stream(&mut self, id: StreamId, shared: &mut Shared) -> bool {
        let Some(Some(stream)) = self.streams.get_mut(id.0) else {
            return false;
        };
        let connected = stream.link.check_connected(shared);
        self.apply(id, connected, shared);
        let Some(Some(stream)) = self.streams.get_mut(id.0) else {
            return false;
        };
        let Some(socket) = stream.link.socket() else {
            return false;
        };
        let mut progress = false;
        if socket.writable && !self.core.backend_output(id).is_empty() {
            match io::write_all_possible(&mut socket.stream, self.core.backend_output(id)) {
                Ok(n) => {
                    self.core.consume_backend_output(id, n);
                    progress |= n > 0;
                    if !self.core.backend_output(id).is_empty() {
                        socket.writable = false;
                    }
                }
                Err(_) => self.core.handle_backend_eof(shared.now, id),
            }
        }
        if stream.closing && self.core.backend_output(id).is_empty() {
            stream.link.deregister(&shared.registry);
            self.streams[id.0] = None;
            self.core.backend_released(id);
            return progress;
        }
        // Back-pressure: the core holds server data for the client up to a cap.
        if socket.readable && self.core.wants_backend_input(id) {
            match io::read(&mut socket.stream, &mut shared.scratch) {
                Io::Progress(n) => {
                    socket.after_read(n, shared.scratch.len());
                    self.core
                        .handle_backend_input(shared.now, id, &shared.scratch[..n]);
                    progress = true;
                }
                Io::WouldBlock => socket.readable = false,
                Io::Closed | Io::Failed(_) => {
                    socket.readable = false;
                    self.core.handle_backend_eof(shared.now, id);
                    progress = true;
                }
            }
        }
        progress
    }

    /// Carry out what the core asked for; `Some(reason)` ends the session.
    fn run_commands(&mut self, shared: &mut Shared) -> Option<String> {
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Connect {
                    stream,
                    domain,
                    route,
                } => {
                    let Ok(token_stream) = u8::try_from(stream.0) else {
                        self.core
                            .backend_failed(shared.now, stream, "too many streams".into());
                        continue;
                    };
                    let owner = Owner::BoshBackend(self.key, token_stream);
                    let route = route.and_then(|r| shared.settings.bosh_routes.get(&r).cloned());
                    let (link, progress) = Link::start(&domain, route, owner, shared);
                    if self.streams.len() <= stream.0 {
                        // Exactly: most sessions have one stream for life.
                        self.streams
                            .reserve_exact(stream.0 + 1 - self.streams.len());
                        self.streams.resize_with(stream.0 + 1, || None);
                    }
                    // A slot freed by a failed stream may still hold its link.
                    if let Some(old) = self.streams[stream.0].as_mut() {
                        old.link.deregister(&shared.registry);
                    }
                    self.streams[stream.0] = Some(Stream {
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
                    // A clean close leaves `</stream:stream>` to write: one
                    // last try before the sockets go.
                    for id in 0..self.streams.len() {
                        self.drive_stream(StreamId(id), shared);
                    }
                    return Some(reason);
                }
            }
        }
        None
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
