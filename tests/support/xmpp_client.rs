//! A blocking XMPP client over plain TCP (RFC 6120): stream open, STARTTLS
//! with rustls, SASL PLAIN, bind. It is the "direct TCP" baseline next to the
//! WebSocket path through switchboard, and the stub server's own test peer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::certs;
use super::xml::{self, Frame, Framer};
use super::xmpp::{self, ElementStream, NS_CLIENT, NS_STREAM, NS_TLS};
use super::{RecvError, WAIT};

enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn sock(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(t) => t.flush(),
        }
    }
}

/// A blocking XMPP client-to-server stream over TCP.
pub struct XmppTcpClient {
    transport: Transport,
    framer: Framer,
    header: Option<String>,
    /// Wait used by the multi-step helpers (`open`, `starttls`, `login_plain`).
    pub timeout: Duration,
}

impl XmppTcpClient {
    pub fn connect(addr: SocketAddr) -> Result<XmppTcpClient, String> {
        let sock =
            TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = sock.set_nodelay(true);
        sock.set_write_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        Ok(XmppTcpClient {
            transport: Transport::Plain(sock),
            framer: Framer::default(),
            header: None,
            timeout: WAIT,
        })
    }

    /// Sends a stream header to `domain` and returns the first element after
    /// the server's header: `<stream:features/>` or a `<stream:error/>`.
    pub fn open(&mut self, domain: &str) -> Result<String, RecvError> {
        self.header = None;
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
             to='{}' version='1.0'>",
            xml::escape(domain)
        ))
        .map_err(RecvError::Io)?;
        self.recv(self.timeout)
    }

    /// The server's latest stream header, raw.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// Whether the stream is now under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// STARTTLS (RFC 6120 §5.4) verifying the certificate against `domain`,
    /// then the stream restart; returns the new features.
    pub fn starttls(
        &mut self,
        domain: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<String, String> {
        self.send(&format!("<starttls xmlns='{NS_TLS}'/>"))?;
        let answer = self.recv(self.timeout).map_err(|e| e.to_string())?;
        if xml::root_name(&answer).as_deref() != Some("proceed") {
            return Err(format!("starttls refused: {answer}"));
        }
        let Transport::Plain(sock) = &self.transport else {
            return Err("starttls: already under tls".into());
        };
        let mut sock = sock.try_clone().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::ClientConnection::new(config, certs::server_name(domain)?)
            .map_err(|e| e.to_string())?;
        while tls.is_handshaking() {
            tls.complete_io(&mut sock)
                .map_err(|e| format!("tls handshake: {e}"))?;
        }
        self.transport = Transport::Tls(Box::new(rustls::StreamOwned::new(tls, sock)));
        self.framer.clear();
        self.open(domain).map_err(|e| e.to_string())
    }

    /// SASL PLAIN, restart, bind with a server-chosen resource; returns the full JID.
    pub fn login_plain(
        &mut self,
        user: &str,
        password: &str,
        domain: &str,
    ) -> Result<String, String> {
        xmpp::login_plain(self, user, password, domain, None)
    }

    /// As [`Self::login_plain`], binding `resource`.
    pub fn login_plain_as(
        &mut self,
        user: &str,
        password: &str,
        domain: &str,
        resource: &str,
    ) -> Result<String, String> {
        xmpp::login_plain(self, user, password, domain, Some(resource))
    }

    /// Writes raw XML (or anything) on the stream.
    pub fn send(&mut self, raw: &str) -> Result<(), String> {
        self.transport
            .write_all(raw.as_bytes())
            .and_then(|()| self.transport.flush())
            .map_err(|e| format!("send: {e}"))
    }

    /// The next top-level element within `timeout`. A server stream header
    /// is remembered (see [`Self::header`]) and skipped; `</stream:stream>`
    /// gives `Closed { code: None, .. }`.
    pub fn recv(&mut self, timeout: Duration) -> Result<String, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.framer.next_frame() {
                Ok(Some(Frame::Element(element))) => return Ok(element),
                Ok(Some(Frame::Header(header))) => {
                    self.header = Some(header);
                    continue;
                }
                Ok(Some(Frame::StreamEnd)) => {
                    return Err(RecvError::Closed {
                        code: None,
                        reason: "</stream:stream>".into(),
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(RecvError::Io(e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.transport
                .sock()
                .set_read_timeout(Some(left))
                .map_err(|e| RecvError::Io(e.to_string()))?;
            match self.transport.read(&mut buf) {
                Ok(0) => return Err(RecvError::Eof),
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => {}
                    io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => {
                        return Err(RecvError::Eof)
                    }
                    _ => return Err(RecvError::Io(e.to_string())),
                },
            }
        }
    }

    /// Sends `</stream:stream>` and waits for the server's, skipping any
    /// elements before it (RFC 6120 §4.4).
    pub fn close_stream(&mut self, timeout: Duration) -> Result<(), RecvError> {
        self.send("</stream:stream>").map_err(RecvError::Io)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(_) => {}
                Err(RecvError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Closes the TCP connection without `</stream:stream>` or TLS close_notify.
    pub fn drop_tcp(self) {
        let _ = self.transport.sock().shutdown(Shutdown::Both);
    }
}

impl ElementStream for XmppTcpClient {
    fn send_element(&mut self, raw: &str) -> Result<(), String> {
        self.send(raw)
    }

    fn recv_element(&mut self) -> Result<String, String> {
        self.recv(self.timeout).map_err(|e| e.to_string())
    }

    fn restart_stream(&mut self, domain: &str) -> Result<String, String> {
        self.open(domain).map_err(|e| e.to_string())
    }
}
