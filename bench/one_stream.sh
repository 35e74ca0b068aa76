#!/usr/bin/env bash
# One seeder -> one leecher over loopback, files on disk: the leecher's wall time (start to
# completion), CPU seconds and peak RSS, median of N runs, for pairings of our client (release
# build), libtorrent (through tests/peers/lt_peer.py), aria2 and Transmission, and the machine's
# ceiling for one such stream (tests/examples/ceiling.rs: read -> loopback TCP -> SHA-1 per
# piece -> positioned write).
#
# Usage: bench/one_stream.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 3 runs)
#   PAIRS="ours-ours lt-lt ..."  which pairings to run, SEEDER-LEECHER with kinds ours, lt,
#              aria2, tr (Transmission), plus "ceiling"; default: all that can run here.
#              Transmission refuses loopback peers from a tracker, so a tr leecher needs a
#              seeder that dials it: only lt-tr. For it, each run starts the daemon (torrent
#              added) first, then a libtorrent seeder that dials it; the clock starts when that
#              seeder has verified its data (libtorrent backs off from a peer it failed to reach,
#              so a seeder started first would wait a minute or more to retry).
#   WORK=DIR   keep the data and logs there (default: a new directory under /tmp, removed at
#              the end unless KEEP=1)
#   OUT=FILE   also write one line per pairing: "pair wall cpu rss_kib runs..." (medians)
#   NO_BUILD=1 use the release binaries already built (CARGO_TARGET_DIR is honoured)
#   SEED_FLAGS extra flags for our seeder (e.g. --no-super-seed)
#   A pairing ending in "+enc" (ours-ours+enc, lt-lt+enc, ours-lt+enc, lt-ours+enc) runs with
#   MSE/PE required on both ends: ours `--encryption require`, libtorrent pe_forced with RC4
#   only (bench/encryption.sh runs those next to plaintext).
#
# Nothing is dropped from the page cache: the source file stays cached between runs, as in a
# seeder that serves a popular file. The leecher's output directory is deleted before each run.
# Wall time includes the leecher's start-up. Transmission's daemon is timed from its start to
# "Percent Done: 100%" (polled every 0.2 s), CPU and peak RSS read from /proc.
# Needs: cargo, /usr/bin/time, /usr/bin/python3 with libtorrent; aria2c and
# transmission-daemon/-remote for their pairings.
set -euo pipefail

SIZE_MIB=${1:-1024}
RUNS=${2:-3}
PIECE=256K
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

for tool in "$TIME" "$PYTHON" cargo; do
    have "$tool" || { echo "missing: $tool" >&2; exit 1; }
done
have libtorrent || { echo "missing: python3-libtorrent" >&2; exit 1; }

if [[ -z ${PAIRS:-} ]]; then
    PAIRS="ceiling ours-ours lt-lt ours-lt lt-ours"
    have aria2c && PAIRS+=" aria2-lt lt-aria2 aria2-ours ours-aria2"
    have transmission-daemon && have transmission-remote && PAIRS+=" lt-tr tr-lt"
fi

build_release
make_work one_stream

DATA="$WORK/seed/data.bin"
random_file "$DATA" "$SIZE_MIB"

LOG="$WORK/tracker.log"
TRACKER_PORT=$(free_port)
spawn "$TRACKER" --listen "127.0.0.1:$TRACKER_PORT"
TORRENT="$WORK/data.torrent"
"$SWARM" create "$DATA" --piece-size "$PIECE" -t "http://127.0.0.1:$TRACKER_PORT/announce" \
    -o "$TORRENT" -f >/dev/null

# Writes a Transmission settings.json into dir $1: peer port $2, RPC port $3, data in $4.
tr_settings() {
    mkdir -p "$1"
    cat >"$1/settings.json" <<JSON
{
    "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
    "blocklist-enabled": false, "dht-enabled": false, "lpd-enabled": false,
    "pex-enabled": false, "utp-enabled": false, "port-forwarding-enabled": false,
    "download-dir": "$4", "incomplete-dir-enabled": false, "encryption": 0,
    "message-level": 1, "peer-port": $2, "peer-port-random-on-start": false,
    "ratio-limit-enabled": false, "rpc-authentication-required": false,
    "rpc-bind-address": "127.0.0.1", "rpc-host-whitelist-enabled": false, "rpc-port": $3,
    "rpc-whitelist-enabled": false, "start-added-torrents": true, "watch-dir-enabled": false
}
JSON
}

# Starts a Transmission daemon (config in $1, peer port $2, data dir $3) with the torrent
# added; its pid in $TR_PID, RPC port in $TR_RPC.
start_transmission() {
    TR_RPC=$(free_port)
    tr_settings "$1" "$2" "$TR_RPC" "$3"
    LOG="$1.log"
    spawn transmission-daemon -f -g "$1"
    TR_PID=$SPAWNED
    wait_port "$TR_RPC" 30
    transmission-remote "127.0.0.1:$TR_RPC" -a "$TORRENT" >/dev/null
}

