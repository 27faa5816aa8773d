//! One client TCP connection: a nonblocking socket with input and output
//! buffers, and the connector that opens them from the chosen source
//! addresses.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::net::{connect, error_kind};
use crate::xmpp::ErrorKind;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// Opens connections (from the source addresses in turn) and lends the
/// shared read buffer and scratch space to the transports.
pub struct Net {
    registry: Registry,
    sources: Vec<IpAddr>,
    next_source: usize,
    read_buf: Box<[u8]>,
    /// Reused space for building one request or element.
    pub scratch: Vec<u8>,
    /// The event being handled reported the peer's close: read to the end.
    pub hangup: bool,
    /// Connections opened so far.
    pub opened: u64,
    /// Faults made and repaired by the BOSH transport.
    pub faults: FaultCounts,
    /// Wake-ups asked for by transports: (session, after how long). The
    /// driver moves them onto its timers after each call.
    pub wakes: Vec<(usize, Duration)>,
}

/// What `--cut-connections` did, and how the BOSH clients recovered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    /// Connections cut before the request was written.
    pub cut_before_request: u64,
    /// Connections cut with part of the request written.
    pub cut_mid_request: u64,
    /// Connections cut with the request written and no response begun.
    pub cut_held: u64,
    /// Connections cut with part of the response read.
    pub cut_mid_response: u64,
    /// Requests sent again with the same rid (XEP-0124 §14.3), after a cut
    /// or after the server closed or reset their connection.
    pub resent: u64,
    /// Connections the server closed or reset with a request on them.
    pub server_closed: u64,
    /// Responses that reported a missing one (`report`, XEP-0124 §9.2).
    pub reports: u64,
}

impl FaultCounts {
    /// Connections cut on purpose.
    pub fn cuts(&self) -> u64 {
        self.cut_before_request + self.cut_mid_request + self.cut_held + self.cut_mid_response
    }
}

impl Net {
    pub fn new(registry: Registry, sources: Vec<IpAddr>) -> Self {
        Net {
            registry,
            sources,
            next_source: 0,
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
            scratch: Vec::new(),
            hangup: false,
            opened: 0,
            faults: FaultCounts::default(),
            wakes: Vec::new(),
        }
    }

    /// Ask the driver to call the transport of `session` again after
    /// `after` (`Transport::on_wake`).
    pub fn wake_after(&mut self, session: usize, after: Duration) {
        self.wakes.push((session, after));
    }
}

/// Whether the peer is still there after a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadState {
    Open,
    /// The peer closed its side.
    Eof,
    /// The connection failed (a reset) after the bytes read so far: a
    /// peer that closes with input unread resets the connection, and what
    /// it sent before, its last words among them, is still to be handled.
    Failed(&'static str),
}

impl ReadState {
    /// How a session whose connection is in this state ends, once what was
    /// read has been handled: `Ok` while it is open.
    pub fn end(self) -> Result<(), ErrorKind> {
        match self {
            ReadState::Open => Ok(()),
            ReadState::Eof => Err("closed_by_peer".into()),
            ReadState::Failed(why) => Err(why.into()),
        }
    }
}

/// A client connection and its buffers.
#[derive(Default)]
pub struct Conn {
    stream: Option<TcpStream>,
    connected: bool,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    written: usize,
}

impl Conn {
    /// Start connecting to `to`; output queued meanwhile is sent once the
    /// connection is up.
    pub fn open(&mut self, net: &mut Net, to: SocketAddr, token: Token) -> Result<(), ErrorKind> {
        let from = (!net.sources.is_empty()).then(|| {
            let ip = net.sources[net.next_source % net.sources.len()];
            net.next_source = net.next_source.wrapping_add(1);
            ip
        });
        let mut stream = connect(to, from).map_err(|e| ErrorKind::from(error_kind(&e)))?;
        net.registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| ErrorKind::from(error_kind(&e)))?;
        self.stream = Some(stream);
        self.connected = false;
        self.input.clear();
        net.opened += 1;
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether everything queued has gone into the socket.
    pub fn all_written(&self) -> bool {
        self.connected && self.output.is_empty()
    }

    /// Drop the socket (it leaves the poll with it) and the buffers.
    pub fn close(&mut self) {
        self.stream = None;
        self.connected = false;
        self.input = Vec::new();
        self.output = Vec::new();
        self.written = 0;
    }

    /// Read all that is available into `input`.
    pub fn read(&mut self, net: &mut Net) -> Result<ReadState, ErrorKind> {
        if !self.connected && !self.check_connected()? {
            return Ok(ReadState::Open);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(ReadState::Open);
        };
        loop {
            match stream.read(&mut net.read_buf) {
                Ok(0) => return Ok(ReadState::Eof),
                Ok(n) => {
                    self.input.extend_from_slice(&net.read_buf[..n]);
                    // A short read emptied the socket: under edge-triggered
                    // polling new data brings a new event, so the read that
                    // would only say WouldBlock is saved.
                    if n < net.read_buf.len() && !net.hangup {
                        return Ok(ReadState::Open);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadState::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Ok(ReadState::Failed(error_kind(&e))),
            }
        }
    }

    /// Write as much of `output` as the socket takes.
    pub fn flush(&mut self) -> Result<(), ErrorKind> {
        if self.written == self.output.len() {
            return Ok(());
        }
        if !self.connected && !self.check_connected()? {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.written < self.output.len() {
            match stream.write(&self.output[self.written..]) {
                Ok(0) => return Err("write_zero".into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(error_kind(&e).into()),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(())
    }

    /// Whether a connect in progress has finished; its failure is an error.
    fn check_connected(&mut self) -> Result<bool, ErrorKind> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(false);
        };
        if let Ok(Some(err)) | Err(err) = stream.take_error() {
            return Err(error_kind(&err).into());
        }
        match stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(error_kind(&e).into()),
        }
    }
}

/// For the transports' tests: a listener nobody serves, the endpoint that
/// names it, and the `Net` to connect there (with its poll); the test
/// plays the server by hand.
#[cfg(test)]
pub struct Loopback {
    pub endpoint: std::rc::Rc<crate::net::Endpoint>,
    pub net: Net,
    pub poll: mio::Poll,
    pub listener: std::net::TcpListener,
}

#[cfg(test)]
impl Loopback {
    pub fn new(path: &str) -> Loopback {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let poll = mio::Poll::new().unwrap();
        Loopback {
            endpoint: std::rc::Rc::new(crate::net::Endpoint {
                addr,
                host: addr.to_string(),
                path: path.into(),
            }),
            net: Net::new(poll.registry().try_clone().unwrap(), Vec::new()),
            poll,
            listener,
        }
    }
}
