//! The incremental framer. Top-level units are found by a byte-level scanner
//! ([`super::lex`]) that checks what XMPP needs on the way — names, attribute
//! syntax, references, forbidden characters and constructs, matching end
//! tags, limits — in one pass over the bytes. xmlparser reads the stream
//! header (once per stream) and serves [`super::children`].
//!
//! Why not xmlparser on the hot path: it decodes and classifies every
//! character (~36 instructions a byte here); a framer built on it measured
//! about 0.73x of its plain tokenize rate even before per-unit work, while
//! this scanner spends a few instructions a byte on lookup tables.
//!
//! Between calls the framer keeps the offset just after the last construct
//! known to be complete (`resume`: after a tag, or inside character data)
//! with the stack of open element names at that point, so a large element
//! arriving in small reads is scanned about once. UTF-8 is validated once
//! per byte, up to the end of each frame or of the input (`valid_to`).

use super::inspect::unescape;
use super::lex::{self, QName, Scan};
use super::{
    ElementInfo, Error, Frame, FrameKind, Limits, Mode, Restricted, StreamHeader, NS_STREAMS,
};
use std::ops::Range;
use xmlparser::{ElementEnd, Token, Tokenizer};

/// Bytes before the previous end of input that the no-progress check looks
/// at again: the longest markup opener, `<![CDATA[`.
const LOOKBACK: usize = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Stream mode before the header: XML declaration, then `<stream:stream>`.
    Prolog,
    /// Top-level units (children of the stream, or standalone fragments).
    Body,
    /// After `</stream:stream>`: only whitespace may follow.
    Closed,
}

/// What one scan found.
enum Step {
    Frame(Frame),
    NeedMore,
}

/// Cuts an XMPP byte stream into top-level units (RFC 6120 §4). See the
/// module documentation for the calling contract.
#[derive(Debug)]
pub struct Framer {
    mode: Mode,
    limits: Limits,
    phase: Phase,
    /// Offset just after the last construct of the unit in progress known to
    /// be complete; 0 when no unit is in progress.
    resume: usize,
    /// Qualified-name ranges of the elements open at `resume`.
    stack: Vec<Range<usize>>,
    /// The top element's start tag, filled while the unit is read.
    info: ElementInfo,
    /// Attribute names of the start tag being read, for the duplicate check.
    attrs: Vec<Range<usize>>,
    /// The input up to here is valid UTF-8 (it ends on a character boundary).
    valid_to: usize,
    /// Input length at the last `Ok(None)`; 0 after a frame.
    waited_len: usize,
}

impl Framer {
    /// A framer at the start of a stream (or of a fragment sequence).
    pub fn new(mode: Mode, limits: Limits) -> Self {
        Framer {
            mode,
            limits,
            phase: Self::first_phase(mode),
            resume: 0,
            stack: Vec::new(),
            info: ElementInfo::default(),
            attrs: Vec::new(),
            valid_to: 0,
            waited_len: 0,
        }
    }

    fn first_phase(mode: Mode) -> Phase {
        match mode {
            Mode::Stream => Phase::Prolog,
            Mode::Fragments => Phase::Body,
        }
    }

    /// Forget all state and expect a new stream header: the stream restarts
    /// after STARTTLS and SASL (RFC 6120 §5.4.3.3, §6.4.6), and the caller
    /// drops whatever it still buffered of the old stream.
    pub fn reset(&mut self) {
        self.phase = Self::first_phase(self.mode);
        self.finish_unit();
        self.valid_to = 0;
    }