# Waits up to $1 seconds until the daemon's torrent is complete.
wait_transmission_done() {
    local i
    for ((i = 0; i < $1 * 5; i++)); do
        transmission-remote "127.0.0.1:$TR_RPC" -t 1 -i 2>/dev/null |
            grep -q 'Percent Done: 100%' && return 0
        sleep 0.2
    done
    echo "transmission did not complete in $1 s" >&2
    return 1
}

aria2_flags() {
    echo --no-conf=true --interface=127.0.0.1 --disable-ipv6=true --enable-dht=false \
        --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false \
        --file-allocation=none --auto-file-renaming=false --summary-interval=0 \
        --show-console-readout=false --enable-color=false --console-log-level=notice \
        --stop-with-process=$$
}

# Starts a seeder of kind $1 (ours|lt|aria2|tr) as $SEEDER; returns once it serves the data.
# $DIAL (optional): a peer port on 127.0.0.1 the seeder dials (lt only). Sets SEEDING_AT.
start_seeder() {
    local kind=$1 port
    port=$(free_port)
    LOG="$WORK/seed-$kind.log"
    case $kind in
    ours)
        # shellcheck disable=SC2086
        spawn "$SWARM" seed "$TORRENT" --data "$DATA" --listen "127.0.0.1:$port" ${SEED_FLAGS:-} \
            ${ENC:+--encryption require}
        SEEDER=$SPAWNED
        wait_line "listening on port" 300 "$LOG"
        ;;
    lt)
        spawn "$PYTHON" "$LT_PEER" seed "$TORRENT" "$WORK/seed" --port "$port" --timeout 7200 \
            ${DIAL:+--connect "127.0.0.1:$DIAL"} ${ENC:+--encryption forced}
        SEEDER=$SPAWNED
        wait_line "^seeding" 300 "$LOG"
        ;;
    aria2)
        # shellcheck disable=SC2046
        spawn aria2c -d "$WORK/seed" "--listen-port=$port" $(aria2_flags) --seed-ratio=0.0 \
            --bt-seed-unverified=true "$TORRENT"
        SEEDER=$SPAWNED
        wait_line "listening on TCP port" 60 "$LOG"
        ;;
    tr)
        start_transmission "$WORK/tr-seed" "$port" "$WORK/seed"
        SEEDER=$TR_PID
        wait_transmission_done 300
        ;;
    esac
    SEEDING_AT=$(date +%s.%N)
    # Let its announce reach the tracker.
    sleep 1
}

# Runs a leecher of kind $1 once; appends "wall cpu rss_kib" to $2. A tr leecher runs with
# its own libtorrent seeder (see the header).
run_leecher() {
    local kind=$1 out=$2 dir="$WORK/leech" port timing t0
    port=$(free_port)
    rm -rf "$dir"
    mkdir -p "$dir"
    LOG="$WORK/leech-$kind.log"
    timing="$WORK/time.txt"
    case $kind in
    ours)
        "$TIME" -v -o "$timing" "$SWARM" fetch "$TORRENT" -o "$dir" --listen "127.0.0.1:$port" \
            -q ${ENC:+--encryption require} >"$LOG" 2>&1
        ;;
    lt)
        "$TIME" -v -o "$timing" "$PYTHON" "$LT_PEER" leech "$TORRENT" "$dir" --port "$port" \
            --timeout 300 ${ENC:+--encryption forced} >"$LOG" 2>&1
        ;;
    aria2)
        # shellcheck disable=SC2046
        "$TIME" -v -o "$timing" aria2c -d "$dir" "--listen-port=$port" $(aria2_flags) \
            --seed-time=0 "$TORRENT" >"$LOG" 2>&1
        ;;
    tr)
        start_transmission "$WORK/tr-leech" "$port" "$dir"
        DIAL=$port start_seeder lt
        t0=$SEEDING_AT
        wait_transmission_done 300
        stop "$SEEDER"
        printf 'Elapsed (wall clock) time (h:mm:ss or m:ss): %s\n' \
            "$(echo "$(date +%s.%N) - $t0" | bc)" >"$timing"
        printf 'User time (seconds): %s\nSystem time (seconds): 0\n' "$(cpu_seconds "$TR_PID")" \
            >>"$timing"
        printf 'Maximum resident set size (kbytes): %s\n' "$(proc_kib "$TR_PID" VmHWM)" \
            >>"$timing"
        stop "$TR_PID"
        rm -rf "$WORK/tr-leech"
        ;;
    esac
    cmp -s "$DATA" "$dir/data.bin" || { echo "$kind leecher: data differs" >&2; exit 1; }
    time_fields "$timing" >>"$out"
    rm -rf "$dir"
}

