//! The load tool end to end, in process: the stub XMPP server behind
//! switchboard's reactor, and short `run`s over WebSocket, BOSH and both
//! mixed; plus the stub straight over TCP. Each run is a few seconds and
//! every thread stops by itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use load::cli::{Cli, Mode};
use load::modes::RunResult;
use load::stub::Stub;
use switchboard::config::Config;
use switchboard::reactor::{Handle, Server};

/// A test thread that runs until its flag is set: set and joined on drop.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The stub on a free loopback port, stopped on drop.
struct StubThread {
    addr: SocketAddr,
    _thread: Background,
}

impl StubThread {
    fn start() -> StubThread {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut stub = Stub::bind(&["127.0.0.1:0".parse().unwrap()], "localhost").unwrap();
            tx.send(stub.local_addrs()[0]).unwrap();
            stub.run(Instant::now() + Duration::from_secs(60), &flag)
                .unwrap();
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("stub listening");
        StubThread {
            addr,
            _thread: Background {
                stop,
                thread: Some(thread),
            },
        }
    }
}

/// switchboard's reactor on a free loopback port, routing `localhost` to
/// the stub (a loopback route, so the plaintext stub is accepted).
struct SwitchboardThread {
    addr: SocketAddr,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SwitchboardThread {
    fn start(stub: SocketAddr) -> SwitchboardThread {
        let mut config = Config::for_tests();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.backend.routes.clear();
        config
            .backend
            .routes
            .insert("localhost".into(), stub.to_string().into());
        let mut server = Server::bind(&config).expect("bind");
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = std::thread::spawn(move || server.run().expect("reactor"));
        SwitchboardThread {
            addr,
            handle,
            thread: Some(thread),
        }
    }
}

impl SwitchboardThread {
    fn ws_url(&self) -> String {
        format!("ws://{}/xmpp-websocket", self.addr)
    }

    fn bosh_url(&self) -> String {
        format!("http://{}/http-bind", self.addr)
    }

    /// The arguments that aim the load tool's `transport` clients here.
    fn target(&self, transport: &str) -> Vec<String> {
        let (ws, bosh) = (self.ws_url(), self.bosh_url());
        ["--transport", transport, "--url", &ws, "--bosh-url", &bosh]
            .map(String::from)
            .to_vec()
    }

