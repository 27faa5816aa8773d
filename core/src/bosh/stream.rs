//! One XMPP stream of a BOSH session (XEP-0124 §19): its negotiation with
//! the server, the server data waiting for a request, and what the client
//! sent before the stream was up. A session has one or more of these.

use std::time::Instant;

use crate::backend;
use crate::end::{End, Mistake};
use crate::xml;

/// RFC 6120 §6.4.6: `<success/>` lives here.
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// Why a stream is over, for the client's terminate body and the log.
#[derive(Debug)]
pub(super) struct Ended {
    pub end: End,
    /// The server's `<stream:error/>`, namespaces spliced, for
    /// remote-stream-error.
    pub content: Vec<u8>,
}

impl Ended {
    pub fn new(end: End) -> Self {
        Ended {
            end,
            content: Vec::new(),
        }
    }

    pub fn failed(why: impl Into<String>) -> Self {
        Ended::new(End::BackendFailed(why.into()))
    }
}

pub(super) struct XmppStream {
    /// Opaque, unpredictable (XEP-0124 §19.2).
    pub name: String,
    pub domain: String,
    pub lang: String,
    /// The client's `from`, echoed as `to` (node-xmpp-bosh does).
    pub client_from: Option<String>,
    backend: Option<backend::Stream>,
    /// Server stanzas, namespaces spliced, waiting for a request.
    pub pending: Vec<u8>,
    /// Client payload that came before the server stream was up.
    early: Vec<u8>,
    /// The current stream's features, for a restart that cannot reach the
    /// server (see [`XmppStream::restart`]).
    features: Vec<u8>,
    /// A SASL `<success/>` came since the current stream started.
    authenticated: bool,
    /// A SASL `<success/>` came on any stream of this connection.
    ever_authenticated: bool,
    /// The server's features have come at least once.
    pub ready: bool,
    pub handshake_deadline: Option<Instant>,
    /// Closed on the client's request: kept until `</stream:stream>` is out.
    pub closing: bool,
}

impl XmppStream {
    pub fn new(
        name: String,
        domain: String,
        lang: String,
        client_from: Option<String>,
        handshake_deadline: Instant,
    ) -> Self {
        XmppStream {
            name,
            domain,
            lang,
            client_from,
            backend: None,
            pending: Vec::new(),
            early: Vec::new(),
            features: Vec::new(),
            authenticated: false,
            ever_authenticated: false,
            ready: false,
            handshake_deadline: Some(handshake_deadline),
            closing: false,
        }
    }

    pub fn connected(&mut self, settings: backend::Settings) {
        self.backend = Some(backend::Stream::new(settings));
    }

    pub fn output(&self) -> &[u8] {
        self.backend.as_ref().map_or(&[], |b| b.output())
    }

    pub fn consume_output(&mut self, n: usize) {
        if let Some(b) = self.backend.as_mut() {
            b.consume_output(n);
        }
    }

    /// Bytes held for either side.
    pub fn buffered_bytes(&self) -> usize {
        self.pending.len() + self.early.len() + self.features.len() + self.output().len()
    }

    /// XEP-0206 `secure`: see [`backend::Stream::is_secure`].
    pub fn is_secure(&self) -> bool {
        self.backend.as_ref().is_some_and(|b| b.is_secure())
    }

    pub fn has_backend(&self) -> bool {
        self.backend.is_some()
    }

    /// The server's stream id, the session's `authid` (XEP-0206 §6).
    pub fn authid(&self) -> Option<&str> {
        self.backend
            .as_ref()
            .and_then(|b| b.server_header())
            .and_then(|h| h.id.as_deref())
    }

