//! Resident memory of switchboard per idle WebSocket session.
//!
//! Starts the test-support stub XMPP server in this process, writes a config
//! routing `localhost` to it, spawns the release `switchboard` binary as a
//! child, reads the child's `VmRSS` from `/proc/PID/status`, opens N RFC 7395
//! sessions (WebSocket upgrade, `<open/>`, SASL PLAIN, bind) from 8 client
//! threads, lets them sit idle, reads `VmRSS` again and prints
//!
//! ```text
//! sessions=N rss_before_kib=.. rss_after_kib=.. per_session_kib=..
//! ```
//!
//! The clients and the stub live in this process, so only switchboard's own
//! memory is counted. Loopback only; the whole run is bounded by `--timeout`.
//!
//! ```text
//! cargo build --release            # the example does not build the binary
//! cargo run --release --example idle_memory -- [--sessions N] [--tls]
//! ```
//!
//! `--tls` makes the stub require STARTTLS, so every backend stream carries a
//! rustls client session. Each session holds two descriptors in switchboard
//! and four in this process (the stub clones its sockets): for large N raise
//! the open-file limit first (`ulimit -n 65536`); the run refuses to start
//! when the limit is too low. If it fails, the child's log is kept in the
//! temporary directory and its path printed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use support::bosh_client::BoshSession;
use support::{StubEvent, StubOptions, StubServer, TlsMode, WsClient};

const DOMAIN: &str = "localhost";
/// RFC 7395 §3.1 subprotocol; the path is switchboard's default.
const WS_PATH: &str = "/xmpp-websocket";
const WS_PROTOCOL: &str = "xmpp";
const BOSH_PATH: &str = "/http-bind";
const CLIENT_THREADS: usize = 8;
/// Time for switchboard to finish whatever the last logins started
/// (and the allocator to settle) before the second reading.
const SETTLE: Duration = Duration::from_secs(2);
const START_WAIT: Duration = Duration::from_secs(10);
/// File descriptors this process needs besides four per session.
const FD_SPARE: u64 = 64;

struct Options {
    sessions: usize,
    tls: bool,
    /// BOSH sessions, each logged in with one request held, instead of
    /// WebSocket ones.
    bosh: bool,
    binary: Option<PathBuf>,
    timeout: Duration,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        sessions: 1000,
        tls: false,
        bosh: false,
        binary: None,
        timeout: Duration::from_secs(120),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sessions" => {
                let value = args.next().ok_or("--sessions needs a number")?;
                options.sessions = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--sessions: not a positive number: {value}"))?;
            }
            "--tls" => options.tls = true,
            "--bosh" => options.bosh = true,
            "--bin" => options.binary = Some(args.next().ok_or("--bin needs a path")?.into()),
            "--timeout" => {
                let value = args.next().ok_or("--timeout needs seconds")?;
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("--timeout: not a number of seconds: {value}"))?;
                options.timeout = Duration::from_secs(secs);
            }
            "-h" | "--help" => {
                println!(
                    "usage: idle_memory [--sessions N] [--tls] [--bosh] [--bin PATH] [--timeout SECS]\n\
                     build the server first: cargo build --release"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other} (try --help)")),
        }
    }
    Ok(options)
}

/// The child, its scratch directory and the stub's CA file, removed on
/// every way out: normal end, error, panic on this thread, or the watchdog
/// (whose `exit` skips the stub's own drop).
struct Cleanup {
    child: Mutex<Option<Child>>,
    dir: PathBuf,
    ca_file: Option<PathBuf>,
}

impl Cleanup {
    fn stop(&self) {
        let taken = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(ca) = &self.ca_file {
            let _ = fs::remove_file(ca);
        }
    }

    /// `Some(status)` once the child has exited.
    fn child_exited(&self) -> Option<String> {
        let mut guard = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let child = guard.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }
}

