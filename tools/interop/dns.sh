#!/usr/bin/env bash
# A local DNS server (dnsmasq as a plain process) for switchboard's SRV tests.
#
#   dns.sh start DIR   serve on 127.0.0.1:DNS_PORT until stopped; pid in DIR
#   dns.sh stop DIR    kill by recorded pid and wait
#
# Records (nothing else is answered from outside; all of .test is local, so
# unknown names there get NXDOMAIN rather than REFUSED):
#   SRV _xmpp-client._tcp.srv.test -> dead.srv.test:DEAD_PORT (priority 0,
#                                     nothing listens there)
#                                  -> xmpp.srv.test:PROSODY_C2S_PORT (priority 10)
#   A   dead.srv.test, xmpp.srv.test -> 127.0.0.1
#   A   fallback.test              -> 127.0.0.1   (no SRV: clients fall back to :5222)
#
# Env: DNS_PORT (15353), PROSODY_C2S_PORT (15222), DEAD_PORT (15299).
set -euo pipefail

DNS_PORT="${DNS_PORT:-15353}"
C2S_PORT="${PROSODY_C2S_PORT:-15222}"
# The first SRV target: a port nothing listens on, so a client must fall
# back to the next target (RFC 6120 §3.2.1).
DEAD_PORT="${DEAD_PORT:-15299}"

NAME=dns.sh
# shellcheck source=tools/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_installed() {
    if ! command -v dnsmasq >/dev/null && [ ! -x /usr/sbin/dnsmasq ]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y dnsmasq-base
    fi
}

dnsmasq_bin() {
    command -v dnsmasq 2>/dev/null || echo /usr/sbin/dnsmasq
}

start() {
    local dir=$1
    [ -d "$dir" ] || die "no such directory: $dir"
    dir=$(cd "$dir" && pwd)
    refuse_if_running "$dir/dnsmasq.run.pid" "$dir"
    ensure_installed
    # --keep-in-foreground: $! is dnsmasq itself. --user=root: it would switch
    # to nobody and then could not write its log in DIR.
    "$(dnsmasq_bin)" --keep-in-foreground --conf-file=/dev/null \
        --user=root --group=root --pid-file="$dir/dnsmasq.pid" \
        --listen-address=127.0.0.1 --bind-interfaces --port="$DNS_PORT" \
        --no-resolv --no-hosts --no-poll --local=/test/ \
        --log-queries --log-facility="$dir/dnsmasq.log" \
        --srv-host="_xmpp-client._tcp.srv.test,dead.srv.test,$DEAD_PORT,0,0" \
        --srv-host="_xmpp-client._tcp.srv.test,xmpp.srv.test,$C2S_PORT,10,0" \
        --host-record=dead.srv.test,127.0.0.1 \
        --host-record=xmpp.srv.test,127.0.0.1 \
        --host-record=fallback.test,127.0.0.1 \
        >>"$dir/dnsmasq.stdout.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/dnsmasq.run.pid"
    local i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/dnsmasq.stdout.log" >&2 || true; die "dnsmasq exited during start-up"; }
        # dnsmasq logs "started" once its sockets are bound.
        if grep -q 'started, version' "$dir/dnsmasq.log" 2>/dev/null; then
            echo "dnsmasq: pid $pid, 127.0.0.1:$DNS_PORT (udp+tcp), SRV srv.test -> :$DEAD_PORT (priority 0, nothing listens), :$C2S_PORT (priority 10)"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    die "dnsmasq not ready after 5 s"
}

stop() {
    stop_by_pidfile dnsmasq "$1/dnsmasq.run.pid" 50
}

dispatch "$@"