# run_leecher, but a leecher that fails (exit status, timeout) is reported and skipped: the
# row then has fewer runs (the caller counts them in FAILED).
try_leecher() {
    local before=${#PIDS[@]}
    # A subshell, so a failure does not end the script; it stops what it started.
    # shellcheck disable=SC2016
    if ! (
        trap 'for p in "${PIDS[@]:'"$before"'}"; do kill "$p" 2>/dev/null || true; done' EXIT
        run_leecher "$@"
    ); then
        echo "$1 leecher failed; see $WORK/leech-$1.log" >&2
        return 1
    fi
}

# Runs the ceiling program once; appends "wall cpu rss_kib" to $1.
run_ceiling() {
    local dst="$WORK/ceiling.bin" timing="$WORK/time.txt"
    rm -f "$dst"
    "$TIME" -v -o "$timing" "$CEILING" "$DATA" "$dst" >"$WORK/ceiling.log" 2>&1
    cmp -s "$DATA" "$dst" || { echo "ceiling: data differs" >&2; exit 1; }
    # The program's own clock (first byte to last write) excludes process start-up.
    awk -v t="$(awk '{ print $4 }' "$WORK/ceiling.log")" '{ $1 = t; print }' \
        <(time_fields "$timing") >>"$1"
    rm -f "$dst"
}

name() {
    case $1 in
    ours) echo swarm ;; lt) echo libtorrent ;; aria2) echo aria2 ;; tr) echo transmission ;;
    esac
}

# One run of pairing $1, appended to its results file. A seeder is started for the run and
# stopped after it (a Transmission seeder did not serve a second leecher anyway).
run_pair() {
    local pair=$1 results="$WORK/results-$1.txt" seeder leecher
    ENC=
    if [[ $pair == *+enc ]]; then
        ENC=1
        pair=${pair%+enc}
    fi
    if [[ $pair == ceiling ]]; then
        run_ceiling "$results"
        return
    fi
    seeder=${pair%-*}
    leecher=${pair#*-}
    if [[ $leecher == tr ]]; then
        [[ $seeder == lt ]] || { echo "$pair: a Transmission leecher needs lt" >&2; exit 1; }
        try_leecher tr "$results" || FAILED[$pair]=$((${FAILED[$pair]:-0} + 1))
        return
    fi
    start_seeder "$seeder"
    try_leecher "$leecher" "$results" || FAILED[$1]=$((${FAILED[$1]:-0} + 1))
    stop "$SEEDER"
    [[ $seeder == tr ]] && rm -rf "$WORK/tr-seed"
    return 0
}

# Rounds: every pairing once per round, so that each ratio compares runs made minutes apart,
# under the same conditions (on a shared virtual machine the cost of filling the page cache
# changed several-fold within the hour).
declare -A FAILED
for pair in $PAIRS; do : >"$WORK/results-$pair.txt"; done
for ((run = 1; run <= RUNS; run++)); do
    for pair in $PAIRS; do run_pair "$pair"; done
done

printf '\n%s MiB, %s pieces, median of %s (load average %s)\n' "$SIZE_MIB" "$PIECE" "$RUNS" \
    "$(load1)"
printf '| seeder -> leecher | wall s | MB/s | leecher CPU s | leecher peak RSS MiB | runs (wall s) |\n'
printf '|---|---|---|---|---|---|\n'
for pair in $PAIRS; do
    results="$WORK/results-$pair.txt"
    if [[ $pair == ceiling ]]; then
        label="ceiling (read -> TCP -> SHA-1 -> pwrite)"
    else
        enc=
        [[ $pair == *+enc ]] && enc=" (RC4 required)"
        seeder=${pair%+enc}
        seeder=${seeder%-*}
        leecher=${pair%+enc}
        leecher=${leecher#*-}
        if [[ ! -s $results ]]; then
            printf '| %s -> %s | failed | | | | %s failed runs |\n' "$(name "$seeder")" \
                "$(name "$leecher")" "${FAILED[$pair]:-0}"
            continue
        fi
        label="$(name "$seeder") -> $(name "$leecher")$enc"
    fi
    wall=$(median 1 "$results")
    cpu=$(median 2 "$results")
    rss=$(median 3 "$results")
    all=$(cut -d' ' -f1 "$results" | paste -sd' ')
    [[ -n ${OUT:-} ]] && echo "$pair $wall $cpu $rss $all" >>"$OUT"
    awk -v l="$label" -v mib="$SIZE_MIB" -v w="$wall" -v c="$cpu" -v r="$rss" -v all="$all" \
        'BEGIN { printf "| %s | %.2f | %.0f | %.2f | %.0f | %s |\n", l, w,
                 mib * 1.048576 / w, c, r / 1024, all }'
done
