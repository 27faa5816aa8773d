# Shared by the interop service scripts (prosody.sh, dns.sh, ejabberd.sh) and
# the comparison harness (tools/bench): each runs servers as plain processes
# recorded by pid in a directory.
# Source it after setting NAME (the script's name for messages).

die() { echo "$NAME: $*" >&2; exit 1; }

# Whether something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# refuse_if_running PIDFILE DIR: one server per directory.
refuse_if_running() {
    if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then
        die "already running from $2 (pid $(cat "$1"))"
    fi
}

# stop_by_pidfile LABEL PIDFILE TENTHS: SIGTERM the recorded pid, wait up to
# TENTHS tenths of a second for it to go, then SIGKILL; forget the pidfile.
stop_by_pidfile() {
    local label=$1 pidfile=$2 tenths=$3 pid i
    [ -f "$pidfile" ] || { echo "$label: not started from $(dirname "$pidfile")"; return 0; }
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for i in $(seq 1 "$tenths"); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
    echo "$label: stopped (pid $pid)"
}

# apt_install_unstarted PACKAGE...: apt-get update, then install Debian
# packages without letting their postinst start a system service (these
# servers run as plain processes on our own ports): a policy-rc.d that says
# 101 keeps invoke-rc.d from starting them. Only ours, only for this call.
apt_install_unstarted() {
    local policy=/usr/sbin/policy-rc.d ours="" rc=0
    apt-get update
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" || rc=$?
    if [ -n "$ours" ]; then rm -f "$policy"; fi
    return "$rc"
}

# npm_ci DIR: npm ci only when DIR/node_modules is missing or the lock file
# changed since.
npm_ci() {
    local dir=$1 hash stamp
    hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    stamp="$dir/node_modules/.interop-lock-sha256"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
        echo "$NAME: npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund)
        echo "$hash" >"$stamp"
    fi
}

# Test certificates. Extensions matter: rustls/webpki refuse v1
# certificates, leaves without a SAN, and CA certificates used as leaves.
#
# make_ca KEY PEM NAME: a throwaway CA (EC P-256, 30 days) named NAME.
make_ca() {
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$1" -out "$2" -days 30 -sha256 -subj "/CN=$3" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# issue_cert CA_PEM CA_KEY OUT CN SAN: OUT.key and OUT.crt, a server
# certificate for CN signed by the CA, with subjectAltName SAN (such as
# DNS:localhost,IP:127.0.0.1).
issue_cert() {
    local ca=$1 ca_key=$2 out=$3 cn=$4 san=$5
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$out.key" -out "$out.csr" -subj "/CN=$cn" 2>/dev/null
    printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=$san" >"$out.ext"
    openssl x509 -req -in "$out.csr" -CA "$ca" -CAkey "$ca_key" \
        -CAcreateserial -out "$out.crt" -days 30 -sha256 -extfile "$out.ext" 2>/dev/null
    rm -f "$out.csr" "$out.ext"
}

# prosody_streams LOG TEXT: the ids of the streams whose lines in Prosody's
# LOG contain TEXT (Prosody names each stream in the line's fourth field),
# one per line, sorted.
prosody_streams() { grep -F "$2" "$1" | awk '{ print $4 }' | sort -u; }

# prosody_plain_logins LOG: how many streams in Prosody's LOG logged in
# without having been encrypted.
prosody_plain_logins() {
    comm -13 <(prosody_streams "$1" 'Stream encrypted') <(prosody_streams "$1" 'Authenticated as') \
        | grep -c . || true
}

# dispatch "$@": the scripts' common `start DIR` / `stop DIR` command line.
dispatch() {
    case "${1:-}" in
        start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
        stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
        *) die "usage: $0 start|stop DIR" ;;
    esac
}

# spawn PIDFILE LOG CMD...: run CMD as a plain background process, its output
# appended to LOG, its pid recorded in PIDFILE (for stop_by_pidfile).
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    "$@" >>"$logfile" 2>&1 &
    echo "$!" >"$pidfile"
}

# await_ports LABEL PID TENTHS "PORT..." LOG...: wait until every PORT on
# 127.0.0.1 accepts connections. Dies with the tails of the LOGs when the
# process exits first, or (killing it) when TENTHS tenths of a second pass.
await_ports() {
    local label=$1 pid=$2 tenths=$3 ports=$4 port ready
    shift 4
    for _ in $(seq 1 "$tenths"); do
        ready=1
        for port in $ports; do
            port_open "$port" || { ready=""; break; }
        done
        [ -n "$ready" ] && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$@" >&2 || true; die "$label exited during start-up"; }
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    tail -n 20 "$@" >&2 || true
    die "$label: port(s) $ports not open after $((tenths / 10)) s"
}
