//! Back-pressure end to end: a WebSocket client that stops reading makes
//! switchboard stop reading its server stream, and a server that stops
//! reading makes switchboard stop reading the client, so a session's memory
//! stays bounded by `backend.max_buffer_bytes` plus kernel socket buffers.
//! Nothing is lost: once the slow side reads again, everything arrives.

mod support;

use std::time::{Duration, Instant};

use support::ws_client::{client_frame, OP_TEXT};
use support::{config_for, StubEvent, StubOptions, StubServer, Switchboard, WsClient, WAIT};

/// switchboard's per-direction buffer cap in these tests.
const CAP: usize = 64 * 1024;
/// How much a flood tries to push; without back-pressure all of it goes
/// (in about 2 s per 64 MiB, debug build).
const FLOOD_MAX: usize = 128 << 20;
/// A flood that stalls before this was held back. Measured: about 8 MiB
/// (socket buffers on two hops plus `CAP`). Above the kernel's bound too:
/// send buffers up to `net.core.wmem_max` (4 MiB) on each hop, and the
/// receive buffer switchboard reads from autotuned up to `tcp_rmem` (32 MiB).
const STALLED_BELOW: usize = 48 << 20;
/// A write making no progress this long means the peer stopped reading.
/// Generous: a busy reactor on a loaded machine never pauses this long.
const STALL: Duration = Duration::from_secs(2);
/// Bound on the draining phase, per write and per message.
const DRAIN: Duration = Duration::from_secs(20);
/// Whole stanzas the drain phase sends after the stall, beyond the one cut.
const EXTRA_STANZAS: usize = 256;

/// switchboard routed to plaintext `stub`, with the buffer cap at [`CAP`]
/// and no WebSocket pings (a client that does not read would miss pongs).
fn switchboard_for(stub: &StubServer) -> Switchboard {
    let mut config = config_for(stub);
    config.backend.max_buffer_bytes = CAP;
    config.websocket.ping_interval = None;
    Switchboard::start(config)
}

/// A client logged in as `user`; returns it and its full JID.
fn logged_in(sb: &Switchboard, user: &str) -> (WsClient, String) {
    let mut ws = sb.ws();
    ws.open("localhost").unwrap();
    let jid = ws.login_plain(user, "pw", "localhost").unwrap();
    (ws, jid)
}

/// A ~1 KiB message stanza to `to`, its body `filler` repeated.
fn stanza(to: &str, filler: &str) -> String {
    format!(
        "<message to='{to}' type='chat'><body>{}</body></message>",
        filler.repeat(1000 / filler.len())
    )
}

/// The first whole-chunk position past `reached`, plus [`EXTRA_STANZAS`]:
/// where the drain phase ends so the stream stops on a stanza boundary.
fn drain_end(reached: usize, chunk_len: usize) -> usize {
    (reached / chunk_len + 1 + EXTRA_STANZAS) * chunk_len
}

/// A client that stops reading makes switchboard stop reading the server:
/// the server's writes stall after a few MiB of a 128 MiB flood. When the
/// client reads again the rest flows and every stanza arrives, the last
/// (marked) one included.
#[test]
fn client_not_reading_stalls_the_server_and_loses_nothing() {
    let stub = StubServer::start(StubOptions::plaintext("localhost"));
    let sb = switchboard_for(&stub);
    let (mut ws, jid) = logged_in(&sb, "alice");
    let conn = stub.connection_of(&jid).unwrap();
    let chunk = stanza(&jid, "s2c ");
    let marker = "last-stanza-5f1c";

    let started = Instant::now();
    let reached = stub
        .flood(conn, chunk.as_bytes(), 0, FLOOD_MAX, STALL)
        .unwrap();
    eprintln!(
        "server wrote {reached} bytes before stalling ({:?})",
        started.elapsed()
    );
    assert!(
        reached < STALLED_BELOW,
        "the server wrote {reached} of {FLOOD_MAX} bytes to a client that reads nothing"
    );

    let end = drain_end(reached, chunk.len());
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let at = stub.flood(conn, chunk.as_bytes(), reached, end, DRAIN)?;
            stub.send_raw(
                conn,
                format!("<message to='{jid}'><body>{marker}</body></message>").as_bytes(),
            )?;
            Ok::<usize, String>(at)
        });
        let mut received = 0;
        loop {
            let text = ws
                .recv_text(DRAIN)
                .unwrap_or_else(|e| panic!("after {received} stanzas: {e}"));
            if text.contains(marker) {
                break;
            }
            assert!(text.contains("s2c s2c "), "{text}");
            received += 1;
            assert!(received <= end / chunk.len(), "more stanzas than sent");
        }
        assert_eq!(writer.join().unwrap(), Ok(end), "the drain stalled");
        assert_eq!(received, end / chunk.len(), "stanzas lost");
    });
}

/// A server that stops reading makes switchboard stop reading the client:
/// the client's writes stall after a few MiB of a 128 MiB flood. When the
/// server reads again the rest flows and every stanza arrives, the last
/// (marked) one included.
#[test]
fn server_not_reading_stalls_the_client_and_loses_nothing() {
    let stub = StubServer::start(StubOptions::plaintext("localhost"));
    let sb = switchboard_for(&stub);
    let (mut ws, jid) = logged_in(&sb, "bob");
    let conn = stub.connection_of(&jid).unwrap();
    // To nobody bound: the stub reads and logs it, routes it nowhere.
    let payload = stanza("nobody@localhost", "c2s ");
    let frame = client_frame(true, OP_TEXT, payload.as_bytes());
    let marker = "last-stanza-9a2e";

    stub.pause_reading(conn);
    let started = Instant::now();
    let reached = ws.flood_raw(&frame, 0, FLOOD_MAX, STALL).unwrap();
    eprintln!(
        "client wrote {reached} bytes before stalling ({:?})",
        started.elapsed()
    );
    assert!(
        reached < STALLED_BELOW,
        "the client wrote {reached} of {FLOOD_MAX} bytes to a server that reads nothing"
    );

    stub.resume_reading(conn);
    let end = drain_end(reached, frame.len());
    assert_eq!(
        ws.flood_raw(&frame, reached, end, DRAIN),
        Ok(end),
        "the drain stalled"
    );
    ws.send_text(&format!(
        "<message to='nobody@localhost'><body>{marker}</body></message>"
    ))
    .unwrap();

    // Polled: waiting on each event would rescan thousands of stanzas.
    let deadline = Instant::now() + DRAIN;
    let log = loop {
        let log = stub.events(conn);
        if log
            .iter()
            .rev()
            .any(|e| matches!(e, StubEvent::StanzaReceived(raw) if raw.contains(marker)))
        {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "the marked stanza never reached the server"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let received = log
        .iter()
        .filter(|e| matches!(e, StubEvent::StanzaReceived(raw) if raw.contains("c2s c2s ")))
        .count();
    assert_eq!(received, end / frame.len(), "stanzas lost");
    assert!(
        !log.iter().any(|e| matches!(
            e,
            StubEvent::NotWellFormed(_) | StubEvent::TcpClosed | StubEvent::ClientClosedStream
        )),
        "{:?}",
        log.last()
    );
    // The session still works both ways.
    ws.send_text(&format!("<message to='{jid}'><body>echo</body></message>"))
        .unwrap();
    assert!(ws.recv_text(WAIT).unwrap().contains("echo"));
}
