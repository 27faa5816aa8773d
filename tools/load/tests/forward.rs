//! `load forward` over loopback: bytes pass both ways unchanged in front of
//! a tiny echo server, a payload far bigger than the buffers arrives whole
//! while the forwarder holds at most one buffer per direction, FINs and
//! closes reach the other side, and the binary stops by itself.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use load::forward::{Forward, Stats, READS_PER_PASS};

const LIMIT: Duration = Duration::from_secs(20);

/// A forwarder on a free loopback port in its own thread, run in short
/// slices so that its totals can be read while it runs; stopped on
/// `finish` or on drop.
struct ForwardThread {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    thread: Option<JoinHandle<()>>,
}

impl ForwardThread {
    fn start(to: SocketAddr, buffer: usize) -> ForwardThread {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let (flag, totals) = (stop.clone(), stats.clone());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut forward = Forward::bind("127.0.0.1:0".parse().unwrap(), to, buffer).unwrap();
            tx.send(forward.local_addr()).unwrap();
            let deadline = Instant::now() + LIMIT;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let slice = Instant::now() + Duration::from_millis(10);
                *totals.lock().unwrap() = forward.run(slice, &flag).unwrap();
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        ForwardThread {
            addr,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream
    }

    /// Stop it once it has released `pairs` pairs (or after a while); its
    /// totals.
    fn finish(mut self, pairs: u64) -> Stats {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stats.lock().unwrap().released < pairs && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let stats = *self.stats.lock().unwrap();
        assert_eq!((stats.pairs, stats.released), (pairs, pairs));
        stats
    }
}

impl Drop for ForwardThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server thread handing each accepted connection to `serve`, `count`
/// connections in all.
fn server(count: usize, serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..count {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(LIMIT)).unwrap();
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// Echo until the client's FIN, then send ours.
fn echo(mut stream: TcpStream) {
    let mut buf = [0; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// `len` bytes that differ from one offset to the next.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Everything until the peer's FIN.
fn read_to_fin(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn bytes_pass_both_ways_unchanged_in_front_of_an_echo_server() {
    let forward = ForwardThread::start(server(3, echo), 64 * 1024);
    let clients: Vec<_> = (0..3u32)
        .map(|i| {
            let mut stream = forward.connect();
            std::thread::spawn(move || {
                let mut back = Vec::new();
                for round in 0..20 {
                    let message = pattern(1 + 97 * round, i * 100 + round as u32);
                    stream.write_all(&message).unwrap();
                    let mut got = vec![0; message.len()];
                    stream.read_exact(&mut got).unwrap();
                    assert_eq!(got, message, "client {i} round {round}");
                    back.extend_from_slice(&got);
                }
                stream.shutdown(Shutdown::Write).unwrap();
                assert!(read_to_fin(&mut stream).is_empty());
                back.len() as u64
            })
        })
        .collect();
    let sent: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let stats = forward.finish(3);
    assert_eq!(stats.client_to_server_bytes, sent);
    assert_eq!(stats.server_to_client_bytes, sent);
}

#[test]
fn a_payload_far_bigger_than_the_buffers_arrives_whole_through_a_half_close() {
    const BUFFER: usize = 4096;
    let forward = ForwardThread::start(server(1, echo), BUFFER);
    let payload = pattern(8 * 1024 * 1024, 7);
    let mut stream = forward.connect();
    let mut writer = stream.try_clone().unwrap();
    let sent = payload.clone();
    let write = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        // Half-close: the echo server sees the end only through the
        // forwarder, and echoes back what it still has.
        writer.shutdown(Shutdown::Write).unwrap();
    });
    // A late reader: the echo server, the forwarder and the writer stall
    // meanwhile, each behind full buffers.
    std::thread::sleep(Duration::from_millis(300));
    let got = read_to_fin(&mut stream);
    write.join().unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "the echo differs from what was sent");
    let stats = forward.finish(1);
    assert_eq!(stats.client_to_server_bytes, payload.len() as u64);
    assert_eq!(stats.server_to_client_bytes, payload.len() as u64);
    assert!(
        stats.most_held > 0,
        "the slow reader never held the forwarder back"
    );
    assert!(stats.most_held <= BUFFER, "held {}", stats.most_held);
}

#[test]
fn a_server_close_reaches_the_client_after_its_last_bytes() {
    fn say_bye(mut stream: TcpStream) {
        stream.write_all(b"bye").unwrap();
    }
    let forward = ForwardThread::start(server(1, say_bye), 1024);
    let mut stream = forward.connect();
    assert_eq!(read_to_fin(&mut stream), b"bye");
    drop(stream);
    let stats = forward.finish(1);
    assert_eq!(stats.server_to_client_bytes, 3);
}

#[test]
fn a_client_close_reaches_the_server_after_its_last_bytes() {
    let (tx, rx) = mpsc::channel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        tx.send(read_to_fin(&mut stream)).unwrap();
    });
    let forward = ForwardThread::start(to, 1024);
    let mut stream = forward.connect();
    stream.write_all(b"last words").unwrap();
    drop(stream);
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"last words");
    forward.finish(1);
}

#[test]
fn a_refused_connection_to_the_target_closes_the_client() {
    let to = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let forward = ForwardThread::start(to, 1024);
    let mut stream = forward.connect();
    let mut buf = [0; 16];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the client closed, got {other:?}"),
    }
    forward.finish(1);
}

#[test]
fn bytes_already_queued_beyond_one_pass_are_all_forwarded() {
    // Everything arrives before the forwarder's first read, so no later
    // readiness comes: the reads left after one pass must be resumed by
    // the forwarder itself.
    const BUFFER: usize = 1024;
    let total = 4 * READS_PER_PASS * BUFFER;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut forward = Forward::bind(
        "127.0.0.1:0".parse().unwrap(),
        listener.local_addr().unwrap(),
        BUFFER,
    )
    .unwrap();
    let mut client = TcpStream::connect(forward.local_addr()).unwrap();
    let payload = pattern(total, 3);
    client.write_all(&payload).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        forward
            .run(Instant::now() + LIMIT, &flag)
            .unwrap()
            .client_to_server_bytes
    });
    let (mut server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = vec![0; total];
    let read = server.read_exact(&mut got);
    stop.store(true, Ordering::Relaxed);
    let forwarded = thread.join().unwrap();
    assert!(read.is_ok(), "forwarded {forwarded} of {total} bytes");
    assert_eq!(got, payload);
}

#[test]
fn the_binary_prints_its_address_forwards_and_stops_by_itself() {
    let target = server(1, echo);
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_load"))
        .args([
            "forward",
            "--listen",
            "127.0.0.1:0",
            "--to",
            &target.to_string(),
            "--duration",
            "1500ms",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening ")
        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("first line: {line:?}"));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(b"ping").unwrap();
    let mut got = [0; 4];
    stream.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    drop(stream);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.starts_with("pairs 1, released 1,"), "{rest}");
}
