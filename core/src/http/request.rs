//! Incremental HTTP/1.1 request reading over httparse (RFC 9112).
//!
//! Contract: the reactor owns the connection's input buffer and calls
//! [`RequestReader::read`] with all unconsumed bytes each time more arrive.
//! The reader answers `Ok(None)` (need more), a complete [`Request`] whose
//! [`Request::len`] bytes the caller then drops from the front of its buffer
//! (the next pipelined request may already follow), or an [`Error`] whose
//! [`Error::status`] is the response to send before closing the connection.
//!
//! httparse keeps no state. A head that arrives whole (the usual case) is
//! parsed by httparse at once; otherwise the reader remembers how far its
//! own search for the empty line ending the head got and runs httparse once
//! that line is in, and keeps the parsed request while the body arrives:
//! every input byte is looked at a bounded number of times however the
//! bytes are split.
//!
//! Deliberate limits:
//! - Request bodies are framed by `Content-Length` only; any
//!   `Transfer-Encoding` (chunked included) is refused with 501 (RFC 9112
//!   §6.1 allows it). Browsers' BOSH requests always carry `Content-Length`.
//! - `Expect: 100-continue` is ignored: the request is answered once its body
//!   has arrived (RFC 9110 §10.1.1 lets a server omit the 100). Browsers never
//!   send it; curl sends it for bodies over 1 KiB and waits 1 s before
//!   sending the body anyway.
//! - The request-target must be origin-form (`/path?query`), or `*` for
//!   `OPTIONS`. Absolute-form is refused with 400 although RFC 9112 §3.2.2
//!   asks origin servers to accept it: no browser sends it to a non-proxy.
//! - Empty lines before the request line are skipped (RFC 9112 §2.2), and
//!   count against the head limit.

use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::response::Status;

/// The hard ceiling on [`Limits::max_headers`]: the header slots live on the
/// stack during a parse, not per connection.
pub const MAX_HEADERS: usize = 128;

/// Size limits applied while reading a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head, request line through the empty line, in bytes
    /// (431 beyond it).
    pub max_head_bytes: usize,
    /// Most header fields in one request (431 beyond it); values above
    /// [`MAX_HEADERS`] count as [`MAX_HEADERS`].
    pub max_headers: usize,
    /// Largest `Content-Length` accepted (413 beyond it).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    /// 8 KiB of head, 64 fields, 64 KiB of body: a browser's BOSH POST has a
    /// head under 1 KiB with about 15 fields.
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The request method (RFC 9110 §9). Methods are case-sensitive: `get` is
/// [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`: WebSocket upgrade, status page, metrics.
    Get,
    /// `POST`: BOSH requests.
    Post,
    /// `OPTIONS`: CORS preflight.
    Options,
    /// `HEAD`.
    Head,
    /// Any other syntactically valid method (answered 405 by the router).
    Other,
}

impl Method {
    fn parse(method: &str) -> Method {
        match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "OPTIONS" => Method::Options,
            "HEAD" => Method::Head,
            _ => Method::Other,
        }
    }
}

