//! The incremental framer: xmlparser tokens over the caller's buffer, trusted
//! only up to a boundary known to be complete.
//!
//! xmlparser returns partial tokens on a cut buffer without error (a text
//! node or a name running into the end) and fails inside a token the buffer
//! cuts. So a text or start-tag name that reaches the end of the validated
//! bytes means "need more", and a tokenizer error is believed only when the
//! construct it started in is already complete in the buffer (see
//! [`truncated`]); otherwise the bytes are a prefix of something longer.
//!
//! Between calls the framer keeps the offset just after the last token known
//! complete (`resume`) with the stack of open element names at that point,
//! so a large element arriving in small reads is tokenized about once.
//! UTF-8 is validated per window from `resume`, sized from the last unit, so
//! a buffer holding many small units is not validated again on every call.

use super::inspect::{reference_len, unescape};
use super::{
    ElementInfo, Error, Frame, FrameKind, Limits, Mode, Restricted, StreamHeader, NS_STREAMS,
};
use std::ops::Range;
use xmlparser::{ElementEnd, StrSpan, Token, Tokenizer};

/// Smallest validation and tokenizing window past `resume`.
const MIN_WINDOW: usize = 512;

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

/// What one scan of a window found.
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
    /// Offset just after the last token of the unit in progress known to be
    /// complete; 0 when no unit is in progress.
    resume: usize,
    /// Qualified-name ranges of the elements open at `resume`.
    stack: Vec<Range<usize>>,
    /// The top element's start tag, filled while the unit is read.
    info: ElementInfo,
    /// Attribute names of the start tag being read (relative to the scanned
    /// text), for the duplicate check.
    attrs: Vec<Range<usize>>,
    /// CDATA sections of the current scan (relative to the scanned text):
    /// a `&` inside one is literal.
    cdata: Vec<Range<usize>>,
    /// How many bytes past `resume` to validate and tokenize first.
    window: usize,
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
            cdata: Vec::new(),
            window: MIN_WINDOW,
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
        self.finish_unit(0);
        self.window = MIN_WINDOW;
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
        // early start at a '<': new bytes with neither (a long text or
        // attribute value trickling in) cannot change the answer. Look back
        // a little so a `<!--` or `<?` cut by the last read is seen.
        if self.waited_len != 0 && input.len() >= self.waited_len {
            let from = self.waited_len.saturating_sub(LOOKBACK).max(self.resume);
            let fresh = input.get(from..).unwrap_or_default();
            if !fresh.iter().any(|&b| b == b'<' || b == b'>') {
                if input.len() > self.limits.max_element_bytes {
                    return Err(Error::TooLarge);
                }
                self.waited_len = input.len();
                return Ok(None);
            }
        }
        let mut window = self.window;
        loop {
            let base = self.resume;
            let end = input.len().min(base.saturating_add(window));
            let (text, broken) = valid_prefix(input.get(base..end).unwrap_or_default());
            let step = match self.phase {
                Phase::Prolog => self.scan_header(text)?,
                Phase::Body => self.scan_body(text, base, input)?,
                Phase::Closed => return after_close(input),
            };
            match step {
                Step::Frame(frame) => {
                    let counted = !matches!(frame.kind, FrameKind::Whitespace);
                    if counted && frame.len > self.limits.max_element_bytes {
                        return Err(Error::TooLarge);
                    }
                    self.finish_unit(frame.len);
                    return Ok(Some(frame));
                }
                Step::NeedMore => {
                    if base + text.len() > self.limits.max_element_bytes {
                        return Err(Error::TooLarge);
                    }
                    if broken {
                        return Err(Error::InvalidUtf8);
                    }
                    if end < input.len() {
                        window = window.saturating_mul(2);
                        continue;
                    }
                    self.waited_len = input.len();
                    return Ok(None);
                }
            }
        }
    }

    fn finish_unit(&mut self, len: usize) {
        self.resume = 0;
        self.stack.clear();
        self.waited_len = 0;
        self.window = len.saturating_mul(2).max(MIN_WINDOW);
    }

    /// Stream mode: the optional XML declaration and the `<stream:stream>`
    /// start tag, always scanned from offset 0 (headers are small).
    fn scan_header(&mut self, text: &str) -> Result<Step, Error> {
        let mut header = StreamHeader::default();
        let mut stream_ns = false;
        let mut last_end = 0;
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
                    self.note_attribute(text, span, local)?;
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

    /// Top-level units, resuming inside the unit in progress at `base`
    /// (`text` starts there; spans are relative to it). References are
    /// checked in one pass over what the scan accepted rather than token by
    /// token: outside CDATA a `&` can only stand in character data or an
    /// attribute value, as the tokenizer refuses it in names and markup.
    fn scan_body(&mut self, text: &str, base: usize, input: &[u8]) -> Result<Step, Error> {
        self.cdata.clear();
        let step = self.tokenize_body(text, base, input)?;
        let accepted = match &step {
            Step::Frame(frame) => frame.len,
            Step::NeedMore => self.resume,
        };
        let accepted = text
            .get(..accepted.saturating_sub(base))
            .unwrap_or_default();
        check_references(accepted, &self.cdata)?;
        Ok(step)
    }

    fn tokenize_body(&mut self, text: &str, base: usize, input: &[u8]) -> Result<Step, Error> {
        if self.stack.is_empty() && self.mode == Mode::Fragments && text.starts_with("<?") {
            return scan_declaration(text);
        }
        let max_depth = self.limits.max_depth;
        // Stack depth at the last complete boundary: a start tag cut by the
        // end of the buffer is rolled back to it.
        let mut committed = self.stack.len();
        let mut last_end = 0;
        let mut in_tag = false;
        let mut tokens = Tokenizer::from_fragment(text, 0..text.len());
        loop {
            let token = match tokens.next() {
                None => break,
                Some(Ok(token)) => token,
                Some(Err(e)) => {
                    self.stack.truncate(committed);
                    return failed(text, last_end, in_tag, false, e);
                }
            };
            match token {
                Token::Text { text: t } => {
                    if self.stack.is_empty() {
                        if !is_whitespace(t.as_str()) {
                            return Err(Error::TextOutsideElement);
                        }
                        return Ok(Step::Frame(Frame {
                            len: base + t.end(),
                            kind: FrameKind::Whitespace,
                        }));
                    }
                    if t.end() == text.len() {
                        break;
                    }
                    last_end = t.end();
                }
                Token::Cdata { span, .. } => {
                    if self.stack.is_empty() {
                        return Err(Error::TextOutsideElement);
                    }
                    self.cdata.push(span.range());
                    last_end = span.end();
                }
                Token::ElementStart {
                    prefix,
                    local,
                    span,
                } => {
                    if span.end() == text.len() {
                        break;
                    }
                    if self.stack.len() >= max_depth {
                        return Err(Error::TooDeep);
                    }
                    let name = base + span.start() + 1..base + span.end();
                    if self.stack.is_empty() {
                        self.info = ElementInfo {
                            name_start: name.start,
                            local_start: base + local.start(),
                            name_end: name.end,
                            ..ElementInfo::default()
                        };
                    }
                    if prefix.as_str() == "stream" {
                        self.info.uses_stream_prefix = true;
                    }
                    self.stack.push(name);
                    self.attrs.clear();
                    in_tag = true;
                    last_end = span.end();
                    continue;
                }
                Token::Attribute {
                    prefix,
                    local,
                    value,
                    span,
                } => {
                    self.note_attribute(text, span, local)?;
                    let prefix = prefix.as_str();
                    if self.stack.len() == 1 {
                        if prefix.is_empty() && local.as_str() == "xmlns" {
                            self.info.default_ns = Some(base + value.start()..base + value.end());
                        } else if prefix == "xmlns" && local.as_str() == "stream" {
                            self.info.declares_stream_prefix = true;
                        }
                    }
                    if prefix == "stream" {
                        self.info.uses_stream_prefix = true;
                    }
                    last_end = span.end();
                    continue;
                }
                Token::ElementEnd { end, span } => {
                    in_tag = false;
                    last_end = span.end();
                    let closed = match end {
                        ElementEnd::Open => false,
                        ElementEnd::Empty => {
                            self.stack.pop();
                            self.info.empty = self.stack.is_empty();
                            true
                        }
                        ElementEnd::Close(prefix, local) => {
                            let name = text.as_bytes().get(span.start() + 2..local.end());
                            match self.stack.pop() {
                                Some(open) => {
                                    if input.get(open) != name {
                                        return Err(Error::MismatchedEndTag);
                                    }
                                }
                                None => {
                                    if self.mode == Mode::Stream
                                        && prefix.as_str() == "stream"
                                        && local.as_str() == "stream"
                                    {
                                        self.phase = Phase::Closed;
                                        return Ok(Step::Frame(Frame {
                                            len: base + span.end(),
                                            kind: FrameKind::StreamClose,
                                        }));
                                    }
                                    return Err(Error::UnexpectedEndTag);
                                }
                            }
                            true
                        }
                    };
                    if closed && self.stack.is_empty() {
                        return Ok(Step::Frame(Frame {
                            len: base + span.end(),
                            kind: FrameKind::Element(std::mem::take(&mut self.info)),
                        }));
                    }
                }
                other => return Err(restricted(&other)),
            }
            // Only reached after a token that ends on a complete boundary.
            self.resume = base + last_end;
            committed = self.stack.len();
        }
        self.stack.truncate(committed);
        Ok(Step::NeedMore)
    }

    /// Count an attribute of the start tag being read and refuse a repeat.
    fn note_attribute(
        &mut self,
        text: &str,
        span: StrSpan<'_>,
        local: StrSpan<'_>,
    ) -> Result<(), Error> {
        if self.attrs.len() >= self.limits.max_attributes {
            return Err(Error::TooManyAttributes);
        }
        let bytes = text.as_bytes();
        let name = span.start()..local.end();
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

/// Every `&` in `text` outside the `cdata` ranges must start an allowed
/// reference (RFC 6120 §11.1).
fn check_references(text: &str, cdata: &[Range<usize>]) -> Result<(), Error> {
    let mut at = 0;
    // `str::find` with an ASCII char is a word-at-a-time memchr.
    while let Some(found) = text.get(at..).and_then(|rest| rest.find('&')) {
        let pos = at + found;
        at = match cdata.iter().find(|section| section.contains(&pos)) {
            Some(section) => section.end,
            None => pos + reference_len(text.get(pos..).unwrap_or_default())?,
        };
    }
    Ok(())
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

/// The longest valid UTF-8 prefix of `bytes`, and whether what follows it is
/// invalid (rather than a character cut by the end of `bytes`).
fn valid_prefix(bytes: &[u8]) -> (&str, bool) {
    // `from_utf8` has a fast ASCII path; `utf8_chunks` walks byte by byte.
    match std::str::from_utf8(bytes) {
        Ok(text) => (text, false),
        Err(e) => {
            let (valid, _) = bytes.split_at(e.valid_up_to());
            let text = std::str::from_utf8(valid).unwrap_or_default();
            (text, e.error_len().is_some())
        }
    }
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_whitespace(s: &str) -> bool {
    s.bytes().all(is_xml_space)
}
