//! A plain XMPP client stream over TCP (RFC 6120 §4): the raw-limit row,
//! straight to an XMPP server or the stub.

use std::rc::Rc;

use switchboard_core::xml::{FrameKind, Framer, Limits, Mode};

use super::conn::{Conn, Net};
use super::{token, Flow, Handler, Outbox};
use crate::net::Endpoint;
use crate::xmpp::ErrorKind;

pub struct Tcp {
    endpoint: Rc<Endpoint>,
    domain: Rc<str>,
    conn: Conn,
    framer: Framer,
}

impl Tcp {
    pub fn new(endpoint: Rc<Endpoint>, domain: Rc<str>) -> Self {
        Tcp {
            endpoint,
            domain,
            conn: Conn::default(),
            framer: Framer::new(Mode::Stream, Limits::default()),
        }
    }

    pub fn start(&mut self, net: &mut Net, session: usize) -> Result<(), ErrorKind> {
        self.conn.open(net, self.endpoint.addr, token(session, 0))?;
        self.open_stream();
        Ok(())
    }

    fn open_stream(&mut self) {
        let out = &mut self.conn.output;
        out.extend_from_slice(b"<?xml version='1.0'?><stream:stream to='");
        out.extend_from_slice(self.domain.as_bytes());
        out.extend_from_slice(
            b"' version='1.0' xml:lang='en' xmlns='jabber:client' \
              xmlns:stream='http://etherx.jabber.org/streams'>",
        );
    }

    pub fn on_ready(
        &mut self,
        net: &mut Net,
        outbox: &mut Outbox,
        handle: &mut Handler,
    ) -> Result<(), ErrorKind> {
        let state = self.conn.read(net)?;
        let mut pos = 0;
        let mut result = Ok(());
        while result.is_ok() {
            let input = &self.conn.input[pos..];
            let frame = match self.framer.next(input) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    result = Err(format!("xml:{}", e.condition()).into());
                    break;
                }
            };
            let unit = &input[..frame.len];
            pos += frame.len;
            match frame.kind {
                FrameKind::Element(info) => match handle(unit, &info, outbox) {
                    Flow::Continue => {}
                    Flow::Restart => {
                        outbox.drain(|el| self.conn.output.extend_from_slice(el));
                        self.framer.reset();
                        self.open_stream();
                    }
                    Flow::Fail(kind) => result = Err(kind),
                },
                FrameKind::StreamClose => result = Err("stream_closed".into()),
                FrameKind::StreamOpen(_) | FrameKind::Whitespace | FrameKind::Declaration => {}
            }
        }
        self.conn.input.drain(..pos);
        result?;
        outbox.drain(|el| self.conn.output.extend_from_slice(el));
        self.conn.flush()?;
        state.end()
    }

    pub fn send(&mut self, element: &[u8]) {
        self.conn.output.extend_from_slice(element);
    }

    pub fn flush(&mut self) -> Result<(), ErrorKind> {
        self.conn.flush()
    }

    pub fn close(&mut self) {
        self.conn.close();
    }
}
