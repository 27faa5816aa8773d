//! Blocking-friendly XML helpers for the test support: a framer that cuts a
//! byte stream into the stream header, top-level elements and the stream end
//! (RFC 6120 §4.2, §4.4), and attribute/text lookups on one complete element.
//!
//! The framer rescans from the start of its buffer on every call, which is
//! quadratic for huge elements but simple enough to trust in tests. It never
//! returns a partial element: bytes split anywhere wait for the rest.

/// One unit of an XMPP stream as seen on TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `<stream:stream ...>` opening tag (RFC 6120 §4.2), raw.
    Header(String),
    /// One complete top-level element, raw.
    Element(String),
    /// `</stream:stream>` (RFC 6120 §4.4).
    StreamEnd,
}

/// Cuts an XMPP stream into [`Frame`]s as bytes arrive.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forgets buffered bytes: used when the transport changes (STARTTLS).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if self.buf.is_empty() {
                return Ok(None);
            }
            if self.buf[0] != b'<' {
                return Err(format!("text at top level: {}", self.lossy(40)));
            }
            if self.buf.starts_with(b"<?") {
                // The XML declaration before a stream header.
                match find(&self.buf, b"?>") {
                    Some(end) => {
                        self.buf.drain(..end + 2);
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            return self.scan_element();
        }
    }

    fn scan_element(&mut self) -> Result<Option<Frame>, String> {
        let mut pos = 0;
        let mut depth = 0usize;
        loop {
            if self.buf[pos..].starts_with(b"<![CDATA[") {
                // Character data inside an element (RFC 6120 §11.1 allows it).
                let Some(len) = find(&self.buf[pos..], b"]]>") else {
                    return Ok(None);
                };
                match self.buf[pos + len..].iter().position(|&b| b == b'<') {
                    Some(next) => pos += len + next,
                    None => return Ok(None),
                }
                continue;
            }
            let Some(end) = tag_end(&self.buf, pos) else {
                return Ok(None);
            };
            let tag = &self.buf[pos..=end];
            if tag.starts_with(b"<!") {
                return Err("comments and DTDs are not allowed in XMPP".into());
            }
            if tag.starts_with(b"</") {
                if depth == 0 {
                    let name = tag_name(&tag[2..]);
                    if !is_stream_name(name) {
                        return Err(format!("unexpected top-level end tag </{}>", lossy(name)));
                    }
                    self.buf.drain(..=end);
                    return Ok(Some(Frame::StreamEnd));
                }
                depth -= 1;
            } else if tag.ends_with(b"/>") {
                // Self-closed: depth unchanged.
            } else if depth == 0 && is_stream_name(tag_name(&tag[1..])) {
                let header = self.take_string(end)?;
                return Ok(Some(Frame::Header(header)));
            } else {
                depth += 1;
            }
            if depth == 0 {
                let element = self.take_string(end)?;
                return Ok(Some(Frame::Element(element)));
            }
            match self.buf[end + 1..].iter().position(|&b| b == b'<') {
                Some(next) => pos = end + 1 + next,
                None => return Ok(None),
            }
        }
    }

    fn take_string(&mut self, end: usize) -> Result<String, String> {
        let bytes: Vec<u8> = self.buf.drain(..=end).collect();
        String::from_utf8(bytes).map_err(|e| format!("invalid utf-8: {e}"))
    }

    fn lossy(&self, max: usize) -> String {
        lossy(&self.buf[..self.buf.len().min(max)])
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Index of the `>` closing the tag that starts at `start`, skipping quoted
/// attribute values (which may contain `>`).
fn tag_end(buf: &[u8], start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in buf.iter().enumerate().skip(start + 1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn tag_name(after_lt: &[u8]) -> &[u8] {
    let end = after_lt
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
        .unwrap_or(after_lt.len());
    &after_lt[..end]
}

fn is_stream_name(name: &[u8]) -> bool {
    name == b"stream" || name.ends_with(b":stream")
}

/// Local name of the root element of `raw`.
pub fn root_name(raw: &str) -> Option<String> {
    xmlparser::Tokenizer::from(raw).find_map(|t| match t {
        Ok(xmlparser::Token::ElementStart { local, .. }) => Some(local.as_str().to_string()),
        _ => None,
    })
}

/// Value of attribute `name` (as written, e.g. `to`, `xml:lang`) on the root
/// element of `raw`, with the predefined entities decoded.
pub fn attr(raw: &str, name: &str) -> Option<String> {
    for token in xmlparser::Tokenizer::from(raw) {
        match token.ok()? {
            xmlparser::Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => {
                let matches = if prefix.is_empty() {
                    local.as_str() == name
                } else {
                    name.split_once(':') == Some((prefix.as_str(), local.as_str()))
                };
                if matches {
                    return Some(unescape(value.as_str()));
                }
            }
            xmlparser::Token::ElementEnd { .. } => return None,
            _ => {}
        }
    }
    None
}

/// Whether `raw` contains an element (root or descendant) with local name `local`.
pub fn has_element(raw: &str, local: &str) -> bool {
    xmlparser::Tokenizer::from(raw).any(
        |t| matches!(t, Ok(xmlparser::Token::ElementStart { local: l, .. }) if l.as_str() == local),
    )
}

/// Text content of the first element (root or descendant) with local name
/// `local`, entities decoded; `Some("")` for an empty element.
pub fn element_text(raw: &str, local: &str) -> Option<String> {
    let mut tokens = xmlparser::Tokenizer::from(raw);
    tokens.find(|t| {
        matches!(t, Ok(xmlparser::Token::ElementStart { local: l, .. }) if l.as_str() == local)
    })?
    .ok()?;
    let mut text = String::new();
    for token in tokens {
        match token.ok()? {
            xmlparser::Token::ElementEnd {
                end: xmlparser::ElementEnd::Open,
                ..
            }
            | xmlparser::Token::Attribute { .. } => {}
            xmlparser::Token::Text { text: t } => text.push_str(&unescape(t.as_str())),
            _ => return Some(text),
        }
    }
    Some(text)
}

/// Decodes the five predefined entities and numeric character references.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(|dec| dec.parse::<u32>()))
                .and_then(|n| n.ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text or attribute values for inclusion in XML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}
