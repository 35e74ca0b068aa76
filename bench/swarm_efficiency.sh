#!/usr/bin/env bash
# Swarm efficiency: 1 seeder + N leechers of one client on loopback, every peer's upload capped
# at the same rate U by the client's own limiter, a file of F bytes. Reports T_last (start of
# the leechers to the last one's completion) against the bound for this set-up (Kurose & Ross):
#   bound = max{F/U, N*F/(U + N*U)} = F/U      (downloads uncapped, u_s = u_i = U)
# Leechers keep seeding after they complete, until the last one is done.
#
# Usage: bench/swarm_efficiency.sh [SIZE_MIB] [RUNS]   (defaults: 64 MiB, 3 runs)
#   N=16             leechers
#   RATE_KIB=4096    U in KiB/s (default 4 MiB/s: bound 16 s for 64 MiB)
#   CLIENTS="ours ours-plain lt lt-ss aria2"   which clients (each runs the whole swarm
#                    alone; default: all that can run here); ours-plain is our seeder with
#                    --no-super-seed, lt-ss libtorrent's seeder super-seeding, each with
#                    leechers of the same client
#   WORK, OUT, NO_BUILD, KEEP as in one_stream.sh; OUT gets "swarm-CLIENT t_last bound runs..."
# Needs /usr/bin/python3 with libtorrent (lt) and aria2c (aria2); our swarm-tracker is the
# tracker for every client.
set -euo pipefail

SIZE_MIB=${1:-64}
RUNS=${2:-3}
N=${N:-16}
RATE_KIB=${RATE_KIB:-4096}
RATE=$((RATE_KIB * 1024))
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

if [[ -z ${CLIENTS:-} ]]; then
    CLIENTS="ours ours-plain"
    have libtorrent && CLIENTS+=" lt lt-ss"
    have aria2c && CLIENTS+=" aria2"
fi

build_release
make_work swarm_efficiency
DATA="$WORK/seed/data.bin"
random_file "$DATA" "$SIZE_MIB"

LOG="$WORK/tracker.log"
TRACKER_PORT=$(free_port)
spawn "$TRACKER" --listen "127.0.0.1:$TRACKER_PORT"
TORRENT="$WORK/swarm.torrent"
"$SWARM" create "$DATA" --piece-size 256K -t "http://127.0.0.1:$TRACKER_PORT/announce" \
    -o "$TORRENT" -f >/dev/null

ARIA2_FLAGS=(--no-conf=true --interface=127.0.0.1 --disable-ipv6=true --enable-dht=false
    --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false
    --file-allocation=none --auto-file-renaming=false --summary-interval=0
    --show-console-readout=false --enable-color=false --console-log-level=notice
    "--stop-with-process=$$" "--max-overall-upload-limit=$RATE")

# Starts the seeder of client $1; returns once it serves the data.
start_seeder() {
    local port plain='' super=''
    [[ $1 == ours-plain ]] && plain=1
    [[ $1 == lt-ss ]] && super=1
    port=$(free_port)
    LOG="$WORK/seed-$1.log"
    case $1 in
    ours | ours-plain)
        spawn "$SWARM" seed "$TORRENT" --data "$DATA" --listen "127.0.0.1:$port" \
            --upload-limit "$RATE" ${plain:+--no-super-seed}
        wait_line "listening on port" 120 "$LOG"
        ;;
    lt | lt-ss)
        spawn "$PYTHON" "$LT_PEER" seed "$TORRENT" "$WORK/seed" --port "$port" \
            --timeout 3600 --upload-limit "$RATE" ${super:+--super-seed}
        wait_line "^seeding" 120 "$LOG"
        ;;
    aria2)
        spawn aria2c -d "$WORK/seed" "--listen-port=$port" "${ARIA2_FLAGS[@]}" \
            --seed-ratio=0.0 --bt-seed-unverified=true "$TORRENT"
        wait_line "listening on TCP port" 60 "$LOG"
        ;;
    esac
    SEEDER=$SPAWNED
    sleep 1
}

