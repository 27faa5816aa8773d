// xmpp.js (@xmpp/client 0.14) over WebSocket: alice and bob log in, exchange
// messages both ways, see directed presence, do iq round trips (to the server
// and to each other), and close their streams cleanly.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { client, xml } from '@xmpp/client';
import { WS_URL, DOMAIN, PASSWORD, TEST_MS, token, within, Inbox } from '../lib/env.mjs';

// xmpp.js uses the browser's WebSocket; Node 20 has no global one.
globalThis.WebSocket ??= WebSocket;

function makeClient(username) {
  const xmpp = client({
    service: WS_URL,
    domain: DOMAIN,
    username,
    password: PASSWORD,
    resource: token(`xmppjs-${username}`),
  });
  // A test must fail rather than have the client quietly reconnect.
  xmpp.reconnect.stop();
  const stanzas = new Inbox();
  const statuses = [];
  const errors = [];
  xmpp.on('stanza', (el) => stanzas.push(el));
  xmpp.on('status', (status, arg) => statuses.push({ status, arg }));
  xmpp.on('error', (err) => errors.push(err));
  return { xmpp, stanzas, statuses, errors };
}

describe(`xmpp.js over WebSocket (${WS_URL}, ${DOMAIN})`, () => {
  const alice = makeClient('alice');
  const bob = makeClient('bob');

  before(async () => {
    const [aliceJid, bobJid] = await within(
      Promise.all([alice.xmpp.start(), bob.xmpp.start()]),
      'alice and bob online',
    );
    assert.equal(aliceJid.bare().toString(), `alice@${DOMAIN}`);
    assert.equal(bobJid.bare().toString(), `bob@${DOMAIN}`);
  });

  after(async () => {
    // Only matters when a test failed before the close test ran.
    for (const c of [alice, bob]) {
      if (c.xmpp.status !== 'offline') await c.xmpp.stop().catch(() => {});
    }
  });

  test('both log in and are bound to full JIDs on the domain', { timeout: TEST_MS }, () => {
    for (const [c, user] of [[alice, 'alice'], [bob, 'bob']]) {
      assert.equal(c.xmpp.status, 'online');
      assert.equal(c.xmpp.jid.local, user);
      assert.equal(c.xmpp.jid.domain, DOMAIN);
      assert.ok(c.xmpp.jid.resource.startsWith(`xmppjs-${user}`), String(c.xmpp.jid));
      assert.deepEqual(c.errors, []);
    }
  });

  for (const [fromName, toName] of [['alice', 'bob'], ['bob', 'alice']]) {
    test(`${fromName} sends a message that ${toName} receives`, { timeout: TEST_MS }, async () => {
      const from = fromName === 'alice' ? alice : bob;
      const to = fromName === 'alice' ? bob : alice;
      const body = token(`hello from ${fromName} <&> ünïcode`);
      await from.xmpp.send(
        xml('message', { to: to.xmpp.jid.toString(), type: 'chat' }, xml('body', {}, body)),
      );
      const got = await to.stanzas.waitFor(
        (el) => el.is('message') && el.getChildText('body') === body,
        `${toName} receives the message`,
      );
      assert.equal(got.attrs.from, from.xmpp.jid.toString());
      assert.equal(got.attrs.type, 'chat');
    });
  }

  test('bob sees the directed presence alice sends him', { timeout: TEST_MS }, async () => {
    const status = token('available');
    await alice.xmpp.send(
      xml('presence', { to: bob.xmpp.jid.toString() }, xml('status', {}, status)),
    );
    const got = await bob.stanzas.waitFor(
      (el) => el.is('presence') && el.getChildText('status') === status,
      'bob receives alice presence',
    );
    assert.equal(got.attrs.from, alice.xmpp.jid.toString());
    assert.equal(got.attrs.type, undefined, 'available presence has no type');
  });

  test('alice gets disco#info from the server', { timeout: TEST_MS }, async () => {
    const result = await within(
      alice.xmpp.iqCaller.request(
        xml('iq', { type: 'get', to: DOMAIN }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
      ),
      'disco#info result',
    );
    assert.equal(result.attrs.type, 'result');
    assert.equal(result.attrs.from, DOMAIN);
    const query = result.getChild('query', 'http://jabber.org/protocol/disco#info');
    assert.ok(query, 'result carries the query');
    const features = query.getChildren('feature').map((f) => f.attrs.var);
    assert.ok(features.includes('urn:xmpp:ping'), `features: ${features}`);
  });

  test('alice pings bob and bob answers', { timeout: TEST_MS }, async () => {
    const result = await within(
      alice.xmpp.iqCaller.request(
        xml('iq', { type: 'get', to: bob.xmpp.jid.toString() }, xml('ping', { xmlns: 'urn:xmpp:ping' })),
      ),
      'ping result from bob',
    );
    assert.equal(result.attrs.type, 'result');
    assert.equal(result.attrs.from, bob.xmpp.jid.toString());
  });

  test('both close their streams cleanly', { timeout: TEST_MS }, async () => {
    const aliceJid = alice.xmpp.jid.toString();
    const closeEl = await within(alice.xmpp.stop(), 'alice stop');
    // The server's own <close/> came back: the close went through, not a timeout.
    assert.ok(closeEl, 'alice got the server close');
    assert.equal(closeEl.name, 'close');
    assert.equal(closeEl.attrs.xmlns, 'urn:ietf:params:xml:ns:xmpp-framing');
    assert.equal(alice.xmpp.status, 'offline');
    // (Its 'close' status reports clean: false even then: it passes the
    // <close/> element where a dirty flag is expected. The socket's is reliable.)
    const disconnected = alice.statuses.find((s) => s.status === 'disconnect');
    assert.equal(disconnected?.arg?.clean, true, 'socket closed cleanly');

    // The server ended alice's session: bob, who got her directed presence, is told.
    const gone = await bob.stanzas.waitFor(
      (el) => el.is('presence') && el.attrs.from === aliceJid && el.attrs.type === 'unavailable',
      'bob sees alice go unavailable',
    );
    assert.ok(gone);

    const bobClose = await within(bob.xmpp.stop(), 'bob stop');
    assert.equal(bobClose?.name, 'close');
    assert.equal(bob.xmpp.status, 'offline');
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
