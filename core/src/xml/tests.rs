use super::*;

/// A realistic server-to-client stream: declaration, header, features,
/// stanzas with nested children, CDATA, multi-byte text, keepalives, close.
const SERVER_STREAM: &str = concat!(
    "<?xml version='1.0'?>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'",
    " id='s&amp;1' from='example.com' version='1.0' xml:lang='en'>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>",
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>",
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    "<message from='juliet@example.com/balcony' to=\"romeo@example.net\" type='chat' id='m1'>",
    "<body>Wherefore art thou, Romeo? &lt;3 &#x263A; — ünïcødé 😀 a>b</body><thread>t1</thread></message>",
    " \n",
    "<iq type='result' id='r1'><query xmlns='jabber:iq:roster'>",
    "<item jid='a@b' name='A &amp; B &#233;'><group>Friends</group></item></query></iq>",
    "<presence from='x@y/z'/>",
    "<message><body><![CDATA[<not a tag> & ]]></body></message>",
    "\t",
    "</stream:stream>",
    "\n",
);

fn stream_framer() -> Framer {
    Framer::new(Mode::Stream, Limits::default())
}

/// Drive `framer` like a socket reader: append each chunk to a buffer, take
/// every complete frame, drop its bytes. Returns each frame's bytes and kind.
fn run(framer: &mut Framer, chunks: &[&[u8]]) -> Result<Vec<(String, FrameKind)>, Error> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(frame) = framer.next(&buf)? {
            assert!(
                frame.len > 0 && frame.len <= buf.len(),
                "frame length {}",
                frame.len
            );
            let bytes: Vec<u8> = buf.drain(..frame.len).collect();
            out.push((String::from_utf8(bytes).unwrap(), frame.kind));
        }
    }
    Ok(out)
}

fn whole(mode: Mode, input: &str) -> Result<Vec<(String, FrameKind)>, Error> {
    run(
        &mut Framer::new(mode, Limits::default()),
        &[input.as_bytes()],
    )
}

fn byte_at_a_time(mode: Mode, input: &[u8]) -> Result<Vec<(String, FrameKind)>, Error> {
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    run(&mut Framer::new(mode, Limits::default()), &chunks)
}

fn element(frames: &[(String, FrameKind)], i: usize) -> (&str, &ElementInfo) {
    match &frames[i] {
        (bytes, FrameKind::Element(info)) => (bytes.as_str(), info),
        other => panic!("frame {i} is not an element: {other:?}"),
    }
}

#[test]
fn server_stream_is_cut_into_header_stanzas_whitespace_and_close() {
    let frames = whole(Mode::Stream, SERVER_STREAM).unwrap();
    let texts: Vec<&str> = frames.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(frames.len(), 10, "{texts:#?}");
    assert_eq!(texts.concat(), SERVER_STREAM);
    match &frames[0].1 {
        FrameKind::StreamOpen(h) => {
            assert!(frames[0]
                .0
                .starts_with("<?xml version='1.0'?><stream:stream"));
            assert_eq!(h.id.as_deref(), Some("s&1"));
            assert_eq!(h.from.as_deref(), Some("example.com"));
            assert_eq!(h.to, None);
            assert_eq!(h.version.as_deref(), Some("1.0"));
            assert_eq!(h.lang.as_deref(), Some("en"));
            assert_eq!(h.ns.as_deref(), Some(NS_CLIENT));
        }
        other => panic!("expected header, got {other:?}"),
    }
    let (features, info) = element(&frames, 1);
    assert!(features.starts_with("<stream:features>") && features.ends_with("</stream:features>"));
    assert_eq!(info.prefix(features.as_bytes()), Some("stream"));
    assert_eq!(info.local_name(features.as_bytes()), "features");
    assert!(info.uses_stream_prefix && !info.declares_stream_prefix);
    assert_eq!(info.default_ns, None);
    let (message, info) = element(&frames, 2);
    assert!(message.ends_with("</message>"));
    assert_eq!(info.qualified_name(message.as_bytes()), "message");
    assert_eq!(info.prefix(message.as_bytes()), None);
    assert_eq!(info.name_end, "<message".len());
    assert!(!info.uses_stream_prefix && !info.empty);
    assert_eq!(frames[3], (" \n".to_owned(), FrameKind::Whitespace));
    let (iq, info) = element(&frames, 4);
    assert!(iq.starts_with("<iq type='result'") && iq.ends_with("</iq>"));
    assert_eq!(
        info.namespace(iq.as_bytes()),
        None,
        "xmlns on a child is not the iq's own"
    );
    let (presence, info) = element(&frames, 5);
    assert_eq!(presence, "<presence from='x@y/z'/>");
    assert!(info.empty);
    let (cdata, _) = element(&frames, 6);
    assert!(cdata.contains("<![CDATA[<not a tag> & ]]>"));
    assert_eq!(frames[7].1, FrameKind::Whitespace);
    assert_eq!(
        frames[8],
        ("</stream:stream>".to_owned(), FrameKind::StreamClose)
    );
    assert_eq!(frames[9], ("\n".to_owned(), FrameKind::Whitespace));
}

