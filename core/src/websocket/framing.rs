//! The RFC 7395 framing elements the server sends: `<open/>` to start (or
//! restart) a stream and `<close/>` to end it. Each is one WebSocket text
//! message (RFC 7395 §3.3.3). Parsing the client's elements is the XML
//! framer's job, not this module's.

use crate::xml;

/// The framing namespace (RFC 7395 §3.3.2).
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// The `<close/>` the server sends to end a stream, and in reply to the
/// client's `<close/>` (RFC 7395 §3.6).
pub const CLOSE_ELEMENT: &str = "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />";

/// The server's `<open/>` (RFC 7395 §3.4): `from` is the XMPP domain, `id`
/// the stream id, `lang` the default language. Attribute values are escaped.
pub fn open_element(from: &str, id: &str, lang: &str) -> String {
    let mut out = String::with_capacity(100 + from.len() + id.len() + lang.len());
    out.push_str("<open xmlns='");
    out.push_str(NS_FRAMING);
    out.push_str("' from='");
    xml::escape_attribute(&mut out, from);
    out.push_str("' id='");
    xml::escape_attribute(&mut out, id);
    out.push_str("' version='1.0' xml:lang='");
    xml::escape_attribute(&mut out, lang);
    out.push_str("'/>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_element_names_domain_id_version_and_language() {
        assert_eq!(
            open_element("example.com", "abc123", "en"),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.com' \
             id='abc123' version='1.0' xml:lang='en'/>"
        );
    }

    #[test]
    fn open_element_escapes_attribute_values() {
        assert_eq!(
            open_element("a'b&c", "<\"x\">", "e\tn"),
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='a&apos;b&amp;c' \
             id='&lt;&quot;x&quot;&gt;' version='1.0' xml:lang='e&#x9;n'/>"
        );
    }

    #[test]
    fn close_element_is_the_exact_reply_text() {
        assert_eq!(
            CLOSE_ELEMENT,
            r#"<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />"#
        );
        assert!(CLOSE_ELEMENT.contains(NS_FRAMING));
    }
}