/// One complete request: its head fields and where its body lies.
///
/// Only the header fields switchboard acts on are kept. Single-valued fields
/// that appear twice make the request malformed; list-valued ones
/// (`Connection`, `Upgrade`, `Sec-WebSocket-Protocol`,
/// `Access-Control-Request-Headers`) are joined with `", "` as RFC 9110
/// §5.3 allows. Values are trimmed of surrounding whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request-target up to `?`, not percent-decoded; `*` for `OPTIONS *`.
    pub path: String,
    /// The raw query after the first `?`, if there is a `?`.
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection stays open after the response (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Host` (RFC 9110 §7.2); always present for HTTP/1.1.
    pub host: Option<String>,
    /// `Origin` (RFC 6454 §7), for CORS and the WebSocket origin check.
    pub origin: Option<String>,
    /// `Upgrade` (RFC 9110 §7.8); test it with [`has_token`].
    pub upgrade: Option<String>,
    /// `Connection` (RFC 9110 §7.6.1); test it with [`has_token`].
    pub connection: Option<String>,
    /// `Sec-WebSocket-Key` (RFC 6455 §11.3.1).
    pub sec_websocket_key: Option<String>,
    /// `Sec-WebSocket-Version` (RFC 6455 §11.3.5).
    pub sec_websocket_version: Option<String>,
    /// `Sec-WebSocket-Protocol` (RFC 6455 §11.3.4); RFC 7395 §3.1 wants `xmpp`.
    pub sec_websocket_protocol: Option<String>,
    /// `Access-Control-Request-Method` (Fetch standard, CORS preflight).
    pub access_control_request_method: Option<String>,
    /// `Access-Control-Request-Headers` (Fetch standard, CORS preflight).
    pub access_control_request_headers: Option<String>,
    /// `Content-Type` (RFC 9110 §8.3).
    pub content_type: Option<String>,
    /// `X-Forwarded-For`, every field joined: the client's address as a
    /// proxy in front saw it, last.
    pub forwarded_for: Option<String>,
    /// Where the body lies within the `input` given to [`RequestReader::read`];
    /// empty without `Content-Length`.
    pub body: Range<usize>,
    /// Head plus body: how many bytes of `input` this request used.
    pub len: usize,
}

/// Why a request was refused. Each one ends the connection after the
/// [`Error::status`] response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The head is longer than [`Limits::max_head_bytes`] (431).
    HeadTooLarge,
    /// More header fields than [`Limits::max_headers`] (431).
    TooManyHeaders,
    /// `Content-Length` above [`Limits::max_body_bytes`] (413).
    BodyTooLarge,
    /// Bad syntax, obs-fold, a non-UTF-8 value in a kept field, or a
    /// single-valued kept field repeated (400).
    Malformed,
    /// The request-target is not origin-form, nor `*` with `OPTIONS` (400).
    BadTarget,
    /// HTTP/1.1 without `Host`, or `Host` repeated (400, RFC 9112 §3.2).
    BadHost,
    /// Ambiguous body framing, the request-smuggling shapes of RFC 9112
    /// §6.1–6.3: both `Content-Length` and `Transfer-Encoding`,
    /// `Content-Length` repeated or not a decimal number, or
    /// `Transfer-Encoding` in HTTP/1.0 (400).
    Smuggling,
    /// `Transfer-Encoding` (chunked or other) on an HTTP/1.1 request (501).
    UnsupportedTransferEncoding,
}

impl Error {
    /// The status of the response to send before closing.
    pub fn status(&self) -> Status {
        match self {
            Error::HeadTooLarge | Error::TooManyHeaders => Status::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::BodyTooLarge => Status::CONTENT_TOO_LARGE,
            Error::Malformed | Error::BadTarget | Error::BadHost | Error::Smuggling => {
                Status::BAD_REQUEST
            }
            Error::UnsupportedTransferEncoding => Status::NOT_IMPLEMENTED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::HeadTooLarge => "request head too large",
            Error::TooManyHeaders => "too many header fields",
            Error::BodyTooLarge => "request body too large",
            Error::Malformed => "malformed request",
            Error::BadTarget => "request-target not in origin-form",
            Error::BadHost => "missing or repeated host header",
            Error::Smuggling => "ambiguous request body framing",
            Error::UnsupportedTransferEncoding => "transfer-encoding not supported",
        })
    }
}

impl std::error::Error for Error {}

/// Whether a comma-separated field value contains `token`, compared
/// ASCII-case-insensitively (RFC 9110 §5.6.1 lists, §7.6.1 `Connection`
/// options): `has_token("keep-alive, Upgrade", "upgrade")` is true.
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|item| item.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
}

/// Reads the requests of one connection; keeps the progress of a request
/// whose bytes have not all arrived.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    /// The input before this offset holds no end of head: the next search
    /// starts here.
    scanned: usize,
    /// Where the request line starts, once a byte other than CR or LF came.
    start: Option<usize>,
    /// A parsed head waiting for `len` bytes of input.
    pending: Option<Request>,
}

impl RequestReader {
    /// A reader for a new connection.
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            limits,
            scanned: 0,
            start: None,
            pending: None,
        }
    }

    /// Parse the request at the start of `input`: the connection's
    /// unconsumed bytes, the same as at the previous call possibly extended,
    /// or starting after the previous complete request once its `len` bytes
    /// were dropped.
    ///
    /// `Ok(None)` means more bytes are needed. After `Ok(Some(_))` or an
    /// error the reader starts afresh at the next call.
    pub fn read(&mut self, input: &[u8]) -> Result<Option<Request>, Error> {
        let result = self.advance(input);
        if !matches!(result, Ok(None)) {
            self.scanned = 0;
            self.start = None;
            self.pending = None;
        }
        result
    }

    fn advance(&mut self, input: &[u8]) -> Result<Option<Request>, Error> {
        if let Some(pending) = &self.pending {
            if input.len() < pending.len {
                return Ok(None);
            }
            return Ok(self.pending.take());
        }
        let parsed = if self.scanned == 0 && self.start.is_none() {
            // Nothing scanned yet: most heads arrive whole, so let httparse
            // find the end itself, and fall back to the scan only if not.
            let window = input.get(..self.limits.max_head_bytes).unwrap_or(input);
            match parse_head(window, &self.limits) {
                Ok(parsed) => parsed,
                Err(e) => {
                    // A head too large is refused as such however malformed,
                    // the same answer as when it comes in pieces and is
                    // only scanned for its end.
                    self.find_head_end(input)?;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let request = match parsed {
            Some(request) => request,
            None => {
                let Some(head_len) = self.find_head_end(input)? else {
                    return Ok(None);
                };
                let head = input.get(..head_len).unwrap_or_default();
                match parse_head(head, &self.limits)? {
                    Some(request) if request.body.start == head_len => request,
                    _ => return Err(Error::Malformed),
                }
            }
        };
        if input.len() >= request.len {
            Ok(Some(request))
        } else {
            self.pending = Some(request);
            Ok(None)
        }
    }

    /// The length of the head (through its empty line) if all of it is in
    /// `input`. An empty line is an LF followed by LF or CRLF: httparse
    /// accepts bare LF line ends and refuses a lone CR, so this agrees with
    /// where httparse will stop.
    fn find_head_end(&mut self, input: &[u8]) -> Result<Option<usize>, Error> {
        let max = self.limits.max_head_bytes;
        let window = input.get(..max.min(input.len())).unwrap_or_default();
        // Empty lines before the request line are skipped (RFC 9112 §2.2),
        // as httparse does: their LFs are not the end of the head.
        let start = match self.start {
            Some(start) => start,
            None => {
                let rest = window.get(self.scanned..).unwrap_or_default();
                match rest.iter().position(|&b| b != b'\r' && b != b'\n') {
                    Some(offset) => {
                        self.start = Some(self.scanned + offset);
                        self.scanned + offset
                    }
                    None => {
                        self.scanned = window.len();
                        return too_large_or_incomplete(input.len(), max);
                    }
                }
            }
        };
        let mut from = self.scanned.max(start);
        loop {
            let rest = window.get(from..).unwrap_or_default();
            let Some(offset) = find_lf(rest) else {
                self.scanned = window.len();
                break;
            };
            let lf = from + offset;
            match (window.get(lf + 1), window.get(lf + 2)) {
                (Some(b'\n'), _) => return Ok(Some(lf + 2)),
                (Some(b'\r'), Some(b'\n')) => return Ok(Some(lf + 3)),
                (None, _) | (Some(b'\r'), None) => {
                    // Undecided until more bytes come: look at this LF again.
                    self.scanned = lf;
                    break;
                }
                _ => from = lf + 1,
            }
        }
        too_large_or_incomplete(input.len(), max)
    }
}

/// No end of head within the first `max` bytes of `len`: wait, or refuse.
fn too_large_or_incomplete(len: usize, max: usize) -> Result<Option<usize>, Error> {
    if len >= max {
        Err(Error::HeadTooLarge)
    } else {
        Ok(None)
    }
}

/// The index of the first LF in `bytes`, eight bytes per step: the head
/// scan is otherwise the largest cost of a read after httparse itself.
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LFS: u64 = u64::from_le_bytes([b'\n'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ LFS;
        // The high bit of each byte of `x` that is zero (an LF) is set; a
        // borrow can also mark bytes after the first zero, never before it,
        // so the lowest set bit locates the first LF.
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(offset + zeros.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// The header fields [`parse_head`] looks at.
#[derive(Clone, Copy)]
enum Field {
    ContentLength,
    TransferEncoding,
    Host,
    Origin,
    Upgrade,
    Connection,
    SecWebSocketKey,
    SecWebSocketVersion,
    SecWebSocketProtocol,
    AccessControlRequestMethod,
    AccessControlRequestHeaders,
    ContentType,
    ForwardedFor,
}

const FIELDS: [(&str, Field); 13] = [
    ("content-length", Field::ContentLength),
    ("transfer-encoding", Field::TransferEncoding),
    ("host", Field::Host),
    ("origin", Field::Origin),
    ("upgrade", Field::Upgrade),
    ("connection", Field::Connection),
    ("sec-websocket-key", Field::SecWebSocketKey),
    ("sec-websocket-version", Field::SecWebSocketVersion),
    ("sec-websocket-protocol", Field::SecWebSocketProtocol),
    (
        "access-control-request-method",
        Field::AccessControlRequestMethod,
    ),
    (
        "access-control-request-headers",
        Field::AccessControlRequestHeaders,
    ),
    ("content-type", Field::ContentType),
    ("x-forwarded-for", Field::ForwardedFor),
];

impl Field {
    fn find(name: &str) -> Option<Field> {
        FIELDS
            .iter()
            .find(|(known, _)| known.len() == name.len() && known.eq_ignore_ascii_case(name))
            .map(|&(_, field)| field)
    }
}

/// Parse the head at the start of `input` into a request whose body range
/// and length follow from `Content-Length`; `None` if the head is not all
/// there.
fn parse_head(input: &[u8], limits: &Limits) -> Result<Option<Request>, Error> {
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let slots = slots
        .get_mut(..limits.max_headers.min(MAX_HEADERS))
        .unwrap_or_default();
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(input, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        Err(_) => return Err(Error::Malformed),
    };
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(Error::Malformed);
    };
    let method = Method::parse(method);
    if !(target.starts_with('/') || (target == "*" && method == Method::Options)) {
        return Err(Error::BadTarget);
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };

    let mut request = Request {
        method,
        path: path.to_owned(),
        query,
        minor_version,
        keep_alive: false,
        host: None,
        origin: None,
        upgrade: None,
        connection: None,
        sec_websocket_key: None,
        sec_websocket_version: None,
        sec_websocket_protocol: None,
        access_control_request_method: None,
        access_control_request_headers: None,
        content_type: None,
        forwarded_for: None,
        body: head_len..head_len,
        len: head_len,
    };
    let mut content_length = None;
    let mut transfer_encoding = false;
    for header in parsed.headers.iter() {
        let Some(field) = Field::find(header.name) else {
            continue;
        };
        let value = std::str::from_utf8(header.value)
            .map_err(|_| Error::Malformed)?
            .trim_matches([' ', '\t']);
        match field {
            Field::ContentLength => {
                if content_length.is_some() {
                    return Err(Error::Smuggling);
                }
                content_length = Some(parse_content_length(value)?);
            }
            Field::TransferEncoding => transfer_encoding = true,
            Field::Host => {
                if request.host.is_some() {
                    return Err(Error::BadHost);
                }
                request.host = Some(value.to_owned());
            }
            Field::Origin => set_once(&mut request.origin, value)?,
            Field::Upgrade => append(&mut request.upgrade, value),
            Field::Connection => append(&mut request.connection, value),
            Field::SecWebSocketKey => set_once(&mut request.sec_websocket_key, value)?,
            Field::SecWebSocketVersion => set_once(&mut request.sec_websocket_version, value)?,
            Field::SecWebSocketProtocol => append(&mut request.sec_websocket_protocol, value),
            Field::AccessControlRequestMethod => {
                set_once(&mut request.access_control_request_method, value)?
            }
            Field::AccessControlRequestHeaders => {
                append(&mut request.access_control_request_headers, value)
            }
            Field::ContentType => set_once(&mut request.content_type, value)?,
            Field::ForwardedFor => append(&mut request.forwarded_for, value),
        }
    }

    if minor_version >= 1 && request.host.is_none() {
        return Err(Error::BadHost);
    }
    if transfer_encoding {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing,
        // and with Content-Length it is the classic smuggling shape.
        if minor_version == 0 || content_length.is_some() {
            return Err(Error::Smuggling);
        }
        return Err(Error::UnsupportedTransferEncoding);
    }
    if let Some(length) = content_length {
        if length > limits.max_body_bytes {
            return Err(Error::BodyTooLarge);
        }
        request.body = head_len..head_len + length;
        request.len = head_len + length;
    }
    request.keep_alive = match &request.connection {
        Some(connection) if has_token(connection, "close") => false,
        Some(connection) if has_token(connection, "keep-alive") => true,
        _ => minor_version >= 1,
    };
    Ok(Some(request))
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6). A list such as `5, 5` is
/// refused rather than reconciled.
fn parse_content_length(value: &str) -> Result<usize, Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Smuggling);
    }
    // All digits: the only parse failure left is overflow, too large anyway.
    value.parse().map_err(|_| Error::BodyTooLarge)
}

fn set_once(slot: &mut Option<String>, value: &str) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::Malformed);
    }
    *slot = Some(value.to_owned());
    Ok(())
}

/// Combine repeated list-valued field lines (RFC 9110 §5.3).
fn append(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(value);
        }
        None => *slot = Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<Option<Request>, Error>;

    /// Read `input` whole, split in two at every byte boundary with one
    /// reader across both reads, and byte by byte; every way must give the
    /// same outcome, which is returned.
    fn read_all_ways(limits: Limits, input: &[u8]) -> Outcome {
        let whole = RequestReader::new(limits).read(input);
        for cut in 0..=input.len() {
            let mut reader = RequestReader::new(limits);
            let outcome = match reader.read(&input[..cut]) {
                Ok(None) => reader.read(input),
                other => other,
            };
            assert_eq!(outcome, whole, "split at {cut}");
        }
        let mut reader = RequestReader::new(limits);
        let mut outcome = Ok(None);
        for end in 0..=input.len() {
            outcome = reader.read(&input[..end]);
            if !matches!(outcome, Ok(None)) {
                break;
            }
        }
        assert_eq!(outcome, whole, "byte by byte");
        whole
    }

    fn request(input: &[u8]) -> Request {
        read_all_ways(Limits::default(), input)
            .expect("request refused")
            .expect("request incomplete")
    }

    fn error(limits: Limits, input: &[u8]) -> Error {
        read_all_ways(limits, input).expect_err("request accepted")
    }

    const UPGRADE: &[u8] = b"GET /xmpp-websocket?x=1 HTTP/1.1\r\n\
        Host: chat.example:5280\r\n\
        User-Agent: Mozilla/5.0\r\n\
        Origin: https://chat.example\r\n\
        Upgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Protocol: xmpp\r\n\
        \r\n";

    const POST: &[u8] = b"POST /http-bind HTTP/1.1\r\n\
        Host: chat.example\r\n\
        Content-Type: text/xml; charset=utf-8\r\n\
        Content-Length: 12\r\n\
        \r\n\
        <body rid=1>";

    #[test]
    fn get_upgrade_keeps_the_fields_switchboard_uses() {
        let r = request(UPGRADE);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/xmpp-websocket");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.minor_version, 1);
        assert!(r.keep_alive);
        assert_eq!(r.host.as_deref(), Some("chat.example:5280"));
        assert_eq!(r.origin.as_deref(), Some("https://chat.example"));
        assert_eq!(r.upgrade.as_deref(), Some("websocket"));
        assert!(has_token(r.connection.as_deref().unwrap(), "upgrade"));
        assert_eq!(
            r.sec_websocket_key.as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        assert_eq!(r.sec_websocket_version.as_deref(), Some("13"));
        assert_eq!(r.sec_websocket_protocol.as_deref(), Some("xmpp"));
        assert_eq!(r.content_type, None);
        assert_eq!(r.body, UPGRADE.len()..UPGRADE.len());
        assert_eq!(r.len, UPGRADE.len());
    }

    #[test]
    fn post_body_range_covers_content_length_bytes() {
        let r = request(POST);
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.path, "/http-bind");
        assert_eq!(r.query, None);
        assert_eq!(r.content_type.as_deref(), Some("text/xml; charset=utf-8"));
        assert_eq!(&POST[r.body.clone()], b"<body rid=1>");
        assert_eq!(r.len, POST.len());
    }

    #[test]
    fn incomplete_head_or_body_needs_more() {
        let mut reader = RequestReader::new(Limits::default());
        assert_eq!(reader.read(&POST[..20]), Ok(None));
        assert_eq!(reader.read(&POST[..POST.len() - 1]), Ok(None));
        assert_eq!(reader.read(b""), Ok(None));
        let mut reader = RequestReader::new(Limits::default());
        assert_eq!(reader.read(&POST[..POST.len() - 12]), Ok(None));
        assert_eq!(reader.read(POST).unwrap().unwrap().len, POST.len());
    }

    #[test]
    fn pipelined_requests_parse_one_after_another() {
        let mut input = POST.to_vec();
        input.extend_from_slice(UPGRADE);
        let first = request(&input);
        assert_eq!(first.method, Method::Post);
        assert_eq!(first.len, POST.len());
        assert_eq!(&input[first.body.clone()], b"<body rid=1>");
        let second = request(&input[first.len..]);
        assert_eq!(second.path, "/xmpp-websocket");
        assert_eq!(second.len, UPGRADE.len());

        // One reader for the connection, as the reactor uses it.
        let mut reader = RequestReader::new(Limits::default());
        assert_eq!(reader.read(&input), Ok(Some(first)));
        assert_eq!(reader.read(&input[POST.len()..]), Ok(Some(second)));
        assert_eq!(reader.read(b""), Ok(None));
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let cases: [(&str, &str, bool); 8] = [
            ("1.1", "", true),
            ("1.1", "Connection: close\r\n", false),
            ("1.1", "Connection: Keep-Alive\r\n", true),
            ("1.1", "Connection: Upgrade, CLOSE\r\n", false),
            ("1.0", "", false),
            ("1.0", "Connection: keep-alive\r\n", true),
            ("1.0", "Connection: close\r\n", false),
            ("1.0", "Connection: keep-alive, close\r\n", false),
        ];
        for (version, connection, expected) in cases {
            let input = format!("GET / HTTP/{version}\r\nHost: a\r\n{connection}\r\n");
            let r = request(input.as_bytes());
            assert_eq!(r.keep_alive, expected, "{input:?}");
            assert_eq!(r.minor_version, if version == "1.1" { 1 } else { 0 });
        }
    }

    #[test]
    fn has_token_matches_list_items_case_insensitively() {
        assert!(has_token("keep-alive, Upgrade", "upgrade"));
        assert!(has_token("Upgrade", "upgrade"));
        assert!(has_token("a,\tUPGRADE ,b", "upgrade"));
        assert!(!has_token("keep-alive", "upgrade"));
        assert!(!has_token("upgrades", "upgrade"));
        assert!(!has_token("", "upgrade"));
    }

    /// A request whose head is exactly `len` bytes long.
    fn head_of_len(len: usize) -> Vec<u8> {
        let start = b"GET / HTTP/1.1\r\nHost: a\r\nX: ";
        let mut head = start.to_vec();
        head.resize(len - 4, b'x');
        head.extend_from_slice(b"\r\n\r\n");
        head
    }

    #[test]
    fn head_longer_than_limit_is_431() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        assert_eq!(request_with(limits, &head_of_len(64)).len, 64);
        assert_eq!(error(limits, &head_of_len(65)), Error::HeadTooLarge);
        assert_eq!(error(limits, &[b'x'; 200]), Error::HeadTooLarge);
        assert_eq!(error(limits, &b"\r\n".repeat(40)), Error::HeadTooLarge);
        assert_eq!(Error::HeadTooLarge.status().code(), 431);
    }

    fn request_with(limits: Limits, input: &[u8]) -> Request {
        read_all_ways(limits, input).unwrap().unwrap()
    }

    #[test]
    fn more_headers_than_limit_is_431() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let three = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        let four = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(request_with(limits, three).len, three.len());
        assert_eq!(error(limits, four), Error::TooManyHeaders);
        assert_eq!(Error::TooManyHeaders.status().code(), 431);
    }

    #[test]
    fn body_longer_than_limit_is_413_before_it_arrives() {
        let limits = Limits {
            max_body_bytes: 12,
            ..Limits::default()
        };
        assert_eq!(request_with(limits, POST).len, POST.len());
        let smaller = Limits {
            max_body_bytes: 11,
            ..Limits::default()
        };
        let head_only = &POST[..POST.len() - 12];
        assert_eq!(error(smaller, head_only), Error::BodyTooLarge);
        let huge = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(error(Limits::default(), huge), Error::BodyTooLarge);
        assert_eq!(Error::BodyTooLarge.status().code(), 413);
    }

    fn post_with(fields: &str) -> Vec<u8> {
        format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\nhello").into_bytes()
    }

    #[test]
    fn ambiguous_framing_is_refused_as_smuggling() {
        let shapes = [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5, 5\r\n",
            "Content-Length: abc\r\n",
            "Content-Length: -5\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 0x5\r\n",
            "Content-Length:\r\n",
        ];
        for fields in shapes {
            assert_eq!(
                error(Limits::default(), &post_with(fields)),
                Error::Smuggling,
                "{fields:?}"
            );
        }
        let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(error(Limits::default(), http10), Error::Smuggling);
        assert_eq!(Error::Smuggling.status().code(), 400);
    }

    #[test]
    fn transfer_encoding_alone_is_501() {
        for coding in ["chunked", "gzip, chunked", "identity"] {
            let input = post_with(&format!("Transfer-Encoding: {coding}\r\n"));
            assert_eq!(
                error(Limits::default(), &input),
                Error::UnsupportedTransferEncoding
            );
        }
        assert_eq!(Error::UnsupportedTransferEncoding.status().code(), 501);
    }

    #[test]
    fn field_names_are_case_insensitive() {
        let r = request(&post_with("cOnTeNt-LeNgTh: 5\r\nORIGIN: https://o\r\n"));
        assert_eq!(r.body.len(), 5);
        assert_eq!(r.origin.as_deref(), Some("https://o"));
    }

    #[test]
    fn target_must_be_origin_form() {
        for input in [
            &b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET xmpp HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(error(Limits::default(), input), Error::BadTarget);
        }
        let r = request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((r.method, r.path.as_str()), (Method::Options, "*"));
    }

    #[test]
    fn garbage_and_bad_syntax_are_malformed() {
        for input in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            b"\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nOrigin: \xff\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nOrigin: a\r\nOrigin: b\r\n\r\n",
        ] {
            assert_eq!(
                error(Limits::default(), input),
                Error::Malformed,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(Error::Malformed.status().code(), 400);
    }

    #[test]
    fn host_is_required_once_in_http11() {
        let missing = b"GET / HTTP/1.1\r\n\r\n";
        let twice = b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n";
        assert_eq!(error(Limits::default(), missing), Error::BadHost);
        assert_eq!(error(Limits::default(), twice), Error::BadHost);
        assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n").host, None);
    }

    #[test]
    fn lowercase_method_is_other() {
        let r = request(b"get / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.method, Method::Other);
        assert_eq!(
            request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Head
        );
    }

    #[test]
    fn get_with_content_length_has_a_body() {
        let input = b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let r = request(input);
        assert_eq!(&input[r.body.clone()], b"abc");
    }

    #[test]
    fn list_fields_repeated_are_joined() {
        let r = request(
            b"GET / HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Protocol: chat\r\n\
              Sec-WebSocket-Protocol: xmpp\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.sec_websocket_protocol.as_deref(), Some("chat, xmpp"));
        assert!(has_token(
            r.sec_websocket_protocol.as_deref().unwrap(),
            "xmpp"
        ));
        assert!(!r.keep_alive);
    }

    #[test]
    fn leading_empty_lines_and_bare_lf_are_accepted() {
        let input = b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request(input).len, input.len());
        let input = b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request(input).len, input.len());
        let input = b"GET / HTTP/1.1\nHost: a\n\n";
        assert_eq!(request(input).host.as_deref(), Some("a"));
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\n";
        assert_eq!(request(input).len, input.len());
    }

    #[test]
    fn expect_continue_is_answered_only_with_the_body() {
        let input = post_with("Expect: 100-continue\r\nContent-Length: 5\r\n");
        let mut reader = RequestReader::new(Limits::default());
        assert_eq!(reader.read(&input[..input.len() - 5]), Ok(None));
        assert_eq!(reader.read(&input).unwrap().unwrap().body.len(), 5);
    }

    #[test]
    fn search_for_head_end_resumes_where_it_stopped() {
        let input = head_of_len(4000);
        let mut reader = RequestReader::new(Limits::default());
        assert_eq!(reader.read(&input[..3000]), Ok(None));
        assert!(reader.scanned > 2900, "scanned {}", reader.scanned);
        assert_eq!(reader.read(&input[..3999]), Ok(None));
        // The LF ending the last field line is left for a second look.
        assert_eq!(reader.scanned, 3997);
        assert_eq!(reader.read(&input).unwrap().unwrap().len, 4000);
        assert_eq!(reader.scanned, 0);
    }

    #[test]
    fn find_lf_agrees_with_a_plain_search() {
        let mut bytes = vec![b'a'; 40];
        assert_eq!(find_lf(&bytes), None);
        for at in 0..40 {
            // Bytes one off LF, and with the high bit, near every LF.
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = [0x8a, 0x0b, 0x09, b'a'][(i + at) % 4];
            }
            bytes[at] = b'\n';
            bytes[(at + 3) % 40] = b'\n';
            for start in 0..40 {
                let rest = &bytes[start..];
                let expected = rest.iter().position(|&b| b == b'\n');
                assert_eq!(find_lf(rest), expected, "{at} {start}");
            }
        }
    }

    #[test]
    fn error_messages_are_lower_case() {
        for e in [
            Error::HeadTooLarge,
            Error::TooManyHeaders,
            Error::BodyTooLarge,
            Error::Malformed,
            Error::BadTarget,
            Error::BadHost,
            Error::Smuggling,
            Error::UnsupportedTransferEncoding,
        ] {
            let message = e.to_string();
            assert!(!message.is_empty());
            assert_eq!(message, message.to_lowercase(), "{e:?}");
        }
    }
}
