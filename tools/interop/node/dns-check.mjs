// Checks that the interop DNS server (tools/interop/dns.sh) answers what the
// SRV tests rely on. Uses Node's own resolver; exits non-zero on any mismatch.
//   DNS_PORT (15353), PROSODY_C2S_PORT (15222)
import { Resolver } from 'node:dns/promises';
import assert from 'node:assert/strict';

const dnsPort = process.env.DNS_PORT ?? '15353';
const c2sPort = Number(process.env.PROSODY_C2S_PORT ?? '15222');
const resolver = new Resolver({ timeout: 2000, tries: 1 });
resolver.setServers([`127.0.0.1:${dnsPort}`]);

const deadPort = Number(process.env.DEAD_PORT ?? '15299');
const srv = await resolver.resolveSrv('_xmpp-client._tcp.srv.test');
srv.sort((a, b) => a.priority - b.priority);
assert.deepEqual(srv.map(({ name, port, priority }) => ({ name, port, priority })), [
  { name: 'dead.srv.test', port: deadPort, priority: 0 },
  { name: 'xmpp.srv.test', port: c2sPort, priority: 10 },
]);
assert.deepEqual(await resolver.resolve4('dead.srv.test'), ['127.0.0.1']);
assert.deepEqual(await resolver.resolve4('xmpp.srv.test'), ['127.0.0.1']);
assert.deepEqual(await resolver.resolve4('fallback.test'), ['127.0.0.1']);
// No SRV for fallback.test: NXDOMAIN or NODATA, never a server failure.
await assert.rejects(resolver.resolveSrv('_xmpp-client._tcp.fallback.test'),
  (err) => err.code === 'ENOTFOUND' || err.code === 'ENODATA');
console.log(`dns-check: ok (127.0.0.1:${dnsPort}: SRV srv.test -> dead.srv.test:${deadPort} then xmpp.srv.test:${c2sPort}, A xmpp.srv.test, A fallback.test, no SRV fallback.test)`);
