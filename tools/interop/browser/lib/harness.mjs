// What the browser test needs around the browser: settings from the
// environment, bounded waits, a watcher over switchboard's log, and a page
// that records everything it did (requests, WebSockets, console, errors).
//   XMPP_BOSH_URL, XMPP_WS_URL  the endpoints under test (required)
//   XMPP_DOMAIN, XMPP_PASSWORD  localhost, "password"
//   BROWSER_PAGE_PORT           the page's own origin, http://127.0.0.1:PORT (15380)
//   BROWSER_FOREIGN_PORT        another origin, one switchboard must refuse (15381)
//   SWITCHBOARD_LOG             switchboard's log file; when unset (a run against
//                               Prosody's own endpoints) the checks that read it
//                               and the refused-origin test are skipped
//   CHROMIUM                    the browser binary (default: Debian's chromium)
//   BROWSER_STEP_MS             the limit of every single wait (15000)
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tools/interop/run sets it)`);
  return value;
}

export const BOSH_URL = required('XMPP_BOSH_URL');
export const WS_URL = required('XMPP_WS_URL');
export const DOMAIN = process.env.XMPP_DOMAIN ?? 'localhost';
export const PASSWORD = process.env.XMPP_PASSWORD ?? 'password';
export const PAGE_PORT = Number(process.env.BROWSER_PAGE_PORT ?? 15380);
export const FOREIGN_PORT = Number(process.env.BROWSER_FOREIGN_PORT ?? 15381);
export const PAGE_ORIGIN = `http://127.0.0.1:${PAGE_PORT}`;
export const FOREIGN_ORIGIN = `http://127.0.0.1:${FOREIGN_PORT}`;
export const SWITCHBOARD_LOG = process.env.SWITCHBOARD_LOG || null;
export const STEP_MS = Number(process.env.BROWSER_STEP_MS ?? 15000);

/** Debian's chromium: the binary itself, not the /usr/bin wrapper script. */
export function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  if (existsSync('/usr/lib/chromium/chromium')) return '/usr/lib/chromium/chromium';
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no chromium found: install Debian\'s chromium package or set CHROMIUM');
  }
}

/** A token unique to this run, so a message left from another run can't pass. */
export function token(label) {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(promise, what, ms = STEP_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * switchboard's log, read from a mark on: the test takes a mark before a
 * step and looks only at the lines the step caused.
 */
export class SwitchboardLog {
  constructor(path) {
    this.path = path;
  }

  #text() {
    return readFileSync(this.path, 'utf8');
  }

  /** Where the log ends now. */
  mark() {
    return Buffer.byteLength(this.#text());
  }

  /** The complete lines written since `mark`. */
  linesSince(mark) {
    const text = Buffer.from(this.#text()).subarray(mark).toString('utf8');
    const lines = text.split('\n');
    lines.pop(); // a line still being written, or the empty string after the last newline
    return lines;
  }

  /** The first line since `mark` matching `re` (its match), waiting up to `ms`. */
  async waitFor(re, mark, what, ms = STEP_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
      for (const line of this.linesSince(mark)) {
        const m = line.match(re);
        if (m) return m;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${ms} ms waiting in switchboard's log for ${what} (${re}); lines since the step began:\n${this.linesSince(mark).join('\n') || '(none)'}`);
      }
      await sleep(100);
    }
  }

  /** The last `n` lines, for a failure report. */
  tail(n = 40) {
    try {
      return this.#text().trimEnd().split('\n').slice(-n).join('\n');
    } catch (e) {
      return `(cannot read ${this.path}: ${e.message})`;
    }
  }
}

/**
 * A browser context (its own storage: one user) with one page, recording
 * every HTTP request with its response headers, every WebSocket with its
 * frames and errors, console messages and uncaught errors.
 */
export async function openRecordedPage(browser, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const rec = { name, context, page, requests: [], websockets: [], console: [], errors: [] };
  const stamp = () => new Date().toISOString().slice(11, 23);
  context.on('request', (request) => {
    const entry = { method: request.method(), url: request.url(), body: request.postData(), status: null, headers: null };
    rec.requests.push(entry);
    request.response().then((response) => {
      if (response) {
        entry.status = response.status();
        entry.headers = response.headers();
      }
    }, () => {});
  });
  page.on('websocket', (ws) => {
    const entry = { url: ws.url(), sent: [], received: [], errors: [], closed: false };
    rec.websockets.push(entry);
    ws.on('framesent', (f) => entry.sent.push(String(f.payload)));
    ws.on('framereceived', (f) => entry.received.push(String(f.payload)));
    ws.on('socketerror', (e) => entry.errors.push(e));
    ws.on('close', () => { entry.closed = true; });
  });
  page.on('console', (m) => rec.console.push(`${stamp()} ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => {
    rec.errors.push(e);
    rec.console.push(`${stamp()} uncaught: ${e.stack ?? e}`);
  });
  return rec;
}

/** The console of a recorded page, last `n` lines, for a failure report. */
export function consoleTail(rec, n = 120) {
  const lines = rec.console.slice(-n).map((l) => (l.length > 2000 ? `${l.slice(0, 2000)}…` : l));
  return lines.join('\n') || '(empty)';
}
