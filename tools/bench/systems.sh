# shellcheck shell=bash disable=SC2034 # sourced: compare uses the endpoints
# The systems tools/bench/compare measures, each started as a plain process on
# loopback from files in one run directory ($DIR), and the checks that their
# endpoints answer. Sourced by compare after tools/interop/lib.sh; expects
# DIR, HERE, INTEROP, SB_BIN and LOAD_BIN. Every start_* leaves a pidfile in
# $DIR (itself or through the interop script it calls): pid_of reads them, so
# a start may run in a subshell, and stop_all can end everything, even after
# a failure.

PROSODY_C2S_PORT=18222
PROSODY_HTTP_PORT=18280
EJABBERD_C2S_PORT=18322
EJABBERD_HTTP_PORT=18380
NXB_PORT=18480
SWITCHBOARD_PORT=18580
SWITCHBOARD_PLAIN_PORT=18590
STUB_PORT=18622
FORWARD_PORT=18680
NGINX_PORT=18780
# The domain switchboard routes to the load tool's stub server.
STUB_DOMAIN=stub.test
PASSWORD=password

PROSODY_BOSH=http://127.0.0.1:$PROSODY_HTTP_PORT/http-bind
PROSODY_WS=ws://127.0.0.1:$PROSODY_HTTP_PORT/xmpp-websocket
EJABBERD_BOSH=http://127.0.0.1:$EJABBERD_HTTP_PORT/http-bind
EJABBERD_WS=ws://127.0.0.1:$EJABBERD_HTTP_PORT/xmpp-websocket
NXB_BOSH=http://127.0.0.1:$NXB_PORT/http-bind
SWITCHBOARD_BOSH=http://127.0.0.1:$SWITCHBOARD_PORT/http-bind
SWITCHBOARD_WS=ws://127.0.0.1:$SWITCHBOARD_PORT/xmpp-websocket
SWITCHBOARD_PLAIN_BOSH=http://127.0.0.1:$SWITCHBOARD_PLAIN_PORT/http-bind
SWITCHBOARD_PLAIN_WS=ws://127.0.0.1:$SWITCHBOARD_PLAIN_PORT/xmpp-websocket
NGINX_URL=http://127.0.0.1:$NGINX_PORT/body.xml

# pid_of PART: the pid of a running part (prosody, ejabberd, nxb, stub,
# forward, switchboard, nginx), from its pidfile.
pid_of() {
    local file
    case "$1" in
        prosody) file=$DIR/prosody.run.pid ;;
        ejabberd) file=$DIR/ejabberd/ejabberd.run.pid ;;
        nginx) file=$DIR/nginx.run.pid ;;
        *) file=$DIR/$1.pid ;;
    esac
    cat "$file" 2>/dev/null || die "$1 is not running (no $file)"
}

# apt_ensure COMMAND PACKAGE: install Debian's PACKAGE (its service left
# unstarted) when COMMAND is missing.
apt_ensure() {
    command -v "$1" >/dev/null && return 0
    apt_install_unstarted "$2" >>"$DIR/compare.log" 2>&1 || die "apt-get install $2 failed (see $DIR/compare.log)"
    command -v "$1" >/dev/null || die "$2 installed but no $1"
}

# Prosody with plaintext c2s allowed (node-xmpp-bosh cannot STARTTLS; it is
# still offered, and switchboard takes it), users written as account files.
start_prosody() {
    PROSODY_C2S_PORT=$PROSODY_C2S_PORT PROSODY_HTTP_PORT=$PROSODY_HTTP_PORT PROSODY_PLAIN_C2S=1 \
        "$INTEROP/prosody.sh" start "$DIR" >>"$DIR/compare.log"
}

stop_prosody() {
    "$INTEROP/prosody.sh" stop "$DIR" >>"$DIR/compare.log"
}

# write_prosody_users N: user1..userN with $PASSWORD, the internal_plain
# storage format prosodyctl writes (~75 ms a user through prosodyctl).
write_prosody_users() {
    local accounts=$DIR/data/localhost/accounts i
    mkdir -p "$accounts"
    for i in $(seq 1 "$1"); do
        printf 'return {\n\t["password"] = "%s";\n};\n' "$PASSWORD" >"$accounts/user$i.dat"
    done
}

start_ejabberd() {
    mkdir -p "$DIR/ejabberd"
    EJABBERD_C2S_PORT=$EJABBERD_C2S_PORT EJABBERD_HTTP_PORT=$EJABBERD_HTTP_PORT \
        "$INTEROP/ejabberd.sh" start "$DIR/ejabberd" >>"$DIR/compare.log"
}

stop_ejabberd() {
    EJABBERD_C2S_PORT=$EJABBERD_C2S_PORT EJABBERD_HTTP_PORT=$EJABBERD_HTTP_PORT \
        "$INTEROP/ejabberd.sh" stop "$DIR/ejabberd" >>"$DIR/compare.log"
}

