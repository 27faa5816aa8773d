//! The command line: four modes, every option documented in `--help`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The most sessions one run may open.
pub const MAX_SESSIONS: usize = 200_000;

#[derive(Debug, Parser)]
#[command(
    name = "load",
    version,
    about = "Load tool for XMPP connection managers (BOSH, WebSocket) and servers",
    long_about = "Load tool for XMPP connection managers (BOSH XEP-0124/0206, WebSocket \
RFC 7395) and XMPP servers.\n\n\
Modes:\n  \
stub    a minimal XMPP server (plaintext, SASL PLAIN accepting anyone, bind, routing) \
to measure a connection manager alone\n  \
run     N client sessions in pairs echoing messages: round trips/s, latency percentiles \
(HDR histogram), losses, errors; JSON and HTML reports\n  \
memory  N idle logged-in sessions; VmRSS per session of the given processes\n  \
forward a bare TCP forwarder that copies bytes both ways without parsing: the floor \
of a relay, to put in a connection manager's place\n\n\
Every mode stops by itself and targets loopback addresses only unless --allow-remote. \
See `load <mode> --help`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Minimal XMPP server: any `to` domain, SASL PLAIN with any password,
    /// resource bind (also without SASL), legacy session, message routing
    /// between bound JIDs, iq ping. No STARTTLS. Prints "listening ADDR".
    Stub(StubArgs),
    /// Open --sessions client sessions (ramped), pair them (0,1), (2,3)...,
    /// echo messages for --duration, then report latency, throughput, losses
    /// and errors.
    Run(RunArgs),
    /// Open --sessions idle logged-in sessions and report the VmRSS growth of
    /// --pid processes per session after --settle.
    Memory(MemoryArgs),
    /// Bare TCP forwarder: connect each client to --to and copy bytes both
    /// ways without parsing them (one read buffer, at most one buffer held
    /// per direction, FINs passed on). Prints "listening ADDR", and its
    /// totals when --duration ends.
    Forward(ForwardArgs),
}

#[derive(Debug, Args)]
pub struct StubArgs {
    /// Address to listen on; repeat for several (e.g. 127.0.0.2:17222)
    #[arg(long, default_value = "127.0.0.1:5222", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Domain to answer as when a stream names none (any `to` is accepted)
    #[arg(long, default_value = "localhost", value_name = "D")]
    pub domain: String,
    /// Exit after this long (e.g. 90s, 10m, 1h)
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "T")]
    pub duration: Duration,
    /// Listen on non-loopback addresses too
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Address to listen on (e.g. 127.0.0.1:17223)
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address to connect each client to (e.g. the stub's)
    #[arg(long, value_name = "ADDR")]
    pub to: String,
    /// Bytes read at a time, which is also the most a direction holds
    /// while its destination is not taking them
    #[arg(
        long,
        default_value_t = crate::forward::DEFAULT_BUFFER as u64,
        value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024),
        value_name = "BYTES"
    )]
    pub buffer: u64,
    /// Exit after this long (e.g. 90s, 10m, 1h)
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "T")]
    pub duration: Duration,
    /// Listen on, and forward to, non-loopback addresses too
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebSocket (RFC 7395) to --url
    Ws,
    /// BOSH (XEP-0124/0206) to --bosh-url, two keep-alive HTTP connections per session
    Bosh,
    /// A plain XMPP client stream over TCP to --tcp (e.g. straight to the stub)
    Tcp,
    /// Half BOSH (even sessions), half WebSocket (odd): every pair crosses transports
    Mix,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// SASL PLAIN as <user><i> / <password>
    Plain,
    /// Bind without SASL (the stub allows it)
    None,
}

