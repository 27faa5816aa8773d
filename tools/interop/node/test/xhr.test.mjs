// The XMLHttpRequest shim (lib/xhr.mjs) against a local node:http server: the
// behaviour strophe's BOSH transport relies on, checked without any XMPP
// server, so it runs in every mode.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { XMLHttpRequest } from '../lib/xhr.mjs';
import { within } from '../lib/env.mjs';

const BODY_NS = 'http://jabber.org/protocol/httpbind';

/** Sends `xhr` and resolves once it reaches readyState 4, with every state seen. */
function run(xhr, body) {
  const states = [];
  const done = new Promise((resolve) => {
    xhr.onreadystatechange = () => {
      states.push(xhr.readyState);
      if (xhr.readyState === 4) resolve(states);
    };
  });
  xhr.send(body);
  return within(done, 'request done', 5000);
}

describe('XMLHttpRequest shim over node:http', () => {
  let server;
  let base;
  const seen = [];

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        if (req.url === '/bosh') {
          res.writeHead(200, { 'Content-Type': 'text/xml; charset=utf-8', 'X-Test': 'yes' });
          // Split across writes: the shim must join the chunks before parsing.
          res.write(`<body xmlns='${BODY_NS}' sid='s1' wait='60'><message xmlns='jabber:client'><body>h`);
          setTimeout(() => res.end('ëllo</body></message></body>'), 20);
        } else if (req.url === '/broken') {
          res.writeHead(200, { 'Content-Type': 'text/xml' });
          res.end(`<body xmlns='${BODY_NS}'><unclosed></body>`);
        } else if (req.url === '/empty') {
          res.writeHead(404);
          res.end();
        } else if (req.url === '/hang') {
          // Never answers: only abort() or the timeout ends it.
        } else if (req.url === '/reset') {
          req.socket.destroy();
        }
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('a POST carries the body and headers, and the response fills status, headers, responseText and responseXML', async () => {
    const xhr = new XMLHttpRequest();
    xhr.overrideMimeType('text/xml; charset=utf-8');
    xhr.open('POST', `${base}/bosh`, true);
    xhr.setRequestHeader('Content-Type', 'text/xml; charset=utf-8');
    const sent = `<body xmlns='${BODY_NS}' rid='1'/>`;
    const states = await run(xhr, sent);

    assert.deepEqual(states.filter((s, i) => s !== states[i - 1]), [2, 3, 4], 'states after send');
    assert.equal(xhr.status, 200);
    assert.equal(xhr.getResponseHeader('x-test'), 'yes');
    assert.match(xhr.getAllResponseHeaders(), /^x-test: yes\r$/m);
    assert.ok(xhr.responseText.endsWith('ëllo</body></message></body>'), xhr.responseText);
    const root = xhr.responseXML.documentElement;
    assert.equal(root.tagName, 'body');
    assert.equal(root.namespaceURI, BODY_NS);
    assert.equal(root.getAttribute('sid'), 's1');
    assert.equal(root.getElementsByTagName('body')[0].textContent, 'hëllo');

    const got = seen.at(-1);
    assert.equal(got.method, 'POST');
    assert.equal(got.body, sent);
    assert.equal(got.headers['content-type'], 'text/xml; charset=utf-8');
    assert.equal(got.headers['content-length'], String(Buffer.byteLength(sent)));
  });

  test('malformed XML gives a <parsererror> document, as browsers do', async () => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${base}/broken`);
    await run(xhr, '<body/>');
    assert.equal(xhr.status, 200);
    assert.equal(xhr.responseXML.documentElement.tagName, 'parsererror');
  });

  test('an empty response leaves responseXML null and keeps the HTTP status', async () => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${base}/empty`);
    await run(xhr, '<body/>');
    assert.equal(xhr.status, 404);
    assert.equal(xhr.responseXML, null);
  });

  test('a connection reset ends in readyState 4 with status 0', async () => {
    const xhr = new XMLHttpRequest();
    let errored = false;
    xhr.onerror = () => { errored = true; };
    xhr.open('POST', `${base}/reset`);
    await run(xhr, '<body/>');
    assert.equal(xhr.status, 0);
    assert.equal(errored, true);
    assert.ok(xhr.error, 'the network error is kept');
  });

  test('abort() of a pending request reports DONE with status 0 once, then UNSENT, and never calls back again', async () => {
    const xhr = new XMLHttpRequest();
    const states = [];
    xhr.onreadystatechange = () => states.push(xhr.readyState);
    xhr.open('POST', `${base}/hang`);
    xhr.send('<body/>');
    await new Promise((r) => setTimeout(r, 50));
    xhr.abort();
    assert.deepEqual(states, [1, 4]);
    assert.equal(xhr.status, 0);
    assert.equal(xhr.readyState, 0);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(states, [1, 4], 'no callback after abort');
  });

  test('timeout ends a request that gets no answer', async () => {
    const xhr = new XMLHttpRequest();
    let timedOut = false;
    xhr.ontimeout = () => { timedOut = true; };
    xhr.timeout = 100;
    xhr.open('POST', `${base}/hang`);
    await run(xhr, '<body/>');
    assert.equal(timedOut, true);
    assert.equal(xhr.status, 0);
  });

  test('synchronous requests are refused rather than silently made async', () => {
    assert.throws(() => new XMLHttpRequest().open('POST', `${base}/bosh`, false), /synchronous/);
  });
});
