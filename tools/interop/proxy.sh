#!/usr/bin/env bash
# Runs Debian's nginx or HAProxy as a plain process in front of switchboard,
# from the deployment recipes themselves (docs/deploy/nginx.conf,
# docs/deploy/haproxy.cfg): https:// and wss:// on the proxy, a certificate
# made for the run.
#
#   proxy.sh start nginx|haproxy DIR   install if missing, make DIR/proxy/ca.pem
#                                      and a certificate it signs for
#                                      127.0.0.1 and localhost, render the
#                                      recipe into DIR, start, wait for the port
#   proxy.sh stop nginx|haproxy DIR    stop by recorded pid and wait
#
# The recipe's text is used as it is, with only these replaced (each must be
# found exactly once, so a recipe that changes them fails here): the listen
# port (bound to 127.0.0.1 here), the certificate paths, and switchboard's
# address. nginx's recipe is a file for conf.d, so a small main config around
# it sets the pid, log and temp paths into DIR and includes it.
#
# Env: SWITCHBOARD_PORT (15290), PROXY_NGINX_PORT (15443),
# PROXY_HAPROXY_PORT (15444). Logs: DIR/nginx.access.log,
# DIR/nginx.error.log, DIR/haproxy.log (HAProxy's request log).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=proxy.sh
# shellcheck source=tools/interop/lib.sh
. "$HERE/lib.sh"

SWITCHBOARD_PORT="${SWITCHBOARD_PORT:-15290}"
PROXY_NGINX_PORT="${PROXY_NGINX_PORT:-15443}"
PROXY_HAPROXY_PORT="${PROXY_HAPROXY_PORT:-15444}"

# The address the recipes name for switchboard: its default listen address.
RECIPE_UPSTREAM=127.0.0.1:5280

ensure_installed() {
    local kind=$1
    if ! command -v "$kind" >/dev/null && [ ! -x "/usr/sbin/$kind" ]; then
        apt_install_unstarted "$kind" || die "apt-get install $kind failed"
    fi
    command -v openssl >/dev/null || apt_install_unstarted openssl || die "apt-get install openssl failed"
}

binary() {
    command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"
}

