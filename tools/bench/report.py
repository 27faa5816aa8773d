#!/usr/bin/env python3
"""Markdown tables from one tools/bench/compare run.

Usage: report.py RAW_DIR > results.md

RAW_DIR holds meta.json (the run's parameters), manifest.tsv (one line per
measurement: kind, profile, system, base path, CPU seconds per process,
exit status, note, CPU seconds of the load tool or wrk itself) and, per
measurement, BASE.json (the load tool's report, tools/load/src/report.rs) or
BASE.out (wrk's output).
"""

import json
import re
import sys
from collections import OrderedDict
from pathlib import Path

REFERENCE = "switchboard → Prosody"
# The same-host deployment: no TLS on the loopback link to Prosody.
PLAIN_REFERENCE = "switchboard → Prosody, loopback plaintext"
STUB_REFERENCE = "switchboard → stub"
# The load tool's bare byte forwarder in switchboard's place: the floor of a relay.
FORWARDER = "forwarder → stub"
# The relay process of each, whose CPU per round trip is compared.
RELAY_PART = {STUB_REFERENCE: "switchboard", FORWARDER: "forward"}
WRK_REFERENCE = "switchboard BOSH, unknown sid"


def reference_for(system, default):
    """The switchboard row a row is compared with: the one with the same backend
    (the loopback-plaintext row is a reference of its own: the targets table
    compares it with Prosody)."""
    if system == PLAIN_REFERENCE:
        return system
    return STUB_REFERENCE if system.endswith("→ stub") else default


class Row:
    """The runs of one system in one profile, in the order they ran."""

    def __init__(self, system):
        self.system = system
        self.runs = []  # dicts: throughput, p50, p99, cpu, errors, ...
        self.notes = []
        self.shares = []

    def ok_runs(self):
        return [r for r in self.runs if r.get("value") is not None]

    def mean(self, key):
        values = [r[key] for r in self.ok_runs() if r.get(key) is not None]
        return sum(values) / len(values) if values else None


def parse_cpu(text):
    parts = OrderedDict()
    for item in filter(None, text.split(";")):
        name, _, secs = item.partition("=")
        parts[name] = float(secs)
    return parts


def load_report(base, kind):
    path = Path(base + ".json")
    if not path.is_file():
        return None, "no report written"
    try:
        report = json.loads(path.read_text())
    except ValueError as e:
        return None, f"unreadable report: {e}"
    if kind == "memory":
        memory = report.get("memory") or {}
        value = memory.get("kib_per_session")
    else:
        value = report.get("throughput_per_s")
    if not report.get("sessions_established"):
        value = None  # nothing was measured: no figure, only the notes
    latency = report.get("latency_ms") or {}
    run = {
        "value": value,
        "p50": latency.get("p50"),
        "p99": latency.get("p99"),
        "sessions": report.get("sessions_established"),
        "requested": report.get("sessions_requested"),
        "lost": report.get("lost") or 0,
        "sent": report.get("sent") or 0,
        "received": report.get("received") or 0,
        "errors": report.get("errors") or {},
    }
    return run, None


WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_report(base):
    path = Path(base + ".out")
    if not path.is_file():
        return None, "no wrk output"
    text = path.read_text()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rate:
        return None, "wrk printed no rate"
    run = {"value": float(rate.group(1)), "errors": {}, "lost": 0}
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m:
            run[key] = float(m.group(1)) * WRK_UNITS[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        run["errors"]["non-2xx"] = int(non2xx.group(1))
    socket = re.search(r"Socket errors:(.*)", text)
    if socket:
        run["errors"]["socket"] = socket.group(1).strip()
    return run, None


def read_manifest(raw):
    profiles = OrderedDict()
    for line in (raw / "manifest.tsv").read_text().splitlines():
        kind, profile, system, base, cpu, status, note, client = (line.split("\t") + [""] * 8)[:8]
        rows = profiles.setdefault(profile, OrderedDict())
        row = rows.setdefault(system, Row(system))
        if kind == "share":
            row.shares.append(note)
            continue
        if status == "skipped":
            row.notes.append(f"not run: {note}")
            continue
        if kind == "http":
            run, why = wrk_report(base)
        else:
            run, why = load_report(base, kind)
        if run is None:
            row.notes.append(f"failed: {note or why}")
            row.runs.append({"value": None})
            continue
        if status != "0":
            row.notes.append(f"ended badly: {note}")
        run["cpu"] = parse_cpu(cpu)
        run["client_cpu"] = float(client) if client else None
        row.runs.append(run)
    return profiles


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def cpu_cell(row):
    runs = [r for r in row.ok_runs() if r.get("cpu")]
    if not runs:
        return "–"
    names = list(runs[0]["cpu"])
    means = OrderedDict((n, sum(r["cpu"].get(n, 0.0) for r in runs) / len(runs)) for n in names)
    total = sum(means.values())
    if len(means) == 1:
        return f"{total:.1f}"
    return f"{total:.1f} (" + " + ".join(f"{n} {v:.1f}" for n, v in means.items()) + ")"


def value_cell(row, digits=0):
    values = [r["value"] for r in row.ok_runs()]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ({', '.join(fmt(v, digits) for v in values)})"


def run_notes(row):
    notes = list(row.notes)
    for r in row.runs:
        if r.get("requested") and r.get("sessions") is not None and r["sessions"] < r["requested"]:
            notes.append(f"{r['sessions']} of {r['requested']} sessions")
        if r.get("sent") and not r.get("received"):
            notes.append(f"none of {r['sent']} messages came back")
        elif r.get("lost"):
            notes.append(f"lost {r['lost']}")
        errors = {k: v for k, v in (r.get("errors") or {}).items() if v}
        if errors:
            notes.append("errors " + ", ".join(f"{k}: {v}" for k, v in errors.items()))
    return "; ".join(dict.fromkeys(notes))


def rate_table(title, rows, ref_name, unit, p99_ratio, out):
    """Rates with latency: echo round trips (p99 compared too) or requests."""
    digits = 1 if p99_ratio else 2
    ratios = ["rt/s", "p99"] if p99_ratio else [unit]
    out.append(f"### {title}\n")
    out.append(f"| system | {unit} (runs) | p50 ms | p99 ms | CPU s per run | "
               + " | ".join(f"switchboard ÷ this, {r}" for r in ratios) + " | note |")
    out.append("|---|---|---|---|---|" + "---|" * len(ratios) + "---|")
    for row in rows.values():
        ref = rows.get(reference_for(row.system, ref_name))
        is_ref = row is ref
        cells = [
            f"**{row.system}**" if is_ref else row.system,
            value_cell(row),
            fmt(row.mean("p50"), digits),
            fmt(row.mean("p99"), digits),
            cpu_cell(row),
        ]
        for key in ["value", "p99"][: len(ratios)]:
            cells.append("" if is_ref else fmt_ratio(ratio(ref and ref.mean(key), row.mean(key))))
        cells.append(run_notes(row))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")


def memory_table(profiles, out, sessions):
    out.append(f"### Idle memory per session ({sessions:,} logged-in sessions, fresh processes)\n")
    out.append("| system | transport | KiB per session | switchboard ÷ this | note |")
    out.append("|---|---|---|---|---|")
    for transport, label in (("bosh", "BOSH"), ("ws", "WebSocket")):
        rows = profiles.get(f"{transport}-memory", {})
        for row in rows.values():
            ref = rows.get(reference_for(row.system, REFERENCE))
            is_ref = row is ref
            notes = [run_notes(row)] if run_notes(row) else []
            for share in row.shares if row.ok_runs() else []:
                part, _, kib = share.partition("=")
                notes.append(f"{part}'s own share: {kib} KiB per session (peak RSS growth)")
            out.append("| {} | {} | {} | {} | {} |".format(
                f"**{row.system}**" if is_ref else row.system, label,
                value_cell(row, 1),
                "" if is_ref else fmt_ratio(ratio(ref and ref.mean("value"), row.mean("value"))),
                "; ".join(notes)))
    out.append("")


def cpu_per_round_trip(row, part):
    """CPU µs per echoed round trip over all of a row's runs: of the process
    PART, or with PART None of the whole system (the load tool and every
    listed process). None unless every run has what it needs."""
    runs = row.ok_runs() if row else []
    secs = trips = 0.0
    for r in runs:
        cpu = r.get("cpu") or {}
        if not r.get("received") or (part and part not in cpu):
            return None
        if part:
            secs += cpu[part]
        elif r.get("client_cpu") is None:
            return None
        else:
            secs += sum(cpu.values()) + r["client_cpu"]
        trips += r["received"]
    return secs / trips * 1e6 if runs else None


def relay_profiles(profiles, wide):
    """(window, profile) of the echo profiles with both switchboard → stub and
    the forwarder."""
    return [(window, profile) for window, profile in ((1, "ws-echo"), (wide, f"ws-echo-w{wide}"))
            if {STUB_REFERENCE, FORWARDER} <= set(profiles.get(profile, {}))]


def relay_ratios(rows):
    """switchboard ÷ forwarder: round trips/s, relay CPU per round trip,
    whole-system CPU per round trip."""
    sb, fw = rows.get(STUB_REFERENCE), rows.get(FORWARDER)
    return (ratio(sb and sb.mean("value"), fw and fw.mean("value")),
            ratio(cpu_per_round_trip(sb, RELAY_PART[STUB_REFERENCE]),
                  cpu_per_round_trip(fw, RELAY_PART[FORWARDER])),
            ratio(cpu_per_round_trip(sb, None), cpu_per_round_trip(fw, None)))


def relay_table(profiles, wide, out):
    out.append("### switchboard against the bare forwarder (→ stub, echo)\n")
    out.append("| window | system | round trips/s (runs) | p50 ms | p99 ms | relay CPU s per run "
               "| relay CPU µs per round trip | whole-system CPU µs per round trip | note |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for window, profile in relay_profiles(profiles, wide):
        rows = profiles[profile]
        for system in (STUB_REFERENCE, FORWARDER):
            row, part = rows[system], RELAY_PART[system]
            runs = [r for r in row.ok_runs() if part in (r.get("cpu") or {})]
            relay_cpu = sum(r["cpu"][part] for r in runs) / len(runs) if runs else None
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                window, system, value_cell(row), fmt(row.mean("p50"), 2), fmt(row.mean("p99"), 2),
                fmt(relay_cpu, 1), fmt(cpu_per_round_trip(row, part), 1),
                fmt(cpu_per_round_trip(row, None), 1), run_notes(row)))
        thr, relay, whole = relay_ratios(rows)
        out.append(f"| {window} | **switchboard ÷ forwarder** | {fmt_ratio(thr)} | | | "
                   f"| {fmt_ratio(relay)} | {fmt_ratio(whole)} | |")
    out.append("")


