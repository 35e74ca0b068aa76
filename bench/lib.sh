# Helpers shared by the bench/ scripts (sourced, not run). Expects ROOT (the repository) set.
# Release binaries come from ${CARGO_TARGET_DIR:-$ROOT/target}/release; NO_BUILD=1 skips the
# build. Every process started through `spawn` is stopped when the script exits.

# The other clients run with every discovery but trackers off; so does ours (no DHT).
export SWARM_NO_DHT=1
PYTHON=/usr/bin/python3
TIME=/usr/bin/time
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARM="$TARGET_DIR/release/swarm"
TRACKER="$TARGET_DIR/release/swarm-tracker"
CEILING="$TARGET_DIR/release/examples/ceiling"
LT_PEER="$ROOT/tests/peers/lt_peer.py"
LOAD_PEER="$ROOT/bench/load_peer.py"

# Builds the release binaries (swarm, swarm-tracker, the ceiling example) unless NO_BUILD=1.
build_release() {
    if [[ ${NO_BUILD:-0} == 1 ]]; then
        local bin
        for bin in "$SWARM" "$TRACKER" "$CEILING"; do
            [[ -x $bin ]] || { echo "NO_BUILD=1 but $bin is missing; build it or drop NO_BUILD" >&2; exit 1; }
        done
        return 0
    fi
    echo "building release binaries..." >&2
    (cd "$ROOT" && cargo build --release --quiet -p client -p tracker --bin swarm \
        --bin swarm-tracker && cargo build --release --quiet -p tests --example ceiling)
}

# Is program $1 installed? (a name on PATH, or python3-libtorrent for "libtorrent")
have() {
    case $1 in
    libtorrent) "$PYTHON" -c 'import libtorrent' 2>/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# Processes started through spawn, stopped on exit; work directory removed unless kept.
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n ${WORK_OWNED:-} && ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Sets WORK to $WORK or a new directory under /tmp (removed at exit unless KEEP=1).
make_work() {
    if [[ -z ${WORK:-} ]]; then
        WORK=$(mktemp -d "/tmp/$1.XXXXXX")
        WORK_OWNED=1
    fi
    mkdir -p "$WORK"
    echo "work directory: $WORK" >&2
}

# Runs "$@" in the background with output to file $LOG; its pid in $SPAWNED.
spawn() {
    "$@" >"$LOG" 2>&1 &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# Stops process $1 (SIGTERM) and waits for it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds for a line matching $1 in file $3.
wait_line() {
    local pattern=$1 secs=$2 file=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file" >&2
    tail -5 "$file" >&2 || true
    return 1
}

# Waits up to $2 seconds until something listens on 127.0.0.1:$1.
wait_port() {
    local port=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $port after ${secs}s" >&2
    return 1
}

# Writes $2 MiB of random data to file $1 unless it already has that size.
random_file() {
    local file=$1 mib=$2
    if [[ ! -f $file || $(stat -c %s "$file") -ne $((mib << 20)) ]]; then
        echo "writing $mib MiB of random data to $file..." >&2
        mkdir -p "$(dirname "$file")"
        head -c $((mib << 20)) /dev/urandom >"$file"
    fi
}

# Median of column $1 (numbers) in file $2.
median() {
    sort -g -k"$1","$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

# "wall cpu rss_kib" from a /usr/bin/time -v report $1.
time_fields() {
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + t[i] }
        /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 }
        END { printf "%.2f %.2f %d\n", w, u + s, r }' "$1"
}

# CPU seconds (user + system) process $1 has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# Field $2 (e.g. VmRSS, VmHWM) of /proc/$1/status, in KiB.
proc_kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# The 1-minute load average.
load1() {
    cut -d' ' -f1 /proc/loadavg
}
