//! `websocket_open`: a WebSocket client's [`Session`] fed client text
//! frames, mostly `<open/>` variants (RFC 7395 §3.4). Input: one selector
//! byte (bit 0: each message in two fragments cut where the data says,
//! bit 1: after the Connect command the backend connects and sends its
//! features, so that later `<open/>`s are stream restarts), then the texts
//! of the messages separated by 0xFF bytes (never part of UTF-8).
//!
//! Invariants: no panic; each message's frames fed whole or in chunks
//! whose sizes follow from the data give the same client output, backend
//! output and commands. At most one Connect, for the unescaped `to` of the
//! framing `<open/>` that asked (the first element of that message). Every
//! `<open/>` the session sends is well-formed XML in the framing namespace
//! whose `from` reads back as that domain (escaped as needed) and whose
//! `id` is the stream id. Before the first Connect, a message of
//! whitespace is ignored and any other message ends the session: a text
//! that is UTF-8 within the limit ends it with a stream error (or the
//! `<close/>` reply, for `<close/>`). An ended session says nothing more.

use std::time::{Duration, Instant};

use super::common;
use super::common::{FIN, OP_TEXT};
use switchboard_core::backend;
use switchboard_core::session::{Command, End, Session, Settings};
use switchboard_core::websocket::{self, CLOSE_ELEMENT, NS_FRAMING};
use switchboard_core::xml;

const STREAM_ID: &str = "s&id'1";
const MAX_MESSAGE: usize = 1024;
const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='srv1' version='1.0'>";
const FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";

#[derive(Debug, PartialEq, Eq)]
struct Run {
    client: Vec<u8>,
    backend: Vec<u8>,
    commands: Vec<Command>,
}

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let fragment = selector & 1 != 0;
    let ready = selector & 2 != 0;
    let messages: Vec<&[u8]> = input.split(|&b| b == 0xFF).collect();
    let frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|message| frames(message, fragment))
        .collect();
    let whole = run(&messages, &frames, ready, |bytes| vec![bytes]);
    let chunked = run(&messages, &frames, ready, common::chunks);
    assert_eq!(whole, chunked, "whole vs chunked");
}

/// One text message, in one frame or in two fragments (RFC 6455 §5.4).
fn frames(message: &[u8], fragment: bool) -> Vec<u8> {
    let mask = common::mask(message);
    if !fragment {
        return common::client_frame(FIN | OP_TEXT, message, mask);
    }
    let (a, b) = message.split_at(common::point(message));
    let mut out = common::client_frame(OP_TEXT, a, mask);
    out.extend(common::client_frame(FIN, b, mask));
    out
}

fn settings() -> Settings {
    Settings {
        websocket: websocket::Limits {
            max_message_bytes: MAX_MESSAGE,
        },
        xml: xml::Limits::default(),
        ping_interval: None,
        pong_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(5),
        max_buffer_bytes: 256,
        open_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
    }
}

fn run<'a>(
    messages: &[&[u8]],
    frames: &'a [Vec<u8>],
    ready: bool,
    split: impl Fn(&'a [u8]) -> Vec<&'a [u8]>,
) -> Run {
    let now = Instant::now();
    let mut session = Session::new(settings(), now, STREAM_ID.into());
    let mut commands = Vec::new();
    let mut domain: Option<String> = None;
    let mut client_seen = 0;
    for (message, frame) in messages.iter().zip(frames) {
        let ended_before = session.is_ended();
        let connected_before = domain.is_some();
        let commands_before = commands.len();
        for piece in split(frame) {
            session.handle_client_input(now, piece);
        }
        commands.extend(std::iter::from_fn(|| session.poll_command()));
        let texts = server_texts(
            session
                .client_output()
                .get(client_seen..)
                .unwrap_or_default(),
        );
        client_seen = session.client_output().len();
        if ended_before {
            assert_eq!(commands.len(), commands_before, "commands after the end");
            assert!(texts.is_empty(), "texts after the end: {texts:?}");
            continue;
        }
        for command in &commands[commands_before..] {
            if let Command::Connect { domain: asked } = command {
                assert_eq!(domain, None, "a second Connect");
                assert_eq!(requested_domain(message).as_ref(), Some(asked));
                domain = Some(asked.clone());
                if ready {
                    connect_backend(&mut session, now, asked);
                }
            }
        }
        for text in texts.iter().filter(|t| t.starts_with("<open")) {
            check_reply(text, domain.as_deref().unwrap_or_default());
        }
        if !connected_before && domain.is_none() {
            check_refused(&session, message, &commands[commands_before..], &texts);
        }
    }
    Run {
        client: session.client_output().to_vec(),
        backend: session.backend_output().to_vec(),
        commands,
    }
}