    /// Server bytes in; stanzas go to `pending`.
    pub fn handle_input(&mut self, bytes: &[u8], max_pending: usize) -> Result<(), Ended> {
        let Some(stream) = self.backend.as_mut() else {
            return Ok(());
        };
        stream
            .handle_input(bytes)
            .map_err(|e| Ended::failed(e.to_string()))?;
        loop {
            let Some(stream) = self.backend.as_mut() else {
                return Ok(());
            };
            match stream
                .poll_event()
                .map_err(|e| Ended::failed(e.to_string()))?
            {
                None => return Ok(()),
                Some(backend::Event::Features(bytes, info)) => {
                    let start = self.pending.len();
                    xml::splice_namespaces(bytes, &info, xml::NS_CLIENT, &mut self.pending);
                    // Only a stream before SASL success can need them again
                    // (see `restart`); an idle session keeps no copy.
                    self.features.clear();
                    if !self.ever_authenticated {
                        self.features.extend_from_slice(&self.pending[start..]);
                    } else {
                        self.features = Vec::new();
                    }
                    self.authenticated = false;
                    self.ready = true;
                    self.handshake_deadline = None;
                    let early = std::mem::take(&mut self.early);
                    self.send(&early, max_pending)?;
                }
                Some(backend::Event::Element(bytes, info)) => {
                    if info.local_name(bytes) == "success" && info.namespace(bytes) == Some(NS_SASL)
                    {
                        self.authenticated = true;
                        self.ever_authenticated = true;
                        self.features = Vec::new();
                    }
                    xml::splice_namespaces(bytes, &info, xml::NS_CLIENT, &mut self.pending);
                }
                Some(backend::Event::StreamError {
                    element,
                    info,
                    condition,
                }) => {
                    let mut content = Vec::new();
                    xml::splice_namespaces(element, &info, xml::NS_CLIENT, &mut content);
                    self.backend = None;
                    return Err(Ended {
                        end: End::ServerStreamError(condition),
                        content,
                    });
                }
                Some(backend::Event::Closed) => {
                    self.backend = None;
                    return Err(Ended::new(End::ServerClosed));
                }
            }
        }
    }

    /// Client payload out, or kept until the server stream is up.
    pub fn send(&mut self, payload: &[u8], max_pending: usize) -> Result<(), Ended> {
        if payload.is_empty() {
            return Ok(());
        }
        match self.backend.as_mut().filter(|b| b.is_ready()) {
            Some(stream) => stream
                .send(payload)
                .map_err(|e| Ended::failed(e.to_string())),
            None if self.early.len() + payload.len() <= max_pending => {
                self.early.extend_from_slice(payload);
                Ok(())
            }
            None => Err(Ended::new(End::Client(Mistake::TooMuchEarlyData))),
        }
    }

    /// XEP-0206 §5: a new stream to the server. A server takes a new
    /// stream header only after STARTTLS or SASL success; some clients
    /// (node-xmpp-client) also restart right after creation, which
    /// in-server BOSH allows. Such a restart is answered with the current
    /// stream's features instead of reaching the server.
    pub fn restart(&mut self, extra: &[(String, String)]) -> Result<(), Ended> {
        let Some(stream) = self.backend.as_mut().filter(|b| b.is_ready()) else {
            return Err(Ended::new(End::Client(Mistake::RestartTooEarly)));
        };
        if self.authenticated {
            stream
                .restart_with(&self.lang, extra)
                .map_err(|e| Ended::failed(e.to_string()))
        } else {
            self.pending.extend_from_slice(&self.features);
            Ok(())
        }
    }

    /// The client's clean close (XEP-0124 §13): its last payload, then
    /// `</stream:stream>`.
    pub fn close(&mut self, payload: &[u8], max_pending: usize) {
        // A failed send only loses the last payload of a closing stream.
        let _ = self.send(payload, max_pending);
        if let Some(stream) = self.backend.as_mut() {
            stream.close();
        }
        self.closing = true;
        // A closed stream is not waited for: its handshake no longer counts.
        self.handshake_deadline = None;
    }

    /// A vanished client or a failure: the TCP connection goes without
    /// `</stream:stream>`, so the server may resume the session (XEP-0198).
    pub fn drop_backend(&mut self) {
        self.backend = None;
    }
}
