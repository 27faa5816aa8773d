# shellcheck shell=bash
# Shared by tools/faults/run and tools/soak/run: the release binaries, the
# load tool's stub server and switchboard in front of it, each a plain
# process with a pidfile in $DIR (so that stop_parts ends them, even after
# a failure), and readings of a process's memory and descriptors.
# Source after setting NAME, ROOT and DIR; it sources tools/interop/lib.sh.

# shellcheck source=tools/interop/lib.sh
. "$ROOT/tools/interop/lib.sh"

# build_release: switchboard and the load tool, release builds; sets SB_BIN
# and LOAD_BIN.
build_release() {
    (cd "$ROOT" && cargo build --release -p switchboard -p load) || die "cargo build failed"
    local target=${CARGO_TARGET_DIR:-$ROOT/target}/release
    SB_BIN=$target/switchboard
    LOAD_BIN=$target/load
}

# start_stub PORT: the load tool's XMPP server on 127.0.0.1:PORT. It stops
# by itself after 12 h at the latest.
start_stub() {
    port_open "$1" && die "port $1 already in use"
    spawn "$DIR/stub.pid" "$DIR/stub.log" "$LOAD_BIN" stub --listen "127.0.0.1:$1" --duration 12h
    await_ports "load stub" "$(cat "$DIR/stub.pid")" 100 "$1" "$DIR/stub.log"
}

# start_switchboard PORT STUB_PORT [LINE...]: switchboard on 127.0.0.1:PORT
# routing localhost to the stub, the LINEs added to its [server] table, its
# open-files limit raised to the hard limit (it does not raise it itself).
start_switchboard() {
    local port=$1 stub=$2
    shift 2
    port_open "$port" && die "port $port already in use"
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\n' "$port"
        printf '%s\n' "$@"
        printf '\n[backend.routes]\nlocalhost = "127.0.0.1:%s"\n' "$stub"
    } >"$DIR/switchboard.toml"
    (
        ulimit -n "$(ulimit -Hn)"
        RUST_LOG=${RUST_LOG:-warn} spawn "$DIR/switchboard.pid" "$DIR/switchboard.log" \
            "$SB_BIN" --config "$DIR/switchboard.toml"
    )
    await_ports switchboard "$(cat "$DIR/switchboard.pid")" 100 "$port" "$DIR/switchboard.log"
}

# stop_parts: stop switchboard (continued first, should a fault have left
# it stopped) and the stub, whichever this directory started.
stop_parts() {
    local pid
    if pid=$(cat "$DIR/switchboard.pid" 2>/dev/null); then
        kill -CONT "$pid" 2>/dev/null || true
    fi
    stop_by_pidfile switchboard "$DIR/switchboard.pid" 50
    stop_by_pidfile "load stub" "$DIR/stub.pid" 50
}

# rss_kib PID: its resident memory (VmRSS) in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# fd_count PID: its open descriptors.
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# now_ms: wall-clock milliseconds since the Unix epoch, the clock of the
# load tool's end times.
now_ms() { date +%s%3N; }

# await_progress LOG PHASE SECONDS PID: wait until the load tool's progress
# lines in LOG reach PHASE (setup, warm-up, messages, drain, logout), or die
# when the load tool (PID) exits first or SECONDS pass.
await_progress() {
    local log=$1 phase=$2 seconds=$3 pid=$4 i
    for i in $(seq 1 $((seconds * 10))); do
        grep -q "] $phase " "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "load exited before $phase"; }
        sleep 0.1
    done
    die "load not in $phase after $seconds s"
}
