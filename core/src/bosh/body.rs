//! The BOSH `<body/>` wrapper (XEP-0124 §4): its attributes read once per
//! request, its payload kept as a byte range so stanzas reach the server
//! unchanged, and the response bodies written.

use std::fmt::Write as _;
use std::ops::Range;

use crate::xml::{self, FrameKind, Framer};

/// XEP-0124 §4.
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206 §3.
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// XEP-0124 §7.1: rids fit in 53 bits so JavaScript numbers hold them.
pub const MAX_RID: u64 = (1 << 53) - 1;

/// Terminal conditions (XEP-0124 §17.2, XEP-0206 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    ItemNotFound,
    OtherRequest,
    PolicyViolation,
    RemoteConnectionFailed,
    RemoteStreamError,
    SeeOtherUri,
    SystemShutdown,
    UndefinedCondition,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::BadRequest => "bad-request",
            Condition::HostGone => "host-gone",
            Condition::HostUnknown => "host-unknown",
            Condition::ImproperAddressing => "improper-addressing",
            Condition::InternalServerError => "internal-server-error",
            Condition::ItemNotFound => "item-not-found",
            Condition::OtherRequest => "other-request",
            Condition::PolicyViolation => "policy-violation",
            Condition::RemoteConnectionFailed => "remote-connection-failed",
            Condition::RemoteStreamError => "remote-stream-error",
            Condition::SeeOtherUri => "see-other-uri",
            Condition::SystemShutdown => "system-shutdown",
            Condition::UndefinedCondition => "undefined-condition",
        }
    }
}

/// The attributes of a request `<body/>` switchboard acts on, and where its
/// payload lies in the request bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    pub rid: Option<u64>,
    pub sid: Option<String>,
    pub to: Option<String>,
    pub route: Option<String>,
    pub from: Option<String>,
    pub wait: Option<u64>,
    pub hold: Option<u32>,
    pub ver: Option<String>,
    pub lang: Option<String>,
    pub ack: Option<u64>,
    pub inactivity: Option<u64>,
    pub pause: Option<u64>,
    pub ua: Option<String>,
    /// The stream a request is for (XEP-0124 §19); none: every stream.
    pub stream: Option<String>,
    /// node-xmpp-bosh's extra: a JSON object of attributes for the stream
    /// header sent on restart.
    pub stream_attrs: Option<String>,
    /// `xmpp:restart='true'` (XEP-0206 §5).
    pub restart: bool,
    /// `type='terminate'` (XEP-0124 §13).
    pub terminate: bool,
    pub payload: Range<usize>,
}

/// Read one request body. Anything that is not a single well-formed
/// `<body/>` in the httpbind namespace, or a bad number, is `bad-request`.
pub fn parse_body(bytes: &[u8], limits: xml::Limits) -> Result<Body, Condition> {
    let mut framer = Framer::new(xml::Mode::Fragments, limits);
    let mut start = 0;
    let (frame_start, frame) = loop {
        match framer.next(&bytes[start..]) {
            Ok(Some(frame)) => match frame.kind {
                FrameKind::Element(_) => break (start, frame),
                _ => start += frame.len,
            },
            _ => return Err(Condition::BadRequest),
        }
    };
    let FrameKind::Element(info) = &frame.kind else {
        return Err(Condition::BadRequest);
    };
    let element = &bytes[frame_start..frame_start + frame.len];
    if !bytes[frame_start + frame.len..]
        .iter()
        .all(|&b| xml::is_xml_space(b))
    {
        return Err(Condition::BadRequest);
    }
    // The element's own `xmlns` puts only an unprefixed name in that
    // namespace (Namespaces in XML 1.0 §6.2): `<x:body xmlns='...httpbind'>`
    // is in whatever `x` names.
    if info.prefix(element).is_some()
        || info.local_name(element) != "body"
        || info.namespace(element) != Some(NS_HTTPBIND)
    {
        return Err(Condition::BadRequest);
    }
    let text = std::str::from_utf8(element).map_err(|_| Condition::BadRequest)?;
    let mut body = Body::default();
    let mut tag_end = None;
    for token in xmlparser::Tokenizer::from(text) {
        match token.map_err(|_| Condition::BadRequest)? {
            xmlparser::Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => {
                let value = xml::unescape(value.as_str()).map_err(|_| Condition::BadRequest)?;
                read_attribute(&mut body, prefix.as_str(), local.as_str(), &value)?;
            }
            xmlparser::Token::ElementEnd { end, span } => {
                tag_end = Some(match end {
                    xmlparser::ElementEnd::Empty => None,
                    _ => Some(span.end()),
                });
                break;
            }
            _ => {}
        }
    }
    body.payload = match tag_end.ok_or(Condition::BadRequest)? {
        None => frame_start + element.len()..frame_start + element.len(),
        Some(open_end) => {
            let close = text.rfind("</").ok_or(Condition::BadRequest)?;
            frame_start + open_end..frame_start + close
        }
    };
    Ok(body)
}