/// Options every client mode shares.
#[derive(Clone, Debug, Args)]
pub struct ClientArgs {
    /// Transport of the client sessions
    #[arg(long, value_enum, default_value = "ws")]
    pub transport: Transport,
    /// WebSocket endpoint
    #[arg(
        long,
        default_value = "ws://127.0.0.1:5280/xmpp-websocket",
        value_name = "URL"
    )]
    pub url: String,
    /// BOSH endpoint
    #[arg(
        long,
        default_value = "http://127.0.0.1:5280/http-bind",
        value_name = "URL"
    )]
    pub bosh_url: String,
    /// Direct XMPP-over-TCP address (--transport tcp)
    #[arg(long, default_value = "127.0.0.1:5222", value_name = "ADDR")]
    pub tcp: String,
    /// XMPP domain; a comma-separated list spreads sessions over several
    /// (session i uses domain i mod k)
    #[arg(
        long,
        default_value = "localhost",
        value_name = "D[,D...]",
        value_delimiter = ','
    )]
    pub domain: Vec<String>,
    /// How sessions log in
    #[arg(long, value_enum, default_value = "plain")]
    pub auth: AuthMode,
    /// User name prefix: session i logs in as <user><first-user + i>
    #[arg(long, default_value = "user", value_name = "PREFIX")]
    pub user: String,
    /// Number of the first user
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub first_user: u64,
    /// Password of every user
    #[arg(long, default_value = "password", value_name = "P")]
    pub password: String,
    /// Local addresses to connect from, used in turn (each gives its own
    /// ephemeral port range: >28k connections need several 127.0.0.x)
    #[arg(long, value_name = "IP[,IP...]", value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// Sessions started per second
    #[arg(long, default_value_t = 200.0, value_name = "R")]
    pub ramp: f64,
    /// A session not logged in this long after its start counts as a
    /// login timeout
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "T")]
    pub login_timeout: Duration,
    /// BOSH `wait`: how long the server may hold a request, in seconds
    #[arg(long, default_value_t = 60, value_name = "S")]
    pub bosh_wait: u32,
    /// BOSH sessions acknowledge responses (XEP-0124 §9: `ack='1'` at
    /// creation, then `ack` on every request): the server keeps each
    /// response until acknowledged, and reports one missing for long
    #[arg(long)]
    pub bosh_acks: bool,
    /// Allow non-loopback targets
    #[arg(long)]
    pub allow_remote: bool,
    /// Write the JSON report here
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Sessions to open (even: pairs are (0,1), (2,3)...)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub sessions: usize,
    /// Length of the message phase
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "T")]
    pub duration: Duration,
    /// Messages per second per pair; 0 = closed loop, each pair keeping
    /// --window messages in flight
    #[arg(long, default_value_t = 0.0, value_name = "R")]
    pub rate: f64,
    /// Messages in flight per pair in closed loop
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub window: u32,
    /// After the message phase, wait this long for echoes still on their way
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "T")]
    pub drain: Duration,
    /// After the drain, end every session cleanly (WebSocket `<close/>`,
    /// BOSH `type='terminate'`, TCP `</stream:stream>`); one the server has
    /// not closed within 5 s counts as a logout_timeout error
    #[arg(long)]
    pub logout: bool,
    /// Fault: cut this share (0 to 1) of BOSH requests' connections at a
    /// random point (before the request is written, mid-request, while
    /// held, or mid-response); each request then goes out again with its
    /// rid on a new connection, and responses are handled in rid order.
    /// The session creation request is never cut. Use with --bosh-acks
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub cut_connections: f64,
    /// Seed of the faults' random choices (default: from the clock; the
    /// report gives the one used)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Write an HTML page with the latency distribution and throughput over time
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Idle sessions to open
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub sessions: usize,
    /// Processes whose VmRSS is summed (the connection manager, the server)
    #[arg(
        long,
        value_name = "PID[,PID...]",
        value_delimiter = ',',
        required = true
    )]
    pub pid: Vec<u32>,
    /// Wait this long after the last session logged in before reading RSS
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "T")]
    pub settle: Duration,
}

/// `90`, `250ms`, `20s`, `10m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text}: expected a number with ms, s, m or h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !seconds.is_finite() || !(0.0..=7.0 * 86400.0).contains(&seconds) {
        return Err(format!("{text}: out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn command_line_parses_every_mode() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "load",
            "run",
            "--transport",
            "mix",
            "--sessions",
            "10",
            "--source",
            "127.0.0.2,127.0.0.3",
            "--domain",
            "d1,d2",
        ])
        .unwrap();
        let Mode::Run(run) = cli.mode else {
            panic!("run")
        };
        assert_eq!(run.client.transport, Transport::Mix);
        assert_eq!(run.client.source.len(), 2);
        assert_eq!(run.client.domain, ["d1", "d2"]);
        assert!(
            Cli::try_parse_from(["load", "memory"]).is_err(),
            "--pid is required"
        );
        let cli = Cli::try_parse_from([
            "load",
            "forward",
            "--listen",
            "127.0.0.1:17223",
            "--to",
            "127.0.0.1:17222",
        ])
        .unwrap();
        let Mode::Forward(forward) = cli.mode else {
            panic!("forward")
        };
        assert_eq!(forward.buffer, crate::forward::DEFAULT_BUFFER as u64);
        assert_eq!(forward.duration, Duration::from_secs(3600));
        for bad in [&["--to", "127.0.0.1:1"][..], &["--listen", "127.0.0.1:1"]] {
            let args = ["load", "forward"].iter().chain(bad);
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} alone");
        }
    }
}
