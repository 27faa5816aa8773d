// strophe.js 5 over WebSocket: two strophe clients, alice and bob, log in,
// exchange messages both ways, see directed presence, do iq round trips and
// disconnect, with the server's own <close/> seen on the wire.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Strophe, $msg, $pres, $iq } from 'strophe.js';
import { WS_URL, DOMAIN, PASSWORD, STEP_MS, TEST_MS, STRICT_CLOSE, token, within, Inbox } from '../lib/env.mjs';

// strophe logs at DEBUG by default; XMPP_DEBUG=1 keeps that.
Strophe.setLogLevel(process.env.XMPP_DEBUG ? Strophe.LogLevel.DEBUG : Strophe.LogLevel.WARN);

function makeClient(username) {
  const conn = new Strophe.Connection(WS_URL);
  const stanzas = new Inbox();
  const statuses = new Inbox();
  const rawIn = [];
  conn.rawInput = (data) => rawIn.push(data);
  // Returning true keeps the handler installed.
  conn.addHandler((el) => { stanzas.push(el); return true; }, null, 'message');
  conn.addHandler((el) => { stanzas.push(el); return true; }, null, 'presence');
  return { conn, stanzas, statuses, rawIn, username };
}

function connect(c) {
  const jid = `${c.username}@${DOMAIN}/${token(`strophe-${c.username}`)}`;
  c.conn.connect(jid, PASSWORD, (status, condition) => {
    c.statuses.push({ status, condition });
  });
  return c.statuses.waitFor(
    (s) => [Strophe.Status.CONNECTED, Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.DISCONNECTED].includes(s.status),
    `${c.username} connects`,
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

const text = (el, name) => el.getElementsByTagName(name)[0]?.textContent;

describe(`strophe.js over WebSocket (${WS_URL}, ${DOMAIN})`, () => {
  const alice = makeClient('alice');
  const bob = makeClient('bob');

  before(async () => {
    await within(Promise.all([connect(alice), connect(bob)]), 'alice and bob connected');
  });

  after(() => {
    // Only matters when a test failed first: close sockets, stop strophe's timers.
    for (const c of [alice, bob]) {
      if (c.conn.connected) c.conn._doDisconnect();
    }
  });

  test('both log in with bound full JIDs on the domain', { timeout: TEST_MS }, () => {
    for (const c of [alice, bob]) {
      assert.equal(c.conn.authenticated, true);
      assert.equal(Strophe.getBareJidFromJid(c.conn.jid), `${c.username}@${DOMAIN}`);
      assert.ok(Strophe.getResourceFromJid(c.conn.jid).startsWith(`strophe-${c.username}`), c.conn.jid);
    }
  });

  for (const [fromName, toName] of [['alice', 'bob'], ['bob', 'alice']]) {
    test(`${fromName} sends a message that ${toName} receives`, { timeout: TEST_MS }, async () => {
      const from = fromName === 'alice' ? alice : bob;
      const to = fromName === 'alice' ? bob : alice;
      const body = token(`hello from ${fromName} <&> ünïcode`);
      from.conn.send($msg({ to: to.conn.jid, type: 'chat' }).c('body').t(body));
      const got = await to.stanzas.waitFor(
        (el) => el.nodeName === 'message' && text(el, 'body') === body,
        `${toName} receives the message`,
      );
      assert.equal(got.getAttribute('from'), from.conn.jid);
      assert.equal(got.getAttribute('type'), 'chat');
    });
  }

  test('bob sees the directed presence alice sends him', { timeout: TEST_MS }, async () => {
    const status = token('available');
    alice.conn.send($pres({ to: bob.conn.jid }).c('status').t(status));
    const got = await bob.stanzas.waitFor(
      (el) => el.nodeName === 'presence' && text(el, 'status') === status,
      'bob receives alice presence',
    );
    assert.equal(got.getAttribute('from'), alice.conn.jid);
    assert.equal(got.getAttribute('type'), null, 'available presence has no type');
  });

  test('alice gets disco#info from the server', { timeout: TEST_MS }, async () => {
    const result = await sendIQ(alice.conn, $iq({ type: 'get', to: DOMAIN }).c('query', { xmlns: Strophe.NS.DISCO_INFO }));
    assert.equal(result.getAttribute('type'), 'result');
    assert.equal(result.getAttribute('from'), DOMAIN);
    const features = [...result.getElementsByTagName('feature')].map((f) => f.getAttribute('var'));
    assert.ok(features.includes('urn:xmpp:ping'), `features: ${features}`);
  });

  test('alice pings bob and bob answers', { timeout: TEST_MS }, async () => {
    // strophe has no built-in ping responder: bob answers by hand.
    bob.conn.addHandler((iq) => {
      bob.conn.send($iq({ type: 'result', to: iq.getAttribute('from'), id: iq.getAttribute('id') }));
      return true;
    }, 'urn:xmpp:ping', 'iq', 'get');
    const result = await sendIQ(alice.conn, $iq({ type: 'get', to: bob.conn.jid }).c('ping', { xmlns: 'urn:xmpp:ping' }));
    assert.equal(result.getAttribute('type'), 'result');
    assert.equal(result.getAttribute('from'), bob.conn.jid);
  });

  test('both disconnect; the server answers <close/> and a clean WebSocket close', { timeout: TEST_MS }, async () => {
    const aliceJid = alice.conn.jid;
    for (const c of [alice, bob]) {
      // strophe sends <close/> and closes its socket on the next tick without
      // waiting (it drops its own listeners first), so watch the socket itself.
      const socket = c.conn._proto.socket;
      const wireIn = [];
      socket.addEventListener('message', ({ data }) => wireIn.push(String(data)));
      const closed = new Promise((resolve) => socket.addEventListener('close', resolve));
      c.conn.disconnect('test done');
      await c.statuses.waitFor((s) => s.status === Strophe.Status.DISCONNECTED, `${c.username} disconnected`);
      assert.equal(c.conn.connected, false);
      const event = await within(closed, `${c.username}: WebSocket close`);
      const sawClose = wireIn.some((d) => /^<close\b[^>]*xmlns=["']urn:ietf:params:xml:ns:xmpp-framing["']/.test(d));
      const observed = `${c.username}: close code ${event.code}, clean ${event.wasClean}, server <close/> ${sawClose}; got ${JSON.stringify(wireIn)}`;
      if (STRICT_CLOSE) {
        // RFC 7395 §3.6: the server answers the client's <close/> with its
        // own, then completes the WebSocket closing handshake (RFC 6455 §7),
        // without resetting the TCP connection under strophe's close frame.
        assert.ok(sawClose, observed);
        assert.equal(event.wasClean, true, observed);
      } else if (!(sawClose && event.wasClean)) {
        console.log(`lenient close check: ${observed}`);
      }
      if (c === alice) {
        // Ending alice's session tells bob, who had her directed presence.
        const gone = await bob.stanzas.waitFor(
          (el) => el.nodeName === 'presence' && el.getAttribute('from') === aliceJid && el.getAttribute('type') === 'unavailable',
          'bob sees alice go unavailable',
        );
        assert.ok(gone);
      }
    }
  });
});
