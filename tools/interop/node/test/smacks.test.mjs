// XEP-0198 stream resumption through the WebSocket endpoint, against a
// server with stream management (Prosody's mod_smacks: tools/interop/run
// --smacks sets XMPP_SMACKS=1; without it this file is skipped).
//
// alice enables resumption, then her TCP connection drops without a close
// frame or <close/>: the endpoint must drop the server's stream without
// </stream:stream>, so that the server keeps her session. bob sends her
// messages while she is away; she reconnects through the endpoint, logs in
// again and sends <resume/> with the previous id and the count of stanzas
// she handled. Every message sent while she was away must arrive after the
// resumption, once, in order; the server's count of her stanzas must be
// what she sent. Three rounds on the same session.
//
// The client is written out here on a bare WebSocket (RFC 7395: one element
// per message), so that every count is exact: `h` counts the stanzas
// received since <enable/>, as XEP-0198 §4 defines it.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { DOMParser } from '@xmldom/xmldom';
import { WS_URL, DOMAIN, PASSWORD, STEP_MS, TEST_MS, token, within } from '../lib/env.mjs';

const SMACKS = process.env.XMPP_SMACKS === '1';
const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const NS_SM = 'urn:xmpp:sm:3';
const ROUNDS = 3;
const AWAY = 20;

const escape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');

/** One XMPP-over-WebSocket stream, its elements parsed as they come. */
class Stream {
  #elements = [];
  #waiters = [];

  constructor(name) {
    this.name = name;
    // Stanzas handled since <enable/> (XEP-0198 §4): set from outside.
    this.h = null;
    this.closed = new Promise((resolve) => { this.onClosed = resolve; });
  }

