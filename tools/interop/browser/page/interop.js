// Starts Converse.js from the query string and exposes its internal API to
// the test as window.interop (through a plugin: the only way in).
//   ?bosh=URL or ?websocket=URL   the one transport this page uses
//   &jid=USER@DOMAIN&password=P   logs in (and, over BOSH, re-attaches the
//                                 session kept in sessionStorage on reload)
import converse from '/dist/converse.min.js';

const params = new URLSearchParams(location.search);
const bosh = params.get('bosh');
const websocket = params.get('websocket');
window.interop = { ready: false, events: [] };

converse.plugins.add('switchboard-interop', {
  initialize() {
    const _converse = this._converse;
    const { api } = _converse;
    window.interop.api = api;
    for (const name of ['connected', 'reconnected', 'disconnected', 'logout', 'noResumeableBOSHSession']) {
      api.listen.on(name, () => window.interop.events.push(name));
    }
    api.listen.on('initialized', () => { window.interop.ready = true; });
  },
});

converse.initialize({
  whitelisted_plugins: ['switchboard-interop'],
  // OMEMO fetches its wasm from the page's root, not assets_path; it has
  // nothing to do with the transport.
  blacklisted_plugins: ['converse-omemo'],
  assets_path: '/dist/',
  // Everything from this page's own origin, nothing from the network.
  view_mode: 'overlayed',
  discover_connection_methods: false,
  i18n: 'en',
  show_controlbox_by_default: true,
  play_sounds: false,
  show_desktop_notifications: false,
  allow_non_roster_messaging: true,
  // A session that dies must fail the test, not come back as a new one.
  auto_reconnect: false,
  ...(bosh ? { bosh_service_url: bosh } : { websocket_url: websocket }),
  jid: params.get('jid'),
  password: params.get('password'),
  auto_login: true,
  keepalive: true,
  loglevel: 'debug',
});
