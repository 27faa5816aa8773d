//! TEMPORARY compile stub of the promised bosh core API (never merged).
#![allow(dead_code, unused_variables)]
use crate::{backend, xml};
use std::ops::Range;
use std::time::{Duration, Instant};
pub const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
#[derive(Debug, Default, Clone)]
pub struct Body {
    pub rid: Option<u64>,
    pub sid: Option<String>,
    pub to: Option<String>,
    pub payload: Range<usize>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    ItemNotFound,
    SystemShutdown,
}
pub fn parse_body(bytes: &[u8], limits: xml::Limits) -> Result<Body, Condition> {
    Err(Condition::BadRequest)
}
#[derive(Clone, Debug)]
pub struct Settings {
    pub x: u8,
}
pub type RequestHandle = u64;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub usize);
pub enum Command {
    Connect {
        stream: StreamId,
        domain: String,
        route: Option<String>,
    },
    CloseBackend {
        stream: StreamId,
    },
    End(String),
}
pub struct Response {
    pub body: Vec<u8>,
    pub status: u16,
}
pub fn terminate_response(c: Condition) -> Response {
    Response {
        body: vec![],
        status: 200,
    }
}
pub struct Session;
impl Session {
    pub fn create(
        now: Instant,
        settings: Settings,
        sid: String,
        request: RequestHandle,
        body: &Body,
        raw: &[u8],
    ) -> Result<Session, Response> {
        Ok(Session)
    }
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: RequestHandle,
        body: &Body,
        raw: &[u8],
    ) {
    }
    pub fn request_gone(&mut self, request: RequestHandle) {}
    pub fn backend_connected(
        &mut self,
        now: Instant,
        stream: StreamId,
        settings: backend::Settings,
    ) {
    }
    pub fn backend_failed(&mut self, stream: StreamId, why: String) {}
    pub fn handle_backend_input(&mut self, now: Instant, stream: StreamId, bytes: &[u8]) {}
    pub fn handle_backend_eof(&mut self, stream: StreamId) {}
    pub fn backend_output(&self, stream: StreamId) -> &[u8] {
        &[]
    }
    pub fn consume_backend_output(&mut self, stream: StreamId, n: usize) {}
    pub fn wants_backend_input(&self, stream: StreamId) -> bool {
        true
    }
    pub fn poll_response(&mut self) -> Option<(RequestHandle, Response)> {
        None
    }
    pub fn poll_command(&mut self) -> Option<Command> {
        None
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    pub fn handle_timeout(&mut self, now: Instant) {}
    pub fn is_ended(&self) -> bool {
        false
    }
    pub fn domain(&self) -> &str {
        ""
    }
    pub fn lang(&self) -> &str {
        "en"
    }
}