    /// A run of 10 sessions over `transport` through this switchboard.
    fn run(&self, transport: &str, args: &[&str]) -> RunResult {
        let target = self.target(transport);
        let mut all: Vec<&str> = target.iter().map(String::as_str).collect();
        all.extend_from_slice(&["--sessions", "10", "--ramp", "500"]);
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for SwitchboardThread {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP relay in front of switchboard that, on the second connection it
/// accepts, takes the first request and closes without answering: a
/// keep-alive connection closed by the server just as a request left.
struct DroppingProxy {
    addr: SocketAddr,
    dropped: Arc<AtomicBool>,
    _thread: Background,
}

impl DroppingProxy {
    fn start(upstream: SocketAddr) -> DroppingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, dropped) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (flag, done) = (stop.clone(), dropped.clone());
        let thread = std::thread::spawn(move || {
            let mut accepted = 0;
            while !flag.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                accepted += 1;
                client.set_nonblocking(false).unwrap();
                if accepted == 2 {
                    let done = done.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        if matches!(std::io::Read::read(&mut &client, &mut buf), Ok(n) if n > 0) {
                            done.store(true, Ordering::Relaxed);
                        }
                    });
                    continue;
                }
                let server = std::net::TcpStream::connect(upstream).unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        DroppingProxy {
            addr,
            dropped,
            _thread: Background {
                stop,
                thread: Some(thread),
            },
        }
    }
}

fn run(args: &[&str]) -> RunResult {
    let mut argv = vec!["load", "run"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("arguments");
    let Mode::Run(run) = cli.mode else {
        panic!("not run")
    };
    load::modes::run(&run, false).expect("run")
}

/// A one-second BOSH run against `url`.
fn run_bosh(url: &str, args: &[&str]) -> RunResult {
    let mut all = vec!["--transport", "bosh", "--bosh-url", url, "--duration", "1s"];
    all.extend_from_slice(args);
    run(&all)
}

/// Every session up, echoes flowing, nothing lost, no error.
fn assert_clean(result: &RunResult, sessions: usize) {
    let r = &result.report;
    assert_eq!(r.sessions_established, sessions, "{}", r.summary());
    assert!(r.errors.is_empty(), "{}", r.summary());
    assert!(r.received.unwrap_or(0) > 0, "{}", r.summary());
    assert_eq!(r.lost, Some(0), "{}", r.summary());
    assert_eq!(r.sent, r.received, "{}", r.summary());
    assert!(r.throughput_per_s.unwrap_or(0.0) > 0.0);
    let latency = r.latency_ms.expect("latency");
    assert!(latency.p50 > 0.0 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    let timeline = r.timeline.as_deref().unwrap_or_default();
    assert!(!timeline.is_empty());
    let on_time: u64 = timeline.iter().map(|t| t.round_trips).sum();
    let expected = r.throughput_per_s.unwrap() * r.duration_s.unwrap();
    assert!(
        (on_time as f64 - expected).abs() < 1.0,
        "timeline sums to the throughput"
    );
    for tick in timeline {
        // A second's p99 lies within the run's latency range.
        assert_eq!(tick.round_trips > 0, tick.p99_ms > 0.0, "{tick:?}");
        assert!(
            tick.p99_ms <= latency.max * 1.01,
            "{tick:?} beyond max {}",
            latency.max
        );
    }
}

#[test]
fn websocket_bosh_and_mixed_sessions_echo_through_switchboard() {
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    for transport in ["ws", "bosh", "mix"] {
        let args = ["--duration", "2s", "--drain", "2s", "--logout"];
        let result = sb.run(transport, &args);
        assert_clean(&result, 10);
        assert_eq!(result.report.transport, transport);
        assert_eq!(
            result.report.sessions_closed,
            Some(10),
            "every session logged out"
        );
    }
}

#[test]
fn keep_alive_connections_closed_during_a_long_ramp_are_reopened_before_the_message_phase() {
    // One BOSH session a second: the first ones wait longer than the test
    // server's 2 s HTTP read timeout with their second connection idle, and
    // switchboard closes it. The warm-up round trip reopens it, so no
    // measured round trip pays a connect.
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    let bosh = sb.bosh_url();
    let result = run_bosh(&bosh, &["--sessions", "6", "--ramp", "1", "--rate", "5"]);
    assert_clean(&result, 6);
    assert_eq!(
        result.report.reconnects,
        Some(0),
        "{}",
        result.report.summary()
    );
    // The warm-up message of each of the 3 pairs is sent and echoed too.
    assert!(result.report.sent.unwrap() > 3);
}

#[test]
fn a_request_on_a_connection_the_server_closed_is_sent_again() {
    // As browsers do: the request goes out once more on a new connection,
    // with the same rid, instead of ending the session.
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    let proxy = DroppingProxy::start(sb.addr);
    let bosh = format!("http://{}/http-bind", proxy.addr);
    let result = run_bosh(&bosh, &["--sessions", "2"]);
    assert!(
        proxy.dropped.load(Ordering::Relaxed),
        "the proxy never dropped a request"
    );
    assert_clean(&result, 2);
}

#[test]
fn fixed_rate_sends_about_the_rate_asked() {
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    let ws = sb.ws_url();
    // 5 pairs × 20/s × 2 s = 200 messages.
    let result = run(&[
        "--url",
        &ws,
        "--sessions",
        "10",
        "--ramp",
        "500",
        "--duration",
        "2s",
        "--rate",
        "20",
    ]);
    assert_clean(&result, 10);
    let sent = result.report.sent.unwrap();
    assert!((180..=210).contains(&sent), "sent {sent}");
}

#[test]
fn the_stub_alone_over_tcp_with_and_without_sasl() {
    let stub = StubThread::start();
    let tcp = stub.addr.to_string();
    for auth in ["plain", "none"] {
        let result = run(&[
            "--transport",
            "tcp",
            "--tcp",
            &tcp,
            "--auth",
            auth,
            "--sessions",
            "10",
            "--ramp",
            "500",
            "--duration",
            "1s",
            "--window",
            "4",
            "--logout",
        ]);
        assert_clean(&result, 10);
        assert_eq!(
            result.report.sessions_closed,
            Some(10),
            "</stream:stream> answered"
        );
    }
}

#[test]
fn a_refused_connection_is_counted_and_nothing_is_established() {
    // A port nobody listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = run(&[
        "--transport",
        "tcp",
        "--tcp",
        &format!("127.0.0.1:{port}"),
        "--sessions",
        "4",
        "--ramp",
        "1000",
        "--duration",
        "1s",
    ]);
    let r = &result.report;
    assert_eq!(r.sessions_established, 0);
    assert_eq!(r.errors.get("connect_refused"), Some(&4), "{}", r.summary());
}

#[test]
fn memory_mode_keeps_idle_websocket_and_bosh_sessions_and_reads_rss() {
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    let pid = std::process::id().to_string();
    for transport in ["ws", "bosh"] {
        let target = sb.target(transport);
        let argv = ["load", "memory"]
            .into_iter()
            .chain(target.iter().map(String::as_str));
        let cli = Cli::try_parse_from(argv.chain([
            "--sessions",
            "20",
            "--ramp",
            "1000",
            "--settle",
            "500ms",
            "--pid",
            &pid,
            // A short BOSH wait: held requests come back and are sent again
            // within the settle time.
            "--bosh-wait",
            "1",
        ]))
        .expect("arguments");
        let Mode::Memory(args) = cli.mode else {
            panic!("not memory")
        };
        let report = load::modes::memory(&args, false).expect("memory");
        assert_eq!(report.sessions_established, 20, "{}", report.summary());
        assert!(report.errors.is_empty(), "{}", report.summary());
        let memory = report.memory.expect("memory figures");
        assert!(memory.rss_before_kib > 0 && memory.rss_after_kib > 0);
        assert_eq!(memory.pids, [std::process::id()]);
        assert!(report.sent.is_none() && report.latency_ms.is_none());
    }
}

#[test]
fn bosh_connections_cut_at_random_points_lose_and_duplicate_nothing() {
    // Every kind of cut, each request sent again with its rid on a new
    // connection: switchboard's kept responses and held-again requests
    // (XEP-0124 §14.3) and the client's rid order make every stanza
    // arrive once.
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    let bosh = sb.bosh_url();
    let args = [
        "--sessions",
        "10",
        "--ramp",
        "500",
        "--bosh-acks",
        "--cut-connections",
        "0.2",
        "--seed",
        "7",
    ];
    let result = run_bosh(&bosh, &args);
    assert_clean(&result, 10);
    let r = &result.report;
    assert_eq!(r.duplicated, Some(0), "{}", r.summary());
    let faults = r.faults.expect("fault counts");
    assert_eq!((faults.cut_share, faults.seed), (0.2, 7));
    let f = faults.counts;
    for (kind, n) in [
        ("before the request", f.cut_before_request),
        ("mid-request", f.cut_mid_request),
        ("held", f.cut_held),
        ("mid-response", f.cut_mid_response),
    ] {
        assert!(n > 0, "no cut {kind}: {}", r.summary());
    }
    assert!(f.resent >= faults.cuts, "{}", r.summary());
}

#[test]
fn when_the_server_goes_every_session_ends_with_remote_connection_failed_at_once() {
    // BOSH hears a terminate with the condition, WebSocket the stream
    // error and then the close frame; the end times come in the report.
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let gone = std::time::SystemTime::now();
        drop(stub);
        gone
    });
    let result = sb.run("mix", &["--rate", "20", "--duration", "3s"]);
    let gone = stopper.join().unwrap();
    let gone_ms = gone
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = &result.report;
    assert_eq!(r.sessions_established, 10, "{}", r.summary());
    for kind in [
        "bosh_terminate:remote-connection-failed",
        "stream_error:remote-connection-failed",
    ] {
        assert_eq!(r.errors.get(kind), Some(&5), "{}", r.summary());
        let ends = r.ends[kind];
        assert_eq!(ends.count, 5);
        // The stub notices its stop flag within 100 ms.
        assert!(
            ends.first_unix_ms >= gone_ms,
            "{kind} ended before the server went"
        );
        assert!(
            ends.last_unix_ms < gone_ms + 1000,
            "{kind}: last end {} ms after the server went",
            ends.last_unix_ms - gone_ms
        );
    }
    assert_eq!(r.errors.len(), 2, "{}", r.summary());
}

