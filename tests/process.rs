//! switchboard as a process (the binary under test), attacked where a
//! process dies rather than a session: its stack.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use support::bosh_client::{body, BoshConn, NS_HTTPBIND};
use support::{StubOptions, StubServer, WAIT};

const PATH: &str = "/http-bind";

/// The binary under `ulimit -s`, its log drained by a thread (a full pipe
/// would stall it); killed on drop.
struct Process {
    child: Child,
    addr: SocketAddr,
    config: std::path::PathBuf,
    /// Every line it logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Under `ulimit -s STACK_KIB` (and `-n FILES` when given).
    fn start(config: &str, stack_kib: u32, files: Option<u32>) -> Process {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("switchboard-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(format!("config-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -s {stack_kib} {} && exec \"$0\" --config \"$1\"",
                files.map_or(String::new(), |n| format!("&& ulimit -n {n}"))
            ))
            .arg(env!("CARGO_BIN_EXE_switchboard"))
            .arg(&path)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchboard");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("switchboard says where it listens")
            .parse()
            .unwrap();
        Process {
            child,
            addr,
            config: path,
            log,
        }
    }

    /// The first logged line holding `needle`, waiting up to `WAIT`.
    fn logged(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {name}");
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Responses counted by their status lines, until `want` or `deadline`.
fn count_responses(stream: &mut TcpStream, want: usize, deadline: Instant) -> usize {
    let needle = b"HTTP/1.1 ";
    let mut seen = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while seen < want && Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => continue,
        };
        carry.extend_from_slice(&buf[..n]);
        seen += carry.windows(needle.len()).filter(|w| w == needle).count();
        // Keep a tail that may hold the start of a split status line.
        let keep = carry.len().min(needle.len() - 1);
        carry.drain(..carry.len() - keep);
    }
    seen
}

/// A BOSH request answered at once (an unknown sid) used to be delivered
/// by a call back into the connection's drive, one stack level per
/// pipelined request: 40,000 of them behind one held request overflowed
/// a 2 MiB stack and took every session down.
#[test]
fn pipelining_40000_bosh_requests_behind_a_held_one_leaves_the_server_serving() {
    const PIPELINED: usize = 40_000;
    let stub = StubServer::start(StubOptions::plaintext("localhost"));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[backend.routes]\nlocalhost = \"{}\"\n",
        stub.addr()
    );
    let mut process = Process::start(&config, 2048, None);

    let mut creator = BoshConn::connect(process.addr, PATH);
    let created = creator.post(
        &format!(
            "<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='100' to='localhost' wait='1' hold='1' ver='1.11' xmpp:version='1.0'/>"
        ),
        WAIT,
    );
    let sid = created.attr("sid").expect("a session");

    let mut stream = TcpStream::connect(process.addr).unwrap();
    let request = |body: &str| {
        format!(
            "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let mut flood = request(&body(101, &sid, "", ""));
    let unknown = request(&body(5, "nosuchsid", "", ""));
    for _ in 0..PIPELINED {
        flood.extend_from_slice(&unknown);
    }
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&flood).is_ok());

    let answered = count_responses(
        &mut stream,
        PIPELINED + 1,
        Instant::now() + Duration::from_secs(120),
    );
    assert!(process.running(), "the process survived");
    assert!(sender.join().unwrap(), "the server stopped reading");
    assert_eq!(answered, PIPELINED + 1, "every request answered");

    let mut fresh = BoshConn::connect(process.addr, PATH);
    let reply = fresh.post(&body(5, "nosuchsid", "", ""), WAIT);
    assert_eq!(reply.attr("condition").as_deref(), Some("item-not-found"));
}

/// Out of descriptors, accept fails and clients wait in the listen queue.
/// They used to wait there until yet another client connected (the failed
/// accept cleared the listener's readiness); now accept is retried on a
/// timer, so they get in once descriptors free up.
#[test]
fn clients_queued_while_out_of_descriptors_get_in_when_some_free_up() {
    const CLIENTS: usize = 48;
    let config = "[server]\nlisten = \"127.0.0.1:0\"\n\n[dns]\nservers = [\"127.0.0.1:9\"]\n";
    let mut process = Process::start(config, 8192, Some(32));
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream = TcpStream::connect(process.addr).unwrap();
            stream.write_all(request).unwrap();
            stream
        })
        .collect();
    let answered = |stream: &mut TcpStream, wait: Duration| {
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 256];
        matches!(stream.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"))
    };
    let served: Vec<bool> = clients
        .iter_mut()
        .map(|c| answered(c, Duration::from_millis(150)))
        .collect();
    let waiting = served.iter().filter(|s| !**s).count();
    assert!(waiting > 0, "the descriptor limit never bit");
    assert!(waiting < CLIENTS, "nobody was served");
    // Those served leave, and each late one leaves once served; nobody
    // new connects.
    let rest: Vec<TcpStream> = clients
        .into_iter()
        .zip(served)
        .filter_map(|(c, s)| (!s).then_some(c))
        .collect();
    let mut late = 0;
    for mut client in rest {
        if answered(&mut client, Duration::from_secs(3)) {
            late += 1;
        }
    }
    assert_eq!(late, waiting, "every queued client got in");
    assert!(process.running());
}