# register_ejabberd_users N: user1..userN through its HTTP admin API, one curl
# process for all (the accounts outlive restarts in the same directory).
register_ejabberd_users() {
    local n=$1 i
    for i in $(seq 1 "$n"); do
        printf 'url = "http://127.0.0.1:%s/api/register"\n' "$EJABBERD_HTTP_PORT"
        printf 'data = "{\\"user\\":\\"user%s\\",\\"host\\":\\"localhost\\",\\"password\\":\\"%s\\"}"\n' "$i" "$PASSWORD"
        printf 'header = "Content-Type: application/json"\nwrite-out = "\\n"\n'
        [ "$i" -lt "$n" ] && echo next
    done >"$DIR/ejabberd-users.curl"
    curl -sS --max-time 300 -K "$DIR/ejabberd-users.curl" >"$DIR/ejabberd-users.out"
    local ok
    ok=$(grep -cE 'successfully registered|already registered' "$DIR/ejabberd-users.out" || true)
    [ "$ok" -eq "$n" ] || die "ejabberd registered $ok of $n users (see $DIR/ejabberd-users.out)"
}

NXB_DIR=$HERE/node-xmpp-bosh

# node-xmpp-bosh's npm install, redone only when the lock file changes.
install_nxb() {
    local hash stamp=$NXB_DIR/node_modules/.bench-lock-sha256
    hash=$(sha256sum "$NXB_DIR/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
        (cd "$NXB_DIR" && npm ci --no-audit --no-fund) >>"$DIR/compare.log" 2>&1 ||
            die "npm ci of node-xmpp-bosh failed (see $DIR/compare.log)"
        echo "$hash" >"$stamp"
    fi
}

start_nxb() {
    port_open "$NXB_PORT" && die "port $NXB_PORT already in use"
    NXB_PORT=$NXB_PORT NXB_BACKEND_PORT=$PROSODY_C2S_PORT \
        spawn "$DIR/nxb.pid" "$DIR/nxb.log" \
        node "$NXB_DIR/node_modules/node-xmpp-bosh/run-server.js" --config="$NXB_DIR/bosh.conf.js"
    await_ports node-xmpp-bosh "$(pid_of nxb)" 100 "$NXB_PORT" "$DIR/nxb.log"
}

stop_nxb() { stop_by_pidfile node-xmpp-bosh "$DIR/nxb.pid" 50 >>"$DIR/compare.log"; }

start_stub() {
    port_open "$STUB_PORT" && die "port $STUB_PORT already in use"
    spawn "$DIR/stub.pid" "$DIR/stub.log" "$LOAD_BIN" stub --listen "127.0.0.1:$STUB_PORT" --duration 1h
    await_ports "load stub" "$(pid_of stub)" 100 "$STUB_PORT" "$DIR/stub.log"
}

stop_stub() { stop_by_pidfile "load stub" "$DIR/stub.pid" 50 >>"$DIR/compare.log"; }

# The load tool's bare byte forwarder in front of the stub: the floor of a
# relay, in switchboard's place.
start_forward() {
    port_open "$FORWARD_PORT" && die "port $FORWARD_PORT already in use"
    spawn "$DIR/forward.pid" "$DIR/forward.log" "$LOAD_BIN" forward \
        --listen "127.0.0.1:$FORWARD_PORT" --to "127.0.0.1:$STUB_PORT" --duration 1h
    await_ports "load forward" "$(pid_of forward)" 100 "$FORWARD_PORT" "$DIR/forward.log"
}

stop_forward() { stop_by_pidfile "load forward" "$DIR/forward.pid" 50 >>"$DIR/compare.log"; }

# start_switchboard_as PART PORT LOOPBACK_PLAINTEXT: switchboard in front of
# Prosody (localhost: STARTTLS verified against the run's CA, or skipped
# with backend.loopback_plaintext) and of the stub (stub.test, a plaintext
# loopback route).
start_switchboard_as() {
    port_open "$2" && die "port $2 already in use"
    cat >"$DIR/$1.toml" <<TOML
[server]
listen = "127.0.0.1:$2"

[backend]
ca_file = "$DIR/ca.pem"
# Verified as a server elsewhere would be, though Prosody is on loopback.
verify_loopback = true
loopback_plaintext = $3

[backend.routes]
localhost = "127.0.0.1:$PROSODY_C2S_PORT"
"$STUB_DOMAIN" = "127.0.0.1:$STUB_PORT"
TOML
    RUST_LOG=warn spawn "$DIR/$1.pid" "$DIR/$1.log" "$SB_BIN" --config "$DIR/$1.toml"
    await_ports "$1" "$(pid_of "$1")" 100 "$2" "$DIR/$1.log"
}

start_switchboard() { start_switchboard_as switchboard "$SWITCHBOARD_PORT" false; }
start_switchboard_plain() { start_switchboard_as switchboard_plain "$SWITCHBOARD_PLAIN_PORT" true; }
stop_switchboard() { stop_by_pidfile switchboard "$DIR/switchboard.pid" 50 >>"$DIR/compare.log"; }
stop_switchboard_plain() { stop_by_pidfile switchboard "$DIR/switchboard_plain.pid" 50 >>"$DIR/compare.log"; }

# nginx as one plain process (no master, one worker's work in it: a fair
# match for one-threaded switchboard) serving the same 95 bytes switchboard
# answers to an unknown BOSH sid, as a static file.
start_nginx() {
    port_open "$NGINX_PORT" && die "port $NGINX_PORT already in use"
    local root=$DIR/nginx
    mkdir -p "$root/www" "$root/tmp"
    printf '%s' "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='item-not-found'/>" \
        >"$root/www/body.xml"
    cat >"$root/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $root/nginx.pid;
error_log $root/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $root/tmp;
    proxy_temp_path $root/tmp;
    fastcgi_temp_path $root/tmp;
    uwsgi_temp_path $root/tmp;
    scgi_temp_path $root/tmp;
    types { text/xml xml; }
    keepalive_requests 1000000;
    sendfile on;
    open_file_cache max=16;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $root/www;
    }
}
CONF
    spawn "$DIR/nginx.run.pid" "$DIR/nginx.log" nginx -p "$root" -c "$root/nginx.conf"
    await_ports nginx "$(pid_of nginx)" 100 "$NGINX_PORT" "$DIR/nginx.log"
}