/// One POST of `body` on a new connection to `addr`; the response body.
fn post(addr: SocketAddr, body: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /http-bind HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before the response");
        input.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&input);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("Content-Length");
            if rest.len() >= length {
                return rest[..length].to_string();
            }
        }
    }
}

/// Found by tools/faults/run cuts with --logout.
#[test]
fn a_terminate_sent_again_gets_its_response_not_item_not_found() {
    // The client's terminate request (with its last stanza) is answered,
    // but the response is lost with its connection. The client sends the
    // request again, same rid, on a new connection: it must hear the
    // response it missed (XEP-0124 §14.3), so that it knows the session
    // ended as asked and its last stanza went out.
    let stub = StubThread::start();
    let sb = SwitchboardThread::start(stub.addr);
    const NS: &str = "http://jabber.org/protocol/httpbind";
    let created = post(
        sb.addr,
        &format!(
            "<body rid='1000' to='localhost' wait='5' hold='1' ack='1' ver='1.6' \
             xmlns='{NS}' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>"
        ),
    );
    let sid = created
        .split("sid='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no sid in {created}"));
    let terminate = format!(
        "<body rid='1001' sid='{sid}' ack='1000' type='terminate' xmlns='{NS}'>\
         <presence type='unavailable' xmlns='jabber:client'/></body>"
    );
    let answered = post(sb.addr, &terminate);
    assert!(answered.contains("type='terminate'"), "{answered}");
    // The response is lost; the client tries again a moment later.
    std::thread::sleep(Duration::from_millis(300));
    let again = post(sb.addr, &terminate);
    assert_eq!(again, answered, "the repeated terminate");
}
