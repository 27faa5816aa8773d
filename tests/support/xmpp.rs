//! XMPP vocabulary shared by the stub server and the test clients: namespaces,
//! SASL PLAIN (RFC 4616) with its base64 (RFC 4648 §4), and the
//! authenticate-restart-bind dance (RFC 6120 §6, §7) written once for any
//! transport.

use super::xml;

/// RFC 6120 §4.8.2: default namespace of client streams.
pub const NS_CLIENT: &str = "jabber:client";
/// RFC 6120 §4.8.1: stream namespace.
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// RFC 6120 §5.4: STARTTLS.
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 6120 §6.4: SASL.
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// RFC 6120 §7.2: resource binding.
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 6120 §4.9.3: stream error conditions.
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// RFC 7395 §3.3.2: WebSocket framing elements `<open/>` and `<close/>`.
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as SASL uses on XMPP.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64, ignoring whitespace; `None` on any other junk.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let digits = digits
        .strip_suffix(b"==")
        .or(digits.strip_suffix(b"="))
        .unwrap_or(&digits);
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &d in digits {
        let value = ALPHABET.iter().position(|&a| a == d)? as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `<auth/>` for SASL PLAIN (RFC 4616 §2) with an empty authzid.
pub fn plain_auth(user: &str, password: &str) -> String {
    let token = base64_encode(format!("\0{user}\0{password}").as_bytes());
    format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
}

/// A bind request (RFC 6120 §7.6.1), with `xmlns='jabber:client'` so that it
/// also stands alone in an RFC 7395 message.
pub fn bind_request(id: &str, resource: Option<&str>) -> String {
    match resource {
        Some(r) => format!(
            "<iq xmlns='{NS_CLIENT}' type='set' id='{id}'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
            xml::escape(r)
        ),
        None => format!("<iq xmlns='{NS_CLIENT}' type='set' id='{id}'><bind xmlns='{NS_BIND}'/></iq>"),
    }
}

/// A chat message (RFC 6121 §5.2) standing alone, as RFC 7395 needs.
pub fn chat_message(to: &str, body: &str) -> String {
    format!(
        "<message xmlns='{NS_CLIENT}' to='{}' type='chat'><body>{}</body></message>",
        xml::escape(to),
        xml::escape(body)
    )
}

/// The part of a JID before the `/` (RFC 7622 §3.1).
pub fn bare_jid(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(bare, _)| bare)
}

/// One XMPP stream over some transport, for the shared login dance.
pub trait ElementStream {
    fn send_element(&mut self, raw: &str) -> Result<(), String>;
    /// The next top-level element.
    fn recv_element(&mut self) -> Result<String, String>;
    /// Opens a new stream after SASL success (RFC 6120 §6.4.6) and returns
    /// the new `<stream:features/>`.
    fn restart_stream(&mut self, domain: &str) -> Result<String, String>;
}

/// SASL PLAIN, stream restart, resource binding; returns the bound full JID.
pub fn login_plain<S: ElementStream>(
    stream: &mut S,
    user: &str,
    password: &str,
    domain: &str,
    resource: Option<&str>,
) -> Result<String, String> {
    stream.send_element(&plain_auth(user, password))?;
    let outcome = stream.recv_element()?;
    if xml::root_name(&outcome).as_deref() != Some("success") {
        return Err(format!("sasl plain refused: {outcome}"));
    }
    let features = stream.restart_stream(domain)?;
    if !xml::has_element(&features, "bind") {
        return Err(format!("no bind feature after sasl: {features}"));
    }
    stream.send_element(&bind_request("bind_1", resource))?;
    let reply = stream.recv_element()?;
    if xml::attr(&reply, "type").as_deref() != Some("result") {
        return Err(format!("bind failed: {reply}"));
    }
    xml::element_text(&reply, "jid").ok_or_else(|| format!("bind result without jid: {reply}"))
}