#[test]
fn every_split_into_two_reads_gives_the_same_frames() {
    let expected = whole(Mode::Stream, SERVER_STREAM).unwrap();
    let bytes = SERVER_STREAM.as_bytes();
    for cut in 0..=bytes.len() {
        let got = run(&mut stream_framer(), &[&bytes[..cut], &bytes[cut..]]).unwrap();
        assert_eq!(got, merge_whitespace(&expected, &got), "cut at {cut}");
    }
}

#[test]
fn one_byte_at_a_time_gives_the_same_frames() {
    let expected = whole(Mode::Stream, SERVER_STREAM).unwrap();
    let got = byte_at_a_time(Mode::Stream, SERVER_STREAM.as_bytes()).unwrap();
    assert_eq!(got, merge_whitespace(&expected, &got));
}

/// Whitespace may legitimately arrive as several frames when a read ends
/// inside it (keepalives are forwarded at once). Join consecutive whitespace
/// frames of `got` and compare shapes: every other frame must be identical.
fn merge_whitespace(
    expected: &[(String, FrameKind)],
    got: &[(String, FrameKind)],
) -> Vec<(String, FrameKind)> {
    let mut merged: Vec<(String, FrameKind)> = Vec::new();
    for (text, kind) in got {
        if let (Some((last, FrameKind::Whitespace)), FrameKind::Whitespace) =
            (merged.last_mut(), kind)
        {
            last.push_str(text);
        } else {
            merged.push((text.clone(), kind.clone()));
        }
    }
    assert_eq!(merged, expected);
    got.to_vec()
}

#[test]
fn utf8_character_split_across_reads_waits_then_completes() {
    let mut framer = Framer::new(Mode::Fragments, Limits::default());
    let msg = "<body>é😀</body>".as_bytes();
    let e_start = "<body>".len();
    // Cut inside 'é' (2 bytes) and inside the emoji (4 bytes).
    assert_eq!(framer.next(&msg[..e_start + 1]).unwrap(), None);
    assert_eq!(framer.next(&msg[..e_start + 4]).unwrap(), None);
    let frame = framer.next(msg).unwrap().unwrap();
    assert_eq!(frame.len, msg.len());
}

#[test]
fn invalid_utf8_is_refused_after_the_frames_before_it() {
    let mut input = b"<a/><b>".to_vec();
    input.extend_from_slice(&[0xC3, 0x28]);
    input.extend_from_slice(b"</b>");
    let mut framer = Framer::new(Mode::Fragments, Limits::default());
    assert_eq!(framer.next(&input).unwrap().unwrap().len, 4);
    let err = framer.next(&input[4..]).unwrap_err();
    assert_eq!(err, Error::InvalidUtf8);
    assert_eq!(err.condition().as_str(), "unsupported-encoding");
    // An invalid byte arriving one at a time is refused too.
    let err = byte_at_a_time(Mode::Fragments, &input).unwrap_err();
    assert_eq!(err, Error::InvalidUtf8);
}

