//! Why a session ends, on either transport, and the one table of what
//! each party hears: a BOSH client its terminate condition (XEP-0124
//! §17.2), a WebSocket client its stream error (RFC 6120 §4.9.3) and close
//! code (RFC 6455 §7.4.1), the server whether its stream is closed or left
//! to be resumed (XEP-0198), and the log its end line.

use std::fmt;

use crate::bosh::Condition as BoshCondition;
use crate::stream_error::Condition;
use crate::xml;

/// RFC 6455 §7.4.1 close codes.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_INTERNAL: u16 = 1011;

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The client closed on purpose (`<close/>`, `type='terminate'`).
    ClientClosed,
    /// The client's connection went away.
    ClientVanished,
    /// No BOSH request came for the inactivity period (XEP-0124 §7.1).
    Inactive,
    /// A WebSocket close frame with this code, without `<close/>`.
    WebSocketClosed(u16),
    /// The WebSocket framing was broken; the codec sent its close frame.
    WebSocketProtocol(String),
    /// The server closed its stream (`</stream:stream>`).
    ServerClosed,
    /// The server sent a stream error, relayed as it came.
    ServerStreamError(Condition),
    /// The server could not be reached, or the connection to it failed.
    BackendFailed(String),
    /// The stream to the server was not ready in time.
    HandshakeTimeout,
    /// The WebSocket client did not answer a ping.
    PingTimeout,
    /// The client was too slow to send something it had to: `<open/>`
    /// after the upgrade, or the rest of a frame it began.
    ClientTimeout(&'static str),
    /// The client's socket took none of the bytes waiting for it for the
    /// write timeout.
    WriteTimeout,
    /// The client broke the protocol.
    Client(Mistake),
    /// A limit refused the session; the limit's configuration key.
    Refused(&'static str),
    /// The domain is not one switchboard serves (`backend.allowed_domains`,
    /// `backend.denied_domains`).
    NotServed(String),
    /// switchboard could not go on (no random id).
    Internal(&'static str),
    /// switchboard is going down.
    Shutdown,
}

/// What a client did wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mistake {
    /// XML the framer refused.
    Xml(xml::Error),
    /// A WebSocket message that is not exactly one element (RFC 7395
    /// §3.3.3).
    NotOneElement,
    /// A malformed `<open/>` (RFC 7395 §3.3.2).
    BadOpen(&'static str),
    /// A stanza before `<open/>`.
    BeforeOpen,
    /// No `to` on an `<open/>` or a new BOSH stream.
    NoDomain,
    /// A restart to another domain than the session's.
    OtherDomain,
    /// A restart before the stream was up.
    RestartTooEarly,
    /// More data than is held before the stream is up.
    TooMuchEarlyData,
    /// A BOSH request without `rid` (XEP-0124 §14).
    NoRid,
    /// A `rid` outside the window, or repeated beyond the kept responses.
    BadRid(&'static str),
    /// A request for a stream the session does not have (§19).
    UnknownStream,
    /// Requests faster than `polling` allows (§11, §12).
    Overactive(&'static str),
    /// More streams than `bosh.max_streams`.
    TooManyStreams,
    /// A `route` the configuration does not allow (§7.1).
    RouteNotAllowed,
    /// A `stream_attrs` that cannot go into a stream header.
    BadStreamAttrs(String),
    /// A request body that is not a well-formed `<body/>`.
    BadBody,
}

/// What a WebSocket client hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSocketEnd {
    /// The stream error sent before `<close/>`, if any.
    pub stream_error: Option<Condition>,
    pub close_code: u16,
}

/// What becomes of the server's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerSide {
    /// `</stream:stream>`: the session is over for the server too.
    Close,
    /// The connection is dropped without a word, so that the client may
    /// resume the session (XEP-0198), or the stream is gone already.
    Drop,
}

impl End {
    /// The WebSocket column of the table.
    pub fn websocket(&self) -> WebSocketEnd {
        let (stream_error, close_code) = match self {
            End::ClientClosed | End::ServerClosed | End::ServerStreamError(_) => {
                (None, CLOSE_NORMAL)
            }
            // Nobody hears these: the socket is gone or never read.
            End::ClientVanished | End::Inactive | End::PingTimeout | End::WriteTimeout => {
                (None, CLOSE_POLICY)
            }
            End::ClientTimeout(_) => (Some(Condition::ConnectionTimeout), CLOSE_POLICY),
            End::WebSocketClosed(code) => (None, *code),
            End::WebSocketProtocol(_) => (None, CLOSE_INVALID_PAYLOAD),
            End::BackendFailed(_) | End::HandshakeTimeout => {
                (Some(Condition::RemoteConnectionFailed), CLOSE_NORMAL)
            }
            End::Client(mistake) => {
                let condition = mistake.stream_condition();
                let code = match condition {
                    Condition::PolicyViolation => CLOSE_POLICY,
                    _ => CLOSE_INVALID_PAYLOAD,
                };
                (Some(condition), code)
            }
            End::Refused(_) => (Some(Condition::ResourceConstraint), CLOSE_POLICY),
            End::NotServed(_) => (Some(Condition::HostUnknown), CLOSE_POLICY),
            End::Internal(_) => (Some(Condition::InternalServerError), CLOSE_INTERNAL),
            End::Shutdown => (Some(Condition::SystemShutdown), CLOSE_GOING_AWAY),
        };
        WebSocketEnd {
            stream_error,
            close_code,
        }
    }

    /// The BOSH column: the terminate condition; `None` is a terminate
    /// without one (a clean end).
    pub fn bosh(&self) -> Option<BoshCondition> {
        match self {
            End::ClientClosed
            | End::ServerClosed
            | End::ClientVanished
            | End::Inactive
            | End::PingTimeout
            | End::ClientTimeout(_)
            | End::WriteTimeout
            | End::WebSocketClosed(_)
            | End::WebSocketProtocol(_) => None,
            End::ServerStreamError(_) => Some(BoshCondition::RemoteStreamError),
            End::BackendFailed(_) | End::HandshakeTimeout => {
                Some(BoshCondition::RemoteConnectionFailed)
            }
            End::Client(mistake) => Some(mistake.bosh_condition()),
            End::Refused(_) => Some(BoshCondition::PolicyViolation),
            End::NotServed(_) => Some(BoshCondition::HostUnknown),
            End::Internal(_) => Some(BoshCondition::InternalServerError),
            End::Shutdown => Some(BoshCondition::SystemShutdown),
        }
    }

    /// The server column.
    pub fn server_side(&self) -> ServerSide {
        match self {
            End::ClientClosed
            | End::Client(_)
            | End::ClientTimeout(_)
            | End::Refused(_)
            | End::NotServed(_)
            | End::Internal(_) => ServerSide::Close,
            _ => ServerSide::Drop,
        }
    }
}

impl Mistake {
    fn stream_condition(&self) -> Condition {
        match self {
            Mistake::Xml(e) => e.condition(),
            Mistake::NotOneElement => Condition::BadFormat,
            Mistake::BadOpen(_) => Condition::NotWellFormed,
            Mistake::BeforeOpen => Condition::NotAuthorized,
            Mistake::NoDomain | Mistake::OtherDomain | Mistake::RouteNotAllowed => {
                Condition::HostUnknown
            }
            Mistake::RestartTooEarly
            | Mistake::TooMuchEarlyData
            | Mistake::Overactive(_)
            | Mistake::TooManyStreams => Condition::PolicyViolation,
            Mistake::NoRid
            | Mistake::BadRid(_)
            | Mistake::UnknownStream
            | Mistake::BadStreamAttrs(_)
            | Mistake::BadBody => Condition::BadFormat,
        }
    }

    fn bosh_condition(&self) -> BoshCondition {
        match self {
            Mistake::NoDomain => BoshCondition::ImproperAddressing,
            Mistake::OtherDomain | Mistake::RouteNotAllowed => BoshCondition::HostUnknown,
            Mistake::BadRid(_) | Mistake::UnknownStream => BoshCondition::ItemNotFound,
            Mistake::TooMuchEarlyData | Mistake::Overactive(_) | Mistake::TooManyStreams => {
                BoshCondition::PolicyViolation
            }
            Mistake::Xml(e) if e.condition() == Condition::PolicyViolation => {
                BoshCondition::PolicyViolation
            }
            Mistake::Xml(_)
            | Mistake::NotOneElement
            | Mistake::BadOpen(_)
            | Mistake::BeforeOpen
            | Mistake::RestartTooEarly
            | Mistake::NoRid
            | Mistake::BadStreamAttrs(_)
            | Mistake::BadBody => BoshCondition::BadRequest,
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::ClientClosed => f.write_str("client closed"),
            End::ClientVanished => f.write_str("client vanished"),
            End::Inactive => f.write_str("inactivity timeout"),
            End::WebSocketClosed(code) => {
                write!(f, "client closed the websocket ({code}) without <close/>")
            }
            End::WebSocketProtocol(why) => write!(f, "client protocol error: {why}"),
            End::ServerClosed => f.write_str("server closed the stream"),
            End::ServerStreamError(c) => write!(f, "server stream error: {c}"),
            End::BackendFailed(why) => write!(f, "backend failed: {why}"),
            End::HandshakeTimeout => f.write_str("backend handshake timed out"),
            End::PingTimeout => f.write_str("client did not answer ping"),
            End::ClientTimeout(what) => write!(f, "client too slow: no {what} in time"),
            End::WriteTimeout => f.write_str("client read nothing for the write timeout"),
            End::Client(mistake) => write!(f, "client protocol error: {mistake}"),
            End::Refused(limit) => write!(f, "refused: {limit} reached"),
            End::NotServed(domain) => write!(f, "domain not served: {domain}"),
            End::Internal(why) => write!(f, "internal error: {why}"),
            End::Shutdown => f.write_str("system shutdown"),
        }
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let condition = self.stream_condition();
        match self {
            Mistake::Xml(e) => write!(f, "{condition}: {e}"),
            Mistake::NotOneElement => write!(f, "{condition}: not exactly one element"),
            Mistake::BadOpen(why) => write!(f, "{condition}: {why}"),
            Mistake::BeforeOpen => write!(f, "{condition}: stanza before <open/>"),
            Mistake::NoDomain => write!(f, "{condition}: no to"),
            Mistake::OtherDomain => write!(f, "{condition}: restart to another domain"),
            Mistake::RestartTooEarly => write!(f, "{condition}: restart before features"),
            Mistake::TooMuchEarlyData => {
                write!(f, "{condition}: too much data before the stream was up")
            }
            Mistake::NoRid => f.write_str("request without rid"),
            Mistake::BadRid(why) => write!(f, "rid {why}"),
            Mistake::UnknownStream => f.write_str("unknown stream"),
            Mistake::Overactive(why) => f.write_str(why),
            Mistake::TooManyStreams => f.write_str("too many streams"),
            Mistake::RouteNotAllowed => f.write_str("route not allowed"),
            Mistake::BadStreamAttrs(why) => f.write_str(why),
            Mistake::BadBody => f.write_str("a body that is not a well-formed <body/>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One cause, one condition, whichever transport the client uses.
    #[test]
    fn each_cause_is_told_the_same_on_both_transports() {
        let cases = [
            (
                End::HandshakeTimeout,
                Some(Condition::RemoteConnectionFailed),
                Some(BoshCondition::RemoteConnectionFailed),
            ),
            (
                End::BackendFailed("refused".into()),
                Some(Condition::RemoteConnectionFailed),
                Some(BoshCondition::RemoteConnectionFailed),
            ),
            (
                End::Refused("server.max_sessions"),
                Some(Condition::ResourceConstraint),
                Some(BoshCondition::PolicyViolation),
            ),
            (
                End::Shutdown,
                Some(Condition::SystemShutdown),
                Some(BoshCondition::SystemShutdown),
            ),
            (
                End::Client(Mistake::NoDomain),
                Some(Condition::HostUnknown),
                Some(BoshCondition::ImproperAddressing),
            ),
            (
                End::Client(Mistake::TooMuchEarlyData),
                Some(Condition::PolicyViolation),
                Some(BoshCondition::PolicyViolation),
            ),
            (
                End::NotServed("example.org".into()),
                Some(Condition::HostUnknown),
                Some(BoshCondition::HostUnknown),
            ),
            (End::ClientClosed, None, None),
        ];
        for (end, stream_error, bosh) in cases {
            assert_eq!(end.websocket().stream_error, stream_error, "{end}");
            assert_eq!(end.bosh(), bosh, "{end}");
        }
    }

    #[test]
    fn limits_are_policy_close_codes_and_shutdown_is_going_away() {
        assert_eq!(End::Refused("x").websocket().close_code, CLOSE_POLICY);
        assert_eq!(
            End::Client(Mistake::Xml(xml::Error::TooLarge))
                .websocket()
                .close_code,
            CLOSE_POLICY
        );
        assert_eq!(
            End::Client(Mistake::NotOneElement).websocket().close_code,
            CLOSE_INVALID_PAYLOAD
        );
        assert_eq!(End::Shutdown.websocket().close_code, CLOSE_GOING_AWAY);
    }

    #[test]
    fn the_server_stream_is_closed_only_when_no_client_will_resume_it() {
        assert_eq!(End::ClientClosed.server_side(), ServerSide::Close);
        assert_eq!(
            End::Client(Mistake::BeforeOpen).server_side(),
            ServerSide::Close
        );
        for resumable in [
            End::ClientVanished,
            End::Inactive,
            End::PingTimeout,
            End::Shutdown,
            End::WebSocketClosed(1001),
        ] {
            assert_eq!(resumable.server_side(), ServerSide::Drop, "{resumable}");
        }
    }
}
