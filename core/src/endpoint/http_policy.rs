//! HTTP policy above the request reader: which origins may use BOSH and
//! WebSocket (CORS, RFC 6455 §10.2), and node-xmpp-bosh's JSONP for old
//! clients.

/// RFC 6455 §10.2: a browser names the page's origin; non-browser clients
/// send none and are let through.
pub(super) fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        Some(origin) if !allowed.is_empty() => allowed.iter().any(|a| a == origin),
        _ => true,
    }
}

/// The `Access-Control-Allow-Origin` value for a request: `*` when the
/// list allows any origin, the request's origin when listed, else none.
pub(super) fn cors_origin(allowed: &[String], origin: Option<&str>) -> Option<String> {
    if allowed.iter().any(|a| a == "*") {
        return Some("*".to_string());
    }
    let origin = origin?;
    allowed
        .iter()
        .any(|a| a == origin)
        .then(|| origin.to_string())
}

/// A JSONP callback name: a JavaScript identifier path, nothing that could
/// carry script of its own.
pub(super) fn safe_identifier(name: &str) -> bool {
    let mut parts = name.split('.');
    name.len() <= 64
        && parts.all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

/// `callback({"reply":"<body .../>"})`, as node-xmpp-bosh answers JSONP.
pub(super) fn jsonp(callback: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{callback}({{\"reply\":\"").into_bytes();
    for c in String::from_utf8_lossy(body).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.extend_from_slice(b"\"})");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonp_callbacks_must_be_plain_identifiers() {
        for good in ["cb", "_cb1", "$", "jQuery.cb_2", "a.b.c"] {
            assert!(safe_identifier(good), "{good}");
        }
        for bad in [
            "",
            "1cb",
            "cb()",
            "a..b",
            "alert(1);cb",
            "a b",
            "cb<",
            &"x".repeat(65),
        ] {
            assert!(!safe_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn jsonp_escapes_the_reply_as_a_json_string() {
        let out = jsonp("cb", b"<body a=\"1\">\\\n\xe2\x80\xa8</body>");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "cb({\"reply\":\"<body a=\\\"1\\\">\\\\\\u000a\\u2028</body>\"})"
        );
    }

    #[test]
    fn cors_echoes_listed_origins_or_allows_any() {
        let any = vec!["*".to_string()];
        let listed = vec!["https://a.example".to_string()];
        assert_eq!(cors_origin(&any, None).as_deref(), Some("*"));
        assert_eq!(
            cors_origin(&listed, Some("https://a.example")).as_deref(),
            Some("https://a.example")
        );
        assert_eq!(cors_origin(&listed, Some("https://b.example")), None);
        assert_eq!(cors_origin(&[], Some("https://a.example")), None);
    }
}
