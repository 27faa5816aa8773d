//! Byte-level XML lexing for the framer's hot path: names, character data,
//! attribute values and references, checked as XML 1.0 (5th edition)
//! requires. Works on unvalidated bytes: every structural byte is ASCII, and
//! a UTF-8 lead or continuation byte is never ASCII, so a split or invalid
//! sequence cannot be mistaken for markup; UTF-8 itself is validated apart.

use super::{Error, Restricted};

/// XML whitespace, `S` (XML 1.0 §2.3).
const SPACE: u8 = 1;
/// ASCII `NameStartChar`; bytes from 0x80 are checked as decoded chars.
const NAME_START: u8 = 2;
/// ASCII `NameChar`.
const NAME: u8 = 4;
/// Bytes the character data loop must stop at: `<`, `&`, `]` (for `]]>`),
/// control characters XML forbids, and 0xEF (U+FFFE and U+FFFF).
const TEXT_STOP: u8 = 8;
/// Bytes an attribute value loop must stop at: quotes, `<`, `&`, forbidden
/// controls, 0xEF.
const VALUE_STOP: u8 = 16;
/// Bytes a CDATA section loop must stop at: `]`, forbidden controls, 0xEF.
const CDATA_STOP: u8 = 32;
/// Bytes from 0x80: part of a multi-byte character.
const HIGH: u8 = 64;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        if space {
            class |= SPACE;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b == b':' {
            class |= NAME_START | NAME;
        }
        if b.is_ascii_digit() || b == b'-' || b == b'.' {
            class |= NAME;
        }
        if b < 0x20 && !space {
            class |= TEXT_STOP | VALUE_STOP | CDATA_STOP;
        }
        if b == b'<' || b == b'&' {
            class |= TEXT_STOP | VALUE_STOP;
        }
        if b == b']' {
            class |= TEXT_STOP | CDATA_STOP;
        }
        if b == b'\'' || b == b'"' {
            class |= VALUE_STOP;
        }
        if b == 0xEF {
            class |= TEXT_STOP | VALUE_STOP | CDATA_STOP;
        }
        if b >= 0x80 {
            class |= HIGH;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// XML whitespace (`S`).
pub(crate) fn is_space(b: u8) -> bool {
    class(b) & SPACE != 0
}

/// Whether a name may go on with byte `b`: an ASCII `NameChar`, or any
/// byte of a character beyond ASCII.
pub(crate) fn may_continue_name(b: u8) -> bool {
    class(b) & (NAME | HIGH) != 0
}

/// Index of the first non-space byte at or after `i` (or `bytes.len()`).
pub(crate) fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|&b| is_space(b)) {
        i += 1;
    }
    i
}

/// The multi-byte character at `i`, or `Ok(None)` when the input ends
/// inside it.
fn char_at(bytes: &[u8], i: usize) -> Result<Option<(char, usize)>, Error> {
    let lead = bytes.get(i).copied().unwrap_or(0);
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Err(Error::InvalidUtf8),
    };
    let Some(seq) = bytes.get(i..i + len) else {
        // Cut by the end of the input; the validator decides if it can
        // still become valid.
        return match std::str::from_utf8(bytes.get(i..).unwrap_or_default()) {
            Err(e) if e.error_len().is_some() => Err(Error::InvalidUtf8),
            _ => Ok(None),
        };
    };
    let c = std::str::from_utf8(seq)
        .ok()
        .and_then(|s| s.chars().next())
        .ok_or(Error::InvalidUtf8)?;
    Ok(Some((c, len)))
}

/// XML 1.0 §2.3 `NameStartChar` beyond ASCII.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}'
        | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}'
        | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 §2.3 `NameChar` beyond ASCII.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c) || matches!(c, '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A qualified name found by [`qname`]: absolute offsets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QName {
    pub start: usize,
    /// Start of the local part (`start` when there is no prefix).
    pub local: usize,
    pub end: usize,
}

impl QName {
    pub fn prefix<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        if self.local > self.start {
            bytes.get(self.start..self.local - 1).unwrap_or_default()
        } else {
            &[]
        }
    }

    pub fn local_part<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes.get(self.local..self.end).unwrap_or_default()
    }
}

