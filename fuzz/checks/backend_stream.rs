//! `backend_stream`: [`Stream`] over arbitrary server bytes, driven as the
//! reactor does (`handle_input`, then `poll_event` until `Ok(None)` or an
//! error). Input: one selector byte (bit 0: plaintext allowed or not,
//! bit 1: default or tiny XML limits, bit 2: an optional STARTTLS skipped as
//! on loopback, cut out of the features), then the server's bytes. Until the
//! server offers STARTTLS this is the plaintext negotiation; after a
//! `<proceed/>` the bytes go to rustls.
//!
//! The TLS configuration trusts no root (`common::tls`): no handshake can
//! succeed.
//!
//! Invariants: no panic; the bytes in one read or in two cut at a point
//! derived from the data give the same events; events
//! carry at most the bytes that came in; after `Features` the stream is
//! ready, before it `send` is refused.
//!
//! Errors are not compared: which XML refusal comes first is the
//! `xml_framer` target's business, and bytes after `<proceed/>` are refused
//! as such only when they came in the same read (a real server waits for
//! our ClientHello), otherwise they fail in TLS.

use super::common;
use switchboard_core::backend::{Error, Event, Settings, Stream};
use switchboard_core::xml::{ElementInfo, Limits};

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Features(Vec<u8>, ElementInfo),
    Element(Vec<u8>, ElementInfo),
    StreamError(Vec<u8>, ElementInfo, String),
    Closed,
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Owned>,
    /// The error's reason, for the failure message.
    error: Option<&'static str>,
    ready: bool,
}

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let settings = Settings {
        domain: "example.com".to_owned(),
        lang: "en".to_owned(),
        tls: common::tls(),
        plaintext_allowed: selector & 1 == 0,
        skip_optional_tls: selector & 4 != 0,
        xml: if selector & 2 == 0 {
            Limits::default()
        } else {
            common::TINY_XML
        },
    };
    let whole = run(settings.clone(), &[input]);
    let (a, b) = input.split_at(common::point(input));
    let two = run(settings, &[a, b]);
    let at = a.len();
    let errors = (whole.error, two.error);
    assert_eq!(
        whole.events, two.events,
        "whole vs split at {at}, {errors:?}"
    );
    assert_eq!(whole.ready, two.ready, "whole vs split at {at}, {errors:?}");
}

fn run(settings: Settings, reads: &[&[u8]]) -> Run {
    let mut stream = Stream::new(settings);
    assert!(stream.wants_write(), "our stream header is not queued");
    let total: usize = reads.iter().map(|r| r.len()).sum();
    let mut events = Vec::new();
    let mut error = None;
    let mut carried = 0;
    'reads: for read in reads {
        if let Err(e) = stream.handle_input(read) {
            error = Some(e.reason());
            break;
        }
        loop {
            let event = match stream.poll_event() {
                Ok(None) => break,
                Ok(Some(event)) => owned(event),
                Err(e) => {
                    error = Some(e.reason());
                    break 'reads;
                }
            };
            carried += match &event {
                Owned::Features(b, _) | Owned::Element(b, _) | Owned::StreamError(b, _, _) => {
                    b.len()
                }
                Owned::Closed => 0,
            };
            assert!(carried <= total, "events carry more than came in");
            assert!(events.len() <= total, "more events than bytes");
            let features = matches!(event, Owned::Features(..));
            events.push(event);
            if features {
                assert!(stream.is_ready(), "features but not ready");
            } else if !stream.is_ready() {
                assert!(matches!(stream.send(b"<presence/>"), Err(Error::NotReady)));
            }
        }
        // The reactor writes the output between reads.
        let n = stream.output().len();
        stream.consume_output(n);
    }
    Run {
        events,
        error,
        ready: stream.is_ready(),
    }
}

fn owned(event: Event<'_>) -> Owned {
    match event {
        Event::Features(bytes, info) => Owned::Features(bytes.to_vec(), info),
        Event::Element(bytes, info) => Owned::Element(bytes.to_vec(), info),
        Event::StreamError {
            element,
            info,
            condition,
        } => Owned::StreamError(element.to_vec(), info, condition.to_string()),
        Event::Closed => Owned::Closed,
    }
}