fn connect_backend(session: &mut Session, now: Instant, domain: &str) {
    let settings = backend::Settings {
        domain: domain.to_owned(),
        lang: "en".to_owned(),
        tls: common::tls(),
        plaintext_allowed: true,
        skip_optional_tls: false,
        xml: xml::Limits::default(),
    };
    session.backend_connected(now, settings);
    session.handle_backend_input(format!("{SERVER_HEADER}{FEATURES}").as_bytes());
}

/// A message before any Connect that did not connect: whitespace is
/// ignored, anything else ends the session.
fn check_refused(session: &Session, message: &[u8], commands: &[Command], texts: &[String]) {
    let text = std::str::from_utf8(message)
        .ok()
        .filter(|_| message.len() <= MAX_MESSAGE);
    if text.is_some_and(|t| t.bytes().all(|b| b.is_ascii_whitespace())) {
        assert!(!session.is_ended(), "ended by whitespace");
        assert_eq!(commands, [], "commands for whitespace");
        return;
    }
    assert!(session.is_ended(), "{text:?} neither connected nor ended");
    match (commands, text) {
        ([Command::Close(End::Client(_))], Some(text)) => assert!(
            texts.iter().any(|t| t.starts_with("<stream:error")),
            "no stream error for {text:?}: {texts:?}"
        ),
        ([Command::Close(End::Client(_) | End::WebSocketProtocol(_))], None) => {}
        ([Command::Close(End::ClientClosed)], Some(_)) => {
            assert_eq!(texts, [CLOSE_ELEMENT]);
        }
        _ => panic!("{text:?} ended with {commands:?}"),
    }
}

/// The unescaped `to` of a message that is a framing `<open/>`.
fn requested_domain(message: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let (name, attributes) = first_element(text)?;
    let value = |wanted: (&str, &str)| {
        attributes
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, value)| value.clone())
    };
    // Known: the session takes `<x:open xmlns='...framing'>` for `<open/>`,
    // though its own `xmlns` does not apply to a prefixed name.
    let prefix_ok = name.0.is_empty();
    (prefix_ok && name.1 == "open" && value(("", "xmlns")).as_deref() == Some(NS_FRAMING))
        .then(|| value(("", "to")))
        .flatten()
}

/// A reply `<open/>`: one well-formed empty element.
fn check_reply(text: &str, domain: &str) {
    let tokens: Result<Vec<_>, _> = xmlparser::Tokenizer::from(text).collect();
    let tokens = tokens.unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(
        matches!(
            tokens.last(),
            Some(xmlparser::Token::ElementEnd {
                end: xmlparser::ElementEnd::Empty,
                ..
            })
        ),
        "{text:?}"
    );
    let (name, attributes) = first_element(text).expect("an element");
    assert_eq!(name, ("", "open"));
    let wanted = [
        (("", "xmlns"), NS_FRAMING),
        (("", "from"), domain),
        (("", "id"), STREAM_ID),
        (("", "version"), "1.0"),
    ];
    for (name, value) in wanted {
        let got = attributes.iter().find(|(n, _)| *n == name);
        assert_eq!(got.map(|(_, v)| v.as_str()), Some(value), "{text:?}");
    }
}

type Name<'a> = (&'a str, &'a str);

/// The first element's name and its attributes, unescaped, as xmlparser
/// reads them; `None` if the XML breaks before its start tag ends.
fn first_element(text: &str) -> Option<(Name<'_>, Vec<(Name<'_>, String)>)> {
    let mut name = None;
    let mut attributes = Vec::new();
    for token in xmlparser::Tokenizer::from(text) {
        match token.ok()? {
            xmlparser::Token::ElementStart { prefix, local, .. } => {
                name = Some((prefix.as_str(), local.as_str()));
            }
            xmlparser::Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => {
                let value = xml::unescape(value.as_str()).ok()?;
                attributes.push(((prefix.as_str(), local.as_str()), value.into_owned()));
            }
            xmlparser::Token::ElementEnd { .. } => return Some((name?, attributes)),
            _ => {}
        }
    }
    None
}

/// The payloads of the server's text frames (unmasked, final: RFC 6455
/// §5.1) in `bytes`, which hold whole frames.
fn server_texts(mut bytes: &[u8]) -> Vec<String> {
    let mut texts = Vec::new();
    while let [first, second, rest @ ..] = bytes {
        let (len, rest) = match second & 0x7f {
            126 => {
                let (len, rest) = rest.split_at(2);
                (usize::from(u16::from_be_bytes([len[0], len[1]])), rest)
            }
            127 => {
                let (len, rest) = rest.split_at(8);
                let len = u64::from_be_bytes(len.try_into().expect("8 bytes"));
                (usize::try_from(len).expect("fits"), rest)
            }
            len => (usize::from(len), rest),
        };
        let (payload, rest) = rest.split_at(len);
        if first & 0x0f == OP_TEXT {
            texts.push(String::from_utf8(payload.to_vec()).expect("UTF-8 text frame"));
        }
        bytes = rest;
    }
    texts
}
