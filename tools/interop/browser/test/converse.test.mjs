// Converse.js in a real browser (Debian's chromium, headless, driven by
// playwright-core) through switchboard: alice over BOSH, bob over WebSocket,
// each in a browser context of their own, on a page served from another
// origin than switchboard's (so BOSH goes through CORS and the WebSocket
// upgrade carries an Origin switchboard checks). They log in, chat both ways
// by typing into Converse's chat boxes, alice's page is reloaded and must
// re-attach the same BOSH session (sid kept in sessionStorage) and chat on,
// and both log out; switchboard's log must show each session start once and
// end the way the client ended it. A page on an origin switchboard does not
// allow gets 403 for its WebSocket and no CORS for BOSH. Nothing may be
// fetched from anywhere but 127.0.0.1.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { servePage, closeServer } from '../lib/serve.mjs';
import {
  BOSH_URL, WS_URL, DOMAIN, PASSWORD, PAGE_PORT, FOREIGN_PORT, PAGE_ORIGIN, FOREIGN_ORIGIN,
  SWITCHBOARD_LOG, STEP_MS, SwitchboardLog, chromiumPath, consoleTail, openRecordedPage, token, within,
} from '../lib/harness.mjs';

const TEST_MS = STEP_MS * 6;
const ALICE = `alice@${DOMAIN}`;
const BOB = `bob@${DOMAIN}`;
const sbLog = SWITCHBOARD_LOG ? new SwitchboardLog(SWITCHBOARD_LOG) : null;
const NO_LOG = SWITCHBOARD_LOG ? false : 'SWITCHBOARD_LOG is unset: not testing switchboard';

const pageUrl = (transport, url, jid) =>
  `${PAGE_ORIGIN}/?${new URLSearchParams({ [transport]: url, jid, password: PASSWORD })}`;

/** The sid attribute of a BOSH request body, or null (session creation). */
const sidOf = (body) => body?.match(/\bsid=["']([^"']*)["']/)?.[1] ?? null;
const isBosh = (r) => r.method === 'POST' && r.url === BOSH_URL;

/** Waits until Converse on `rec`'s page has logged in (its `connected` or `reconnected` event). */
async function loggedIn(rec) {
  await rec.page.waitForFunction(
    () => window.interop?.api?.connection.authenticated()
      && window.interop.events.some((e) => e === 'connected' || e === 'reconnected'),
    null,
    { timeout: STEP_MS },
  ).catch((e) => { throw new Error(`${rec.name} did not log in: ${e.message}`); });
}

/** Converse's view of the session on `rec`'s page. */
function state(rec) {
  return within(rec.page.evaluate(() => {
    const { api } = window.interop;
    // After logout Converse has no connection object at all.
    const live = Boolean(api.connection.get());
    return {
      jid: api.user.jid(),
      authenticated: Boolean(api.connection.authenticated()),
      bosh: live && api.connection.isType('bosh'),
      websocket: live && api.connection.isType('websocket'),
      sid: live && api.connection.isType('bosh') ? api.tokens.get('sid') : null,
      events: window.interop.events,
    };
  }), `${rec.name}: Converse state`);
}

/** Types `text` into the chat box with `peer` and presses Enter, as a user would. */
async function type(rec, peer, text) {
  await within(rec.page.evaluate((jid) => window.interop.api.chats.open(jid, {}, true).then(() => true), peer), `${rec.name} opens a chat with ${peer}`);
  const textarea = rec.page.locator(`converse-chat[jid="${peer}"] textarea.chat-textarea`);
  await textarea.fill(text);
  await textarea.press('Enter');
}

/** Waits until the chat box with `peer` on `rec`'s page shows a message with `text`. */
function shows(rec, peer, text) {
  return rec.page.locator(`converse-chat[jid="${peer}"] .chat-msg__text`, { hasText: text }).first()
    .waitFor({ timeout: STEP_MS })
    .catch((e) => { throw new Error(`${rec.name}'s chat with ${peer} never showed "${text}": ${e.message}`); });
}

