//! Incremental HTTP/1.1 request reading over httparse (RFC 9112).
//!
//! Contract: the reactor owns the connection's input buffer and calls
//! [`RequestReader::read`] with all unconsumed bytes each time more arrive.
//! The reader answers `Ok(None)` (need more), a complete [`Request`] whose
//! [`Request::len`] bytes the caller then drops from the front of its buffer
//! (the next pipelined request may already follow), or an [`Error`] whose
//! [`Error::status`] is the response to send before closing the connection.
//!
//! httparse keeps no state, so the reader remembers how far its search for
//! the blank line ending the head got, and, once the head is parsed, the
//! request itself while the body arrives: every input byte is looked at a
//! bounded number of times however the bytes are split.
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
//! - At most one empty line before the request line is skipped (RFC 9112
//!   §2.2 asks for at least one).

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
    /// A parsed head waiting for `len` bytes of input.
    pending: Option<Request>,
}

impl RequestReader {
    /// A reader for a new connection.
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            limits,
            scanned: 0,
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
        let Some(head_len) = self.find_head_end(input)? else {
            return Ok(None);
        };
        let request = parse_head(input.get(..head_len).unwrap_or_default(), &self.limits)?;
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
        // Skip one empty line before the request line (RFC 9112 §2.2): its LF
        // would otherwise look like the end of the head.
        let first = match window {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            _ => 0,
        };
        let mut from = self.scanned.max(first);
        loop {
            let rest = window.get(from..).unwrap_or_default();
            let Some(offset) = rest.iter().position(|&b| b == b'\n') else {
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
        if input.len() >= max {
            Err(Error::HeadTooLarge)
        } else {
            Ok(None)
        }
    }
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
}

const FIELDS: [(&str, Field); 12] = [
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
];

impl Field {
    fn find(name: &str) -> Option<Field> {
        FIELDS
            .iter()
            .find(|(known, _)| known.len() == name.len() && known.eq_ignore_ascii_case(name))
            .map(|&(_, field)| field)
    }
}

/// Parse a complete head (`head` ends with its empty line) into a request
/// whose body range and length follow from `Content-Length`.
fn parse_head(head: &[u8], limits: &Limits) -> Result<Request, Error> {
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let slots = slots
        .get_mut(..limits.max_headers.min(MAX_HEADERS))
        .unwrap_or_default();
    let mut parsed = httparse::Request::new(&mut []);
    match parsed.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        _ => return Err(Error::Malformed),
    }
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
        body: head.len()..head.len(),
        len: head.len(),
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
        request.body = head.len()..head.len() + length;
        request.len = head.len() + length;
    }
    request.keep_alive = match &request.connection {
        Some(connection) if has_token(connection, "close") => false,
        Some(connection) if has_token(connection, "keep-alive") => true,
        _ => minor_version >= 1,
    };
    Ok(request)
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
