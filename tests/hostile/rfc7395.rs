//! RFC 7395 errors: what may be sent before and around `<open/>`, one
//! element per message (§3.3.3), restarts (§3.3.2), and the deadlines of
//! an upgraded connection that never opens or dribbles. `slow.test` leads
//! to a server that accepts and never answers, so its stream is never up.
//! Limits here: `<open/>` within 500 ms, frames whole within 300 ms, a
//! server ping after 150 ms of silence, 4 KiB held before the stream is up.
//!
//! Covered elsewhere and not repeated: `<close/>` answered with `<close/>`
//! (tests/websocket.rs `clean_close_answers_close_and_ends_the_server_stream`).

use std::time::Duration;

use crate::corpus::{
    self, case, made, ws_closed, ws_error, ws_frame, Backend, Begin, Case, Outcome, Server, Step,
    WsProbe,
};
use crate::support::ws_client::{client_frame, OP_CONTINUATION, OP_TEXT};

use Begin::{LoggedIn, Nothing};
use Step::{Echo, Pause, Text};

const OPEN_SLOW: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='slow.test' version='1.0'/>";
const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";
const PRESENCE: &str = "<presence xmlns='jabber:client'/>";

const TIMEOUT: Outcome = ws_error(1008, "connection-timeout", Server::None);

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = &[
    // One element per message (§3.3.3).
    case("two elements in one message", probe(LoggedIn, &[Text("<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>")]), ws_error(1007, "bad-format", Server::Closed)),
    case("an element with text after it", probe(LoggedIn, &[Text("<presence xmlns='jabber:client'/>junk")]), ws_error(1007, "bad-format", Server::Closed)),
    // Before <open/> (§3.3.2).
    case("stanza before <open/>", probe(Nothing, &[Text(PRESENCE)]), ws_error(1007, "not-authorized", Server::None)),
    case("<open/> in another namespace", probe(Nothing, &[Text("<open xmlns='jabber:client' to='localhost' version='1.0'/>")]), ws_error(1007, "not-authorized", Server::None)),
    case("<open/> with a namespace prefix", probe(Nothing, &[Text("<f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")]), ws_error(1007, "not-authorized", Server::None)),
    case("<close/> before <open/>", probe(Nothing, &[Text(CLOSE)]), ws_closed(1000, Server::None)),
    case("<open/> without to", probe(Nothing, &[Text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' version='1.0'/>")]), ws_error(1007, "host-unknown", Server::None)),
    case("<open/> with an empty to", probe(Nothing, &[Text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='' version='1.0'/>")]), ws_error(1007, "host-unknown", Server::None)),
    case("<open/> to a name with a space", probe(Nothing, &[Text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='local host' version='1.0'/>")]), ws_error(1007, "host-unknown", Server::None)),
    case("<open/> to a name with an empty label", probe(Nothing, &[Text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='local..host' version='1.0'/>")]), ws_error(1007, "host-unknown", Server::None)),
    case("XML declaration and <open/> in one message", probe(Nothing, &[Text("<?xml version='1.0'?><open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")]), ws_error(1007, "bad-format", Server::None)),
    case("a stream header instead of <open/>", probe(Nothing, &[Text("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")]), ws_error(1007, "bad-format", Server::None)),
    // Restarts (§3.3.2, RFC 6120 §4.3.3).
    case("restart to another domain", probe(LoggedIn, &[Text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='other.test' version='1.0'/>")]), ws_error(1007, "host-unknown", Server::Closed)),
    case("restart to the same domain, case and dot changed", probe(LoggedIn, &[Text("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='LocalHost.' version='1.0'/>"), Echo]), Outcome::Served),
    case("restart before the features", slow(&[Text(OPEN_SLOW), Pause(100), Text(OPEN_SLOW)]), ws_error(1008, "policy-violation", Server::Closed)),
    case("too much data before the stream is up", slow(&[Text(OPEN_SLOW), Pause(100), made(|| early(3))]), ws_error(1008, "policy-violation", Server::Closed)),
    case("data within the limit before the stream is up", slow(&[Text(OPEN_SLOW), Pause(100), made(|| early(1)), Text(CLOSE)]), ws_closed(1000, Server::Closed)),
    // Framing-namespace elements after the stream is up.
    case("a stanza in the framing namespace is relayed", probe(LoggedIn, &[Text("<message xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"), Echo]), Outcome::Served),
    case("a stanza after <close/>", probe(LoggedIn, &[Text(CLOSE), Text(PRESENCE)]), ws_closed(1000, Server::Closed)),
    // Deadlines: <open/> within open_timeout, pings or not.
    case("never opening, answering pings", probe(Nothing, &[]), TIMEOUT),
    case("never opening, silent", probe(Nothing, &[Pause(700)]), TIMEOUT),
    case("white space instead of <open/>", probe(Nothing, &[Text(" "), Pause(150), Text(" "), Pause(150), Text(" "), Pause(150), Text(" "), Pause(150)]), TIMEOUT),
    // The fuzzers' <open/>s (fuzz/corpus/websocket_open), through the whole
    // server, then <close/>. A stanza before authentication reaches the
    // server, which ends the stream (not-authorized), relayed as it came.
    case("seed close-first", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/close-first")), ws_closed(1000, Server::None)),
    case("seed junk-and-bad-utf8", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/junk-and-bad-utf8")), ws_frame(1007, Server::None)),
    case("seed open", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/open")), ws_closed(1000, Server::Closed)),
    case("seed open-bad-escape", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/open-bad-escape")), ws_error(1007, "restricted-xml", Server::None)),
    case("seed open-fragmented-escaped", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/open-fragmented-escaped")), ws_error(1007, "host-unknown", Server::None)),
    case("seed open-without-to", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/open-without-to")), ws_error(1007, "host-unknown", Server::None)),
    case("seed prefixed-open-connects", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/prefixed-open-connects")), ws_error(1007, "not-authorized", Server::None)),
    case("seed restart-same-and-other", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/restart-same-and-other")), ws_error(1007, "host-unknown", Server::Closed)),
    case("seed stanza-before-open", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/stanza-before-open")), ws_error(1007, "not-authorized", Server::None)),
    case("seed two-opens-connecting", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/two-opens-connecting")), ws_error(1008, "policy-violation", Server::Dropped)),
    case("seed whitespace-then-open-then-stanza", Probe::OpenSeed(include_bytes!("../../fuzz/corpus/websocket_open/whitespace-then-open-then-stanza")), ws_error(1000, "not-authorized", Server::Ended)),
    case("<open/> dribbled a byte at a time", probe(Nothing, &[Step::Make(|| client_frame(true, OP_TEXT, OPEN_SLOW.as_bytes()), 40)]), TIMEOUT),
];

pub enum Probe {
    Ws(WsProbe),
    /// A `websocket_open` fuzz input after the upgrade: its messages (split
    /// at 0xFF bytes), each in two fragments (selector bit 0), at once or
    /// each given the time for the server's features to come (bit 1);
    /// then, that time later, `<close/>`.
    OpenSeed(&'static [u8]),
}

const fn probe(begin: Begin, steps: &'static [Step<'static>]) -> Probe {
    Probe::Ws(corpus::probe(begin, steps))
}

/// A session to `slow.test`, whose server never answers.
const fn slow(steps: &'static [Step<'static>]) -> Probe {
    Probe::Ws(corpus::probe_to("slow.test", Nothing, steps))
}

/// A `websocket_open` input's messages as frames on the wire: in one
/// write, or one write each with the time for the server's features after
/// it (selector bit 1).
fn open_seed(data: &[u8]) -> Vec<Vec<u8>> {
    let Some((&selector, input)) = data.split_first() else {
        return Vec::new();
    };
    let messages = input.split(|&b| b == 0xFF).map(|text| match selector & 1 {
        0 => client_frame(true, OP_TEXT, text),
        _ => {
            let (first, rest) = text.split_at(text.len() / 2);
            let mut frames = client_frame(false, OP_TEXT, first);
            frames.extend(client_frame(true, OP_CONTINUATION, rest));
            frames
        }
    });
    match selector & 2 {
        0 => vec![messages.flatten().collect()],
        _ => messages.collect(),
    }
}

/// `count` messages of about 2,000 bytes each, to nobody.
fn early(count: usize) -> Vec<u8> {
    let stanza = format!(
        "<message xmlns='jabber:client' to='nobody@localhost'><body>{}</body></message>",
        "x".repeat(1900)
    );
    client_frame(true, OP_TEXT, stanza.as_bytes()).repeat(count)
}

pub fn run() {
    let (stub, mut config) = corpus::stub_and_config();
    let silent = corpus::silent_route(&mut config, "slow.test");
    config.backend.max_buffer_bytes = 4096;
    config.websocket.open_timeout = Duration::from_millis(500);
    config.websocket.ping_interval = Some(Duration::from_millis(150));
    config.websocket.pong_timeout = Duration::from_secs(3);
    config.http.read_timeout = Duration::from_millis(300);
    let backends = [Backend::Stub(&stub), Backend::Raw(&silent)];
    corpus::run("rfc7395", config, CASES, |addr, probe| match probe {
        Probe::Ws(p) => corpus::ws_outcome(addr, &backends, p.to, p.begin, p.steps),
        Probe::OpenSeed(data) => {
            let writes = open_seed(data);
            let mut steps: Vec<Step> = writes
                .iter()
                .flat_map(|w| [Step::Raw(w, 0), Pause(100)])
                .collect();
            steps.push(Text(CLOSE));
            corpus::ws_outcome(addr, &backends, "localhost", Nothing, &steps)
        }
    });
}
