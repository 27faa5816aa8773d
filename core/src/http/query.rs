//! Query strings (RFC 3986 §3.4, HTML form encoding): one parameter's value,
//! percent-decoded. BOSH's GET fallback carries the whole `<body/>` in one.

/// The first value of `name` in `query`, with `+` as space and `%XX`
/// decoded; `None` when absent or badly encoded.
pub fn query_param(query: &str, name: &str) -> Option<Vec<u8>> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| percent_decode(value))
}

fn percent_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_and_decoded() {
        let q = "callback=cb_1&data=%3Cbody+rid%3D%2712%27%2F%3E";
        assert_eq!(query_param(q, "data").unwrap(), b"<body rid='12'/>");
        assert_eq!(query_param(q, "callback").unwrap(), b"cb_1");
        assert_eq!(query_param(q, "other"), None);
        assert_eq!(query_param("flag&x=1", "flag").unwrap(), b"");
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert_eq!(query_param("data=%3", "data"), None);
        assert_eq!(query_param("data=%zz", "data"), None);
    }
}