    /// The next complete unit at the start of `input`, or `Ok(None)` when
    /// more bytes are needed. `input` must be the bytes left after the
    /// previous frame, possibly extended; after `Ok(Some(frame))` the caller
    /// drops `frame.len` bytes before calling again. After an error the
    /// stream is dead: send the error's condition and close.
    pub fn next(&mut self, input: &[u8]) -> Result<Option<Frame>, Error> {
        if self.phase == Phase::Closed {
            return after_close(input);
        }
        if input.len() <= self.resume {
            return Ok(None);
        }
        // A unit can only complete at a '>', and the refusals worth raising
        // early start at a '<': new bytes with neither (a long attribute
        // value trickling in) cannot change the answer. Look back a little
        // so a `<!--` or `<?` cut by the last read is seen. Past the limit
        // the bytes are scanned, for a fault before it to win as it does
        // when they come at once.
        if self.waited_len != 0
            && input.len() >= self.waited_len
            && input.len() <= self.limits.max_element_bytes
        {
            let from = self.waited_len.saturating_sub(LOOKBACK).max(self.resume);
            let fresh = input.get(from..).unwrap_or_default();
            if !fresh.iter().any(|&b| b == b'<' || b == b'>') {
                self.validate(input, input.len())?;
                self.waited_len = input.len();
                return Ok(None);
            }
        }
        // A unit cannot go on past the limit: scanning no further refuses
        // one both too large and malformed as too large, however its bytes
        // arrive.
        let scanned = input
            .get(..self.limits.max_element_bytes.saturating_add(1))
            .unwrap_or(input);
        let step = match self.phase {
            Phase::Prolog => self.scan_header(scanned)?,
            Phase::Body => self.scan_body(scanned)?,
            Phase::Closed => return after_close(input),
        };
        match step {
            Step::Frame(frame) => {
                let counted = !matches!(frame.kind, FrameKind::Whitespace);
                if counted && frame.len > self.limits.max_element_bytes {
                    return Err(Error::TooLarge);
                }
                self.validate(input, frame.len)?;
                self.valid_to -= frame.len.min(self.valid_to);
                self.finish_unit();
                Ok(Some(frame))
            }
            Step::NeedMore => {
                if input.len() > self.limits.max_element_bytes {
                    return Err(Error::TooLarge);
                }
                self.validate(input, input.len())?;
                self.waited_len = input.len();
                Ok(None)
            }
        }
    }

    /// [`Framer::next`] over input already known to be UTF-8 (a WebSocket
    /// text message, validated by its codec): not validated again.
    pub fn next_in_text(&mut self, input: &str) -> Result<Option<Frame>, Error> {
        self.valid_to = self.valid_to.max(input.len());
        self.next(input.as_bytes())
    }

    /// Validate UTF-8 from `valid_to` up to `end` (RFC 6120 §11.6). A
    /// character cut by the end of the input is normal: it completes later.
    fn validate(&mut self, input: &[u8], end: usize) -> Result<(), Error> {
        let Some(fresh) = input.get(self.valid_to..end) else {
            return Ok(());
        };
        match std::str::from_utf8(fresh) {
            Ok(_) => self.valid_to = end,
            Err(e) if e.error_len().is_none() && end == input.len() => {
                self.valid_to += e.valid_up_to();
            }
            Err(_) => return Err(Error::InvalidUtf8),
        }
        Ok(())
    }

    fn finish_unit(&mut self) {
        self.resume = 0;
        self.stack.clear();
        self.waited_len = 0;
    }

