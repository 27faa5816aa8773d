//! `load`: see `load --help`. Exit status: 0 when the mode completed (even
//! with errors counted), 1 when no session could be established, 2 on bad
//! usage.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::Parser;
use load::cli::{Cli, Mode, StubArgs};
use load::stub::Stub;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.mode {
        Mode::Stub(args) => stub(&args),
        Mode::Run(_) | Mode::Memory(_) => {
            eprintln!("load: not yet");
            ExitCode::from(2)
        }
    }
}

fn stub(args: &StubArgs) -> ExitCode {
    if !args.allow_remote {
        if let Some(addr) = args.listen.iter().find(|a| !a.ip().is_loopback()) {
            eprintln!("load stub: {addr} is not a loopback address (--allow-remote)");
            return ExitCode::from(2);
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
