#!/usr/bin/env node
// Reads the load tool's JSON reports (and the soak's samples) for
// tools/faults/run and tools/soak/run: one line of figures, and a check
// that exits 1 with the reasons when the figures are not what the fault
// allows. Node, because it comes with the machine (CI runs it too).
//
//   report.mjs counts FILE
//       sent, delivered, lost, duplicated (and the cuts, if any)
//   report.mjs clean FILE SESSIONS
//       every session established, no error, nothing lost or duplicated,
//       and every session closed cleanly when the run logged out
//   report.mjs ends FILE SESSIONS SINCE_MS WITHIN_MS KIND...
//       every session ended with one of the KINDs, none before SINCE_MS (a
//       Unix time in ms: the fault) and all within WITHIN_MS of it
//   report.mjs soak CSV FROM_S TO_S TOLERANCE
//       the samples (t_s,rss_kib,fds,up,phase) from FROM_S to TO_S: RSS
//       within TOLERANCE (0.05 = ±5%) of its value at FROM_S; prints the
//       curve's summary
import { readFileSync } from 'node:fs';

const [command, file, ...args] = process.argv.slice(2);
const problems = [];

function load(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function counts(r) {
  let line = `sent ${r.sent}, delivered ${r.received}, lost ${r.lost}, duplicated ${r.duplicated}`;
  const f = r.faults;
  if (f) {
    line += `; ${f.cuts} connections cut (${f.cut_before_request} before the request, ` +
      `${f.cut_mid_request} mid-request, ${f.cut_held} held, ${f.cut_mid_response} mid-response), ` +
      `${f.resent} requests sent again, seed ${f.seed}`;
  }
  return line;
}

function expectSessions(r, sessions) {
  if (r.sessions_established !== sessions) {
    problems.push(`${r.sessions_established} of ${sessions} sessions established`);
  }
}

switch (command) {
  case 'counts': {
    console.log(counts(load(file)));
    break;
  }
  case 'clean': {
    const r = load(file);
    const sessions = Number(args[0]);
    expectSessions(r, sessions);
    if (Object.keys(r.errors).length > 0) problems.push(`errors ${JSON.stringify(r.errors)}`);
    if (r.lost !== 0) problems.push(`${r.lost} lost`);
    if (r.duplicated !== 0) problems.push(`${r.duplicated} duplicated`);
    if (!(r.received > 0)) problems.push('nothing delivered');
    if (r.sessions_closed !== undefined && r.sessions_closed !== sessions) {
      problems.push(`${r.sessions_closed} of ${sessions} sessions closed cleanly`);
    }
    break;
  }
  case 'ends': {
    const r = load(file);
    const [sessions, since, within] = args.slice(0, 3).map(Number);
    const kinds = args.slice(3);
    expectSessions(r, sessions);
    let ended = 0;
    for (const [kind, e] of Object.entries(r.ends ?? {})) {
      ended += e.count;
      const first = e.first_unix_ms - since;
      const last = e.last_unix_ms - since;
      console.log(`${kind}: ${e.count} sessions, ${first} to ${last} ms after the fault`);
      if (!kinds.includes(kind)) problems.push(`${e.count} ended with ${kind}`);
      if (first < 0) problems.push(`${kind}: ended ${-first} ms before the fault`);
      if (last > within) problems.push(`${kind}: the last ended ${last} ms after the fault`);
    }
    if (ended !== sessions) problems.push(`${ended} of ${sessions} sessions ended`);
    break;
  }
  case 'soak': {
    const [from, to, tolerance] = args.map(Number);
    const rows = readFileSync(file, 'utf8').trim().split('\n').slice(1)
      .map((line) => line.split(','))
      .map(([t, rss, fds, up, phase]) => ({ t: Number(t), rss: Number(rss), fds: Number(fds), up, phase }));
    const window = rows.filter((row) => row.t >= from && row.t <= to);
    if (window.length < 2) {
      problems.push(`${window.length} samples from ${from} s to ${to} s`);
      break;
    }
    const base = window[0].rss;
    const rss = window.map((row) => row.rss);
    const fds = window.map((row) => row.fds);
    const [min, max] = [Math.min(...rss), Math.max(...rss)];
    const last = rss[rss.length - 1];
    const pct = (v) => `${(((v - base) / base) * 100).toFixed(1)}%`;
    console.log(`RSS from ${from} s to ${to} s (${window.length} samples): after warm-up ${base} KiB, ` +
      `min ${min} (${pct(min)}), max ${max} (${pct(max)}), last ${last} KiB (${pct(last)}); ` +
      `descriptors ${Math.min(...fds)} to ${Math.max(...fds)}`);
    for (const row of window) {
      if (Math.abs(row.rss - base) > base * tolerance) {
        problems.push(`RSS ${row.rss} KiB at ${row.t} s is ${pct(row.rss)} from ${base} KiB`);
        break;
      }
    }
    break;
  }
  default:
    console.error('usage: report.mjs counts|clean|ends|soak FILE ...');
    process.exit(2);
}

if (problems.length > 0) {
  for (const p of problems) console.error(`report: ${p}`);
  process.exit(1);
}