struct CleanupGuard(Arc<Cleanup>);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("idle_memory: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("idle_memory: {e}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> Result<(), String> {
    check_fd_limit(options.sessions)?;
    let binary = locate_binary(options.binary.as_deref())?;

    let stub = StubServer::start(if options.tls {
        StubOptions::starttls(DOMAIN, TlsMode::Required)
    } else {
        StubOptions::plaintext(DOMAIN)
    });

    let dir = std::env::temp_dir().join(format!("switchboard-idle-memory-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let cleanup = Arc::new(Cleanup {
        child: Mutex::new(None),
        dir: dir.clone(),
        ca_file: stub.ca_file().map(Path::to_path_buf),
    });
    let _guard = CleanupGuard(Arc::clone(&cleanup));
    start_watchdog(Arc::clone(&cleanup), options.timeout);

    let listen = free_port()?;
    let config = dir.join("switchboard.toml");
    let text = config_toml(listen, stub.addr(), stub.ca_file(), options.sessions);
    fs::write(&config, text).map_err(|e| format!("write {}: {e}", config.display()))?;
    let log = dir.join("switchboard.log");
    let log_file = fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let child = Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
    let pid = child.id();
    *cleanup.child.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);

    let with_log = |e: String| format!("{e}\n{}", keep_log(&log));
    wait_listening(&cleanup, listen).map_err(with_log)?;
    // Let start-up allocations finish before the baseline.
    thread::sleep(Duration::from_millis(500));
    let before = rss_kib(pid)?;

    let started = Instant::now();
    let clients = open_sessions(listen, options.sessions, options.bosh).map_err(with_log)?;
    let setup = started.elapsed();
    thread::sleep(SETTLE);
    let after = rss_kib(pid)?;
    let peak = status_kib(pid, "VmHWM:").unwrap_or(0);

    if let Some(status) = cleanup.child_exited() {
        return Err(with_log(format!(
            "switchboard exited during the run: {status}"
        )));
    }
    let closed = backend_streams_closed(&stub);
    if closed > 0 {
        return Err(with_log(format!(
            "{closed} backend streams closed while idle: the figure would not be for {} live sessions",
            options.sessions
        )));
    }

    eprintln!(
        "idle_memory: {} {} sessions ({}) set up in {:.1} s ({:.0}/s), switchboard peak rss {peak} KiB",
        clients.len(),
        if options.bosh { "BOSH" } else { "WebSocket" },
        if options.tls { "backend STARTTLS" } else { "backend plaintext" },
        setup.as_secs_f64(),
        clients.len() as f64 / setup.as_secs_f64().max(1e-9),
    );
    let per_session = (after as f64 - before as f64) / options.sessions as f64;
    println!(
        "sessions={} rss_before_kib={before} rss_after_kib={after} per_session_kib={per_session:.1}",
        options.sessions
    );

    // Stop the server before the clients, so it does not spend the end of
    // the run closing sessions one by one.
    cleanup.stop();
    drop(clients);
    Ok(())
}

/// Four descriptors per session here (the client's socket; the stub's
/// accepted socket and its two clones) and two in the child (client and
/// backend sockets), which inherits this process's limits.
fn check_fd_limit(sessions: usize) -> Result<(), String> {
    let limits = fs::read_to_string("/proc/self/limits")
        .map_err(|e| format!("read /proc/self/limits: {e}"))?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .ok_or("no 'Max open files' line in /proc/self/limits")?;
    if soft == "unlimited" {
        return Ok(());
    }
    let soft: u64 = soft
        .parse()
        .map_err(|_| format!("open-file limit not a number: {soft}"))?;
    let needed = 4 * sessions as u64 + FD_SPARE;
    if soft < needed {
        return Err(format!(
            "open-file soft limit is {soft}, {sessions} sessions need about {needed}: \
             run `ulimit -n {}` in this shell first",
            needed.max(65536)
        ));
    }
    Ok(())
}

/// `--bin`, else `target/release/switchboard` next to this example's
/// `target/release/examples/idle_memory`.
fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
            exe.parent()
                .and_then(Path::parent)
                .map(|profile| profile.join("switchboard"))
                .ok_or_else(|| format!("no target directory above {}", exe.display()))?
        }
    };
    if !path.is_file() {
        return Err(format!(
            "no switchboard binary at {}: run `cargo build --release` first, or pass --bin PATH",
            path.display()
        ));
    }
    Ok(path)
}

/// The kernel picks a free port; it stays free in the moment between drop
/// and switchboard's bind unless something else races for it.
fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

