//! XMPP vocabulary shared by the stub server and the clients: namespaces,
//! byte-level reads of a start tag and of simple text children, and the
//! client's login as a sans-IO state machine (RFC 6120 §6 SASL, §7 bind,
//! RFC 3921 §3 legacy session).
//!
//! Elements arrive already cut by `switchboard_core::xml::Framer`, so these reads
//! only look inside one complete, well-formed element; they allocate nothing
//! on the message path.

use std::borrow::Cow;

use base64::Engine;
use switchboard_core::xml::{children, ElementInfo, NS_STREAM_ERRORS};

/// SASL (RFC 6120 §6.4).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// The legacy session iq (RFC 3921 §3, kept by Prosody and ejabberd).
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// XMPP ping (XEP-0199).
pub const NS_PING: &str = "urn:xmpp:ping";

/// What went wrong with a session, as the report counts it.
pub type ErrorKind = Cow<'static, str>;

/// The value of attribute `name` in the start tag of `element`, still
/// escaped (JIDs, ids and types need no unescaping in practice).
pub fn attr<'a>(element: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut i = element
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == b'\n' || b == b'\r')?;
    loop {
        while i < element.len() && element[i].is_ascii_whitespace() {
            i += 1;
        }
        match element.get(i)? {
            b'>' | b'/' => return None,
            _ => {}
        }
        let name_start = i;
        while i < element.len() && element[i] != b'=' && !element[i].is_ascii_whitespace() {
            i += 1;
        }
        let found = &element[name_start..i];
        while i < element.len() && (element[i] == b'=' || element[i].is_ascii_whitespace()) {
            i += 1;
        }
        let quote = *element.get(i)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let value_start = i + 1;
        let value_len = element
            .get(value_start..)?
            .iter()
            .position(|&b| b == quote)?;
        if found == name {
            return Some(&element[value_start..value_start + value_len]);
        }
        i = value_start + value_len + 1;
    }
}

/// Offset of the `>` that ends the start tag of `element` (quote-aware).
pub fn start_tag_end(element: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in element.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'>' => return Some(i),
            None => {}
        }
    }
    None
}

/// The character data of the first `<name>...</name>` inside `element`
/// (`<jid>`, `<resource>`, `<body>`), still escaped.
pub fn child_text<'a>(element: &'a [u8], open: &[u8], close: &[u8]) -> Option<&'a [u8]> {
    let start = find(element, open)? + open.len();
    let len = find(&element[start..], close)?;
    Some(&element[start..start + len])
}

/// The character data directly inside a top-level element with no child
/// elements (`<auth>...</auth>`).
pub fn own_text(element: &[u8]) -> &[u8] {
    let Some(open) = start_tag_end(element) else {
        return &[];
    };
    if element.get(open.wrapping_sub(1)) == Some(&b'/') {
        return &[];
    }
    let rest = &element[open + 1..];
    let end = rest.iter().position(|&b| b == b'<').unwrap_or(rest.len());
    &rest[..end]
}

/// First occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        let at = hay[i..=last_start].iter().position(|&b| b == first)? + i;
        if &hay[at..at + needle.len()] == needle {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// Whether `info` names a `<stream:error>` (RFC 6120 §4.9).
pub fn is_stream_error(element: &[u8], info: &ElementInfo) -> bool {
    info.local_name(element) == "error" && info.prefix(element) == Some("stream")
}

/// The defined condition of a `<stream:error>` element.
pub fn stream_error_condition(element: &[u8]) -> String {
    children(element)
        .ok()
        .and_then(|kids| {
            kids.into_iter()
                .find(|c| c.ns.as_deref() == Some(NS_STREAM_ERRORS))
                .map(|c| c.local)
        })
        .unwrap_or_else(|| "undefined-condition".into())
}

/// How a client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// SASL PLAIN (RFC 4616) with this user name and password.
    Plain { user: String, password: String },
    /// Bind straight away: only the stub allows it.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Features,
    Authenticating,
    RestartFeatures,
    Binding { session: bool },
    Session,
    Ready,
}

/// What the transport does after an element went through [`Login`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Wait,
    /// `out` holds one element to send.
    Send,
    /// Restart the stream (RFC 6120 §6.4.6): a new header, `<open/>` or
    /// `xmpp:restart`.
    Restart,
    /// Logged in and bound as this full JID.
    Ready(String),
    /// The login failed.
    Fail(ErrorKind),
}

