//! The protocol cores stay sans-IO (STYLE rule 1): outside their test
//! modules they name no socket type, no mio and never read the clock.

use std::fs;
use std::path::{Path, PathBuf};

const CORES: &[&str] = &[
    "src/http",
    "src/xml",
    "src/websocket",
    "src/backend",
    "src/bosh",
    "src/dns",
    "src/wheel.rs",
    "src/session.rs",
];

const FORBIDDEN: &[&str] = &["mio::", "TcpStream", "UdpSocket", "Instant::now"];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

#[test]
fn cores_touch_no_socket_and_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for core in CORES {
        rust_files(&root.join(core), &mut files);
    }
    assert!(files.len() >= CORES.len(), "core files not found");
    let mut offences = Vec::new();
    for file in files {
        // Test modules (a file's closing `#[cfg(test)]` part, or a
        // `tests.rs` of their own) may use the clock.
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let product = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in product.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "cores must stay sans-IO:\n{}",
        offences.join("\n")
    );
}