/// The qualified name (XML Namespaces §4 `QName`) starting at `i`, or
/// `Ok(None)` when the input ends before the name does.
pub(crate) fn qname(bytes: &[u8], start: usize) -> Result<Option<QName>, Error> {
    // Names are nearly always ASCII: take the run of ASCII name bytes in
    // one loop, then check where its colon may be.
    let mut end = start;
    while bytes.get(end).is_some_and(|&b| class(b) & NAME != 0) {
        end += 1;
    }
    // A name cut by the end of the input, or going on beyond ASCII, takes
    // the byte-by-byte path, which also refuses a cut name early.
    if bytes.get(end).is_none_or(|&b| class(b) & HIGH != 0) {
        return qname_by_char(bytes, start);
    }
    let name = bytes.get(start..end).unwrap_or_default();
    let colon = name.iter().position(|&b| b == b':');
    let local = colon.map_or(start, |c| start + c + 1);
    let starts_ncname = |at: usize| {
        bytes
            .get(at)
            .is_some_and(|&b| class(b) & NAME_START != 0 && b != b':')
    };
    // Each of the prefix and the local part is an NCName: it starts with a
    // NameStartChar, and has no second colon.
    if !starts_ncname(start) || (colon.is_some() && !starts_ncname(local)) {
        return Err(Error::Malformed("expected a name"));
    }
    if bytes.get(local..end).unwrap_or_default().contains(&b':') {
        return Err(Error::Malformed("more than one ':' in a name"));
    }
    Ok(Some(QName { start, local, end }))
}

/// [`qname`] one character at a time, decoding those beyond ASCII.
fn qname_by_char(bytes: &[u8], start: usize) -> Result<Option<QName>, Error> {
    let mut i = start;
    let mut colon = None;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Ok(None);
        };
        // The prefix and the local part are each an NCName: each starts
        // with a NameStartChar.
        let first = i == start || colon.is_some_and(|c| c + 1 == i);
        if class(b) & HIGH != 0 {
            let Some((c, len)) = char_at(bytes, i)? else {
                return Ok(None);
            };
            let ok = if first {
                is_name_start_char(c)
            } else {
                is_name_char(c)
            };
            if !ok {
                return Err(Error::Malformed("invalid character in a name"));
            }
            i += len;
            continue;
        }
        let wanted = if first { NAME_START } else { NAME };
        if class(b) & wanted == 0 || (first && b == b':') {
            if i == start || first {
                return Err(Error::Malformed("expected a name"));
            }
            break;
        }
        if b == b':' {
            if colon.is_some() {
                return Err(Error::Malformed("more than one ':' in a name"));
            }
            colon = Some(i);
        }
        i += 1;
    }
    let local = colon.map_or(start, |c| c + 1);
    Ok(Some(QName {
        start,
        local,
        end: i,
    }))
}

/// Where a scan of character data or a value stopped.
pub(crate) enum Scan {
    /// At the terminating byte (`<` for text, the quote for a value).
    Done(usize),
    /// The input ended; everything before this offset is checked.
    Cut(usize),
}

/// Character data from `i` up to the next `<` (XML 1.0 §2.4), checking
/// references, `]]>` and forbidden characters.
pub(crate) fn text(bytes: &[u8], mut i: usize) -> Result<Scan, Error> {
    loop {
        while bytes.get(i).is_some_and(|&b| class(b) & TEXT_STOP == 0) {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            return Ok(Scan::Cut(i));
        };
        i = match b {
            b'<' => return Ok(Scan::Done(i)),
            b'&' => match reference(bytes, i)? {
                Some(len) => i + len,
                None => return Ok(Scan::Cut(i)),
            },
            b']' => {
                let rest = bytes.get(i..).unwrap_or_default();
                if rest.starts_with(b"]]>") {
                    return Err(Error::Malformed("']]>' in character data"));
                }
                if b"]]>".starts_with(rest) {
                    return Ok(Scan::Cut(i));
                }
                i + 1
            }
            _ => match special_char(bytes, i)? {
                Some(len) => i + len,
                None => return Ok(Scan::Cut(i)),
            },
        };
    }
}

