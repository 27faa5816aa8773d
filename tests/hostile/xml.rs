//! XML bombs and limits (RFC 6120 §11: restricted XML; the `[xml]`
//! limits), each sent by a logged-in client over both transports: as one
//! WebSocket message, and inside the `<body/>` of a live BOSH session
//! (whose end must then be at once, with its server stream: a body too
//! broken to parse still names its sid). Limits here: depth 16, 16
//! attributes, 4 KiB elements. The BOSH `<body/>` is an element too, so a
//! stanza at a limit over WebSocket is over it inside a body.
//!
//! Covered elsewhere and not repeated: a DOCTYPE with an entity and
//! garbage over WebSocket (tests/websocket.rs
//! `bad_input_ends_only_its_own_session`); a malformed creation body
//! (tests/bosh.rs `malformed_body_is_bad_request`); every framer refusal
//! split at every byte (core/src/xml/tests.rs) and the seeds replayed on
//! the framer alone (core/tests/fuzz_corpus.rs).

use std::net::SocketAddr;
use std::time::Duration;

use crate::corpus::{
    self, over_both, terminate, ws_error, ws_frame, BStep, Backend, Begin, Case, Outcome, Server,
    Step, Via,
};
use crate::support::ws_client::{client_frame, OP_TEXT};
use crate::support::StubServer;

use Outcome::Served;
use Payload::{Is, Made, Slowly};