fn stream_error(body: &str) -> Error {
    let header =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let input = format!("{header}{body}");
    let err = whole(Mode::Stream, &input).unwrap_err();
    // Fed one byte at a time the refusal is the same (a tokenizer error's
    // position is relative to where scanning resumed, so only its kind).
    let again = byte_at_a_time(Mode::Stream, input.as_bytes()).unwrap_err();
    match (err, again) {
        (Error::Syntax(_), Error::Syntax(_)) => {}
        _ => assert_eq!(again, err, "{body}"),
    }
    err
}

#[test]
fn restricted_xml_is_refused() {
    let cases = [
        ("<!-- hi -->", Restricted::Comment),
        ("<message><!-- hi --></message>", Restricted::Comment),
        ("<?php echo 1; ?>", Restricted::ProcessingInstruction),
        (
            "<message><?pi x?></message>",
            Restricted::ProcessingInstruction,
        ),
        (
            "<?xml version='1.0'?><message/>",
            Restricted::ProcessingInstruction,
        ),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]>", Restricted::Doctype),
        (
            "<message><body>&lol;</body></message>",
            Restricted::EntityReference,
        ),
        ("<message to='&xxe;'/>", Restricted::EntityReference),
    ];
    for (body, what) in cases {
        let err = stream_error(body);
        assert_eq!(err, Error::Restricted(what), "{body}");
        assert_eq!(err.condition().as_str(), "restricted-xml");
    }
}

#[test]
fn doctype_before_the_header_is_refused_without_expansion() {
    let input = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    assert_eq!(
        whole(Mode::Stream, input).unwrap_err(),
        Error::Restricted(Restricted::Doctype)
    );
}

#[test]
fn an_unterminated_comment_is_refused_as_soon_as_it_starts() {
    let mut framer = Framer::new(Mode::Fragments, Limits::default());
    assert_eq!(framer.next(b"<message><!-").unwrap(), None);
    assert_eq!(
        framer
            .next(b"<message><!-- and the rest never comes")
            .unwrap_err(),
        Error::Restricted(Restricted::Comment)
    );
}

#[test]
fn references_are_checked() {
    let ok = "<m a='&lt;&gt;&amp;&apos;&quot;&#65;&#x1F600;'>&#xA;&amp;</m>";
    assert_eq!(whole(Mode::Fragments, ok).unwrap().len(), 1);
    for bad in [
        "<m>a & b</m>",
        "<m>&#0;</m>",
        "<m a='&#xD800;'/>",
        "<m>&#x+41;</m>",
        "<m>&;</m>",
    ] {
        assert_eq!(
            whole(Mode::Fragments, bad).unwrap_err(),
            Error::InvalidReference,
            "{bad}"
        );
    }
}

#[test]
fn malformed_xml_is_refused_as_not_well_formed() {
    let cases = [
        ("<message><body></message>", Error::MismatchedEndTag),
        ("<a:b></c:b>", Error::MismatchedEndTag),
        ("<message a='1' a='2'/>", Error::DuplicateAttribute),
        ("</message>", Error::UnexpectedEndTag),
    ];
    for (body, expected) in cases {
        let err = stream_error(body);
        assert_eq!(err, expected, "{body}");
        assert_eq!(err.condition().as_str(), "not-well-formed");
    }
    for body in [
        "<message a=1/>",
        "<message a='1'b='2'/>",
        "<message a/>",
        "<message><1a/></message>",
        "< message/>",
        "<message/ >",
        "<a:b:c/>",
        "<:a/>",
        "<m a='<'/>",
        "<m>]]></m>",
        "<m>\u{1}</m>",
        "<m a='\u{0}'/>",
        "<m>\u{FFFE}</m>",
        "<m><!x></m>",
        "<m></m >x",
    ] {
        let err = stream_error(body);
        assert!(
            matches!(err, Error::Malformed(_) | Error::TextOutsideElement),
            "{body}: {err:?}"
        );
        assert_eq!(
            err.condition().as_str(),
            if matches!(err, Error::Malformed(_)) {
                "not-well-formed"
            } else {
                "bad-format"
            }
        );
    }
    assert_eq!(stream_error("hello<message/>"), Error::TextOutsideElement);
    assert_eq!(
        stream_error("</stream:stream><message/>"),
        Error::DataAfterClose
    );
}

