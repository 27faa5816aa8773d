//! The server side of the WebSocket opening handshake (RFC 6455 §4.2) for the
//! XMPP subprotocol (RFC 7395 §3.1).
//!
//! Contract: the caller has parsed the HTTP request head and passes the raw
//! header values in; `accept` returns either the complete `101` response or a
//! `Refusal` that names the HTTP status (and any header) to answer with.
//! A header that occurs several times must be joined with `", "` first
//! (RFC 9110 §5.3), which is how the comma lists here are read anyway.
//!
//! A client that does not offer the `xmpp` subprotocol is refused with 400:
//! RFC 7395 §3.1 makes a connection without `xmpp` useless to both sides (the
//! client MUST close it), so saying so up front is clearer than a 101 the
//! client will drop.

use std::fmt;

use crate::http::Status;

/// The subprotocol token of RFC 7395 §3.1 (IANA WebSocket Subprotocol Name
/// Registry). Compared case-sensitively: the client checks our echo exactly.
pub const SUBPROTOCOL: &str = "xmpp";

/// The only WebSocket version this server speaks (RFC 6455 §4.2.1 item 6).
pub const VERSION: &str = "13";

/// The handshake-relevant parts of an HTTP request, as raw header values.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeRequest<'a> {
    /// The method is `GET` (RFC 6455 §4.2.1 item 1).
    pub is_get: bool,
    /// `Upgrade`, a comma list that must contain `websocket`.
    pub upgrade: Option<&'a str>,
    /// `Connection`, a comma list that must contain `Upgrade`.
    pub connection: Option<&'a str>,
    /// `Sec-WebSocket-Key`, base64 of 16 bytes.
    pub key: Option<&'a str>,
    /// `Sec-WebSocket-Version`, must be `13`.
    pub version: Option<&'a str>,
    /// `Sec-WebSocket-Protocol`, a comma list that must contain `xmpp`.
    pub protocols: Option<&'a str>,
}

/// Why an upgrade request is refused; each maps to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a GET (RFC 6455 §4.2.1 item 1): 405 with `Allow: GET`.
    NotGet,
    /// `Upgrade: websocket` or `Connection: Upgrade` missing: 400.
    NotUpgrade,
    /// Version missing or not 13 (RFC 6455 §4.4): 426 with
    /// `Sec-WebSocket-Version: 13`.
    BadVersion,
    /// No `Sec-WebSocket-Key`: 400.
    MissingKey,
    /// A key that is not base64 of 16 bytes (RFC 6455 §4.2.1 item 5): 400.
    InvalidKey,
    /// `xmpp` not among the offered subprotocols (RFC 7395 §3.1): 400.
    NoXmppProtocol,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(self) -> Status {
        match self {
            Refusal::NotGet => Status::METHOD_NOT_ALLOWED,
            Refusal::BadVersion => Status::UPGRADE_REQUIRED,
            Refusal::NotUpgrade
            | Refusal::MissingKey
            | Refusal::InvalidKey
            | Refusal::NoXmppProtocol => Status::BAD_REQUEST,
        }
    }

    /// Headers the refusal response must carry besides the usual ones.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Refusal::NotGet => &[("Allow", "GET")],
            Refusal::BadVersion => &[("Sec-WebSocket-Version", VERSION)],
            Refusal::NotUpgrade
            | Refusal::MissingKey
            | Refusal::InvalidKey
            | Refusal::NoXmppProtocol => &[],
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotGet => "websocket upgrade needs a get request",
            Refusal::NotUpgrade => "not a websocket upgrade request",
            Refusal::BadVersion => "unsupported websocket version (13 required)",
            Refusal::MissingKey => "missing sec-websocket-key",
            Refusal::InvalidKey => "sec-websocket-key is not base64 of 16 bytes",
            Refusal::NoXmppProtocol => "client did not offer the xmpp subprotocol",
        })
    }
}

impl std::error::Error for Refusal {}

