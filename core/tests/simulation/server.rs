//! The simulated XMPP server: one stream per backend connection. It
//! answers the stream header with features that need no negotiation,
//! echoes every `<message/>` back as `e{tag}-{n}` and pushes `p{tag}-{k}`
//! of its own. Some connections misbehave, as servers do: slow, closing
//! the stream, sending a stream error, or dropping the connection.

use std::time::{Duration, Instant};

use switchboard_core::xml::{FrameKind, Framer, Limits, Mode};

use super::ledger::{message_id, Ledger};
use super::net::{ConnRef, Net};
use super::rng::Rng;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='sim.test' id='srv' version='1.0'>";
const FEATURES: &str =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

/// How a server connection will end, if it ends on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Normal,
    /// `</stream:stream>` after this many messages.
    CloseAfter(u64),
    /// `<stream:error/>` after this many messages.
    ErrorAfter(u64),
    /// The TCP connection drops after this many messages.
    DieAfter(u64),
}

pub struct ServerConn {
    conn: ConnRef,
    input: Vec<u8>,
    framer: Framer,
    tag: Option<u64>,
    messages: u64,
    pushes: u64,
    fate: Fate,
    /// Answers wait this long (a slow server).
    delay: Duration,
    /// Bytes to send and when.
    outbox: Vec<(Instant, Vec<u8>)>,
    /// Pushes of its own now and then.
    pushing: bool,
    pub done: bool,
}

impl ServerConn {
    pub fn new(rng: &mut Rng, conn: ConnRef) -> ServerConn {
        let fate = match rng.below(20) {
            0 => Fate::CloseAfter(rng.below(6)),
            1 => Fate::ErrorAfter(rng.below(6)),
            2 => Fate::DieAfter(rng.below(6)),
            _ => Fate::Normal,
        };
        let delay = if rng.chance(100) {
            Duration::from_millis(rng.between(50, 1500))
        } else {
            Duration::ZERO
        };
        ServerConn {
            conn,
            input: Vec::new(),
            framer: Framer::new(Mode::Stream, Limits::default()),
            tag: None,
            messages: 0,
            pushes: 0,
            fate,
            delay,
            outbox: Vec::new(),
            pushing: true,
            done: false,
        }
    }

    /// Its end of the connection.
    pub fn conn(&self) -> ConnRef {
        self.conn
    }

    /// A server that behaves: no faults, no delay, no pushes.
    pub fn plain(rng: &mut Rng, conn: ConnRef) -> ServerConn {
        ServerConn {
            fate: Fate::Normal,
            delay: Duration::ZERO,
            pushing: false,
            ..ServerConn::new(rng, conn)
        }
    }

    pub fn step(
        &mut self,
        net: &mut Net,
        rng: &mut Rng,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let now = net.now;
        let bytes = net.recv(self.conn, usize::MAX);
        self.input.extend_from_slice(&bytes);
        loop {
            let frame = match self.framer.next(&self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(format!("server: switchboard sent bad xml: {e}")),
            };
            let element = self.input[..frame.len].to_vec();
            self.input.drain(..frame.len);
            match frame.kind {
                FrameKind::StreamOpen(_) => {
                    self.queue(now, format!("{HEADER}{FEATURES}"));
                }
                FrameKind::Element(info) => {
                    if info.local_name(&element) != "message" {
                        continue;
                    }
                    let Some((tag, n)) = message_id(&element, 'm') else {
                        return Err(format!(
                            "server: a message without a sim id: {}",
                            String::from_utf8_lossy(&element)
                        ));
                    };
                    self.tag = Some(tag);
                    ledger.server_received(tag, n)?;
                    self.messages += 1;
                    let body = String::from_utf8_lossy(&element);
                    let echo =
                        body.replacen(&format!("id='m{tag}-{n}'"), &format!("id='e{tag}-{n}'"), 1);
                    self.queue(now, echo);
                    if self.fate_due(net, rng) {
                        return Ok(());
                    }
                }
                FrameKind::StreamClose => {
                    self.queue(now, "</stream:stream>".into());
                    self.flush(net, rng, true);
                    net.close(self.conn);
                    self.done = true;
                    return Ok(());
                }
                FrameKind::Whitespace | FrameKind::Declaration => {}
            }
        }
        if net.at_eof(self.conn) {
            net.close(self.conn);
            self.done = true;
            return Ok(());
        }
        if let Some(tag) = self.tag.filter(|_| self.pushing && rng.chance(15)) {
            self.pushes += 1;
            let k = self.pushes;
            ledger.pushed(tag, k);
            self.queue(
                now,
                format!(
                    "<message from='push@sim.test' id='p{tag}-{k}'><body>push</body></message>"
                ),
            );
        }
        self.flush(net, rng, false);
        Ok(())
    }

    fn queue(&mut self, now: Instant, text: String) {
        self.outbox.push((now + self.delay, text.into_bytes()));
    }

    fn flush(&mut self, net: &mut Net, rng: &mut Rng, all: bool) {
        let now = net.now;
        let due = self
            .outbox
            .iter()
            .take_while(|(at, _)| all || *at <= now)
            .count();
        for (_, bytes) in self.outbox.drain(..due) {
            net.send(rng, self.conn, &bytes);
        }
    }

    /// Misbehave when the time has come; true when the stream is over.
    fn fate_due(&mut self, net: &mut Net, rng: &mut Rng) -> bool {
        let now = net.now;
        match self.fate {
            Fate::CloseAfter(n) if self.messages > n => {
                self.queue(now, "</stream:stream>".into());
            }
            Fate::ErrorAfter(n) if self.messages > n => {
                self.queue(
                    now,
                    "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>".into(),
                );
            }
            Fate::DieAfter(n) if self.messages > n => {
                net.close(self.conn);
                self.done = true;
                return true;
            }
            _ => return false,
        }
        self.fate = Fate::Normal;
        // The rest goes out; the server reads no more and closes.
        let bytes: Vec<u8> = self.outbox.drain(..).flat_map(|(_, b)| b).collect();
        net.send(rng, self.conn, &bytes);
        net.close(self.conn);
        self.done = true;
        true
    }
}