describe(`Converse.js in chromium: alice over BOSH (${BOSH_URL}), bob over WebSocket (${WS_URL}), page at ${PAGE_ORIGIN}`, () => {
  let browser;
  let servers = [];
  const served = [];
  const pages = [];
  let alice;
  let bob;
  let failed = false;
  // What the steps learn and later steps check.
  let aliceSid;
  let aliceSession;
  let bobSession;

  /** A test whose failure is remembered (for the report) and fails the steps after it. */
  const step = (name, options, fn) => test(name, { timeout: TEST_MS, ...options }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  });
  const needs = (...what) => {
    if (what.some((x) => x === undefined)) throw new Error('an earlier step failed');
  };

  before(async () => {
    try {
      for (const port of [PAGE_PORT, FOREIGN_PORT]) {
        servers.push(await servePage(port, (method, path, status) => served.push(`:${port} ${method} ${path} ${status}`)));
      }
      const executablePath = chromiumPath();
      browser = await within(
        chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] }),
        `chromium (${executablePath}) starts`,
      ).catch((e) => { throw new Error(`chromium could not start (${executablePath}): ${e.message}`); });
    } catch (e) {
      failed = true;
      throw e;
    }
  });

  after(async () => {
    if (failed) {
      for (const rec of pages) {
        console.log(`----- ${rec.name}: console (last lines)\n${consoleTail(rec)}`);
      }
      console.log(`----- page server requests (last lines)\n${served.slice(-40).join('\n') || '(none)'}`);
      if (sbLog) console.log(`----- switchboard log (tail)\n${sbLog.tail()}`);
    }
    await within(browser?.close() ?? Promise.resolve(), 'chromium closes').catch((e) => console.log(e.message));
    await Promise.all(servers.map(closeServer));
    servers = [];
  });

  step('a page on an origin switchboard does not allow gets 403 for its WebSocket and no CORS for BOSH', { skip: NO_LOG }, async () => {
    const mark = sbLog.mark();
    const foreign = await openRecordedPage(browser, `page at ${FOREIGN_ORIGIN}`);
    pages.push(foreign);
    await foreign.page.goto(`${FOREIGN_ORIGIN}/blank.html`);
    // Once open, the WebSocket sends <open/> (a session starts) and closes
    // at the first answer.
    const tryWebSocket = ({ url, domain }) => new Promise((resolve) => {
      const ws = new WebSocket(url, 'xmpp');
      let opened = false;
      ws.onopen = () => {
        opened = true;
        ws.send(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${domain}' version='1.0'/>`);
      };
      ws.onmessage = () => ws.close(1000);
      ws.onclose = (e) => resolve({ opened, code: e.code });
    });
    const ws = await within(foreign.page.evaluate(tryWebSocket, { url: WS_URL, domain: DOMAIN }), 'WebSocket from the foreign origin ends');
    assert.equal(ws.opened, false, 'the WebSocket from a not-allowed origin opened');
    const errors = foreign.websockets.flatMap((w) => w.errors).join('; ');
    assert.match(errors, /\b403\b/, `the browser saw no 403 for the WebSocket upgrade: ${errors || 'no error'}`);

    // XEP-0206 bodies are text/xml: the browser asks first (preflight), and
    // without Access-Control-Allow-Origin for this page it never sends the POST.
    const boshResult = await within(foreign.page.evaluate((url) => fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml; charset=utf-8' },
      body: "<body xmlns='http://jabber.org/protocol/httpbind' rid='1000' to='localhost' wait='5' hold='1' ver='1.6' xml:lang='en' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>",
    }).then((r) => `answered ${r.status}`, (e) => `refused: ${e}`), BOSH_URL), 'BOSH POST from the foreign origin');
    assert.match(boshResult, /^refused: TypeError/, 'a BOSH POST from a not-allowed origin was let through CORS');

    // The same WebSocket from the allowed origin opens: the 403 was the origin.
    const own = await openRecordedPage(browser, `page at ${PAGE_ORIGIN} (raw WebSocket)`);
    pages.push(own);
    await own.page.goto(`${PAGE_ORIGIN}/blank.html`);
    const control = await within(own.page.evaluate(tryWebSocket, { url: WS_URL, domain: DOMAIN }), 'WebSocket from the allowed origin');
    assert.equal(control.opened, true, `the WebSocket from the allowed origin did not open: ${own.websockets.flatMap((w) => w.errors).join('; ')}`);
    await own.context.close();

    await sbLog.waitFor(/session \d+ start: websocket/, mark, 'the allowed origin\'s WebSocket session');
    const starts = sbLog.linesSince(mark).filter((l) => / start: /.test(l));
    assert.equal(starts.length, 1, `one session (the allowed origin's) started, not:\n${starts.join('\n')}`);
    await foreign.context.close();
  });

  step('alice logs in over BOSH and bob over WebSocket, from a page on another origin than switchboard\'s', {}, async () => {
    assert.notEqual(new URL(BOSH_URL).origin, PAGE_ORIGIN);
    assert.notEqual(new URL(WS_URL.replace(/^ws/, 'http')).origin, PAGE_ORIGIN);
    const mark = sbLog?.mark();
    alice = await openRecordedPage(browser, 'alice (BOSH)');
    bob = await openRecordedPage(browser, 'bob (WebSocket)');
    pages.push(alice, bob);
    await Promise.all([
      alice.page.goto(pageUrl('bosh', BOSH_URL, ALICE)),
      bob.page.goto(pageUrl('websocket', WS_URL, BOB)),
    ]);
    await Promise.all([loggedIn(alice), loggedIn(bob)]);

    const a = await state(alice);
    assert.equal(a.jid.split('/')[0], ALICE);
    assert.ok(a.bosh && !a.websocket, `alice's transport: ${JSON.stringify(a)}`);
    assert.match(a.sid ?? '', /^\S+$/, 'alice has a BOSH sid');
    const b = await state(bob);
    assert.equal(b.jid.split('/')[0], BOB);
    assert.ok(b.websocket && !b.bosh, `bob's transport: ${JSON.stringify(b)}`);
    // The controlbox shows each user online under their own address.
    for (const [rec, jid] of [[alice, ALICE], [bob, BOB]]) {
      await rec.page.locator('#controlbox').getByText(jid).first().waitFor({ timeout: STEP_MS });
      assert.equal(await within(rec.page.evaluate(() => window.interop.api.user.status.get()), 'status'), 'online');
    }

    // alice: BOSH only, every answer with CORS for her page's origin; bob: one WebSocket to switchboard.
    const boshRequests = alice.requests.filter(isBosh);
    assert.ok(boshRequests.length >= 3, `alice's BOSH requests: ${boshRequests.length}`);
    assert.equal(boshRequests.filter((r) => sidOf(r.body) === null).length, 1, 'one session creation request');
    const answered = boshRequests.filter((r) => r.headers);
    assert.ok(answered.length >= 2, 'alice\'s BOSH requests were answered');
    // switchboard is configured with this page's origin; a server's own BOSH may allow any.
    const cors = sbLog ? [PAGE_ORIGIN] : [PAGE_ORIGIN, '*'];
    for (const r of answered) {
      assert.equal(r.status, 200);
      assert.ok(cors.includes(r.headers['access-control-allow-origin']), `CORS header on a BOSH answer: ${JSON.stringify(r.headers)}`);
    }
    assert.deepEqual(alice.websockets, [], 'alice opened no WebSocket');
    assert.deepEqual(bob.websockets.map((w) => w.url), [WS_URL]);
    assert.deepEqual(bob.requests.filter(isBosh), [], 'bob sent no BOSH request');

    if (sbLog) {
      const boshStart = await sbLog.waitFor(/session (\d+) start: bosh (\S+) from \S+ to (\S+)/, mark, 'alice\'s BOSH session start');
      assert.equal(boshStart[2], a.sid, 'switchboard started the session whose sid Converse holds');
      assert.equal(boshStart[3], DOMAIN);
      const wsStart = await sbLog.waitFor(/session (\d+) start: websocket from/, mark, 'bob\'s WebSocket session start');
      const starts = sbLog.linesSince(mark).filter((l) => / start: /.test(l));
      assert.equal(starts.length, 2, `two sessions started, not:\n${starts.join('\n')}`);
      [, aliceSession] = boshStart;
      [, bobSession] = wsStart;
    }
    aliceSid = a.sid;
  });

  step('alice (BOSH) types a message that bob (WebSocket) sees, and bob\'s reply shows on alice\'s page', {}, async () => {
    needs(aliceSid);
    const hello = token('hello bob, from alice over BOSH');
    await type(alice, BOB, hello);
    await shows(bob, ALICE, hello);
    const reply = token('hello alice, from bob over WebSocket');
    await type(bob, ALICE, reply);
    await shows(alice, BOB, reply);
    // Both ways went through switchboard's transports, not a shortcut.
    assert.ok(bob.websockets[0].received.some((f) => f.includes(hello)), 'bob got the message in a WebSocket frame');
    assert.ok(alice.requests.filter(isBosh).some((r) => r.body?.includes(hello)), 'alice sent the message in a BOSH request');
  });

  step('a reload of alice\'s page re-attaches the same BOSH session, and she can still chat', {}, async () => {
    needs(aliceSid);
    const mark = sbLog?.mark();
    const before = alice.requests.length;
    const oldEvents = (await state(alice)).events;
    assert.ok(!oldEvents.includes('reconnected'));
    // What survives the reload: strophe's keepalive record (jid, sid, rid).
    const kept = () => within(alice.page.evaluate(() => JSON.parse(sessionStorage.getItem('strophe-bosh-session'))), 'alice\'s sessionStorage');
    const stored = await kept();
    assert.equal(stored?.sid, aliceSid, `sessionStorage holds the session: ${JSON.stringify(stored)}`);
    await alice.page.reload();
    await loggedIn(alice);
    const a = await state(alice);
    assert.equal(a.sid, aliceSid, 'the reloaded page holds the same BOSH sid');
    assert.equal((await kept())?.sid, aliceSid, 'sessionStorage still holds the same sid');
    const after = alice.requests.slice(before).filter(isBosh);
    assert.ok(after.length >= 1, 'the reloaded page sent BOSH requests');
    assert.deepEqual(after.map((r) => sidOf(r.body)).filter((sid) => sid !== aliceSid), [],
      'every BOSH request after the reload carried the old sid (none created a session)');
    if (sbLog) {
      const lines = sbLog.linesSince(mark);
      assert.deepEqual(lines.filter((l) => / start: | end: /.test(l)), [], 'no session started or ended in switchboard');
    }
    // The session still carries messages both ways.
    const again = token('still here after a reload, alice');
    await type(alice, BOB, again);
    await shows(bob, ALICE, again);
    const answer = token('welcome back, from bob');
    await type(bob, ALICE, answer);
    await shows(alice, BOB, answer);
    if (sbLog) {
      assert.deepEqual(sbLog.linesSince(mark).filter((l) => / start: | end: /.test(l)), [], 'no session started or ended in switchboard');
    }
  });

  step('logging out ends alice\'s BOSH session and bob\'s WebSocket session cleanly', {}, async () => {
    needs(aliceSid);
    const mark = sbLog?.mark();
    await within(alice.page.evaluate(() => window.interop.api.user.logout().then(() => true)), 'alice logs out');
    await within(bob.page.evaluate(() => window.interop.api.user.logout().then(() => true)), 'bob logs out');
    const terminate = alice.requests.filter(isBosh).find((r) => /\btype=["']terminate["']/.test(r.body ?? ''));
    assert.ok(terminate, 'alice sent a BOSH terminate');
    assert.equal(sidOf(terminate.body), aliceSid);
    assert.ok(bob.websockets[0].sent.some((f) => /^<close\b/.test(f)), 'bob sent <close/>');
    if (sbLog) {
      needs(aliceSession, bobSession);
      await sbLog.waitFor(new RegExp(`session ${aliceSession} end: client closed \\(bosh ${aliceSid},`), mark, 'alice\'s session ends: client closed');
      await sbLog.waitFor(new RegExp(`session ${bobSession} end: client closed \\(`), mark, 'bob\'s session ends: client closed');
      const ends = sbLog.linesSince(mark).filter((l) => / end: /.test(l));
      assert.equal(ends.length, 2, `exactly the two sessions ended:\n${ends.join('\n')}`);
    }
    for (const rec of [alice, bob]) {
      const s = await state(rec);
      assert.equal(s.authenticated, false, `${rec.name} is logged out`);
      assert.ok(s.events.includes('logout'), `${rec.name}: ${s.events}`);
    }
  });

  step('the pages fetched nothing but from 127.0.0.1 and threw no uncaught error', {}, async () => {
    assert.ok(pages.length >= 2, 'pages were opened');
    for (const rec of pages) {
      const urls = [...rec.requests.map((r) => r.url), ...rec.websockets.map((w) => w.url)];
      assert.ok(urls.length > 0, `${rec.name} made requests`);
      const remote = urls.filter((u) => !/^(data|blob):/.test(u) && new URL(u).hostname !== '127.0.0.1');
      assert.deepEqual(remote, [], `${rec.name} reached beyond 127.0.0.1`);
      assert.deepEqual(rec.errors.map(String), [], `${rec.name} threw`);
    }
    const missing = served.filter((l) => / 404$/.test(l));
    assert.deepEqual(missing, [], 'the page asked for files the server does not have');
  });
});
