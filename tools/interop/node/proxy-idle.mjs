// The proxy timeouts of the deployment recipes (docs/deploy/), checked end
// to end through a proxy to switchboard:
//   BOSH: a request switchboard holds for the whole wait (60 s, its default
//         bosh.max_wait) is answered through the proxy with 200 and an empty
//         <body/>, not cut by the proxy's read timeout;
//   WebSocket: a stream left silent for PROXY_IDLE_SECONDS (default 100,
//         longer than the recipes' 90 s timeouts) is still open afterwards,
//         kept alive by switchboard's pings (websocket.ping_interval), and
//         closes cleanly with <close/>.
// Neither logs in: the server keeps a stream waiting for authentication for
// longer than this takes (Prosody: c2s_timeout, 300 s).
// Both connect from PROXY_CLIENT_ADDRESS (default 127.0.0.2) and send a
// forged X-Forwarded-For: 203.0.113.9, so that switchboard's log shows
// which address it took for the client: the proxy's own entry, the last one.
//
//   node proxy-idle.mjs https://HOST:PORT/http-bind wss://HOST:PORT/xmpp-websocket
//
// Env: XMPP_DOMAIN (localhost), PROXY_IDLE_SECONDS (100); the proxy's CA comes
// from NODE_EXTRA_CA_CERTS. Prints one line per check; exits 1 on a failure.
import https from 'node:https';
import http from 'node:http';
import { WebSocket } from 'ws';

const [boshUrl, wsUrl] = process.argv.slice(2);
if (!boshUrl || !wsUrl) {
  console.error('usage: node proxy-idle.mjs BOSH_URL WS_URL');
  process.exit(2);
}
const DOMAIN = process.env.XMPP_DOMAIN ?? 'localhost';
const IDLE_S = Number(process.env.PROXY_IDLE_SECONDS ?? 100);
const WAIT_S = 60;
const CLIENT_ADDRESS = process.env.PROXY_CLIENT_ADDRESS ?? '127.0.0.2';
const FORGED = { 'x-forwarded-for': '203.0.113.9' };
const BOSH_NS = 'http://jabber.org/protocol/httpbind';
const FRAMING_NS = 'urn:ietf:params:xml:ns:xmpp-framing';

function post(url, body, agent) {
  const mod = new URL(url).protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method: 'POST', agent, localAddress: CLIENT_ADDRESS, headers: { 'content-type': 'text/xml; charset=utf-8', ...FORGED } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout((WAIT_S + 30) * 1000, () => req.destroy(new Error('no answer within wait + 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

async function boshHeldRequest() {
  const agent = new (new URL(boshUrl).protocol === 'https:' ? https : http).Agent({ keepAlive: true });
  let rid = 1000 + Math.floor(Math.random() * 1e6);
  const create = await post(boshUrl, `<body rid='${rid}' to='${DOMAIN}' wait='${WAIT_S}' hold='1' ver='1.6' xml:lang='en' xmpp:version='1.0' xmlns='${BOSH_NS}' xmlns:xmpp='urn:xmpp:xbosh'/>`, agent);
  const sid = /\bsid=['"]([^'"]+)['"]/.exec(create.text)?.[1];
  if (create.status !== 200 || !sid) throw new Error(`session creation: ${create.status} ${create.text}`);
  // The stream features may come in the creation response or the next one;
  // the first empty answer is the one held for the whole wait.
  for (let i = 0; i < 4; i++) {
    rid += 1;
    const started = Date.now();
    const res = await post(boshUrl, `<body rid='${rid}' sid='${sid}' xmlns='${BOSH_NS}'/>`, agent);
    const seconds = (Date.now() - started) / 1000;
    if (res.status !== 200) throw new Error(`held request: status ${res.status} after ${seconds} s: ${res.text}`);
    if (/type=['"]terminate['"]/.test(res.text)) throw new Error(`held request: terminated after ${seconds} s: ${res.text}`);
    const empty = /^<body[^>]*\/>\s*$/.test(res.text.trim()) || /^<body[^>]*>\s*<\/body>$/.test(res.text.trim());
    if (!empty) continue;
    if (seconds < WAIT_S - 5) throw new Error(`held request answered empty after ${seconds} s, before the wait of ${WAIT_S} s`);
    rid += 1;
    await post(boshUrl, `<body rid='${rid}' sid='${sid}' type='terminate' xmlns='${BOSH_NS}'/>`, agent).catch(() => {});
    agent.destroy();
    return `BOSH: a request held ${seconds.toFixed(1)} s came back 200 with an empty body`;
  }
  throw new Error('no empty answer to an empty request');
}

function wsIdle() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, 'xmpp', { localAddress: CLIENT_ADDRESS, headers: FORGED });
    let pings = 0;
    let phase = 'open';
    let idleTimer = null;
    const fail = (e) => { clearTimeout(idleTimer); ws.terminate(); reject(e); };
    const limit = setTimeout(() => fail(new Error(`WebSocket: no clean end within ${IDLE_S + 30} s (phase ${phase})`)), (IDLE_S + 30) * 1000);
    ws.on('ping', () => { pings += 1; });
    ws.on('error', (e) => fail(e));
    ws.on('open', () => ws.send(`<open xmlns='${FRAMING_NS}' to='${DOMAIN}' version='1.0'/>`));
    ws.on('message', (data) => {
      const text = data.toString();
      if (phase === 'open' && text.includes('features')) {
        phase = 'idle';
        idleTimer = setTimeout(() => { phase = 'closing'; ws.send(`<close xmlns='${FRAMING_NS}'/>`); }, IDLE_S * 1000);
      } else if (phase === 'closing' && text.includes('<close')) {
        phase = 'closed';
      }
    });
    ws.on('close', (code) => {
      clearTimeout(limit);
      clearTimeout(idleTimer);
      if (phase !== 'closed') return reject(new Error(`WebSocket: closed with ${code} in phase ${phase} after ${pings} pings`));
      if (pings === 0) return reject(new Error('WebSocket: no ping from switchboard while idle'));
      resolve(`WebSocket: open after ${IDLE_S} s of client silence (${pings} pings from switchboard), closed with <close/> and ${code}`);
    });
  });
}

const results = await Promise.allSettled([boshHeldRequest(), wsIdle()]);
let failed = false;
for (const r of results) {
  if (r.status === 'fulfilled') console.log(`proxy-idle: ok: ${r.value}`);
  else { failed = true; console.log(`proxy-idle: FAILED: ${r.reason?.message ?? r.reason}`); }
}
process.exit(failed ? 1 : 0);
