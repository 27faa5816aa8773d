//! A hostile or broken XMPP server (RFC 6120), over both transports:
//! garbage, stream errors, limits broken, a server that is killed, silent
//! or closes mid-stanza, during the handshake and in the middle of a
//! logged-in session, and a flood toward a client that does not read.
//! `hostile.test` leads to a scripted server that answers the stream
//! header with the case's bytes; `gone.test` to a port nobody listens on;
//! `localhost` to the stub, for sessions that log in first. Limits here:
//! the handshake within 400 ms, 4 KiB elements 16 deep, a client that
//! takes nothing for 600 ms is cut.
//!
//! Covered elsewhere and not repeated: a server answering `<open/>` with
//! `host-unknown` (tests/websocket.rs
//! `server_stream_error_is_relayed_then_closed`), a server nobody listens
//! on over WebSocket (`unreachable_backend_fails_the_session`), an
//! untrusted certificate (`untrusted_backend_certificate_fails_the_session`),
//! floods that back-pressure without loss (tests/backpressure.rs), the
//! seeds replayed on the stream alone (core/tests/fuzz_corpus.rs).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::corpus::{
    self, over_both, terminate, terminated, ws_closed, ws_error, Act, BStep, Backend, Begin, Case,
    Outcome, Server, Step, Via,
};
use crate::support::raw_server::{RawServer, Script};
use crate::support::StubServer;

use Server::{Dropped, Ended};

/// The scripted server's answer to a stream header, and whether it then
/// closes (else it holds the connection, reading).
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    reply: &'static [u8],
    close: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// A session to `hostile.test`, which answers so, then acts.
    Handshake(Answer, &'static [Act<'static>], Via),
    /// A session logged in through the stub, whose server then acts; then
    /// a message to itself.
    Midway(&'static [Act<'static>], Via),
    /// A session to `gone.test`, where nobody listens.
    Gone(Via),
}

const fn answers(reply: &'static [u8]) -> Answer {
    Answer {
        reply,
        close: false,
    }
}

const fn then_closes(reply: &'static [u8]) -> Answer {
    Answer { reply, close: true }
}

const fn handshake(answer: Answer, via: Via) -> Probe {
    Probe::Handshake(answer, &[], via)
}

const fn acting((answer, acts): (Answer, &'static [Act<'static>]), via: Via) -> Probe {
    Probe::Handshake(answer, acts, via)
}

const fn midway(acts: &'static [Act<'static>], via: Via) -> Probe {
    Probe::Midway(acts, via)
}

const fn gone(_: (), via: Via) -> Probe {
    Probe::Gone(via)
}

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' from='hostile.test' version='1.0'>";

