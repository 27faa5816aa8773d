//! The switchboard binary: arguments, configuration, logging, the reactor.

use std::path::PathBuf;
use std::process::ExitCode;

use switchboard::config::Config;
use switchboard::reactor::settings_from_config;

const USAGE: &str = "\
usage: switchboard [--config FILE] [--check-config] [--help] [--version]

  --config FILE    read the TOML configuration from FILE (default: built-in
                   defaults, serving 127.0.0.1:5280)
  --check-config   run every check start-up runs short of listening (bounds,
                   route host names resolved, ca_file and pinned route
                   certificates read), print start-up's warnings and
                   `config ok`, or the wrong line, key and value, and exit
                   (0 or 2)
  --help           print this help
  --version        print the version

Logging goes to standard error; set RUST_LOG (e.g. RUST_LOG=debug).";

struct Args {
    config: Option<PathBuf>,
    check: bool,
}

enum Parsed {
    Run(Args),
    Exit(ExitCode),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Parsed {
    let mut parsed = Args {
        config: None,
        check: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                return Parsed::Exit(ExitCode::SUCCESS);
            }
            "--version" | "-V" => {
                println!("switchboard {}", env!("CARGO_PKG_VERSION"));
                return Parsed::Exit(ExitCode::SUCCESS);
            }
            "--check-config" => parsed.check = true,
            "--config" | "-c" => match args.next() {
                Some(path) => parsed.config = Some(PathBuf::from(path)),
                None => return usage_error("--config needs a file"),
            },
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    Parsed::Run(parsed)
}

fn usage_error(message: &str) -> Parsed {
    eprintln!("switchboard: {message}\n\n{USAGE}");
    Parsed::Exit(ExitCode::from(2))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Parsed::Run(args) => args,
        Parsed::Exit(code) => return code,
    };
    // Before the check: start-up's warnings (a loopback route whose
    // certificate is not verified) are printed by --check-config too.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    };
    // Start-up runs the same `settings_from_config` inside the reactor.
    let checked = match config {
        Ok(config) if args.check => settings_from_config(&config).map(|_| config),
        other => other,
    };
    let config = match checked {
        Ok(config) => config,
        Err(e) => {
            match &args.config {
                Some(path) => eprintln!("switchboard: {}: {e}", path.display()),
                None => eprintln!("switchboard: {e}"),
            }
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    match switchboard::reactor::run(&config, args.config.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
