#!/usr/bin/env bash
# UDP announces per second (BEP 15) served by swarm-tracker and by opentracker in the same run,
# under the same load generator (bench/udp-load: SOCKETS sockets on one thread, one announce in
# flight each, connect once per socket and reuse the id, random announces over 1,000 torrents,
# numwant 50). Rounds alternate the two trackers; medians of RUNS. Also the CPU each tracker
# used per announce, and swarm-tracker's resident memory per stored peer at the end. Loopback
# only.
#
# Usage: bench/udp_tracker.sh [seconds=10] [runs=3]
# Env: SOCKETS (128), UDP_SOCKETS (swarm-tracker's --udp-sockets, default one per core),
#      NO_BUILD=1, WORK=DIR, KEEP=1 (as bench/lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SECS=${1:-10}
RUNS=${2:-3}
SOCKETS=${SOCKETS:-128}
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
LOAD="$TARGET_DIR/release/udp-load"

if [[ ${NO_BUILD:-0} != 1 ]]; then
    echo "building release binaries..." >&2
    (cd "$ROOT" && cargo build --release --quiet -p tracker --bin swarm-tracker && cargo build --release --quiet -p udp-load)
fi
have opentracker || echo "opentracker is not installed: swarm-tracker alone" >&2
make_work udp-tracker
chmod 755 "$WORK" # opentracker drops privileges before reading its whitelist
"$LOAD" --print-hashes >"$WORK/whitelist.txt"
chmod 644 "$WORK/whitelist.txt"

echo "# UDP tracker benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo);" \
    "load average at start $(load1)"
echo "command: bench/udp_tracker.sh $SECS $RUNS (SOCKETS=$SOCKETS${UDP_SOCKETS:+ UDP_SOCKETS=$UDP_SOCKETS})"

port=$(free_port)
LOG="$WORK/swarm-tracker.log"
spawn "$TRACKER" --listen "127.0.0.1:$port" --log-level warn ${UDP_SOCKETS:+--udp-sockets "$UDP_SOCKETS"}
swarm_pid=$SPAWNED
targets=("swarm-tracker=$port=$swarm_pid")
wait_port "$port" 10
if have opentracker; then
    ot_port=$(free_port)
    LOG="$WORK/opentracker.log"
    # Debian's opentracker is built in whitelist mode.
    spawn opentracker -i 127.0.0.1 -p "$ot_port" -P "$ot_port" -w "$WORK/whitelist.txt" -d /
    targets+=("opentracker=$ot_port=$SPAWNED")
    wait_port "$ot_port" 10
fi

# Every tracker must answer announces of the list with peers, not errors (opentracker loads its
# whitelist in the background, so give it a few seconds).
for t in "${targets[@]}"; do
    IFS== read -r name p _ <<<"$t"
    for ((try = 0; ; try++)); do
        out=$("$LOAD" --target "127.0.0.1:$p" --sockets 4 --seconds 1 --warmup 0 || true)
        if grep -q "errors 0," <<<"$out" && ! grep -q "^announces: 0 " <<<"$out"; then break; fi
        if ((try >= 20)); then
            echo "$name does not answer announces: $out" >&2
            exit 1
        fi
        sleep 0.5
    done
done

results="$WORK/results.txt"
: >"$results"
for ((r = 1; r <= RUNS; r++)); do
    for t in "${targets[@]}"; do
        IFS== read -r name p pid <<<"$t"
        cpu0=$(cpu_seconds "$pid")
        out=$("$LOAD" --target "127.0.0.1:$p" --sockets "$SOCKETS" --seconds "$SECS" --warmup 2)
        cpu1=$(cpu_seconds "$pid")
        rate=$(awk '/^announces\/s:/ { print $2 }' <<<"$out")
        n=$(awk '/^announces:/ { print $2 }' <<<"$out")
        lat=$(awk '/^latency ms:/ { print $4, $6, $8 }' <<<"$out")
        lost=$(awk '/^announces:/ { gsub(",", ""); print $7 }' <<<"$out")
        errs=$(awk '/^announces:/ { gsub(",", ""); print $9 }' <<<"$out")
        # CPU microseconds of the tracker per announce (warm-up included in the CPU, so slightly high).
        us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$n" -v s="$SECS" 'BEGIN { printf "%.2f", (b - a) * 1e6 / (n * (s + 2) / s) }')
        echo "run $r $name: $rate announces/s, latency p50/p90/p99 $lat ms, lost $lost, errors $errs, tracker CPU $us us/announce, load $(load1)"
        echo "$name $rate $lat $us" >>"$results"
    done
done

echo
echo "| tracker | announces/s | p50 ms | p90 ms | p99 ms | tracker CPU us/announce |"
echo "|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
    name=${t%%=*}
    grep "^$name " "$results" >"$WORK/$name.txt"
    echo "| $name | $(median 2 "$WORK/$name.txt") | $(median 3 "$WORK/$name.txt") | $(median 4 "$WORK/$name.txt") | $(median 5 "$WORK/$name.txt") | $(median 6 "$WORK/$name.txt") |"
done
if ((${#targets[@]} > 1)); then
    awk -v a="$(median 2 "$WORK/swarm-tracker.txt")" -v b="$(median 2 "$WORK/opentracker.txt")" \
        'BEGIN { printf "swarm-tracker / opentracker: %.2fx announces/s\n", a / b }'
fi
peers=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^swarm_tracker_peers\{/ { n += $2 } END { print n }')
rss_kib=$(proc_kib "$swarm_pid" VmRSS)
echo "swarm-tracker VmRSS: $rss_kib KiB with $peers peers ($((rss_kib * 1024 / (peers + 1))) bytes/peer all-in, runtime included)"
if have opentracker; then
    echo "opentracker VmRSS: $(proc_kib "${targets[1]##*=}" VmRSS) KiB"
fi
curl -s "http://127.0.0.1:$port/metrics" | grep '^swarm_tracker_udp'
echo "load average at the end: $(load1)"
