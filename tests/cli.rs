//! The binary's command line: help, version, config checking.

use std::process::Command;

fn switchboard(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .output()
        .expect("run switchboard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn version_and_help() {
    let (code, out, _) = switchboard(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("switchboard {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, out, _) = switchboard(&["--help"]);
    assert_eq!(code, 0);
    for option in [
        "--config",
        "--check-config",
        "--help",
        "--version",
        "RUST_LOG",
    ] {
        assert!(out.contains(option), "help lacks {option}: {out}");
    }
}

#[test]
fn check_config_accepts_a_good_file_and_the_defaults() {
    let path = config_file("good.toml", "[server]\nlisten = \"127.0.0.1:5290\"\n");
    let (code, out, _) = switchboard(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "config ok"));
    let (code, out, _) = switchboard(&["--check-config"]);
    assert_eq!((code, out.trim()), (0, "config ok"));
}

#[test]
fn check_config_names_the_wrong_line_and_key() {
    let path = config_file(
        "bad.toml",
        "[server]\nlisten = \"127.0.0.1:5290\"\n\n[websocket]\nmax_message_bytes = 0\n",
    );
    let (code, _, err) = switchboard(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("line 5") && err.contains("websocket.max_message_bytes"),
        "{err}"
    );
    let path = config_file("typo.toml", "[backend]\nconect_timeout = \"1s\"\n");
    let (code, _, err) = switchboard(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("line 2") && err.contains("conect_timeout"),
        "{err}"
    );
}

#[test]
fn unknown_arguments_and_missing_files_are_usage_errors() {
    let (code, _, err) = switchboard(&["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--frobnicate") && err.contains("usage"),
        "{err}"
    );
    let (code, _, err) = switchboard(&[
        "--check-config",
        "--config",
        "/nonexistent/switchboard.toml",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

/// SIGTERM drains the server and the process exits 0 by itself.
#[test]
fn sigterm_stops_the_process_cleanly() {
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listen.local_addr().unwrap();
    drop(listen);
    let config = config_file("sigterm.toml", &format!("[server]\nlisten = \"{addr}\"\n"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&config)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0), "{status:?}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