fn config_toml(
    listen: SocketAddr,
    stub: SocketAddr,
    ca_file: Option<&Path>,
    sessions: usize,
) -> String {
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\nmax_connections = {}\n\n[backend]\n",
        2 * sessions + 100
    );
    if let Some(ca) = ca_file {
        // The stub stands for a server elsewhere: verify it as one.
        text.push_str(&format!(
            "ca_file = \"{}\"\nverify_loopback = true\n",
            toml_escape(&ca.display().to_string())
        ));
    }
    text.push_str(&format!("\n[backend.routes]\n{DOMAIN} = \"{stub}\"\n"));
    text
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Kills the child and exits if the run outlives `timeout`.
fn start_watchdog(cleanup: Arc<Cleanup>, timeout: Duration) {
    thread::spawn(move || {
        thread::sleep(timeout);
        eprintln!("idle_memory: gave up after {} s", timeout.as_secs());
        cleanup.stop();
        std::process::exit(3);
    });
}

fn wait_listening(cleanup: &Cleanup, listen: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = cleanup.child_exited() {
            return Err(format!("switchboard exited at start: {status}"));
        }
        if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "switchboard not listening on {listen} after {} s",
                START_WAIT.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Each thread opens its share one after the other; the first failure
/// ends the run, naming the session.
/// A logged-in client kept open while memory is read; never read from,
/// only held so its connection stays up.
#[allow(dead_code)]
enum Client {
    WebSocket(Box<WsClient>),
    Bosh(BoshSession),
}

fn open_sessions(listen: SocketAddr, sessions: usize, bosh: bool) -> Result<Vec<Client>, String> {
    let threads = CLIENT_THREADS.min(sessions);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || -> Result<Vec<Client>, String> {
                let mine: Vec<usize> = (t..sessions).step_by(threads).collect();
                let mut clients = Vec::with_capacity(mine.len());
                for i in mine {
                    let client = if bosh {
                        open_bosh_session(listen, i).map(Client::Bosh)
                    } else {
                        open_session(listen, i).map(|ws| Client::WebSocket(Box::new(ws)))
                    };
                    clients.push(client.map_err(|e| format!("session {i}: {e}"))?);
                }
                Ok(clients)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(sessions);
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(clients)) => all.extend(clients),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "a client thread panicked".to_string());
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

fn open_session(listen: SocketAddr, i: usize) -> Result<WsClient, String> {
    let mut client = WsClient::connect(listen, WS_PATH, &[WS_PROTOCOL])?;
    client.open(DOMAIN).map_err(|e| format!("open: {e}"))?;
    client.login_plain(&format!("idle{i}"), "secret", DOMAIN)?;
    Ok(client)
}

/// A BOSH session logged in, then one empty request left held (XEP-0124
/// §10), as an idle client keeps it.
fn open_bosh_session(listen: SocketAddr, i: usize) -> Result<BoshSession, String> {
    let rid = 1_000 + 10_000 * i as u64;
    let (mut session, _) = BoshSession::create(listen, BOSH_PATH, DOMAIN, rid, "")?;
    session.login(&format!("idle{i}"), DOMAIN)?;
    session.rid += 1;
    let held = support::bosh_client::body(session.rid, &session.sid, "", "");
    session.conn.send(&held);
    Ok(session)
}

/// Backend streams the stub saw end; all should still be open while idle.
fn backend_streams_closed(stub: &StubServer) -> usize {
    (0..stub.connection_count())
        .filter(|&conn| {
            stub.events(conn)
                .iter()
                .any(|e| matches!(e, StubEvent::TcpClosed | StubEvent::ClientClosedStream))
        })
        .count()
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status` (proc(5)).
fn status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| format!("no {field} in {path}"))
}

/// Keeps the child's log past cleanup (the scratch directory goes) and
/// shows its last lines.
fn keep_log(path: &Path) -> String {
    let kept = std::env::temp_dir().join(format!(
        "switchboard-idle-memory-{}.log",
        std::process::id()
    ));
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    match fs::copy(path, &kept) {
        Ok(_) => format!(
            "--- switchboard log, whole in {} ---\n{tail}",
            kept.display()
        ),
        Err(_) => format!("--- switchboard log ---\n{tail}"),
    }
}