const FAILED_WS: Outcome = ws_error(1000, "remote-connection-failed", Dropped);
const FAILED_BOSH: Outcome = terminate("remote-connection-failed", Dropped);
/// The same when the server cut the connection itself.
const CUT_WS: Outcome = ws_error(1000, "remote-connection-failed", Ended);
const CUT_BOSH: Outcome = terminate("remote-connection-failed", Ended);

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = over_both! {
    // Before the stream is up.
    "garbage instead of a stream header", handshake(answers(b"HTTP/1.1 400 Bad Request\r\n\r\n")) => FAILED_WS, FAILED_BOSH;
    "TLS bytes instead of a stream header", handshake(answers(b"\x16\x03\x01\x00\x05hello")) => FAILED_WS, FAILED_BOSH;
    "a server that closes at once", handshake(then_closes(b"")) => ws_error(1000, "remote-connection-failed", Ended), terminate("remote-connection-failed", Ended);
    "a stream header cut short, then closed", handshake(then_closes(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream=")) => ws_error(1000, "remote-connection-failed", Ended), terminate("remote-connection-failed", Ended);
    "a silent server", handshake(answers(b"")) => FAILED_WS, FAILED_BOSH;
    "a stream header and no features", handshake(answers(HEADER)) => FAILED_WS, FAILED_BOSH;
    "white space flooding in before the features", acting((answers(HEADER), &[Act::Flood(b"    \n", 64 << 20)])) => FAILED_WS, FAILED_BOSH;
    "a stream error before the features", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' from='hostile.test' version='1.0'><stream:error><host-gone xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>moved</text></stream:error>")) => ws_error(1000, "host-gone", Dropped), terminate("remote-stream-error", Dropped);
    "a stream error of no defined condition", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' from='hostile.test' version='1.0'><stream:error><made-up xmlns='urn:example'/></stream:error>")) => ws_error(1000, "made-up", Dropped), terminate("remote-stream-error", Dropped);
    "the stream closed before the features", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' from='hostile.test' version='1.0'></stream:stream>")) => ws_closed(1000, Dropped), terminated(Dropped);
    "an element before the features", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' from='hostile.test' version='1.0'><message><body>early</body></message>")) => FAILED_WS, FAILED_BOSH;
    "a second stream header", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' from='hostile.test' version='1.0'><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h2' version='1.0'>")) => FAILED_WS, FAILED_BOSH;
    "a header binding stream to another namespace", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='urn:example' id='h1' version='1.0'>")) => FAILED_WS, FAILED_BOSH;
    "a DTD from the server", handshake(answers(b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY a 'b'>]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' version='1.0'>")) => FAILED_WS, FAILED_BOSH;
    "an entity in the server's features", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' version='1.0'><stream:features>&lol;</stream:features>")) => FAILED_WS, FAILED_BOSH;
    "features nested past max_depth", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' version='1.0'><stream:features><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></stream:features>")) => FAILED_WS, FAILED_BOSH;
    "features that are not UTF-8", handshake(answers(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='h1' version='1.0'><stream:features><x>\xff\xfe</x></stream:features>")) => FAILED_WS, FAILED_BOSH;
    "nobody listening", gone(()) => _, terminate("remote-connection-failed", Server::None);
    // The fuzzers' seeds (fuzz/corpus/backend_stream) as a server's words.
    "seed old-version", handshake(answers(seed(include_bytes!("../../fuzz/corpus/backend_stream/old-version")))) => FAILED_WS, FAILED_BOSH;
    "seed starttls-failure", handshake(answers(seed(include_bytes!("../../fuzz/corpus/backend_stream/starttls-failure")))) => FAILED_WS, FAILED_BOSH;
    "seed starttls-proceed, then no TLS", handshake(answers(seed(include_bytes!("../../fuzz/corpus/backend_stream/starttls-proceed")))) => FAILED_WS, FAILED_BOSH;
    "seed tls-required, then closed", handshake(then_closes(seed(include_bytes!("../../fuzz/corpus/backend_stream/tls-required")))) => ws_error(1000, "remote-connection-failed", Ended), terminate("remote-connection-failed", Ended);
    "seed plaintext-session", handshake(answers(seed(include_bytes!("../../fuzz/corpus/backend_stream/plaintext-session")))) => ws_closed(1000, Dropped), terminated(Dropped);
    "seed stream-error", handshake(answers(seed(include_bytes!("../../fuzz/corpus/backend_stream/stream-error")))) => ws_error(1000, "host-unknown", Dropped), terminate("remote-stream-error", Dropped);
    // In the middle of a logged-in session.
    "garbage", midway(&[Act::Send(b"garbage<<")]) => FAILED_WS, FAILED_BOSH;
    "a stream error", midway(&[Act::Send(b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")]) => ws_error(1000, "conflict", Dropped), terminate("remote-stream-error", Dropped);
    "the stream closed", midway(&[Act::Send(b"</stream:stream>")]) => ws_closed(1000, Dropped), terminated(Dropped);
    "closed in the middle of a stanza", midway(&[Act::Send(b"<message><bo"), Act::Cut]) => CUT_WS, CUT_BOSH;
    "a killed server", midway(&[Act::Cut]) => CUT_WS, CUT_BOSH;
    "a DTD", midway(&[Act::Send(b"<!DOCTYPE x><message/>")]) => FAILED_WS, FAILED_BOSH;
    "a stanza past max_element_bytes", midway(&[Act::Send(BIG_STANZA)]) => FAILED_WS, FAILED_BOSH;
    "a stanza nested past max_depth", midway(&[Act::Send(b"<message><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></message>")]) => FAILED_WS, FAILED_BOSH;
    "white space keepalives", midway(&[Act::Send(b" \n \n ")]) => Outcome::Served, Outcome::Served;
    "a flood toward a client that does not read", midway(&[Act::Flood(b"<message xmlns='jabber:client'><body>flood flood flood flood flood flood flood flood</body></message>", 256 << 20)]) => Outcome::WsEnd { error: None, close: false, code: None, server: Dropped };
};

/// A stanza one byte past the 4 KiB limit.
const BIG_STANZA: &[u8] = &{
    let mut stanza = [b'x'; 4097];
    let head = b"<message><body>";
    let tail = b"</body></message>";
    let mut i = 0;
    while i < head.len() {
        stanza[i] = head[i];
        i += 1;
    }
    let mut i = 0;
    while i < tail.len() {
        stanza[4097 - tail.len() + i] = tail[i];
        i += 1;
    }
    stanza
};

const fn seed(bytes: &'static [u8]) -> &'static [u8] {
    // The first byte of a fuzz input selects the stream's settings.
    match bytes.split_first() {
        Some((_, input)) => input,
        None => bytes,
    }
}

fn observe(addr: SocketAddr, stub: &StubServer, hostile: &RawServer, probe: &Probe) -> Outcome {
    let (to, acts, via) = match *probe {
        Probe::Handshake(answer, acts, via) => {
            hostile.set_script(Script {
                reply: answer.reply.to_vec(),
                close: answer.close,
            });
            ("hostile.test", acts, via)
        }
        Probe::Midway(acts, via) => ("localhost", acts, via),
        Probe::Gone(via) => ("gone.test", &[][..], via),
    };
    let backends = [Backend::Stub(stub), Backend::Raw(hostile)];
    // Sessions to the stub log in first and end with a message to
    // themselves; the others are judged by how their opening ends.
    let midway = to == "localhost";
    match via {
        Via::WebSocket => {
            let open = format!(
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{to}' version='1.0'/>"
            );
            let (begin, first, last) = match midway {
                true => (Begin::LoggedIn, None, Some(Step::Echo)),
                false => (Begin::Nothing, Some(Step::Text(&open)), None),
            };
            let acts = acts.iter().map(|act| Step::Server(*act));
            let steps: Vec<Step> = first.into_iter().chain(acts).chain(last).collect();
            corpus::ws_outcome(addr, &backends, to, begin, &steps)
        }
        Via::Bosh => {
            let (begin, last) = match midway {
                true => (Begin::LoggedIn, BStep::Echo),
                false => (Begin::Created, BStep::Poll),
            };
            let acts = acts.iter().map(|act| BStep::Server(*act));
            let steps: Vec<BStep> = acts.chain([last]).collect();
            corpus::bosh_outcome(addr, &backends, to, begin, &steps)
        }
    }
}

pub fn run() {
    let hostile = RawServer::start();
    let nobody = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stub, mut config) = corpus::stub_and_config();
    let routes = &mut config.backend.routes;
    routes.insert("hostile.test".into(), hostile.addr().to_string().into());
    routes.insert("gone.test".into(), nobody.to_string().into());
    config.backend.handshake_timeout = Duration::from_millis(400);
    config.xml.max_depth = 16;
    config.xml.max_element_bytes = 4096;
    config.http.write_timeout = Duration::from_millis(600);
    corpus::run("backend", config, CASES, |addr, probe| {
        observe(addr, &stub, &hostile, probe)
    });
}