#[test]
fn an_end_tag_at_top_level_is_refused_in_fragments_mode() {
    assert_eq!(
        whole(Mode::Fragments, "</stream:stream>").unwrap_err(),
        Error::UnexpectedEndTag
    );
}

#[test]
fn the_stream_header_must_be_stream_stream_in_the_streams_namespace() {
    assert_eq!(
        whole(Mode::Stream, "<message/>").unwrap_err(),
        Error::NotStreamHeader
    );
    let wrong_ns = "<stream:stream xmlns:stream='urn:wrong'>";
    let err = whole(Mode::Stream, wrong_ns).unwrap_err();
    assert_eq!(err, Error::InvalidStreamNamespace);
    assert_eq!(err.condition().as_str(), "invalid-namespace");
    assert_eq!(
        whole(
            Mode::Stream,
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>"
        )
        .unwrap_err(),
        Error::NotStreamHeader
    );
}

fn limited(limits: Limits, input: &str) -> Result<Vec<(String, FrameKind)>, Error> {
    run(
        &mut Framer::new(Mode::Fragments, limits),
        &[input.as_bytes()],
    )
}

#[test]
fn depth_limit_counts_the_top_element_as_one() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(limited(limits, "<a><b><c/></b></a>").is_ok());
    let err = limited(limits, "<a><b><c><d/></c></b></a>").unwrap_err();
    assert_eq!(err, Error::TooDeep);
    assert_eq!(err.condition().as_str(), "policy-violation");
}

#[test]
fn attribute_limit_applies_per_element() {
    let limits = Limits {
        max_attributes: 2,
        ..Limits::default()
    };
    assert!(limited(limits, "<a x='1' y='2'><b x='1' y='2'/></a>").is_ok());
    assert_eq!(
        limited(limits, "<a><b x='1' y='2' z='3'/></a>").unwrap_err(),
        Error::TooManyAttributes
    );
}

#[test]
fn an_oversized_element_is_refused_before_it_completes() {
    let limits = Limits {
        max_element_bytes: 100,
        ..Limits::default()
    };
    let mut framer = Framer::new(Mode::Fragments, limits);
    let mut buf = b"<message><body>".to_vec();
    let mut refused_at = None;
    for i in 0..50 {
        buf.extend_from_slice(b"xxxxxxxxxx");
        match framer.next(&buf) {
            Ok(None) => {}
            Ok(Some(f)) => panic!("unexpected frame {f:?}"),
            Err(e) => {
                assert_eq!(e, Error::TooLarge);
                refused_at = Some(i);
                break;
            }
        }
    }
    // 15 + 9 * 10 = 105 bytes: refused on the first read past 100.
    assert_eq!(refused_at, Some(8));
    // Complete but too large in one read.
    let big = format!("<message><body>{}</body></message>", "x".repeat(100));
    assert_eq!(limited(limits, &big).unwrap_err(), Error::TooLarge);
    let small = "<message><body>hi</body></message>";
    assert!(limited(limits, small).is_ok());
}

#[test]
fn a_big_element_in_small_reads_frames_whole() {
    let text = "lorem ipsum &amp; ".repeat(4000);
    let attr = "v".repeat(20_000);
    let msg = format!("<message a='{attr}'><body>{text}</body><x>{text}</x></message>");
    let chunks: Vec<&[u8]> = msg.as_bytes().chunks(100).collect();
    let frames = run(
        &mut Framer::new(
            Mode::Fragments,
            Limits {
                max_element_bytes: 1 << 20,
                ..Limits::default()
            },
        ),
        &chunks,
    )
    .unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, msg);
}

