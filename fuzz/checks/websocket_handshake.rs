//! `websocket_handshake`: raw request bytes through [`RequestReader`], then
//! every request through [`accept`] with the [`UpgradeRequest`] the
//! reactor builds from it. Input: one selector byte (even: default HTTP
//! limits, odd: small ones), then the connection's bytes.
//!
//! Invariants: no panic; `accept` agrees with the head read here line by
//! line (apart from the reader): it accepts exactly a GET with `websocket`
//! among the `Upgrade` tokens, `upgrade` among the `Connection` tokens,
//! version 13, a key of 22 base64 characters and `==` (RFC 6455 §4.2.1),
//! and `xmpp` among the offered subprotocols (RFC 7395 §3.1), and refuses
//! for the first of these that fails, in that order. An accepted handshake
//! is the exact 101 of RFC 6455 §4.2.2 with the `Sec-WebSocket-Accept` of
//! that key and `Sec-WebSocket-Protocol: xmpp`; a refusal is a 4xx whose
//! extra headers are one-line fields.

use super::common;
use switchboard_core::http::{Method, Request, RequestReader};
use switchboard_core::websocket::{accept, Refusal, UpgradeRequest};

pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = common::http_limits(selector);
    let mut reader = RequestReader::new(limits);
    let mut rest = input;
    while let Ok(Some(request)) = reader.read(rest) {
        let (head, tail) = rest.split_at(request.len);
        check_upgrade(&request, head);
        rest = tail;
    }
}

fn check_upgrade(request: &Request, head: &[u8]) {
    let upgrade = UpgradeRequest {
        is_get: request.method == Method::Get,
        upgrade: request.upgrade.as_deref(),
        connection: request.connection.as_deref(),
        key: request.sec_websocket_key.as_deref(),
        version: request.sec_websocket_version.as_deref(),
        protocols: request.sec_websocket_protocol.as_deref(),
    };
    let result = accept(&upgrade);
    let expected = expected(head);
    match (&result, &expected) {
        (Ok(response), Ok(key)) => {
            let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let wanted = format!(
                "HTTP/1.1 101 Switching Protocols\r\n\
                 Upgrade: websocket\r\n\
                 Connection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept_key}\r\n\
                 Sec-WebSocket-Protocol: xmpp\r\n\r\n"
            );
            assert_eq!(String::from_utf8_lossy(response), wanted);
        }
        (Err(refusal), Err(wanted)) => {
            assert_eq!(refusal, wanted, "{:?}", String::from_utf8_lossy(head));
            assert!((400..500).contains(&refusal.status().code()));
            for (name, value) in refusal.headers() {
                assert!(!name.is_empty() && !format!("{name}{value}").contains(['\r', '\n']));
            }
        }
        _ => panic!(
            "accept gave {result:?}, the head says {expected:?}: {:?}",
            String::from_utf8_lossy(head)
        ),
    }
}

/// The key to answer, or the refusal, read from the raw head.
fn expected(head: &[u8]) -> Result<String, Refusal> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .skip_while(|line| line.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let fields: Vec<(&str, &str)> = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name, value.trim_matches([' ', '\t'])))
        .collect();
    if !request_line.starts_with("GET ") {
        return Err(Refusal::NotGet);
    }
    let has = |field: &str, token: &str| {
        tokens(&fields, field)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(token))
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(Refusal::NotUpgrade);
    }
    if values(&fields, "sec-websocket-version").next() != Some("13") {
        return Err(Refusal::BadVersion);
    }
    let key = values(&fields, "sec-websocket-key")
        .next()
        .ok_or(Refusal::MissingKey)?;
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    let (data, padding) = key.as_bytes().split_at(key.len().min(22));
    if data.len() != 22 || !data.iter().all(base64) || padding != b"==" {
        return Err(Refusal::InvalidKey);
    }
    if !tokens(&fields, "sec-websocket-protocol").contains(&"xmpp") {
        return Err(Refusal::NoXmppProtocol);
    }
    Ok(key.to_owned())
}

/// The values of the field `wanted`, in order.
fn values<'a>(
    fields: &'a [(&'a str, &'a str)],
    wanted: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    fields
        .iter()
        .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted))
        .map(|(_, value)| *value)
}

/// The comma-list elements of every `wanted` field (RFC 9110 §5.6.1).
fn tokens<'a>(fields: &'a [(&'a str, &'a str)], wanted: &'a str) -> Vec<&'a str> {
    values(fields, wanted)
        .flat_map(|value| value.split(','))
        .map(|token| token.trim_matches([' ', '\t']))
        .collect()
}