    /// Stream mode: the optional XML declaration and the `<stream:stream>`
    /// start tag, read by xmlparser from offset 0 (headers are small).
    fn scan_header(&mut self, input: &[u8]) -> Result<Step, Error> {
        let text = valid_prefix(input);
        let mut header = StreamHeader::default();
        let mut stream_ns = false;
        // The tokenizer skips a byte-order mark; a cut construct after one
        // starts past it.
        let mut last_end = if text.starts_with('\u{feff}') { 3 } else { 0 };
        let mut in_tag = false;
        self.attrs.clear();
        for token in Tokenizer::from(text) {
            let token = match token {
                Ok(token) => token,
                Err(e) => return failed(text, last_end, in_tag, true, e),
            };
            match token {
                Token::Declaration { span, .. } => last_end = span.end(),
                Token::ElementStart {
                    prefix,
                    local,
                    span,
                } => {
                    if span.end() == text.len() {
                        return Ok(Step::NeedMore);
                    }
                    if prefix.as_str() != "stream" || local.as_str() != "stream" {
                        return Err(Error::NotStreamHeader);
                    }
                    in_tag = true;
                    last_end = span.end();
                }
                Token::Attribute {
                    prefix,
                    local,
                    value,
                    span,
                } => {
                    self.note_attribute(text.as_bytes(), span.start()..local.end())?;
                    let value = unescape(value.as_str())?.into_owned();
                    let slot = match (prefix.as_str(), local.as_str()) {
                        ("", "to") => &mut header.to,
                        ("", "from") => &mut header.from,
                        ("", "id") => &mut header.id,
                        ("", "version") => &mut header.version,
                        ("", "xmlns") => &mut header.ns,
                        ("xml", "lang") => &mut header.lang,
                        ("xmlns", "stream") => {
                            stream_ns = value == NS_STREAMS;
                            last_end = span.end();
                            continue;
                        }
                        _ => {
                            last_end = span.end();
                            continue;
                        }
                    };
                    *slot = Some(value);
                    last_end = span.end();
                }
                Token::ElementEnd {
                    end: ElementEnd::Open,
                    span,
                } => {
                    if !stream_ns {
                        return Err(Error::InvalidStreamNamespace);
                    }
                    self.phase = Phase::Body;
                    return Ok(Step::Frame(Frame {
                        len: span.end(),
                        kind: FrameKind::StreamOpen(header),
                    }));
                }
                Token::ElementEnd { .. } => return Err(Error::NotStreamHeader),
                Token::Text { .. } | Token::Cdata { .. } => return Err(Error::TextOutsideElement),
                other => return Err(restricted(&other)),
            }
        }
        Ok(Step::NeedMore)
    }

    /// Top-level units, scanning bytes from `resume` inside the unit in
    /// progress.
    fn scan_body(&mut self, input: &[u8]) -> Result<Step, Error> {
        // Stack depth at the last complete boundary: a start tag cut by the
        // end of the input is rolled back to it.
        let mut committed = self.stack.len();
        let mut p = self.resume;
        loop {
            let top = self.stack.is_empty();
            if !top {
                match lex::text(input, p)? {
                    Scan::Done(lt) => {
                        p = lt;
                        self.resume = lt;
                    }
                    Scan::Cut(at) => {
                        self.resume = at;
                        return Ok(Step::NeedMore);
                    }
                }
            } else if let Some(step) = self.top_level(input, p)? {
                return Ok(step);
            }
            // `p` is at a '<'.
            let markup = match input.get(p + 1) {
                None => Markup::Cut,
                Some(b'/') => self.end_tag(input, p)?,
                Some(b'!') => bang(input, p, top)?,
                Some(b'?') => return Err(Error::Restricted(Restricted::ProcessingInstruction)),
                Some(_) => self.start_tag(input, p)?,
            };
            match markup {
                Markup::Cut => {
                    self.stack.truncate(committed);
                    return Ok(Step::NeedMore);
                }
                Markup::Frame(frame) => return Ok(Step::Frame(frame)),
                Markup::Next(end) => {
                    p = end;
                    self.resume = end;
                    committed = self.stack.len();
                }
            }
        }
    }

    /// Between top-level units (`p` is 0): whitespace, an XML declaration in
    /// Fragments mode, or the `<` of the next unit (`Ok(None)`).
    fn top_level(&mut self, input: &[u8], p: usize) -> Result<Option<Step>, Error> {
        let after = lex::skip_space(input, p);
        if after > p {
            return Ok(Some(Step::Frame(Frame {
                len: after,
                kind: FrameKind::Whitespace,
            })));
        }
        match input.get(p) {
            None => Ok(Some(Step::NeedMore)),
            Some(b'<') if self.mode == Mode::Fragments && input.get(p + 1) == Some(&b'?') => {
                // Declarations are short: read up to the first '>'.
                let end = input
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(input.len(), |gt| gt + 1);
                let head = input.get(..end).unwrap_or_default();
                scan_declaration(valid_prefix(head)).map(Some)
            }
            Some(b'<') => Ok(None),
            Some(_) => Err(Error::TextOutsideElement),
        }
    }