/// A server that is not there: the client hears remote-connection-failed,
/// the log says at WARN which domain, which address, why, and what to
/// change; the same failure again within the minute adds no line.
#[test]
fn a_backend_that_is_not_there_is_named_with_its_address_cause_and_fix() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    // verify_loopback: no start-up warning about the unverified loopback
    // route among the warnings counted here.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[backend]\nverify_loopback = true\n\n[backend.routes]\nlocalhost = \"127.0.0.1:{port}\"\n"
    );
    let process = Process::start(&config, 8192, None);
    for _ in 0..2 {
        let mut ws = support::WsClient::connect(process.addr, support::WS_PATH, &["xmpp"]).unwrap();
        let (_, error) = ws.open("localhost").unwrap();
        assert!(error.contains("remote-connection-failed"), "{error}");
    }
    let warning = process
        .logged("backend failed")
        .expect("a warning for the failed backend");
    assert!(warning.contains("WARN"), "{warning}");
    for part in [
        "localhost: backend failed: could not connect to any address",
        &format!("127.0.0.1:{port}: connection refused"),
        "backend.routes.\"localhost\"",
    ] {
        assert!(warning.contains(part), "{part} missing: {warning}");
    }
    assert!(process.logged("session 2 end").is_some());
    let warnings = process
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("backend failed"))
        .count();
    assert_eq!(warnings, 1, "the second failure is not logged again");
}

/// SIGHUP reads the configuration file again: a new route serves new
/// sessions while the session already there keeps its server; a file that
/// does not check out is refused with the reason and the running
/// configuration stays; what cannot change without a restart is said;
/// SIGQUIT does not kill.
#[test]
fn sighup_reads_the_configuration_again_for_new_sessions() {
    let first = StubServer::start(StubOptions::plaintext("localhost"));
    let second = StubServer::start(StubOptions::plaintext("localhost"));
    let config = |route: SocketAddr, extra: &str| {
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{extra}\n[backend.routes]\nlocalhost = \"{route}\"\n")
    };
    let mut process = Process::start(&config(first.addr(), ""), 8192, None);
    let ws = || support::WsClient::connect(process.addr, support::WS_PATH, &["xmpp"]).unwrap();
    let mut before = ws();
    before.open("localhost").unwrap();
    assert_eq!(first.connection_count(), 1);

    std::fs::write(&process.config, config(second.addr(), "")).unwrap();
    process.signal("HUP");
    let line = process.logged("read again").expect("the reload is logged");
    assert!(
        line.contains("changed for new sessions: backend.routes.localhost"),
        "{line}"
    );
    let mut after = ws();
    after.open("localhost").unwrap();
    assert_eq!(
        second.connection_count(),
        1,
        "new sessions take the new route"
    );
    assert!(
        before.close_stream().unwrap().contains("close"),
        "the old session goes on"
    );

    std::fs::write(&process.config, config(first.addr(), "max_sessions = 0")).unwrap();
    process.signal("HUP");
    let refused = process
        .logged("running configuration stays")
        .expect("refused");
    assert!(
        refused.contains("server.max_sessions: 0 is not"),
        "{refused}"
    );
    let mut again = ws();
    again.open("localhost").unwrap();
    assert_eq!(
        second.connection_count(),
        2,
        "the refused file changed nothing"
    );

    let moved = config(second.addr(), "").replace("127.0.0.1:0", "127.0.0.1:1");
    std::fs::write(&process.config, moved).unwrap();
    process.signal("HUP");
    assert!(process.logged("cannot change without a restart").is_some());

    process.signal("QUIT");
    std::thread::sleep(Duration::from_millis(200));
    assert!(process.running(), "SIGQUIT does not kill");
    assert!(process.logged("SIGQUIT ignored").is_some());
}

/// Under a descriptor limit that cannot hold the configured limits, the
/// start says so and how many sessions fit.
#[test]
fn a_descriptor_limit_too_low_for_the_limits_is_said_at_start() {
    let process = Process::start("[server]\nlisten = \"127.0.0.1:0\"\n", 8192, Some(256));
    let warning = process
        .logged("the descriptor limit is 256")
        .expect("a warning at start");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("about 112 WebSocket sessions"),
        "{warning}"
    );
}
