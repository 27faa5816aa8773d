// node-xmpp-bosh configuration for tools/bench/compare (loaded by its
// run-server.js --config=THIS_FILE). Ports come from the environment:
// NXB_PORT (where it listens on 127.0.0.1) and NXB_BACKEND_PORT (Prosody's
// c2s port on 127.0.0.1).
"use strict";

var events = require("events");
var util = require("util");

var BACKEND_PORT = parseInt(process.env.NXB_BACKEND_PORT, 10);
if (!(BACKEND_PORT > 0 && BACKEND_PORT < 65536)) {
    throw new Error("NXB_BACKEND_PORT must be a TCP port, not " + process.env.NXB_BACKEND_PORT);
}

// node-xmpp-bosh hard-codes port 5222 and looks the domain up by SRV; this
// lookup service (its own hook: new ctor(port, stream), then connect(socket),
// emitting 'connect' or 'error') sends every stream to the local backend.
function LoopbackBackend(port, stream) {
    events.EventEmitter.call(this);
}
util.inherits(LoopbackBackend, events.EventEmitter);
LoopbackBackend.prototype.connect = function (socket) {
    var self = this;
    socket.once("connect", function (e) { self.emit("connect", e); });
    socket.once("error", function () { self.emit("error", "remote-connection-failed"); });
    socket.connect(BACKEND_PORT, "127.0.0.1");
};

exports.config = {
    port: parseInt(process.env.NXB_PORT || "18480", 10),
    host: "127.0.0.1",
    path: /^\/http-bind(\/+)?$/,
    // Per-request INFO lines would make it pay for logging the others skip.
    logging: "WARN",
    max_data_held: 100000,
    max_xmpp_stanza_size: 500000,
    max_bosh_connections: 2,
    window_size: 2,
    default_inactivity: 70,
    max_inactivity: 160,
    http_socket_keepalive: 60,
    max_streams_per_session: 8,
    http_headers: {},
    // Its STARTTLS uses a crypto API Node no longer has: stay in plaintext
    // to the loopback backend, which offers STARTTLS without requiring it.
    no_tls_domains: ["localhost"],
    firewall: { deny: [] },
    route_filter: /.*/,
    pidgin_compatible: true,
    trim_default_length: 256,
    system_info_password: "",
    websocket_ping_interval: 30,
    lookup_service: LoopbackBackend
};