def target_rows(profiles, wide):
    """(target, measured, verdict) for each of the issue's targets."""

    def get(profile, system, key="value"):
        row = profiles.get(profile, {}).get(system)
        return row.mean(key) if row else None

    def verdict(ok):
        return "not measured" if ok is None else ("met" if ok else "missed")

    rows = []
    for reference, link in ((REFERENCE, "STARTTLS to Prosody"),
                            (PLAIN_REFERENCE, "loopback plaintext to Prosody")):
        thr = ratio(get("bosh-echo", reference), get("bosh-echo", "Prosody"))
        p99 = ratio(get("bosh-echo", reference, "p99"), get("bosh-echo", "Prosody", "p99"))
        ok = None if thr is None or p99 is None else (thr >= 1.5 and p99 <= 0.5)
        rows.append((f"BOSH echo ≥ 1.5× Prosody's mod_bosh, p99 ≤ 0.5× ({link})",
                     f"{fmt_ratio(thr)} round trips/s, {fmt_ratio(p99)} p99", verdict(ok)))
        thr = ratio(get("ws-echo", reference), get("ws-echo", "Prosody"))
        rows.append((f"WebSocket echo ≥ 1.2× Prosody's mod_websocket ({link})", fmt_ratio(thr),
                     verdict(None if thr is None else thr >= 1.2)))
    thr = ratio(get("ws-echo", "switchboard → stub"), get("ws-echo", "direct TCP → stub"))
    rows.append(("WebSocket relay to the stub ≥ 0.5× direct TCP to it", fmt_ratio(thr),
                 verdict(None if thr is None else thr >= 0.5)))
    for window, profile in ((1, "ws-echo"), (wide, f"ws-echo-w{wide}")):
        thr, relay, whole = relay_ratios(profiles.get(profile, {}))
        rows.append((f"WebSocket echo, window {window}: switchboard → stub ≥ 0.8× the forwarder's "
                     "round trips/s", fmt_ratio(thr), verdict(None if thr is None else thr >= 0.8)))
        rows.append((f"WebSocket echo, window {window}: switchboard's CPU per round trip ≤ 1.5× "
                     "the forwarder's (relay process only)",
                     f"{fmt_ratio(relay)} (whole system {fmt_ratio(whole)})",
                     verdict(None if relay is None else relay <= 1.5)))
    rate = ratio(get("http-rate", WRK_REFERENCE), get("http-rate", "nginx static file"))
    rows.append(("BOSH request rate ≥ 0.7× nginx's static rate (wrk)", fmt_ratio(rate),
                 verdict(None if rate is None else rate >= 0.7)))
    for transport, label, bound in (("ws", "WebSocket", 4.0), ("bosh", "BOSH", 8.0)):
        kib = get(f"{transport}-memory", "switchboard → stub")
        rows.append((f"idle {label} session ≤ {bound:g} KiB, plaintext backend",
                     "–" if kib is None else f"{kib:.1f} KiB",
                     verdict(None if kib is None else kib <= bound)))
    return rows