# A CA for the run and a certificate it signs for the proxy (127.0.0.1 and
# localhost); the Node clients trust the CA through NODE_EXTRA_CA_CERTS.
make_cert() {
    local out=$1/proxy
    [ -f "$out/cert.crt" ] && return 0
    mkdir -p "$out"
    make_ca "$out/ca.key" "$out/ca.pem" "switchboard proxy test CA"
    issue_cert "$out/ca.pem" "$out/ca.key" "$out/cert" localhost "DNS:localhost,IP:127.0.0.1"
    # HAProxy reads the chain and the key from one file.
    cat "$out/cert.crt" "$out/cert.key" >"$out/haproxy.pem"
    chmod 600 "$out"/*.key "$out/haproxy.pem"
}

# render SRC DST OLD NEW [OLD NEW]...: SRC with each OLD replaced by NEW; each
# OLD must occur exactly once.
render() {
    local src=$1 dst=$2 text old new count
    shift 2
    text=$(<"$src")
    while [ $# -gt 0 ]; do
        old=$1 new=$2
        shift 2
        count=$(grep -cF -- "$old" "$src" || true)
        [ "$count" -eq 1 ] || die "$src: expected \"$old\" exactly once, found it $count times"
        text=${text//"$old"/"$new"}
    done
    printf '%s\n' "$text" >"$dst"
}

start_nginx() {
    local dir=$1 port=$PROXY_NGINX_PORT
    mkdir -p "$dir/nginx/temp"
    render "$ROOT/docs/deploy/nginx.conf" "$dir/nginx/switchboard.conf" \
        "listen 443 ssl;" "listen 127.0.0.1:$port ssl;" \
        "/etc/letsencrypt/live/chat.example.org/fullchain.pem" "$dir/proxy/cert.crt" \
        "/etc/letsencrypt/live/chat.example.org/privkey.pem" "$dir/proxy/cert.key" \
        "server $RECIPE_UPSTREAM;" "server 127.0.0.1:$SWITCHBOARD_PORT;"
    # The main config a Debian host has around conf.d, reduced to this run's
    # paths. Workers run as root: the temp dir is private to root.
    cat >"$dir/nginx/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx.error.log info;
events { worker_connections 256; }
http {
    access_log $dir/nginx.access.log;
    client_body_temp_path $dir/nginx/temp/body;
    proxy_temp_path $dir/nginx/temp/proxy;
    fastcgi_temp_path $dir/nginx/temp/fastcgi;
    uwsgi_temp_path $dir/nginx/temp/uwsgi;
    scgi_temp_path $dir/nginx/temp/scgi;
    include $dir/nginx/switchboard.conf;
}
NGINX
    local nginx
    nginx=$(binary nginx)
    "$nginx" -t -q -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx.error.log" \
        || { tail -n 20 "$dir/nginx.error.log" >&2; die "nginx -t refused the rendered recipe"; }
    spawn "$dir/nginx.run.pid" "$dir/nginx.stdout.log" \
        "$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx.error.log"
    await_ports nginx "$(cat "$dir/nginx.run.pid")" 50 "$port" "$dir/nginx.error.log" "$dir/nginx.stdout.log"
    echo "nginx: pid $(cat "$dir/nginx.run.pid"), https://127.0.0.1:$port -> 127.0.0.1:$SWITCHBOARD_PORT, ca $dir/proxy/ca.pem"
}

start_haproxy() {
    local dir=$1 port=$PROXY_HAPROXY_PORT
    render "$ROOT/docs/deploy/haproxy.cfg" "$dir/haproxy.cfg" \
        "bind :443 ssl" "bind 127.0.0.1:$port ssl" \
        "/etc/haproxy/certs/chat.example.org.pem" "$dir/proxy/haproxy.pem" \
        "server switchboard $RECIPE_UPSTREAM" "server switchboard 127.0.0.1:$SWITCHBOARD_PORT"
    local haproxy
    haproxy=$(binary haproxy)
    "$haproxy" -c -q -f "$dir/haproxy.cfg" >"$dir/haproxy.check.log" 2>&1 \
        || { cat "$dir/haproxy.check.log" >&2; die "haproxy -c refused the rendered recipe"; }
    # -db: stay in the foreground; the recipe logs requests to standard output.
    spawn "$dir/haproxy.run.pid" "$dir/haproxy.log" "$haproxy" -db -f "$dir/haproxy.cfg"
    await_ports haproxy "$(cat "$dir/haproxy.run.pid")" 50 "$port" "$dir/haproxy.log"
    echo "haproxy: pid $(cat "$dir/haproxy.run.pid"), https://127.0.0.1:$port -> 127.0.0.1:$SWITCHBOARD_PORT, ca $dir/proxy/ca.pem"
}

start() {
    local kind=$1 dir=$2 port
    [ -d "$dir" ] || die "no such directory: $dir"
    dir=$(cd "$dir" && pwd)
    refuse_if_running "$dir/$kind.run.pid" "$dir"
    if [ "$kind" = nginx ]; then port=$PROXY_NGINX_PORT; else port=$PROXY_HAPROXY_PORT; fi
    port_open "$port" && die "port $port already in use"
    ensure_installed "$kind"
    make_cert "$dir"
    "start_$kind" "$dir"
}

stop() {
    stop_by_pidfile "$1" "$2/$1.run.pid" 50
}

case "${1:-}:${2:-}" in
    start:nginx | start:haproxy | stop:nginx | stop:haproxy)
        [ $# -eq 3 ] || die "usage: $0 start|stop nginx|haproxy DIR"
        "$1" "$2" "$3"
        ;;
    *) die "usage: $0 start|stop nginx|haproxy DIR" ;;
esac