    /// A start tag at `p` (XML 1.0 §3.1 `STag`/`EmptyElemTag`).
    fn start_tag(&mut self, input: &[u8], p: usize) -> Result<Markup, Error> {
        let Some(name) = lex::qname(input, p + 1)? else {
            return Ok(Markup::Cut);
        };
        if self.stack.len() >= self.limits.max_depth {
            return Err(Error::TooDeep);
        }
        let top = self.stack.is_empty();
        if top {
            self.info = ElementInfo {
                name_start: name.start,
                local_start: name.local,
                name_end: name.end,
                ..ElementInfo::default()
            };
        }
        if name.prefix(input) == b"stream" {
            self.info.uses_stream_prefix = true;
        }
        self.stack.push(name.start..name.end);
        self.attrs.clear();
        let mut i = name.end;
        loop {
            let at = lex::skip_space(input, i);
            match input.get(at) {
                None => return Ok(Markup::Cut),
                Some(b'>') => return Ok(Markup::Next(at + 1)),
                Some(b'/') => {
                    match input.get(at + 1) {
                        None => return Ok(Markup::Cut),
                        Some(b'>') => {}
                        Some(_) => return Err(Error::Malformed("expected '>' after '/'")),
                    }
                    self.stack.pop();
                    if self.stack.is_empty() {
                        self.info.empty = true;
                        return Ok(Markup::Frame(self.element_frame(at + 2)));
                    }
                    return Ok(Markup::Next(at + 2));
                }
                Some(_) if at == i => {
                    return Err(Error::Malformed("expected whitespace before an attribute"))
                }
                Some(_) => {}
            }
            let Some(attr) = lex::qname(input, at)? else {
                return Ok(Markup::Cut);
            };
            let mut j = lex::skip_space(input, attr.end);
            match input.get(j) {
                None => return Ok(Markup::Cut),
                Some(b'=') => j = lex::skip_space(input, j + 1),
                Some(_) => return Err(Error::Malformed("expected '=' after an attribute name")),
            }
            let quote = match input.get(j) {
                None => return Ok(Markup::Cut),
                Some(&quote @ (b'\'' | b'"')) => quote,
                Some(_) => return Err(Error::Malformed("expected a quoted attribute value")),
            };
            let value = j + 1..match lex::value(input, j + 1, quote)? {
                Scan::Done(end) => end,
                Scan::Cut(_) => return Ok(Markup::Cut),
            };
            self.note_attribute(input, attr.start..attr.end)?;
            self.note_namespaces(input, attr, value.clone(), top);
            i = value.end + 1;
        }
    }

    /// Record what splicing needs to know about an attribute.
    fn note_namespaces(&mut self, input: &[u8], attr: QName, value: Range<usize>, top: bool) {
        let prefix = attr.prefix(input);
        if top {
            let local = attr.local_part(input);
            if prefix.is_empty() && local == b"xmlns" {
                self.info.default_ns = Some(value);
            } else if prefix == b"xmlns" && local == b"stream" {
                self.info.declares_stream_prefix = true;
            }
        }
        if prefix == b"stream" {
            self.info.uses_stream_prefix = true;
        }
    }