/// Checks an upgrade request (RFC 6455 §4.2.1, RFC 7395 §3.1) and on success
/// returns the complete `101 Switching Protocols` response (RFC 6455 §4.2.2)
/// with `Sec-WebSocket-Accept` and `Sec-WebSocket-Protocol: xmpp`.
pub fn accept(req: &UpgradeRequest) -> Result<Vec<u8>, Refusal> {
    if !req.is_get {
        return Err(Refusal::NotGet);
    }
    if !list_contains_ignore_case(req.upgrade, "websocket")
        || !list_contains_ignore_case(req.connection, "upgrade")
    {
        return Err(Refusal::NotUpgrade);
    }
    if req.version.map(trim_ows) != Some(VERSION) {
        return Err(Refusal::BadVersion);
    }
    let key = req.key.map(trim_ows).ok_or(Refusal::MissingKey)?;
    if !is_valid_key(key) {
        return Err(Refusal::InvalidKey);
    }
    if !list_tokens(req.protocols).any(|token| token == SUBPROTOCOL) {
        return Err(Refusal::NoXmppProtocol);
    }
    let accept_key = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Vec::with_capacity(160);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    response.extend_from_slice(accept_key.as_bytes());
    response.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
    response.extend_from_slice(SUBPROTOCOL.as_bytes());
    response.extend_from_slice(b"\r\n\r\n");
    Ok(response)
}

/// The non-empty, trimmed elements of a comma list (RFC 9110 §5.6.1).
fn list_tokens(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or("")
        .split(',')
        .map(trim_ows)
        .filter(|token| !token.is_empty())
}

/// Strips optional whitespace, spaces and tabs only (RFC 9110 §5.6.3):
/// other characters Unicode calls white space, such as U+00A0 sent as
/// obs-text, are part of the value.
fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

fn list_contains_ignore_case(value: Option<&str>, wanted: &str) -> bool {
    list_tokens(value).any(|token| token.eq_ignore_ascii_case(wanted))
}

