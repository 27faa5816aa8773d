//! The switchboard binary as a child process under shell `ulimit`s, its
//! log drained by a thread (a full pipe would stall it) and kept for the
//! tests to search; killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::WAIT;

pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    /// The configuration file it was started with (rewrite it, then SIGHUP).
    pub config: PathBuf,
    /// Every line it logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// The binary at `bin` (a test's `env!("CARGO_BIN_EXE_switchboard")`)
    /// with `config` (its `server.listen` port 0) under each of `ulimits`
    /// (`ulimit` arguments such as `"-s 2048"`, `"-n 32"`, `"-Sn 64"`);
    /// returns once it says where it listens.
    pub fn start(bin: &str, config: &str, ulimits: &[&str]) -> Process {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("switchboard-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(format!("config-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let limits: String = ulimits.iter().map(|l| format!("ulimit {l} && ")).collect();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{limits}exec \"$0\" --config \"$1\""))
            .arg(bin)
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

    /// How many lines it logged so far: a mark for [`Self::logged_since`].
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The first logged line holding `needle`, waiting up to `WAIT`.
    pub fn logged(&self, needle: &str) -> Option<String> {
        self.logged_since(0, needle)
    }

    /// The first line holding `needle` logged after the first `mark`
    /// lines, waiting up to `WAIT`.
    pub fn logged_since(&self, mark: usize, needle: &str) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .skip(mark)
                .find(|l| l.contains(needle))
                .cloned();
            if found.is_some() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {name}");
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