fn read_attribute(
    body: &mut Body,
    prefix: &str,
    local: &str,
    value: &str,
) -> Result<(), Condition> {
    fn number(value: &str) -> Result<u64, Condition> {
        value.trim().parse().map_err(|_| Condition::BadRequest)
    }
    match (prefix, local) {
        ("", "rid") => {
            let rid = number(value)?;
            if rid > MAX_RID {
                return Err(Condition::BadRequest);
            }
            body.rid = Some(rid);
        }
        ("", "sid") => body.sid = Some(value.to_string()),
        ("", "to") => body.to = Some(value.to_string()),
        ("", "route") => body.route = Some(value.to_string()),
        ("", "from") => body.from = Some(value.to_string()),
        ("", "wait") => body.wait = Some(number(value)?),
        ("", "hold") => {
            body.hold = Some(u32::try_from(number(value)?).map_err(|_| Condition::BadRequest)?)
        }
        ("", "ver") => body.ver = Some(value.to_string()),
        ("xml", "lang") => body.lang = Some(value.to_string()),
        ("", "ack") => body.ack = Some(number(value)?),
        ("", "inactivity") => body.inactivity = Some(number(value)?),
        ("", "pause") => body.pause = Some(number(value)?),
        ("", "ua") => body.ua = Some(value.to_string()),
        ("", "stream") => body.stream = Some(value.to_string()),
        ("", "stream_attrs") => body.stream_attrs = Some(value.to_string()),
        ("", "type") => body.terminate = value == "terminate",
        (_, "restart") => body.restart = value == "true" || value == "1",
        _ => {}
    }
    Ok(())
}

/// A terminate body (XEP-0124 §17.2): for the session, or for one stream
/// when `stream` names it (§19.5), with optional content such as the
/// server's `<stream:error/>` for remote-stream-error.
pub fn terminate_body(
    condition: Option<Condition>,
    stream: Option<&str>,
    content: &[u8],
) -> Vec<u8> {
    let mut head = Head::new().attr("type", "terminate");
    if let Some(condition) = condition {
        head = head.attr("condition", condition.as_str());
    }
    if let Some(name) = stream {
        head = head.stream(name);
    }
    if !content.is_empty() {
        head = head.attr("xmlns:stream", xml::NS_STREAMS);
    }
    head.finish(content)
}

/// A response `<body>` start tag being written.
pub(super) struct Head(String);

impl Head {
    pub(super) fn new() -> Self {
        Head(format!("<body xmlns='{NS_HTTPBIND}'"))
    }

