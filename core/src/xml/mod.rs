//! Incremental XMPP stream framer (RFC 6120 §4) and namespace splicing.
//!
//! Contract: the caller owns the byte buffer. [`Framer::next`] looks at the
//! unconsumed bytes and reports the next complete top-level unit as a byte
//! length from the start of that input (a [`Frame`]), or `Ok(None)` when more
//! bytes are needed. After a frame the caller drops `len` bytes from the front;
//! on every call it passes the same unconsumed bytes, possibly extended with
//! newly read ones, so the framer remembers how far it got inside an
//! incomplete element and never rescans it from the start. Nothing is copied
//! and no DOM is built: the frame's bytes are relayed as they are, with
//! [`splice_namespaces`] adding the declarations a stanza needs when it leaves
//! its stream (RFC 7395 frames and BOSH bodies have no enclosing stream).
//!
//! The framer enforces RFC 6120 §11.1 restricted XML (no comments, processing
//! instructions, DTDs or entity references other than the five predefined
//! ones; CDATA sections are allowed), the well-formedness a tokenizer can see,
//! valid UTF-8 (a character split across reads is normal) and the configured
//! [`Limits`]. Each refusal is an [`Error`] that names its RFC 6120 §4.9.3
//! stream error condition. Not checked: namespace prefixes bound to nothing
//! (the server refuses those with `bad-namespace-prefix`).
//!
//! Stanzas are scanned by a byte-level lexer (about twice xmlparser's
//! tokenize rate); xmlparser reads the stream header and serves [`children`].
//! A differential test holds the lexer to xmlparser's verdicts.

mod framer;
mod inspect;
mod lex;

pub(crate) use framer::is_xml_space;
pub use framer::Framer;
pub use inspect::{children, escape_attribute, splice_namespaces, unescape, Child};

use std::fmt;
use std::ops::Range;

use crate::stream_error::Condition;

/// `jabber:client`, the default content namespace of client streams
/// (RFC 6120 §4.8.3).
pub const NS_CLIENT: &str = "jabber:client";
/// The stream namespace bound to the `stream` prefix (RFC 6120 §4.8.1).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// STARTTLS negotiation namespace (RFC 6120 §5.4.1).
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// Namespace of stream error conditions (RFC 6120 §4.9.2).
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Namespace of the WebSocket `<open/>` and `<close/>` elements
/// (RFC 7395 §3.3.2).
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// Default nesting limit of a top-level unit (the top element is depth 1).
/// Deep real stanzas (MAM results carrying forwarded messages) stay under 16.
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Default limit of attributes on one element, namespace declarations included.
pub const DEFAULT_MAX_ATTRIBUTES: usize = 64;
/// Default size limit of one top-level unit, Prosody's default stanza limit.
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = 256 * 1024;

/// Bounds on what one top-level unit may contain. A unit that exceeds one is
/// refused with `policy-violation` (RFC 6120 §4.9.3.14) as soon as that is
/// known, without buffering the rest of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting inside one top-level unit; the top element is depth 1.
    pub max_depth: usize,
    /// Most attributes on any one element, namespace declarations included.
    pub max_attributes: usize,
    /// Largest top-level unit in bytes, from its `<` to its end (the stream
    /// header frame includes any XML declaration before it).
    pub max_element_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_element_bytes: DEFAULT_MAX_ELEMENT_BYTES,
        }
    }
}

/// What shape of byte stream the framer cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A server or client stream (RFC 6120 §4): optional `<?xml ...?>`
    /// declaration, then the `<stream:stream ...>` header (not closed), then
    /// top-level children, then `</stream:stream>`.
    Stream,
    /// Standalone elements one after another with no enclosing stream
    /// (RFC 7395 WebSocket messages, XEP-0124 BOSH `<body/>`). An XML
    /// declaration is accepted before any element and reported on its own.
    Fragments,
}

/// One complete top-level unit at the start of the caller's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes from the start of the input that make up this unit.
    pub len: usize,
    /// What the unit is.
    pub kind: FrameKind,
}

/// The kinds of top-level unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// `<stream:stream ...>` (Stream mode, RFC 6120 §4.7); `len` includes any
    /// XML declaration and whitespace before it.
    StreamOpen(StreamHeader),
    /// A complete top-level element: a child of the stream in Stream mode, a
    /// standalone element in Fragments mode. The frame starts with its `<`.
    Element(ElementInfo),
    /// `</stream:stream>` (RFC 6120 §4.4). Only whitespace may follow.
    StreamClose,
    /// Whitespace between top-level elements (RFC 6120 §4.6.1 keepalives);
    /// the caller may drop or forward it.
    Whitespace,
    /// An XML declaration before an element in Fragments mode; the caller
    /// drops it (it must not be relayed inside another document).
    Declaration,
}

/// The attributes of a stream header (RFC 6120 §4.7), entity-unescaped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// `to` (RFC 6120 §4.7.2).
    pub to: Option<String>,
    /// `from` (RFC 6120 §4.7.1).
    pub from: Option<String>,
    /// `id` (RFC 6120 §4.7.3).
    pub id: Option<String>,
    /// `version` (RFC 6120 §4.7.5).
    pub version: Option<String>,
    /// `xml:lang` (RFC 6120 §4.7.4).
    pub lang: Option<String>,
    /// The default content namespace, `xmlns` (RFC 6120 §4.8.3).
    pub ns: Option<String>,
}

