//! The binary's command line: help, version, config checking.

use std::process::Command;

fn switchboard(args: &[&str]) -> (i32, String, String) {
    // The default log filter: warnings are part of what is checked.
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("RUST_LOG")
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

/// `--check-config` on `text` saved as `name`: the exit code, what it
/// printed on standard output and on standard error, less the file-name
/// prefix every error line starts with.
fn check_config(name: &str, text: &str) -> (i32, String, String) {
    let path = config_file(name, text);
    let (code, out, err) = switchboard(&["--check-config", "--config", path.to_str().unwrap()]);
    let prefix = format!("switchboard: {}: ", path.display());
    let err = err.trim().strip_prefix(&prefix).unwrap_or(&err).to_string();
    (code, out.trim().to_string(), err)
}

#[test]
fn check_config_accepts_a_good_file_and_the_defaults() {
    let (code, out, _) = check_config("good.toml", "[server]\nlisten = \"127.0.0.1:5290\"\n");
    assert_eq!((code, out.as_str()), (0, "config ok"));
    let (code, out, _) = switchboard(&["--check-config"]);
    assert_eq!((code, out.trim()), (0, "config ok"));
}

/// The default route is on this host: its certificate is not verified,
/// and start-up (here `--check-config`) says so once, with how to verify.
#[test]
fn check_config_warns_of_an_unverified_loopback_route_once() {
    let (code, out, err) = switchboard(&["--check-config"]);
    assert_eq!((code, out.trim()), (0, "config ok"));
    let warning = "WARN  switchboard::reactor::settings] backend.routes.localhost: the server's certificate is not verified: every address of this route (127.0.0.1:5222) is on this host, so the stream never leaves it; to verify it, pin it (localhost = { address = \"127.0.0.1:5222\", certificate = \"FILE.pem\" }) or set backend.verify_loopback = true";
    assert_eq!(
        err.lines().filter(|l| l.ends_with(warning)).count(),
        1,
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = check_config("verify.toml", "[backend]\nverify_loopback = true\n");
    assert_eq!((code, err.as_str()), (0, ""));
}

/// The configuration sample under README.md's "Configuration" heading.
fn readme_sample() -> String {
    let readme = include_str!("../README.md");
    let (_, section) = readme.split_once("\n## Configuration\n").unwrap();
    let (_, block) = section.split_once("```toml\n").unwrap();
    let (sample, _) = block.split_once("```").unwrap();
    sample.to_string()
}

#[test]
fn the_readme_config_sample_passes_check_config() {
    let (code, out, err) = check_config("readme.toml", &readme_sample());
    assert_eq!((code, out.as_str()), (0, "config ok"), "{err}");
}

#[test]
fn check_config_runs_the_checks_start_up_runs() {
    let text =
        "[server]\nlisten = \"127.0.0.1:24581\"\n\n[backend]\nca_file = \"/nonexistent/ca.pem\"\n";
    let expected = "line 5: backend.ca_file: \"/nonexistent/ca.pem\" cannot be read (No such file or directory (os error 2)); give a readable PEM file of CA certificates, or leave ca_file out to trust the system's CAs only";
    assert_eq!(
        check_config("no-ca.toml", text),
        (2, String::new(), expected.to_string())
    );
    // Start-up refuses the same file with the same words, before listening.
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(config_file("no-ca.toml", text))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("started with a ca_file that does not exist");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains(expected), "{err}");
}

#[test]
fn check_config_names_the_line_key_and_value_in_words() {
    let cases = [
        (
            "[server]\nlisten = \"localhost:5280\"\n",
            r#"line 2: server.listen: "localhost:5280" is not an IP address and port such as "127.0.0.1:5280""#,
        ),
        (
            "[backend.routes]\n\"example.org\" = \"nohost\"\n",
            r#"line 2: backend.routes."example.org": "nohost" is not a host and port such as "xmpp.example.org:5222" or "127.0.0.1:5222""#,
        ),
        (
            "[server]\nlisten = \"127.0.0.1:5290\"\n\n[websocket]\nmax_message_bytes = 0\n",
            "line 5: websocket.max_message_bytes: 0 is not a number of bytes from 1 to 67108864 (64 MiB), such as 262144",
        ),
        (
            "[backend]\nconect_timeout = \"1s\"\n",
            "line 2: backend.conect_timeout: is not a key of [backend]; its keys are connect_timeout, handshake_timeout, ca_file, plaintext_domains, max_buffer_bytes, routes, allow_private_addresses, allowed_domains, denied_domains, allowed_ports, loopback_plaintext, verify_loopback",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            check_config("bad.toml", text),
            (2, String::new(), expected.to_string())
        );
    }
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
    assert_eq!(
        err.trim(),
        "switchboard: /nonexistent/switchboard.toml: cannot be read (No such file or directory (os error 2))"
    );
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

/// The start-up line says where clients connect and where domains lead.
#[test]
fn start_up_names_the_endpoints_and_routes() {
    let path = config_file(
        "startup.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[backend.routes]\n\"example.org\" = \"127.0.0.1:5999\"\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"));
    child.kill().unwrap();
    child.wait().unwrap();
    let line = line.expect("a start-up line");
    for part in [
        "BOSH http://127.0.0.1:",
        "/http-bind",
        "WebSocket ws://127.0.0.1:",
        "/xmpp-websocket",
        "example.org → 127.0.0.1:5999",
        "other domains by DNS SRV",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
}
