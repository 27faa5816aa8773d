//! Off-the-hot-path helpers: references and escapes, namespace splicing,
//! and a shallow look inside one complete element for stream negotiation.

use super::{ElementInfo, Error, Restricted, NS_STREAMS};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;
use xmlparser::{ElementEnd, Token, Tokenizer};

/// Append `element` (a complete top-level element frame) to `out`, inserting
/// ` xmlns='<default_ns>'` when it declares no default namespace and
/// ` xmlns:stream='http://etherx.jabber.org/streams'` when it uses the
/// `stream` prefix without declaring it, right after its name. A stanza
/// leaving its stream needs both: RFC 7395 §3.3.3 and XEP-0206 §7 carry
/// stanzas outside any `<stream:stream>`. Otherwise the bytes are copied as
/// they are.
pub fn splice_namespaces(element: &[u8], info: &ElementInfo, default_ns: &str, out: &mut Vec<u8>) {
    let at = info.name_end.min(element.len());
    let (head, tail) = element.split_at(at);
    out.reserve(element.len() + 80);
    out.extend_from_slice(head);
    if info.default_ns.is_none() {
        out.extend_from_slice(b" xmlns='");
        out.extend_from_slice(default_ns.as_bytes());
        out.push(b'\'');
    }
    if info.uses_stream_prefix && !info.declares_stream_prefix {
        out.extend_from_slice(b" xmlns:stream='");
        out.extend_from_slice(NS_STREAMS.as_bytes());
        out.push(b'\'');
    }
    out.extend_from_slice(tail);
}

/// A direct child of an element, as [`children`] reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Child {
    /// Namespace prefix of the child's name, if any.
    pub prefix: Option<String>,
    /// Local name.
    pub local: String,
    /// The child's own `xmlns='...'` declaration, unescaped.
    pub ns: Option<String>,
    /// Local names of the child's own direct children, in order.
    pub children: Vec<String>,
    /// The child's direct character data, unescaped and concatenated.
    pub text: String,
    /// Where the child lies in the element, start tag to end tag: what to
    /// cut to leave it out (an optional STARTTLS skipped on loopback).
    pub span: Range<usize>,
}

/// Direct children of one complete element (stream features: is there
/// `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>` and is it
/// `<required/>`; a `<stream:error>`'s condition, RFC 6120 §4.9.2). This
/// allocates: it is for stream negotiation, not for relaying stanzas.
pub fn children(element: &[u8]) -> Result<Vec<Child>, Error> {
    let text = std::str::from_utf8(element).map_err(|_| Error::InvalidUtf8)?;
    let mut out: Vec<Child> = Vec::new();
    let mut depth = 0usize;
    for token in Tokenizer::from_fragment(text, 0..text.len()) {
        match token.map_err(Error::Syntax)? {
            Token::ElementStart {
                prefix,
                local,
                span,
            } => {
                depth += 1;
                if depth == 2 {
                    out.push(Child {
                        prefix: (!prefix.is_empty()).then(|| prefix.as_str().to_owned()),
                        local: local.as_str().to_owned(),
                        span: span.start()..span.end(),
                        ..Child::default()
                    });
                } else if depth == 3 {
                    if let Some(child) = out.last_mut() {
                        child.children.push(local.as_str().to_owned());
                    }
                }
            }
            Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => {
                let value = unescape(value.as_str())?;
                if depth == 2 && prefix.is_empty() && local.as_str() == "xmlns" {
                    if let Some(child) = out.last_mut() {
                        child.ns = Some(value.into_owned());
                    }
                }
            }
            Token::ElementEnd { end, span } => match end {
                ElementEnd::Open => {}
                ElementEnd::Empty | ElementEnd::Close(..) => {
                    if depth == 2 {
                        if let Some(child) = out.last_mut() {
                            child.span.end = span.end();
                        }
                    }
                    depth = depth.checked_sub(1).ok_or(Error::UnexpectedEndTag)?;
                }
            },
            Token::Text { text } | Token::Cdata { text, .. } => {
                if depth == 2 {
                    if let Some(child) = out.last_mut() {
                        child.text.push_str(&unescape(text.as_str())?);
                    }
                }
            }
            Token::Comment { .. } => return Err(Error::Restricted(Restricted::Comment)),
            Token::ProcessingInstruction { .. } | Token::Declaration { .. } => {
                return Err(Error::Restricted(Restricted::ProcessingInstruction))
            }
            Token::DtdStart { .. }
            | Token::EmptyDtd { .. }
            | Token::EntityDeclaration { .. }
            | Token::DtdEnd { .. } => return Err(Error::Restricted(Restricted::Doctype)),
        }
    }
    Ok(out)
}

/// Replace the five predefined entity references and character references
/// in character data or an attribute value (XML 1.0 §4.1, §4.6). Any other
/// entity reference is refused as RFC 6120 §11.1 requires.
pub fn unescape(value: &str) -> Result<Cow<'_, str>, Error> {
    if !value.as_bytes().contains(&b'&') {
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let (c, used) = reference(&rest[amp..])?;
        out.push(c);
        rest = &rest[amp + used..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Append `value` escaped for an attribute value in either quote style
/// (XML 1.0 §2.4, §3.1). Whitespace other than a space goes as a character
/// reference, which a reader's attribute-value normalisation (§3.3.3) would
/// otherwise turn into a space.
pub fn escape_attribute(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => {
                let _ = write!(out, "&#x{:X};", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Decode the reference at the start of `s` (which starts with `&`): the
/// character and the bytes it spans.
fn reference(s: &str) -> Result<(char, usize), Error> {
    // The longest allowed reference is `&#x10FFFF;` or `&#1114111;`; a
    // longer name is an entity we refuse anyway.
    let window = s.get(1..).unwrap_or("");
    let Some(semi) = window.bytes().take(12).position(|b| b == b';') else {
        return Err(
            if window.starts_with(|c: char| c == '_' || c == ':' || c.is_alphabetic()) {
                Error::Restricted(Restricted::EntityReference)
            } else {
                Error::InvalidReference
            },
        );
    };
    let c = decode_reference(window.get(..semi).unwrap_or_default())?;
    Ok((c, semi + 2))
}

/// The character a reference names, given what stands between `&` and `;`.
pub(crate) fn decode_reference(name: &str) -> Result<char, Error> {
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => {
            if let Some(num) = name.strip_prefix('#') {
                let code = match num.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16),
                    None => num.parse::<u32>(),
                };
                // from_str_radix accepts a leading '+', XML does not.
                if num.contains('+') {
                    return Err(Error::InvalidReference);
                }
                code.ok()
                    .and_then(char::from_u32)
                    .filter(|&c| is_xml_char(c))
                    .ok_or(Error::InvalidReference)
            } else if name.starts_with(|c: char| c == '_' || c == ':' || c.is_alphabetic()) {
                Err(Error::Restricted(Restricted::EntityReference))
            } else {
                Err(Error::InvalidReference)
            }
        }
    }
}

/// XML 1.0 §2.2 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