/// Base64 of exactly 16 bytes: 22 alphabet characters, then `==`. The last
/// character before the padding carries 2 data bits, so it must be one of
/// `AQgw` for a canonical encoding; we don't insist on that, as decoders don't.
fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes
            .iter()
            .take(22)
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample key of RFC 6455 §1.3.
    const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn request() -> UpgradeRequest<'static> {
        UpgradeRequest {
            is_get: true,
            upgrade: Some("websocket"),
            connection: Some("Upgrade"),
            key: Some(SAMPLE_KEY),
            version: Some("13"),
            protocols: Some("xmpp"),
        }
    }

    fn response_text(req: &UpgradeRequest) -> String {
        String::from_utf8(accept(req).unwrap()).unwrap()
    }

    #[test]
    fn sample_key_of_rfc6455_gives_sample_accept_value() {
        let text = response_text(&request());
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 101 Switching Protocols\r\n\
                 Upgrade: websocket\r\n\
                 Connection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\
                 Sec-WebSocket-Protocol: xmpp\r\n\r\n"
            )
        );
    }

    #[test]
    fn upgrade_and_connection_tokens_compare_case_insensitively_in_lists() {
        let req = UpgradeRequest {
            upgrade: Some("WebSocket"),
            connection: Some("keep-alive, UPGRADE"),
            ..request()
        };
        assert!(response_text(&req).contains(SAMPLE_ACCEPT));
        let req = UpgradeRequest {
            upgrade: Some("h2c , websocket"),
            connection: Some("upgrade,keep-alive"),
            ..request()
        };
        assert!(accept(&req).is_ok());
    }

    #[test]
    fn xmpp_is_found_among_other_offered_protocols() {
        for offered in [
            "xmpp",
            "chat, xmpp",
            "xmpp,chat",
            "  foo ,xmpp , bar",
            "a,,xmpp",
        ] {
            let req = UpgradeRequest {
                protocols: Some(offered),
                ..request()
            };
            let text = response_text(&req);
            assert!(
                text.contains("\r\nSec-WebSocket-Protocol: xmpp\r\n"),
                "{offered}"
            );
        }
    }

    #[test]
    fn client_not_offering_xmpp_is_refused_with_400() {
        for offered in [
            None,
            Some(""),
            Some("chat"),
            Some("XMPP"),
            Some("xmpp2, chat"),
        ] {
            let req = UpgradeRequest {
                protocols: offered,
                ..request()
            };
            assert_eq!(accept(&req), Err(Refusal::NoXmppProtocol), "{offered:?}");
        }
        assert_eq!(Refusal::NoXmppProtocol.status().code(), 400);
    }

    #[test]
    fn non_get_is_refused_with_405_and_allow_header() {
        let req = UpgradeRequest {
            is_get: false,
            ..request()
        };
        assert_eq!(accept(&req), Err(Refusal::NotGet));
        assert_eq!(Refusal::NotGet.status().code(), 405);
        assert_eq!(Refusal::NotGet.headers(), &[("Allow", "GET")]);
    }

    #[test]
    fn missing_upgrade_or_connection_token_is_refused_with_400() {
        let cases = [
            UpgradeRequest {
                upgrade: None,
                ..request()
            },
            UpgradeRequest {
                upgrade: Some("h2c"),
                ..request()
            },
            UpgradeRequest {
                connection: None,
                ..request()
            },
            UpgradeRequest {
                connection: Some("keep-alive"),
                ..request()
            },
            UpgradeRequest {
                connection: Some("upgrades"),
                ..request()
            },
        ];
        for req in cases {
            assert_eq!(accept(&req), Err(Refusal::NotUpgrade), "{req:?}");
        }
        assert_eq!(Refusal::NotUpgrade.status().code(), 400);
    }

    #[test]
    fn wrong_or_missing_version_is_refused_with_426_naming_version_13() {
        for version in [None, Some("8"), Some("12"), Some("13, 8")] {
            let req = UpgradeRequest {
                version,
                ..request()
            };
            assert_eq!(accept(&req), Err(Refusal::BadVersion), "{version:?}");
        }
        assert_eq!(Refusal::BadVersion.status().code(), 426);
        assert_eq!(
            Refusal::BadVersion.headers(),
            &[("Sec-WebSocket-Version", "13")]
        );
    }

    #[test]
    fn missing_or_malformed_key_is_refused_with_400() {
        let req = UpgradeRequest {
            key: None,
            ..request()
        };
        assert_eq!(accept(&req), Err(Refusal::MissingKey));
        for key in [
            "",
            "short==",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=!",
            "dGhlIHNhbXBsZS*ub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZSBsb25nZXI=",
        ] {
            let req = UpgradeRequest {
                key: Some(key),
                ..request()
            };
            assert_eq!(accept(&req), Err(Refusal::InvalidKey), "{key}");
        }
        assert_eq!(Refusal::MissingKey.status().code(), 400);
        assert_eq!(Refusal::InvalidKey.status().code(), 400);
    }

    #[test]
    fn key_with_surrounding_whitespace_is_trimmed_before_hashing() {
        let req = UpgradeRequest {
            key: Some(" dGhlIHNhbXBsZSBub25jZQ== "),
            ..request()
        };
        assert!(response_text(&req).contains(SAMPLE_ACCEPT));
    }

    #[test]
    fn only_spaces_and_tabs_are_trimmed_from_values() {
        let key = format!("\u{a0}{SAMPLE_KEY}");
        let req = UpgradeRequest {
            key: Some(&key),
            ..request()
        };
        assert_eq!(accept(&req), Err(Refusal::InvalidKey));
        let req = UpgradeRequest {
            protocols: Some("chat, xmpp\u{a0}"),
            ..request()
        };
        assert_eq!(accept(&req), Err(Refusal::NoXmppProtocol));
        let req = UpgradeRequest {
            version: Some("13\u{2003}"),
            ..request()
        };
        assert_eq!(accept(&req), Err(Refusal::BadVersion));
        let req = UpgradeRequest {
            key: Some(&format!("\t{SAMPLE_KEY} ")),
            protocols: Some("\txmpp ,chat"),
            version: Some(" 13\t"),
            ..request()
        };
        assert!(response_text(&req).contains(SAMPLE_ACCEPT));
    }

    #[test]
    fn refusals_display_lower_case_messages() {
        for refusal in [
            Refusal::NotGet,
            Refusal::NotUpgrade,
            Refusal::BadVersion,
            Refusal::MissingKey,
            Refusal::InvalidKey,
            Refusal::NoXmppProtocol,
        ] {
            let text = refusal.to_string();
            assert!(!text.is_empty());
            assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
        }
    }
}
