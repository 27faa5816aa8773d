//! BOSH (XEP-0124) carrying XMPP (XEP-0206), sans-IO: the `<body/>` codec
//! and the session state machine. The reactor owns the HTTP connections
//! and the backend sockets and moves bytes between them and [`Session`].

mod body;
mod replies;
mod session;
mod stream;

pub use body::{parse_body, terminate_body, Body, Condition, MAX_RID, NS_HTTPBIND, NS_XBOSH};
pub use session::{
    terminate_response, Command, RequestHandle, Response, Session, Settings, StreamId,
};
