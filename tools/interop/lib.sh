# Shared by the interop service scripts (prosody.sh, dns.sh, ejabberd.sh):
# each runs one server as a plain process recorded by pid in a directory.
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

# dispatch "$@": the scripts' common `start DIR` / `stop DIR` command line.
dispatch() {
    case "${1:-}" in
        start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
        stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
        *) die "usage: $0 start|stop DIR" ;;
    esac
}
