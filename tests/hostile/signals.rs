//! The process: signals (SIGHUP with files that do not check out, many
//! SIGHUPs, SIGPIPE), a crowd of connections under a soft descriptor
//! limit far below `max_connections`, and a peer that resets. The binary
//! runs under `ulimit -Sn 64` (the hard limit stays); after each case it
//! must still be running and serve a new session, besides the healthy
//! ones.
//!
//! Covered elsewhere and not repeated (tests/process.rs): a good SIGHUP
//! and one with a value out of bounds, `server.listen` changed, SIGQUIT,
//! clients queued while out of descriptors, the warning when the hard
//! limit is too low, 40,000 pipelined requests under a small stack.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::corpus::{self, answers, case, Backend, Begin, Case, Outcome, Step};
use crate::support::process::Process;
use crate::support::{StubOptions, StubServer, WAIT};

pub enum Probe {
    /// The configuration file rewritten so (`{route}`: the stub's
    /// address), or removed when `None`, then these signals.
    Signal(Option<&'static [u8]>, &'static [&'static str]),
    /// This many connections at once, each asking for the status page.
    Crowd(usize),
    /// A client that resets its connection while answers are written.
    Reset,
}

/// The file the process starts with.
const GOOD: &[u8] = b"[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 1000\nmax_sessions = 100\n\n[backend.routes]\nlocalhost = \"{route}\"\n";

const fn survived(said: &'static str) -> Outcome {
    Outcome::Survived(Cow::Borrowed(said))
}

#[rustfmt::skip]
pub const CASES: &[Case<Probe>] = &[
    case("SIGHUP with a file that is not TOML", Probe::Signal(Some(b"[server\nlisten = "), &["HUP"]), survived("SIGHUP: FILE: line 1: [server is not valid TOML: unclosed table, expected `]`; the running configuration stays")),
    case("SIGHUP with an unknown key", Probe::Signal(Some(b"[server]\nlisten = \"127.0.0.1:0\"\nnonsense = 1\n"), &["HUP"]), survived("SIGHUP: FILE: line 3: server.nonsense: is not a key of [server]; its keys are listen, max_connections, max_connections_per_address, max_sessions, max_sessions_per_address, new_sessions_per_second_per_address, trusted_proxies, max_buffered_bytes; the running configuration stays")),
    case("SIGHUP with a key given twice", Probe::Signal(Some(b"[server]\nlisten = \"127.0.0.1:0\"\nlisten = \"127.0.0.1:0\"\n"), &["HUP"]), survived("SIGHUP: FILE: line 3: server.listen: is given a second time (first on line 2); give each key and table once; the running configuration stays")),
    case("SIGHUP with a duration without its unit", Probe::Signal(Some(b"[server]\nlisten = \"127.0.0.1:0\"\n\n[http]\nread_timeout = \"10\"\n"), &["HUP"]), survived("SIGHUP: FILE: line 5: http.read_timeout: \"10\" is not a duration such as \"10s\" (a whole number, then ms, s, m or h); the running configuration stays")),
    case("SIGHUP with a CA file that cannot be read", Probe::Signal(Some(b"[server]\nlisten = \"127.0.0.1:0\"\n\n[backend]\nca_file = \"/nonexistent/ca.pem\"\n"), &["HUP"]), survived("SIGHUP: FILE: line 5: backend.ca_file: \"/nonexistent/ca.pem\" cannot be read (No such file or directory (os error 2)); give a readable PEM file of CA certificates, or leave ca_file out to trust the system's CAs only; the running configuration stays")),
    case("SIGHUP with a file that is not UTF-8", Probe::Signal(Some(b"[server]\nlisten = \"\xff\xfe\"\n"), &["HUP"]), survived("SIGHUP: FILE: cannot be read (stream did not contain valid UTF-8); the running configuration stays")),
    case("SIGHUP with the file removed", Probe::Signal(None, &["HUP"]), survived("SIGHUP: FILE: cannot be read (No such file or directory (os error 2)); the running configuration stays")),
    case("twenty SIGHUPs in a row", Probe::Signal(Some(GOOD), &["HUP"; 20]), survived("SIGHUP: FILE read again; changed for new sessions: nothing")),
    case("SIGPIPE", Probe::Signal(Some(GOOD), &["PIPE"]), survived("")),
    case("300 connections at once under a soft limit of 64 descriptors", Probe::Crowd(300), answers(&[200; 300], true)),
    case("a client that resets while answers are written", Probe::Reset, survived("")),
];

/// The words the process logged of a signal after its first `mark` lines
/// (the file's path as `FILE`), or "" when it said nothing of one.
fn said(process: &Process, mark: usize, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_millis(300);
    loop {
        let line = process
            .log
            .lock()
            .unwrap()
            .iter()
            .skip(mark)
            .find_map(|l| l.find("SIG").map(|at| l[at..].replace(path, "FILE")));
        if let Some(line) = line {
            return line;
        }
        if Instant::now() >= deadline {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every connection asks for the status page at once; the statuses of
/// those answered within [`WAIT`].
fn crowd(process: &Process, count: usize) -> Outcome {
    let mut conns: Vec<TcpStream> = (0..count)
        .filter_map(|_| TcpStream::connect(process.addr).ok())
        .collect();
    for conn in &mut conns {
        // A connection refused its request is counted by its missing answer.
        let _ = conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    }
    let deadline = Instant::now() + WAIT;
    let statuses: Vec<u16> = conns
        .iter_mut()
        .filter_map(|conn| {
            let left = deadline.saturating_duration_since(Instant::now());
            conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer).ok()?;
            answer.split(' ').nth(1)?.parse().ok()
        })
        .collect();
    Outcome::Http {
        statuses: Cow::Owned(statuses),
        close: true,
    }
}

/// Many requests, then a close with their answers unread: the kernel
/// resets the connection (RST) while switchboard is still writing.
fn reset(process: &Process) {
    let mut conn = TcpStream::connect(process.addr).unwrap();
    conn.write_all(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2_000))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(conn);
}

/// `text` with `{route}` made `route`.
fn with_route(text: &[u8], route: &str) -> Vec<u8> {
    match String::from_utf8(text.to_vec()) {
        Ok(text) => text.replace("{route}", route).into_bytes(),
        Err(not_utf8) => not_utf8.into_bytes(),
    }
}

fn observe(process: &mut Process, stub: &StubServer, probe: &Probe) -> Outcome {
    let path = process.config.display().to_string();
    let route = stub.addr().to_string();
    let mark = process.log_len();
    match probe {
        Probe::Signal(file, signals) => {
            match file {
                Some(text) => std::fs::write(&process.config, with_route(text, &route)).unwrap(),
                None => std::fs::remove_file(&process.config).unwrap(),
            }
            for signal in *signals {
                process.signal(signal);
            }
        }
        Probe::Crowd(count) => return crowd(process, *count),
        Probe::Reset => reset(process),
    }
    let words = said(process, mark, &path);
    std::fs::write(&process.config, with_route(GOOD, &route)).unwrap();
    if !process.running() {
        return Outcome::Other(format!("the process died, having said {words:?}"));
    }
    let fresh = [Step::Echo];
    match corpus::ws_outcome(
        process.addr,
        &[Backend::Stub(stub)],
        "localhost",
        Begin::LoggedIn,
        &fresh,
    ) {
        Outcome::Served => Outcome::Survived(Cow::Owned(words)),
        other => Outcome::Other(format!("a new session: {other:?}")),
    }
}

pub fn run() {
    let stub = StubServer::start(StubOptions::plaintext("localhost"));
    let good = with_route(GOOD, &stub.addr().to_string());
    let mut process = Process::start(
        env!("CARGO_BIN_EXE_switchboard"),
        &String::from_utf8(good).unwrap(),
        &["-Sn 64"],
    );
    let addr = process.addr;
    corpus::run_at("signals", addr, CASES, |probe| {
        observe(&mut process, &stub, probe)
    });
}