/// A client's way from stream features to a bound resource.
#[derive(Debug)]
pub struct Login {
    auth: Auth,
    phase: Phase,
    /// The bound JID while the session iq is still out.
    jid: String,
}

impl Login {
    pub fn new(auth: Auth) -> Self {
        Login {
            auth,
            phase: Phase::Features,
            jid: String::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Handle one top-level element from the server during login.
    pub fn handle(&mut self, element: &[u8], info: &ElementInfo, out: &mut Vec<u8>) -> Step {
        if is_stream_error(element, info) {
            return Step::Fail(format!("stream_error:{}", stream_error_condition(element)).into());
        }
        let local = info.local_name(element);
        match (self.phase, local) {
            (Phase::Features, "features") => match &self.auth {
                Auth::Plain { user, password } => {
                    let kids = children(element).unwrap_or_default();
                    if !kids.iter().any(|c| c.local == "mechanisms") {
                        return Step::Fail("no_sasl_offered".into());
                    }
                    let mut plain = Vec::with_capacity(user.len() + password.len() + 2);
                    plain.push(0);
                    plain.extend_from_slice(user.as_bytes());
                    plain.push(0);
                    plain.extend_from_slice(password.as_bytes());
                    out.extend_from_slice(b"<auth xmlns='");
                    out.extend_from_slice(NS_SASL.as_bytes());
                    out.extend_from_slice(b"' mechanism='PLAIN'>");
                    out.extend_from_slice(
                        base64::engine::general_purpose::STANDARD
                            .encode(plain)
                            .as_bytes(),
                    );
                    out.extend_from_slice(b"</auth>");
                    self.phase = Phase::Authenticating;
                    Step::Send
                }
                Auth::None => self.bind(element, out),
            },
            (Phase::Authenticating, "success") => {
                self.phase = Phase::RestartFeatures;
                Step::Restart
            }
            (Phase::Authenticating, "failure") => Step::Fail("auth_failed".into()),
            (Phase::RestartFeatures, "features") => self.bind(element, out),
            (Phase::Binding { session }, "iq") => match attr(element, b"type") {
                Some(b"result") => {
                    let Some(jid) = child_text(element, b"<jid>", b"</jid>")
                        .and_then(|j| std::str::from_utf8(j).ok())
                    else {
                        return Step::Fail("bind_without_jid".into());
                    };
                    let jid = jid.to_string();
                    if session {
                        out.extend_from_slice(
                            b"<iq type='set' id='sess' xmlns='jabber:client'><session xmlns='",
                        );
                        out.extend_from_slice(NS_SESSION.as_bytes());
                        out.extend_from_slice(b"'/></iq>");
                        self.phase = Phase::Session;
                        self.jid = jid;
                        Step::Send
                    } else {
                        self.phase = Phase::Ready;
                        Step::Ready(jid)
                    }
                }
                _ => Step::Fail("bind_failed".into()),
            },
            (Phase::Session, "iq") => match attr(element, b"type") {
                Some(b"result") => {
                    self.phase = Phase::Ready;
                    Step::Ready(std::mem::take(&mut self.jid))
                }
                _ => Step::Fail("session_failed".into()),
            },
            _ => Step::Wait,
        }
    }

    fn bind(&mut self, features: &[u8], out: &mut Vec<u8>) -> Step {
        let kids = children(features).unwrap_or_default();
        if !kids.iter().any(|c| c.local == "bind") {
            return Step::Fail("no_bind_offered".into());
        }
        // RFC 6121 §7.2 made the session iq optional; send it only where the
        // server still says it is required.
        let session = kids.iter().any(|c| {
            c.local == "session"
                && c.ns.as_deref() == Some(NS_SESSION)
                && !c.children.iter().any(|n| n == "optional")
        });
        out.extend_from_slice(b"<iq type='set' id='bind' xmlns='jabber:client'><bind xmlns='");
        out.extend_from_slice(NS_BIND.as_bytes());
        out.extend_from_slice(b"'><resource>load</resource></bind></iq>");
        self.phase = Phase::Binding { session };
        Step::Send
    }
}
