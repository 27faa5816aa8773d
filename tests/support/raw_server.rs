//! A scripted XMPP "server" for hostile-backend tests: on each connection
//! it waits for the client's stream header, answers with the bytes of the
//! current [`Script`] as they are (garbage, a stream error, a header cut
//! short, or nothing at all), then closes or holds the connection. It
//! keeps what each connection received and whether the client closed it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

use super::stub_server::{stop_acceptor, wait_for};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server does with the next connections.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// Written once the client's stream header (its first `>`) arrived.
    pub reply: Vec<u8>,
    /// Close the connection after the reply; otherwise hold it open,
    /// reading, until the client closes.
    pub close: bool,
}

/// What one connection saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConn {
    /// Everything the client sent.
    pub received: Vec<u8>,
    /// The client closed its side (end of file or reset).
    pub client_closed: bool,
    /// The server closed it first (its script, or [`RawServer::drop_connection`]).
    pub server_closed: bool,
}

#[derive(Default)]
struct State {
    script: Script,
    conns: Vec<RawConn>,
    sockets: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct RawServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl RawServer {
    /// On a loopback port.
    pub fn start() -> RawServer {
        RawServer::start_on("127.0.0.1:0")
    }

    /// On `addr` (`"[::]:0"`: every local address, IPv4 and IPv6).
    pub fn start_on(addr: &str) -> RawServer {
        let listener = TcpListener::bind(addr).expect("bind raw server");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let acceptor = std::thread::spawn({
            let shared = shared.clone();
            move || {
                for sock in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(sock) = sock else { continue };
                    let Ok(closer) = sock.try_clone() else {
                        continue;
                    };
                    let mut state = lock(&shared);
                    let index = state.conns.len();
                    let script = state.script.clone();
                    state.conns.push(RawConn::default());
                    state.sockets.push(closer);
                    let shared = shared.clone();
                    state.threads.push(std::thread::spawn(move || {
                        serve(&shared, index, sock, script)
                    }));
                    drop(state);
                }
            }
        });
        RawServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The script for connections accepted from now on.
    pub fn set_script(&self, script: Script) {
        lock(&self.shared).script = script;
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared).conns.len()
    }

    /// Writes `bytes` on connection `index`.
    pub fn send_raw(&self, index: usize, bytes: &[u8]) -> Result<(), String> {
        let mut sock = self.socket(index)?;
        sock.write_all(bytes)
            .map_err(|e| format!("raw server: {e}"))
    }

    /// Closes connection `index`, as a crashing server would.
    pub fn drop_connection(&self, index: usize) {
        // Marked first: the connection's own thread marks the client's end.
        if let Some(conn) = lock(&self.shared).conns.get_mut(index) {
            conn.server_closed = true;
        }
        if let Ok(sock) = self.socket(index) {
            let _ = sock.shutdown(Shutdown::Both);
        }
        self.shared.changed.notify_all();
    }

    /// Writes the repetition of `chunk` on connection `index` from stream
    /// position `from` up to `to`, stopping when a write makes no progress
    /// for `stall`; returns how far it got (as [`super::StubServer::flood`]).
    pub fn flood(
        &self,
        index: usize,
        chunk: &[u8],
        from: usize,
        to: usize,
        stall: Duration,
    ) -> Result<usize, String> {
        let mut sock = self.socket(index)?;
        sock.set_write_timeout(Some(stall))
            .map_err(|e| e.to_string())?;
        super::stub_server::write_repeated(&mut sock, chunk, from, to)
    }

    fn socket(&self, index: usize) -> Result<TcpStream, String> {
        lock(&self.shared)
            .sockets
            .get(index)
            .ok_or_else(|| format!("raw server: no connection {index}"))?
            .try_clone()
            .map_err(|e| e.to_string())
    }

    /// Connection `index` once either side has closed it, or as it stands
    /// after `timeout`.
    pub fn wait_closed(&self, index: usize, timeout: Duration) -> Option<RawConn> {
        let closed = wait_for(&self.shared.state, &self.shared.changed, timeout, |s| {
            s.conns
                .get(index)
                .filter(|c| c.client_closed || c.server_closed)
                .cloned()
        });
        closed.or_else(|| lock(&self.shared).conns.get(index).cloned())
    }
}

fn serve(shared: &Shared, index: usize, mut sock: TcpStream, script: Script) {
    let mut replied = false;
    let mut buf = [0u8; 4096];
    loop {
        if !replied && lock(shared).conns[index].received.contains(&b'>') {
            replied = true;
            let _ = sock.write_all(&script.reply);
            if script.close {
                let _ = sock.shutdown(Shutdown::Both);
                lock(shared).conns[index].server_closed = true;
                shared.changed.notify_all();
                return;
            }
        }
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let mut state = lock(shared);
        if n == 0 {
            state.conns[index].client_closed = true;
            drop(state);
            shared.changed.notify_all();
            return;
        }
        state.conns[index].received.extend_from_slice(&buf[..n]);
        drop(state);
        shared.changed.notify_all();
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        stop_acceptor(self.addr, &self.shared.stop, self.acceptor.take());
        let threads = {
            let mut state = lock(&self.shared);
            for sock in &state.sockets {
                let _ = sock.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut state.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}
