//! `run` and `memory` from their command-line arguments to a report: the
//! checks on the arguments, the plan, the driver, and the RSS readings.

use std::rc::Rc;

use crate::cli::{AuthMode, ClientArgs, MemoryArgs, RunArgs, Transport, MAX_SESSIONS};
use crate::client::driver::{Cuts, Driver, Layout, Outcome, Plan, Traffic};
use crate::net::{raise_fd_limit, Endpoint};
use crate::report::{Memory, Report};

/// Connections each session holds at most (BOSH keeps two).
fn conns_per_session(transport: Transport) -> u64 {
    match transport {
        Transport::Bosh | Transport::Mix => 2,
        Transport::Ws | Transport::Tcp => 1,
    }
}

/// Check the shared options and build the plan.
fn plan(client: &ClientArgs, sessions: usize) -> Result<Plan, String> {
    if sessions == 0 || sessions > MAX_SESSIONS {
        return Err(format!("--sessions must be 1..={MAX_SESSIONS}"));
    }
    if !(client.ramp.is_finite() && client.ramp > 0.0) {
        return Err("--ramp must be above 0".into());
    }
    if client.domain.is_empty()
        || client
            .domain
            .iter()
            .any(|d| d.is_empty() || d.contains(['\'', '"', '<', '&']))
    {
        return Err("--domain must be plain domain names".into());
    }
    if client.bosh_wait == 0 {
        return Err("--bosh-wait must be at least 1".into());
    }
    let remote = client.allow_remote;
    let needs_ws = matches!(client.transport, Transport::Ws | Transport::Mix);
    let needs_bosh = matches!(client.transport, Transport::Bosh | Transport::Mix);
    let ws = needs_ws
        .then(|| Endpoint::from_url(&client.url, "ws", remote).map(Rc::new))
        .transpose()?;
    let bosh = needs_bosh
        .then(|| Endpoint::from_url(&client.bosh_url, "http", remote).map(Rc::new))
        .transpose()?;
    let tcp = (client.transport == Transport::Tcp)
        .then(|| Endpoint::from_addr(&client.tcp, remote).map(Rc::new))
        .transpose()?;
    if !remote {
        if let Some(ip) = client.source.iter().find(|ip| !ip.is_loopback()) {
            return Err(format!(
                "--source {ip} is not a loopback address (--allow-remote)"
            ));
        }
    }
    let wanted = sessions as u64 * conns_per_session(client.transport) + 64;
    let limit = raise_fd_limit(wanted);
    if limit < wanted {
        eprintln!(
            "load: open files limit is {limit}, below the ~{wanted} this run needs; \
             raise it (ulimit -n) or expect fd_limit errors"
        );
    }
    Ok(Plan {
        layout: match client.transport {
            Transport::Ws => Layout::Ws,
            Transport::Bosh => Layout::Bosh,
            Transport::Tcp => Layout::Tcp,
            Transport::Mix => Layout::Mix,
        },
        ws,
        bosh,
        tcp,
        domains: client.domain.iter().map(|d| Rc::from(d.as_str())).collect(),
        plain: (client.auth == AuthMode::Plain).then(|| {
            (
                client.user.clone(),
                client.first_user,
                client.password.clone(),
            )
        }),
        sources: client.source.clone(),
        sessions,
        ramp: client.ramp,
        login_timeout: client.login_timeout,
        bosh_wait: client.bosh_wait,
        bosh_acks: client.bosh_acks,
        cuts: None,
        traffic: None,
        settle: Default::default(),
        progress: true,
    })
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Ws => "ws",
        Transport::Bosh => "bosh",
        Transport::Tcp => "tcp",
        Transport::Mix => "mix",
    }
}

fn target(client: &ClientArgs) -> String {
    match client.transport {
        Transport::Ws => client.url.clone(),
        Transport::Bosh => client.bosh_url.clone(),
        Transport::Tcp => client.tcp.clone(),
        Transport::Mix => format!("{} {}", client.bosh_url, client.url),
    }
}

/// A finished `run`: the report and the histogram behind it.
pub struct RunResult {
    pub report: Report,
    pub outcome: Outcome,
}

/// `load run`. `Err` is a usage or setup problem (exit 2).
pub fn run(args: &RunArgs, progress: bool) -> Result<RunResult, String> {
    if !args.sessions.is_multiple_of(2) {
        return Err("--sessions must be even: sessions are paired".into());
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err("--rate must be 0 (closed loop) or above".into());
    }
    if args.window == 0 {
        return Err("--window must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.cut_connections) {
        return Err("--cut-connections must be a share from 0 to 1".into());
    }
    let bosh = matches!(args.client.transport, Transport::Bosh | Transport::Mix);
    if args.cut_connections > 0.0 && !bosh {
        return Err("--cut-connections cuts BOSH connections: --transport bosh or mix".into());
    }
    let mut plan = plan(&args.client, args.sessions)?;
    plan.progress = progress;
    plan.cuts = (args.cut_connections > 0.0).then(|| Cuts {
        share: args.cut_connections,
        seed: args.seed.unwrap_or_else(clock_seed),
    });
    plan.traffic = Some(Traffic {
        duration: args.duration,
        rate: args.rate,
        window: args.window,
        drain: args.drain,
        logout: args.logout,
    });
    let mut driver = Driver::new(plan).map_err(|e| e.to_string())?;
    driver.run().map_err(|e| format!("poll: {e}"))?;
    let outcome = driver.outcome();
    drop(driver);
    let report = Report::run(
        transport_name(args.client.transport),
        &target(&args.client),
        &outcome,
    );
    Ok(RunResult { report, outcome })
}

/// A seed from the clock, for runs not asked to repeat one.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// `load memory`.
pub fn memory(args: &MemoryArgs, progress: bool) -> Result<Report, String> {
    if args.client.transport == Transport::Tcp {
        return Err("memory measures a connection manager: --transport ws, bosh or mix".into());
    }
    let mut plan = plan(&args.client, args.sessions)?;
    plan.progress = progress;
    plan.settle = args.settle;
    let before = rss_kib(&args.pid)?;
    let mut driver = Driver::new(plan).map_err(|e| e.to_string())?;
    driver.run().map_err(|e| format!("poll: {e}"))?;
    let after = rss_kib(&args.pid)?;
    let outcome = driver.outcome();
    drop(driver);
    let per_session = if outcome.sessions_established > 0 {
        (after as f64 - before as f64) / outcome.sessions_established as f64
    } else {
        0.0
    };
    Ok(Report::memory(
        transport_name(args.client.transport),
        &target(&args.client),
        &outcome,
        Memory {
            pids: args.pid.clone(),
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_session: per_session,
        },
    ))
}

/// Sum of VmRSS over `pids`, from /proc/PID/status.
pub fn rss_kib(pids: &[u32]) -> Result<u64, String> {
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("pid {pid}: {e}"))?;
        total += vm_rss(&status).ok_or_else(|| format!("pid {pid}: no VmRSS line"))?;
    }
    Ok(total)
}

/// The `VmRSS:  1234 kB` figure of a /proc status file.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_the_status_text() {
        let status = "Name:\tswitchboard\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(vm_rss(status), Some(5120));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        let own = rss_kib(&[std::process::id()]).unwrap();
        assert!(own > 0);
    }
}
