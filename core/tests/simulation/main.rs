//! The whole server, simulated: the endpoint driven by a seeded simulated
//! network and a virtual clock, with many BOSH and WebSocket clients
//! (input cut at random, delays, pipelining, new connections, abandoned
//! requests sent again, clients that stop reading, vanish or close) and a
//! simulated XMPP server (slow, closing, erroring, dying, refusing
//! connections). After every step the invariants are checked:
//! - every stanza reaches the other side once and in order while its
//!   session lives, and a clean close loses nothing;
//! - every session ends with a reason the client hears, unless the client
//!   left first;
//! - no output grows past its bound, no limit is exceeded;
//! - when every client has gone and the timers have run, every resource
//!   counter is back to zero.
//!
//! `cargo test` runs a fixed set of seeds; `SIM_SEEDS=N` runs seeds
//! 0..N, `SIM_SEED=S` replays one (exactly: the run depends on the seed
//! alone), `SIM_STEPS=N` changes the length of each run, and
//! `SIM_TRACE=TAG` prints what client TAG sent and received.

mod clients;
mod ledger;
mod net;
mod rng;
mod scenarios;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchboard_core::backend::tls;
use switchboard_core::dns;
use switchboard_core::endpoint::{Endpoint, Settings, Usage};

use clients::{BoshClient, Outcome, WsClient};
use ledger::Ledger;
use net::Net;
use rng::Rng;
use server::ServerConn;

/// Seeds `cargo test` runs.
const CI_SEEDS: u64 = 32;
/// Steps of the busy phase of one run (each 0–20 ms of virtual time).
const STEPS: u64 = 3000;
const MAX_BUFFER_BYTES: usize = 4096;
const MAX_ELEMENT_BYTES: usize = 8192;
const BUFFER_BUDGET: usize = 40 * 1024;
const SERVER: &str = "127.0.0.1:5222";

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

pub fn settings() -> Settings {
    // sim.test is plaintext: no certificate is ever judged.
    let clock = tls::Clock::default();
    let trust = tls::Trust::Roots(rustls::RootCertStore::empty());
    let tls = tls::client_config(trust, &clock).expect("ring supports the default versions");
    let server: SocketAddr = SERVER.parse().expect("an address");
    let mut settings = Settings::tight("sim.test", server, tls, clock);
    settings.limits.max_buffered_bytes = BUFFER_BUDGET;
    settings
}

#[derive(Default)]
struct Stats {
    steps: u64,
    sessions: u64,
    closed: u64,
    told: u64,
    vanished: u64,
    stanzas: u64,
    /// What the clients that were told why heard.
    reasons: BTreeMap<String, u64>,
    peak: Usage,
}

struct World {
    rng: Rng,
    net: Net,
    endpoint: Endpoint,
    ledger: Ledger,
    ws: Vec<WsClient>,
    bosh: Vec<BoshClient>,
    servers: Vec<ServerConn>,
    steps: u64,
    peak: Usage,
}

impl World {
    fn new(seed: u64) -> World {
        let now = Instant::now();
        let endpoint = Endpoint::new(settings(), dns::ResolverConfig::default(), now)
            .expect("the system random generator");
        World {
            rng: Rng::new(seed),
            net: Net::new(now),
            endpoint,
            ledger: Ledger::default(),
            ws: Vec::new(),
            bosh: Vec::new(),
            servers: Vec::new(),
            steps: 0,
            peak: Usage::default(),
        }
    }

    fn spawn(&mut self) {
        let tag = (self.ws.len() + self.bosh.len()) as u64 + 1;
        let peer: SocketAddr = format!("10.0.0.{}:{}", self.rng.between(1, 4), 40000 + tag)
            .parse()
            .expect("an address");
        let (net, endpoint, rng) = (&mut self.net, &mut self.endpoint, &mut self.rng);
        if rng.chance(500) {
            self.ws.push(WsClient::start(net, endpoint, rng, tag, peer));
        } else {
            self.bosh
                .push(BoshClient::start(net, endpoint, rng, tag, peer));
        }
    }

    /// One step of `dt`: the wire, the peers, the shell, the timers.
    fn step(&mut self, dt: Duration) -> Result<(), String> {
        self.steps += 1;
        self.net.now += dt;
        let now = self.net.now;
        self.net.advance(&mut self.endpoint, &mut self.rng);
        for conn in self.net.accepted_backends.drain(..) {
            self.servers.push(ServerConn::new(&mut self.rng, conn));
        }
        let flip = if self.net.server_down { 100 } else { 1 };
        if self.rng.chance(flip) {
            self.net.server_down = !self.net.server_down;
        }
        for server in &mut self.servers {
            server.step(&mut self.net, &mut self.rng, &mut self.ledger)?;
        }
        self.servers.retain(|s| !s.done);
        for client in &mut self.ws {
            client
                .step(&mut self.net, &mut self.rng, &mut self.ledger)
                .map_err(|e| format!("websocket client: {e}"))?;
        }
        for client in &mut self.bosh {
            client
                .step(
                    &mut self.net,
                    &mut self.endpoint,
                    &mut self.rng,
                    &mut self.ledger,
                )
                .map_err(|e| format!("bosh client: {e}"))?;
        }
        self.net.run_queue(&mut self.endpoint, &mut self.rng);
        if self.endpoint.poll_timeout().is_some_and(|at| at <= now) {
            self.endpoint.handle_timeout(now);
            self.net.run_commands(&mut self.endpoint, &mut self.rng);
        }
        self.check_bounds()
    }