    /// An end tag at `p` (XML 1.0 §3.1 `ETag`).
    fn end_tag(&mut self, input: &[u8], p: usize) -> Result<Markup, Error> {
        let at = p + 2;
        // Nearly always the name of the open element, already checked by
        // its start tag: compared in place rather than scanned again. A name
        // scanned otherwise is another one: had it been the open element's,
        // it would have compared equal here.
        let closes_open = self.stack.last().is_some_and(|open| {
            input.get(at..at + open.len()) == input.get(open.clone())
                && input
                    .get(at + open.len())
                    .is_some_and(|&b| !lex::may_continue_name(b))
        });
        let name_end = match self.stack.last() {
            Some(open) if closes_open => at + open.len(),
            _ => match lex::qname(input, at)? {
                Some(name) => name.end,
                None => return Ok(Markup::Cut),
            },
        };
        let gt = lex::skip_space(input, name_end);
        match input.get(gt) {
            None => return Ok(Markup::Cut),
            Some(b'>') => {}
            Some(_) => return Err(Error::Malformed("expected '>' in an end tag")),
        }
        let end = gt + 1;
        match self.stack.pop() {
            Some(_) if !closes_open => Err(Error::MismatchedEndTag),
            Some(_) => {
                if self.stack.is_empty() {
                    return Ok(Markup::Frame(self.element_frame(end)));
                }
                Ok(Markup::Next(end))
            }
            None if self.mode == Mode::Stream
                && input.get(at..name_end) == Some(b"stream:stream") =>
            {
                self.phase = Phase::Closed;
                Ok(Markup::Frame(Frame {
                    len: end,
                    kind: FrameKind::StreamClose,
                }))
            }
            None => Err(Error::UnexpectedEndTag),
        }
    }

    fn element_frame(&mut self, len: usize) -> Frame {
        Frame {
            len,
            kind: FrameKind::Element(std::mem::take(&mut self.info)),
        }
    }

    /// Count an attribute of the start tag being read and refuse a repeat.
    fn note_attribute(&mut self, bytes: &[u8], name: Range<usize>) -> Result<(), Error> {
        if self.attrs.len() >= self.limits.max_attributes {
            return Err(Error::TooManyAttributes);
        }
        let this = bytes.get(name.clone());
        if self
            .attrs
            .iter()
            .any(|seen| bytes.get(seen.clone()) == this)
        {
            return Err(Error::DuplicateAttribute);
        }
        self.attrs.push(name);
        Ok(())
    }
}

/// What a piece of markup turned out to be.
enum Markup {
    /// The input ends inside it.
    Cut,
    /// It completed a top-level unit.
    Frame(Frame),
    /// It is complete and the unit goes on after this offset.
    Next(usize),
}

/// `<!` at `p`: a CDATA section inside an element (allowed, RFC 6120 §11.1
/// does not list it), or a comment or DTD (refused as soon as recognized).
fn bang(input: &[u8], p: usize, top: bool) -> Result<Markup, Error> {
    let rest = input.get(p..).unwrap_or_default();
    if rest.starts_with(b"<![CDATA[") {
        if top {
            return Err(Error::TextOutsideElement);
        }
        return Ok(match lex::cdata(input, p + 9)? {
            Scan::Done(end) => Markup::Next(end),
            Scan::Cut(_) => Markup::Cut,
        });
    }
    if rest.starts_with(b"<!--") {
        return Err(Error::Restricted(Restricted::Comment));
    }
    if rest.starts_with(b"<!DOCTYPE") || rest.starts_with(b"<!ENTITY") {
        return Err(Error::Restricted(Restricted::Doctype));
    }
    let cut = |literal: &[u8]| literal.starts_with(rest);
    if cut(b"<![CDATA[") || cut(b"<!--") || cut(b"<!DOCTYPE") || cut(b"<!ENTITY") {
        return Ok(Markup::Cut);
    }
    Err(Error::Malformed("unknown markup after '<!'"))
}

/// Fragments mode: an XML declaration before an element.
fn scan_declaration(text: &str) -> Result<Step, Error> {
    match Tokenizer::from(text).next() {
        Some(Ok(Token::Declaration { span, .. })) => Ok(Step::Frame(Frame {
            len: span.end(),
            kind: FrameKind::Declaration,
        })),
        Some(Ok(other)) => Err(restricted(&other)),
        Some(Err(e)) => failed(text, 0, false, true, e),
        None => Ok(Step::NeedMore),
    }
}