#[derive(Clone, Copy, Debug)]
pub enum Payload {
    Is(&'static [u8]),
    /// Sent a byte at a time, 1 ms apart.
    Slowly(&'static [u8]),
    Made(fn() -> Vec<u8>),
}

/// A payload over one transport.
#[derive(Clone, Copy, Debug)]
pub struct XmlProbe {
    payload: Payload,
    via: Via,
}

const RESTRICTED: Outcome = ws_error(1007, "restricted-xml", Server::Closed);
const MALFORMED: Outcome = ws_error(1007, "not-well-formed", Server::Closed);
const BAD_FORMAT: Outcome = ws_error(1007, "bad-format", Server::Closed);
const OVER: Outcome = ws_error(1008, "policy-violation", Server::Closed);
/// The WebSocket layer refuses a text frame that is not UTF-8.
const NOT_UTF8: Outcome = ws_frame(1007, Server::Dropped);
/// The body refused, the session it named released with its stream.
const BAD_REQUEST: Outcome = terminate("bad-request", Server::Closed);
/// Text between the stanzas of a body is relayed as it is; the server
/// refuses it with a stream error, and the client hears that.
const SERVER_REFUSES: Outcome = terminate("remote-stream-error", Server::Ended);
/// Refused before it is read: the session goes on.
const TOO_LARGE: Outcome = corpus::closing(&[413]);

const fn xml(payload: Payload, via: Via) -> XmlProbe {
    XmlProbe { payload, via }
}

#[rustfmt::skip]
pub const CASES: &[Case<XmlProbe>] = over_both! {
    // DTDs and entities: refused, never expanded.
    "DOCTYPE with an internal entity", xml(Is(b"<!DOCTYPE message [<!ENTITY a 'b'>]><message xmlns='jabber:client'>&a;</message>")) => _, BAD_REQUEST;
    "billion laughs", xml(Is(LAUGHS)) => RESTRICTED, BAD_REQUEST;
    "external entity", xml(Is(b"<!DOCTYPE message [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]><message xmlns='jabber:client'><body>&xxe;</body></message>")) => RESTRICTED, BAD_REQUEST;
    "parameter entity", xml(Is(b"<!DOCTYPE message [<!ENTITY % p SYSTEM 'http://192.0.2.1/x.dtd'> %p;]><message xmlns='jabber:client'/>")) => RESTRICTED, BAD_REQUEST;
    "DOCTYPE alone before a stanza", xml(Is(b"<!DOCTYPE message><message xmlns='jabber:client'/>")) => RESTRICTED, BAD_REQUEST;
    "undeclared entity in text", xml(Is(b"<message xmlns='jabber:client'><body>&lol;</body></message>")) => RESTRICTED, BAD_REQUEST;
    "undeclared entity in an attribute", xml(Is(b"<message xmlns='jabber:client' to='&lol;'/>")) => RESTRICTED, BAD_REQUEST;
    "HTML entity", xml(Is(b"<message xmlns='jabber:client'><body>a&nbsp;b</body></message>")) => RESTRICTED, BAD_REQUEST;
    // Comments and processing instructions.
    "comment inside a stanza", xml(Is(b"<message xmlns='jabber:client'><!-- hi --></message>")) => RESTRICTED, BAD_REQUEST;
    "comment before a stanza", xml(Is(b"<!-- hi --><message xmlns='jabber:client'/>")) => RESTRICTED, BAD_REQUEST;
    "processing instruction", xml(Is(b"<message xmlns='jabber:client'><?php echo 1; ?></message>")) => RESTRICTED, BAD_REQUEST;
    "stylesheet instruction before a stanza", xml(Is(b"<?xml-stylesheet href='x.xsl'?><message xmlns='jabber:client'/>")) => RESTRICTED, BAD_REQUEST;
    "XML declaration inside a stanza", xml(Is(b"<message xmlns='jabber:client'><?xml version='1.0'?></message>")) => RESTRICTED, BAD_REQUEST;
    // What XMPP allows.
    "CDATA section", xml(Is(b"<message xmlns='jabber:client' to='nobody@localhost'><body><![CDATA[<b>&amp;</b>]]></body></message>")) => Served, Served;
    "predefined entities and character references", xml(Is(b"<message xmlns='jabber:client' to='nobody@localhost'><body>&lt;&gt;&amp;&apos;&quot;&#x263A;&#9731;</body></message>")) => Served, Served;
    // Characters.
    "character reference to NUL", xml(Is(b"<message xmlns='jabber:client'><body>&#0;</body></message>")) => MALFORMED, BAD_REQUEST;
    "character reference beyond Unicode", xml(Is(b"<message xmlns='jabber:client'><body>&#x110000;</body></message>")) => MALFORMED, BAD_REQUEST;
    "character reference to a surrogate", xml(Is(b"<message xmlns='jabber:client'><body>&#xD800;</body></message>")) => MALFORMED, BAD_REQUEST;
    "raw NUL", xml(Is(b"<message xmlns='jabber:client'><body>a\0b</body></message>")) => MALFORMED, BAD_REQUEST;
    "raw control character", xml(Is(b"<message xmlns='jabber:client'><body>a\x01b</body></message>")) => MALFORMED, BAD_REQUEST;
    "invalid UTF-8 byte", xml(Is(b"<message xmlns='jabber:client'><body>a\xffb</body></message>")) => NOT_UTF8, BAD_REQUEST;
    "overlong UTF-8", xml(Is(b"<message xmlns='jabber:client'><body>a\xc0\xafb</body></message>")) => NOT_UTF8, BAD_REQUEST;
    "UTF-8 encoded surrogate", xml(Is(b"<message xmlns='jabber:client'><body>a\xed\xa0\x80b</body></message>")) => NOT_UTF8, BAD_REQUEST;
    "character cut short", xml(Is(b"<message xmlns='jabber:client'><body>caf\xc3</body></message>")) => NOT_UTF8, BAD_REQUEST;
    "multi-byte characters split between reads", xml(Slowly("<message xmlns='jabber:client' to='nobody@localhost'><body>café ☺ 𝄞 日本</body></message>".as_bytes())) => Served, Served;
    "byte order mark before a stanza", xml(Is(b"\xef\xbb\xbf<message xmlns='jabber:client' to='nobody@localhost'/>")) => BAD_FORMAT, SERVER_REFUSES;
    // Limits.
    "nesting at max_depth", xml(Made(|| nest(16))) => Served, BAD_REQUEST;
    "nesting past max_depth", xml(Made(|| nest(17))) => OVER, BAD_REQUEST;
    "nesting 10,000 deep", xml(Made(|| nest(10_000))) => OVER, TOO_LARGE;
    "max_attributes on one element", xml(Made(|| attributes(16))) => Served, Served;
    "one attribute past max_attributes", xml(Made(|| attributes(17))) => OVER, BAD_REQUEST;
    "10,000 attributes", xml(Made(|| attributes(10_000))) => OVER, TOO_LARGE;
    "a stanza of 3,700 bytes", xml(Made(|| sized(3_700))) => Served, Served;
    "a stanza of max_element_bytes", xml(Made(|| sized(4_096))) => Served, BAD_REQUEST;
    "a stanza one byte past max_element_bytes", xml(Made(|| sized(4_097))) => OVER, BAD_REQUEST;
    "a stanza of a megabyte", xml(Made(|| sized(1 << 20))) => ws_frame(1009, Server::Dropped), TOO_LARGE;
    "attribute value of 5,000 bytes", xml(Made(|| format!("<message xmlns='jabber:client' a='{}'/>", "v".repeat(5_000)).into_bytes())) => OVER, BAD_REQUEST;
    "element name of 5,000 bytes", xml(Made(|| format!("<{}/>", "n".repeat(5_000)).into_bytes())) => OVER, BAD_REQUEST;
    // Well-formedness.
    "mismatched end tag", xml(Is(b"<message xmlns='jabber:client'><body></message>")) => MALFORMED, BAD_REQUEST;
    "duplicate attribute", xml(Is(b"<message xmlns='jabber:client' to='a@b' to='c@d'/>")) => MALFORMED, BAD_REQUEST;
    "unquoted attribute", xml(Is(b"<message xmlns='jabber:client' to=a@b/>")) => MALFORMED, BAD_REQUEST;
    "< in an attribute value", xml(Is(b"<message xmlns='jabber:client' to='a<b'/>")) => MALFORMED, BAD_REQUEST;
    "end tag without a start", xml(Is(b"</message>")) => MALFORMED, BAD_REQUEST;
    "unclosed element", xml(Is(b"<message xmlns='jabber:client'>")) => BAD_FORMAT, BAD_REQUEST;
    "text outside any element", xml(Is(b"hello")) => BAD_FORMAT, SERVER_REFUSES;
    // The fuzzers' seeds (fuzz/corpus/xml_framer), through the whole server.
    "seed mismatch", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/mismatch")))) => MALFORMED, BAD_REQUEST;
    "seed restricted", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/restricted")))) => RESTRICTED, BAD_REQUEST;
    "seed tiny-limits", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/tiny-limits")))) => Served, Served;
    "seed crash-utf8-vs-control-char", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/crash-utf8-vs-control-char")))) => NOT_UTF8, BAD_REQUEST;
    "seed fragments", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/fragments")))) => BAD_FORMAT, BAD_REQUEST;
    "seed stream-session", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/stream-session")))) => BAD_FORMAT, BAD_REQUEST;
    "seed stream-error", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/stream-error")))) => BAD_FORMAT, BAD_REQUEST;
    "seed crash-bom-stream-header-cut", xml(Is(seed(include_bytes!("../../fuzz/corpus/xml_framer/crash-bom-stream-header-cut")))) => BAD_FORMAT, BAD_REQUEST;
};

const LAUGHS: &[u8] = b"<!DOCTYPE lolz [<!ENTITY lol 'lol'>\
<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\
<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\
<!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\
<!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\
<!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\
<!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\
<!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\
<!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>]>\
<message xmlns='jabber:client'><body>&lol9;</body></message>";

const fn seed(bytes: &'static [u8]) -> &'static [u8] {
    // The first byte of a fuzz input selects the framer's mode and limits.
    match bytes.split_first() {
        Some((_, input)) => input,
        None => bytes,
    }
}

/// A message to nobody `depth` elements deep, itself included.
fn nest(depth: usize) -> Vec<u8> {
    let inner = depth - 1;
    format!(
        "<message xmlns='jabber:client' to='nobody@localhost'>{}{}</message>",
        "<x>".repeat(inner),
        "</x>".repeat(inner)
    )
    .into_bytes()
}

/// A message to nobody with `count` attributes, `xmlns` and `to` among them.
fn attributes(count: usize) -> Vec<u8> {
    let extra: String = (2..count).map(|n| format!(" a{n}='v'")).collect();
    format!("<message xmlns='jabber:client' to='nobody@localhost'{extra}/>").into_bytes()
}

/// A message to nobody of exactly `len` bytes.
fn sized(len: usize) -> Vec<u8> {
    let head = "<message xmlns='jabber:client' to='nobody@localhost'><body>";
    let tail = "</body></message>";
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len())).into_bytes()
}

fn observe(addr: SocketAddr, stub: &StubServer, probe: &XmlProbe) -> Outcome {
    let (payload, pace) = match probe.payload {
        Is(bytes) => (bytes.to_vec(), 0),
        Slowly(bytes) => (bytes.to_vec(), 1),
        Made(make) => (make(), 0),
    };
    match probe.via {
        Via::WebSocket => {
            let frame = client_frame(true, OP_TEXT, &payload);
            let steps = [Step::Raw(&frame, pace), Step::Echo];
            corpus::ws_outcome(
                addr,
                &[Backend::Stub(stub)],
                "localhost",
                Begin::LoggedIn,
                &steps,
            )
        }
        Via::Bosh => {
            let mut body =
                b"<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'>"
                    .to_vec();
            body.extend_from_slice(&payload);
            body.extend_from_slice(b"{echo}</body>");
            let steps = [BStep::Post(&body, pace)];
            corpus::bosh_outcome(
                addr,
                &[Backend::Stub(stub)],
                "localhost",
                Begin::LoggedIn,
                &steps,
            )
        }
    }
}

pub fn run() {
    let (stub, mut config) = corpus::stub_and_config();
    config.xml.max_depth = 16;
    config.xml.max_attributes = 16;
    config.xml.max_element_bytes = 4096;
    config.http.read_timeout = Duration::from_secs(2);
    corpus::run("xml", config, CASES, |addr, probe| {
        observe(addr, &stub, probe)
    });
}
