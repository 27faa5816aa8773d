//! A raw BOSH client for conformance tests (XEP-0124/0206): one keep-alive
//! HTTP/1.1 connection per `BoshConn`, bodies written by hand so tests can
//! send exactly what they mean, responses returned whole. Every read is
//! bounded by a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::xmpp::{bind_request, plain_auth};
use crate::support::WAIT;

pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of an attribute of the response's `<body>` start tag.
    pub fn attr(&self, name: &str) -> Option<String> {
        let start = self.body.find("<body")?;
        let end = self.body[start..].find('>')? + start;
        let tag = &self.body[start..end];
        let needle = format!(" {name}=");
        let at = tag.find(&needle)? + needle.len();
        let quote = tag[at..].chars().next()?;
        let rest = &tag[at + 1..];
        Some(rest[..rest.find(quote)?].to_string())
    }
}

/// One kept-alive HTTP connection to the BOSH endpoint.
pub struct BoshConn {
    stream: TcpStream,
    path: String,
    buffered: Vec<u8>,
}

impl BoshConn {
    pub fn connect(addr: SocketAddr, path: &str) -> BoshConn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        BoshConn {
            stream,
            path: path.to_string(),
            buffered: Vec::new(),
        }
    }

    /// Send a POST with `body` without waiting for the answer.
    pub fn send(&mut self, body: &str) {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.path,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).expect("send");
    }

    /// Send raw bytes (malformed requests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next response, or `None` if none completes within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<HttpResponse> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((response, used)) = parse_response(&self.buffered) {
                self.buffered.drain(..used);
                return Some(response);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.buffered.extend_from_slice(&buf[..n]),
                Err(_) => return None,
            }
        }
    }

    /// POST and wait for the answer.
    pub fn post(&mut self, body: &str, timeout: Duration) -> HttpResponse {
        self.send(body);
        self.recv(timeout).expect("a BOSH response in time")
    }
}

fn parse_response(bytes: &[u8]) -> Option<(HttpResponse, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(Some(0), |(_, v)| v.parse().ok())?;
    if bytes.len() < head_end + len {
        return None;
    }
    let body = String::from_utf8_lossy(&bytes[head_end..head_end + len]).into_owned();
    Some((
        HttpResponse {
            status,
            headers,
            body,
        },
        head_end + len,
    ))
}

/// A session-creation body (XEP-0124 §7.1, XEP-0206 §6), `wait` 5 s.
pub fn create_body(rid: u64, to: &str, extra: &str) -> String {
    format!(
        "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' to='{to}' wait='5' hold='1' ver='1.11' xml:lang='en' xmpp:version='1.0' content='text/xml; charset=utf-8' {extra}/>"
    )
}

/// A created BOSH session on one kept-alive connection: its sid and the
/// last rid used.
pub struct BoshSession {
    pub conn: BoshConn,
    pub sid: String,
    pub rid: u64,
}

impl BoshSession {
    /// Create a session (`extra` attributes on the creation body) and wait
    /// until its stream features have come; returns the creation response.
    pub fn create(
        addr: SocketAddr,
        path: &str,
        domain: &str,
        rid: u64,
        extra: &str,
    ) -> Result<(BoshSession, HttpResponse), String> {
        let mut conn = BoshConn::connect(addr, path);
        conn.send(&create_body(rid, domain, extra));
        let created = conn.recv(WAIT).ok_or("no creation response")?;
        let sid = created
            .attr("sid")
            .ok_or_else(|| format!("no sid: {}", created.body))?;
        let mut session = BoshSession { conn, sid, rid };
        if !created.body.contains("stream:features") {
            let next = session.request("", "")?;
            if !next.body.contains("stream:features") {
                return Err(format!("no stream features: {}", next.body));
            }
        }
        Ok((session, created))
    }

    /// The next rid with `extra` attributes and `payload`, and its answer.
    pub fn request(&mut self, extra: &str, payload: &str) -> Result<HttpResponse, String> {
        self.rid += 1;
        self.conn.send(&body(self.rid, &self.sid, extra, payload));
        self.conn
            .recv(WAIT)
            .ok_or_else(|| format!("no answer to rid {}", self.rid))
    }

    /// Poll until a response contains `needle`.
    fn until(&mut self, mut reply: HttpResponse, needle: &str) -> Result<HttpResponse, String> {
        for _ in 0..10 {
            if reply.body.contains(needle) {
                return Ok(reply);
            }
            if reply.attr("type").as_deref() == Some("terminate") {
                return Err(format!("terminated waiting for {needle}: {}", reply.body));
            }
            reply = self.request("", "")?;
        }
        Err(format!("no {needle} in time"))
    }

    /// SASL PLAIN, restart, bind (XEP-0206 §5): returns the full JID.
    pub fn login(&mut self, user: &str, domain: &str) -> Result<String, String> {
        let reply = self.request("", &plain_auth(user, "pw"))?;
        self.until(reply, "success")?;
        let restart = format!("xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' to='{domain}'");
        let reply = self.request(&restart, "")?;
        self.until(reply, "bind")?;
        let reply = self.request("", &bind_request("b1", None))?;
        let reply = self.until(reply, "<jid>")?;
        let start = reply.body.find("<jid>").map_or(0, |i| i + 5);
        let end = reply.body.find("</jid>").unwrap_or(start);
        Ok(reply.body[start..end].to_string())
    }
}

/// A request body in session `sid` carrying `payload`.
pub fn body(rid: u64, sid: &str, extra: &str, payload: &str) -> String {
    format!("<body xmlns='{NS_HTTPBIND}' rid='{rid}' sid='{sid}' {extra}>{payload}</body>")
}
