//! The built binary's command line: help for every mode, and usage errors
//! exit with status 2 before anything is opened.

use std::process::Command;

fn load(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_load"))
        .args(args)
        .output()
        .expect("run load")
}

#[test]
fn help_names_every_mode_and_option() {
    let top = load(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for mode in ["stub", "run", "memory", "forward"] {
        assert!(text.contains(mode), "{mode} in:\n{text}");
    }
    let expectations: [(&str, &[&str]); 4] = [
        ("stub", &["--listen", "--domain", "--duration"]),
        (
            "run",
            &[
                "--transport",
                "--url",
                "--bosh-url",
                "--tcp",
                "--domain",
                "--sessions",
                "--ramp",
                "--duration",
                "--rate",
                "--window",
                "--auth",
                "--user",
                "--first-user",
                "--password",
                "--source",
                "--json",
                "--html",
                "--allow-remote",
                "--drain",
                "--logout",
                "--bosh-acks",
                "--cut-connections",
                "--seed",
            ],
        ),
        (
            "memory",
            &["--transport", "--sessions", "--pid", "--settle", "--json"],
        ),
        (
            "forward",
            &[
                "--listen",
                "--to",
                "--buffer",
                "--duration",
                "--allow-remote",
            ],
        ),
    ];
    for (mode, options) in expectations {
        let out = load(&[mode, "--help"]);
        assert!(out.status.success(), "{mode} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        for option in options {
            assert!(
                text.contains(option),
                "{mode} --help lacks {option}:\n{text}"
            );
        }
    }
}

#[test]
fn bad_usage_exits_2() {
    let cases: [&[&str]; 11] = [
        &["run", "--sessions", "3"],
        &["run", "--sessions", "300000"],
        &[
            "run",
            "--url",
            "ws://192.0.2.1:5280/xmpp-websocket",
            "--sessions",
            "2",
        ],
        &["run", "--source", "192.0.2.1", "--sessions", "2"],
        &["run", "--duration", "soon"],
        &["run", "--cut-connections", "1.5", "--transport", "bosh"],
        &["run", "--cut-connections", "0.1", "--transport", "ws"],
        &["memory", "--sessions", "2"],
        &["forward", "--listen", "192.0.2.1:1", "--to", "127.0.0.1:1"],
        &["forward", "--listen", "127.0.0.1:0", "--to", "192.0.2.1:1"],
        &[
            "forward",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:1",
            "--buffer",
            "0",
        ],
    ];
    for args in cases {
        let out = load(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn nothing_established_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = load(&[
        "run",
        "--transport",
        "tcp",
        "--tcp",
        &format!("127.0.0.1:{port}"),
        "--sessions",
        "2",
        "--duration",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("connect_refused"));
}