    pub(super) fn attr(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.0, " {name}='");
        xml::escape_attribute(&mut self.0, value);
        self.0.push('\'');
        self
    }

    pub(super) fn number(mut self, name: &str, value: u64) -> Self {
        let _ = write!(self.0, " {name}='{value}'");
        self
    }

    pub(super) fn stream(self, name: &str) -> Self {
        self.attr("stream", name)
    }

    pub(super) fn finish(mut self, payload: &[u8]) -> Vec<u8> {
        if payload.is_empty() {
            self.0.push_str("/>");
            return self.0.into_bytes();
        }
        self.0.push('>');
        let mut out = self.0.into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"</body>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> xml::Limits {
        xml::Limits {
            max_depth: 32,
            max_attributes: 64,
            max_element_bytes: 64 * 1024,
        }
    }

    const CREATE: &str = "<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='1573741820' to='example.com' wait='60' hold='1' ver='1.6' xml:lang='en' xmpp:version='1.0' content='text/xml; charset=utf-8'/>";

    #[test]
    fn creation_attributes_are_read() {
        let body = parse_body(CREATE.as_bytes(), limits()).unwrap();
        assert_eq!(body.rid, Some(1573741820));
        assert_eq!(body.to.as_deref(), Some("example.com"));
        assert_eq!((body.wait, body.hold), (Some(60), Some(1)));
        assert_eq!(body.lang.as_deref(), Some("en"));
        assert!(body.payload.is_empty());
    }

    #[test]
    fn payload_is_the_byte_range_between_the_tags() {
        let text = "<?xml version='1.0'?><body rid='2' sid='s' xmlns='http://jabber.org/protocol/httpbind'><message to='a@b'><body>hi</body></message><presence/></body>";
        let body = parse_body(text.as_bytes(), limits()).unwrap();
        assert_eq!(
            &text[body.payload.clone()],
            "<message to='a@b'><body>hi</body></message><presence/>"
        );
        assert_eq!(body.sid.as_deref(), Some("s"));
    }

    #[test]
    fn restart_and_terminate_are_recognised() {
        let text = "<body rid='3' sid='s' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' xmlns='http://jabber.org/protocol/httpbind'/>";
        assert!(parse_body(text.as_bytes(), limits()).unwrap().restart);
        let text = "<body rid='3' sid='s' type='terminate' xmlns='http://jabber.org/protocol/httpbind'><presence type='unavailable'/></body>";
        assert!(parse_body(text.as_bytes(), limits()).unwrap().terminate);
    }

    #[test]
    fn bad_bodies_are_bad_request() {
        for bad in [
            "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'><message>",
            "<body rid='x' xmlns='http://jabber.org/protocol/httpbind'/>",
            "<body rid='9007199254740992' xmlns='http://jabber.org/protocol/httpbind'/>",
            "<body rid='1'/>",
            "<notbody xmlns='http://jabber.org/protocol/httpbind'/>",
            "<x:body rid='1' xmlns='http://jabber.org/protocol/httpbind' xmlns:x='urn:other'/>",
            "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'/>\x0c",
            "<body xmlns='http://jabber.org/protocol/httpbind'/><body xmlns='http://jabber.org/protocol/httpbind'/>",
            "",
        ] {
            assert_eq!(parse_body(bad.as_bytes(), limits()), Err(Condition::BadRequest), "{bad}");
        }
    }

    #[test]
    fn response_attribute_values_are_escaped() {
        let body = Head::new().attr("to", "a'b\n<c>").finish(&[]);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "<body xmlns='http://jabber.org/protocol/httpbind' to='a&apos;b&#xA;&lt;c&gt;'/>"
        );
    }

    #[test]
    fn terminate_bodies_carry_their_condition() {
        assert_eq!(
            terminate_body(Some(Condition::ItemNotFound), None, b""),
            b"<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='item-not-found'/>"
        );
        let with = String::from_utf8(terminate_body(
            Some(Condition::RemoteStreamError),
            None,
            b"<stream:error/>",
        ))
        .unwrap();
        assert!(
            with.ends_with("><stream:error/></body>") && with.contains("xmlns:stream"),
            "{with}"
        );
    }
}
