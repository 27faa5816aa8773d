//! The client side of `run` and `memory`: XMPP sessions over WebSocket, BOSH
//! or plain TCP, driven by one mio loop ([`driver`]).
//!
//! A transport owns its sockets and framing. It hands every top-level
//! element the server sent to a handler, which answers through an
//! [`Outbox`]; the transport frames what the handler queued (a WebSocket
//! message each, BOSH bodies, or raw stream bytes) once the read batch is
//! done, so a burst of echoes leaves in one write.

pub mod bosh;
pub mod conn;
pub mod driver;
pub mod tcp;
pub mod timeline;
pub mod ws;

use mio::Token;
use switchboard_core::xml::ElementInfo;

use crate::xmpp::ErrorKind;
use conn::Net;

/// What the handler wants after one element.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Restart the stream (after SASL success).
    Restart,
    /// End the session.
    Fail(ErrorKind),
}

/// The handler of a session's incoming elements.
pub type Handler<'a> = dyn FnMut(&[u8], &ElementInfo, &mut Outbox) -> Flow + 'a;

/// Elements queued by a handler, one after another in one buffer.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Outbox {
    /// Append one element written by `write` (nothing if it writes nothing).
    pub fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        if self.buf.len() > start {
            self.ends.push(self.buf.len());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Hand every element to `send`, in order, and empty the box.
    pub fn drain(&mut self, mut send: impl FnMut(&[u8])) {
        let mut start = 0;
        for &end in &self.ends {
            send(&self.buf[start..end]);
            start = end;
        }
        self.buf.clear();
        self.ends.clear();
    }
}

/// xorshift64*: the clients' cheap, seeded random numbers (masking keys,
/// nonces, where to cut). Nothing here needs to be unguessable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift needs a non-zero state.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One session's transport.
pub enum Transport {
    Ws(Box<ws::Ws>),
    Bosh(Box<bosh::Bosh>),
    Tcp(Box<tcp::Tcp>),
}

/// Tokens: two per session (BOSH uses both, the others the first).
pub fn token(session: usize, slot: usize) -> Token {
    Token(session * 2 + slot)
}

/// The session and slot of a token.
pub fn slot_of(token: Token) -> (usize, usize) {
    (token.0 / 2, token.0 % 2)
}

impl Transport {
    /// Open the connection and queue the stream start.
    pub fn start(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        match self {
            Transport::Ws(t) => t.start(net, session),
            Transport::Bosh(t) => t.start(net, session),
            Transport::Tcp(t) => t.start(net, session),
        }
    }

    /// Readiness of one of its sockets: read, hand elements to `handle`,
    /// send what it queued, flush.
    pub fn on_ready(
        &mut self,
        net: &mut Net,
        session: usize,
        slot: usize,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        match self {
            Transport::Ws(t) => t.on_ready(net, outbox, handle),
            Transport::Bosh(t) => t.on_ready(net, session, slot, outbox, handle),
            Transport::Tcp(t) => t.on_ready(net, outbox, handle),
        }
    }

    /// Queue one element (sent at the next `flush`).
    pub fn send(&mut self, element: &[u8]) {
        match self {
            Transport::Ws(t) => t.send(element),
            Transport::Bosh(t) => t.send(element),
            Transport::Tcp(t) => t.send(element),
        }
    }

    /// Write what is queued.
    pub fn flush(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        match self {
            Transport::Ws(t) => t.flush(),
            Transport::Bosh(t) => t.flush(net, session),
            Transport::Tcp(t) => t.flush(),
        }
    }

    /// Close the session cleanly: RFC 7395 `<close/>`, a BOSH terminate
    /// (XEP-0124 §13), or `</stream:stream>`.
    pub fn logout(&mut self) {
        match self {
            Transport::Ws(t) => t.logout(),
            Transport::Bosh(t) => t.logout(),
            Transport::Tcp(t) => t.send(b"</stream:stream>"),
        }
    }

    /// A wake-up the transport asked for (`Net::wake_after`).
    pub fn on_wake(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        match self {
            Transport::Bosh(t) => t.on_wake(net, session),
            Transport::Ws(_) | Transport::Tcp(_) => Ok(()),
        }
    }

    /// Close every socket.
    pub fn close(&mut self) {
        match self {
            Transport::Ws(t) => t.close(),
            Transport::Bosh(t) => t.close(),
            Transport::Tcp(t) => t.close(),
        }
    }
}