  async open() {
    this.ws = new WebSocket(WS_URL, 'xmpp');
    this.ws.on('message', (data) => this.#receive(data.toString()));
    this.ws.on('close', (code) => this.onClosed(code));
    this.ws.on('error', () => {});
    await within(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    }), `${this.name}: WebSocket open`);
  }

  #receive(text) {
    const el = new DOMParser().parseFromString(text, 'text/xml').documentElement;
    if (this.h !== null && ['message', 'presence', 'iq'].includes(el.localName)) this.h += 1;
    // Prosody asks for an ack after stanzas: answer at once.
    if (el.localName === 'r' && el.namespaceURI === NS_SM && this.h !== null) {
      this.send(`<a xmlns='${NS_SM}' h='${this.h}'/>`);
    }
    this.#elements.push(el);
    for (const w of [...this.#waiters]) {
      const at = this.#elements.findIndex(w.match);
      if (at >= 0) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(this.#elements.splice(at, 1)[0]);
      }
    }
  }

  send(xml) {
    this.ws.send(xml);
  }

  /** The first element not yet taken that `match`es, waiting for it if need be. */
  take(match, what) {
    const at = this.#elements.findIndex(match);
    if (at >= 0) return Promise.resolve(this.#elements.splice(at, 1)[0]);
    return within(new Promise((resolve) => this.#waiters.push({ match, resolve })), `${this.name}: ${what}`);
  }

  /** Every element not yet taken that `match`es. */
  takeAll(match) {
    const taken = this.#elements.filter(match);
    this.#elements = this.#elements.filter((el) => !match(el));
    return taken;
  }

  async features() {
    this.send(`<open xmlns='${NS_FRAMING}' to='${DOMAIN}' version='1.0'/>`);
    await this.take((el) => el.localName === 'open', '<open/>');
    return this.take((el) => el.localName === 'features', 'stream features');
  }

  /** Open, SASL PLAIN, restart: the features after authentication. */
  async login(user) {
    await this.open();
    const features = await this.features();
    const mechanisms = [...features.getElementsByTagName('mechanism')].map((m) => m.textContent);
    assert.ok(mechanisms.includes('PLAIN'), `PLAIN offered: ${mechanisms}`);
    const plain = Buffer.from(`\0${user}\0${PASSWORD}`).toString('base64');
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    const outcome = await this.take((el) => ['success', 'failure'].includes(el.localName), 'SASL outcome');
    assert.equal(outcome.localName, 'success', `${this.name}: SASL`);
    return this.features();
  }

  async bind(resource) {
    this.send(`<iq type='set' id='bind' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const result = await this.take((el) => el.localName === 'iq' && el.getAttribute('id') === 'bind', 'bind result');
    assert.equal(result.getAttribute('type'), 'result', `${this.name}: bind`);
    return result.getElementsByTagName('jid')[0].textContent;
  }

  message(to, body) {
    this.send(`<message xmlns='jabber:client' to='${to}' type='chat'><body>${escape(body)}</body></message>`);
  }

  /** Gone without a word: no close frame, no <close/>, the TCP connection just ends. */
  drop() {
    this.ws.terminate();
  }

  async close() {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.send(`<close xmlns='${NS_FRAMING}'/>`);
    await within(this.closed, `${this.name}: closed`, STEP_MS).catch(() => this.ws.terminate());
  }
}

const bodyOf = (el) => el.getElementsByTagName('body')[0]?.textContent;

describe(`XEP-0198 resumption over WebSocket (${WS_URL}, ${DOMAIN})`, { skip: !SMACKS && 'needs a server with XEP-0198 (tools/interop/run --smacks)' }, () => {
  const open = [];
  after(async () => {
    for (const s of open) await s.close();
  });

  test(`messages sent while the client is away arrive after <resume/>, ${ROUNDS} rounds of ${AWAY}`, { timeout: TEST_MS * (ROUNDS + 2) }, async () => {
    const bob = new Stream('bob');
    open.push(bob);
    const bobFeatures = await bob.login('bob');
    assert.ok(bobFeatures.getElementsByTagName('bind').length > 0);
    // Full JIDs both ways: neither sends presence, so a bare JID would
    // reach no resource.
    const bobJid = await bob.bind(token('smacks-bob'));

    let alice = new Stream('alice');
    open.push(alice);
    const features = await alice.login('alice');
    const sm = features.getElementsByTagNameNS(NS_SM, 'sm');
    assert.ok(sm.length > 0, 'the server offers XEP-0198 after login');
    const aliceJid = await alice.bind(token('smacks-alice'));
    alice.send(`<enable xmlns='${NS_SM}' resume='true'/>`);
    const enabled = await alice.take((el) => ['enabled', 'failed'].includes(el.localName), '<enabled/>');
    assert.equal(enabled.localName, 'enabled');
    assert.equal(enabled.getAttribute('resume'), 'true');
    const id = enabled.getAttribute('id');
    alice.h = 0;
    let aliceSent = 0;

    const totals = { away: 0, delivered: 0, lost: 0, duplicated: 0 };
    for (let round = 1; round <= ROUNDS; round += 1) {
      // While she is there: one message each way, so that both counts move.
      const hello = token(`present-${round}`);
      bob.message(aliceJid, hello);
      await alice.take((el) => el.localName === 'message' && bodyOf(el) === hello, 'a message while present');
      const reply = token(`reply-${round}`);
      alice.message(bobJid, reply);
      aliceSent += 1;
      await bob.take((el) => el.localName === 'message' && bodyOf(el) === reply, 'her reply');

      const handled = alice.h;
      alice.drop();
      // Long enough for the server to see the connection go and keep the
      // session waiting: the messages then go into its queue, not into a
      // stream still believed alive.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const away = Array.from({ length: AWAY }, (_, i) => token(`away-${round}-${i}`));
      for (const body of away) bob.message(aliceJid, body);
      totals.away += away.length;

      alice = new Stream(`alice (round ${round})`);
      open.push(alice);
      const again = await alice.login('alice');
      assert.ok(again.getElementsByTagNameNS(NS_SM, 'sm').length > 0);
      alice.h = handled;
      alice.send(`<resume xmlns='${NS_SM}' previd='${id}' h='${handled}'/>`);
      const resumed = await alice.take((el) => ['resumed', 'failed'].includes(el.localName), '<resumed/>');
      assert.equal(resumed.localName, 'resumed', `round ${round}: the server could not resume (was the stream closed?)`);
      assert.equal(Number(resumed.getAttribute('h')), aliceSent, `round ${round}: the server's count of her stanzas`);

      // Everything sent while she was away, then nothing more.
      const last = away[away.length - 1];
      await alice.take((el) => el.localName === 'message' && bodyOf(el) === last, 'the last message sent while away');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const bodies = alice.takeAll((el) => el.localName === 'message').map(bodyOf);
      bodies.push(last);
      const delivered = away.filter((b) => bodies.includes(b));
      totals.delivered += delivered.length;
      totals.lost += away.length - delivered.length;
      totals.duplicated += bodies.length - new Set(bodies).size;
      assert.deepEqual(bodies, away, `round ${round}: delivered once each, in order`);
      assert.deepEqual(bob.takeAll((el) => el.localName === 'message' && el.getAttribute('type') === 'error'), []);
    }
    console.log(`XEP-0198 over ${WS_URL} (${DOMAIN}): ${ROUNDS} drops and resumptions; sent while away ${totals.away}, delivered after resumption ${totals.delivered}, lost ${totals.lost}, duplicated ${totals.duplicated}`);
    assert.equal(totals.delivered, ROUNDS * AWAY);
  });
});