/// Where the interesting parts of a top-level element's start tag lie. All
/// offsets are from the start of the element's frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElementInfo {
    /// Start of the qualified name (just after `<`).
    pub name_start: usize,
    /// Start of the local name (after `prefix:`, or `name_start`).
    pub local_start: usize,
    /// Just after the qualified name in the start tag: where namespace
    /// declarations can be spliced in.
    pub name_end: usize,
    /// Value range (still escaped) of the element's own `xmlns='...'`.
    pub default_ns: Option<Range<usize>>,
    /// The start tag declares `xmlns:stream`.
    pub declares_stream_prefix: bool,
    /// Some element or attribute name in the element uses the `stream:`
    /// prefix (`<stream:error>`, `<stream:features>`).
    pub uses_stream_prefix: bool,
    /// The element is self-closing (`<x/>`).
    pub empty: bool,
}

impl ElementInfo {
    /// The qualified name, `prefix:local` or `local`.
    pub fn qualified_name<'a>(&self, frame: &'a [u8]) -> &'a str {
        str_at(frame, self.name_start..self.name_end)
    }

    /// The local name.
    pub fn local_name<'a>(&self, frame: &'a [u8]) -> &'a str {
        str_at(frame, self.local_start..self.name_end)
    }

    /// The namespace prefix, if the name has one.
    pub fn prefix<'a>(&self, frame: &'a [u8]) -> Option<&'a str> {
        (self.local_start > self.name_start)
            .then(|| str_at(frame, self.name_start..self.local_start - 1))
    }

    /// The value of the element's own `xmlns='...'` declaration (namespace
    /// names in XMPP contain no character that needs escaping).
    pub fn namespace<'a>(&self, frame: &'a [u8]) -> Option<&'a str> {
        self.default_ns.clone().map(|r| str_at(frame, r))
    }
}

fn str_at(frame: &[u8], range: Range<usize>) -> &str {
    frame
        .get(range)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

/// A construct RFC 6120 §11.1 forbids in XMPP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restricted {
    /// `<!DOCTYPE ...>` or any DTD declaration.
    Doctype,
    /// `<!-- ... -->`.
    Comment,
    /// `<?target ...?>`, or an XML declaration anywhere but the start.
    ProcessingInstruction,
    /// `&name;` other than `&lt; &gt; &amp; &apos; &quot;`.
    EntityReference,
}

/// Why the framer refused the stream. Each maps to an RFC 6120 §4.9.3
/// stream error condition through [`Error::condition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Bytes that are not UTF-8 (RFC 6120 §11.6).
    InvalidUtf8,
    /// Malformed XML as xmlparser reports it (stream header, [`children`]).
    Syntax(xmlparser::Error),
    /// Malformed XML as the framer's scanner finds it.
    Malformed(&'static str),
    /// An end tag that does not match the open element.
    MismatchedEndTag,
    /// An end tag with no open element (other than `</stream:stream>`).
    UnexpectedEndTag,
    /// Character data that is not whitespace outside any element.
    TextOutsideElement,
    /// The same attribute twice on one element.
    DuplicateAttribute,
    /// A `&` that does not start a valid reference, or a character
    /// reference to a character XML does not allow.
    InvalidReference,
    /// A construct RFC 6120 §11.1 forbids.
    Restricted(Restricted),
    /// The first element of a stream is not `<stream:stream>`.
    NotStreamHeader,
    /// The stream header does not bind `stream` to [`NS_STREAMS`].
    InvalidStreamNamespace,
    /// Something other than whitespace after `</stream:stream>`.
    DataAfterClose,
    /// Nesting deeper than [`Limits::max_depth`].
    TooDeep,
    /// More attributes than [`Limits::max_attributes`] on one element.
    TooManyAttributes,
    /// A unit larger than [`Limits::max_element_bytes`].
    TooLarge,
}

impl Error {
    /// The RFC 6120 §4.9.3 stream error condition to send for this error.
    pub fn condition(&self) -> Condition {
        match self {
            Error::InvalidUtf8 => Condition::UnsupportedEncoding,
            Error::Syntax(_)
            | Error::Malformed(_)
            | Error::MismatchedEndTag
            | Error::UnexpectedEndTag
            | Error::DuplicateAttribute
            | Error::InvalidReference
            | Error::DataAfterClose => Condition::NotWellFormed,
            Error::TextOutsideElement | Error::NotStreamHeader => Condition::BadFormat,
            Error::Restricted(_) => Condition::RestrictedXml,
            Error::InvalidStreamNamespace => Condition::InvalidNamespace,
            Error::TooDeep | Error::TooManyAttributes | Error::TooLarge => {
                Condition::PolicyViolation
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUtf8 => f.write_str("invalid utf-8"),
            Error::Syntax(e) => write!(f, "malformed xml: {e}"),
            Error::Malformed(what) => write!(f, "malformed xml: {what}"),
            Error::MismatchedEndTag => f.write_str("end tag does not match the open element"),
            Error::UnexpectedEndTag => f.write_str("end tag without an open element"),
            Error::TextOutsideElement => f.write_str("character data outside any element"),
            Error::DuplicateAttribute => f.write_str("duplicate attribute"),
            Error::InvalidReference => f.write_str("invalid character or entity reference"),
            Error::Restricted(Restricted::Doctype) => f.write_str("dtd refused"),
            Error::Restricted(Restricted::Comment) => f.write_str("comment refused"),
            Error::Restricted(Restricted::ProcessingInstruction) => {
                f.write_str("processing instruction refused")
            }
            Error::Restricted(Restricted::EntityReference) => {
                f.write_str("entity reference refused")
            }
            Error::NotStreamHeader => f.write_str("expected a <stream:stream> header"),
            Error::InvalidStreamNamespace => {
                f.write_str("stream prefix not bound to the streams namespace")
            }
            Error::DataAfterClose => f.write_str("data after the stream close"),
            Error::TooDeep => f.write_str("element nesting too deep"),
            Error::TooManyAttributes => f.write_str("too many attributes"),
            Error::TooLarge => f.write_str("element too large"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
