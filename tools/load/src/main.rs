//! `load`: see `load --help`. Exit status: 0 when the mode completed (even
//! with errors counted), 1 when no session could be established, 2 on bad
//! usage.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Parser;
use load::cli::{Cli, ForwardArgs, Mode, StubArgs};
use load::forward::Forward;
use load::net::Endpoint;
use load::report::Report;
use load::stub::Stub;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.mode {
        Mode::Stub(args) => stub(&args),
        Mode::Run(args) => match load::modes::run(&args, true) {
            Ok(result) => {
                if let Some(path) = &args.html {
                    let page = load::html::render(&result.report, &result.outcome.latency_us);
                    if let Err(err) = std::fs::write(path, page) {
                        eprintln!("load: {}: {err}", path.display());
                    }
                }
                finish(&result.report, args.client.json.as_deref())
            }
            Err(err) => usage(&err),
        },
        Mode::Memory(args) => match load::modes::memory(&args, true) {
            Ok(report) => finish(&report, args.client.json.as_deref()),
            Err(err) => usage(&err),
        },
        Mode::Forward(args) => forward(&args),
    }
}

fn usage(err: &str) -> ExitCode {
    eprintln!("load: {err}");
    ExitCode::from(2)
}

/// Print the summary, write the JSON, and pick the exit status.
fn finish(report: &Report, json: Option<&Path>) -> ExitCode {
    print!("{}", report.summary());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report).unwrap_or_default();
        if let Err(err) = std::fs::write(path, text + "\n") {
            eprintln!("load: {}: {err}", path.display());
        }
    }
    if report.sessions_established == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn stub(args: &StubArgs) -> ExitCode {
    if !args.allow_remote {
        if let Some(addr) = args.listen.iter().find(|a| !a.ip().is_loopback()) {
            return usage(&format!(
                "stub: {addr} is not a loopback address (--allow-remote)"
            ));
        }
    }
    load::net::raise_fd_limit(0);
    let mut stub = match Stub::bind(&args.listen, &args.domain) {
        Ok(stub) => stub,
        Err(err) => {
            eprintln!("load stub: listen: {err}");
            return ExitCode::from(1);
        }
    };
    for addr in stub.local_addrs() {
        println!("listening {addr}");
    }
    let until = Instant::now() + args.duration;
    match stub.run(until, &AtomicBool::new(false)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("load stub: {err}");
            ExitCode::from(1)
        }
    }
}

fn forward(args: &ForwardArgs) -> ExitCode {
    if !args.allow_remote && !args.listen.ip().is_loopback() {
        return usage(&format!(
            "forward: {} is not a loopback address (--allow-remote)",
            args.listen
        ));
    }
    let to = match Endpoint::from_addr(&args.to, args.allow_remote) {
        Ok(endpoint) => endpoint.addr,
        Err(err) => return usage(&format!("forward: --to {err}")),
    };
    load::net::raise_fd_limit(0);
    // The range check on --buffer keeps it far below usize::MAX.
    let mut forward = match Forward::bind(args.listen, to, args.buffer as usize) {
        Ok(forward) => forward,
        Err(err) => {
            eprintln!("load forward: listen: {err}");
            return ExitCode::from(1);
        }
    };
    println!("listening {}", forward.local_addr());
    let until = Instant::now() + args.duration;
    match forward.run(until, &AtomicBool::new(false)) {
        Ok(stats) => {
            print!("{}", stats.summary());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("load forward: {err}");
            ExitCode::from(1)
        }
    }
}