    fn check_bounds(&mut self) -> Result<(), String> {
        let usage = self.endpoint.usage();
        self.peak.connections = self.peak.connections.max(usage.connections);
        self.peak.sessions = self.peak.sessions.max(usage.sessions);
        self.peak.buffered_bytes = self.peak.buffered_bytes.max(usage.buffered_bytes);
        let limits = settings().limits;
        if usage.connections > limits.max_connections || usage.sessions > limits.max_sessions {
            return Err(format!("over a limit: {usage:?}"));
        }
        // One read (16 KiB) may land on top of a full buffer.
        let bound = 2 * (MAX_BUFFER_BYTES + MAX_ELEMENT_BYTES + 16 * 1024);
        let largest = self.net.largest_output(&self.endpoint);
        if largest > bound {
            return Err(format!("an output holds {largest} bytes (bound {bound})"));
        }
        let budget = BUFFER_BUDGET + usage.connections * 2 * (16 * 1024 + MAX_ELEMENT_BYTES);
        if usage.buffered_bytes > budget {
            return Err(format!(
                "{} bytes buffered, over the budget ({budget})",
                usage.buffered_bytes
            ));
        }
        Ok(())
    }

    fn outcomes(&self) -> impl Iterator<Item = Option<&Outcome>> {
        self.ws
            .iter()
            .map(|c| c.outcome.as_ref())
            .chain(self.bosh.iter().map(|c| c.outcome.as_ref()))
    }
}

/// One run: a busy phase with clients arriving, then every client finishes,
/// then the timers run out.
fn run(seed: u64, steps: u64) -> Result<Stats, String> {
    let mut world = World::new(seed);
    for step in 0..steps {
        let live = world.outcomes().filter(Option::is_none).count();
        if step < steps * 7 / 10 && live < 30 && world.rng.chance(40) {
            world.spawn();
        }
        let dt = Duration::from_millis(world.rng.between(0, 20));
        world.step(dt)?;
    }
    for client in &mut world.ws {
        client.wind_down();
    }
    for client in &mut world.bosh {
        client.wind_down();
    }
    let deadline = world.net.now + Duration::from_secs(600);
    while world.outcomes().any(|o| o.is_none()) {
        if world.net.now > deadline {
            return Err("clients still busy ten minutes after winding down".into());
        }
        world.net.server_down = false;
        let dt = Duration::from_millis(world.rng.between(0, 50));
        world.step(dt)?;
    }
    // Everyone has left: inactivity, idle and linger timers run out.
    let quiet = world.net.now + Duration::from_secs(60);
    while world.net.now < quiet {
        world.step(Duration::from_millis(100))?;
    }
    let usage = world.endpoint.usage();
    if usage != Usage::default() || world.endpoint.sessions() != 0 {
        return Err(format!(
            "resources left after every client went: {usage:?}, {} sessions",
            world.endpoint.sessions()
        ));
    }
    let mut stats = Stats {
        peak: world.peak,
        steps: world.steps,
        stanzas: world.ledger.delivered(),
        ..Stats::default()
    };
    for outcome in world.outcomes().flatten() {
        stats.sessions += 1;
        match outcome {
            Outcome::Closed => stats.closed += 1,
            Outcome::Told(why) => {
                stats.told += 1;
                *stats.reasons.entry(why.clone()).or_default() += 1;
            }
            Outcome::Vanished => stats.vanished += 1,
        }
    }
    Ok(stats)
}

#[test]
fn the_whole_server_keeps_its_invariants_under_simulated_clients_and_faults() {
    let steps = env_number("SIM_STEPS").unwrap_or(STEPS);
    let seeds: Vec<u64> = match (env_number("SIM_SEED"), env_number("SIM_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(n)) => (0..n).collect(),
        (None, None) => (0..CI_SEEDS).collect(),
    };
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for &seed in &seeds {
        match run(seed, steps) {
            Ok(stats) => {
                total.steps += stats.steps;
                total.sessions += stats.sessions;
                total.closed += stats.closed;
                total.told += stats.told;
                total.vanished += stats.vanished;
                total.stanzas += stats.stanzas;
                total.peak.connections = total.peak.connections.max(stats.peak.connections);
                total.peak.sessions = total.peak.sessions.max(stats.peak.sessions);
                total.peak.buffered_bytes =
                    total.peak.buffered_bytes.max(stats.peak.buffered_bytes);
                for (why, n) in stats.reasons {
                    *total.reasons.entry(why).or_default() += n;
                }
            }
            Err(why) => failures.push(format!(
                "seed {seed}: {why}\n  replay: SIM_SEED={seed} SIM_STEPS={steps} cargo test -p switchboard-core --test simulation"
            )),
        }
    }
    println!(
        "simulation: {} seeds, {} steps, {} sessions ({} closed cleanly, {} told why, {} vanished), {} stanzas delivered",
        seeds.len(),
        total.steps,
        total.sessions,
        total.closed,
        total.told,
        total.vanished,
        total.stanzas
    );
    println!("simulation: sessions told why: {:?}", total.reasons);
    println!(
        "simulation: peak connections {}, sessions {}, buffered bytes {}",
        total.peak.connections, total.peak.sessions, total.peak.buffered_bytes
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        total.closed > 0 && total.stanzas > 0,
        "the runs did nothing"
    );
}
