// strophe.js 5 over BOSH (XEP-0124/XEP-0206) next to xmpp.js over WebSocket:
// alice logs in over BOSH (through the XMLHttpRequest shim in lib/xhr.mjs),
// bob over WebSocket; they exchange messages both ways, directed presence and
// iq round trips, bob sends a burst alice must get whole and in order, and
// both close cleanly, after which alice's BOSH session id is dead.
// Skipped unless XMPP_BOSH_URL names a BOSH endpoint.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { Strophe, $msg, $pres, $iq } from 'strophe.js';
import { client, xml } from '@xmpp/client';
import { installXMLHttpRequest, parseXml } from '../lib/xhr.mjs';
import { BOSH_URL, WS_URL, DOMAIN, PASSWORD, STEP_MS, TEST_MS, token, within, Inbox } from '../lib/env.mjs';

installXMLHttpRequest();
// xmpp.js uses the browser's WebSocket; Node 20 has no global one.
globalThis.WebSocket ??= WebSocket;
Strophe.setLogLevel(process.env.XMPP_DEBUG ? Strophe.LogLevel.DEBUG : Strophe.LogLevel.WARN);

const BOSH_NS = 'http://jabber.org/protocol/httpbind';
const text = (el, name) => el.getElementsByTagName(name)[0]?.textContent;

/** alice: strophe over BOSH, with every HTTP body it sent and received. */
function makeBoshClient(username) {
  const conn = new Strophe.Connection(BOSH_URL);
  const stanzas = new Inbox();
  const statuses = new Inbox();
  const bodiesIn = [];
  const bodiesOut = [];
  const messageBodies = [];
  conn.rawInput = (data) => bodiesIn.push(data);
  conn.rawOutput = (data) => bodiesOut.push(data);
  conn.addHandler((el) => { messageBodies.push(text(el, 'body')); stanzas.push(el); return true; }, null, 'message');
  conn.addHandler((el) => { stanzas.push(el); return true; }, null, 'presence');
  // strophe has no ping responder of its own.
  conn.addHandler((iq) => {
    conn.send($iq({ type: 'result', to: iq.getAttribute('from'), id: iq.getAttribute('id') }));
    return true;
  }, 'urn:xmpp:ping', 'iq', 'get');
  return { conn, stanzas, statuses, bodiesIn, bodiesOut, messageBodies, username };
}

/** bob: xmpp.js over WebSocket. */
function makeWsClient(username) {
  const xmpp = client({ service: WS_URL, domain: DOMAIN, username, password: PASSWORD, resource: token(`xmppjs-${username}`) });
  // A test must fail rather than have the client quietly reconnect.
  xmpp.reconnect.stop();
  const stanzas = new Inbox();
  const errors = [];
  xmpp.on('stanza', (el) => stanzas.push(el));
  xmpp.on('error', (err) => errors.push(err));
  return { xmpp, stanzas, errors, username };
}

function connectBosh(c) {
  const jid = `${c.username}@${DOMAIN}/${token(`strophe-bosh-${c.username}`)}`;
  c.conn.connect(jid, PASSWORD, (status, condition) => c.statuses.push({ status, condition }));
  return c.statuses.waitFor(
    (s) => [Strophe.Status.CONNECTED, Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.DISCONNECTED].includes(s.status),
    `${c.username} connects over BOSH`,
  ).then((s) => {
    assert.equal(s.status, Strophe.Status.CONNECTED, `${c.username}: status ${s.status} ${s.condition ?? ''}`);
  });
}

function sendIQ(conn, iq) {
  return within(
    new Promise((resolve, reject) => conn.sendIQ(iq, resolve, (err) => reject(new Error(`iq error: ${err ? Strophe.serialize(err) : 'timeout'}`)), STEP_MS)),
    'iq result',
  );
}

/** The <body/> documents in strophe's raw log, parsed. */
const bodies = (raw) => raw.map((s) => parseXml(s)?.documentElement).filter((el) => el?.localName === 'body');

// A skipped test rather than a skipped suite, so the run's summary counts it.
if (!BOSH_URL) test('strophe.js over BOSH with xmpp.js over WebSocket', { skip: 'XMPP_BOSH_URL is unset: no BOSH endpoint to test' }, () => {});