#[test]
fn splice_adds_the_client_namespace_when_missing() {
    let frames = whole(Mode::Stream, SERVER_STREAM).unwrap();
    let (message, info) = element(&frames, 2);
    let mut out = Vec::new();
    splice_namespaces(message.as_bytes(), info, NS_CLIENT, &mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("<message xmlns='jabber:client' from='juliet@"),
        "{out}"
    );
    assert_eq!(out.len(), message.len() + " xmlns='jabber:client'".len());
}

#[test]
fn splice_keeps_an_existing_default_namespace() {
    let frames = whole(Mode::Fragments, "<iq xmlns='jabber:server' type='get'/>").unwrap();
    let (iq, info) = element(&frames, 0);
    assert_eq!(info.namespace(iq.as_bytes()), Some("jabber:server"));
    let mut out = Vec::new();
    splice_namespaces(iq.as_bytes(), info, NS_CLIENT, &mut out);
    assert_eq!(out, iq.as_bytes());
}

#[test]
fn splice_declares_the_stream_prefix_for_stream_errors_and_features() {
    let error = "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
    let frames = whole(Mode::Fragments, error).unwrap();
    let (bytes, info) = element(&frames, 0);
    let mut out = Vec::new();
    splice_namespaces(bytes.as_bytes(), info, NS_CLIENT, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<stream:error xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    );
    let declared = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
    let frames = whole(Mode::Fragments, declared).unwrap();
    let (bytes, info) = element(&frames, 0);
    assert!(info.declares_stream_prefix);
    let mut out = Vec::new();
    splice_namespaces(bytes.as_bytes(), info, NS_CLIENT, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        declared.replacen(
            "<stream:features",
            "<stream:features xmlns='jabber:client'",
            1
        )
    );
}

#[test]
fn splice_notices_the_stream_prefix_on_a_nested_element() {
    let frames = whole(Mode::Fragments, "<message><stream:x/></message>").unwrap();
    let (_, info) = element(&frames, 0);
    assert!(info.uses_stream_prefix);
}

