//! `bosh_body`: [`parse_body`] over arbitrary bytes. Input: one selector
//! byte (bit 0: default or tiny XML limits), then the request body.
//!
//! Invariants: no panic; a refusal is `bad-request`; the same bytes give
//! the same answer twice, and with XML whitespace appended; what tiny
//! limits accept, the default ones accept the same. An accepted
//! body is an unprefixed `body` element (XEP-0124 §4: in the httpbind
//! namespace, which its own `xmlns` gives only to an unprefixed name); its
//! payload lies inside the input between the start and end tags, on UTF-8
//! character boundaries; its rid is at most `MAX_RID` (§7.1). Written out
//! again from its fields around the same payload, it reads back the same.

use std::fmt::Write as _;

use super::common;
use switchboard_core::bosh::{parse_body, Body, Condition, MAX_RID, NS_HTTPBIND, NS_XBOSH};
use switchboard_core::xml;

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = if selector & 1 == 0 {
        xml::Limits::default()
    } else {
        common::TINY_XML
    };
    let result = parse_body(input, limits);
    assert_eq!(parse_body(input, limits), result, "parsed twice");
    let mut padded = input.to_vec();
    padded.extend_from_slice(b" \r\n\t");
    assert_eq!(parse_body(&padded, limits), result, "whitespace appended");
    if limits != xml::Limits::default() && result.is_ok() {
        assert_eq!(
            parse_body(input, xml::Limits::default()),
            result,
            "tiny vs default limits"
        );
    }
    let body = match result {
        Ok(body) => body,
        Err(condition) => return assert_eq!(condition, Condition::BadRequest),
    };
    let text = std::str::from_utf8(input).expect("an accepted body is UTF-8");
    assert_eq!(first_element(text), Some(("", "body")), "{text:?}");
    let payload = body.payload.clone();
    assert!(payload.start <= payload.end && payload.end <= text.len());
    assert!(text.is_char_boundary(payload.start) && text.is_char_boundary(payload.end));
    if !payload.is_empty() {
        assert!(
            text[..payload.start].ends_with('>'),
            "payload after the start tag"
        );
        assert!(
            text[payload.end..].starts_with("</"),
            "payload before the end tag"
        );
    }
    assert!(body.rid.is_none_or(|rid| rid <= MAX_RID));

    let again = write(&body, &text[payload.clone()]);
    let reread = parse_body(again.as_bytes(), xml::Limits::default())
        .unwrap_or_else(|e| panic!("{again:?} written from {text:?}: {e:?}"));
    assert_eq!(&again[reread.payload.clone()], &text[payload]);
    let unplaced = |body: Body| Body {
        payload: 0..0,
        ..body
    };
    assert_eq!(unplaced(reread), unplaced(body), "{again:?} from {text:?}");
}

/// The prefix and local name of the first element, by xmlparser.
fn first_element(text: &str) -> Option<(&str, &str)> {
    xmlparser::Tokenizer::from(text).find_map(|token| match token {
        Ok(xmlparser::Token::ElementStart { prefix, local, .. }) => {
            Some((prefix.as_str(), local.as_str()))
        }
        _ => None,
    })
}

/// A body with `body`'s attributes around `payload`.
fn write(body: &Body, payload: &str) -> String {
    let mut out = format!("<body xmlns='{NS_HTTPBIND}'");
    let texts = [
        ("sid", &body.sid),
        ("to", &body.to),
        ("route", &body.route),
        ("from", &body.from),
        ("ver", &body.ver),
        ("xml:lang", &body.lang),
        ("ua", &body.ua),
        ("stream", &body.stream),
        ("stream_attrs", &body.stream_attrs),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            let _ = write!(out, " {name}='");
            xml::escape_attribute(&mut out, value);
            out.push('\'');
        }
    }
    let numbers = [
        ("rid", body.rid),
        ("wait", body.wait),
        ("hold", body.hold.map(u64::from)),
        ("ack", body.ack),
        ("inactivity", body.inactivity),
        ("pause", body.pause),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            let _ = write!(out, " {name}='{value}'");
        }
    }
    if body.terminate {
        out.push_str(" type='terminate'");
    }
    if body.restart {
        let _ = write!(out, " xmlns:xmpp='{NS_XBOSH}' xmpp:restart='true'");
    }
    if payload.is_empty() {
        out.push_str("/>");
    } else {
        let _ = write!(out, ">{payload}</body>");
    }
    out
}
