//! Stream framer throughput against the baseline of plain xmlparser
//! tokenizing the same bytes. The framer's target is 0.8x of that baseline:
//! cutting a stream into stanzas should cost little more than reading it.
//!
//! Input: a ~1 MB client stream of realistic message, presence and iq
//! stanzas with whitespace keepalives. The framer is fed 4 KiB reads the way
//! the reactor feeds it from a socket: append, take every complete frame,
//! drop the consumed bytes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use switchboard_core::xml::{Framer, Limits, Mode};

const READ_SIZE: usize = 4096;
const TARGET_BYTES: usize = 1 << 20;

fn stream() -> String {
    let mut s = String::from(concat!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' ",
        "xmlns:stream='http://etherx.jabber.org/streams' id='c2s-8f3a2b' ",
        "from='example.com' version='1.0' xml:lang='en'>",
    ));
    let mut i = 0u32;
    while s.len() < TARGET_BYTES {
        let user = i % 97;
        match i % 7 {
            0..=2 => s.push_str(&format!(
                "<message from='user{user}@example.com/phone' to='friend{i}@example.net' type='chat' \
                 id='msg-{i}' xml:lang='en'><body>Hi there, are we still on for lunch at 12:30? \
                 Bring the &quot;usual&quot; &amp; don&apos;t be late &lt;3 (#{i})</body>\
                 <active xmlns='http://jabber.org/protocol/chatstates'/>\
                 <request xmlns='urn:xmpp:receipts'/>\
                 <origin-id xmlns='urn:xmpp:sid:0' id='5a2c-{i}'/></message>"
            )),
            3 => s.push_str(&format!(
                "<presence from='user{user}@example.com/laptop' to='user{user}@example.com'>\
                 <show>away</show><status>In a meeting until 3pm</status><priority>5</priority>\
                 <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversejs.org' \
                 ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>"
            )),
            4 => s.push_str(&format!(
                "<iq type='result' id='roster-{i}' to='user{user}@example.com/phone'>\
                 <query xmlns='jabber:iq:roster' ver='ver{i}'>\
                 <item jid='alice@example.com' name='Alice' subscription='both'><group>Friends</group></item>\
                 <item jid='bob@example.org' name='Bob &amp; Co' subscription='to'><group>Work</group></item>\
                 <item jid='carol@example.net' subscription='from'/></query></iq>"
            )),
            5 => s.push_str(&format!(
                "<message from='room@conference.example.com/nick{user}' to='user{user}@example.com/phone' \
                 type='groupchat' id='gc-{i}'><body>Zürich café ☕ — naïve résumé 😀 {i}</body>\
                 <stanza-id xmlns='urn:xmpp:sid:0' id='d3a1-{i}' by='room@conference.example.com'/></message>"
            )),
            _ => s.push(' '),
        }
        i += 1;
    }
    s.push_str("</stream:stream>");
    s
}

fn frame_all(input: &[u8]) -> usize {
    let mut framer = Framer::new(Mode::Stream, Limits::default());
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut start = 0;
    let mut frames = 0;
    for read in input.chunks(READ_SIZE) {
        // Like a reactor buffer: compact the unconsumed tail, then append.
        buf.drain(..start);
        start = 0;
        buf.extend_from_slice(read);
        while let Some(frame) = framer.next(&buf[start..]).expect("valid stream") {
            start += frame.len;
            frames += 1;
        }
    }
    frames
}

fn bench(c: &mut Criterion) {
    let input = stream();
    let mut group = c.benchmark_group("framer");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("xmlparser_tokenize", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for token in xmlparser::Tokenizer::from(black_box(input.as_str())) {
                black_box(token.expect("valid xml"));
                n += 1;
            }
            n
        })
    });
    group.bench_function("framer_4k_reads", |b| {
        b.iter(|| frame_all(black_box(input.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
