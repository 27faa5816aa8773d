//! BOSH games (XEP-0124, XEP-0206): sids and rids that are not the
//! session's, creation bodies that are not `<body/>`, overactivity, more
//! streams than allowed, routes not allowed, `stream_attrs` that would
//! break a stream header, a pause longer than `max_pause`, JSONP callbacks
//! that are not plain identifiers, and bodies too broken to parse that
//! name a live session: it must end at once, with its server stream.
//! `slow.test` leads to a server that accepts and never answers. Limits
//! here: `wait` 1 s, `max_pause` 1 s, 2 streams, routes to
//! `xmpp:localhost:5222` only, 4 KiB held before a stream is up.
//!
//! Covered elsewhere and not repeated (tests/bosh.rs): an unknown sid, a
//! rid 100 past the window, a repeated rid answered from the kept
//! responses, a terminate's payload delivered before the close, polling a
//! `hold='0'` session too fast, a route other than the allowed one, an
//! `alert(1)` callback, a legacy client's 404.

use std::time::Duration;

use crate::corpus::{
    self, answers, case, post, terminate, terminated, BStep, Backend, Begin, BoshProbe, Case,
    Outcome, Server,
};

use BStep::{Echo, Pause};
use Begin::{Created, LoggedIn, Nothing};

pub enum Probe {
    Bosh(BoshProbe),
    /// A raw HTTP request on a connection of its own.
    Raw(&'static [u8]),
}

const fn created(steps: &'static [BStep<'static>]) -> Probe {
    Probe::Bosh(corpus::probe(Created, steps))
}

const fn logged_in(steps: &'static [BStep<'static>]) -> Probe {
    Probe::Bosh(corpus::probe(LoggedIn, steps))
}

const fn nothing(steps: &'static [BStep<'static>]) -> Probe {
    Probe::Bosh(corpus::probe(Nothing, steps))
}

/// A session to `slow.test`, whose server never answers.
const fn slow(steps: &'static [BStep<'static>]) -> Probe {
    Probe::Bosh(corpus::probe_to("slow.test", Created, steps))
}

