#!/usr/bin/env bash
# One seeder -> one leecher over loopback, files on disk: the leecher's wall time (start to
# exit), CPU seconds and peak RSS, median of N runs, for four pairings of our client (release
# build) and libtorrent (through tests/peers/lt_peer.py):
#
#   ours -> ours, libtorrent -> libtorrent, ours -> libtorrent, libtorrent -> ours
#
# Usage: bench/one_stream.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 3 runs)
#   WORK=DIR   keep the data and logs there (default: a new directory under /tmp, removed at
#              the end unless KEEP=1)
#   PAIRS="ours-ours lt-lt ours-lt lt-ours"   which pairings to run
#   NO_BUILD=1 use the release binaries already in target/release
#
# Nothing is dropped from the page cache: the source file stays cached between runs, as in a
# seeder that serves a popular file. The leecher's output directory is deleted before each run.
# Needs: cargo, /usr/bin/time, /usr/bin/python3 with libtorrent (python3-libtorrent).
set -euo pipefail

SIZE_MIB=${1:-1024}
RUNS=${2:-3}
PAIRS=${PAIRS:-"ours-ours lt-lt ours-lt lt-ours"}
PIECE=256K
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LT_PEER="$ROOT/tests/peers/lt_peer.py"
PYTHON=/usr/bin/python3
TIME=/usr/bin/time

for tool in "$TIME" "$PYTHON" cargo; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
"$PYTHON" -c 'import libtorrent' 2>/dev/null || { echo "missing: python3-libtorrent" >&2; exit 1; }

if [[ ${NO_BUILD:-0} != 1 ]]; then
    echo "building release binaries..." >&2
    (cd "$ROOT" && cargo build --release --quiet -p client -p tracker --bin swarm --bin swarm-tracker)
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SWARM="$TARGET_DIR/release/swarm"
TRACKER="$TARGET_DIR/release/swarm-tracker"

WORK_GIVEN=${WORK:+1}
WORK=${WORK:-$(mktemp -d /tmp/one_stream.XXXXXX)}
mkdir -p "$WORK"
echo "work directory: $WORK" >&2

# Processes this script started, stopped on exit (and the work directory removed unless it was
# given or KEEP=1).
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -z $WORK_GIVEN && ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

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

DATA="$WORK/seed/data.bin"
if [[ ! -f $DATA || $(stat -c %s "$DATA") -ne $((SIZE_MIB << 20)) ]]; then
    echo "writing $SIZE_MIB MiB of random data..." >&2
    mkdir -p "$WORK/seed"
    head -c $((SIZE_MIB << 20)) /dev/urandom >"$DATA"
fi

TRACKER_PORT=$(free_port)
"$TRACKER" --listen "127.0.0.1:$TRACKER_PORT" >"$WORK/tracker.log" 2>&1 &
PIDS+=($!)
TORRENT="$WORK/data.torrent"
"$SWARM" create "$DATA" --piece-size "$PIECE" -t "http://127.0.0.1:$TRACKER_PORT/announce" \
    -o "$TORRENT" -f >/dev/null

# Starts a seeder of kind $1 (ours|lt) as $SEEDER; returns once it serves the data.
start_seeder() {
    local kind=$1 port log
    port=$(free_port)
    log="$WORK/seed-$kind.log"
    case $kind in
    ours)
        "$SWARM" seed "$TORRENT" --data "$DATA" --listen "127.0.0.1:$port" >"$log" 2>&1 &
        SEEDER=$!
        PIDS+=("$SEEDER")
        wait_line "listening on port" 300 "$log"
        ;;
    lt)
        "$PYTHON" "$LT_PEER" seed "$TORRENT" "$WORK/seed" --port "$port" --timeout 3600 \
            >"$log" 2>&1 &
        SEEDER=$!
        PIDS+=("$SEEDER")
        wait_line "^seeding" 300 "$log"
        ;;
    esac
    # Let its announce reach the tracker.
    sleep 1
}

# Runs a leecher of kind $1 once under /usr/bin/time -v; appends "wall cpu rss_kib" to $2.
run_leecher() {
    local kind=$1 out=$2 dir="$WORK/leech" port log timing
    port=$(free_port)
    rm -rf "$dir"
    mkdir -p "$dir"
    log="$WORK/leech-$kind.log"
    timing="$WORK/time.txt"
    case $kind in
    ours)
        "$TIME" -v -o "$timing" "$SWARM" fetch "$TORRENT" -o "$dir" --listen "127.0.0.1:$port" -q \
            >"$log" 2>&1
        ;;
    lt)
        "$TIME" -v -o "$timing" "$PYTHON" "$LT_PEER" leech "$TORRENT" "$dir" --port "$port" \
            --timeout 600 >"$log" 2>&1
        ;;
    esac
    cmp -s "$DATA" "$dir/data.bin" || { echo "$kind leecher: data differs" >&2; exit 1; }
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + t[i] }
        /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 }
        END { printf "%.2f %.2f %d\n", w, u + s, r }' "$timing" >>"$out"
    rm -rf "$dir"
}

# Median of column $1 in file $2.
median() {
    sort -n -k"$1","$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

printf '\n%s MiB, %s pieces, median of %s\n' "$SIZE_MIB" "$PIECE" "$RUNS"
printf '| seeder -> leecher | wall s | MB/s | leecher CPU s | leecher peak RSS MiB | runs (wall s) |\n'
printf '|---|---|---|---|---|---|\n'
for pair in $PAIRS; do
    seeder=${pair%-*}
    leecher=${pair#*-}
    start_seeder "$seeder"
    results="$WORK/results-$pair.txt"
    : >"$results"
    for ((run = 1; run <= RUNS; run++)); do
        run_leecher "$leecher" "$results"
    done
    kill "$SEEDER" 2>/dev/null || true
    wait "$SEEDER" 2>/dev/null || true
    wall=$(median 1 "$results")
    cpu=$(median 2 "$results")
    rss=$(median 3 "$results")
    all=$(cut -d' ' -f1 "$results" | paste -sd' ')
    awk -v s="$seeder" -v l="$leecher" -v mib="$SIZE_MIB" -v w="$wall" -v c="$cpu" -v r="$rss" \
        -v all="$all" 'function n(k) { return k == "ours" ? "swarm" : "libtorrent" }
        BEGIN { printf "| %s -> %s | %.2f | %.0f | %.2f | %.0f | %s |\n", n(s), n(l), w,
                mib * 1.048576 / w, c, r / 1024, all }'
done