describe(`strophe.js over BOSH (${BOSH_URL ?? 'unset'}) with xmpp.js over WebSocket (${WS_URL}, ${DOMAIN})`, { skip: !BOSH_URL }, () => {
  const alice = makeBoshClient('alice');
  const bob = makeWsClient('bob');
  let bobJid;

  before(async () => {
    const [, jid] = await within(Promise.all([connectBosh(alice), bob.xmpp.start()]), 'alice (BOSH) and bob (WebSocket) online');
    bobJid = jid.toString();
  });

  after(async () => {
    // Only matters when a test failed first: no HTTP request or timer may
    // keep the process alive, no session may linger.
    if (alice.conn.connected) alice.conn._doDisconnect();
    alice.conn._proto._abortAllRequests?.();
    if (bob.xmpp.status !== 'offline') await bob.xmpp.stop().catch(() => {});
  });

  test('alice is logged in over BOSH and bob over WebSocket, both bound on the domain', { timeout: TEST_MS }, () => {
    assert.ok(alice.conn._proto instanceof Strophe.Bosh, 'alice uses the BOSH transport');
    assert.equal(alice.conn.authenticated, true);
    assert.equal(Strophe.getBareJidFromJid(alice.conn.jid), `alice@${DOMAIN}`);
    assert.ok(Strophe.getResourceFromJid(alice.conn.jid).startsWith('strophe-bosh-alice'), alice.conn.jid);

    // XEP-0124 §7.1 / XEP-0206 §8: the session creation response.
    const created = bodies(alice.bodiesIn).find((b) => b.getAttribute('sid'));
    assert.ok(created, `a response carried a sid; got ${alice.bodiesIn.slice(0, 2)}`);
    assert.equal(created.namespaceURI, BOSH_NS);
    assert.equal(created.getAttribute('sid'), alice.conn._proto.sid);
    assert.ok(Number(created.getAttribute('wait')) > 0, 'wait');
    assert.ok(Number(created.getAttribute('requests')) >= 2, 'requests >= 2 so a client can send while one is held');
    // Every request strophe sent carried the session's sid after creation, with consecutive rids.
    const rids = bodies(alice.bodiesOut).map((b) => Number(b.getAttribute('rid')));
    assert.ok(rids.length >= 4, `rids ${rids}`);
    rids.forEach((rid, i) => i > 0 && assert.equal(rid, rids[i - 1] + 1, `rids ${rids}`));

    assert.equal(bob.xmpp.status, 'online');
    assert.equal(bob.xmpp.jid.bare().toString(), `bob@${DOMAIN}`);
  });

  test('alice (BOSH) sends a message that bob (WebSocket) receives', { timeout: TEST_MS }, async () => {
    const body = token('hello from alice over BOSH <&> ünïcode');
    alice.conn.send($msg({ to: bobJid, type: 'chat' }).c('body').t(body));
    const got = await bob.stanzas.waitFor((el) => el.is('message') && el.getChildText('body') === body, 'bob receives the message');
    assert.equal(got.attrs.from, alice.conn.jid);
    assert.equal(got.attrs.type, 'chat');
  });

  test('bob (WebSocket) sends a message that alice (BOSH) receives', { timeout: TEST_MS }, async () => {
    const body = token('hello from bob over WebSocket <&> ünïcode');
    await bob.xmpp.send(xml('message', { to: alice.conn.jid, type: 'chat' }, xml('body', {}, body)));
    const got = await alice.stanzas.waitFor((el) => el.nodeName === 'message' && text(el, 'body') === body, 'alice receives the message');
    assert.equal(got.getAttribute('from'), bobJid);
    assert.equal(got.getAttribute('type'), 'chat');
  });

  test('directed presence goes both ways', { timeout: TEST_MS }, async () => {
    const fromAlice = token('alice-available');
    alice.conn.send($pres({ to: bobJid }).c('status').t(fromAlice));
    const atBob = await bob.stanzas.waitFor((el) => el.is('presence') && el.getChildText('status') === fromAlice, 'bob receives alice presence');
    assert.equal(atBob.attrs.from, alice.conn.jid);
    assert.equal(atBob.attrs.type, undefined, 'available presence has no type');

    const fromBob = token('bob-available');
    await bob.xmpp.send(xml('presence', { to: alice.conn.jid }, xml('status', {}, fromBob)));
    const atAlice = await alice.stanzas.waitFor((el) => el.nodeName === 'presence' && text(el, 'status') === fromBob, 'alice receives bob presence');
    assert.equal(atAlice.getAttribute('from'), bobJid);
    assert.equal(atAlice.getAttribute('type'), null, 'available presence has no type');
  });

  test('alice gets disco#info from the server over BOSH', { timeout: TEST_MS }, async () => {
    const result = await sendIQ(alice.conn, $iq({ type: 'get', to: DOMAIN }).c('query', { xmlns: Strophe.NS.DISCO_INFO }));
    assert.equal(result.getAttribute('type'), 'result');
    assert.equal(result.getAttribute('from'), DOMAIN);
    const features = [...result.getElementsByTagName('feature')].map((f) => f.getAttribute('var'));
    assert.ok(features.includes('urn:xmpp:ping'), `features: ${features}`);
  });

  test('alice pings bob and bob pings alice; each answers', { timeout: TEST_MS }, async () => {
    const fromAlice = await sendIQ(alice.conn, $iq({ type: 'get', to: bobJid }).c('ping', { xmlns: 'urn:xmpp:ping' }));
    assert.equal(fromAlice.getAttribute('type'), 'result');
    assert.equal(fromAlice.getAttribute('from'), bobJid);

    const fromBob = await within(
      bob.xmpp.iqCaller.request(xml('iq', { type: 'get', to: alice.conn.jid }, xml('ping', { xmlns: 'urn:xmpp:ping' }))),
      'ping result from alice',
    );
    assert.equal(fromBob.attrs.type, 'result');
    assert.equal(fromBob.attrs.from, alice.conn.jid);
  });

  test('a burst from bob reaches alice whole and in order (stanzas queue between her requests)', { timeout: TEST_MS }, async () => {
    const tag = token('burst');
    const count = 30;
    for (let i = 0; i < count; i++) {
      bob.xmpp.send(xml('message', { to: alice.conn.jid, type: 'chat' }, xml('body', {}, `${tag} ${i}`)));
    }
    await alice.stanzas.waitFor((el) => el.nodeName === 'message' && text(el, 'body') === `${tag} ${count - 1}`, 'the last message of the burst');
    const got = alice.messageBodies.filter((b) => b?.startsWith(`${tag} `)).map((b) => Number(b.slice(tag.length + 1)));
    assert.deepEqual(got, [...Array(count).keys()]);
  });

  test('both disconnect cleanly; alice\'s terminate is answered and her sid is dead afterwards', { timeout: TEST_MS }, async () => {
    const aliceJid = alice.conn.jid;
    const sid = alice.conn._proto.sid;
    alice.conn.disconnect('test done');
    await alice.statuses.waitFor((s) => s.status === Strophe.Status.DISCONNECTED, 'alice disconnected');
    assert.equal(alice.conn.connected, false);

    // XEP-0124 §12: strophe's terminate body carries her unavailable presence,
    // and the server answers it (with a terminate body) rather than strophe timing out.
    const sent = bodies(alice.bodiesOut);
    const terminate = sent.find((b) => b.getAttribute('type') === 'terminate');
    assert.ok(terminate, 'strophe sent type=terminate');
    assert.equal(terminate.getElementsByTagName('presence')[0]?.getAttribute('type'), 'unavailable');
    const answered = bodies(alice.bodiesIn).some((b) => b.getAttribute('type') === 'terminate');
    assert.ok(answered, `the server answered with type=terminate; last bodies in: ${alice.bodiesIn.slice(-2)}`);
    assert.equal(alice.conn._proto._requests.length, 0, 'no request left in flight');

    const gone = await bob.stanzas.waitFor(
      (el) => el.is('presence') && el.attrs.from === aliceJid && el.attrs.type === 'unavailable',
      'bob sees alice go unavailable',
    );
    assert.ok(gone);

    // The session is gone on the server: a request on the old sid, with the
    // next rid, is refused (XEP-0124 §14.3 item-not-found; a legacy 404 counts).
    const nextRid = Math.max(...sent.map((b) => Number(b.getAttribute('rid')))) + 1;
    const res = await within(fetch(BOSH_URL, {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml; charset=utf-8' },
      body: `<body xmlns='${BOSH_NS}' sid='${sid}' rid='${nextRid}'/>`,
    }), 'request on the old sid');
    const reply = await res.text();
    const root = parseXml(reply)?.documentElement;
    const seen = `old sid: HTTP ${res.status} ${reply}`;
    if (res.status !== 404) {
      assert.equal(res.status, 200, seen);
      assert.equal(root?.getAttribute('type'), 'terminate', seen);
      assert.equal(root?.getAttribute('condition'), 'item-not-found', seen);
    }

    const bobClose = await within(bob.xmpp.stop(), 'bob stop');
    assert.equal(bobClose?.name, 'close', 'bob got the server close');
    assert.equal(bob.xmpp.status, 'offline');
    assert.deepEqual(bob.errors, []);
  });
});