/// The body refused, the session it named released with its stream.
const RELEASED: Outcome = terminate("bad-request", Server::Closed);
/// Refused with `condition`, no session created.
const fn refused(condition: &'static str) -> Outcome {
    terminate(condition, Server::None)
}

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = &[
    // sids and rids (XEP-0124 §7.1, §14).
    case("a sid one character longer", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}x'/>")]), terminate("item-not-found", Server::Open)),
    case("an empty sid", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid=''/>")]), terminate("item-not-found", Server::Open)),
    case("a rid just past the window", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{ahead}' sid='{sid}'/>")]), terminate("item-not-found", Server::Closed)),
    case("a rid repeated beyond the kept responses", logged_in(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='5000' sid='{sid}'/>")]), terminate("item-not-found", Server::Closed)),
    case("an early rid waits for the one before it", logged_in(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{skip}' sid='{sid}'>{echo}</body>"), post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'/>")]), Outcome::Served),
    case("no rid", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' sid='{sid}'/>")]), RELEASED),
    case("a rid that is not a number", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='one' sid='{sid}'/>")]), RELEASED),
    case("a rid beyond 2^53", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='9007199254740992' sid='{sid}'/>")]), RELEASED),
    case("a negative rid", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='-1' sid='{sid}'/>")]), RELEASED),
    // Creation (XEP-0124 §7.1, XEP-0206 §6).
    case("creation without rid", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' to='localhost' wait='1' hold='1' ver='1.11'/>")]), refused("bad-request")),
    case("creation without to", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' wait='1' hold='1' ver='1.11'/>")]), refused("improper-addressing")),
    case("creation to a name with an empty label", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='local..host' wait='1' hold='1' ver='1.11'/>")]), refused("improper-addressing")),
    case("creation with the allowed route in upper case", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost' route='XMPP:LOCALHOST:5222' wait='1' hold='1' ver='1.11'/>")]), refused("host-unknown")),
    case("creation with the allowed route on another port", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost' route='xmpp:localhost:5223' wait='1' hold='1' ver='1.11'/>")]), refused("host-unknown")),
    case("creation body that is an <iq/>", nothing(&[post("<iq xmlns='jabber:client' rid='{rid}' to='localhost'/>")]), refused("bad-request")),
    case("creation body without its namespace", nothing(&[post("<body rid='{rid}' to='localhost' wait='1' hold='1' ver='1.11'/>")]), refused("bad-request")),
    case("creation body in another namespace", nothing(&[post("<body xmlns='jabber:client' rid='{rid}' to='localhost' wait='1' hold='1' ver='1.11'/>")]), refused("bad-request")),
    case("two bodies", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost'/><body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost'/>")]), refused("bad-request")),
    case("a body with garbage after it", nothing(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost' wait='1' hold='1' ver='1.11'/>garbage")]), refused("bad-request")),
    case("an empty POST", nothing(&[post("")]), refused("bad-request")),
    case("creation with a DOCTYPE", nothing(&[post("<!DOCTYPE body [<!ENTITY a 'b'>]><body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' to='localhost' wait='1' hold='1' ver='1.11'/>")]), refused("bad-request")),
    // Policing (XEP-0124 §11, §19).
    case("an empty request while one is held", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'/>"), post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'/>")]), terminate("policy-violation", Server::Closed)),
    case("a stream beyond max_streams", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}' to='localhost'/>"), post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}' to='localhost'/>")]), terminate("policy-violation", Server::Closed)),
    case("a stream the session does not have", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}' stream='nosuch'/>")]), terminate("item-not-found", Server::Closed)),
    case("a pause beyond max_pause", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}' pause='3600'/>"), Pause(1_500), post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'/>")]), terminated(Server::Dropped)),
    // stream_attrs (node-xmpp-bosh's), on a restart.
    case("stream_attrs that are not JSON", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' stream_attrs='not json'/>")]), RELEASED),
    case("stream_attrs declaring a namespace", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' stream_attrs='{&quot;xmlns&quot;:&quot;jabber:server&quot;}'/>")]), RELEASED),
    case("stream_attrs changing the version", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' stream_attrs='{&quot;version&quot;:&quot;0.9&quot;}'/>")]), RELEASED),
    case("stream_attrs with an object value", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' stream_attrs='{&quot;to&quot;:{&quot;a&quot;:1}}'/>")]), RELEASED),
    case("stream_attrs name starting with a digit", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' stream_attrs='{&quot;1to&quot;:&quot;x&quot;}'/>")]), RELEASED),
    case("stream_attrs name with a space", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' stream_attrs='{&quot;a b&quot;:&quot;x&quot;}'/>")]), RELEASED),
    case("restart naming another domain keeps the session's", logged_in(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true' to='other.test'/>"), Echo]), Outcome::Served),
    // A body too broken to parse that names a live session ends it at once.
    case("an unclosed stanza naming a live sid", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'><message>")]), RELEASED),
    case("a truncated body naming a live sid", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}'")]), RELEASED),
    case("a body in another namespace naming a live sid", created(&[post("<body xmlns='jabber:client' rid='{rid}' sid='{sid}'/>")]), RELEASED),
    case("a live sid in double quotes in a broken body", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid=\"{sid}\"><")]), RELEASED),
    case("a live sid after a line break in a broken body", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}'\nsid='{sid}'><")]), RELEASED),
    case("a broken body over GET naming a live sid", created(&[BStep::Http("GET /http-bind?data=%3Cbody+rid%3D%27{rid}%27+sid%3D%27{sid}%27%3E%3C HTTP/1.1\r\nHost: x\r\n\r\n")]), RELEASED),
    case("a terminate whose payload is not well-formed", created(&[post("<body xmlns='http://jabber.org/protocol/httpbind' rid='{rid}' sid='{sid}' type='terminate'><presence></body>")]), RELEASED),
    // Before the stream is up.
    case("too much data before the stream is up", slow(&[BStep::Make(|| format!("<body xmlns='http://jabber.org/protocol/httpbind' rid='{{rid}}' sid='{{sid}}'><message xmlns='jabber:client' to='nobody@slow.test'><body>{}</body></message></body>", "x".repeat(5_000)).into_bytes())]), terminate("policy-violation", Server::Closed)),
    case("restart before the features", slow(&[post("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' sid='{sid}' xmpp:restart='true'/>")]), terminate("bad-request", Server::Closed)),
    // The fuzzers' bodies (fuzz/corpus/bosh_body), posted as they are: their
    // sids are none of the server's, their domains not served.
    case("seed creation", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/creation")), 0)]), refused("host-unknown")),
    case("seed escapes", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/escapes")), 0)]), refused("item-not-found")),
    case("seed payload-declaration", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/payload-declaration")), 0)]), refused("item-not-found")),
    case("seed prefixed-body", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/prefixed-body")), 0)]), refused("bad-request")),
    case("seed restart-stream-attrs", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/restart-stream-attrs")), 0)]), refused("item-not-found")),
    case("seed rid-too-big", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/rid-too-big")), 0)]), refused("bad-request")),
    case("seed terminate-payload", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/terminate-payload")), 0)]), refused("item-not-found")),
    case("seed tiny-limits", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/tiny-limits")), 0)]), refused("improper-addressing")),
    case("seed trailing-garbage", nothing(&[BStep::Post(seed(include_bytes!("../../fuzz/corpus/bosh_body/trailing-garbage")), 0)]), refused("bad-request")),
    // GET and JSONP (node-xmpp-bosh's extras).
    case("GET without data", Probe::Raw(b"GET /http-bind HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("GET with data that does not decode", Probe::Raw(b"GET /http-bind?data=%zz HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("callback that is a dotted path", Probe::Raw(b"GET /http-bind?callback=jQuery.cb_2&data=%3Cbody+xmlns%3D%27http://jabber.org/protocol/httpbind%27+rid%3D%279001%27+to%3D%27localhost%27+wait%3D%271%27+hold%3D%271%27+ver%3D%271.11%27/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[200], false)),
    case("callback that closes a script", Probe::Raw(b"GET /http-bind?callback=%3C/script%3E&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("callback of 65 characters", Probe::Raw(b"GET /http-bind?callback=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("an empty callback", Probe::Raw(b"GET /http-bind?callback=&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("callback with a letter outside ASCII", Probe::Raw(b"GET /http-bind?callback=caf%C3%A9&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("callback with a semicolon", Probe::Raw(b"GET /http-bind?callback=a%3Bb&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("callback starting with a digit", Probe::Raw(b"GET /http-bind?callback=1a&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
    case("callback with an empty segment", Probe::Raw(b"GET /http-bind?callback=a..b&data=%3Cbody/%3E HTTP/1.1\r\nHost: x\r\n\r\n"), answers(&[400], false)),
];

const fn seed(bytes: &'static [u8]) -> &'static [u8] {
    // The first byte of a fuzz input selects the parser's limits.
    match bytes.split_first() {
        Some((_, input)) => input,
        None => bytes,
    }
}

pub fn run() {
    let (stub, mut config) = corpus::stub_and_config();
    let silent = corpus::silent_route(&mut config, "slow.test");
    config.backend.max_buffer_bytes = 4096;
    config.bosh.max_wait = Duration::from_secs(1);
    config.bosh.max_pause = Duration::from_secs(1);
    config.bosh.max_streams = 2;
    config.bosh.allowed_routes = vec!["xmpp:localhost:5222".into()];
    config.backend.allowed_domains = vec!["localhost".into(), "slow.test".into()];
    config.http.idle_timeout = Duration::from_millis(150);
    corpus::run("bosh", config, CASES, |addr, probe| match probe {
        Probe::Bosh(p) => corpus::bosh_outcome(
            addr,
            &[Backend::Stub(&stub), Backend::Raw(&silent)],
            p.to,
            p.begin,
            p.steps,
        ),
        Probe::Raw(request) => corpus::http_outcome(addr, &[corpus::Part::Bytes(request)]),
    });
}