/// An attribute value from `i` (just after the opening `quote`) to the
/// closing quote (XML 1.0 §3.1 `AttValue`).
pub(crate) fn value(bytes: &[u8], mut i: usize, quote: u8) -> Result<Scan, Error> {
    loop {
        while bytes.get(i).is_some_and(|&b| class(b) & VALUE_STOP == 0) {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            return Ok(Scan::Cut(i));
        };
        i = match b {
            b'\'' | b'"' if b == quote => return Ok(Scan::Done(i)),
            b'\'' | b'"' => i + 1,
            b'<' => return Err(Error::Malformed("'<' in an attribute value")),
            b'&' => match reference(bytes, i)? {
                Some(len) => i + len,
                None => return Ok(Scan::Cut(i)),
            },
            _ => match special_char(bytes, i)? {
                Some(len) => i + len,
                None => return Ok(Scan::Cut(i)),
            },
        };
    }
}

/// A CDATA section's content from `i` to its `]]>` (XML 1.0 §2.7): the
/// offset just after `]]>`.
pub(crate) fn cdata(bytes: &[u8], mut i: usize) -> Result<Scan, Error> {
    loop {
        while bytes.get(i).is_some_and(|&b| class(b) & CDATA_STOP == 0) {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            return Ok(Scan::Cut(i));
        };
        i = if b == b']' {
            let rest = bytes.get(i..).unwrap_or_default();
            if rest.starts_with(b"]]>") {
                return Ok(Scan::Done(i + 3));
            }
            if b"]]>".starts_with(rest) {
                return Ok(Scan::Cut(i));
            }
            i + 1
        } else {
            match special_char(bytes, i)? {
                Some(len) => i + len,
                None => return Ok(Scan::Cut(i)),
            }
        };
    }
}

/// A forbidden control byte, or 0xEF starting U+FFFE / U+FFFF (not XML
/// `Char`s, XML 1.0 §2.2) or any other character: its length, or `None`
/// when the input ends inside it.
fn special_char(bytes: &[u8], i: usize) -> Result<Option<usize>, Error> {
    match bytes.get(i..i + 3) {
        _ if bytes.get(i).is_some_and(|&b| b < 0x20) => Err(Error::Malformed("control character")),
        Some([0xEF, 0xBF, 0xBE | 0xBF]) => Err(Error::Malformed("noncharacter U+FFFE or U+FFFF")),
        Some(_) => Ok(Some(1)),
        None => Ok(None),
    }
}

/// The reference starting at the `&` at `i`: its length, `Ok(None)` when
/// the input ends inside it, or why it is refused. Only the five predefined
/// entities and character references to XML `Char`s are allowed
/// (RFC 6120 §11.1).
pub(crate) fn reference(bytes: &[u8], i: usize) -> Result<Option<usize>, Error> {
    let after = bytes.get(i + 1..).unwrap_or_default();
    for name in [&b"amp;"[..], b"lt;", b"gt;", b"quot;", b"apos;"] {
        if after.starts_with(name) {
            return Ok(Some(1 + name.len()));
        }
    }
    // The longest allowed reference is `&#x10FFFF;` / `&#1114111;`.
    match after.iter().take(12).position(|&b| b == b';') {
        Some(semi) if after.first() == Some(&b'#') => {
            let name = std::str::from_utf8(after.get(..semi).unwrap_or_default())
                .map_err(|_| Error::InvalidReference)?;
            super::inspect::decode_reference(name).map(|_| Some(semi + 2))
        }
        None if after.len() < 12 && could_be_reference(after) => Ok(None),
        // Judged by the byte after the `&` alone, so that the refusal is the
        // same whether or not the `;` has arrived yet.
        _ => Err(
            if after
                .first()
                .is_some_and(|&b| class(b) & NAME_START != 0 || b >= 0x80)
            {
                Error::Restricted(Restricted::EntityReference)
            } else {
                Error::InvalidReference
            },
        ),
    }
}

/// Whether `after` (the bytes after `&`, no `;` yet) may still become a
/// reference once more bytes come.
fn could_be_reference(after: &[u8]) -> bool {
    match after {
        [] => true,
        [b'#', b'x', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        [b'#', dec @ ..] => dec.iter().all(u8::is_ascii_digit),
        [first, rest @ ..] => {
            (class(*first) & NAME_START != 0 || *first >= 0x80)
                && rest.iter().all(|&b| class(b) & NAME != 0 || b >= 0x80)
        }
    }
}