# Starts leecher $2 of client $1 (data in $WORK/leech/$2); it marks completion by creating
# $WORK/leech/$2.done (ours, aria2) or printing "done" in its log (lt), and keeps seeding.
start_leecher() {
    local kind=${1%%-*} i=$2 dir="$WORK/leech/$2" port hook
    port=$(free_port)
    mkdir -p "$dir"
    LOG="$WORK/leech/$i.log"
    case $kind in
    ours)
        spawn "$SWARM" fetch "$TORRENT" -o "$dir" --listen "127.0.0.1:$port" -q --seed \
            --upload-limit "$RATE" --on-complete "touch '$dir.done'"
        ;;
    lt)
        spawn "$PYTHON" "$LT_PEER" leech "$TORRENT" "$dir" --port "$port" --stay \
            --timeout 3600 --upload-limit "$RATE"
        ;;
    aria2)
        hook="$WORK/leech/$i.hook"
        printf '#!/bin/sh\ntouch %q\n' "$dir.done" >"$hook"
        chmod +x "$hook"
        spawn aria2c -d "$dir" "--listen-port=$port" "${ARIA2_FLAGS[@]}" --seed-ratio=0.0 \
            "--on-bt-download-complete=$hook" "$TORRENT"
        ;;
    esac
    LEECHERS+=("$SPAWNED")
}

# Is leecher $2 of client $1 complete?
is_done() {
    case $1 in
    lt | lt-ss) grep -q '^done ' "$WORK/leech/$2.log" 2>/dev/null ;;
    *) [[ -e $WORK/leech/$2.done ]] ;;
    esac
}

# One swarm of client $1; appends T_last to file $2.
run_swarm() {
    local kind=$1 out=$2 i t0 now left
    rm -rf "$WORK/leech"
    mkdir -p "$WORK/leech"
    start_seeder "$kind"
    LEECHERS=()
    t0=$(date +%s.%N)
    for ((i = 1; i <= N; i++)); do start_leecher "$kind" "$i"; done
    declare -A finished=()
    while ((${#finished[@]} < N)); do
        sleep 0.1
        now=$(date +%s.%N)
        for ((i = 1; i <= N; i++)); do
            [[ -z ${finished[$i]:-} ]] && is_done "$kind" "$i" && finished[$i]=$now
        done
        left=$(echo "$now - $t0 > 20 * $SIZE_MIB * 1024 / $RATE_KIB + 60" | bc)
        if [[ $left == 1 ]]; then
            echo "$kind swarm: only ${#finished[@]} of $N leechers done" >&2
            exit 1
        fi
    done
    for pid in "${LEECHERS[@]}" "$SEEDER"; do stop "$pid"; done
    for ((i = 1; i <= N; i++)); do
        cmp -s "$DATA" "$WORK/leech/$i/data.bin" || { echo "$kind leecher $i: data differs" >&2; exit 1; }
    done
    printf '%s\n' "${finished[@]}" | sort -g | tail -1 | awk -v t0="$t0" '{ printf "%.2f\n", $1 - t0 }' >>"$out"
}

BOUND=$(echo "scale=2; $SIZE_MIB * 1024 / $RATE_KIB" | bc)
printf '\nswarm efficiency: 1 seeder + %s leechers, %s MiB, every upload capped at %s KiB/s; bound F/u = %s s; median of %s (load average %s)\n' \
    "$N" "$SIZE_MIB" "$RATE_KIB" "$BOUND" "$RUNS" "$(load1)"
printf '| client | T_last s | T_last / bound | runs (s) |\n|---|---|---|---|\n'
for kind in $CLIENTS; do
    results="$WORK/swarm-$kind.txt"
    : >"$results"
    for ((run = 1; run <= RUNS; run++)); do run_swarm "$kind" "$results"; done
    t=$(median 1 "$results")
    all=$(paste -sd' ' "$results")
    [[ -n ${OUT:-} ]] && echo "swarm-$kind $t $BOUND $all" >>"$OUT"
    awk -v k="$kind" -v t="$t" -v b="$BOUND" -v all="$all" 'BEGIN {
        n = k == "ours" ? "swarm" : k == "ours-plain" ? "swarm (seed without super-seeding)" \
            : k == "lt" ? "libtorrent" : k == "lt-ss" ? "libtorrent (seed super-seeding)" : k
        printf "| %s | %.2f | %.2f | %s |\n", n, t, t / b, all }'
done