NOTES = [
    "How to read it:",
    "- switchboard → Prosody negotiates STARTTLS (verified against the run's CA) on every "
    "backend link, so both it and Prosody pay for TLS there; switchboard → Prosody, loopback "
    "plaintext is a second switchboard with `backend.loopback_plaintext = true`, the "
    "deployment with both on one host: Prosody offers STARTTLS without requiring it and "
    "switchboard skips it on the loopback link. node-xmpp-bosh → Prosody runs in plaintext "
    "too (its STARTTLS needs a crypto API Node no longer has). Prosody's own endpoints and "
    "switchboard → stub have no TLS anywhere.",
    "- node-xmpp-bosh has no WebSocket row: its WebSocket speaks the pre-RFC 7395 framing.",
    "- forwarder → stub is the load tool's plain TCP client through `load forward`, a bare "
    "byte forwarder (one mio loop, one read buffer, no parsing), to the same stub: the floor "
    "of a relay in switchboard's place. Its clients speak plain XMPP over TCP where "
    "switchboard's speak WebSocket, so the load tool does a little less work per round trip "
    "there. Relay CPU per round trip is the CPU of the relay process alone (switchboard or "
    "forward) over the round trips echoed in the run (warm-up included); whole-system adds "
    "the stub and the load tool.",
    "- wrk against switchboard and Prosody POSTs a BOSH `<body/>` naming a session that does "
    "not exist: each reads the request, parses the body, looks the sid up and answers 200 "
    "with a terminate body (item-not-found, 95 bytes from both). nginx serves the same "
    "95 bytes from a file. nginx and switchboard each run as one process with one thread.",
    "- CPU s: utime + stime from /proc of the listed processes over the run (the load tool "
    "and wrk use the other share of the 2 cores and are counted only in the whole-system "
    "figures).",
    "- Memory: the load tool's VmRSS growth of the measured processes per idle logged-in "
    "session (a BOSH session keeps one request held), each system on a freshly started "
    "process; a backend's own share behind a front-end is its peak RSS (VmHWM) growth "
    "over the run per session.",
]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RAW_DIR")
    raw = Path(sys.argv[1])
    meta = json.loads((raw / "meta.json").read_text())
    profiles = read_manifest(raw)
    wide = meta.get("wide_window", 8)
    out = []
    out.append(f"## Comparison run {meta['date']} ({meta['mode']}, commit {meta['commit']})\n")
    out.append(
        f"{meta['cores']} cores shared by the load tool and the servers; everything on loopback. "
        f"Echo: {meta['echo_sessions'] // 2} pairs, closed loop (one message in flight per pair), "
        f"{meta['echo_seconds']} s per run; Prosody and the two switchboard → Prosody rows "
        f"run A-B-C … C-B-A around the others (values of each run in brackets); "
        f"switchboard → stub and the forwarder run A-B-B-A, also with {wide} messages in "
        f"flight per pair. wrk: 1 thread, 50 connections, "
        f"{meta['wrk_seconds']} s. Prosody {meta['prosody']}, ejabberd {meta['ejabberd']}, "
        f"nginx {meta['nginx']}, node-xmpp-bosh 0.7.10 on Node {meta['node']}. "
        f"Load average (1, 5, 15 min) before the profiles: {meta['loadavg_before']}; "
        f"after: {meta['loadavg_after']}.\n")
    for profile, title in (("bosh-echo", "BOSH echo"), ("ws-echo", "WebSocket echo"),
                           (f"ws-echo-w{wide}", f"WebSocket echo, {wide} messages in flight per pair")):
        if profile in profiles:
            rate_table(title, profiles[profile], REFERENCE, "round trips/s", True, out)
    if "http-rate" in profiles:
        rate_table("HTTP request rate (wrk)", profiles["http-rate"], WRK_REFERENCE, "requests/s", False, out)
    relay_table(profiles, wide, out)
    memory_table(profiles, out, meta["memory_sessions"])
    out.append("### Targets\n")
    out.append("| target | measured | verdict |")
    out.append("|---|---|---|")
    for target, measured, verdict in target_rows(profiles, wide):
        out.append(f"| {target} | {measured} | {verdict} |")
    out.append("")
    out.extend(NOTES)
    print("\n".join(out))


if __name__ == "__main__":
    main()
