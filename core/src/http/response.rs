//! HTTP/1.1 response serialization (RFC 9112 §4, §6).
//!
//! Contract: [`write_response`] appends one complete response to the
//! connection's output buffer and never fails. It writes only what HTTP/1.1
//! framing needs (status line, `Content-Length`, `Connection: close`) plus
//! what the caller asks for; no `Date` (RFC 9110 §6.6.1 lets a server without
//! a reliable clock omit it, and formatting it per response costs) and no
//! `Server`.

/// A response status code with its reason phrase (RFC 9110 §15).
///
/// Only the codes switchboard sends exist, as associated constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    code: u16,
    reason: &'static str,
}

impl Status {
    /// 101, RFC 9110 §15.2.2: the WebSocket upgrade was accepted (RFC 6455 §4.2.2).
    pub const SWITCHING_PROTOCOLS: Status = Status::new(101, "Switching Protocols");
    /// 200, RFC 9110 §15.3.1.
    pub const OK: Status = Status::new(200, "OK");
    /// 204, RFC 9110 §15.3.5: the answer to a CORS preflight.
    pub const NO_CONTENT: Status = Status::new(204, "No Content");
    /// 400, RFC 9110 §15.5.1: malformed request or ambiguous framing.
    pub const BAD_REQUEST: Status = Status::new(400, "Bad Request");
    /// 403, RFC 9110 §15.5.4: e.g. an origin that is not allowed.
    pub const FORBIDDEN: Status = Status::new(403, "Forbidden");
    /// 404, RFC 9110 §15.5.5.
    pub const NOT_FOUND: Status = Status::new(404, "Not Found");
    /// 405, RFC 9110 §15.5.6: the caller must add an `Allow` header.
    pub const METHOD_NOT_ALLOWED: Status = Status::new(405, "Method Not Allowed");
    /// 408, RFC 9110 §15.5.9: the request did not arrive before the read deadline.
    pub const REQUEST_TIMEOUT: Status = Status::new(408, "Request Timeout");
    /// 413, RFC 9110 §15.5.14 (named "Content Too Large" there).
    pub const CONTENT_TOO_LARGE: Status = Status::new(413, "Content Too Large");
    /// 426, RFC 9110 §15.5.22: e.g. a GET on the WebSocket path without `Upgrade`.
    pub const UPGRADE_REQUIRED: Status = Status::new(426, "Upgrade Required");
    /// 431, RFC 6585 §5: head too large or too many header fields.
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Status =
        Status::new(431, "Request Header Fields Too Large");
    /// 500, RFC 9110 §15.6.1.
    pub const INTERNAL_SERVER_ERROR: Status = Status::new(500, "Internal Server Error");
    /// 501, RFC 9110 §15.6.2: e.g. a chunked request body.
    pub const NOT_IMPLEMENTED: Status = Status::new(501, "Not Implemented");
    /// 503, RFC 9110 §15.6.4: e.g. at the session limit or shutting down.
    pub const SERVICE_UNAVAILABLE: Status = Status::new(503, "Service Unavailable");

    const fn new(code: u16, reason: &'static str) -> Status {
        Status { code, reason }
    }

    /// The status for a code from a protocol core (BOSH's legacy codes,
    /// XEP-0124 §17.1); codes without a constant here answer 500.
    pub fn from_code(code: u16) -> Status {
        [
            Status::OK,
            Status::BAD_REQUEST,
            Status::FORBIDDEN,
            Status::NOT_FOUND,
            Status::METHOD_NOT_ALLOWED,
            Status::SERVICE_UNAVAILABLE,
        ]
        .into_iter()
        .find(|s| s.code == code)
        .unwrap_or(Status::INTERNAL_SERVER_ERROR)
    }

    /// The three-digit status code.
    pub fn code(self) -> u16 {
        self.code
    }

    /// The reason phrase written on the status line.
    pub fn reason(self) -> &'static str {
        self.reason
    }

    /// Whether a response with this status has no content and so carries no
    /// `Content-Length` (RFC 9110 §8.6: 1xx and 204).
    fn has_no_content(self) -> bool {
        self.code < 200 || self.code == 204
    }
}

/// Append a complete HTTP/1.1 response to `out` (RFC 9112 §4, §6.3).
///
/// Writes, in order: the status line; `Content-Length` (except for 1xx and
/// 204, which RFC 9110 §8.6 forbids it on, and for which `body` is not
/// written either); `Content-Type` if given; `Connection: close` when
/// `keep_alive` is false (RFC 9112 §9.6); each of `extra_headers`; the empty
/// line; `body`.
///
/// For a 101 pass `keep_alive = true` and put `Connection: Upgrade` in
/// `extra_headers`. Names and values are written as given: they must not
/// contain CR or LF (values echoed from a request are safe, the request
/// parser refuses those bytes). A response to `HEAD` is not provided for:
/// its `Content-Length` would have to be that of the GET.
pub fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: Option<&str>,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) {
    let body = if status.has_no_content() {
        &[][..]
    } else {
        body
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, usize::from(status.code));
    out.push(b' ');
    out.extend_from_slice(status.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !status.has_no_content() {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, body.len());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(content_type) = content_type {
        push_header(out, "Content-Type", content_type);
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Decimal without going through `fmt` (this runs once per response).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(
        status: Status,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        body: &[u8],
        keep_alive: bool,
    ) -> String {
        let mut out = Vec::new();
        write_response(&mut out, status, content_type, extra, body, keep_alive);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ok_with_body_and_type_keep_alive() {
        assert_eq!(
            response(
                Status::OK,
                Some("text/xml; charset=utf-8"),
                &[("Access-Control-Allow-Origin", "https://a.example")],
                b"<body/>",
                true
            ),
            "HTTP/1.1 200 OK\r\n\
             Content-Length: 7\r\n\
             Content-Type: text/xml; charset=utf-8\r\n\
             Access-Control-Allow-Origin: https://a.example\r\n\
             \r\n\
             <body/>"
        );
    }

    #[test]
    fn close_adds_connection_close_before_extra_headers() {
        assert_eq!(
            response(Status::BAD_REQUEST, None, &[("X-A", "1")], b"", false),
            "HTTP/1.1 400 Bad Request\r\n\
             Content-Length: 0\r\n\
             Connection: close\r\n\
             X-A: 1\r\n\
             \r\n"
        );
    }

    #[test]
    fn switching_protocols_has_no_content_length() {
        assert_eq!(
            response(
                Status::SWITCHING_PROTOCOLS,
                None,
                &[
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                    ("Sec-WebSocket-Protocol", "xmpp"),
                ],
                b"",
                true
            ),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: xmpp\r\n\
             \r\n"
        );
    }

    #[test]
    fn no_content_drops_body_and_length() {
        assert_eq!(
            response(Status::NO_CONTENT, None, &[], b"ignored", true),
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
    }

    #[test]
    fn appends_after_existing_output() {
        let mut out = b"earlier".to_vec();
        write_response(&mut out, Status::NOT_FOUND, None, &[], b"", true);
        assert_eq!(
            out,
            b"earlierHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn decimal_lengths() {
        for n in [0usize, 9, 10, 300, 65_536, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn status_codes_and_reasons() {
        assert_eq!(Status::CONTENT_TOO_LARGE.code(), 413);
        assert_eq!(
            Status::REQUEST_HEADER_FIELDS_TOO_LARGE.reason(),
            "Request Header Fields Too Large"
        );
        assert_eq!(Status::SERVICE_UNAVAILABLE.code(), 503);
    }
}