#[test]
fn fragments_mode_frames_websocket_open_as_an_element() {
    let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>";
    let input = format!("{open}<message to='a@b'><body>hi</body></message><close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    let frames = whole(Mode::Fragments, &input).unwrap();
    assert_eq!(frames.len(), 3);
    let (bytes, info) = element(&frames, 0);
    assert_eq!(bytes, open);
    assert_eq!(info.local_name(bytes.as_bytes()), "open");
    assert_eq!(info.namespace(bytes.as_bytes()), Some(NS_FRAMING));
    assert!(info.empty);
    assert_eq!(
        byte_at_a_time(Mode::Fragments, input.as_bytes()).unwrap(),
        frames
    );
}

#[test]
fn fragments_mode_reports_an_xml_declaration_on_its_own() {
    let input = "<?xml version='1.0' encoding='UTF-8'?><body rid='1' xmlns='http://jabber.org/protocol/httpbind'/>";
    let frames = whole(Mode::Fragments, input).unwrap();
    assert_eq!(
        frames[0],
        (
            "<?xml version='1.0' encoding='UTF-8'?>".to_owned(),
            FrameKind::Declaration
        )
    );
    assert!(element(&frames, 1).1.empty);
    assert_eq!(
        byte_at_a_time(Mode::Fragments, input.as_bytes()).unwrap(),
        frames
    );
}

#[test]
fn reset_expects_a_new_stream_header() {
    let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>";
    let mut framer = stream_framer();
    let first = run(
        &mut framer,
        &[
            header.as_bytes(),
            b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        ],
    )
    .unwrap();
    assert_eq!(first.len(), 2);
    framer.reset();
    let again = run(
        &mut framer,
        &[header.replace("id='1'", "id='2'").as_bytes()],
    )
    .unwrap();
    match &again[0].1 {
        FrameKind::StreamOpen(h) => assert_eq!(h.id.as_deref(), Some("2")),
        other => panic!("expected a header, got {other:?}"),
    }
}

#[test]
fn children_lists_features_and_stream_error_conditions() {
    let frames = whole(Mode::Stream, SERVER_STREAM).unwrap();
    let features = children(frames[1].0.as_bytes()).unwrap();
    assert_eq!(features.len(), 2);
    assert_eq!(features[0].local, "starttls");
    assert_eq!(features[0].ns.as_deref(), Some(NS_TLS));
    assert_eq!(features[0].children, ["required"]);
    assert_eq!(features[1].children, ["mechanism", "mechanism"]);
    let text = &frames[1].0;
    assert!(text[features[0].span.clone()].starts_with("<starttls"));
    assert!(text[features[0].span.clone()].ends_with("</starttls>"));
    assert!(text[features[1].span.clone()].starts_with("<mechanisms"));
    assert!(text[features[1].span.clone()].ends_with("</mechanisms>"));
    let empty = children(b"<f><a/> <b x='1'/></f>").unwrap();
    assert_eq!(
        (empty[0].span.clone(), empty[1].span.clone()),
        (3..7, 8..18)
    );
    let error = "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no &amp; way</text></stream:error>";
    let kids = children(error.as_bytes()).unwrap();
    assert_eq!(kids[0].local, "host-unknown");
    assert_eq!(kids[0].ns.as_deref(), Some(NS_STREAM_ERRORS));
    assert_eq!(kids[1].text, "no & way");
    assert_eq!(
        children(b"<x><!-- c --></x>").unwrap_err(),
        Error::Restricted(Restricted::Comment)
    );
}

#[test]
fn unescape_decodes_predefined_and_character_references() {
    assert_eq!(
        unescape("a &lt;b&gt; &#233;&#x263A; &amp;amp;").unwrap(),
        "a <b> é☺ &amp;"
    );
    assert_eq!(
        unescape("&nbsp;").unwrap_err(),
        Error::Restricted(Restricted::EntityReference)
    );
}

#[test]
fn escaped_attribute_values_read_back_in_either_quote_style() {
    let value = "a&b<c>d'e\"f\tg\nh\ri é";
    let mut escaped = String::new();
    escape_attribute(&mut escaped, value);
    assert_eq!(
        escaped,
        "a&amp;b&lt;c&gt;d&apos;e&quot;f&#x9;g&#xA;h&#xD;i é"
    );
    assert_eq!(unescape(&escaped).unwrap(), value);
}

#[test]
fn errors_display_in_lower_case() {
    for e in [
        Error::InvalidUtf8,
        Error::TooLarge,
        Error::Restricted(Restricted::Doctype),
        Error::NotStreamHeader,
    ] {
        let s = e.to_string();
        assert_eq!(s, s.to_lowercase());
    }
}

/// Names as XML Namespaces §4 `QName` has them (xmlparser allows a
/// leading ':'; the framer does not).
fn is_qname(name: &str) -> bool {
    let mut parts = name.split(':');
    parts.all(|part| !part.is_empty()) && name.matches(':').count() <= 1
}

/// What the framer should decide for input meant to be exactly one
/// standalone element, judged by xmlparser plus RFC 6120 §11.1.
fn reference_accepts(input: &[u8]) -> bool {
    use xmlparser::{ElementEnd, Token, Tokenizer};
    let Ok(text) = std::str::from_utf8(input) else {
        return false;
    };
    let mut stack: Vec<&str> = Vec::new();
    let mut attrs: Vec<&str> = Vec::new();
    let mut roots = 0;
    for token in Tokenizer::from_fragment(text, 0..text.len()) {
        let Ok(token) = token else {
            return false;
        };
        match token {
            Token::ElementStart { span, .. } => {
                if stack.is_empty() {
                    roots += 1;
                }
                if !is_qname(&span.as_str()[1..]) {
                    return false;
                }
                stack.push(&span.as_str()[1..]);
                attrs.clear();
            }
            Token::Attribute {
                span, local, value, ..
            } => {
                let name = &text[span.start()..local.end()];
                if !is_qname(name) || attrs.contains(&name) || unescape(value.as_str()).is_err() {
                    return false;
                }
                attrs.push(name);
            }
            Token::ElementEnd { end, span } => match end {
                ElementEnd::Open => {}
                ElementEnd::Empty => {
                    stack.pop();
                }
                ElementEnd::Close(_, local) => {
                    let name = &text[span.start() + 2..local.end()];
                    if stack.pop() != Some(name) {
                        return false;
                    }
                }
            },
            Token::Text { text: t } => {
                if stack.is_empty() || unescape(t.as_str()).is_err() {
                    return false;
                }
            }
            Token::Cdata { .. } if !stack.is_empty() => {}
            _ => return false,
        }
    }
    roots == 1 && stack.is_empty()
}

/// The framer's verdict on `input` as one standalone element: accepted
/// only as exactly one element frame covering all of it.
fn framer_accepts(chunks: &[&[u8]]) -> Result<bool, Error> {
    let frames = run(&mut Framer::new(Mode::Fragments, Limits::default()), chunks)?;
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    Ok(matches!(frames.as_slice(), [(bytes, FrameKind::Element(_))] if bytes.len() == total))
}

#[test]
fn framer_agrees_with_xmlparser_on_mutated_stanzas() {
    let seeds: [&[u8]; 5] = [
        b"<message from='a@b/c' to=\"d@e\" type='chat'><body>hi &amp; bye &#233;</body></message>",
        b"<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='x@y' name='&lt;3'/></query></iq>",
        "<presence><status>caf\u{e9} \u{1F600}</status><x:y xmlns:x='u'/></presence>".as_bytes(),
        b"<m><![CDATA[a<b&c]]]]><![CDATA[>]]></m >",
        b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    ];
    let alphabet: &[&[u8]] = &[
        b"<",
        b">",
        b"/",
        b"'",
        b"\"",
        b"=",
        b"&",
        b";",
        b":",
        b"!",
        b"?",
        b"[",
        b"]",
        b"-",
        b"x",
        b" ",
        b"\t",
        b"#",
        b"\x01",
        b"\xC3",
        "\u{e9}".as_bytes(),
        b"\xEF\xBF\xBE",
        b"1",
        b".",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..20_000 {
        let mut input = seeds[round % seeds.len()].to_vec();
        for _ in 0..1 + random(3) {
            let at = random(input.len() + 1);
            let piece = alphabet[random(alphabet.len())];
            match random(3) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 if at < input.len() => {
                    input.splice(at..at + 1, piece.iter().copied());
                }
                _ => {
                    input.splice(at..at, piece.iter().copied());
                }
            }
        }
        let expected = reference_accepts(&input);
        let whole = framer_accepts(&[&input]);
        assert_eq!(
            whole.unwrap_or(false),
            expected,
            "{:?} framer {whole:?}",
            String::from_utf8_lossy(&input)
        );
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let split = framer_accepts(&bytes);
        // Which of two faults is found first may depend on the reads.
        assert_eq!(
            split.unwrap_or(false),
            expected,
            "byte at a time differs on {:?}",
            String::from_utf8_lossy(&input)
        );
        if expected {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // The mutations exercise both outcomes.
    assert!(accepted > 1000 && refused > 1000, "{accepted} {refused}");
}

#[test]
fn an_end_tag_must_repeat_the_whole_name_of_its_start_tag() {
    for body in [
        "<a></ab>",
        "<ab></a>",
        "<a></a\u{e9}>",
        "<a\u{e9}></a>",
        "<a:b></a>",
        "<a></a:a>",
    ] {
        assert_eq!(stream_error(body), Error::MismatchedEndTag, "{body}");
    }
    for body in [
        "<a></a >",
        "<a:b></a:b>",
        "<a\u{e9}></a\u{e9}>",
        "<m><b></b></m>",
    ] {
        let frames = whole(Mode::Fragments, body).unwrap();
        assert_eq!(frames.len(), 1, "{body}");
        assert_eq!(element(&frames, 0).0, body);
    }
}

#[test]
fn each_part_of_a_qualified_name_must_start_with_a_name_start_char() {
    for body in [
        "<a:1/>",
        "<a:-b/>",
        "<a:/>",
        "<m a:='1'/>",
        "<m 1a='1'/>",
        "<a::b/>",
    ] {
        assert!(matches!(stream_error(body), Error::Malformed(_)), "{body}");
    }
    assert_eq!(
        stream_error("<m a:b:c='1'/>"),
        Error::Malformed("more than one ':' in a name")
    );
    let frames = whole(Mode::Fragments, "<a1:b-2.c x_y:z9='1'/>").unwrap();
    assert_eq!(frames.len(), 1);
}

#[test]
fn framing_text_known_to_be_utf8_gives_the_frames_of_its_bytes() {
    let input = "<message><body>ünïcødé 😀</body></message> <presence/>";
    let expected = whole(Mode::Fragments, input).unwrap();
    let mut framer = Framer::new(Mode::Fragments, Limits::default());
    let mut rest = input;
    let mut got = Vec::new();
    while let Some(frame) = framer.next_in_text(rest).unwrap() {
        let (unit, after) = rest.split_at(frame.len);
        got.push((unit.to_string(), frame.kind));
        rest = after;
    }
    assert_eq!(got, expected);
}

#[test]
fn the_size_limit_and_a_fault_give_one_refusal_however_the_bytes_arrive() {
    let limits = Limits {
        max_element_bytes: 32,
        ..Limits::default()
    };
    let input = format!("<m a='{}' b=''\u{1e}/>", "x".repeat(40));
    let whole = run(
        &mut Framer::new(Mode::Fragments, limits),
        &[input.as_bytes()],
    );
    assert_eq!(whole.unwrap_err(), Error::TooLarge);
    let chunks: Vec<&[u8]> = input.as_bytes().chunks(7).collect();
    let chunked = run(&mut Framer::new(Mode::Fragments, limits), &chunks);
    assert_eq!(chunked.unwrap_err(), Error::TooLarge);
    // Within the limit, the same fault is what it is.
    let small = "<m b=''\u{1e}/>";
    assert!(matches!(
        run(
            &mut Framer::new(Mode::Fragments, limits),
            &[small.as_bytes()]
        ),
        Err(Error::Malformed(_))
    ));
    // A fault before the limit wins however the bytes come, even when the
    // read that completes it brings neither '<' nor '>' and goes past the
    // limit.
    let early = format!("<{}\u{0}{}x='1'/>", "m".repeat(20), "\u{0}".repeat(40));
    let bytes = early.as_bytes();
    for chunks in [
        vec![bytes],
        vec![&bytes[..10], &bytes[10..60], &bytes[60..]],
    ] {
        assert_eq!(
            run(&mut Framer::new(Mode::Fragments, limits), &chunks).unwrap_err(),
            Error::Malformed("expected whitespace before an attribute"),
        );
    }
}

#[test]
fn an_unknown_reference_gets_one_refusal_before_or_after_its_semicolon() {
    for (body, expected) in [
        (
            "<a b='x&x\u{1}y;'/>",
            Error::Restricted(Restricted::EntityReference),
        ),
        (
            "<a>&x\u{1}\u{e9}y;</a>",
            Error::Restricted(Restricted::EntityReference),
        ),
        (
            "<a>&\u{20ac}x\u{1};</a>",
            Error::Restricted(Restricted::EntityReference),
        ),
        ("<a>&-x\u{1};</a>", Error::InvalidReference),
    ] {
        let whole = whole(Mode::Fragments, body).unwrap_err();
        let split = byte_at_a_time(Mode::Fragments, body.as_bytes()).unwrap_err();
        assert_eq!(whole, expected, "{body}");
        assert_eq!(split, expected, "{body} byte at a time");
    }
}
