//! Request parsing throughput of the HTTP layer, in requests per second:
//! a browser's BOSH POST (about 300 bytes of body) and a browser's WebSocket
//! upgrade GET, each read by one reused `RequestReader` as the reactor does.
//! The baseline is bare `httparse::Request::parse` of the same bytes (no
//! field extraction, no framing checks): the cost of our layer is the gap.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_core::http::{Limits, RequestReader};

const BOSH_HEAD: &str = "POST /http-bind HTTP/1.1\r\n\
Host: chat.example.org\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Content-Type: text/xml; charset=UTF-8\r\n\
Origin: https://chat.example.org\r\n\
Connection: keep-alive\r\n\
Referer: https://chat.example.org/converse/\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
Priority: u=4\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n";

const BOSH_BODY: &str =
    "<body rid='2437713581' sid='7f3a9c2e4b1d4e8f' xmlns='http://jabber.org/protocol/httpbind'>\
<message xmlns='jabber:client' from='alice@chat.example.org/web' to='bob@chat.example.org' \
type='chat' id='a1b2c3d4'><body>Hello Bob, are you there?</body>\
<active xmlns='http://jabber.org/protocol/chatstates'/></message></body>";

const WS_UPGRADE: &[u8] = b"GET /xmpp-websocket HTTP/1.1\r\n\
Host: chat.example.org\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Sec-WebSocket-Version: 13\r\n\
Origin: https://chat.example.org\r\n\
Sec-WebSocket-Protocol: xmpp\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Connection: keep-alive, Upgrade\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: websocket\r\n\
Sec-Fetch-Site: same-origin\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
Upgrade: websocket\r\n\
\r\n";

fn parse(c: &mut Criterion) {
    let bosh_post = format!(
        "{BOSH_HEAD}Content-Length: {}\r\n\r\n{BOSH_BODY}",
        BOSH_BODY.len()
    );
    let mut group = c.benchmark_group("http_request");
    group.throughput(Throughput::Elements(1));
    for (name, input) in [
        ("bosh_post", bosh_post.as_bytes()),
        ("websocket_upgrade", WS_UPGRADE),
    ] {
        let mut reader = RequestReader::new(Limits::default());
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = reader.read(black_box(input));
                assert!(matches!(request, Ok(Some(_))));
                black_box(request)
            })
        });
    }
    for (name, input) in [
        ("httparse_baseline_bosh_post", bosh_post.as_bytes()),
        ("httparse_baseline_websocket_upgrade", WS_UPGRADE),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut request = httparse::Request::new(&mut headers);
                let status = request.parse(black_box(input));
                assert!(matches!(status, Ok(httparse::Status::Complete(_))));
                black_box(request.headers.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
