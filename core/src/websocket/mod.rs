//! WebSocket transport for XMPP (RFC 6455, RFC 7395), sans-IO.
//!
//! - `handshake`: checks the HTTP upgrade request and builds the `101`
//!   response with the `xmpp` subprotocol (RFC 6455 §4.2, RFC 7395 §3.1).
//! - `codec`: frames and unframes text messages over in-memory buffers
//!   (RFC 6455 §5), refusing what RFC 7395 §3.2/§3.3.3 exclude.
//! - `framing`: the `<open/>` and `<close/>` elements of RFC 7395 §3.3.2.
//!
//! No sockets and no clock here: the reactor moves the bytes and keeps time.

pub mod codec;
pub mod framing;
pub mod handshake;

pub use codec::{CloseReason, Codec, Limits, Message};
pub use framing::{open_element, CLOSE_ELEMENT, NS_FRAMING};
pub use handshake::{accept, Refusal, UpgradeRequest};