stop_nginx() { stop_by_pidfile nginx "$DIR/nginx.run.pid" 50 >>"$DIR/compare.log"; }

# Everything this run may have started; each stop is a no-op when its
# pidfile is absent.
stop_all() {
    stop_switchboard
    stop_switchboard_plain
    stop_nxb
    stop_forward
    stop_stub
    stop_nginx
    [ -f "$DIR/ejabberd/ejabberd.run.pid" ] && stop_ejabberd
    [ -f "$DIR/prosody.run.pid" ] && stop_prosody
    return 0
}

# check_bosh URL DOMAIN: a session creation answered with a sid.
check_bosh() {
    local out
    out=$(curl -sS --max-time 10 -H 'Content-Type: text/xml; charset=utf-8' \
        -d "<body rid='1000' to='$2' xml:lang='en' wait='5' hold='1' ver='1.6' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' xmlns='http://jabber.org/protocol/httpbind'/>" \
        "$1" 2>&1) || true
    case "$out" in
        *"sid="*) return 0 ;;
        *) echo "$out" | head -c 400 >&2; echo >&2; return 1 ;;
    esac
}

# check_ws URL: an RFC 7395 upgrade (subprotocol xmpp) answered with 101.
check_ws() {
    local out
    out=$(curl -sS -i --http1.1 --max-time 2 -H "Connection: Upgrade" -H "Upgrade: websocket" \
        -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" \
        -H "Sec-WebSocket-Protocol: xmpp" "${1/#ws:/http:}" 2>/dev/null | head -n 1) || true
    case "$out" in
        *" 101 "*) return 0 ;;
        *) echo "no 101 from $1: ${out:-nothing}" >&2; return 1 ;;
    esac
}

# check_tcp ADDR DOMAIN: an XMPP stream opened over plain TCP is answered
# with the server's stream header.
check_tcp() {
    local out
    out=$(
        exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
        printf "<stream:stream to='%s' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>" "$2" >&3
        timeout 5 head -c 64 <&3
    ) 2>&1 || true
    case "$out" in
        *"<stream:stream"*) return 0 ;;
        *) echo "no stream header from $1: ${out:-nothing}" | head -c 400 >&2; echo >&2; return 1 ;;
    esac
}

# cpu_ticks PID: utime + stime of the process so far, in clock ticks.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    # Fields after the command name, which may hold spaces: utime is the
    # 12th, stime the 13th.
    echo "${stat##*) }" | awk '{ print $12 + $13 }'
}

# rss_kib PID FIELD: VmRSS or VmHWM (peak) of the process, in KiB.
rss_kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# await_steady_rss PID...: wait (up to 30 s) until the summed VmRSS of the
# processes changes by less than 64 KiB over two seconds. A fresh Erlang VM
# gives back a few MB after start-up; measured from before that, its memory
# per session would come out negative.
await_steady_rss() {
    local previous=-1 now pid
    for _ in $(seq 1 15); do
        now=0
        for pid in "$@"; do now=$((now + $(rss_kib "$pid" VmRSS))); done
        [ $((now - previous)) -lt 64 ] && [ $((previous - now)) -lt 64 ] && return 0
        previous=$now
        sleep 2
    done
}