/// After `</stream:stream>` only whitespace may come (XML 1.0 §2.8 `Misc`).
fn after_close(input: &[u8]) -> Result<Option<Frame>, Error> {
    let len = input.iter().take_while(|&&b| is_xml_space(b)).count();
    if len > 0 {
        Ok(Some(Frame {
            len,
            kind: FrameKind::Whitespace,
        }))
    } else if input.is_empty() {
        Ok(None)
    } else {
        Err(Error::DataAfterClose)
    }
}

/// The error for a token RFC 6120 §11.1 forbids.
fn restricted(token: &Token<'_>) -> Error {
    Error::Restricted(match token {
        Token::Comment { .. } => Restricted::Comment,
        Token::DtdStart { .. }
        | Token::EmptyDtd { .. }
        | Token::EntityDeclaration { .. }
        | Token::DtdEnd { .. } => Restricted::Doctype,
        _ => Restricted::ProcessingInstruction,
    })
}

/// A tokenizer error at the token starting at `last_end`: believe it only
/// when that construct is complete in `text`.
fn failed(
    text: &str,
    last_end: usize,
    in_tag: bool,
    prolog: bool,
    e: xmlparser::Error,
) -> Result<Step, Error> {
    let rest = text.as_bytes().get(last_end..).unwrap_or_default();
    if truncated(rest, in_tag, prolog)? {
        Ok(Step::NeedMore)
    } else {
        Err(Error::Syntax(e))
    }
}

/// Whether `rest` (from the start of the construct the tokenizer failed in)
/// may be a cut prefix of something valid. Refuses forbidden constructs as
/// soon as their first bytes show, so a never-ending comment is not buffered.
fn truncated(rest: &[u8], in_tag: bool, prolog: bool) -> Result<bool, Error> {
    if in_tag {
        return Ok(!has_tag_end(rest));
    }
    let start = rest.iter().take_while(|&&b| is_xml_space(b)).count();
    let rest = rest.get(start..).unwrap_or_default();
    let cut = |literal: &[u8]| literal.starts_with(rest);
    match rest {
        [] | [b'<'] => Ok(true),
        [b'<', b'!', ..] => {
            if rest.starts_with(b"<![CDATA[") {
                Ok(!contains(rest, b"]]>"))
            } else if rest.starts_with(b"<!--") {
                Err(Error::Restricted(Restricted::Comment))
            } else if rest.starts_with(b"<!DOCTYPE") || rest.starts_with(b"<!ENTITY") {
                Err(Error::Restricted(Restricted::Doctype))
            } else {
                Ok(cut(b"<![CDATA[") || cut(b"<!--") || cut(b"<!DOCTYPE") || cut(b"<!ENTITY"))
            }
        }
        [b'<', b'?', ..] => {
            if prolog && (rest.starts_with(b"<?xml ") || cut(b"<?xml ")) {
                Ok(!contains(rest, b"?>"))
            } else {
                Err(Error::Restricted(Restricted::ProcessingInstruction))
            }
        }
        [b'<', b'/', ..] => Ok(!rest.contains(&b'>')),
        [b'<', ..] => Ok(!has_tag_end(rest)),
        _ => Ok(false),
    }
}

/// Whether a `>` outside quoted attribute values closes the tag.
fn has_tag_end(rest: &[u8]) -> bool {
    let mut quote = 0u8;
    for &b in rest {
        if quote != 0 {
            if b == quote {
                quote = 0;
            }
        } else if b == b'"' || b == b'\'' {
            quote = b;
        } else if b == b'>' {
            return true;
        }
    }
    false
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The longest valid UTF-8 prefix of `bytes` (the caller's `validate`
/// reports what follows it, if invalid).
fn valid_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let (valid, _) = bytes.split_at(e.valid_up_to());
            std::str::from_utf8(valid).unwrap_or_default()
        }
    }
}

/// XML white space (XML 1.0 §2.3 `S`): not form feed or vertical tab.
pub(crate) fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}
